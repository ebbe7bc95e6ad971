//! A private Postfix instance (`postfix -c DIR start`: own main.cf/master.cf, queue_directory,
//! data_directory, maillog_file through postlogd), as the team's baseline scripts run it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ctx::{mkdir, write};
use crate::procs::alive;

pub(crate) struct Postfix {
    pub(crate) conf: PathBuf,
    pub(crate) queue: PathBuf,
    pub(crate) maillog: PathBuf,
    pub(crate) master: i32,
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    format!(
        "--- last lines of {}:\n{}",
        path.display(),
        lines[from..].join("\n")
    )
}

const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

impl Postfix {
    /// Starts Postfix with smtpd on `listen` (host:port); `main_extra` is appended to main.cf.
    pub(crate) fn start(dir: &Path, listen: &str, main_extra: &str) -> Result<Self, String> {
        let (conf, queue, data) = (dir.join("etc"), dir.join("spool"), dir.join("data"));
        for d in [&conf, &queue, &data] {
            mkdir(d)?;
        }
        let pf = nix::unistd::User::from_name("postfix")
            .ok()
            .flatten()
            .ok_or("no user `postfix` (is the postfix package installed?)")?;
        nix::unistd::chown(&data, Some(pf.uid), None).map_err(|e| format!("chown: {e}"))?;
        let maillog = dir.join("maillog");
        write(
            &conf.join("main.cf"),
            &format!(
                "compatibility_level = 3.6\nqueue_directory = {}\ndata_directory = {}\n\
                 mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mx.bench.test\n\
                 mydomain = bench.test\nmyorigin = $myhostname\nmydestination =\n\
                 inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
                 smtpd_peername_lookup = no\nsmtp_dns_support_level = disabled\n\
                 smtp_host_lookup = native\nlmtp_host_lookup = native\nalias_maps =\n\
                 alias_database =\nlocal_recipient_maps =\nbiff = no\nmaillog_file = {}\n\
                 maillog_file_prefixes = /var, /tmp, /dev/stdout, {}\n\
                 master_service_disable =\n{main_extra}",
                queue.display(),
                data.display(),
                maillog.display(),
                dir.display()
            ),
        )?;
        write(
            &conf.join("master.cf"),
            &format!("{listen} inet n - n - - smtpd\n{MASTER_CF}"),
        )?;
        let conf_s = conf.display().to_string();
        for args in [["-c", &conf_s, "check"], ["-c", &conf_s, "start"]] {
            let out = Command::new("postfix")
                .args(args)
                .output()
                .map_err(|e| format!("cannot run postfix: {e} (postfix package)"))?;
            if !out.status.success() {
                return Err(format!(
                    "postfix {} failed ({}): {}\n{}",
                    args[2],
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim(),
                    tail(&maillog)
                ));
            }
        }
        let t0 = Instant::now();
        let master = loop {
            let pid = std::fs::read_to_string(queue.join("pid/master.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            match pid {
                Some(p) => break p,
                None if t0.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                None => return Err(format!("postfix wrote no master.pid\n{}", tail(&maillog))),
            }
        };
        let p = Postfix {
            conf,
            queue,
            maillog,
            master,
        };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(listen).is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "postfix does not listen on {listen}\n{}",
                    tail(&p.maillog)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(p)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if alive(self.master) {
            Ok(())
        } else {
            Err(format!(
                "Postfix (master pid {}) is not running\n{}",
                self.master,
                tail(&self.maillog)
            ))
        }
    }

    /// Messages still in the queue (maildrop, incoming, active, deferred, hold).
    pub(crate) fn queued(&self) -> usize {
        let mut n = 0;
        for q in ["maildrop", "incoming", "active", "deferred", "hold"] {
            n += walk(&self.queue.join(q));
        }
        n
    }

    /// Waits until the queue is empty (at most `limit`); false if it is not.
    pub(crate) fn drain(&self, limit: Duration) -> bool {
        let t0 = Instant::now();
        while self.queued() > 0 {
            if t0.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Lines of the maillog that contain every one of `needles`.
    pub(crate) fn log_count(&self, needles: &[&str]) -> usize {
        std::fs::read_to_string(&self.maillog)
            .unwrap_or_default()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }
}

fn walk(d: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(d) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
        let t0 = Instant::now();
        while alive(self.master) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(self.master) {
            let pid = nix::unistd::Pid::from_raw(self.master);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}
