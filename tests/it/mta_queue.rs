//! pochta-mta's queue and its tools against real peers: a private Dovecot as the LMTP server,
//! `sendmail`/`mailq` and `pochta queue` as built, smtp-source for load, SIGKILL for crashes.
//!
//! - deferred mail (LMTP endpoint down) shows in mailq in Postfix's layout with the reason;
//!   hold/delete/release; `pochta queue flush` delivers it once the endpoint is up;
//! - `sendmail -t < message` and `echo body | sendmail user@…` deliver into Dovecot LMTP;
//! - durability: 5,000 messages from `smtp-source -s 20` plus a client that records which
//!   messages got 250, while the mta is SIGKILLed at random moments and restarted.

use crate::config::daemon_bin;
use crate::harness::*;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DOMAIN: &str = "pochta.test";

fn test_user() -> Option<nix::unistd::User> {
    if nix::unistd::Uid::effective().is_root() {
        nix::unistd::User::from_name("nobody").unwrap()
    } else {
        None
    }
}

fn test_uid() -> u32 {
    test_user()
        .map(|u| u.uid.as_raw())
        .unwrap_or_else(|| nix::unistd::Uid::effective().as_raw())
}

fn chown_test_user(p: &Path) {
    if let Some(u) = test_user() {
        nix::unistd::chown(p, Some(u.uid), Some(u.gid)).unwrap();
    }
}

fn need(tool: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("{tool} is not installed: install postfix and dovecot-core (run-tests does)");
}

fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

/// A private Dovecot serving LMTP (and the userdb it needs) from a passwd-file.
struct Dovecot {
    base: PathBuf,
}

impl Dovecot {
    fn lmtp_socket(dir: &TempDir) -> PathBuf {
        dir.join("dovecot/run/lmtp")
    }

    fn userdb_socket(dir: &TempDir) -> PathBuf {
        dir.join("dovecot/run/auth-userdb")
    }

