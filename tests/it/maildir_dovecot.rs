//! pochta-mailstore against a real Dovecot imap (docs/formats.md#maildir-as-dovecot-keeps-it):
//! mail delivered with the store
//! crate shows in Dovecot with our UIDs and UIDVALIDITY; after Dovecot stores flags and keywords,
//! appends, delivers (dovecot-lda), creates and subscribes to a folder, the store crate reads
//! exactly the same UIDs, flags, keywords, sizes, folders and subscriptions; our flag changes,
//! expunges and subscriptions show in Dovecot; both keep one `maildirsize` (Dovecot quota plugin).

use crate::harness::*;
use pochta_mailstore::quota::{self, MaildirSize};
use pochta_mailstore::{
    DeliverOptions, FlagOp, Flags, Maildir, Message, QuotaLimit, SyncOptions, SystemFlag,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Fails the test with a clear message when a peer program is not installed.
fn need(program: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/usr/lib/dovecot",
        "/usr/local/bin",
    ] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is not installed: install the Debian packages listed in run-tests");
}

/// The uid/gid Dovecot runs the mail user as (it refuses root).
const MAIL_UID: u32 = 65534;

/// A private Dovecot serving IMAP for one passwd-file user `u1` whose Maildir is `home/Maildir`.
struct DovecotImap {
    dir: TempDir,
    port: u16,
}

impl DovecotImap {
    fn conf_path(&self) -> PathBuf {
        self.dir.join("dovecot.conf")
    }

    fn maildir(&self) -> PathBuf {
        self.dir.join("home/Maildir")
    }

