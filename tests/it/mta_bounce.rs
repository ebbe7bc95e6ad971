//! pochta-mta's notices to senders, against real peers: pochta-authd (users, one of them
//! with a 1 KiB quota), pochta-mda-lmtp (552 5.2.2 over quota, or 452 4.2.2 with
//! `quota_full_tempfail`; 550 5.1.1 for unknown users) and the mta on loopback. Every notice
//! is read back from the recipient's Maildir and parsed by python's `email` package.
//!
//! - 5xx at local delivery → one bounce (multipart/report) in the local sender's Maildir with
//!   the original (message/rfc822, or text/rfc822-headers with RET=HDRS), ENVID and ORCPT;
//! - 4xx until maximal_queue_lifetime → bounce with Status 4.4.7;
//! - delay notice after delay_warning_time, once; mailq shows the reason meanwhile;
//! - a bounce that fails goes to the postmaster; a postmaster notice that fails is dropped
//!   and logged; mail from <> never gets a bounce to <>;
//! - NOTIFY=NEVER / NOTIFY without FAILURE → nothing; NOTIFY=SUCCESS → success DSN;
//! - restarts (SIGTERM, SIGKILL) while bounces are being sent: every failed message is
//!   bounced once (twice at most, at a kill), the queue drains (no loop); a queue file left
//!   with a recorded failure but no notice gets its bounce after the restart.

use crate::config::daemon_bin;
use crate::harness::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DOMAIN: &str = "pochta.test";
const HOST: &str = "mx.pochta.test";

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

/// A daemon with its own directory (notify socket, log).
struct Proc {
    daemon: Daemon,
    _dir: TempDir,
}

fn start_daemon(name: &str, config: &Path) -> Proc {
    let dir = TempDir::new(&format!("bounce-{name}"));
    let mut notify = Notify::new(&dir);
    let mut cmd = Command::new(daemon_bin(name));
    cmd.arg("-c").arg(config);
    let mut daemon = Daemon::spawn(cmd, &dir, &notify);
    notify.wait_for("READY=1", &mut daemon);
    Proc { daemon, _dir: dir }
}

/// authd + mda-lmtp + mta. Users: alice, bob, postmaster, and `full` whose 1 KiB quota makes
/// any bigger message fail at LMTP.
struct Stack {
    dir: TempDir,
    mta_config: PathBuf,
    mta: Proc,
    /// Logs of earlier runs of the mta (restarts).
    old_logs: Vec<String>,
    _authd: Proc,
    mda: Proc,
    smtp: u16,
    spool: PathBuf,
}

impl Stack {
    /// `delivery`: extra `[delivery]` keys of the mta; `lmtp`: extra `[lmtp]` keys of
    /// mda-lmtp.
    fn start(delivery: &str, lmtp: &str) -> Stack {
        let dir = TempDir::new("bounce");
        let uid = test_uid();
        let mut users = String::new();
        for (u, extra) in [
            ("alice", ""),
            ("bob", ""),
            ("postmaster", ""),
            ("full", "userdb_quota_rule=*:storage=1k"),
        ] {
            users.push_str(&format!(
                "{u}@{DOMAIN}:{{PLAIN}}pw:{uid}:{uid}::{}::{extra}\n",
                dir.join(&format!("home/{u}")).display()
            ));
        }
        let users_file = dir.join("users");
        std::fs::write(&users_file, users).unwrap();
        give_to_test_user(&users_file);
        let authd_cfg = dir.join("authd.toml");
        std::fs::write(
            &authd_cfg,
            as_test_user(&format!(
                "[server]\nlog_level = \"debug\"\n\n[[listener]]\nservice = \"auth-userdb\"\n\
                 address = \"{}\"\nmode = \"0666\"\n\n[passdb]\npath = \"{}\"\n\n[userdb]\n\n\
                 [auth]\n",
                dir.join("auth-userdb").display(),
                users_file.display()
            )),
        )
        .unwrap();
        let authd = start_daemon("authd", &authd_cfg);
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        chown_test_user(&mail);
        let lmtp_socket = dir.join("lmtp");
        let mda_cfg = dir.join("mda-lmtp.toml");
        std::fs::write(
            &mda_cfg,
            as_test_user(&format!(
                "[server]\nlog_level = \"debug\"\n\n[[listener]]\nservice = \"lmtp\"\n\
                 address = \"{}\"\nmode = \"0666\"\n\n[lmtp]\nhostname = \"lmtp.test\"\n{lmtp}\n\n\
                 [userdb]\nsocket = \"{}\"\n\n[delivery]\nmail_location = \"{}/%d/%n/Maildir\"\n",
                lmtp_socket.display(),
                dir.join("auth-userdb").display(),
                mail.display()
            )),
        )
        .unwrap();
        let mda = start_daemon("mda-lmtp", &mda_cfg);
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        chown_test_user(&spool);
        let smtp = free_port();
        let mta_config = dir.join("mta.toml");
        std::fs::write(
            &mta_config,
            as_test_user(&format!(
                "[server]\nlog_level = \"info\"\n\n\
                 [[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:{smtp}\"\n\
                 max_connections_per_ip = 1000\n\n\
                 [smtpd]\nhostname = \"{HOST}\"\nlocal_domains = [\"{DOMAIN}\"]\n\
                 trusted_networks = [\"127.0.0.0/8\"]\n\n\
                 [auth]\nuserdb_socket = \"{userdb}\"\n\n\
                 [queue]\ndir = \"{spool}\"\n\n\
                 [delivery]\nlmtp = \"unix:{lmtp}\"\n{delivery}\n",
                userdb = dir.join("auth-userdb").display(),
                spool = spool.display(),
                lmtp = lmtp_socket.display(),
            )),
        )
        .unwrap();
        let mta = start_daemon("mta", &mta_config);
        Stack {
            dir,
            mta_config,
            mta,
            old_logs: Vec::new(),
            _authd: authd,
            mda,
            smtp,
            spool,
        }
    }

