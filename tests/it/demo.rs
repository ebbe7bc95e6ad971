//! `pochta demo`, run the way a user runs it: the built `pochta` binary with whatever daemon
//! binaries sit next to it.
//!
//! Two kinds of test:
//! - Sandboxed: a temporary bin dir holds a copy of `pochta` and, where a test needs a daemon,
//!   a copy of the pochta-testd fixture (a real daemon on the shared runtime) under a suite
//!   daemon's name, run with a config the test writes into DIR/etc (a file the demo treats as the
//!   user's own and runs as it is). These check the missing-daemons message, the start-up failure
//!   path with the daemon's own error, supervision and stopping, whatever daemons exist.
//! - The suite: `SuiteDemo::start(&[daemons])` runs the real `pochta demo` from the target dir on
//!   the fixed ports of docs/architecture.md#the-demo (one at a time: a lock serialises them)
//!   and fails loudly when a daemon it needs is not built. End-to-end tests go there, e.g.
//!   once mta, mda-lmtp, authd, imapd and pop3d exist: "mail sent to alice on 2525 is readable
//!   over IMAP and POP3 within a
//!   second" = `let demo = SuiteDemo::start(&["authd", "mda-lmtp", "mta", "imapd", "pop3d"]);`,
//!   send with python smtplib to 127.0.0.1:2525, then log in as alice@pochta.test with
//!   `demo.password` on 127.0.0.1:1143 and 127.0.0.1:1110.

use crate::harness::*;
use nix::sys::signal::Signal;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every suite daemon, in the demo's start order.
const DAEMONS: [&str; 5] = ["authd", "mda-lmtp", "mta", "pop3d", "imapd"];

/// The built `pochta` binary.
fn pochta_bin() -> PathBuf {
    let bin = bin_dir().join("pochta");
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (./run-tests does)",
        bin.display()
    );
    bin
}

/// A bin dir holding a copy of `pochta` and the testd fixture as `pochta-<name>` for each of
/// `stand_ins` (copies, not links: pochta looks for daemons next to its resolved path).
fn sandbox_bin_dir(tmp: &TempDir, stand_ins: &[&str]) -> PathBuf {
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(pochta_bin(), bin.join("pochta")).unwrap();
    for name in stand_ins {
        std::fs::copy(testd(), bin.join(format!("pochta-{name}"))).unwrap();
    }
    bin
}

/// A testd config, in the demo's DIR/etc as the user's own file for `pochta-<name>`.
fn write_stand_in_config(demo_dir: &Path, name: &str, body: &str) -> PathBuf {
    let etc = demo_dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let path = etc.join(format!("{name}.toml"));
    std::fs::write(&path, as_test_user(body)).unwrap();
    path
}