    fn new() -> Self {
        need("dovecot");
        let dir = TempDir::new("maildir-dovecot");
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let port = free_port();
        std::fs::write(
            dir.join("users"),
            format!(
                "u1:{{PLAIN}}pass1:{MAIL_UID}:{MAIL_UID}::{}::\n",
                dir.join("home").display()
            ),
        )
        .unwrap();
        let conf = format!(
            "base_dir = {base}\n\
             state_dir = {state}\n\
             instance_name = pochta-it-md-{pid}-{port}\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             log_path = {log}\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             first_valid_uid = {MAIL_UID}\n\
             last_valid_uid = {MAIL_UID}\n\
             mail_location = maildir:~/Maildir\n\
             postmaster_address = postmaster@pochta.test\n\
             mail_plugins = $mail_plugins quota\n\
             plugin {{\n  quota = maildir:User quota\n  quota_rule = *:storage=10M\n\
             \x20 quota_rule2 = *:messages=1000\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
             service imap-login {{\n\
               inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
               inet_listener imaps {{\n    port = 0\n  }}\n\
             }}\n",
            base = dir.join("run").display(),
            state = dir.join("state").display(),
            pid = std::process::id(),
            log = dir.join("dovecot.log").display(),
            users = dir.join("users").display(),
        );
        std::fs::write(dir.join("dovecot.conf"), conf).unwrap();
        DovecotImap { dir, port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    fn start(&self) {
        // not output(): the daemon's children would keep the pipes open
        let err_path = self.dir.join("dovecot.stderr");
        let err = std::fs::File::create(&err_path).unwrap();
        let status = Command::new(need("dovecot"))
            .arg("-c")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot did not start: {}\n{}",
            std::fs::read_to_string(&err_path).unwrap_or_default(),
            self.log()
        );
        let end = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < end,
                "dovecot imap not listening\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&self) {
        let pid = std::fs::read_to_string(self.dir.join("run/master.pid")).unwrap_or_default();
        let _ = Command::new(need("doveadm"))
            .arg("-c")
            .arg(self.conf_path())
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let pid = nix::unistd::Pid::from_raw(pid);
            let end = Instant::now() + DEADLINE;
            while nix::sys::signal::kill(pid, None).is_ok() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Runs `script` (python, imaplib connected and logged in as `c`) and returns its stdout.
    fn python(&self, script: &str) -> String {
        let prelude = format!(
            "import imaplib, re, sys\n\
             c = imaplib.IMAP4('127.0.0.1', {port})\n\
             c.login('u1', 'pass1')\n\
             def dump(box):\n\
             \x20   typ, d = c.select(box)\n\
             \x20   assert typ == 'OK', d\n\
             \x20   uv = c.untagged_responses.get('UIDVALIDITY', [b'0'])[0].decode()\n\
             \x20   print('UIDVALIDITY', box, uv)\n\
             \x20   items = '(FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])'\n\
             \x20   typ, d = c.uid('FETCH', '1:*', items)\n\
             \x20   assert typ == 'OK', d\n\
             \x20   for item in d:\n\
             \x20       if not isinstance(item, tuple):\n\
             \x20           continue\n\
             \x20       meta = item[0].decode()\n\
             \x20       uid = re.search(r'UID (\\d+)', meta).group(1)\n\
             \x20       size = re.search(r'RFC822.SIZE (\\d+)', meta).group(1)\n\
             \x20       flags = re.search(r'FLAGS \\(([^)]*)\\)', meta).group(1).split()\n\
             \x20       mid = re.search(rb'<([^>]+)>', item[1]).group(1).decode()\n\
             \x20       flags = [f for f in flags if f != '\\\\Recent']\n\
             \x20       print('MSG', box, uid, size, mid, ' '.join(sorted(flags)))\n",
            port = self.port
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!("{prelude}{script}\nc.logout()\n"))
            .stderr(Stdio::piped())
            .output()
            .expect("python3 is not installed");
        assert!(
            out.status.success(),
            "imaplib script failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Delivers `message` with Dovecot's own LDA (as the mail user).
    fn lda(&self, message: &[u8]) {
        use std::io::Write;
        let mut child = Command::new(need("dovecot-lda"))
            .arg("-c")
            .arg(self.conf_path())
            .args(["-d", "u1", "-f", "sender@pochta.test"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "dovecot-lda failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for DovecotImap {
    fn drop(&mut self) {
        self.stop();
    }
}

fn chown_tree(path: &Path) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(format!("{MAIL_UID}:{MAIL_UID}"))
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown -R {}", path.display());
}

/// Dovecot's errors and warnings in its log (its own stop signal aside).
fn complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("Error:") || l.contains("Warning:"))
        .filter(|l| !l.contains("Killed with signal"))
        .collect()
}

/// What one side sees of a message: UID, RFC822.SIZE, sorted flags and keywords.
type View = BTreeMap<String, (u32, u64, Vec<String>)>;

/// Parses the `MSG` lines of a python dump for `mailbox`, keyed by Message-ID.
fn dovecot_view(out: &str, mailbox: &str) -> (u32, View) {
    let mut uidv = 0;
    let mut view = View::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f[0] == "UIDVALIDITY" && f[1] == mailbox {
            uidv = f[2].parse().unwrap();
        } else if f[0] == "MSG" && f[1] == mailbox {
            let flags = f[5..]
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
                .collect();
            view.insert(
                f[4].to_string(),
                (f[2].parse().unwrap(), f[3].parse().unwrap(), flags),
            );
        }
    }
    (uidv, view)
}

fn message_id(m: &Maildir, mailbox: &str, msg: &Message) -> String {
    let data = m.mailbox(mailbox).unwrap().read_message(msg).unwrap();
    let text = String::from_utf8_lossy(&data);
    let start = text.find("Message-ID: <").expect("Message-ID") + 13;
    text[start..start + text[start..].find('>').unwrap()].to_string()
}

/// What the store crate sees, in the same shape as [`dovecot_view`].
fn store_view(m: &Maildir, mailbox: &str) -> (u32, View) {
    let st = m
        .mailbox(mailbox)
        .unwrap()
        .sync(SyncOptions::default())
        .unwrap();
    let mut view = View::new();
    for msg in &st.messages {
        let mut flags: Vec<String> = SystemFlag::ALL
            .into_iter()
            .filter(|f| msg.flags.contains(*f))
            .map(|f| {
                match f {
                    SystemFlag::Draft => "\\Draft",
                    SystemFlag::Flagged => "\\Flagged",
                    SystemFlag::Answered => "\\Answered",
                    SystemFlag::Seen => "\\Seen",
                    SystemFlag::Deleted => "\\Deleted",
                }
                .to_string()
            })
            .chain(msg.keywords.iter().cloned())
            .collect();
        flags.sort();
        view.insert(message_id(m, mailbox, msg), (msg.uid, msg.vsize, flags));
    }
    (st.uid_validity, view)
}

fn mail(id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: a@pochta.test\nTo: u1@pochta.test\nSubject: {id}\nMessage-ID: <{id}@pochta.test>\n\
         \n{body}\n"
    )
    .into_bytes()
}

#[test]
fn dovecot_reads_our_maildir_and_we_read_dovecots_changes() {
    require_root("the Dovecot interop test (Dovecot's mail user must differ from root)");
    let dc = DovecotImap::new();
    let m = Maildir::open(dc.maildir());
    // the same limits as Dovecot's quota_rule/quota_rule2: both sides keep one maildirsize
    let mut limit = QuotaLimit::from_rule("*:storage=10M").unwrap();
    limit.apply_rule("*:messages=1000").unwrap();
    let plain = DeliverOptions {
        quota: Some(limit),
        ..Default::default()
    };
    m.create_if_missing().unwrap();
    // a file Postfix local(8) would write, unknown to the uidlist: we deliver
    // without syncing, so Dovecot gives it the next UID; our first quota check counts it
    std::fs::write(
        dc.maildir()
            .join("new/1700000000.V801I1a2bM123456.mx.example.org"),
        mail("postfix", "from postfix"),
    )
    .unwrap();
    let mut ours = BTreeMap::new();
    for i in 1..=4 {
        let d = m
            .deliver(None, &mail(&format!("m{i}"), &"line\n".repeat(i)), &plain)
            .unwrap();
        ours.insert(format!("m{i}@pochta.test"), d.uid);
    }
    let seen_junk = DeliverOptions {
        flags: Flags::empty().with(SystemFlag::Seen),
        keywords: vec!["$Junk".into()],
        quota: Some(limit),
    };
    let d = m
        .deliver(None, &mail("m5", "crlf\r\nbody\r\n"), &seen_junk)
        .unwrap();
    ours.insert("m5@pochta.test".into(), d.uid);
    m.create_mailbox("Lists.rust").unwrap();
    let d = m
        .deliver(Some("Lists.rust"), &mail("r1", "rust"), &plain)
        .unwrap();
    assert_eq!(d.uid, 1);
    let our_uidv = m.inbox().unwrap().uidlist().unwrap().unwrap().uid_validity;
    chown_tree(&dc.dir.join("home"));
    dc.start();

    // 1. Dovecot shows our UIDs and UIDVALIDITY
    let out = dc.python("dump('INBOX')\ndump('Lists.rust')\n");
    let (uidv, view) = dovecot_view(&out, "INBOX");
    assert_eq!(uidv, our_uidv, "{out}");
    for (mid, uid) in &ours {
        assert_eq!(view.get(mid).map(|v| v.0), Some(*uid), "{mid}: {out}");
    }
    assert_eq!(view["postfix@pochta.test"].0, 6, "{out}");
    assert_eq!(view["m5@pochta.test"].2, ["$Junk", "\\Seen"], "{out}");
    let (_, rust) = dovecot_view(&out, "Lists.rust");
    assert_eq!(rust["r1@pochta.test"].0, 1, "{out}");

    // 2. Dovecot changes flags and keywords, appends, delivers, creates and subscribes
    dc.python(
        "c.select('INBOX')\n\
         assert c.uid('STORE', '1', '+FLAGS', '(\\\\Flagged $Work)')[0] == 'OK'\n\
         assert c.uid('STORE', '2', '+FLAGS', '(\\\\Seen \\\\Answered $Label1)')[0] == 'OK'\n\
         assert c.uid('STORE', '5', '-FLAGS', '($Junk)')[0] == 'OK'\n\
         assert c.uid('STORE', '5', '+FLAGS', '($NotJunk \\\\Draft)')[0] == 'OK'\n\
         assert c.uid('STORE', '6', '+FLAGS', '(\\\\Deleted $Junk)')[0] == 'OK'\n\
         msg = b'From: b@pochta.test\\r\\nSubject: app\\r\\n'\n\
         msg += b'Message-ID: <app@pochta.test>\\r\\n\\r\\nx\\r\\n'\n\
         assert c.append('INBOX', '(\\\\Seen $Appended)', None, msg)[0] == 'OK'\n\
         assert c.create('Entw&APw-rfe')[0] == 'OK'\n\
         assert c.subscribe('Entw&APw-rfe')[0] == 'OK'\n\
         assert c.subscribe('Lists.rust')[0] == 'OK'\n",
    );
    dc.lda(&mail("lda", "delivered by dovecot-lda"));
    let out = dc.python("dump('INBOX')\ndump('Lists.rust')\n");
    dc.stop();

    // 3. the store crate reads the same state
    for mailbox in ["INBOX", "Lists.rust"] {
        let (duidv, dview) = dovecot_view(&out, mailbox);
        let (suidv, sview) = store_view(&m, mailbox);
        assert_eq!(suidv, duidv, "{mailbox}");
        assert_eq!(sview, dview, "{mailbox}\n{out}");
    }
    let (_, dview) = dovecot_view(&out, "INBOX");
    assert_eq!(dview.len(), 8, "{out}");
    assert_eq!(dview["m1@pochta.test"].2, ["$Work", "\\Flagged"], "{out}");
    assert_eq!(
        dview["m5@pochta.test"].2,
        ["$NotJunk", "\\Draft", "\\Seen"],
        "{out}"
    );
    assert_eq!(dview["app@pochta.test"].2, ["$Appended", "\\Seen"], "{out}");
    assert_eq!(dview["lda@pochta.test"].0, 8, "{out}");
    let names: Vec<String> = m
        .list_mailboxes()
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, ["INBOX", "Entwürfe", "Lists.rust"]);
    let subs = m.subscriptions().unwrap();
    assert!(subs.contains(&"Lists.rust".to_string()), "{subs:?}");
    assert!(subs.contains(&"Entwürfe".to_string()), "{subs:?}");
    // and what we subscribe, Dovecot lists
    m.subscribe("Entwürfe.Sub").unwrap();
    m.unsubscribe("Lists.rust").unwrap();
    // Dovecot's quota plugin and we keep one maildirsize: same limits line, totals = the files
    let text = std::fs::read_to_string(dc.maildir().join("maildirsize")).unwrap();
    let ms = MaildirSize::parse(text.as_bytes()).unwrap();
    assert_eq!(ms.limit, limit);
    let usage = quota::scan_usage(&dc.maildir()).unwrap();
    assert_eq!((ms.bytes as u64, ms.messages as u64), usage, "{text}");
    // our flag changes and expunge, for Dovecot to see
    let inbox = m.inbox().unwrap();
    let st = inbox.sync(SyncOptions::default()).unwrap();
    let by_uid = |uid: u32| st.messages.iter().find(|x| x.uid == uid).unwrap();
    let answered = Flags::empty().with(SystemFlag::Answered);
    inbox
        .store_flags(by_uid(3), FlagOp::Add, answered, &["OurKw".to_string()])
        .unwrap();
    inbox
        .store_flags(
            by_uid(1),
            FlagOp::Remove,
            Flags::empty(),
            &["$Work".to_string()],
        )
        .unwrap();
    assert_eq!(inbox.expunge(&[by_uid(4).clone()]).unwrap(), [4]);

    // 4. and our next delivery continues Dovecot's UID sequence, visible to Dovecot
    let d = m
        .deliver(None, &mail("after", "after dovecot"), &plain)
        .unwrap();
    assert_eq!(d.uid, 9);
    chown_tree(&dc.dir.join("home"));
    dc.start();
    let out = dc.python(
        "dump('INBOX')\n\
         typ, d = c.lsub('\"\"', '*')\n\
         print('LSUB', sorted(x.decode().split(' ')[-1].strip('\"') for x in d))\n",
    );
    assert!(
        out.contains("LSUB ['Entw&APw-rfe', 'Entw&APw-rfe.Sub']"),
        "{out}"
    );
    let (_, dview) = dovecot_view(&out, "INBOX");
    assert_eq!(dview["after@pochta.test"].0, 9, "{out}");
    assert_eq!(dview["m3@pochta.test"].2, ["OurKw", "\\Answered"], "{out}");
    assert_eq!(dview["m1@pochta.test"].2, ["\\Flagged"], "{out}");
    assert!(!dview.contains_key("m4@pochta.test"), "{out}");
    let text = std::fs::read_to_string(dc.maildir().join("maildirsize")).unwrap();
    let ms = MaildirSize::parse(text.as_bytes()).unwrap();
    let usage = quota::scan_usage(&dc.maildir()).unwrap();
    assert_eq!((ms.bytes as u64, ms.messages as u64), usage, "{text}");
    let (_, sview) = store_view(&m, "INBOX");
    assert_eq!(sview, dview, "{out}");
    // Dovecot found nothing to complain about in what we wrote
    let log = dc.log();
    assert!(complaints(&log).is_empty(), "{log}");
}

/// Dovecot's own LDA and the store crate deliver into one Maildir at the same time: both take
/// `dovecot-uidlist.lock` the same way, so every message gets its own UID, and Dovecot imap and
/// the store crate list the same UIDs afterwards.
#[test]
fn concurrent_deliveries_with_dovecot_lda() {
    require_root("the Dovecot interop test (Dovecot's mail user must differ from root)");
    let dc = DovecotImap::new();
    let m = Maildir::open(dc.maildir());
    m.create_if_missing().unwrap();
    chown_tree(&dc.dir.join("home"));
    // the LDA looks the user up in the running Dovecot's auth service
    dc.start();
    let lda_runs = 25;
    // ours keep delivering (paced) until the LDA runs are over, so the two really overlap
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ours: Vec<_> = (0..4)
        .map(|t| {
            let m = m.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                // write as the mail user, from this thread only (like mda-lmtp does)
                let uid = nix::unistd::Uid::from_raw(MAIL_UID);
                let gid = nix::unistd::Gid::from_raw(MAIL_UID);
                nix::unistd::setfsgid(gid);
                nix::unistd::setfsuid(uid);
                let mut uids = Vec::new();
                for i in 0.. {
                    if done.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(15));
                    let id = format!("ours-{t}-{i}");
                    let d = m
                        .deliver(None, &mail(&id, "x"), &Default::default())
                        .unwrap();
                    uids.push((format!("{id}@pochta.test"), d.uid));
                }
                uids
            })
        })
        .collect();
    for i in 0..lda_runs {
        dc.lda(&mail(&format!("lda-{i}"), "y"));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut expected = BTreeMap::new();
    for t in ours {
        expected.extend(t.join().unwrap());
    }
    let out = dc.python("dump('INBOX')\n");
    let (duidv, dview) = dovecot_view(&out, "INBOX");
    assert!(
        expected.len() > 4 * 5,
        "too little overlap: {}",
        expected.len()
    );
    assert_eq!(dview.len(), expected.len() + lda_runs, "{out}");
    let mut uids: Vec<u32> = dview.values().map(|v| v.0).collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), dview.len(), "duplicate UIDs: {out}");
    for (mid, uid) in &expected {
        assert_eq!(dview.get(mid).map(|v| v.0), Some(*uid), "{mid}: {out}");
    }
    let (suidv, sview) = store_view(&m, "INBOX");
    assert_eq!(suidv, duidv);
    assert_eq!(sview, dview, "{out}");
    let log = dc.log();
    assert!(complaints(&log).is_empty(), "{log}");
}
