//! Private Postfix and Dovecot instances for the guides' tests.

use super::*;

/// A private Postfix: `postfix -c DIR start` with its own main.cf and master.cf.
pub(super) struct Postfix {
    conf: PathBuf,
    log: PathBuf,
}

impl Postfix {
    /// Starts Postfix from `main_cf`/`master_cf` in `conf`; the caller's main.cf names
    /// `queue_directory` and `data_directory` (created here) and `maillog_file` = `log`.
    pub(super) fn start(conf: &Path, queue: &Path, data: &Path, log: &Path) -> Self {
        for d in [queue, data] {
            std::fs::create_dir_all(d).unwrap();
        }
        let pf = nix::unistd::User::from_name("postfix")
            .unwrap()
            .expect("user postfix: install postfix (run-tests)");
        nix::unistd::chown(data, Some(pf.uid), None).unwrap();
        let errors = conf.join("start.err");
        let status = Command::new(need("postfix"))
            .arg("-c")
            .arg(conf)
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors).unwrap())
            .status()
            .unwrap();
        let p = Postfix {
            conf: conf.to_owned(),
            log: log.to_owned(),
        };
        assert!(
            status.success(),
            "postfix start failed: {}\n{}",
            std::fs::read_to_string(&errors).unwrap_or_default(),
            p.log()
        );
        p
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg("abort")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A private Dovecot: `dovecot -c FILE` with its own base_dir (`run`), stopped on drop.
pub(super) struct Dovecot {
    run: PathBuf,
    log: PathBuf,
}

impl Dovecot {
    pub(super) fn start(conf: &Path, run: &Path, log: &Path) -> Self {
        let errors = conf.with_extension("stderr");
        let status = Command::new(need("dovecot"))
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors).unwrap())
            .status()
            .unwrap();
        let d = Dovecot {
            run: run.to_owned(),
            log: log.to_owned(),
        };
        assert!(
            status.success(),
            "dovecot did not start: {}\n{}",
            std::fs::read_to_string(&errors).unwrap_or_default(),
            d.log()
        );
        d
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.run.join("master.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let end = Instant::now() + DEADLINE;
            while nix::sys::signal::kill(pid, None).is_ok() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// "Your existing Dovecot" of mixes 3 and 4: passwd-file users (mix 1's file, mail as the test
/// user), IMAP and POP3 with STARTTLS on the loopback ports for 143 and 110, LMTP, base_dir
/// `/run/dovecot`. The guide's own lines are appended by the caller.
pub(super) fn dovecot_base(local: &Local, users: &Path) -> String {
    local.cert(
        "/etc/dovecot/private/dovecot.pem",
        "/etc/dovecot/private/dovecot.key",
    );
    for d in ["/run/dovecot", "/var/lib/dovecot", "/var/log"] {
        std::fs::create_dir_all(local.path(d)).unwrap();
    }
    let u = nobody();
    format!(
        "base_dir = {run}\nstate_dir = {state}\ninstance_name = pochta-guide-{pid}-{imap}\n\
         protocols = imap pop3 lmtp\nlisten = 127.0.0.1\nlog_path = {log}\n\
         ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n\
         auth_mechanisms = plain login\n\
         first_valid_uid = {uid}\nlast_valid_uid = {uid}\n\
         postmaster_address = postmaster@example.org\n\
         passdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = {users}\n  \
         default_fields = uid={uid} gid={gid}\n}}\n\
         service imap-login {{\n  inet_listener imap {{\n    port = {imap}\n  }}\n  \
         inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
         service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3}\n  }}\n  \
         inet_listener pop3s {{\n    port = 0\n  }}\n}}\n",
        run = local.path("/run/dovecot").display(),
        state = local.path("/var/lib/dovecot").display(),
        pid = std::process::id(),
        imap = local.port(143),
        pop3 = local.port(110),
        log = local.path("/var/log/dovecot.log").display(),
        cert = local.path("/etc/dovecot/private/dovecot.pem").display(),
        key = local.path("/etc/dovecot/private/dovecot.key").display(),
        uid = u.uid,
        gid = u.gid,
        users = users.display(),
    )
}
