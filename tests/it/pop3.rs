//! pochta-pop3d against real peers: python poplib over STLS and POP3S, logging in through
//! pochta-authd, on a Maildir written by a private Dovecot (LMTP delivery); the same Maildir
//! served by Dovecot's own pop3 is the reference for UIDL, LIST sizes and RETR/TOP bytes.
//! Plus the refusals: plaintext login without TLS, wrong password (delayed by authd), bad
//! input, plaintext injected after STLS, DELE then QUIT vs. a cut connection.

use crate::authd::Authd;
use crate::config::daemon_bin;
use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "alice@pochta.test";
const PASS: &str = "wonderland";
const MESSAGES: usize = 1000;

fn which(tool: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{tool} is not installed: install dovecot-core, dovecot-pop3d, dovecot-lmtpd (run-tests)"
    );
}

/// (uid, gid) the daemons and the mail belong to: nobody when root, else ourselves.
fn mail_owner() -> (u32, u32) {
    if nix::unistd::Uid::effective().is_root() {
        let u = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        (u.uid.as_raw(), u.gid.as_raw())
    } else {
        (
            nix::unistd::Uid::effective().as_raw(),
            nix::unistd::Gid::effective().as_raw(),
        )
    }
}

fn chown(p: &Path) {
    if nix::unistd::Uid::effective().is_root() {
        let (u, g) = mail_owner();
        nix::unistd::chown(
            p,
            Some(nix::unistd::Uid::from_raw(u)),
            Some(nix::unistd::Gid::from_raw(g)),
        )
        .unwrap();
    }
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str, log: &dyn Fn() -> String) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}\n{}", log());
}

/// A private Dovecot: LMTP (delivery into the Maildirs) and pop3 (the reference server).
struct Dovecot {
    base: PathBuf,
    pop3_port: u16,
}

impl Dovecot {
    fn start(dir: &TempDir, passwd: &Path) -> Self {
        let dovecot = which("dovecot");
        let base = dir.join("dovecot");
        let run = base.join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(base.join("state")).unwrap();
        let pop3_port = free_port();
        let conf = base.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {run}\nstate_dir = {state}\ninstance_name = pochta-pop3-{id}\n\
                 protocols = pop3 lmtp\nlisten = 127.0.0.1\nlog_path = {log}\nssl = no\n\
                 disable_plaintext_auth = no\nauth_mechanisms = plain\n\
                 mail_location = maildir:~/Maildir\nfirst_valid_uid = 1\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
                 service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    \
                 port = {pop3_port}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n\
                 service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n",
                run = run.display(),
                state = base.join("state").display(),
                id = std::process::id(),
                log = base.join("dovecot.log").display(),
                users = passwd.display(),
            ),
        )
        .unwrap();
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
        let d = Dovecot { base, pop3_port };
        wait_for(
            || d.base.join("run/lmtp").exists() && connect_ok(d.pop3_port),
            "dovecot's lmtp socket and pop3 port",
            &|| d.log(),
        );
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
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
}

fn connect_ok(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The messages delivered: CRLF text with lines that need dot-stuffing, a lone dot, 8-bit
/// bytes and a long line.
fn message(i: usize) -> String {
    let mut m = format!(
        "From: Sender {i} <s{i}@example.org>\r\nTo: {USER}\r\nSubject: message {i}\r\n\
         Message-ID: <{i}.pop3@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         body of {i}\r\n.leading dot\r\n.\r\n..two\r\nd\u{e9}j\u{e0} vu\r\n"
    );
    for k in 0..(i % 7) {
        m.push_str(&format!("line {k} {}\r\n", "x".repeat(i % 97)));
    }
    m
}

fn dot_stuff(m: &str) -> String {
    m.split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_owned()
            }
        })
        .collect()
}

