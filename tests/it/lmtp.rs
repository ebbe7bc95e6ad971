//! pochta-mda-lmtp against real peers: a test-started Postfix delivering through
//! `lmtp:unix:`, smtp-source load, a raw LMTP client for per-recipient replies and malformed
//! input, and a SIGKILL in the middle of a run. Recipients are looked up on the auth-userdb
//! socket of pochta-authd, or of a private Dovecot (passwd-file userdb) for the tests marked so.

use crate::config::daemon_bin;
use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DOMAIN: &str = "pochta.test";

fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody").unwrap().unwrap()
}

/// The uid daemons run as in tests (nobody when root, else ourselves).
fn test_uid() -> u32 {
    if nix::unistd::Uid::effective().is_root() {
        nobody().uid.as_raw()
    } else {
        nix::unistd::Uid::effective().as_raw()
    }
}

fn chown_test_user(p: &Path) {
    if nix::unistd::Uid::effective().is_root() {
        let u = nobody();
        nix::unistd::chown(p, Some(u.uid), Some(u.gid)).unwrap();
    }
}

fn which(tool: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{tool} is not installed: install the postfix and dovecot-core packages (run-tests does)"
    );
}

/// A private Dovecot serving only the auth-userdb socket from a passwd-file.
struct DovecotAuth {
    run: PathBuf,
}

impl DovecotAuth {
    /// `users`: (name, extra userdb fields like `userdb_quota_rule=*:storage=1k`).
    fn start(dir: &TempDir, users: &[(String, String)]) -> Self {
        let dovecot = which("dovecot");
        let base = dir.join("dovecot");
        let run = base.join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(base.join("state")).unwrap();
        let uid = test_uid();
        let mut passwd = String::new();
        for (name, extra) in users {
            let home = dir.join(&format!("home/{name}"));
            passwd.push_str(&format!(
                "{name}:{{PLAIN}}pw:{uid}:{uid}::{}::{extra}\n",
                home.display()
            ));
        }
        let users_file = base.join("users");
        std::fs::write(&users_file, passwd).unwrap();
        let conf = base.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {run}\nstate_dir = {state}\ninstance_name = {name}\n\
                 protocols = none\nlisten = 127.0.0.1\nlog_path = {log}\nssl = no\n\
                 auth_mechanisms = plain\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
                 service auth {{\n  unix_listener auth-userdb {{\n    mode = 0777\n  }}\n}}\n",
                run = run.display(),
                state = base.join("state").display(),
                name = base
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy(),
                log = base.join("dovecot.log").display(),
                users = users_file.display(),
            ),
        )
        .unwrap();
        // The master daemonizes and keeps stdio open: no pipes, or waiting for EOF hangs.
        let errors = base.join("start.err");
        let status = Command::new(dovecot)
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
        let d = DovecotAuth { run };
        wait_for(|| d.socket().exists(), "dovecot's auth-userdb socket");
        d
    }

    fn socket(&self) -> PathBuf {
        self.run.join("auth-userdb")
    }
}

impl Drop for DovecotAuth {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.run.join("master.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// pochta-authd serving the auth-userdb socket from a passwd-file.
struct Authd {
    daemon: Daemon,
    socket: PathBuf,
    /// Its own directory: the notify socket and daemon log are per directory.
    _dir: TempDir,
}

impl Authd {
    fn start(dir: &TempDir, users: &[(String, String)]) -> Self {
        let own = TempDir::new("lmtp-authd");
        let base = own.join("authd");
        std::fs::create_dir_all(&base).unwrap();
        let uid = test_uid();
        let mut passwd = String::new();
        for (name, extra) in users {
            let home = dir.join(&format!("home/{name}"));
            passwd.push_str(&format!(
                "{name}:{{PLAIN}}pw:{uid}:{uid}::{}::{extra}\n",
                home.display()
            ));
        }
        let users_file = base.join("users");
        std::fs::write(&users_file, passwd).unwrap();
        give_to_test_user(&users_file);
        let (client, socket) = (base.join("auth-client"), base.join("auth-userdb"));
        // 0666: a restricted userdb connection answers users whose uid is the peer's, which
        // holds here (every user has the daemons' uid), as with Dovecot's default socket.
        let cfg = format!(
            "[server]\nlog_level = \"debug\"\n\n[[listener]]\nservice = \"auth-client\"\n\
             address = \"{}\"\nmode = \"0666\"\n\n[[listener]]\nservice = \"auth-userdb\"\n\
             address = \"{}\"\nmode = \"0666\"\n\n[passdb]\npath = \"{}\"\n\n[userdb]\n\n[auth]\n",
            client.display(),
            socket.display(),
            users_file.display()
        );
        let path = base.join("authd.toml");
        std::fs::write(&path, as_test_user(&cfg)).unwrap();
        let mut notify = Notify::new(&own);
        let mut cmd = Command::new(daemon_bin("authd"));
        cmd.arg("-c").arg(&path);
        let mut daemon = Daemon::spawn(cmd, &own, &notify);
        notify.wait_for("READY=1", &mut daemon);
        Authd {
            daemon,
            socket,
            _dir: own,
        }
    }
}

/// Which real peer answers userdb lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    Authd,
    Dovecot,
}

enum Userdb {
    Authd(Authd),
    Dovecot(DovecotAuth),
}

impl Userdb {
    fn start(peer: Peer, dir: &TempDir, users: &[(String, String)]) -> Self {
        match peer {
            Peer::Authd => Userdb::Authd(Authd::start(dir, users)),
            Peer::Dovecot => Userdb::Dovecot(DovecotAuth::start(dir, users)),
        }
    }
    fn socket(&self) -> PathBuf {
        match self {
            Userdb::Authd(a) => a.socket.clone(),
            Userdb::Dovecot(d) => d.socket(),
        }
    }
    fn log(&self) -> String {
        match self {
            Userdb::Authd(a) => a.daemon.log(),
            Userdb::Dovecot(_) => String::new(),
        }
    }
}

/// A running pochta-mda-lmtp with its userdb.
struct Mda {
    daemon: Daemon,
    socket: PathBuf,
    mail: PathBuf,
    userdb: Userdb,
}

impl Mda {
    fn maildir(&self, user: &str) -> PathBuf {
        self.mail.join(DOMAIN).join(user).join("Maildir")
    }
}

fn users(names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| {
            let extra = if n.starts_with("full") {
                // 1 KiB: any real message goes over it.
                "userdb_quota_rule=*:storage=1k".to_owned()
            } else {
                String::new()
            };
            (format!("{n}@{DOMAIN}"), extra)
        })
        .collect()
}

