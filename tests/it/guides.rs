//! The mixing guides in docs/ run as written. Each test reads the config blocks of one guide
//! (fenced blocks tagged `file=NAME`), changes only what [`Local`] lists — system paths, listen
//! ports and system users — starts the pochta daemons and the real Postfix or Dovecot with them,
//! sends a message through and reads it back. A guide block the test does not use, or a path
//! the substitutions leave pointing at the real system, fails the test: guide and test cannot
//! drift apart.
//! - [`alone`]: docs/mix-1-pochta-alone.md, the five pochta daemons;
//! - [`postfix`]: docs/mix-2-postfix-front.md, Postfix smtpd + pochta authd, mda-lmtp, imapd, pop3d;
//! - [`dovecot`]: docs/mix-3-mta-with-dovecot.md, pochta-mta on Dovecot's auth and LMTP;
//! - [`maildir`]: docs/mix-4-shared-maildir.md, Dovecot and pochta-imapd/-pop3d on one Maildir.

mod alone;
mod dovecot;
mod maildir;
mod postfix;

use crate::config::daemon_bin;
use crate::harness::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The password of every user in the guides' passwd-files.
const PASSWORD: &str = "correct horse battery";

/// A guide's `file=` blocks; [`Guide::done`] checks the test used each one.
struct Guide {
    path: PathBuf,
    files: BTreeMap<String, String>,
    used: RefCell<BTreeSet<String>>,
}

impl Guide {
    fn load(name: &str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let path = root.join("docs").join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut files = BTreeMap::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some(info) = line.strip_prefix("```") else {
                continue;
            };
            let file = info
                .split_whitespace()
                .find_map(|w| w.strip_prefix("file="))
                .map(str::to_owned);
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            if let Some(file) = file {
                let dup = files.insert(file.clone(), body);
                assert!(dup.is_none(), "{}: two blocks file={file}", path.display());
            }
        }
        Guide {
            path,
            files,
            used: RefCell::default(),
        }
    }

    /// The text of block `file=name`, exactly as the guide shows it.
    fn file(&self, name: &str) -> String {
        self.used.borrow_mut().insert(name.to_owned());
        self.files
            .get(name)
            .unwrap_or_else(|| panic!("{}: no block file={name}", self.path.display()))
            .clone()
    }

    /// Every block of the guide was used by the test.
    fn done(&self) {
        let unused: Vec<_> = self
            .files
            .keys()
            .filter(|k| !self.used.borrow().contains(*k))
            .collect();
        assert!(
            unused.is_empty(),
            "{}: blocks {unused:?} are not exercised by the test",
            self.path.display()
        );
    }
}