/// Delivers messages through Dovecot LMTP on one connection.
fn lmtp_deliver(socket: &Path, rcpt: &str, messages: impl Iterator<Item = String>) {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let reply = |r: &mut BufReader<UnixStream>| -> String {
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return l;
            }
        }
    };
    assert!(reply(&mut r).starts_with("220"));
    w.write_all(b"LHLO test\r\n").unwrap();
    assert!(reply(&mut r).starts_with("250"));
    for m in messages {
        w.write_all(
            format!("MAIL FROM:<sender@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n").as_bytes(),
        )
        .unwrap();
        for expect in ["250", "250", "354"] {
            let l = reply(&mut r);
            assert!(l.starts_with(expect), "LMTP: {l}");
        }
        w.write_all(dot_stuff(&m).as_bytes()).unwrap();
        w.write_all(b".\r\n").unwrap();
        let l = reply(&mut r);
        assert!(l.starts_with("250"), "LMTP DATA: {l}");
    }
    w.write_all(b"QUIT\r\n").unwrap();
}

/// Everything a POP3 client sees, dumped by python poplib as `key<TAB>value` lines.
const POPLIB: &str = r#"
import poplib, ssl, sys, base64, time
host, port, mode, user, pw, action = sys.argv[1:7]
ctx = ssl._create_unverified_context()
def out(k, v):
    print(f"{k}\t{v}")
def b64(lines):
    return base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode()
if mode == "ssl":
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=30)
else:
    p = poplib.POP3(host, int(port), timeout=30)
    if mode == "stls":
        p.stls(context=ctx)
for c in sorted(p.capa().keys()):
    out("capa", c)
if action in ("badpass", "plainuser"):
    t = time.monotonic()
    try:
        p.user(user)
        if action == "badpass":
            p.pass_(pw)
        out("reply", "accepted")
    except poplib.error_proto as e:
        out("reply", e.args[0].decode())
    out("elapsed", time.monotonic() - t)
    sys.exit(0)
p.user(user)
p.pass_(pw)
n, size = p.stat()
out("stat", f"{n} {size}")
for l in p.list()[1]:
    out("list", l.decode())
for l in p.uidl()[1]:
    out("uidl", l.decode())
if action == "dump":
    for i in range(1, n + 1):
        resp, lines, octets = p.retr(i)
        out("retr", resp.decode() + "\t" + b64(lines))
    for i in (1, 2, n):
        out("top", b64(p.top(i, 2)[1]))
    p.quit()
elif action.startswith("dele:"):
    for i in action[5:].split(","):
        out("dele", p.dele(int(i)).decode())
    out("quit", p.quit().decode())
elif action.startswith("cut:"):
    for i in action[4:].split(","):
        p.dele(int(i))
    p.sock.close()
else:
    p.quit()
"#;

/// The `key<TAB>value` lines of a poplib run.
struct Dump(Vec<(String, String)>);

impl Dump {
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn one(&self, k: &str) -> String {
        self.all(k)
            .pop()
            .unwrap_or_else(|| panic!("no {k} in {:?}", self.0))
    }
}

fn poplib(port: u16, mode: &str, user: &str, pass: &str, action: &str) -> Dump {
    poplib_ctx(port, mode, user, pass, action, &String::new)
}