    fn start(dir: &TempDir, users: &[&str]) -> Dovecot {
        let base = dir.join("dovecot");
        std::fs::create_dir_all(base.join("state")).unwrap();
        let uid = test_uid();
        let mut passwd = String::new();
        for u in users {
            let home = dir.join(&format!("home/{u}"));
            std::fs::create_dir_all(&home).unwrap();
            chown_test_user(&home);
            passwd.push_str(&format!(
                "{u}@{DOMAIN}:{{PLAIN}}pw:{uid}:{uid}::{}::\n",
                home.display()
            ));
        }
        let users_file = base.join("users");
        std::fs::write(&users_file, passwd).unwrap();
        let conf = base.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {run}\nstate_dir = {state}\ninstance_name = pochta-it-mq-{pid}-{n}\n\
                 protocols = lmtp\nlisten = 127.0.0.1\nlog_path = {log}\nssl = no\n\
                 first_valid_uid = {uid}\nlast_valid_uid = {uid}\n\
                 mail_location = maildir:~/Maildir\npostmaster_address = postmaster@{DOMAIN}\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
                 service auth {{\n  unix_listener auth-userdb {{\n    mode = 0666\n  }}\n}}\n\
                 service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n",
                run = base.join("run").display(),
                state = base.join("state").display(),
                pid = std::process::id(),
                n = free_port(),
                log = base.join("dovecot.log").display(),
                users = users_file.display(),
            ),
        )
        .unwrap();
        let errors = base.join("start.err");
        // The master daemonizes and keeps stdio open: no pipes.
        let status = Command::new(need("dovecot"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors).unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot failed to start: {}",
            std::fs::read_to_string(&errors).unwrap_or_default()
        );
        let d = Dovecot { base };
        wait_until(DEADLINE, "dovecot's sockets", || {
            d.base.join("run/lmtp").exists() && d.base.join("run/auth-userdb").exists()
        });
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.base.join("run/master.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let pid = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let end = Instant::now() + Duration::from_secs(10);
                while Instant::now() < end && nix::sys::signal::kill(pid, None).is_ok() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// Paths of one mta setup; every run of the daemon gets its own log directory.
struct MtaSetup {
    config: PathBuf,
    spool: PathBuf,
    local: PathBuf,
    smtp: u16,
}

impl MtaSetup {
    /// `delivery`: extra lines for `[delivery]` (its `lmtp` is set here).
    fn new(dir: &TempDir, lmtp: &Path, delivery: &str) -> MtaSetup {
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        chown_test_user(&spool);
        let local = dir.join("mta-submit");
        let smtp = free_port();
        let cfg = format!(
            "[server]\nlog_level = \"info\"\n\n\
             [[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:{smtp}\"\n\
             max_connections_per_ip = 1000\n\n\
             [[listener]]\nservice = \"local\"\naddress = \"{local}\"\nmode = \"0666\"\n\n\
             [smtpd]\nhostname = \"mx.{DOMAIN}\"\nlocal_domains = [\"{DOMAIN}\"]\n\
             trusted_networks = [\"127.0.0.0/8\"]\n\n\
             [auth]\nuserdb_socket = \"{userdb}\"\n\n\
             [queue]\ndir = \"{spool}\"\n\n\
             [delivery]\nlmtp = \"unix:{lmtp}\"\n{delivery}\n",
            local = local.display(),
            userdb = Dovecot::userdb_socket(dir).display(),
            spool = spool.display(),
            lmtp = lmtp.display(),
        );
        let config = dir.join("mta.toml");
        std::fs::write(&config, as_test_user(&cfg)).unwrap();
        MtaSetup {
            config,
            spool,
            local,
            smtp,
        }
    }

    fn start(&self) -> MtaRun {
        let dir = TempDir::new("mq-run");
        let mut notify = Notify::new(&dir);
        let mut cmd = Command::new(daemon_bin("mta"));
        cmd.arg("-c").arg(&self.config);
        let mut daemon = Daemon::spawn(cmd, &dir, &notify);
        notify.wait_for("READY=1", &mut daemon);
        MtaRun { daemon, _dir: dir }
    }

    fn sendmail(&self, args: &[&str], stdin: &[u8]) -> (i32, String) {
        self.tool("sendmail", args, stdin)
    }

    fn mailq(&self) -> String {
        let (code, out) = self.sendmail(&["-bp"], b"");
        assert_eq!(code, 0, "sendmail -bp failed: {out}");
        out
    }

    fn pochta_queue(&self, args: &[&str]) -> (i32, String) {
        let mut a = vec!["queue", "--spool", self.spool.to_str().unwrap()];
        a.extend_from_slice(args);
        self.tool("pochta", &a, b"")
    }

    /// Runs a built tool; (exit code, stdout + stderr).
    fn tool(&self, name: &str, args: &[&str], stdin: &[u8]) -> (i32, String) {
        let bin = bin_dir().join(name);
        assert!(
            bin.exists(),
            "{} is not built (cargo build -p pochta-mta -p pochta)",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args(args)
            .env("POCHTA_SUBMIT_SOCKET", &self.local)
            .env("POCHTA_SPOOL", &self.spool)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }
}

struct MtaRun {
    daemon: Daemon,
    _dir: TempDir,
}

impl MtaRun {
    fn log(&self) -> String {
        self.daemon.log()
    }

    fn wait_log(&self, needle: &str) -> String {
        let mut log = String::new();
        let ok = (0..800).any(|_| {
            log = self.log();
            let found = log.contains(needle);
            if !found {
                std::thread::sleep(Duration::from_millis(25));
            }
            found
        });
        assert!(ok, "{needle:?} not logged:\n{log}");
        log
    }
}

/// Texts of the messages in a Maildir (new/ and cur/).
fn maildir_messages(home: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(home.join("Maildir").join(sub)) {
            for e in rd.flatten() {
                if let Ok(b) = std::fs::read(e.path()) {
                    out.push(String::from_utf8_lossy(&b).into_owned());
                }
            }
        }
    }
    out
}

fn queue_ids(mailq: &str) -> Vec<String> {
    mailq
        .lines()
        .skip(1)
        .filter(|l| l.starts_with(|c: char| c.is_ascii_hexdigit()))
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches(['*', '!'])
                .to_owned()
        })
        .collect()
}