/// Where a guide's system paths, ports and users go in a test: the only changes made to the
/// guides' config lines.
struct Local {
    /// removed with the test's files when the test ends
    _dir: TempDir,
    /// (system path prefix as the guide writes it, private directory)
    paths: Vec<(&'static str, PathBuf)>,
    /// guide port → free loopback port, filled as listen addresses are met
    ports: RefCell<BTreeMap<u16, u16>>,
}

impl Local {
    /// `prefixes`: the system directories the guide uses (e.g. "/run/pochta"); each becomes
    /// a directory of the same name under the test's temporary directory.
    fn new(tag: &str, prefixes: &[&'static str]) -> Self {
        let dir = TempDir::new(tag);
        let paths = prefixes
            .iter()
            .map(|p| {
                let local = dir.join(p.trim_start_matches('/'));
                std::fs::create_dir_all(&local).unwrap();
                (*p, local)
            })
            .collect();
        Local {
            _dir: dir,
            paths,
            ports: RefCell::default(),
        }
    }

    /// The private path for a system path the guide names.
    fn path(&self, system: &str) -> PathBuf {
        for (prefix, local) in &self.paths {
            if let Some(rest) = system.strip_prefix(prefix) {
                return PathBuf::from(format!("{}{rest}", local.display()));
            }
        }
        panic!(
            "{system} is not under a substituted prefix {:?}",
            self.paths
        );
    }

    /// The loopback port standing for the guide's port `n`.
    fn port(&self, n: u16) -> u16 {
        *self.ports.borrow_mut().entry(n).or_insert_with(free_port)
    }

    /// The guide's text with the substitutions applied:
    /// - path prefixes from [`Local::new`];
    /// - `"[::]:N"` / `"0.0.0.0:N"` listen addresses → `"127.0.0.1:<free port>"`;
    /// - system users `pochta` and `vmail` (owner/user keys, TOML or dovecot.conf) → the test
    ///   user, groups → its group (the tests run as root; these users need not exist here).
    fn apply(&self, text: &str) -> String {
        let mut out = String::new();
        for line in text.lines() {
            let mut l = line.to_owned();
            for (prefix, local) in &self.paths {
                l = l.replace(prefix, &local.display().to_string());
            }
            for any in ["[::]:", "0.0.0.0:"] {
                if let Some(at) = l.find(&format!("\"{any}")) {
                    let start = at + 1 + any.len();
                    let end = start + l[start..].find('"').unwrap();
                    let n: u16 = l[start..end].parse().unwrap();
                    l = format!("{}127.0.0.1:{}{}", &l[..at + 1], self.port(n), &l[end..]);
                }
            }
            let key = l.split('=').next().unwrap_or("").trim().to_owned();
            for user in ["pochta", "vmail"] {
                let (quoted, bare) = (format!("\"{user}\""), format!("= {user}"));
                let to = match key.as_str() {
                    "group" | "gid" => test_group(),
                    _ => test_user().to_owned(),
                };
                if l.contains(&quoted) {
                    l = l.replace(&quoted, &format!("\"{to}\""));
                } else if l.trim_end().ends_with(&bare) {
                    l = l.replace(&bare, &format!("= {to}"));
                }
            }
            let mut outside = l.clone();
            for (_, local) in &self.paths {
                outside = outside.replace(&local.display().to_string(), "");
            }
            for system in ["/run/", "/var/", "/etc/", "[::]"] {
                assert!(
                    !outside.contains(system),
                    "{line:?}: {system} left after substitution; add it to Local"
                );
            }
            out.push_str(&l);
            out.push('\n');
        }
        out
    }

    /// Writes the guide's block `file` (substituted) to `path` (a system path of the guide).
    fn install(&self, guide: &Guide, file: &str, system_path: &str) -> PathBuf {
        let path = self.path(system_path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, self.apply(&guide.file(file))).unwrap();
        path
    }

    /// A directory owned by the user the daemons run as (the guide's `install -d -o …`).
    fn owned_dir(&self, system_path: &str) -> PathBuf {
        let p = self.path(system_path);
        std::fs::create_dir_all(&p).unwrap();
        chown_test_user(&p);
        p
    }

    /// A fresh self-signed certificate and key at the guide's paths.
    fn cert(&self, cert: &str, key: &str) {
        let (c, k) = (self.path(cert), self.path(key));
        std::fs::create_dir_all(c.parent().unwrap()).unwrap();
        write_cert(&c, &k);
    }
}

fn test_user() -> &'static str {
    "nobody"
}

fn test_group() -> String {
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::Group::from_gid(nobody.gid)
        .unwrap()
        .unwrap()
        .name
}

fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name(test_user()).unwrap().unwrap()
}

fn chown_test_user(p: &Path) {
    let u = nobody();
    nix::unistd::chown(p, Some(u.uid), Some(u.gid)).unwrap();
}

fn need(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("{program} is not installed: install the packages listed at the top of run-tests");
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str, logs: &dyn Fn() -> String) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}\n{}", logs());
}

/// A pochta daemon started from a guide's config (its own notify socket and log file).
struct Pochta {
    name: &'static str,
    daemon: Daemon,
    _dir: TempDir,
}