fn poplib_ctx(
    port: u16,
    mode: &str,
    user: &str,
    pass: &str,
    action: &str,
    logs: &dyn Fn() -> String,
) -> Dump {
    let out = Command::new("python3")
        .args([
            "-c",
            POPLIB,
            "127.0.0.1",
            &port.to_string(),
            mode,
            user,
            pass,
            action,
        ])
        .output()
        .expect("python3 is needed (run-tests installs it)");
    assert!(
        out.status.success(),
        "poplib {mode} {action} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    Dump(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn b64(s: &str) -> Vec<u8> {
    // Decoder for the dumps: standard alphabet with padding.
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// pochta-authd, a Dovecot with LMTP + pop3 sharing its passwd-file, and pochta-pop3d.
struct Setup {
    pop3d_dir: TempDir,
    authd: Authd,
    dovecot: Dovecot,
    pop3d: Daemon,
    plain_port: u16,
    tls_port: u16,
    /// A third listener with `max_connections = 1` and `idle_timeout = "1s"`.
    limited_port: u16,
    maildir: PathBuf,
    /// Last: fields drop in order, and Dovecot's Drop reads its master.pid from here.
    _dir: TempDir,
}

impl Setup {
    fn start() -> Self {
        let dir = TempDir::new("pop3");
        let (uid, gid) = mail_owner();
        let home = dir.join("home");
        std::fs::create_dir_all(home.join("alice")).unwrap();
        chown(&home);
        chown(&home.join("alice"));
        std::fs::create_dir_all(home.join("bob")).unwrap();
        chown(&home.join("bob"));
        // bob receives what getmail6 fetches from alice (through Dovecot LMTP).
        let passwd = format!(
            "{USER}:{{PLAIN}}{PASS}:{uid}:{gid}::{}::\n\
             bob@pochta.test:{{PLAIN}}{PASS}:{uid}:{gid}::{}::\n",
            home.join("alice").display(),
            home.join("bob").display()
        );
        let passwd_file = dir.join("users");
        std::fs::write(&passwd_file, &passwd).unwrap();
        let authd = Authd::start(
            &passwd,
            "mechanisms = [\"PLAIN\", \"LOGIN\", \"CRAM-MD5\"]\nfailure_delay = \"1s\"",
        );
        // The shared Authd helper makes auth-userdb 0660 root-owned; pop3d reaches it as the
        // mail user, as `owner = "vmail"` would in a real config.
        chown(&authd.userdb);
        let dovecot = Dovecot::start(&dir, &passwd_file);

        let pop3d_dir = TempDir::new("pop3d");
        let (cert, key) = (pop3d_dir.join("cert.pem"), pop3d_dir.join("key.pem"));
        write_cert(&cert, &key);
        let (plain_port, tls_port, limited_port) = (free_port(), free_port(), free_port());
        let config = format!(
            "[server]\nlog_level = \"debug\"\n\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [[listener]]\nservice = \"pop3\"\naddress = \"127.0.0.1:{plain_port}\"\n\
             tls = \"starttls\"\n\n\
             [[listener]]\nservice = \"pop3s\"\naddress = \"127.0.0.1:{tls_port}\"\n\
             tls = \"implicit\"\n\n\
             [[listener]]\nservice = \"pop3\"\naddress = \"127.0.0.1:{limited_port}\"\n\
             max_connections = 1\nidle_timeout = \"1s\"\n\n\
             [auth]\nclient_socket = \"{}\"\nuserdb_socket = \"{}\"\n\n\
             [mail]\nlocation = \"{}/%n/Maildir\"\n",
            cert.display(),
            key.display(),
            authd.client.display(),
            authd.userdb.display(),
            home.display(),
        );
        let cfg = pop3d_dir.join("pop3d.toml");
        std::fs::write(&cfg, as_test_user(&config)).unwrap();
        let mut notify = Notify::new(&pop3d_dir);
        let mut cmd = Command::new(daemon_bin("pop3d"));
        cmd.arg("-c").arg(&cfg);
        let mut pop3d = Daemon::spawn(cmd, &pop3d_dir, &notify);
        notify.wait_for("READY=1", &mut pop3d);
        Setup {
            maildir: home.join("alice/Maildir"),
            _dir: dir,
            pop3d_dir,
            authd,
            dovecot,
            pop3d,
            plain_port,
            tls_port,
            limited_port,
        }
    }

    fn logs(&self) -> String {
        format!(
            "pop3d:\n{}\nauthd:\n{}\ndovecot:\n{}",
            self.pop3d.log(),
            self.authd.log(),
            self.dovecot.log()
        )
    }
}

fn seen_files(maildir: &Path) -> (usize, usize) {
    let mut seen = 0;
    let mut all = 0;
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(maildir.join(sub)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            all += 1;
            if name.split_once(":2,").is_some_and(|(_, f)| f.contains('S')) {
                seen += 1;
            }
        }
    }
    (seen, all)
}

#[test]
fn poplib_over_stls_and_pop3s_matches_dovecot_pop3() {
    require_root("the private Dovecot (LMTP delivers as the mail user)");
    let s = Setup::start();
    lmtp_deliver(
        &s.dovecot.base.join("run/lmtp"),
        USER,
        (1..=MESSAGES).map(message),
    );
    let ctx = || s.logs();

    // Dovecot pop3 serves the Maildir first (UIDLs only).
    let dc = poplib(s.dovecot.pop3_port, "plain", USER, PASS, "list");
    assert_eq!(
        dc.one("stat").split(' ').next(),
        Some(MESSAGES.to_string().as_str())
    );

    // pochta over STLS: everything, bodies included.
    let ours = poplib_ctx(s.plain_port, "stls", USER, PASS, "dump", &ctx);
    assert_eq!(
        ours.all("uidl"),
        dc.all("uidl"),
        "UIDL differs from Dovecot's"
    );
    assert_eq!(
        ours.all("list"),
        dc.all("list"),
        "LIST differs from Dovecot's"
    );
    assert_eq!(ours.one("stat"), dc.one("stat"));
    let retr = ours.all("retr");
    assert_eq!(retr.len(), MESSAGES);
    let sizes = ours.all("list");
    for (i, r) in retr.iter().enumerate() {
        let (resp, b) = r.split_once('\t').unwrap();
        let body = b64(b);
        let delivered = message(i + 1);
        assert!(
            body.ends_with(delivered.as_bytes()),
            "message {} is not what was delivered:\n{}",
            i + 1,
            String::from_utf8_lossy(&body)
        );
        let size: usize = sizes[i].split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(
            body.len(),
            size,
            "message {}: LIST size != RETR octets",
            i + 1
        );
        assert_eq!(resp, format!("+OK {size} octets"));
    }
    // RETR marked every message \Seen at QUIT, as Dovecot does.
    assert_eq!(seen_files(&s.maildir), (MESSAGES, MESSAGES), "{}", ctx());

    // Dovecot's RETR/TOP bytes are the same as ours.
    let dc = poplib(s.dovecot.pop3_port, "plain", USER, PASS, "dump");
    let dc_retr = dc.all("retr");
    assert_eq!(dc_retr.len(), MESSAGES);
    for (i, (a, b)) in retr.iter().zip(&dc_retr).enumerate() {
        let body = |r: &str| r.split_once('\t').unwrap().1.to_owned();
        assert_eq!(body(a), body(b), "RETR {} differs from Dovecot's", i + 1);
    }
    assert_eq!(ours.all("top"), dc.all("top"), "TOP differs from Dovecot's");

    // POP3S (implicit TLS) gives the same view.
    let tls = poplib(s.tls_port, "ssl", USER, PASS, "list");
    assert_eq!(tls.all("uidl"), ours.all("uidl"));
    assert!(!tls.all("capa").contains(&"STLS".to_owned()));

    // A connection cut after DELE deletes nothing.
    poplib(s.tls_port, "ssl", USER, PASS, "cut:1,2,3");
    let after = poplib(s.tls_port, "ssl", USER, PASS, "list");
    assert_eq!(after.all("uidl"), ours.all("uidl"), "{}", ctx());

    // DELE + QUIT removes exactly those messages; Dovecot agrees on the rest.
    let uidls = ours.all("uidl");
    let del = poplib(s.plain_port, "stls", USER, PASS, "dele:2,500,1000");
    assert_eq!(del.one("quit"), "+OK Logging out, messages deleted.");
    let after = poplib(s.plain_port, "stls", USER, PASS, "list");
    let expect: Vec<String> = uidls
        .iter()
        .enumerate()
        .filter(|(i, _)| ![1, 499, 999].contains(i))
        .map(|(_, u)| u.split(' ').nth(1).unwrap().to_owned())
        .collect();
    let got: Vec<String> = after
        .all("uidl")
        .iter()
        .map(|u| u.split(' ').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(got, expect);
    let dc = poplib(s.dovecot.pop3_port, "plain", USER, PASS, "list");
    assert_eq!(dc.all("uidl"), after.all("uidl"), "{}", ctx());
    assert_eq!(seen_files(&s.maildir).1, MESSAGES - 3);
}

#[test]
fn refusals_plaintext_wrong_password_bad_input() {
    require_root("the private Dovecot (LMTP delivers as the mail user)");
    let s = Setup::start();
    lmtp_deliver(&s.dovecot.base.join("run/lmtp"), USER, (1..=3).map(message));

    // No TLS: CAPA hides USER and the plaintext mechanisms; USER is refused.
    let plain = poplib(s.plain_port, "plain", USER, PASS, "plainuser");
    let capa = plain.all("capa");
    assert!(
        capa.contains(&"STLS".to_owned()) && !capa.contains(&"USER".to_owned()),
        "{capa:?}"
    );
    assert!(
        plain
            .one("reply")
            .starts_with("-ERR [AUTH] Plaintext authentication disallowed"),
        "{:?}",
        plain.0
    );

    // A wrong password: -ERR [AUTH], answered only after authd's failure delay.
    let bad = poplib(s.plain_port, "stls", USER, "wrong", "badpass");
    assert_eq!(bad.one("reply"), "-ERR [AUTH] Authentication failed.");
    let elapsed: f64 = bad.one("elapsed").parse().unwrap();
    assert!(elapsed >= 0.9, "not delayed: {elapsed}");
    let capa = bad.all("capa");
    assert!(capa.contains(&"USER".to_owned()), "{capa:?}");

    // Bad input on the plaintext port.
    let mut c = connect(s.plain_port);
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("XYZZY"), "-ERR Unknown command: XYZZY\r\n");
    assert_eq!(
        c.cmd("AUTH PLAIN AGFsaWNlAHg="),
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
    );
    assert_eq!(c.cmd("STAT"), "-ERR Unknown command: STAT\r\n");
    let mut big = vec![b'A'; 10 << 20];
    big.extend_from_slice(b"\r\n");
    c.get_mut().write_all(&big).unwrap();
    assert_eq!(c.line(), "-ERR Input line too long.\r\n");
    assert_eq!(c.cmd("NOOP"), "+OK\r\n");
    assert_eq!(c.cmd("AUTH CRAM-MD5").get(..2), Some("+ "));
    assert_eq!(
        c.cmd("%%% not base64"),
        "-ERR Invalid base64 data in continued response.\r\n"
    );
    // Commands in the same packet as STLS are never run, inside TLS or outside: the
    // session ends after the handshake and says why in the log.
    c.send(&format!("STLS\r\nUSER {USER}\r\nPASS {PASS}\r\n"));
    assert_eq!(c.line(), "+OK Begin TLS negotiation now.\r\n");
    let tcp = c.get_mut().try_clone().unwrap();
    let mut t = LineClient::new(tls_wrap(tcp));
    assert!(t.closed(), "the session goes on after injected plaintext");
    crate::outbound::peers::wait_until(DEADLINE, "the injection logged", || {
        s.logs().contains("plaintext pipelined after STLS; closing")
    });
    let mut c = connect(s.plain_port);
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("STLS"), "+OK Begin TLS negotiation now.\r\n");
    let tcp = c.get_mut().try_clone().unwrap();
    let mut t = LineClient::new(tls_wrap(tcp));
    assert_eq!(
        t.cmd(&format!("PASS {PASS}")),
        "-ERR No username given.\r\n"
    );
    assert_eq!(t.cmd(&format!("USER {USER}")), "+OK\r\n");
    assert_eq!(t.cmd(&format!("PASS {PASS}")), "+OK Logged in.\r\n");
    assert_eq!(t.cmd("RETR 0"), "-ERR There's no message 0.\r\n");
    assert_eq!(t.cmd("RETR 4"), "-ERR There's no message 4.\r\n");
    assert_eq!(t.cmd("TOP 1 x"), "-ERR Invalid number argument.\r\n");
    assert_eq!(t.cmd("STAT").get(..6), Some("+OK 3 "));
    assert_eq!(t.cmd("QUIT"), "+OK Logging out.\r\n");

    // SASL relayed to authd step by step over POP3S: LOGIN challenges, PLAIN initial response.
    let sasl = |lines: &[(&str, &str)]| {
        let tcp = std::net::TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
        tcp.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut t = LineClient::new(tls_wrap(tcp));
        assert!(t.line().starts_with("+OK"));
        for (send, expect) in lines {
            assert_eq!(t.cmd(send), format!("{expect}\r\n"), "{}", s.logs());
        }
    };
    sasl(&[
        ("AUTH LOGIN", "+ VXNlcm5hbWU6"),
        ("YWxpY2VAcG9jaHRhLnRlc3Q=", "+ UGFzc3dvcmQ6"),
        ("d29uZGVybGFuZA==", "+OK Logged in."),
        ("QUIT", "+OK Logging out."),
    ]);
    sasl(&[
        (
            "AUTH PLAIN AGFsaWNlQHBvY2h0YS50ZXN0AHdvbmRlcmxhbmQ=",
            "+OK Logged in.",
        ),
        ("LIST 9", "-ERR There's no message 9."),
        ("QUIT", "+OK Logging out."),
    ]);

    // Bad commands until the limit: the session ends, the daemon lives on.
    let mut c = connect(s.plain_port);
    c.line();
    for _ in 0..9 {
        assert!(c.cmd("BOGUS").starts_with("-ERR"));
    }
    assert_eq!(c.cmd("BOGUS"), "-ERR Too many bad commands.\r\n");
    assert!(c.closed());
    let mut c = connect(s.plain_port);
    assert!(c.line().starts_with("+OK"), "{}", s.logs());

    // Connection limit and idle timeout (here 1 connection, 1 s; the default idle is 10 min).
    let mut first = connect(s.limited_port);
    assert!(first.line().starts_with("+OK"));
    let mut second = connect(s.limited_port);
    assert_eq!(second.line(), "-ERR [SYS/TEMP] Too many connections.\r\n");
    assert!(second.closed());
    let t = Instant::now();
    assert_eq!(first.line(), "-ERR Disconnected for inactivity.\r\n");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(first.closed());
    assert!(s.pop3d_dir.join("pop3d.toml").exists());
}