/// Checks every line of a non-empty listing against Postfix's layout.
fn assert_postfix_layout(q: &str) {
    let lines: Vec<&str> = q.lines().collect();
    assert_eq!(
        lines[0],
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("-- ") && last.contains(" Kbytes in ") && last.ends_with('.'),
        "footer: {last:?}"
    );
    for l in &lines[1..lines.len() - 1] {
        if l.is_empty() {
            continue;
        }
        if let Some(addr) = l.strip_prefix(&" ".repeat(41)) {
            assert!(
                addr.contains('@') && !addr.starts_with(' '),
                "recipient line {l:?}"
            );
        } else if l.trim_start().starts_with('(') {
            assert!(l.ends_with(')'), "reason line {l:?}");
            assert!(
                l.len() == 78 || !l.starts_with(' '),
                "reason not right-aligned: {l:?}"
            );
        } else {
            // `%-11s %7ld %20.20s %s`: id+status, size, asctime's first 20 chars, sender.
            let (head, sender) = l.split_at(41);
            assert!(
                !sender.starts_with(' ') && !sender.is_empty(),
                "sender line {l:?}"
            );
            let id = head[..11].trim_end();
            assert!(id.len() >= 10, "id {id:?}");
            assert!(
                head[12..19].trim_start().parse::<u64>().is_ok(),
                "size in {l:?}"
            );
            let when = &head[20..40];
            assert!(
                when.as_bytes()[3] == b' ' && when.as_bytes()[7] == b' ' && when.ends_with(' '),
                "arrival time in {l:?}"
            );
        }
    }
}