fn start_mda(dir: &TempDir, users: &[(String, String)], extra: &str) -> Mda {
    start_mda_with(Peer::Authd, dir, users, extra)
}

fn start_mda_with(peer: Peer, dir: &TempDir, users: &[(String, String)], extra: &str) -> Mda {
    start_mda_cfg(peer, dir, users, "", extra, "")
}

/// `server`, `lmtp`, `delivery`: extra lines for those tables.
fn start_mda_cfg(
    peer: Peer,
    dir: &TempDir,
    users: &[(String, String)],
    server: &str,
    lmtp: &str,
    delivery: &str,
) -> Mda {
    let userdb = Userdb::start(peer, dir, users);
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    chown_test_user(&mail);
    let socket = dir.join("lmtp");
    let cfg = format!(
        "[server]\nlog_level = \"debug\"\n{server}\n\n[[listener]]\nservice = \"lmtp\"\n\
         address = \"{}\"\nmode = \"0666\"\n\n[lmtp]\nhostname = \"lmtp.test\"\n{lmtp}\n\n\
         [userdb]\nsocket = \"{}\"\n\n\
         [delivery]\nmail_location = \"{}/%d/%n/Maildir\"\n{delivery}\n",
        socket.display(),
        userdb.socket().display(),
        mail.display()
    );
    let path = dir.join("mda-lmtp.toml");
    std::fs::write(&path, as_test_user(&cfg)).unwrap();
    let mut notify = Notify::new(dir);
    let mut cmd = Command::new(daemon_bin("mda-lmtp"));
    cmd.arg("-c").arg(&path);
    let mut daemon = Daemon::spawn(cmd, dir, &notify);
    notify.wait_for("READY=1", &mut daemon);
    Mda {
        daemon,
        socket,
        mail,
        userdb,
    }
}

/// Files in a Maildir's new/ and cur/.
fn delivered(maildir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(maildir.join(sub)) {
            out.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

/// A raw LMTP client.
struct Lmtp {
    r: BufReader<UnixStream>,
}

impl Lmtp {
    fn connect(socket: &Path) -> Self {
        let s = UnixStream::connect(socket).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut c = Lmtp {
            r: BufReader::new(s),
        };
        let greeting = c.reply();
        assert!(greeting[0].starts_with("220 "), "{greeting:?}");
        c
    }
    fn send(&mut self, data: &[u8]) {
        self.r.get_mut().write_all(data).unwrap();
    }
    /// One reply, all its lines.
    fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            let n = self.r.read_line(&mut l).unwrap();
            assert!(n > 0, "server closed; got {lines:?}");
            let done = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l.trim_end().to_owned());
            if done {
                return lines;
            }
        }
    }
    fn cmd(&mut self, c: &str) -> String {
        self.send(format!("{c}\r\n").as_bytes());
        self.reply().pop().unwrap()
    }
    fn closed(&mut self) -> bool {
        let mut l = String::new();
        matches!(self.r.read_line(&mut l), Ok(0) | Err(_))
    }
}

fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A private Postfix relaying pochta.test to our LMTP socket; smtpd on a loopback port.
struct Postfix {
    conf: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Postfix {
    fn start(dir: &TempDir, lmtp_socket: &Path) -> Self {
        let postfix = which("postfix");
        let base = dir.join("postfix");
        let (conf, queue, data) = (base.join("etc"), base.join("spool"), base.join("data"));
        for d in [&conf, &queue, &data] {
            std::fs::create_dir_all(d).unwrap();
        }
        let pf = nix::unistd::User::from_name("postfix").unwrap().unwrap();
        nix::unistd::chown(&data, Some(pf.uid), None).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let port = free_port();
        let log = base.join("maillog");
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {queue}\ndata_directory = {data}\n\
                 mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mx.it.test\n\
                 mydomain = it.test\nmyorigin = $myhostname\nmydestination =\n\
                 inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
                 relay_domains = {DOMAIN}\n\
                 transport_maps = inline:{{ {DOMAIN}=lmtp:unix:{sock} }}\n\
                 in_flow_delay = 0\nsmtpd_peername_lookup = no\n\
                 smtp_dns_support_level = disabled\nlmtp_host_lookup = native\n\
                 alias_maps =\nalias_database =\nlocal_recipient_maps =\nbiff = no\n\
                 maillog_file = {log}\nmaillog_file_prefixes = /var, /dev/stdout, /tmp\n\
                 master_service_disable =\n",
                queue = queue.display(),
                data = data.display(),
                sock = lmtp_socket.display(),
                log = log.display(),
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd\n\
                 pickup unix n - n 60 1 pickup\ncleanup unix n - n - 0 cleanup\n\
                 qmgr unix n - n 300 1 qmgr\ntlsmgr unix - - n 1000? 1 tlsmgr\n\
                 rewrite unix - - n - - trivial-rewrite\nbounce unix - - n - 0 bounce\n\
                 defer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce\n\
                 verify unix - - n - 1 verify\nflush unix n - n 1000? 0 flush\n\
                 proxymap unix - - n - - proxymap\nproxywrite unix - - n - 1 proxymap\n\
                 smtp unix - - n - - smtp\nrelay unix - - n - - smtp\n\
                 showq unix n - n - - showq\nerror unix - - n - - error\n\
                 retry unix - - n - - error\ndiscard unix - - n - - discard\n\
                 lmtp unix - - n - - lmtp\nanvil unix - - n - 1 anvil\n\
                 scache unix - - n - 1 scache\npostlog unix-dgram n - n - 1 postlogd\n"
            ),
        )
        .unwrap();
        let errors = base.join("start.err");
        let status = Command::new(&postfix)
            .arg("-c")
            .arg(&conf)
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors).unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "postfix start failed: {}\n{}",
            std::fs::read_to_string(&errors).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        wait_for(
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "postfix smtpd",
        );
        Postfix { conf, port, log }
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