/// Delivered messages, found by their Subject in `files` (LF line ends, as fetchmail and getmail
/// store them): each exactly once, ending with the delivered bytes.
fn check_fetched(files: &[PathBuf], n: usize, tool: &str) {
    let mut found = vec![0usize; n + 1];
    for f in files {
        let data = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&data);
        let i: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: message "))
            .unwrap_or_else(|| panic!("{tool}: no Subject in {}", f.display()))
            .trim()
            .parse()
            .unwrap();
        let expect = message(i).replace("\r\n", "\n");
        assert!(
            data.ends_with(expect.as_bytes()),
            "{tool}: message {i} differs from what was delivered:\n{text}"
        );
        found[i] += 1;
    }
    let wrong: Vec<usize> = (1..=n).filter(|&i| found[i] != 1).collect();
    assert!(
        wrong.is_empty(),
        "{tool}: messages not fetched exactly once: {wrong:?}"
    );
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Runs fetchmail against pop3d; `tls`: `stls` or `ssl`; `keep`: leave the mail on the server.
fn fetchmail(s: &Setup, work: &TempDir, tls: &str, keep: bool) -> Vec<PathBuf> {
    let fetchmail = which("fetchmail");
    let out = work.join(&format!("fetchmail-{tls}-{keep}"));
    std::fs::create_dir_all(&out).unwrap();
    let (port, ssl) = match tls {
        "ssl" => (s.tls_port, "ssl"),
        _ => (s.plain_port, "sslproto 'tls1.2+'"),
    };
    let rc = work.join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\n\
             poll 127.0.0.1 service {port} protocol pop3 uidl\n  \
             user \"{USER}\" there with password \"{PASS}\" is root here\n  \
             {ssl} no sslcertck fetchall {keep}\n  \
             mda \"cat > {out}/m.$$\"\n",
            keep = if keep { "keep" } else { "nokeep" },
            out = out.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = Command::new(fetchmail)
        .arg("-f")
        .arg(&rc)
        .arg("-i")
        .arg(work.join("fetchids"))
        .args(["--nodetach", "-d0", "-v"])
        .env("HOME", work.join(""))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "fetchmail {tls} failed ({}):\n{}\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        s.logs()
    );
    files_in(&out)
}