/// LMTP down: mail waits in the queue, shown by mailq and `pochta queue list` with the reason;
/// hold keeps a message back, delete removes one; once Dovecot LMTP is up, `pochta queue
/// flush` delivers (the 1 h backoff rules out a regular retry) and release delivers the held
/// one. `echo body | sendmail user@…` and `sendmail -t` (Bcc stripped) are the submitters.
#[test]
fn deferred_mail_mailq_hold_delete_flush_release() {
    let dir = TempDir::new("mq-defer");
    // Dovecot answers the mta's userdb lookups from the start; its LMTP socket is reached
    // through a symlink that appears only when the "endpoint comes back".
    let dovecot = Dovecot::start(&dir, &["alice", "bob"]);
    let lmtp = dir.join("lmtp-link");
    let setup = MtaSetup::new(
        &dir,
        &lmtp,
        "minimal_backoff = \"1h\"\nmaximal_backoff = \"2h\"",
    );
    let mta = setup.start();

    let (code, out) = setup.sendmail(&[&format!("alice@{DOMAIN}")], b"first body\n");
    assert_eq!(code, 0, "{out}");
    let msg = format!(
        "From: Carol <carol@example.org>\nTo: Bob <bob@{DOMAIN}>\nBcc: alice@{DOMAIN}\n\
         Subject: via -t\n\nsecond body\n.\nafter the dot (-i)\n"
    );
    let (code, out) = setup.sendmail(&["-t", "-i", "-f", "carol@example.org"], msg.as_bytes());
    assert_eq!(code, 0, "{out}");
    let (code, out) = setup.sendmail(
        &["-F", "Test Sender", "--", &format!("bob@{DOMAIN}")],
        b"Subject: held\n\nthird body\n",
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = setup.sendmail(
        &[&format!("bob@{DOMAIN}")],
        b"Subject: deleted\n\nfourth body\n",
    );
    assert_eq!(code, 0, "{out}");

    // Every message deferred with Postfix's reason text.
    let log = mta.wait_log("status=deferred (connect to local[");
    let line = log.lines().find(|l| l.contains("status=deferred")).unwrap();
    assert!(line.contains(", relay=none, "), "{line}");
    let mut q = String::new();
    wait_until(DEADLINE, "4 deferred messages in mailq", || {
        q = setup.mailq();
        q.matches("No such file or directory)").count() == 4
    });
    assert_postfix_layout(&q);
    assert!(q.ends_with(" Kbytes in 4 Requests.\n"), "{q}");
    assert!(q.contains(&format!("{:41}alice@{DOMAIN}\n", "")), "{q}");
    assert!(q.contains("carol@example.org\n"), "{q}");
    let (code, listed) = setup.pochta_queue(&["list"]);
    assert_eq!(code, 0);
    assert_eq!(listed, q, "pochta queue list and mailq differ");
    let ids = queue_ids(&q);
    assert_eq!(ids.len(), 4, "{q}");
    // The mailq name of the binary lists too.
    let mailq_link = dir.join("mailq");
    std::os::unix::fs::symlink(bin_dir().join("sendmail"), &mailq_link).unwrap();
    let out = Command::new(&mailq_link)
        .env("POCHTA_SPOOL", &setup.spool)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), q);
    // `pochta queue list | head` and `mailq | head`: a reader gone before the listing is
    // written is no error and no panic.
    for (bin, args) in [
        (
            "pochta",
            vec!["queue", "--spool", setup.spool.to_str().unwrap(), "list"],
        ),
        ("sendmail", vec!["-bp"]),
    ] {
        let (rd, wr) = nix::unistd::pipe().unwrap();
        drop(rd);
        let out = Command::new(bin_dir().join(bin))
            .args(&args)
            .env("POCHTA_SPOOL", &setup.spool)
            .stdout(Stdio::from(wr))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("panicked"),
            "{bin}: {out:?}"
        );
    }

    // Queue ids are in arrival order: [alice, -t, held, deleted].
    let (held, deleted) = (&ids[2], &ids[3]);
    assert_eq!(setup.pochta_queue(&["hold", held]).0, 0);
    assert_eq!(setup.pochta_queue(&["delete", deleted]).0, 0);
    let q = setup.mailq();
    assert!(q.contains(&format!("{held}!")), "{q}");
    assert!(!q.contains(deleted.as_str()), "{q}");
    assert_ne!(setup.pochta_queue(&["delete", "0000BAD"]).0, 0);

    // A restart in the middle of the retry schedule: the next attempt (1 h away) and the
    // reasons are persisted, nothing is retried early, nothing is lost.
    let mut mta = mta;
    mta.daemon.signal(nix::sys::signal::Signal::SIGTERM);
    mta.daemon.wait_exit(DEADLINE);
    let mta = setup.start();
    mta.wait_log("queue runner started");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !mta.log().contains("status="),
        "retried before its time:\n{}",
        mta.log()
    );
    assert_eq!(setup.mailq(), q, "queue changed across the restart");

    std::os::unix::fs::symlink(Dovecot::lmtp_socket(&dir), &lmtp).unwrap();
    let (code, out) = setup.pochta_queue(&["flush"]);
    assert_eq!(code, 0, "{out}");
    let alice = dir.join("home/alice");
    let bob = dir.join("home/bob");
    wait_until(DEADLINE, "flushed mail delivered", || {
        maildir_messages(&alice).len() == 2 && maildir_messages(&bob).len() == 1
    });
    let to_bob = maildir_messages(&bob).pop().unwrap();
    assert!(to_bob.contains("second body\n.\nafter the dot"), "{to_bob}");
    assert!(!to_bob.contains("Bcc:"), "Bcc not stripped: {to_bob}");
    let to_alice = maildir_messages(&alice).join("\n");
    assert!(to_alice.contains("first body"), "{to_alice}");
    assert!(
        to_alice.contains("From: root@") || to_alice.contains("From: "),
        "{to_alice}"
    );
    let log = mta.wait_log(": removed");
    assert!(log.contains("status=sent (250 2.0.0"), "{log}");
    assert!(log.contains("relay=local["), "{log}");
    assert!(log.contains(", dsn=2.0.0, "), "{log}");

    // Only the held message is left; release delivers it.
    wait_until(DEADLINE, "only the held message left", || {
        queue_ids(&setup.mailq()) == [held.clone()]
    });
    assert_eq!(setup.pochta_queue(&["release", held]).0, 0);
    wait_until(DEADLINE, "released mail delivered", || {
        maildir_messages(&bob).len() == 2
    });
    let held_text = maildir_messages(&bob).join("\n");
    assert!(
        held_text.contains("From: \"Test Sender\" <") || held_text.contains("From: Test Sender <"),
        "{held_text}"
    );
    wait_until(DEADLINE, "empty queue", || {
        setup.mailq() == "Mail queue is empty\n"
    });
    assert!(!maildir_messages(&bob).join("").contains("fourth body"));
    drop(dovecot);
}