/// A running `pochta demo` process; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct DemoRun {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl DemoRun {
    pub fn spawn(bin_dir: &Path, demo_dir: &Path, password: &str) -> Self {
        let mut child = Command::new(bin_dir.join("pochta"))
            .arg("demo")
            .arg("--dir")
            .arg(demo_dir)
            .arg("--password")
            .arg(password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |mut r: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(String::new()));
            let b = Arc::clone(&buf);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    b.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
            buf
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        DemoRun {
            child,
            stdout,
            stderr,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }

    /// Waits until the demo says it is running; panics with its output if it exits first.
    pub fn wait_running(&mut self) {
        let end = Instant::now() + Duration::from_secs(60);
        while !self.stdout().contains("pochta demo is running") {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads catch up with the last output.
                std::thread::sleep(Duration::from_millis(100));
                panic!("pochta demo exited ({status}):\n{}", self.output());
            }
            assert!(
                Instant::now() < end,
                "pochta demo not running after 60s:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the demo to exit; returns its status once its output is complete.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < end,
                "pochta demo still running after {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
    }
}

impl Drop for DemoRun {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end && self.child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The real suite's demo on the fixed ports. Only one runs at a time.
pub struct SuiteDemo {
    pub run: DemoRun,
    pub dir: TempDir,
    pub password: String,
    _lock: std::sync::MutexGuard<'static, ()>,
}

static SUITE_PORTS: Mutex<()> = Mutex::new(());

impl SuiteDemo {
    /// Starts `pochta demo` from the target dir, after checking that each of `needed` is built;
    /// returns once every built daemon is ready.
    pub fn start(needed: &[&str]) -> Self {
        let lock = SUITE_PORTS.lock().unwrap_or_else(|e| e.into_inner());
        for name in needed {
            let bin = bin_dir().join(format!("pochta-{name}"));
            assert!(
                bin.exists(),
                "this test needs {}: run `cargo build --workspace --bins` first",
                bin.display()
            );
        }
        let dir = TempDir::new("suite-demo");
        let password = "demo-pass-1".to_owned();
        let mut run = DemoRun::spawn(&bin_dir(), &dir.join("demo"), &password);
        run.wait_running();
        SuiteDemo {
            run,
            dir,
            password,
            _lock: lock,
        }
    }
}

/// The demo's users file holds alice and bob with hashes of `password` that Dovecot accepts.
fn check_users_file(path: &Path, password: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, user) in lines.iter().zip(["alice", "bob"]) {
        let fields: Vec<&str> = line.split(':').collect();
        assert_eq!(fields.len(), 8, "not a passwd-file line: {line}");
        assert_eq!(fields[0], format!("{user}@pochta.test"));
        assert!(fields[1].starts_with("{SHA512-CRYPT}$6$"), "{line}");
        // -O: no dovecot.conf (without it doveadm reads /etc/dovecot's, or fails without one).
        let out = Command::new("doveadm")
            .args(["-O", "pw", "-t", fields[1], "-p", password])
            .output()
            .unwrap_or_else(|e| panic!("doveadm (Debian package dovecot-core) is needed: {e}"));
        assert!(
            out.status.success(),
            "doveadm pw -t rejects {line}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let wrong = Command::new("doveadm")
            .args(["-O", "pw", "-t", fields[1], "-p", "wrong"])
            .output()
            .unwrap();
        assert!(!wrong.status.success(), "doveadm accepts a wrong password");
    }
}

/// True when something accepts TCP connections on the port.
fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn without_daemons_it_names_them_and_fails() {
    let tmp = TempDir::new("demo-none");
    let bin = sandbox_bin_dir(&tmp, &[]);
    let mut demo = DemoRun::spawn(&bin, &tmp.join("demo"), "pw");
    let status = demo.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(69), "{}", demo.output());
    let out = demo.stdout();
    for name in DAEMONS {
        let want = format!(
            "not starting pochta-{name}: not built (no {})",
            bin.join(format!("pochta-{name}")).display()
        );
        assert!(out.contains(&want), "{want:?} missing:\n{}", demo.output());
    }
    assert!(
        demo.stderr()
            .contains("pochta demo: no daemon can start: none of pochta-authd, pochta-mda-lmtp"),
        "{}",
        demo.output()
    );
}

/// The target dir's `pochta demo` starts every daemon that is built, each with its demo config,
/// or, while none is built, says so and fails.
#[test]
fn suite_demo_starts_every_built_daemon() {
    let built: Vec<&str> = DAEMONS
        .into_iter()
        .filter(|n| bin_dir().join(format!("pochta-{n}")).exists())
        .collect();
    if built.is_empty() {
        let _lock = SUITE_PORTS.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = TempDir::new("demo-suite-none");
        let mut demo = DemoRun::spawn(&bin_dir(), &tmp.join("demo"), "pw");
        assert_eq!(
            demo.wait_exit(DEADLINE).code(),
            Some(69),
            "{}",
            demo.output()
        );
        assert!(
            demo.stderr().contains("no daemon can start"),
            "{}",
            demo.output()
        );
        return;
    }
    let demo = SuiteDemo::start(&built);
    let out = demo.run.stdout();
    assert!(
        out.contains(&format!("password (given): {}", demo.password)),
        "{}",
        demo.run.output()
    );
    assert!(demo.dir.join("demo/etc/users").exists());
    for name in &built {
        assert!(
            out.contains(&format!("  pochta-{name} ")),
            "pochta-{name} is built but the demo did not start it (does demo_configs.rs have \
             its config?):\n{}",
            demo.run.output()
        );
    }
}

fn stops_on(sig: Signal) {
    let tmp = TempDir::new("demo-run");
    let bin = sandbox_bin_dir(&tmp, &["imapd"]);
    let dir = tmp.join("demo");
    let port = free_port();
    let config = write_stand_in_config(
        &dir,
        "imapd",
        &format!(
            "[server]\ndrain_timeout = \"1s\"\n\n\
             [[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{port}\"\n"
        ),
    );
    let config_text = std::fs::read_to_string(&config).unwrap();
    let mut demo = DemoRun::spawn(&bin, &dir, "pw");
    demo.wait_running();
    let out = demo.stdout();
    for want in [
        format!("  pochta-imapd     echo         127.0.0.1:{port}"),
        "not started: pochta-authd, pochta-mda-lmtp, pochta-mta, pochta-pop3d".to_owned(),
        "users: alice@pochta.test and bob@pochta.test, password (given): pw".to_owned(),
    ] {
        assert!(out.contains(&want), "{want:?} missing:\n{}", demo.output());
    }
    // The user's own config ran as it was.
    assert_eq!(std::fs::read_to_string(&config).unwrap(), config_text);
    check_users_file(&dir.join("etc/users"), "pw");
    assert!(dir.join("tls/cert.pem").exists() && dir.join("tls/key.pem").exists());
    if nix::unistd::Uid::effective().is_root() {
        // The daemons drop to nobody: what they write or re-read is theirs.
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        for p in [
            "run",
            "mail",
            "mail/pochta.test",
            "spool",
            "spool/imapd",
            "tls/key.pem",
            "etc/users",
        ] {
            let m = std::fs::metadata(dir.join(p)).unwrap();
            assert_eq!(m.uid(), nobody.uid.as_raw(), "{p} not owned by nobody");
        }
        let users_meta = std::fs::metadata(dir.join("etc/users")).unwrap();
        assert_eq!(users_meta.permissions().mode() & 0o777, 0o640);
    }

    // A second demo on the same DIR would take over the first one's sockets: refused.
    let mut second = DemoRun::spawn(&bin, &dir, "pw");
    assert_eq!(
        second.wait_exit(DEADLINE).code(),
        Some(75),
        "{}",
        second.output()
    );
    let want = format!("another pochta demo is running in {}", dir.display());
    assert!(second.stderr().contains(&want), "{}", second.output());

    let mut c = connect(port);
    assert_eq!(c.line(), "+OK testd ready\r\n");
    let t0 = Instant::now();
    demo.signal(sig);
    // The daemon runs in its own process group: only the demo can have told it to stop.
    assert_eq!(c.line(), "-ERR server shutting down\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(900));
    let status = demo.wait_exit(DEADLINE);
    assert!(status.success(), "{status}:\n{}", demo.output());
    assert!(demo.stdout().contains("stopped."), "{}", demo.output());
    assert!(
        !listening(port),
        "the daemon still listens after the demo stopped"
    );
}

#[test]
fn runs_daemons_and_stops_them_on_sigterm() {
    stops_on(Signal::SIGTERM);
}

#[test]
fn runs_daemons_and_stops_them_on_sigint() {
    stops_on(Signal::SIGINT);
}

/// The terminal went away: the daemons (in their own process group) must not outlive the demo.
#[test]
fn runs_daemons_and_stops_them_on_sighup() {
    stops_on(Signal::SIGHUP);
}

/// A daemon that cannot start: the demo exits non-zero with that daemon's own error and stops
/// the daemons it had already started.
#[test]
fn start_failure_reports_the_daemons_error_and_stops_the_rest() {
    let tmp = TempDir::new("demo-fail");
    let bin = sandbox_bin_dir(&tmp, &["authd", "imapd"]);
    let dir = tmp.join("demo");
    let good = free_port();
    write_stand_in_config(
        &dir,
        "authd",
        &format!("[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{good}\"\n"),
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    write_stand_in_config(
        &dir,
        "imapd",
        &format!("[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{taken_port}\"\n"),
    );
    let mut demo = DemoRun::spawn(&bin, &dir, "pw");
    let status = demo.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(70), "{}", demo.output());
    let err = demo.stderr();
    for want in [
        "pochta demo: pochta-imapd failed to start (exit status: 71)".to_owned(),
        format!("cannot listen on 127.0.0.1:{taken_port}: Address already in use"),
    ] {
        assert!(err.contains(&want), "{want:?} missing:\n{}", demo.output());
    }
    assert!(
        !demo.stdout().contains("pochta demo is running"),
        "{}",
        demo.output()
    );
    // authd had started (imapd starts after it) and was stopped again.
    let log = std::fs::read_to_string(dir.join("log/authd.log")).unwrap();
    assert!(log.contains("stopped"), "authd log:\n{log}");
    assert!(
        !listening(good),
        "pochta-authd still listens after the failed start"
    );
}

/// A config the daemon rejects: the demo relays the daemon's `file:line:col` error.
#[test]
fn rejected_config_reports_the_daemons_error() {
    let tmp = TempDir::new("demo-badcfg");
    let bin = sandbox_bin_dir(&tmp, &["pop3d"]);
    let dir = tmp.join("demo");
    let config = write_stand_in_config(
        &dir,
        "pop3d",
        &format!(
            "[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{}\"\nmax_conections = 3\n",
            free_port()
        ),
    );
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("max_conections"))
        .unwrap()
        + 1;
    let mut demo = DemoRun::spawn(&bin, &dir, "pw");
    let status = demo.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(78), "{}", demo.output());
    let want = format!(
        "{}:{line}:1: unknown field `max_conections`",
        config.display()
    );
    assert!(
        demo.stderr().contains("pochta-pop3d rejects your config") && demo.stderr().contains(&want),
        "{want:?} missing:\n{}",
        demo.output()
    );
}