    /// Every run's log, oldest first.
    fn log(&self) -> String {
        let mut all = self.old_logs.join("");
        all.push_str(&self.mta.daemon.log());
        all
    }

    fn wait_log(&self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < end,
                "{needle:?} not logged:\n{log}\n--- mda-lmtp ---\n{}",
                self.mda.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the mta with `sig` and starts it again on the same spool.
    fn restart(&mut self, sig: nix::sys::signal::Signal) {
        self.mta.daemon.signal(sig);
        self.mta.daemon.wait_exit(DEADLINE);
        self.old_logs.push(self.mta.daemon.log());
        self.mta = start_daemon("mta", &self.mta_config);
    }

    fn maildir(&self, user: &str) -> PathBuf {
        self.dir.join(&format!("mail/{DOMAIN}/{user}/Maildir"))
    }

    /// Paths of the messages in `user`'s Maildir.
    fn messages(&self, user: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir(user).join(sub)) {
                out.extend(rd.flatten().map(|e| e.path()));
            }
        }
        out.sort();
        out
    }

    /// Waits until `user` has `n` messages; returns them.
    fn wait_messages(&self, user: &str, n: usize) -> Vec<PathBuf> {
        let end = Instant::now() + DEADLINE;
        loop {
            let m = self.messages(user);
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < end,
                "{user} has {} of {n} messages\n{}\n--- mda-lmtp ---\n{}",
                m.len(),
                self.log(),
                self.mda.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn mailq(&self) -> String {
        let out = Command::new(bin_dir().join("pochta"))
            .args(["queue", "--spool", self.spool.to_str().unwrap(), "list"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pochta queue list failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_queue_empty(&self) {
        let end = Instant::now() + DEADLINE;
        loop {
            let q = self.mailq();
            if q == "Mail queue is empty\n" {
                return;
            }
            assert!(
                Instant::now() < end,
                "queue not empty:\n{q}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One SMTP transaction on port 25; `mail` and `rcpts` are the full command arguments
    /// (`<a@b> RET=HDRS`, `<c@d> NOTIFY=NEVER`). Returns the queue id.
    fn send(&self, mail: &str, rcpts: &[&str], data: &str) -> String {
        let s = TcpStream::connect(("127.0.0.1", self.smtp)).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut reply = || -> String {
            let mut all = String::new();
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                all.push_str(&l);
                if l.len() < 4 || l.as_bytes()[3] != b'-' {
                    return all;
                }
            }
        };
        let greeting = reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        let mut cmd = |c: &str, want: &str| {
            w.write_all(format!("{c}\r\n").as_bytes()).unwrap();
            let rep = reply();
            assert!(rep.starts_with(want), "{c} → {rep}");
            rep
        };
        let ehlo = cmd("EHLO client.test", "250");
        assert!(ehlo.contains("DSN"), "{ehlo}");
        cmd(&format!("MAIL FROM:{mail}"), "250");
        for rc in rcpts {
            cmd(&format!("RCPT TO:{rc}"), "250");
        }
        cmd("DATA", "354");
        let body = data.replace('\n', "\r\n");
        let done = cmd(&format!("{body}\r\n."), "250");
        cmd("QUIT", "221");
        done.trim_end().rsplit(' ').next().unwrap().to_owned()
    }
}

/// A message bigger than `full`'s 1 KiB quota.
fn big_message(subject: &str) -> String {
    let mut m = format!("From: Alice <alice@{DOMAIN}>\nTo: full@{DOMAIN}\nSubject: {subject}\n\n");
    for i in 0..40 {
        m.push_str(&format!(
            "line {i} of a message that does not fit the quota\n"
        ));
    }
    m
}

/// A notice as python's email package parses it.
#[derive(Debug, Default)]
struct Parsed {
    /// Top-level header fields.
    head: HashMap<String, String>,
    /// Content types of the top-level parts.
    parts: Vec<String>,
    human: String,
    /// Delivery-status blocks: the per-message one, then one per recipient.
    groups: Vec<HashMap<String, String>>,
    /// The returned message's Subject, and its body when the whole message was returned.
    orig_subject: String,
    orig_body: Option<String>,
}

const PARSE_PY: &str = r#"
import email, sys
from email import policy
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.compat32)
esc = lambda s: str(s).replace('\\', '\\\\').replace('\n', '\\n').replace('\r', '\\r')
for k, v in m.items():
    print('head\t%s\t%s' % (k.lower(), esc(v)))
print('head\tx-content-type\t%s' % m.get_content_type())
print('head\tx-report-type\t%s' % m.get_param('report-type'))
assert m.is_multipart(), 'not multipart'
parts = m.get_payload()
for p in parts:
    print('part\t%s' % p.get_content_type())
print('human\t%s' % esc(parts[0].get_payload(decode=True).decode('utf-8', 'replace')))
for i, block in enumerate(parts[1].get_payload()):
    for k, v in block.items():
        print('ds\t%d\t%s\t%s' % (i, k.lower(), esc(v)))
orig = parts[2]
if orig.get_content_type() == 'message/rfc822':
    inner = orig.get_payload()[0]
    print('orig_subject\t%s' % esc(inner['Subject']))
    print('orig_body\t%s' % esc(inner.get_payload()))
else:
    inner = email.message_from_string(orig.get_payload())
    print('orig_subject\t%s' % esc(inner['Subject']))
"#;

fn parse_notice(path: &Path) -> Parsed {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PARSE_PY)
        .arg(path)
        .output()
        .expect("python3 is not installed (run-tests installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python could not parse {}: {}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&std::fs::read(path).unwrap())
    );
    let unesc = |s: &str| {
        s.replace("\\n", "\n")
            .replace("\\r", "\r")
            .replace("\\\\", "\\")
    };
    let mut p = Parsed::default();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        match f[0] {
            "head" => {
                p.head.insert(f[1].to_owned(), unesc(f[2]));
            }
            "part" => p.parts.push(f[1].to_owned()),
            "human" => p.human = unesc(f[1]).replace("\r\n", "\n"),
            "ds" => {
                let i: usize = f[1].parse().unwrap();
                if p.groups.len() <= i {
                    p.groups.resize(i + 1, HashMap::new());
                }
                p.groups[i].insert(f[2].to_owned(), unesc(f[3]));
            }
            "orig_subject" => p.orig_subject = unesc(f[1]),
            "orig_body" => p.orig_body = Some(unesc(f[1])),
            _ => panic!("unexpected output {line}"),
        }
    }
    p
}

impl Parsed {
    fn rcpt(&self, i: usize, field: &str) -> &str {
        self.groups[i + 1]
            .get(field)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {field} in recipient block {i}: {self:#?}"))
    }

    /// The checks every notice passes: RFC 3464/6522 structure, our MAILER-DAEMON.
    fn assert_report(&self, subject: &str, to: &str, returned: &str) {
        assert_eq!(self.head["x-content-type"], "multipart/report", "{self:#?}");
        assert_eq!(self.head["x-report-type"], "delivery-status");
        assert_eq!(
            self.parts,
            ["text/plain", "message/delivery-status", returned],
            "{self:#?}"
        );
        assert_eq!(
            self.head["from"],
            format!("MAILER-DAEMON@{HOST} (Mail Delivery System)")
        );
        assert_eq!(self.head["subject"], subject);
        assert_eq!(self.head["to"], format!("<{to}>"));
        assert_eq!(self.head["auto-submitted"], "auto-replied");
        assert!(self
            .human
            .starts_with(&format!("This is the mail system at host {HOST}.\n")));
        assert_eq!(self.groups[0]["reporting-mta"], format!("dns; {HOST}"));
        assert!(self.groups[0].contains_key("arrival-date"), "{self:#?}");
    }
}

const FAILED: &str = "Undelivered Mail Returned to Sender";

/// 552 5.2.2 at LMTP for one recipient of two: one bounce in alice's Maildir with the whole
/// original, ENVID and ORCPT; bob gets the message; the original leaves the queue. RET=HDRS:
/// headers only. Logged in Postfix's shape.
#[test]
fn permanent_failure_bounces_to_local_sender() {
    let stack = Stack::start("", "");
    let id = stack.send(
        &format!("<alice@{DOMAIN}> ENVID=env+2B42"),
        &[
            &format!("<full@{DOMAIN}> ORCPT=rfc822;Full+2Bx@{DOMAIN}"),
            &format!("<bob@{DOMAIN}>"),
        ],
        &big_message("quota test"),
    );
    let log = stack.wait_log(&format!("{id}: sender non-delivery notification: "));
    let line = log
        .lines()
        .find(|l| l.contains("sender non-delivery notification"))
        .unwrap();
    let new_id = line.rsplit(' ').next().unwrap();
    assert!(log.contains(&format!("{new_id}: from=<>, size=")), "{log}");
    assert!(log.contains("dsn=5.2.2, status=bounced"), "{log}");
    stack.wait_log(&format!("{id}: removed"));
    stack.wait_messages("bob", 1);
    let b = stack.wait_messages("alice", 1);
    let n = parse_notice(&b[0]);
    n.assert_report(FAILED, &format!("alice@{DOMAIN}"), "message/rfc822");
    assert!(
        n.human.contains("I'm sorry to have to inform you"),
        "{}",
        n.human
    );
    assert!(
        n.human.contains(&format!("<full@{DOMAIN}>: host local[")),
        "{}",
        n.human
    );
    assert!(n.human.contains("said: 552 5.2.2 "), "{}", n.human);
    assert_eq!(n.groups.len(), 2, "only the failed recipient: {n:#?}");
    assert_eq!(n.groups[0]["x-postfix-queue-id"], id);
    assert_eq!(
        n.groups[0]["x-postfix-sender"],
        format!("rfc822; alice@{DOMAIN}")
    );
    assert_eq!(n.groups[0]["original-envelope-id"], "env+2B42");
    assert_eq!(
        n.rcpt(0, "final-recipient"),
        format!("rfc822; full@{DOMAIN}")
    );
    assert_eq!(
        n.rcpt(0, "original-recipient"),
        format!("rfc822;Full+2Bx@{DOMAIN}")
    );
    assert_eq!(n.rcpt(0, "action"), "failed");
    assert_eq!(n.rcpt(0, "status"), "5.2.2");
    assert!(n.rcpt(0, "diagnostic-code").starts_with("smtp; 552 5.2.2 "));
    assert!(n.rcpt(0, "remote-mta").starts_with("dns; "));
    assert!(n.groups[1].contains_key("last-attempt-date"));
    assert_eq!(n.orig_subject, "quota test");
    assert!(n
        .orig_body
        .as_deref()
        .unwrap()
        .contains("line 39 of a message"));

    // RET=HDRS: the headers only.
    let id2 = stack.send(
        &format!("<alice@{DOMAIN}> RET=HDRS"),
        &[&format!("<full@{DOMAIN}>")],
        &big_message("headers only"),
    );
    stack.wait_log(&format!("{id2}: removed"));
    let b = stack.wait_messages("alice", 2);
    let n = b
        .iter()
        .map(|p| parse_notice(p))
        .find(|n| n.orig_subject == "headers only")
        .unwrap();
    n.assert_report(FAILED, &format!("alice@{DOMAIN}"), "text/rfc822-headers");
    assert_eq!(n.orig_body, None);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        stack.messages("alice").len(),
        2,
        "more than one bounce each"
    );
    stack.wait_queue_empty();
}

/// 452 4.2.2 (quota_full_tempfail) until maximal_queue_lifetime: the recipient is bounced
/// with Status 4.4.7 and the last reply as diagnostic.
#[test]
fn temporary_failure_past_lifetime_bounces_4_4_7() {
    let stack = Stack::start(
        "minimal_backoff = \"1s\"\nmaximal_backoff = \"1s\"\nmaximal_queue_lifetime = \"3s\"\n\
         delay_warning_time = \"0\"",
        "quota_full_tempfail = true",
    );
    let id = stack.send(
        &format!("<alice@{DOMAIN}>"),
        &[&format!("<full@{DOMAIN}>")],
        &big_message("expires"),
    );
    stack.wait_log("dsn=4.2.2, status=deferred");
    let b = stack.wait_messages("alice", 1);
    let log = stack.wait_log(&format!("{id}: removed"));
    assert!(log.contains("status=expired"), "{log}");
    let n = parse_notice(&b[0]);
    n.assert_report(FAILED, &format!("alice@{DOMAIN}"), "message/rfc822");
    assert_eq!(n.rcpt(0, "action"), "failed");
    assert_eq!(n.rcpt(0, "status"), "4.4.7");
    assert!(n.rcpt(0, "diagnostic-code").starts_with("smtp; 452 4.2.2 "));
    assert!(
        n.human
            .contains("message expired in the queue: host local["),
        "{}",
        n.human
    );
    assert_eq!(n.orig_subject, "expires");
    stack.wait_queue_empty();
}

/// delay_warning_time 1s with retries every second: one delay notice (Action: delayed,
/// Will-Retry-Until), not one per retry; mailq shows the reason above the recipient.
#[test]
fn delay_notice_once() {
    let stack = Stack::start(
        "minimal_backoff = \"1s\"\nmaximal_backoff = \"1s\"\ndelay_warning_time = \"1s\"",
        "quota_full_tempfail = true",
    );
    let id = stack.send(
        &format!("<alice@{DOMAIN}>"),
        &[&format!("<full@{DOMAIN}>")],
        &big_message("slow"),
    );
    stack.wait_log(&format!("{id}: sender delay notification: "));
    let b = stack.wait_messages("alice", 1);
    let n = parse_notice(&b[0]);
    n.assert_report(
        "Delayed Mail (still being retried)",
        &format!("alice@{DOMAIN}"),
        "text/rfc822-headers",
    );
    assert!(n.human.contains("THIS IS A WARNING ONLY"), "{}", n.human);
    assert!(
        n.human
            .contains("Your message could not be delivered for 1 second(s)."),
        "{}",
        n.human
    );
    assert_eq!(n.rcpt(0, "action"), "delayed");
    assert_eq!(n.rcpt(0, "status"), "4.2.2");
    assert!(n.groups[1].contains_key("will-retry-until"));
    assert_eq!(n.orig_subject, "slow");
    // Several more retries: still one notice.
    let retries = |log: &str| log.matches("status=deferred").count();
    let before = retries(&stack.log());
    wait_until(Duration::from_secs(15), "3 more retries", || {
        retries(&stack.log()) >= before + 3
    });
    assert_eq!(stack.messages("alice").len(), 1, "delay notice repeated");
    assert_eq!(stack.log().matches("sender delay notification").count(), 1);
    let q = stack.mailq();
    assert!(q.contains(&format!("{:41}full@{DOMAIN}\n", "")), "{q}");
    let reason = q.lines().find(|l| l.trim_start().starts_with('(')).unwrap();
    assert!(reason.contains("said: 452 4.2.2 "), "{q}");
    assert!(reason.len() <= 78 || !reason.starts_with(' '), "{q}");
}

/// A bounce whose recipient does not exist (sender ghost@, 550 5.1.1) goes to the
/// postmaster — never to <> — and so does any failure of mail from <>; with an unknown
/// double_bounce_recipient the postmaster notice fails too and is dropped and logged.
#[test]
fn failed_bounce_goes_to_postmaster_then_dropped() {
    let stack = Stack::start("", "");
    let id = stack.send(
        &format!("<ghost@{DOMAIN}>"),
        &[&format!("<full@{DOMAIN}>")],
        &big_message("from a ghost"),
    );
    let log = stack.wait_log(&format!("{id}: sender non-delivery notification: "));
    let bounce_id = log
        .lines()
        .find(|l| l.contains("sender non-delivery notification"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    stack.wait_log(&format!(
        "{bounce_id}: postmaster non-delivery notification: "
    ));
    let pm = stack.wait_messages("postmaster", 1);
    let n = parse_notice(&pm[0]);
    n.assert_report(
        "Postmaster Copy: Undelivered Mail",
        &format!("postmaster@{DOMAIN}"),
        "message/rfc822",
    );
    assert_eq!(
        n.rcpt(0, "final-recipient"),
        format!("rfc822; ghost@{DOMAIN}")
    );
    assert_eq!(n.rcpt(0, "status"), "5.1.1");
    assert_eq!(n.groups[0]["x-postfix-queue-id"], bounce_id);
    assert_eq!(n.orig_subject, FAILED);
    // Mail from <> that fails: to the postmaster as well.
    let id2 = stack.send("<>", &[&format!("<full@{DOMAIN}>")], &big_message("null"));
    stack.wait_log(&format!("{id2}: postmaster non-delivery notification: "));
    stack.wait_messages("postmaster", 2);
    stack.wait_queue_empty();
    assert!(stack.messages("alice").is_empty());

    // The postmaster does not exist either: the notice about the bounce is dropped.
    let stack = Stack::start("double_bounce_recipient = \"nobody-pm\"", "");
    let id = stack.send(
        &format!("<ghost@{DOMAIN}>"),
        &[&format!("<full@{DOMAIN}>")],
        &big_message("dropped"),
    );
    stack.wait_log(&format!("{id}: sender non-delivery notification: "));
    let log = stack.wait_log(": undeliverable postmaster notification discarded");
    assert!(
        log.contains(&format!("to=<nobody-pm@{DOMAIN}>")),
        "postmaster notice not tried: {log}"
    );
    stack.wait_queue_empty();
    assert!(stack.messages("postmaster").is_empty());
}

/// NOTIFY=NEVER and NOTIFY=DELAY: no bounce; NOTIFY=SUCCESS: a success DSN from local
/// delivery (Action: delivered), headers only.
#[test]
fn notify_never_and_success() {
    let stack = Stack::start("", "");
    let never = stack.send(
        &format!("<alice@{DOMAIN}>"),
        &[&format!("<full@{DOMAIN}> NOTIFY=NEVER")],
        &big_message("never"),
    );
    let delay_only = stack.send(
        &format!("<alice@{DOMAIN}>"),
        &[&format!("<full@{DOMAIN}> NOTIFY=DELAY")],
        &big_message("delay only"),
    );
    let success = stack.send(
        &format!("<alice@{DOMAIN}>"),
        &[&format!(
            "<bob@{DOMAIN}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@{DOMAIN}"
        )],
        "Subject: hello bob\n\nhi\n",
    );
    for id in [&never, &delay_only, &success] {
        stack.wait_log(&format!("{id}: removed"));
    }
    let log = stack.wait_log(&format!("{success}: sender delivery status notification: "));
    assert!(!log.contains("non-delivery notification"), "{log}");
    let m = stack.wait_messages("alice", 1);
    let n = parse_notice(&m[0]);
    n.assert_report(
        "Successful Mail Delivery Report",
        &format!("alice@{DOMAIN}"),
        "text/rfc822-headers",
    );
    assert!(n.human.contains("successfully delivered"), "{}", n.human);
    assert_eq!(n.rcpt(0, "action"), "delivered");
    assert_eq!(n.rcpt(0, "status"), "2.0.0");
    assert_eq!(
        n.rcpt(0, "original-recipient"),
        format!("rfc822;bob@{DOMAIN}")
    );
    assert_eq!(n.orig_subject, "hello bob");
    stack.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stack.messages("alice").len(), 1);
}

/// CRC-32 (IEEE) as the queue file's records use it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Bounces under restarts: 60 failing messages while the mta is stopped with SIGTERM and
/// SIGKILL at moments 0.1–0.6 s apart; afterwards every message was bounced once (twice at
/// most when a kill came between the bounce's commit and the original's record) and the
/// queue drains — no loss, no loop. Then the exact crash point: a queue file whose failure
/// is recorded but not notified (written as the mta writes it, while it is stopped) gets
/// its bounce at the next start, once.
#[test]
fn restarts_while_bouncing_lose_nothing_and_never_loop() {
    let mut stack = Stack::start("", "");
    let mut ids = Vec::new();
    let sigs = [
        nix::sys::signal::Signal::SIGKILL,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGKILL,
        nix::sys::signal::Signal::SIGKILL,
    ];
    for (round, sig) in sigs.iter().enumerate() {
        for k in 0..15 {
            let id = stack.send(
                &format!("<alice@{DOMAIN}>"),
                &[&format!("<full@{DOMAIN}>")],
                &big_message(&format!("crash {round}.{k}")),
            );
            ids.push(id);
        }
        std::thread::sleep(Duration::from_millis(100 + 150 * round as u64));
        stack.restart(*sig);
    }
    stack.wait_queue_empty();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for p in stack.messages("alice") {
        let n = parse_notice(&p);
        assert_eq!(n.head["subject"], FAILED);
        *per_id
            .entry(n.groups[0]["x-postfix-queue-id"].clone())
            .or_default() += 1;
    }
    for id in &ids {
        let c = per_id.get(id).copied().unwrap_or(0);
        assert!(
            (1..=2).contains(&c),
            "{id} bounced {c} times\n{}",
            stack.log()
        );
    }
    assert_eq!(per_id.len(), ids.len(), "bounces for unknown messages");
    let twice = per_id.values().filter(|c| **c == 2).count();
    eprintln!("restarts: {} messages, {twice} bounced twice", ids.len());

    // The crash point, exactly: the original's failure recorded, no notice yet.
    let before = stack.messages("alice").len();
    let mta_ok = stack.send(
        &format!("<alice@{DOMAIN}>"),
        &[&format!("<bob@{DOMAIN}>")],
        "Subject: template\n\nx\n",
    );
    stack.wait_log(&format!("{mta_ok}: removed"));
    stack.mta.daemon.signal(nix::sys::signal::Signal::SIGTERM);
    stack.mta.daemon.wait_exit(DEADLINE);
    stack.old_logs.push(stack.mta.daemon.log());
    // A queue file as the mta writes it (format in crates/queue/src/file.rs).
    let id = "0000000B0E";
    let content = "Subject: left behind\r\n\r\nbody\r\n";
    let mut f = format!(
        "POCHTA-QUEUE 1\nid {id}\narrival 1763894400000\nsender alice@{DOMAIN}\n\
         client localhost[127.0.0.1]\nrcpt full@{DOMAIN} - -\ncontent {}\n{content}\n",
        content.len()
    )
    .into_bytes();
    let crc = crc32(&f);
    f.extend_from_slice(format!("end {crc:08x}\n").as_bytes());
    let rec = "r2 0 B 1763894401000 1 0 - 5.2.2 local[x] smtp;+20552+205.2.2+20full \
               host+20local[x]+20said:+20552+205.2.2+20full";
    f.extend_from_slice(format!("{rec} {:08x}\n", crc32(rec.as_bytes())).as_bytes());
    let path = stack.spool.join("queue").join(id);
    std::fs::write(&path, f).unwrap();
    chown_test_user(&path);
    stack.mta = start_daemon("mta", &stack.mta_config);
    stack.wait_log(&format!("{id}: sender non-delivery notification: "));
    stack.wait_log(&format!("{id}: removed"));
    let m = stack.wait_messages("alice", before + 1);
    let n = m
        .iter()
        .map(|p| parse_notice(p))
        .find(|n| n.orig_subject == "left behind")
        .expect("no bounce for the left-behind message");
    assert_eq!(n.rcpt(0, "status"), "5.2.2");
    assert_eq!(n.rcpt(0, "diagnostic-code"), "smtp; 552 5.2.2 full");
    stack.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stack.messages("alice").len(), before + 1, "bounced again");
}