/// Per-recipient routing and results: of one message (relayed from the trusted local socket),
/// the local recipient is delivered once over LMTP, the one in another domain is never handed
/// to LMTP: it goes to outbound delivery, whose DNS server here does not answer, so it stays
/// deferred (relay=none) and mailq reports it; a flush does not deliver the local one twice.
/// (LMTP 5xx → bounced-pending is covered by the queue's unit tests.) `sendmail -bs` speaks
/// SMTP through the local socket.
#[test]
fn per_recipient_results_and_sendmail_bs() {
    let dir = TempDir::new("mq-rcpt");
    let dovecot = Dovecot::start(&dir, &["alice"]);
    // A UDP port nobody listens on: every MX lookup fails temporarily.
    let dns = format!(
        "\n[outbound]\nnameservers = [\"127.0.0.1:{}\"]\ndns_timeout = \"1s\"\n",
        free_port()
    );
    let setup = MtaSetup::new(&dir, &Dovecot::lmtp_socket(&dir), &dns);
    let mta = setup.start();
    let script = format!(
        "EHLO client.test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@{DOMAIN}>\r\n\
         RCPT TO:<nobody-here@example.net>\r\nDATA\r\nSubject: two rcpts\r\n\r\nhello\r\n.\r\nQUIT\r\n"
    );
    let (code, out) = setup.sendmail(&["-bs"], script.as_bytes());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued as "), "{out}");
    let log = mta.wait_log("status=deferred");
    let deferred = log.lines().find(|l| l.contains("status=deferred")).unwrap();
    assert!(
        deferred.contains("to=<nobody-here@example.net>, relay=none, "),
        "{deferred}"
    );
    assert!(deferred.contains(", dsn=4."), "{deferred}");
    let reason = &deferred[deferred.find("status=deferred (").unwrap() + 17..];
    assert!(reason.contains("type=MX"), "{deferred}");
    let alice = dir.join("home/alice");
    wait_until(DEADLINE, "delivery to alice", || {
        maildir_messages(&alice).len() == 1
    });
    // Postfix's shape: `<id>: to=<…>, relay=…, delay=…, delays=a/b/c/d, dsn=…, status=sent (…)`.
    let log = mta.wait_log("status=sent");
    let sent = log.lines().find(|l| l.contains("status=sent")).unwrap();
    let tail = &sent[sent.find(": to=<").unwrap()..];
    assert!(
        tail.starts_with(&format!(": to=<alice@{DOMAIN}>, relay=local[")),
        "{sent}"
    );
    let delays = tail
        .split(", delays=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert_eq!(delays.split('/').count(), 4, "{sent}");
    assert!(
        delays.split('/').all(|d| d.parse::<f64>().is_ok()),
        "{sent}"
    );
    assert!(tail.contains(", delay="), "{sent}");
    assert!(
        tail.contains(", dsn=2.0.0, status=sent (250 2.0.0 <alice@"),
        "{sent}"
    );
    let id = sent[..sent.find(": to=<").unwrap()]
        .rsplit(' ')
        .next()
        .unwrap();
    assert!(
        log.contains(&format!("{id}: from=<s@example.org>, size=")),
        "{log}"
    );
    assert!(log.contains(", nrcpt=2 (queue active)"), "{log}");
    let q = setup.mailq();
    assert_postfix_layout(&q);
    assert!(q.contains("type=MX"), "deferral reason not in mailq: {q}");
    assert!(q.contains("nobody-here@example.net"), "{q}");
    assert!(
        !q.contains(&format!("alice@{DOMAIN}")),
        "delivered recipient listed: {q}"
    );
    assert_eq!(setup.pochta_queue(&["flush"]).0, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(maildir_messages(&alice).len(), 1, "delivered twice");
    assert!(!dovecot.log().contains("Fatal"), "{}", dovecot.log());
}

/// sendmail's exit codes: no recipients → 64; the mta down → 75 (try again later); unknown
/// option → 64; -q with nobody listening → 75.
#[test]
fn sendmail_exit_codes() {
    let dir = TempDir::new("mq-exit");
    let setup = MtaSetup::new(&dir, &dir.join("lmtp"), "");
    assert_eq!(setup.sendmail(&[], b"x\n").0, 64);
    assert_eq!(setup.sendmail(&["-Z"], b"").0, 64);
    assert_eq!(setup.sendmail(&[&format!("a@{DOMAIN}")], b"x\n").0, 75);
    assert_eq!(setup.sendmail(&["-q"], b"").0, 75);
    assert_eq!(setup.pochta_queue(&["flush"]).0, 75);
}

/// What one tracked SMTP client saw for each message tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// 250 after the final dot: must be delivered.
    Acked,
    /// Final dot sent, no reply (the mta died): may or may not be delivered.
    Unknown,
    /// The connection died before the final dot: must not be delivered.
    Unsent,
}

/// One SMTP session sending `n` messages; records each tag's fate; stops at the first error.
fn tracked_session(
    port: u16,
    tags: &mut dyn Iterator<Item = usize>,
    fates: &Mutex<HashMap<usize, Fate>>,
) {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut reply = || -> Option<String> {
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).ok()? < 4 {
                return None;
            }
            if l.as_bytes()[3] != b'-' {
                return Some(l);
            }
        }
    };
    if !reply().is_some_and(|g| g.starts_with("220")) {
        return;
    }
    if w.write_all(b"EHLO tracker.test\r\n").is_err()
        || !reply().is_some_and(|r| r.starts_with("250"))
    {
        return;
    }
    for tag in tags.take(20) {
        fates.lock().unwrap().insert(tag, Fate::Unsent);
        let head =
            format!("MAIL FROM:<tracker@example.org>\r\nRCPT TO:<alice@{DOMAIN}>\r\nDATA\r\n");
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        let ok = (0..3).all(|_| reply().is_some_and(|r| r.starts_with('2') || r.starts_with('3')));
        if !ok {
            return;
        }
        let body = format!("Subject: tracked\r\nX-Tag: T{tag}\r\n\r\ntracked {tag}\r\n.\r\n");
        if w.write_all(body.as_bytes()).is_err() {
            return;
        }
        fates.lock().unwrap().insert(tag, Fate::Unknown);
        match reply() {
            Some(r) if r.starts_with("250") => {
                fates.lock().unwrap().insert(tag, Fate::Acked);
            }
            _ => return,
        }
    }
    let _ = w.write_all(b"QUIT\r\n");
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The queue id in the mta's Received header (`by mx.pochta.test (pochta) … id <queueid>;`).
fn received_queue_id(msg: &str) -> Option<String> {
    msg.split("Received:").skip(1).find_map(|field| {
        let field = &field[..field.find(';')?];
        if !field.contains(&format!("by mx.{DOMAIN} (pochta")) {
            return None;
        }
        let at = field.rfind("id ")?;
        Some(field[at + 3..].split_whitespace().next()?.to_owned())
    })
}