/// docs/architecture.md#the-demo: mail sent to alice@pochta.test on 2525 is readable by alice
/// over IMAP and POP3 within a second — the whole suite through `pochta demo`, real python
/// clients.
#[test]
fn mail_on_2525_is_readable_over_imap_and_pop3_within_a_second() {
    let demo = SuiteDemo::start(&["authd", "mda-lmtp", "mta", "imapd", "pop3d"]);
    let subject = format!("demo e2e {}", std::process::id());
    let script = r#"
import imaplib, poplib, smtplib, ssl, sys, time
subject, pw = sys.argv[1], sys.argv[2]
msg = ("From: bob@pochta.test\r\nTo: alice@pochta.test\r\nSubject: %s\r\n\r\nhello alice\r\n"
       % subject)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", 2525, timeout=20) as s:
    s.ehlo("client.test")
    refused = s.sendmail("bob@example.org", ["alice@pochta.test"], msg)
    assert not refused, refused
t0 = time.monotonic()

def over_imap():
    m = imaplib.IMAP4("127.0.0.1", 1143, timeout=20)
    m.starttls(ssl_context=ctx)
    m.login("alice@pochta.test", pw)
    m.select("INBOX", readonly=True)
    typ, data = m.search(None, "SUBJECT", '"%s"' % subject)
    found = data[0].split()
    body = m.fetch(found[-1], "(BODY.PEEK[TEXT])")[1][0][1] if found else None
    m.logout()
    return body

def over_pop3():
    p = poplib.POP3("127.0.0.1", 1110, timeout=20)
    p.stls(context=ctx)
    p.user("alice@pochta.test")
    p.pass_(pw)
    count = p.stat()[0]
    found = None
    for i in range(1, count + 1):
        lines = p.retr(i)[1]
        if ("Subject: %s" % subject).encode() in lines:
            found = lines
    p.quit()
    return found

seen_imap = seen_pop3 = None
while time.monotonic() - t0 < 1.0 and not (seen_imap and seen_pop3):
    seen_imap = seen_imap or over_imap()
    seen_pop3 = seen_pop3 or over_pop3()
    if not (seen_imap and seen_pop3):
        time.sleep(0.05)
took = time.monotonic() - t0
assert seen_imap == b"hello alice\r\n", ("IMAP", seen_imap, took)
assert seen_pop3 is not None and seen_pop3[-1] == b"hello alice", ("POP3", seen_pop3, took)
print("readable over IMAP and POP3 %.3f s after the 250" % took)
"#;
    let out = Command::new("python3")
        .args(["-c", script, &subject, &demo.password])
        .output()
        .unwrap_or_else(|e| panic!("python3 (Debian package python3) is needed: {e}"));
    assert!(
        out.status.success(),
        "{}{}\ndemo output:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        demo.run.stdout(),
        demo.run.stderr()
    );
}