/// Sends one message through an SMTP server with a plain client (no dot-stuffing surprises).
fn smtp_send(port: u16, from: &str, to: &[&str], message: &[u8]) {
    let mut c = connect(port);
    let expect = |c: &mut LineClient<std::net::TcpStream>, code: &str| loop {
        let l = c.line();
        assert!(l.starts_with(code), "expected {code}, got {l:?}");
        if l.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect(&mut c, "220");
    c.send("EHLO client.it.test\r\n");
    expect(&mut c, "250");
    c.send(&format!("MAIL FROM:<{from}>\r\n"));
    expect(&mut c, "250");
    for t in to {
        c.send(&format!("RCPT TO:<{t}>\r\n"));
        expect(&mut c, "250");
    }
    c.send("DATA\r\n");
    expect(&mut c, "354");
    c.get_mut().write_all(&dot_stuff(message)).unwrap();
    expect(&mut c, "250");
    c.send("QUIT\r\n");
}

#[test]
fn postfix_delivers_through_lmtp_unix() {
    require_root("the Postfix peer");
    let dir = TempDir::new("lmtp-postfix");
    let mda = start_mda(&dir, &users(&["alice", "bob"]), "");
    let pf = Postfix::start(&dir, &mda.socket);
    // Dot lines, 8-bit bytes, trailing blanks, a long-ish line, tabs: all must arrive unchanged.
    let body_a: &[u8] =
        b"Hello Alice.\r\n.\r\n..two dots\r\n.leading\r\n\xd0\xbf\xd1\x80\xd0\xb8\r\n\
trailing   \r\n\tindented\r\n\r\n\r\nlast line\r\n";
    let long = "x".repeat(900);
    let body_b = format!("For Bob\r\n{long}\r\n-- \r\nsig\r\n");
    let msg = |to: &str, subject: &str, body: &[u8]| {
        let mut m = format!(
            "From: sender@ext.test\r\nTo: {to}\r\nSubject: {subject}\r\n\
             Message-ID: <{subject}@ext.test>\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n"
        )
        .into_bytes();
        m.extend_from_slice(body);
        m
    };
    let alice = format!("alice@{DOMAIN}");
    let bob = format!("bob@{DOMAIN}");
    let alice_tag = format!("alice+news@{DOMAIN}");
    smtp_send(
        pf.port,
        "sender@ext.test",
        &[&alice],
        &msg(&alice, "one", body_a),
    );
    smtp_send(
        pf.port,
        "sender@ext.test",
        &[&bob],
        &msg(&bob, "two", body_b.as_bytes()),
    );
    smtp_send(
        pf.port,
        "sender@ext.test",
        &[&alice_tag, &bob],
        &msg(&alice_tag, "three", b"3\r\n"),
    );
    let end = Instant::now() + Duration::from_secs(60);
    while (delivered(&mda.maildir("alice")).len() < 2 || delivered(&mda.maildir("bob")).len() < 2)
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let a = delivered(&mda.maildir("alice"));
    let b = delivered(&mda.maildir("bob"));
    assert_eq!(
        (a.len(), b.len()),
        (2, 2),
        "postfix log:\n{}\nmda log:\n{}",
        pf.log(),
        mda.daemon.log()
    );
    let read = |files: &[PathBuf]| -> Vec<Vec<u8>> {
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    };
    let find = |files: &[Vec<u8>], subject: &str| -> Vec<u8> {
        let needle = format!("Subject: {subject}\r\n");
        files
            .iter()
            .find(|f| f.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or_else(|| panic!("no message {subject}"))
            .clone()
    };
    let (fa, fb) = (read(&a), read(&b));
    for (file, rcpt, subject, body) in [
        (find(&fa, "one"), alice.as_str(), "one", body_a.to_vec()),
        (
            find(&fb, "two"),
            bob.as_str(),
            "two",
            body_b.clone().into_bytes(),
        ),
        (
            find(&fa, "three"),
            alice_tag.as_str(),
            "three",
            b"3\r\n".to_vec(),
        ),
        (find(&fb, "three"), bob.as_str(), "three", b"3\r\n".to_vec()),
    ] {
        let text = String::from_utf8_lossy(&file).into_owned();
        assert!(
            text.starts_with(&format!(
                "Return-Path: <sender@ext.test>\r\nDelivered-To: {rcpt}\r\nReceived: from "
            )),
            "{subject}: {text}"
        );
        assert!(text.contains("by lmtp.test with LMTP\r\n"), "{text}");
        let mut tail = b"\r\n\r\n".to_vec();
        tail.extend_from_slice(&body);
        assert!(file.ends_with(&tail), "{subject}: body differs:\n{text}");
    }
}

/// Runs smtp-source and checks its exit.
fn smtp_source(args: &[&str], socket: &Path) {
    let out = Command::new(which("smtp-source"))
        .args(args)
        .arg(format!("unix:{}", socket.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "smtp-source {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Received id line of a delivered file (unique per session).
fn received_id(file: &Path) -> String {
    let text = std::fs::read(file).unwrap();
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .find_map(|l| l.strip_prefix("\tid "))
        .unwrap_or_else(|| panic!("no Received id in {}", file.display()))
        .to_owned()
}

#[test]
fn smtp_source_1000_messages_exactly_once() {
    let dir = TempDir::new("lmtp-1000");
    let mda = start_mda_with(Peer::Dovecot, &dir, &users(&["alice"]), "");
    let to = format!("alice@{DOMAIN}");
    smtp_source(
        &[
            "-L",
            "-s",
            "10",
            "-m",
            "1000",
            "-f",
            "a@ext.test",
            "-t",
            &to,
        ],
        &mda.socket,
    );
    let files = delivered(&mda.maildir("alice"));
    assert_eq!(files.len(), 1000, "{}", mda.daemon.log());
    // smtp-source opens one session per message: 1000 distinct session ids = no duplicates.
    let ids: std::collections::HashSet<String> = files.iter().map(|f| received_id(f)).collect();
    assert_eq!(ids.len(), 1000);
}

#[test]
fn smtp_source_1000_messages_over_100_users() {
    let dir = TempDir::new("lmtp-100u");
    let names: Vec<String> = (1..=100).map(|k| format!("u{k}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mda = start_mda(&dir, &users(&refs), "");
    // Like ../shared/bench/lmtp_deliver.sh: 10 parallel workers, each through its users.
    let socket = mda.socket.clone();
    let workers: Vec<_> = (0..10)
        .map(|w| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                for k in (w + 1..=100).step_by(10) {
                    let to = format!("u{k}@{DOMAIN}");
                    smtp_source(
                        &["-L", "-s", "1", "-m", "10", "-f", "a@ext.test", "-t", &to],
                        &socket,
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut total = 0;
    for k in 1..=100 {
        let n = delivered(&mda.maildir(&format!("u{k}"))).len();
        assert_eq!(n, 10, "u{k} has {n} messages");
        total += n;
    }
    assert_eq!(total, 1000);
}

#[test]
fn per_recipient_replies_in_rcpt_order_authd() {
    per_recipient_replies(Peer::Authd);
}

#[test]
fn per_recipient_replies_in_rcpt_order_dovecot_userdb() {
    per_recipient_replies(Peer::Dovecot);
}

fn per_recipient_replies(peer: Peer) {
    let dir = TempDir::new("lmtp-replies");
    let mda = start_mda_with(peer, &dir, &users(&["alice", "bob", "full"]), "");
    let mut c = Lmtp::connect(&mda.socket);
    let caps = {
        c.send(b"LHLO mx.it.test\r\n");
        c.reply()
    };
    for cap in [
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SIZE 52428800",
        "SMTPUTF8",
        "CHUNKING",
    ] {
        assert!(
            caps.iter().any(|l| l[4..] == *cap),
            "{cap} missing in {caps:?}"
        );
    }
    assert_eq!(c.cmd("MAIL FROM:<s@ext.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd(&format!("RCPT TO:<alice@{DOMAIN}>")), "250 2.1.5 Ok");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<nobody@{DOMAIN}>")),
        format!("550 5.1.1 <nobody@{DOMAIN}> User doesn't exist: nobody@{DOMAIN}")
    );
    assert_eq!(c.cmd(&format!("RCPT TO:<full@{DOMAIN}>")), "250 2.1.5 Ok");
    assert_eq!(c.cmd(&format!("RCPT TO:<bob+x@{DOMAIN}>")), "250 2.1.5 Ok");
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    let body = format!("Subject: big\r\n\r\n{}\r\n", "y".repeat(4000));
    c.send(&dot_stuff(body.as_bytes()));
    let r1 = c.reply().pop().unwrap();
    let r2 = c.reply().pop().unwrap();
    let r3 = c.reply().pop().unwrap();
    assert!(
        r1.starts_with(&format!("250 2.0.0 <alice@{DOMAIN}> ")) && r1.ends_with(" Saved"),
        "{r1}\nmda:\n{}\nuserdb:\n{}",
        mda.daemon.log(),
        mda.userdb.log()
    );
    assert_eq!(
        r2,
        format!("552 5.2.2 <full@{DOMAIN}> Quota exceeded (mailbox for user is full)")
    );
    assert!(
        r3.starts_with(&format!("250 2.0.0 <bob+x@{DOMAIN}> ")),
        "{r3}"
    );
    assert_eq!(delivered(&mda.maildir("alice")).len(), 1);
    assert_eq!(delivered(&mda.maildir("bob")).len(), 1);
    assert_eq!(delivered(&mda.maildir("full")).len(), 0);
    // The session goes on: RSET and a second transaction on the same connection.
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    assert_eq!(c.cmd("MAIL FROM:<>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd(&format!("RCPT TO:<alice@{DOMAIN}>")), "250 2.1.5 Ok");
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    c.send(b"Subject: small\r\n\r\nhi\r\n.\r\n");
    assert!(c.reply()[0].starts_with("250 2.0.0 "));
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    let files = delivered(&mda.maildir("alice"));
    assert_eq!(files.len(), 2);
    let bounce = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|t| t.contains("Subject: small"))
        .unwrap();
    assert!(bounce.starts_with("Return-Path: <>\r\n"), "{bounce}");
}

#[test]
fn malformed_input_bare_lf_and_oversize() {
    let dir = TempDir::new("lmtp-malformed");
    let mda = start_mda(&dir, &users(&["alice"]), "max_message_size = \"2k\"");
    let mut c = Lmtp::connect(&mda.socket);
    assert_eq!(c.cmd("LHLO"), "501 5.5.4 Syntax: LHLO hostname");
    assert_eq!(c.cmd("LHLO bad_host!"), "501 5.5.4 Invalid hostname");
    assert_eq!(
        c.cmd("EHLO x.test"),
        "500 5.5.2 Error: command not recognized"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.test>"),
        "503 5.5.1 Error: send LHLO first"
    );
    c.send(b"LHLO mx.it.test\r\n");
    c.reply();
    assert!(c.cmd("MAIL FROM:<a@@b>").starts_with("501 5.1.7 "));
    assert!(c
        .cmd("MAIL FROM:<a@b.test> BOGUS=1")
        .starts_with("555 5.5.4 "));
    assert!(c
        .cmd("MAIL FROM:<a@b.test> SIZE=3000")
        .starts_with("552 5.3.4 "));
    assert_eq!(c.cmd("MAIL FROM:<a@b.test>"), "250 2.1.0 Ok");
    assert!(c.cmd("RCPT TO:<alice>").starts_with("501 5.1.3 "));
    assert!(c.cmd("RCPT TO:<alice@x").starts_with("501 5.1.3 "));
    assert_eq!(c.cmd("DATA"), "503 5.5.1 No valid recipients");
    assert_eq!(c.cmd(&format!("RCPT TO:<alice@{DOMAIN}>")), "250 2.1.5 Ok");
    // Bare LFs: normalized to CRLF; LF.LF does not end the data.
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    c.send(b"Subject: lf\n\nline\n.\nstill data\r\n.\r\n");
    assert!(c.reply()[0].starts_with("250 2.0.0 "));
    let files = delivered(&mda.maildir("alice"));
    assert_eq!(files.len(), 1);
    let text = std::fs::read(&files[0]).unwrap();
    assert!(text.ends_with(b"Subject: lf\r\n\r\nline\r\n.\r\nstill data\r\n"));
    // Oversize: read to the end, refused, nothing stored, session still usable.
    assert_eq!(c.cmd("MAIL FROM:<a@b.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd(&format!("RCPT TO:<alice@{DOMAIN}>")), "250 2.1.5 Ok");
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    c.send(&dot_stuff(format!("{}\r\n", "z".repeat(5000)).as_bytes()));
    assert_eq!(c.reply()[0], "552 5.3.4 Message size exceeds fixed limit");
    assert_eq!(delivered(&mda.maildir("alice")).len(), 1);
    // An over-long command line is drained and refused.
    assert_eq!(c.cmd(&"N".repeat(5000)), "500 5.5.0 Error: line too long");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    assert!(c.closed());
}

#[test]
fn bare_lf_reject_mode() {
    let dir = TempDir::new("lmtp-barelf");
    let mda = start_mda(&dir, &users(&["alice"]), "bare_lf = \"reject\"");
    let mut c = Lmtp::connect(&mda.socket);
    c.send(b"LHLO mx.it.test\r\n");
    c.reply();
    c.send(format!("MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@{DOMAIN}>\r\nDATA\r\n").as_bytes());
    assert_eq!(c.reply()[0], "250 2.1.0 Ok");
    assert_eq!(c.reply()[0], "250 2.1.5 Ok");
    assert_eq!(c.reply()[0], "354 End data with <CR><LF>.<CR><LF>");
    c.send(b"a\nb\r\n.\r\n");
    assert_eq!(c.reply()[0], "550 5.5.2 Error: bare <LF> received");
    assert_eq!(delivered(&mda.maildir("alice")).len(), 0);
}

#[test]
fn client_vanishing_mid_data_delivers_nothing() {
    let dir = TempDir::new("lmtp-vanish");
    let mut mda = start_mda(&dir, &users(&["alice"]), "");
    for cut in [false, true] {
        let mut c = Lmtp::connect(&mda.socket);
        c.send(b"LHLO mx.it.test\r\n");
        c.reply();
        c.send(format!("MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@{DOMAIN}>\r\nDATA\r\n").as_bytes());
        for _ in 0..3 {
            c.reply();
        }
        c.send(b"Subject: half\r\n\r\nsome of the body\r\n");
        if cut {
            // Half the end marker, then gone.
            c.send(b".");
        }
        drop(c);
    }
    // The daemon is alive and serves the next client.
    let mut c = Lmtp::connect(&mda.socket);
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    assert!(mda.daemon.try_exit().is_none());
    let md = mda.maildir("alice");
    assert_eq!(delivered(&md).len(), 0);
    let tmp = std::fs::read_dir(md.join("tmp")).map_or(0, |d| d.count());
    assert_eq!(tmp, 0, "half messages must not even reach tmp/");
}

#[test]
fn sigkill_mid_run_loses_no_acknowledged_message() {
    let dir = TempDir::new("lmtp-kill");
    let mut mda = start_mda_with(Peer::Dovecot, &dir, &users(&["alice", "bob"]), "");
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..10)
        .map(|w| {
            let (socket, acked, stop) = (mda.socket.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..100 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(s) = UnixStream::connect(&socket) else {
                        return;
                    };
                    s.set_read_timeout(Some(DEADLINE)).unwrap();
                    let mut c = Lmtp {
                        r: BufReader::new(s),
                    };
                    let mut line = String::new();
                    if c.r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let marker = format!("w{w}-m{i}");
                    let body = format!(
                        "Subject: {marker}\r\n\r\n{}\r\nend {marker}\r\n",
                        "k".repeat(3000)
                    );
                    let mut wire = format!(
                        "LHLO w.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@{DOMAIN}>\r\n\
                         RCPT TO:<bob@{DOMAIN}>\r\nDATA\r\n"
                    )
                    .into_bytes();
                    wire.extend(dot_stuff(body.as_bytes()));
                    if c.r.get_mut().write_all(&wire).is_err() {
                        return;
                    }
                    // LHLO (multi-line), MAIL, 2×RCPT, 354, then one reply per recipient.
                    let mut replies = Vec::new();
                    loop {
                        let mut l = String::new();
                        match c.r.read_line(&mut l) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                if l.as_bytes().get(3) == Some(&b' ') {
                                    replies.push(l.trim_end().to_owned());
                                }
                                if replies.len() == 7 {
                                    break;
                                }
                            }
                        }
                    }
                    for (r, user) in replies.iter().skip(5).zip(["alice", "bob"]) {
                        if r.starts_with("250 ") {
                            acked
                                .lock()
                                .unwrap()
                                .push((user.to_owned(), marker.clone()));
                        }
                    }
                }
            })
        })
        .collect();
    wait_for(
        || acked.lock().unwrap().len() >= 300,
        "300 acknowledged deliveries",
    );
    mda.daemon.signal(nix::sys::signal::Signal::SIGKILL);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    mda.daemon.wait_exit(DEADLINE);
    let acked = acked.lock().unwrap().clone();
    for user in ["alice", "bob"] {
        let files = delivered(&mda.maildir(user));
        let mut markers = std::collections::HashSet::new();
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let text = String::from_utf8_lossy(&data);
            let marker = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_else(|| panic!("{}: no subject: partial file?", f.display()))
                .to_owned();
            // Complete: the body's last line is there, and the size in the name matches.
            assert!(
                text.ends_with(&format!("end {marker}\r\n")),
                "{}: partial file in new/ or cur/",
                f.display()
            );
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(s) = name.split(",S=").nth(1) {
                let size: u64 = s.split([',', ':']).next().unwrap().parse().unwrap();
                assert_eq!(size, data.len() as u64, "{name}");
            }
            assert!(
                markers.insert(marker.clone()),
                "{user}: {marker} stored twice"
            );
        }
        for (u, m) in &acked {
            if u == user {
                assert!(markers.contains(m), "{user}: acknowledged {m} is missing");
            }
        }
    }
}

#[test]
fn per_user_ids_when_running_as_root() {
    require_root("per-user uid/gid");
    let dir = TempDir::new("lmtp-ids");
    let user = |name: &str, uid: u32| {
        (
            format!("{name}@{DOMAIN}"),
            format!("userdb_uid={uid} userdb_gid={uid}"),
        )
    };
    let users = [
        user("alice", 5001),
        user("bob", 5002),
        user("carol", 5003),
        user("low", 100),
    ];
    // Like Dovecot: the users' mail directories must be theirs; carol's is not there, and
    // the domain directory is root's, so her delivery must fail as her, not succeed as root.
    let domain = dir.join(&format!("mail/{DOMAIN}"));
    for (name, uid) in [("alice", 5001), ("bob", 5002)] {
        let d = domain.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let id = Some(nix::unistd::Uid::from_raw(uid));
        nix::unistd::chown(&d, id, Some(nix::unistd::Gid::from_raw(uid))).unwrap();
    }
    std::fs::set_permissions(&domain, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mda = start_mda_cfg(
        Peer::Dovecot,
        &dir,
        &users,
        "user = \"root\"",
        "",
        "per_user_ids = true",
    );
    let mut c = Lmtp::connect(&mda.socket);
    c.send(b"LHLO mx.it.test\r\n");
    c.reply();
    assert_eq!(c.cmd("MAIL FROM:<s@ext.test>"), "250 2.1.0 Ok");
    for u in ["alice", "bob", "carol"] {
        assert_eq!(c.cmd(&format!("RCPT TO:<{u}@{DOMAIN}>")), "250 2.1.5 Ok");
    }
    assert_eq!(
        c.cmd(&format!("RCPT TO:<low@{DOMAIN}>")),
        format!("451 4.3.0 <low@{DOMAIN}> Temporary internal error")
    );
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    c.send(b"Subject: ids\r\n\r\nhi\r\n.\r\n");
    let replies: Vec<String> = (0..3).map(|_| c.reply().pop().unwrap()).collect();
    assert!(replies[0].starts_with("250 2.0.0 <alice@"), "{replies:?}");
    assert!(replies[1].starts_with("250 2.0.0 <bob@"), "{replies:?}");
    assert_eq!(
        replies[2],
        format!("451 4.3.0 <carol@{DOMAIN}> Temporary internal error"),
        "{}",
        mda.daemon.log()
    );
    use std::os::unix::fs::MetadataExt;
    for (name, uid) in [("alice", 5001), ("bob", 5002)] {
        let md = mda.maildir(name);
        let files = delivered(&md);
        assert_eq!(files.len(), 1);
        for p in [files[0].clone(), md.join("new"), md.join("dovecot-uidlist")] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (uid, uid), "{}", p.display());
        }
    }
    assert!(!domain.join("carol").exists());
}

/// Replays a transcript (mda-lmtp/transcripts/*.txt) over the socket: `C:` lines are sent with
/// CRLF, `R:` raw with `\r` `\n` escapes (consecutive client lines go out in one write), `S:`
/// is the next server line exactly, `S^` its prefix, `E: close` the end of the connection.
fn replay(socket: &Path, name: &str, text: &str) {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", n + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tag, rest) = line.split_at(3.min(line.len()));
        match tag {
            "C: " => {
                out.extend_from_slice(rest.as_bytes());
                out.extend_from_slice(b"\r\n");
                continue;
            }
            "R: " => {
                out.extend(rest.replace("\\r", "\r").replace("\\n", "\n").bytes());
                continue;
            }
            _ => {}
        }
        if !out.is_empty() {
            r.get_mut().write_all(&out).unwrap();
            out.clear();
        }
        let mut got = String::new();
        let n = r.read_line(&mut got).unwrap_or(0);
        let got = got.trim_end_matches(['\r', '\n']);
        match tag {
            "S: " => assert_eq!(got, rest, "{at}"),
            "S^ " => assert!(
                got.starts_with(rest),
                "{at}: {got:?} does not start {rest:?}"
            ),
            "E: " => assert_eq!(n, 0, "{at}: expected the server to close, got {got:?}"),
            _ => panic!("{at}: bad transcript line {line:?}"),
        }
    }
}

#[test]
fn transcripts_over_the_socket() {
    let dir = TempDir::new("lmtp-transcripts");
    let mda = start_mda(&dir, &users(&["alice", "bob", "full"]), "");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(root.join("mda-lmtp/transcripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txt") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            replay(&mda.socket, &name, &std::fs::read_to_string(&path).unwrap());
            n += 1;
        }
    }
    assert!(n >= 1);
    assert_eq!(delivered(&mda.maildir("alice")).len(), 1);
    assert_eq!(delivered(&mda.maildir("bob")).len(), 2);
    assert_eq!(delivered(&mda.maildir("full")).len(), 0);
}

#[test]
fn tcp_listener_and_lf_storage() {
    let dir = TempDir::new("lmtp-tcp");
    let port = free_port();
    let tcp = format!("\n[[listener]]\nservice = \"lmtp\"\naddress = \"127.0.0.1:{port}\"\n");
    let users = users(&["alice"]);
    let mda = start_mda_cfg(Peer::Authd, &dir, &users, &tcp, "", "save_crlf = false");
    let mut c = connect(port);
    assert!(c.line().starts_with("220 lmtp.test "));
    c.send("LHLO mx.it.test\r\n");
    while c.line().starts_with("250-") {}
    assert_eq!(c.cmd("MAIL FROM:<s@ext.test>"), "250 2.1.0 Ok\r\n");
    assert_eq!(
        c.cmd(&format!("RCPT TO:<alice@{DOMAIN}>")),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send("Subject: tcp\r\n\r\nline\rwith CR\r\n.\r\n");
    assert!(c
        .line()
        .starts_with(&format!("250 2.0.0 <alice@{DOMAIN}> ")));
    let files = delivered(&mda.maildir("alice"));
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("Received: from mx.it.test ([127.0.0.1])\n"),
        "{text}"
    );
    assert!(
        text.ends_with("Subject: tcp\n\nline\rwith CR\n"),
        "{text:?}"
    );
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains(&format!(",S={},", text.len())), "{name}");
}

#[test]
fn starttls_on_tcp() {
    let dir = TempDir::new("lmtp-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    write_cert(&cert, &key);
    let port = free_port();
    let extra = format!(
        "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n[[listener]]\nservice = \"lmtp\"\n\
         address = \"127.0.0.1:{port}\"\ntls = \"starttls\"\n",
        cert.display(),
        key.display()
    );
    let mda = start_mda_cfg(Peer::Authd, &dir, &users(&["alice"]), &extra, "", "");
    let caps = |c: &mut dyn FnMut() -> String| {
        let mut all = Vec::new();
        loop {
            let l = c();
            all.push(l.trim_end().to_owned());
            if !l.starts_with("250-") {
                return all;
            }
        }
    };
    // Plaintext pipelined behind STARTTLS is an injection attempt: 220, then the end.
    let mut c = connect(port);
    c.line();
    c.send("LHLO mx.it.test\r\n");
    assert!(caps(&mut || c.line()).contains(&"250-STARTTLS".to_owned()));
    c.send("STARTTLS\r\nRSET\r\n");
    assert_eq!(c.line(), "220 2.0.0 Ready to start TLS\r\n");
    // The server must not answer the injected RSET in plaintext.
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(c.get_mut(), &mut rest);
    assert!(!rest.contains("250"), "{rest:?}");

    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut c = LineClient::new(tcp);
    c.line();
    assert_eq!(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
    let tcp = c.get_mut().try_clone().unwrap();
    let mut t = LineClient::new(tls_wrap(tcp));
    t.send("LHLO mx.it.test\r\n");
    let after = caps(&mut || t.line());
    assert!(!after.iter().any(|l| l.contains("STARTTLS")), "{after:?}");
    assert_eq!(t.cmd("MAIL FROM:<s@ext.test>"), "250 2.1.0 Ok\r\n");
    assert_eq!(
        t.cmd(&format!("RCPT TO:<alice@{DOMAIN}>")),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(t.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    t.send("Subject: tls\r\n\r\nsecret\r\n.\r\n");
    assert!(t.line().starts_with("250 2.0.0 "));
    let files = delivered(&mda.maildir("alice"));
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains(" with LMTPS\r\n"), "{text}");
}