impl Pochta {
    /// `--check-config`, then start and wait for READY=1.
    fn start(name: &'static str, config: &Path) -> Self {
        let bin = daemon_bin(name);
        let check = Command::new(&bin)
            .arg("--check-config")
            .arg("-c")
            .arg(config)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "pochta-{name} --check-config rejects the guide's config: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let dir = TempDir::new(&format!("guide-{name}"));
        let mut notify = Notify::new(&dir);
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(config);
        let mut daemon = Daemon::spawn(cmd, &dir, &notify);
        notify.wait_for("READY=1", &mut daemon);
        Pochta {
            name,
            daemon,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.daemon.log()
    }
}

/// Logs of several daemons, for failure messages.
fn all_logs(daemons: &[&Pochta], others: &[(&str, String)]) -> String {
    let mut s = String::new();
    for d in daemons {
        s.push_str(&format!("--- pochta-{} ---\n{}", d.name, d.log()));
    }
    for (name, log) in others {
        s.push_str(&format!("--- {name} ---\n{log}"));
    }
    s
}

/// A private Postfix: `postfix -c DIR start` with its own main.cf and master.cf.
struct Postfix {
    conf: PathBuf,
    log: PathBuf,
}

impl Postfix {
    /// Starts Postfix from `main_cf`/`master_cf` in `conf`; the caller's main.cf names
    /// `queue_directory` and `data_directory` (created here) and `maillog_file` = `log`.
    fn start(conf: &Path, queue: &Path, data: &Path, log: &Path) -> Self {
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

    fn log(&self) -> String {
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
struct Dovecot {
    run: PathBuf,
    log: PathBuf,
}

impl Dovecot {
    fn start(conf: &Path, run: &Path, log: &Path) -> Self {
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

    fn log(&self) -> String {
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

/// The mail clients of the guides' tests (python smtplib, imaplib, poplib); TLS certificates
/// are not verified (the test made them). Each command prints `key<TAB>value` lines.
/// - `send PORT MODE USER FROM TO SUBJECT`: MODE plain|starttls|ssl; USER empty = no AUTH;
///   prints `queued` with the final reply to DATA;
/// - `rcpt PORT FROM TO`: prints `rcpt` with the reply code and text to RCPT;
/// - `badauth PORT USER`: STARTTLS, AUTH with a wrong password; prints `auth` with the reply;
/// - `imap PORT USER SUBJECT` / `pop3 PORT USER SUBJECT`: STARTTLS/STLS, login, wait (20 s)
///   until a message with that subject is there; prints `found` with its Subject line.
const CLIENT: &str = r#"
import smtplib, imaplib, poplib, ssl, sys, time
ctx = ssl._create_unverified_context()
cmd, args, pw = sys.argv[1], sys.argv[2:], sys.argv[-1]
def out(k, v):
    print(f"{k}\t{v}", flush=True)
def until(f):
    end = time.time() + 20
    while True:
        r = f()
        if r or time.time() > end:
            return r
        time.sleep(0.1)
if cmd == "send":
    port, mode, user, sender, rcpt, subject = args[:6]
    if mode == "ssl":
        s = smtplib.SMTP_SSL("127.0.0.1", int(port), context=ctx, timeout=20)
    else:
        s = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
    s.ehlo("client.example.net")
    if mode == "starttls":
        s.starttls(context=ctx)
        s.ehlo("client.example.net")
    if user:
        s.login(user, pw)
    msg = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject}@client.example.net>\r\n\r\nHello.\r\n")
    code, text = s.mail(sender)
    assert code == 250, (code, text)
    code, text = s.rcpt(rcpt)
    assert code == 250, (code, text)
    code, text = s.data(msg.encode())
    assert code == 250, (code, text)
    out("queued", text.decode())
    s.quit()
elif cmd == "rcpt":
    port, sender, rcpt = args[:3]
    s = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
    s.ehlo("client.example.net")
    s.mail(sender)
    code, text = s.rcpt(rcpt)
    out("rcpt", f"{code} {text.decode()}")
    s.quit()
elif cmd == "badauth":
    port, user = args[:2]
    s = smtplib.SMTP("127.0.0.1", int(port), timeout=30)
    s.starttls(context=ctx)
    s.ehlo("client.example.net")
    try:
        s.login(user, "not the password")
        out("auth", "succeeded")
    except smtplib.SMTPAuthenticationError as e:
        out("auth", f"{e.smtp_code} {e.smtp_error.decode()}")
elif cmd == "imap":
    port, user, subject = args[:3]
    m = imaplib.IMAP4("127.0.0.1", int(port))
    m.starttls(ssl_context=ctx)
    m.login(user, pw)
    def look():
        m.select("INBOX", readonly=True)
        typ, data = m.search(None, "SUBJECT", f'"{subject}"')
        return data[0].split()
    found = until(look)
    assert found, f"no {subject} in INBOX"
    typ, data = m.fetch(found[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out("found", data[0][1].decode().strip())
    m.logout()
elif cmd == "pop3":
    port, user, subject = args[:3]
    def look():
        p = poplib.POP3("127.0.0.1", int(port), timeout=20)
        p.stls(context=ctx)
        p.user(user)
        p.pass_(pw)
        for n in range(1, len(p.list()[1]) + 1):
            lines = p.retr(n)[1]
            for l in lines:
                if l.decode() == f"Subject: {subject}":
                    p.quit()
                    return l.decode()
        p.quit()
    found = until(look)
    assert found, f"no {subject} over POP3"
    out("found", found)
"#;

/// Runs [`CLIENT`] (or another script) with `args`; the password is always the last
/// argument. Returns the `key<TAB>value` lines; panics with the logs unless it exits 0.
fn python(script: &str, args: &[&str], logs: &dyn Fn() -> String) -> Vec<(String, String)> {
    let out = Command::new(need("python3"))
        .arg("-c")
        .arg(script)
        .args(args)
        .arg(PASSWORD)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python {args:?} failed: {}\nstdout:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The value of the one `key` line.
fn value(lines: &[(String, String)], key: &str) -> String {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
}

/// Sends with [`CLIENT`]; returns the queue id from `250 … queued as ID`.
fn send(
    port: u16,
    mode: &str,
    login: &str,
    (from, to): (&str, &str),
    subject: &str,
    logs: &dyn Fn() -> String,
) -> String {
    let p = port.to_string();
    let lines = python(CLIENT, &["send", &p, mode, login, from, to, subject], logs);
    let reply = value(&lines, "queued");
    reply
        .rsplit_once("queued as ")
        .map(|(_, id)| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no queue id in {reply:?}"))
}

/// Reads the message with `subject` back over IMAP (STARTTLS) and POP3 (STLS).
fn read_back(imap: u16, pop3: u16, user: &str, subject: &str, logs: &dyn Fn() -> String) {
    let want = format!("Subject: {subject}");
    let got = python(CLIENT, &["imap", &imap.to_string(), user, subject], logs);
    assert_eq!(value(&got, "found"), want);
    let got = python(CLIENT, &["pop3", &pop3.to_string(), user, subject], logs);
    assert_eq!(value(&got, "found"), want);
}

/// "Your existing Dovecot" of mixes 3 and 4: passwd-file users (mix 1's file, mail as the test
/// user), IMAP and POP3 with STARTTLS on the loopback ports for 143 and 110, LMTP, base_dir
/// `/run/dovecot`. The guide's own lines are appended by the caller.
fn dovecot_base(local: &Local, users: &Path) -> String {
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

/// The packaged unit etc/systemd/pochta-`daemon`.service (ProtectSystem=strict: read-only but
/// for its ReadWritePaths=), plus the guide's drop-in `dropin`, lets the daemon create every
/// UNIX socket and write every spool or mail directory that `config` (the guide's text, system
/// paths) names.
fn assert_unit_allows(daemon: &str, config: &str, dropin: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let unit_path = root.join(format!("etc/systemd/pochta-{daemon}.service"));
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let writable: Vec<&str> = unit
        .lines()
        .chain(dropin.lines())
        .filter_map(|l| l.strip_prefix("ReadWritePaths="))
        .flat_map(str::split_whitespace)
        .collect();
    let doc: toml::Table = config.parse().unwrap();
    let mut needed = Vec::new();
    for l in doc
        .get("listener")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(a) = l.get("address").and_then(|v| v.as_str()) {
            if a.starts_with('/') {
                needed.push(Path::new(a).parent().unwrap().display().to_string());
            }
        }
    }
    for (table, key) in [
        ("queue", "dir"),
        ("delivery", "mail_location"),
        ("mail", "location"),
    ] {
        let v = doc
            .get(table)
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_str());
        if let Some(v) = v {
            let path = v.strip_prefix("maildir:").unwrap_or(v);
            let fixed = path.split('%').next().unwrap().trim_end_matches('/');
            needed.push(fixed.to_owned());
        }
    }
    for n in needed {
        let ok = writable
            .iter()
            .any(|w| n == *w || n.starts_with(&format!("{}/", w.trim_end_matches('/'))));
        assert!(
            ok,
            "pochta-{daemon} needs to write {n}, but {} (with the guide's drop-in) makes it \
             read-only: ReadWritePaths={writable:?}",
            unit_path.display()
        );
    }
}

/// Every "`[table] key`" the docs name is a key of some sample config in etc/ (where each key
/// is listed, commented out with its default when unset): the settings tables of upgrade.md and
/// the guides' prose cannot name keys that do not exist.
#[test]
fn docs_name_real_config_keys() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let samples: Vec<String> = std::fs::read_dir(root.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    // (table, key) as the samples have them: `key =` or `# key =` under `[table]`/`[[table]]`.
    let mut known = BTreeSet::new();
    for text in &samples {
        let mut table = String::new();
        for line in text.lines() {
            let l = line.trim_start_matches("# ").trim();
            if let Some(t) = l.strip_prefix('[').and_then(|t| t.split(']').next()) {
                if !l.contains('=') {
                    table = t.trim_matches(['[', ']']).to_owned();
                    continue;
                }
            }
            if let Some((k, _)) = l.split_once(" =") {
                if k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    known.insert((table.clone(), k.to_owned()));
                }
            }
        }
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for piece in text.split("`[").skip(1) {
            let Some((table, rest)) = piece.split_once("] ") else {
                continue;
            };
            let key: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let plain = |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            };
            if key.is_empty() || !plain(table) || table == "time" {
                continue;
            }
            assert!(
                known.contains(&(table.to_owned(), key.clone())),
                "{}: `[{table}] {key}` is not a key of any etc/*.toml",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} keys found in docs/");
}