/// The demo's aliases: mail to postmaster@pochta.test and cron's `sendmail root` land in
/// alice's INBOX.
#[test]
fn postmaster_and_root_reach_alice_in_the_demo() {
    let demo = SuiteDemo::start(&["authd", "mda-lmtp", "mta"]);
    let base = demo.dir.join("demo");
    let script = r#"
import smtplib
with smtplib.SMTP("127.0.0.1", 2525, timeout=20) as s:
    s.ehlo("client.test")
    msg = "Subject: demo-postmaster\r\n\r\nfor the postmaster\r\n"
    refused = s.sendmail("bob@example.org", ["postmaster@pochta.test"], msg)
    assert not refused, refused
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}\n{}", demo.run.stdout());
    let mut cron = Command::new(bin_dir().join("sendmail"))
        .arg("-C")
        .arg(base.join("etc/mta.toml"))
        .arg("root")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        cron.stdin.as_mut().unwrap(),
        b"Subject: demo-cron\n\nfrom cron\n",
    )
    .unwrap();
    assert!(cron.wait().unwrap().success());
    let inbox = base.join("mail/pochta.test/alice/Maildir");
    let has = |needle: &str| {
        ["new", "cur"].iter().any(|sub| {
            std::fs::read_dir(inbox.join(sub))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    std::fs::read(e.path())
                        .is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
                })
        })
    };
    let end = std::time::Instant::now() + DEADLINE;
    while !(has("demo-postmaster") && has("demo-cron")) {
        assert!(
            std::time::Instant::now() < end,
            "postmaster/root mail not in alice's INBOX\n{}\n{}",
            demo.run.stdout(),
            std::fs::read_to_string(base.join("log/mta.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}