#[test]
fn fetchmail_and_getmail6_fetch_1000_messages() {
    require_root("the private Dovecot (LMTP delivers as the mail user)");
    let s = Setup::start();
    lmtp_deliver(
        &s.dovecot.base.join("run/lmtp"),
        USER,
        (1..=MESSAGES).map(message),
    );
    let work = TempDir::new("pop3-clients");

    // fetchmail over STLS, keeping the mail.
    let got = fetchmail(&s, &work, "stls", true);
    check_fetched(&got, MESSAGES, "fetchmail (STLS)");

    // getmail6 over POP3S (it has no STLS for POP3), keeping the mail.
    let getmail = which("getmail");
    std::fs::create_dir_all(work.join("getmail")).unwrap();
    chown(&work.join("getmail"));
    let rc = work.join("getmailrc");
    std::fs::write(
        &rc,
        format!(
            "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\nport = {}\n\
             username = {USER}\npassword = {PASS}\n\n\
             [destination]\ntype = MDA_lmtp\nhost = {}\noverride = bob@pochta.test\n\n\
             [options]\nread_all = true\ndelete = false\nverbose = 0\n",
            s.tls_port,
            s.dovecot.base.join("run/lmtp").display()
        ),
    )
    .unwrap();
    // getmail refuses to deliver as root: run it as the mail user. (MDA_lmtp rather than its
    // Maildir destination: that one forks per message and getmail loses SIGCHLD wake-ups under
    // load, "waiting child pid … timed out".)
    let (uid, gid) = mail_owner();
    let run = Command::new(getmail)
        .uid(uid)
        .gid(gid)
        .arg("--getmaildir")
        .arg(work.join("getmail"))
        .arg("--rcfile")
        .arg(&rc)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "getmail failed ({}):\n{}\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        s.logs()
    );
    let bob = s
        .maildir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("bob/Maildir");
    let mut got = files_in(&bob.join("new"));
    got.extend(files_in(&bob.join("cur")));
    check_fetched(
        &got,
        MESSAGES,
        "getmail6 (POP3S, delivered to Dovecot LMTP)",
    );

    // fetchmail over POP3S deleting what it fetched: the maildrop is then empty.
    let got = fetchmail(&s, &work, "ssl", false);
    check_fetched(&got, MESSAGES, "fetchmail (POP3S, nokeep)");
    let after = poplib(s.tls_port, "ssl", USER, PASS, "list");
    assert_eq!(after.one("stat"), "0 0");
    assert_eq!(seen_files(&s.maildir).1, 0);
}