/// 5,000 messages from `smtp-source -s 20` and a tracked client while the mta is SIGKILLed at
/// random moments and restarted: every message the mta committed (logged `(queue active)`,
/// which precedes its 250) is delivered once, or twice at most when it was mid-delivery; the
/// tracked client's 250-acknowledged messages are all delivered; a message whose final dot
/// never went out is never delivered; nothing is delivered that the mta did not commit.
#[test]
fn durability_sigkill_during_smtp_source() {
    let smtp_source = need("smtp-source");
    let dir = TempDir::new("mq-crash");
    let _dovecot = Dovecot::start(&dir, &["alice"]);
    let setup = MtaSetup::new(
        &dir,
        &Dovecot::lmtp_socket(&dir),
        "minimal_backoff = \"1s\"",
    );
    const TARGET: usize = 5000;
    let committed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let fates: Arc<Mutex<HashMap<usize, Fate>>> = Arc::default();
    let mut logs: Vec<String> = Vec::new();

    // Load: smtp-source batches (it gives up when the server dies: start another), and the
    // tracked client in sessions of 20 messages.
    let port = setup.smtp;
    let load = {
        let stop = stop.clone();
        let src = smtp_source.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = Command::new(&src)
                    .args(["-s", "20", "-m", "500", "-l", "2048", "-c"])
                    .args(["-f", "load@example.org", "-t", &format!("alice@{DOMAIN}")])
                    .arg(format!("127.0.0.1:{port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let tracker = {
        let stop = stop.clone();
        let fates = fates.clone();
        std::thread::spawn(move || {
            let mut tags = 0usize..;
            while !stop.load(Ordering::Relaxed) {
                tracked_session(port, &mut tags, &fates);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let mut kills = 0;
    let mut kill_times: Vec<u64> = Vec::new();
    let mut prev = 0usize; // committed by runs already killed
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut run = setup.start();
    loop {
        let n = run.log().matches("(queue active)").count();
        committed.store(prev + n, Ordering::Relaxed);
        if prev + n >= TARGET {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "load too slow: {} committed",
            prev + n
        );
        if kills == 8 {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        // A random moment 0.2–1.5 s from now, then SIGKILL and restart.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(kills);
        std::thread::sleep(Duration::from_millis(200 + h.finish() % 1300));
        kill_times.push(unix_us());
        run.daemon.signal(nix::sys::signal::Signal::SIGKILL);
        run.daemon.wait_exit(Duration::from_secs(5));
        kills += 1;
        let log = run.log();
        prev += log.matches("(queue active)").count();
        logs.push(log);
        run = setup.start();
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    tracker.join().unwrap();

    // Drain: every committed message delivered, queue empty.
    wait_until(Duration::from_secs(180), "queue drained", || {
        setup.mailq() == "Mail queue is empty\n"
    });
    let final_log = run.log();
    logs.push(final_log);
    let all_logs = logs.join("\n");
    let mut committed_ids: HashSet<String> = HashSet::new();
    for l in all_logs.lines() {
        if let Some(i) = l.find(": from=<") {
            if l.contains("(queue active)") {
                let head = &l[..i];
                let id = head.rsplit([' ', ']']).next().unwrap_or(head);
                committed_ids.insert(id.to_owned());
            }
        }
    }
    let msgs = maildir_messages(&dir.join("home/alice"));
    let mut per_id: HashMap<String, usize> = HashMap::new();
    let mut per_tag: HashMap<usize, usize> = HashMap::new();
    for m in &msgs {
        let id = received_queue_id(m).unwrap_or_else(|| panic!("no queue id in {m}"));
        *per_id.entry(id).or_default() += 1;
        if let Some(t) = m.split("X-Tag: T").nth(1) {
            let tag: usize = t
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            *per_tag.entry(tag).or_default() += 1;
        }
    }
    assert!(
        committed_ids.len() >= TARGET,
        "only {} committed",
        committed_ids.len()
    );
    let missing: Vec<&String> = committed_ids
        .iter()
        .filter(|id| !per_id.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} committed messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let unknown: Vec<&String> = per_id
        .keys()
        .filter(|id| !committed_ids.contains(*id))
        .collect();
    // Not logged as committed: only possible for a message committed in the instant between
    // its commit and the log line — the kill came right then, and it never got its 250.
    for id in &unknown {
        let at = u64::from_str_radix(id, 36).unwrap() + 1_704_067_200_000_000;
        assert!(
            kill_times.iter().any(|k| k.abs_diff(at) < 3_000_000),
            "{id} delivered without a commit, not near any SIGKILL"
        );
    }
    assert!(
        unknown.len() <= 32 * kills,
        "{} delivered without commit",
        unknown.len()
    );
    let thrice: Vec<(&String, &usize)> = per_id.iter().filter(|(_, n)| **n > 2).collect();
    assert!(thrice.is_empty(), "delivered more than twice: {thrice:?}");
    let twice = per_id.values().filter(|n| **n == 2).count();
    let fates = fates.lock().unwrap();
    let mut acked = 0;
    for (tag, fate) in fates.iter() {
        let n = per_tag.get(tag).copied().unwrap_or(0);
        match fate {
            Fate::Acked => {
                acked += 1;
                assert!(
                    (1..=2).contains(&n),
                    "acknowledged tag {tag} delivered {n} times"
                );
            }
            Fate::Unsent => assert_eq!(n, 0, "tag {tag} delivered without its final dot"),
            Fate::Unknown => assert!(n <= 2),
        }
    }
    assert!(acked > 0, "the tracked client never got a 250");
    eprintln!(
        "durability: {kills} SIGKILLs, {} committed, {} unlogged commits at a kill, {} delivered \
         files, {twice} delivered twice, tracked: {acked} acked of {}",
        committed_ids.len(),
        unknown.len(),
        msgs.len(),
        fates.len()
    );
    drop(run);
}