#[test]
fn two_sessions_of_one_user_and_mail_arriving_meanwhile() {
    require_root("the private Dovecot (LMTP delivers as the mail user)");
    let s = Setup::start();
    let lmtp = s.dovecot.base.join("run/lmtp");
    lmtp_deliver(&lmtp, USER, (1..=3).map(message));
    let login = |c: &mut LineClient<TlsStream>| {
        assert!(c.line().starts_with("+OK"));
        assert_eq!(c.cmd(&format!("USER {USER}")), "+OK\r\n");
        assert_eq!(
            c.cmd(&format!("PASS {PASS}")),
            "+OK Logged in.\r\n",
            "{}",
            s.logs()
        );
    };
    let tls = || {
        let tcp = std::net::TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
        tcp.set_read_timeout(Some(DEADLINE)).unwrap();
        LineClient::new(tls_wrap(tcp))
    };
    let (mut a, mut b) = (tls(), tls());
    login(&mut a);
    login(&mut b);
    // Mail delivered during the sessions is not in their snapshots.
    lmtp_deliver(&lmtp, USER, std::iter::once(message(4)));
    assert!(a.cmd("STAT").starts_with("+OK 3 "));
    // Both delete message 1; A also deletes 2 and quits first.
    assert_eq!(a.cmd("DELE 1"), "+OK Marked to be deleted.\r\n");
    assert_eq!(a.cmd("DELE 2"), "+OK Marked to be deleted.\r\n");
    assert_eq!(b.cmd("DELE 1"), "+OK Marked to be deleted.\r\n");
    assert_eq!(a.cmd("QUIT"), "+OK Logging out, messages deleted.\r\n");
    // B's message 2 is gone now: reported, not resurrected.
    assert_eq!(
        b.cmd("RETR 2"),
        "-ERR Message was expunged by another session.\r\n"
    );
    assert!(b.cmd("RETR 3").starts_with("+OK "));
    let mut l = String::new();
    while l != ".\r\n" {
        l = b.line();
    }
    assert_eq!(b.cmd("QUIT"), "+OK Logging out.\r\n", "{}", s.logs());
    // Left: 3 and the one delivered meanwhile.
    let after = poplib(s.tls_port, "ssl", USER, PASS, "list");
    assert!(after.one("stat").starts_with("2 "), "{:?}", after.0);
    let dc = poplib(s.dovecot.pop3_port, "plain", USER, PASS, "list");
    assert_eq!(dc.all("uidl"), after.all("uidl"));
}

/// Replays `pop3d/tests/live/*.pop3` over loopback against the built binary (the format of the
/// in-process transcripts, plus `*` prefix matches and `S: ...` skips for live data).
fn replay_live(s: &Setup, path: &Path) {
    trait Rw: std::io::Read + Write {}
    impl<T: std::io::Read + Write> Rw for T {}
    let text = std::fs::read_to_string(path).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", s.plain_port)).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let raw = tcp.try_clone().unwrap();
    let mut c: LineClient<Box<dyn Rw>> = LineClient::new(Box::new(tcp));
    let mut pending = String::new();
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .peekable();
    let ctx = |what: &str| format!("{}: {what}\n{}", path.display(), s.pop3d.log());
    while let Some(line) = lines.next() {
        if let Some(cmd) = line.strip_prefix("C: ").or(line.strip_prefix("C:")) {
            match cmd.strip_prefix("@long ") {
                Some(n) => pending.push_str(&"A".repeat(n.parse().unwrap())),
                None => pending.push_str(cmd),
            }
            pending.push_str("\r\n");
            continue;
        }
        if !pending.is_empty() {
            c.send(&pending);
            pending.clear();
        }
        let expect = line
            .strip_prefix("S: ")
            .or(line.strip_prefix("S:"))
            .unwrap();
        match expect {
            "<starttls>" => {
                c = LineClient::new(Box::new(tls_wrap(raw.try_clone().unwrap())));
            }
            "<close>" => assert!(c.closed(), "{}", ctx("not closed")),
            "..." => {
                let next = lines.next().unwrap().strip_prefix("S: ").unwrap_or("");
                let mut n = 0;
                while c.line().trim_end_matches("\r\n") != next {
                    n += 1;
                    assert!(n < 100, "{}", ctx(&format!("never saw {next:?}")));
                }
            }
            _ => {
                let got = c.line();
                let got = got.strip_suffix("\r\n").unwrap_or(&got);
                let ok = match expect.strip_suffix('*') {
                    Some(prefix) => got.starts_with(prefix),
                    None => got == expect,
                };
                assert!(ok, "{}", ctx(&format!("expected {expect:?}, got {got:?}")));
            }
        }
    }
}

#[test]
fn live_transcripts_against_the_binary() {
    require_root("the private Dovecot (LMTP delivers as the mail user)");
    let s = Setup::start();
    lmtp_deliver(&s.dovecot.base.join("run/lmtp"), USER, (1..=3).map(message));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pop3d/tests/live");
    let mut files = files_in(&dir);
    files.sort();
    assert!(
        files.len() >= 2,
        "live transcripts missing in {}",
        dir.display()
    );
    for f in files {
        replay_live(&s, &f);
    }
}
