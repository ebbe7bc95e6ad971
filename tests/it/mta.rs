//! pochta-mta against real peers: python smtplib and swaks through port 25 (local delivery over
//! LMTP into pochta-mda-lmtp, users in pochta-authd) and through submission 587 (STARTTLS) and
//! 465 (implicit TLS) with AUTH; a second stack on a real Dovecot (auth-client, auth-userdb and
//! LMTP); nmap's 16 open-relay address forms; SMTP smuggling; STARTTLS command injection;
//! transcripts for every verb over loopback; limits; Postfix-style logs.

use crate::config::daemon_bin;
use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "pochta.test";
pub const HOST: &str = "mx.pochta.test";
/// Distinctive, so the logs can be searched for it.
pub const PASSWORD: &str = "Correct-Horse-7731";

fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody").unwrap().unwrap()
}

/// The uid daemons run as in tests (nobody when root, else ourselves).
pub fn test_uid() -> u32 {
    if nix::unistd::Uid::effective().is_root() {
        nobody().uid.as_raw()
    } else {
        nix::unistd::Uid::effective().as_raw()
    }
}

pub fn chown_test_user(p: &Path) {
    if nix::unistd::Uid::effective().is_root() {
        let u = nobody();
        nix::unistd::chown(p, Some(u.uid), Some(u.gid)).unwrap();
    }
}

pub fn need(tool: &str) -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for dir in path.split(':').chain(["/usr/sbin", "/usr/bin", "/sbin"]) {
            let p = Path::new(dir).join(tool);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{tool} is not installed: install the packages listed at the top of run-tests");
}

pub fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A daemon with its own directory (each has its own notify socket and log file).
pub struct Proc {
    pub daemon: Daemon,
    pub config: PathBuf,
    _dir: TempDir,
}

pub fn start_daemon(name: &str, config: &str) -> Proc {
    let dir = TempDir::new(&format!("mta-{name}"));
    let path = dir.join(&format!("{name}.toml"));
    std::fs::write(&path, as_test_user(config)).unwrap();
    let mut notify = Notify::new(&dir);
    let mut cmd = Command::new(daemon_bin(name));
    cmd.arg("-c").arg(&path);
    let mut daemon = Daemon::spawn(cmd, &dir, &notify);
    notify.wait_for("READY=1", &mut daemon);
    Proc {
        daemon,
        config: path,
        _dir: dir,
    }
}

/// A private Dovecot: SASL on auth-client, users on auth-userdb, LMTP on `lmtp`, all 0666.
struct Dovecot {
    base: PathBuf,
}

impl Dovecot {
    fn start(dir: &TempDir) -> Self {
        let base = dir.join("dovecot");
        std::fs::create_dir_all(base.join("state")).unwrap();
        let uid = test_uid();
        let mut users = String::new();
        for u in ["alice", "bob"] {
            let home = dir.join(&format!("home/{u}"));
            std::fs::create_dir_all(&home).unwrap();
            chown_test_user(&home);
            users.push_str(&format!(
                "{u}@{DOMAIN}:{{PLAIN}}{PASSWORD}:{uid}:{uid}::{}::\n",
                home.display()
            ));
        }
        let users_file = base.join("users");
        std::fs::write(&users_file, users).unwrap();
        let conf = base.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {run}\nstate_dir = {state}\ninstance_name = pochta-it-mta-{pid}\n\
                 protocols = lmtp\nlisten = 127.0.0.1\nlog_path = {log}\nssl = no\n\
                 auth_mechanisms = plain login\nfirst_valid_uid = {uid}\n\
                 last_valid_uid = {uid}\nmail_location = maildir:~/Maildir\n\
                 postmaster_address = postmaster@{DOMAIN}\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
                 service auth {{\n  unix_listener auth-client {{\n    mode = 0666\n  }}\n\
                 \x20 unix_listener auth-userdb {{\n    mode = 0666\n  }}\n}}\n\
                 service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n",
                run = base.join("run").display(),
                state = base.join("state").display(),
                pid = std::process::id(),
                log = base.join("dovecot.log").display(),
                users = users_file.display(),
            ),
        )
        .unwrap();
        let errors = base.join("start.err");
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
        for s in ["auth-client", "auth-userdb", "lmtp"] {
            wait_for(|| d.socket(s).exists(), "dovecot's sockets");
        }
        d
    }
    fn socket(&self, name: &str) -> PathBuf {
        self.base.join("run").join(name)
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

/// Which real peers the mta talks to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    /// pochta-authd (SASL + userdb) and pochta-mda-lmtp.
    Pochta,
    /// One Dovecot for SASL, userdb and LMTP.
    Dovecot,
}

/// authd + mda-lmtp (or Dovecot) + the mta on free loopback ports.
pub struct Stack {
    pub mta: Proc,
    authd: Option<Proc>,
    mda: Option<Proc>,
    dovecot: Option<Dovecot>,
    pub smtp: u16,
    pub submission: u16,
    pub submissions: u16,
    pub local: PathBuf,
    pub spool: PathBuf,
    /// Last: fields drop in order, and the peers' pid files live here (Dovecot's Drop reads
    /// its master.pid).
    pub dir: TempDir,
}

impl Stack {
    pub fn start(peers: Peers, smtpd_extra: &str) -> Self {
        Self::start_with(peers, smtpd_extra, "")
    }

    /// `smtp_listener_extra`: more keys for the port-25 listener (e.g. idle_timeout).
    pub fn start_with(peers: Peers, smtpd_extra: &str, smtp_listener_extra: &str) -> Self {
        Self::start_full(peers, smtpd_extra, smtp_listener_extra, &[])
    }

    /// `users`: more authd users (full addresses) besides alice and bob of DOMAIN (Pochta
    /// peers only). `smtpd_extra` naming `local_domains` replaces the default list.
    pub fn start_full(
        peers: Peers,
        smtpd_extra: &str,
        smtp_listener_extra: &str,
        users: &[&str],
    ) -> Self {
        let dir = TempDir::new("mta");
        let (mut authd, mut mda, mut dovecot) = (None, None, None);
        let (client_socket, userdb_socket, lmtp) = match peers {
            Peers::Pochta => {
                let a = startauthd_with(&dir, users);
                let (m, lmtp) = start_mda(&dir);
                authd = Some(a);
                mda = Some(m);
                (dir.join("auth-client"), dir.join("auth-userdb"), lmtp)
            }
            Peers::Dovecot => {
                let d = Dovecot::start(&dir);
                let sockets = (
                    d.socket("auth-client"),
                    d.socket("auth-userdb"),
                    d.socket("lmtp"),
                );
                dovecot = Some(d);
                sockets
            }
        };
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        write_cert(&cert, &key);
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        chown_test_user(&spool);
        let (smtp, submission, submissions) = (free_port(), free_port(), free_port());
        let local = dir.join("mta-submit");
        let cfg = format!(
            "[server]\nlog_level = \"debug\"\n\n[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n\
             [[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:{smtp}\"\n\
             tls = \"starttls\"\n{smtp_listener_extra}\n\n\
             [[listener]]\nservice = \"submission\"\naddress = \"127.0.0.1:{submission}\"\n\
             tls = \"starttls\"\n\n\
             [[listener]]\nservice = \"submissions\"\naddress = \"127.0.0.1:{submissions}\"\n\
             tls = \"implicit\"\n\n\
             [[listener]]\nservice = \"local\"\naddress = \"{local}\"\nmode = \"0666\"\n\n\
             [smtpd]\nhostname = \"{HOST}\"\n{domains}{smtpd_extra}\n\n\
             [auth]\nclient_socket = \"{client}\"\nuserdb_socket = \"{userdb}\"\n\n\
             [queue]\ndir = \"{spool}\"\n\n[delivery]\nlmtp = \"unix:{lmtp}\"\n",
            cert = cert.display(),
            key = key.display(),
            local = local.display(),
            client = client_socket.display(),
            userdb = userdb_socket.display(),
            spool = spool.display(),
            lmtp = lmtp.display(),
            domains = if smtpd_extra.contains("local_domains") {
                String::new()
            } else {
                format!("local_domains = [\"{DOMAIN}\"]\n")
            },
        );
        let mta = start_daemon("mta", &cfg);
        Stack {
            dir,
            mta,
            authd,
            mda,
            dovecot,
            smtp,
            submission,
            submissions,
            local,
            spool,
        }
    }

    pub fn log(&self) -> String {
        self.mta.daemon.log()
    }

    /// Waits until the mta's log contains `needle` (lines come after the replies); returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{needle:?} not logged within {DEADLINE:?}:\n{}", self.log());
    }

    /// Everything the peers logged, for failure messages.
    pub fn all_logs(&self) -> String {
        let mut s = format!("--- mta ---\n{}", self.log());
        if let Some(m) = &self.mda {
            s.push_str(&format!("--- mda-lmtp ---\n{}", m.daemon.log()));
        }
        if let Some(d) = &self.dovecot {
            s.push_str(&format!("--- dovecot ---\n{}", d.log()));
        }
        s
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        match self.dovecot {
            Some(_) => self.dir.join(&format!("home/{user}/Maildir")),
            None => self.dir.join(&format!("mail/{DOMAIN}/{user}/Maildir")),
        }
    }

    /// Waits until `user`'s Maildir holds a message containing `needle`; returns its text.
    pub fn wait_delivered(&self, user: &str, needle: &str) -> String {
        let md = self.maildir(user);
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            for sub in ["new", "cur"] {
                if let Ok(rd) = std::fs::read_dir(md.join(sub)) {
                    for e in rd.flatten() {
                        let text =
                            String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
                        if text.contains(needle) {
                            return text;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "no message with {needle:?} delivered to {user} within {DEADLINE:?}\n{}",
            self.all_logs()
        );
    }

    /// The message `id` for `rcpt` is in the queue: listed by mailq (`sendmail -bp`, built by
    /// mta-queue) when it is there, else a spool file named after it.
    pub fn assert_queued(&self, id: &str, rcpt: &str) {
        let mailq = bin_dir().join("sendmail");
        if mailq.is_file() {
            let out = Command::new(&mailq)
                .arg("-bp")
                .env("POCHTA_SPOOL", &self.spool)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let listed = text.lines().any(|l| l.starts_with(id));
            assert!(
                listed && text.contains(rcpt),
                "mailq does not list {id} for {rcpt}:\n{text}{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        } else {
            assert!(self.queued(id), "{id} not in the spool\n{}", self.log());
        }
    }

    /// Whether a message with queue id `id` is in the spool (any file named after it).
    pub fn queued(&self, id: &str) -> bool {
        fn walk(p: &Path, id: &str) -> bool {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    let path = e.path();
                    e.file_name().to_string_lossy().contains(id)
                        || (path.is_dir() && walk(&path, id))
                })
        }
        walk(&self.spool, id)
    }
}

/// authd with alice and bob of DOMAIN and `more` full addresses, all with PASSWORD.
pub fn startauthd_with(dir: &TempDir, more: &[&str]) -> Proc {
    let uid = test_uid();
    let mut users = String::new();
    let defaults = [format!("alice@{DOMAIN}"), format!("bob@{DOMAIN}")];
    for a in defaults
        .iter()
        .map(String::as_str)
        .chain(more.iter().copied())
    {
        let u = a.split('@').next().unwrap();
        users.push_str(&format!(
            "{a}:{{PLAIN}}{PASSWORD}:{uid}:{uid}::{}::\n",
            dir.join(&format!("home/{u}")).display()
        ));
    }
    let users_file = dir.join("users");
    std::fs::write(&users_file, users).unwrap();
    give_to_test_user(&users_file);
    let cfg = format!(
        "[server]\nlog_level = \"debug\"\n\n[[listener]]\nservice = \"auth-client\"\n\
         address = \"{}\"\nmode = \"0666\"\n\n[[listener]]\nservice = \"auth-userdb\"\n\
         address = \"{}\"\nmode = \"0666\"\n\n[passdb]\npath = \"{}\"\n\n[userdb]\n\n[auth]\n",
        dir.join("auth-client").display(),
        dir.join("auth-userdb").display(),
        users_file.display()
    );
    start_daemon("authd", &cfg)
}

fn start_mda(dir: &TempDir) -> (Proc, PathBuf) {
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    chown_test_user(&mail);
    let socket = dir.join("lmtp");
    let cfg = format!(
        "[server]\nlog_level = \"debug\"\n\n[[listener]]\nservice = \"lmtp\"\n\
         address = \"{}\"\nmode = \"0666\"\n\n[lmtp]\nhostname = \"lmtp.test\"\n\n\
         [userdb]\nsocket = \"{}\"\n\n[delivery]\nmail_location = \"{}/%d/%n/Maildir\"\n",
        socket.display(),
        dir.join("auth-userdb").display(),
        mail.display()
    );
    (start_daemon("mda-lmtp", &cfg), socket)
}

/// Runs a python script; panics with its output unless it exits 0. Returns its output.
pub fn python(script: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(need("python3"));
    cmd.arg("-c").arg(script).args(args);
    run_ok(cmd)
}

pub fn swaks(args: &[&str]) -> String {
    let mut cmd = Command::new(need("swaks"));
    cmd.args(args);
    run_ok(cmd)
}

/// python smtplib: `mode` plain|starttls|ssl, optional login, one message; prints the
/// replies of the data phase.
const SMTPLIB: &str = r#"
import smtplib, ssl, sys
mode, port, user, pw, sender, rcpt, subject = sys.argv[1:8]
ctx = ssl._create_unverified_context()
if mode == "ssl":
    s = smtplib.SMTP_SSL("127.0.0.1", int(port), context=ctx, timeout=20)
else:
    s = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
s.ehlo("client.test")
if mode == "starttls":
    s.starttls(context=ctx)
    s.ehlo("client.test")
if user:
    s.login(user, pw)
msg = "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nHello from smtplib.\r\n" % (
    sender, rcpt, subject)
refused = s.sendmail(sender, [rcpt], msg)
assert not refused, refused
print("noop", s.noop())
s.quit()
"#;

fn smtplib(mode: &str, port: u16, login: bool, from: &str, to: &str, subject: &str) {
    let p = port.to_string();
    let (user, pw) = if login {
        (format!("alice@{DOMAIN}"), PASSWORD.to_owned())
    } else {
        (String::new(), String::new())
    };
    python(SMTPLIB, &[mode, &p, &user, &pw, from, to, subject]);
}

// ---------------------------------------------------------------------------------------------
// A raw SMTP client over TCP, TLS or a UNIX socket.

enum Conn {
    Tcp(BufReader<TcpStream>),
    Tls(Box<BufReader<TlsStream>>),
    Unix(BufReader<UnixStream>),
}

struct Client {
    c: Conn,
}

impl Client {
    fn tcp(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        Client {
            c: Conn::Tcp(BufReader::new(s)),
        }
    }
    fn tls(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        Client {
            c: Conn::Tls(Box::new(BufReader::new(tls_wrap(s)))),
        }
    }
    fn unix(path: &Path) -> Self {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        Client {
            c: Conn::Unix(BufReader::new(s)),
        }
    }
    fn reader(&mut self) -> &mut dyn BufRead {
        match &mut self.c {
            Conn::Tcp(r) => r,
            Conn::Tls(r) => r.as_mut(),
            Conn::Unix(r) => r,
        }
    }
    fn send(&mut self, data: &[u8]) {
        let w: &mut dyn Write = match &mut self.c {
            Conn::Tcp(r) => r.get_mut(),
            Conn::Tls(r) => r.get_mut(),
            Conn::Unix(r) => r.get_mut(),
        };
        w.write_all(data).unwrap();
        w.flush().unwrap();
    }
    /// One line (CRLF stripped); `None` at EOF or reset.
    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.reader().read_line(&mut l) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(l.trim_end_matches(['\r', '\n']).to_owned()),
        }
    }
    /// A whole (multi-line) reply.
    fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self
                .line()
                .unwrap_or_else(|| panic!("server closed; got {lines:?}"));
            let done = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l);
            if done {
                return lines;
            }
        }
    }
    fn cmd(&mut self, c: &str) -> String {
        self.send(format!("{c}\r\n").as_bytes());
        self.reply().pop().unwrap()
    }
    /// The server closed the connection without saying more.
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(self.reader().read(&mut buf), Ok(0) | Err(_))
    }
    /// After `220 Ready to start TLS`: the handshake on the same TCP stream.
    fn starttls(self) -> Self {
        let Conn::Tcp(r) = self.c else {
            panic!("STARTTLS on a non-TCP connection");
        };
        assert!(r.buffer().is_empty(), "server sent more after its 220");
        Client {
            c: Conn::Tls(Box::new(BufReader::new(tls_wrap(r.into_inner())))),
        }
    }
}

/// Replays a transcript: `C:` client line, `R:` raw bytes with `\r \n \x00` escapes, `S:` the
/// next server line (a trailing `*` matches any rest), `T:` TLS handshake (after a 220), `E:`
/// the server closes. Returns the client for more.
fn replay(mut c: Client, script: &str) -> Client {
    for (n, line) in script.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tag, text) = line.split_at(2);
        let text = text.strip_prefix(' ').unwrap_or(text);
        match tag {
            "C:" => c.send(format!("{text}\r\n").as_bytes()),
            "R:" => c.send(&unescape(text)),
            "S:" => {
                let got = c
                    .line()
                    .unwrap_or_else(|| panic!("line {}: server closed, wanted {text:?}", n + 1));
                let ok = match text.strip_suffix('*') {
                    Some(prefix) => got.starts_with(prefix),
                    None => got == text,
                };
                assert!(ok, "line {}: wanted {text:?}, got {got:?}", n + 1);
            }
            "T:" => c = c.starttls(),
            "E:" => assert!(c.closed(), "line {}: server did not close", n + 1),
            _ => panic!("line {}: bad tag {tag:?}", n + 1),
        }
    }
    c
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = it.by_ref().take(2).collect();
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
            }
            other => panic!("bad escape {other:?}"),
        }
    }
    out
}

/// `250 2.0.0 Ok: queued as ID` → ID.
fn queue_id(reply: &str) -> String {
    reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not a queued reply: {reply:?}"))
        .to_owned()
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn plain(user: &str, pw: &str) -> String {
    b64(&format!("\0{user}\0{pw}"))
}

// ---------------------------------------------------------------------------------------------
// Tests

/// python smtplib and swaks through port 25 (no AUTH, with and without STARTTLS) to local
/// users: delivered over LMTP by pochta-mda-lmtp with our Received header and queue id.
#[test]
fn port25_smtplib_and_swaks_deliver_locally() {
    let st = Stack::start(Peers::Pochta, "");
    smtplib(
        "plain",
        st.smtp,
        false,
        "sender@example.net",
        "alice@pochta.test",
        "via-25-a",
    );
    smtplib(
        "starttls",
        st.smtp,
        false,
        "sender@example.net",
        "bob@pochta.test",
        "via-25-b",
    );
    let text = st.wait_delivered("alice", "via-25-a");
    assert!(
        text.contains("by mx.pochta.test (pochta) with ESMTP id "),
        "{text}"
    );
    assert!(
        text.contains("from client.test (unknown [127.0.0.1])"),
        "{text}"
    );
    let text = st.wait_delivered("bob", "via-25-b");
    assert!(text.contains("(using TLSv1.3 with cipher TLS_"), "{text}");
    assert!(text.contains("with ESMTPS id "), "{text}");
    // Mail from strangers gets no Message-ID/Date added (only submissions do).
    assert!(!text.contains("Message-ID:"), "{text}");
    let out = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", st.smtp),
        "--from",
        "someone@example.net",
        "--to",
        "alice@pochta.test",
        "--header",
        "Subject: swaks-25",
        "--tls",
    ]);
    assert!(out.contains("queued as"), "{out}");
    st.wait_delivered("alice", "swaks-25");
    let log = st.wait_log(
        "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 noop=1 quit=1 \
         commands=6",
    );
    assert!(log.contains("connect from unknown[127.0.0.1]"), "{log}");
    assert!(log.contains(": client=unknown[127.0.0.1]"), "{log}");
    assert!(log.contains(": message-id="), "{log}");
}

/// Submission on 587 (STARTTLS) and 465 (implicit TLS) with AUTH, from smtplib and swaks:
/// local mail is delivered with ESMTPSA, Message-ID/Date added; relayed mail is accepted and
/// queued; the password never reaches the log.
#[test]
fn submission_587_and_465_with_auth() {
    let st = Stack::start(Peers::Pochta, "");
    smtplib(
        "starttls",
        st.submission,
        true,
        "alice@pochta.test",
        "bob@pochta.test",
        "sub-587",
    );
    smtplib(
        "ssl",
        st.submissions,
        true,
        "alice@pochta.test",
        "bob@pochta.test",
        "sub-465",
    );
    let text = st.wait_delivered("bob", "sub-587");
    assert!(text.contains("with ESMTPSA id "), "{text}");
    assert!(text.contains("Message-ID: <"), "{text}");
    assert!(text.contains("\nDate: "), "{text}");
    st.wait_delivered("bob", "sub-465");
    for (port, tls) in [(st.submission, "--tls"), (st.submissions, "--tlsc")] {
        let out = swaks(&[
            "--server",
            &format!("127.0.0.1:{port}"),
            tls,
            "--auth",
            "LOGIN",
            "--auth-user",
            "alice@pochta.test",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@pochta.test",
            "--to",
            "bob@pochta.test",
            "--header",
            &format!("Subject: swaks-{port}"),
        ]);
        assert!(out.contains("235 2.7.0"), "{out}");
        st.wait_delivered("bob", &format!("swaks-{port}"));
    }
    // Relaying for an authenticated user: accepted and queued (outbound comes later).
    let mut c = Client::tls(st.submissions);
    let transcript = format!(
        "S: 220 {HOST} ESMTP pochta\n\
         C: EHLO client.test\nS: 250-{HOST}\nS: 250-PIPELINING\nS: 250-SIZE 10240000\n\
         S: 250-AUTH PLAIN LOGIN\nS: 250-ENHANCEDSTATUSCODES\nS: 250-8BITMIME\nS: 250-DSN\n\
         S: 250-SMTPUTF8\nS: 250 CHUNKING\n\
         C: AUTH PLAIN {}\nS: 235 2.7.0 Authentication successful\n\
         C: MAIL FROM:<alice@pochta.test>\nS: 250 2.1.0 Ok\n\
         C: RCPT TO:<relaytest@nmap.scanme.org>\nS: 250 2.1.5 Ok\n\
         C: DATA\nS: 354 *\nC: Subject: relayed\nC:\nC: out\nC: .\n",
        plain("alice@pochta.test", PASSWORD)
    );
    c = replay(c, &transcript);
    let id = queue_id(&c.reply().pop().unwrap());
    st.assert_queued(&id, "relaytest@nmap.scanme.org");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    let log = st.log();
    assert!(
        log.contains(&format!(
            "{id}: client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@pochta.test"
        )),
        "{log}"
    );
    assert!(log.contains("sasl_method=LOGIN"), "{log}");
    assert!(!log.contains(PASSWORD), "password in the log:\n{log}");
    assert!(
        !log.contains(&plain("alice@pochta.test", PASSWORD)),
        "{log}"
    );
}

/// Submission: no AUTH before TLS, MAIL refused before AUTH, bad password refused; after
/// STARTTLS the session starts over.
#[test]
fn submission_requires_tls_and_auth() {
    let st = Stack::start(Peers::Pochta, "");
    let c = Client::tcp(st.submission);
    let script = format!(
        "S: 220 {HOST} ESMTP pochta\n\
         C: EHLO client.test\nS: 250-{HOST}\nS: 250-PIPELINING\nS: 250-SIZE 10240000\n\
         S: 250-STARTTLS\nS: 250-ENHANCEDSTATUSCODES\nS: 250-8BITMIME\nS: 250-DSN\n\
         S: 250-SMTPUTF8\nS: 250 CHUNKING\n\
         C: AUTH PLAIN {pl}\nS: 503 5.5.1 Error: authentication not enabled\n\
         C: MAIL FROM:<alice@pochta.test>\nS: 530 5.7.0 Authentication required\n\
         C: STARTTLS\nS: 220 2.0.0 Ready to start TLS\nT:\n\
         C: MAIL FROM:<alice@pochta.test>\nS: 530 5.7.0 Authentication required\n\
         C: EHLO client.test\nS: 250-{HOST}\nS: 250-PIPELINING\nS: 250-SIZE 10240000\n\
         S: 250-AUTH PLAIN LOGIN\nS: 250-ENHANCEDSTATUSCODES\nS: 250-8BITMIME\nS: 250-DSN\n\
         S: 250-SMTPUTF8\nS: 250 CHUNKING\n\
         C: AUTH PLAIN {bad}\nS: 535 5.7.8 Error: authentication failed: *\n\
         C: AUTH LOGIN\nS: 334 *\nC: {user}\nS: 334 *\nC: *\n\
         S: 501 5.7.0 Authentication aborted\n\
         C: AUTH PLAIN\nS: 334 \nC: {pl}\nS: 235 2.7.0 Authentication successful\n\
         C: AUTH PLAIN {pl}\nS: 503 5.5.1 Error: already authenticated\n\
         C: MAIL FROM:<alice@pochta.test>\nS: 250 2.1.0 Ok\n\
         C: QUIT\nS: 221 2.0.0 Bye\nE:\n",
        pl = plain("alice@pochta.test", PASSWORD),
        bad = plain("alice@pochta.test", "wrong"),
        user = b64("alice@pochta.test"),
    );
    replay(c, &script);
    let log = st.wait_log("disconnect from unknown[127.0.0.1] ehlo=2 starttls=1 auth=1/5");
    let failed = log
        .lines()
        .find(|l| l.contains("SASL PLAIN authentication failed"))
        .unwrap_or_else(|| panic!("no failure line: {log}"));
    // Postfix names the login authd's FAIL carried (fail2ban filters match on it).
    assert!(
        failed.ends_with(", sasl_username=alice@pochta.test"),
        "{failed}"
    );
}

/// A mail loop ends at hopcount_limit (50, Postfix's): a message arriving with 49 Received:
/// headers (ours makes 50) is refused at the end of DATA with 554 5.4.6 and never queued; with
/// 48 it is delivered. The session goes on after the refusal.
#[test]
fn mail_loop_refused_at_hopcount_limit() {
    let st = Stack::start(Peers::Pochta, "");
    let mut c = Client::tcp(st.smtp);
    c.reply();
    c.send(b"EHLO client.test\r\n");
    c.reply();
    for (hops, subject) in [(49, "looping"), (48, "far-travelled")] {
        assert_eq!(c.cmd("MAIL FROM:<sender@example.net>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd("RCPT TO:<alice@pochta.test>"), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354 "));
        let mut data = String::new();
        for i in 0..hops {
            data.push_str(&format!(
                "Received: from hop{i}.example.net\r\n\tby hop{}.example.net; x\r\n",
                i + 1
            ));
        }
        data.push_str(&format!("Subject: {subject}\r\n\r\nbody\r\n.\r\n"));
        c.send(data.as_bytes());
        let r = c.reply().pop().unwrap();
        if hops == 49 {
            assert_eq!(r, "554 5.4.6 Error: too many hops");
        } else {
            queue_id(&r);
        }
    }
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    let text = st.wait_delivered("alice", "far-travelled");
    // 48 hops, the mta's and mda-lmtp's own.
    assert_eq!(text.matches("Received: ").count(), 50, "{text}");
    std::thread::sleep(Duration::from_millis(300));
    let log = st.log();
    assert!(!log.contains("looping"), "{log}");
    assert!(
        log.contains("reject: too many hops (50 Received: headers, hopcount_limit 50), mail loop"),
        "{log}"
    );
    let alice = st.maildir("alice");
    let n: usize = ["new", "cur"]
        .iter()
        .map(|d| std::fs::read_dir(alice.join(d)).map_or(0, |r| r.count()))
        .sum();
    assert_eq!(n, 1, "the looping message was delivered");
}

/// nmap smtp-open-relay's 16 forms (domain nmap.scanme.org, our name, our [ip]) from an
/// unauthenticated client on port 25: every RCPT refused; MAIL FROM is accepted each time.
#[test]
fn open_relay_forms_refused() {
    let st = Stack::start(Peers::Pochta, "");
    let (d, ip, srv) = ("nmap.scanme.org", "127.0.0.1", HOST);
    let froms = [
        String::new(),
        format!("antispam@{d}"),
        format!("antispam@{srv}"),
        format!("antispam@[{ip}]"),
    ];
    let tos = [
        format!("relaytest@{d}"),
        format!("relaytest@{d}"),
        format!("relaytest@{d}"),
        format!("relaytest@{d}"),
        format!("relaytest%{d}@[{ip}]"),
        format!("relaytest%{d}@{srv}"),
        format!("\"relaytest@{d}\""),
        format!("\"relaytest%{d}\""),
        format!("relaytest@{d}@[{ip}]"),
        format!("\"relaytest@{d}\"@[{ip}]"),
        format!("relaytest@{d}@{srv}"),
        format!("@[{ip}]:relaytest@{d}"),
        format!("@{srv}:relaytest@{d}"),
        format!("{d}!relaytest"),
        format!("{d}!relaytest@[{ip}]"),
        format!("{d}!relaytest@{srv}"),
    ];
    let mut c = Client::tcp(st.smtp);
    assert!(c.reply()[0].starts_with("220 "));
    c.send(b"EHLO nmap.scanme.org\r\n");
    c.reply();
    for (i, to) in tos.iter().enumerate() {
        assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
        let from = &froms[i.min(3)];
        assert_eq!(
            c.cmd(&format!("MAIL FROM:<{from}>")),
            "250 2.1.0 Ok",
            "{from}"
        );
        let r = c.cmd(&format!("RCPT TO:<{to}>"));
        assert!(
            r.starts_with("554 5.7.1 ") || r.starts_with("501 5.1.3 "),
            "form {} <{to}> not refused: {r}",
            i + 1
        );
    }
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    let log = st.wait_log("rcpt=0/16 rset=16 quit=1");
    assert!(
        log.contains("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1"),
        "{log}"
    );
    assert!(
        !log.contains(": client="),
        "a queue id was assigned:\n{log}"
    );
}

/// SMTP smuggling: none of the bare-LF/CR end-of-data look-alikes ends DATA; everything up to
/// the real CRLF.CRLF is one message for alice, and the smuggled commands never run.
#[test]
fn smuggling_never_ends_data_early() {
    let st = Stack::start(Peers::Pochta, "");
    let seqs: [(&str, &[u8]); 6] = [
        ("lf-dot-lf", b"\n.\n"),
        ("lf-dot-crlf", b"\n.\r\n"),
        ("crlf-dot-lf", b"\r\n.\n"),
        ("cr-dot-cr", b"\r.\r"),
        ("crlf-dot-cr", b"\r\n.\r"),
        ("crlf-nul-dot-crlf", b"\r\n\x00.\r\n"),
    ];
    for (name, seq) in seqs {
        let mut c = Client::tcp(st.smtp);
        c.reply();
        c.send(b"EHLO client.test\r\n");
        c.reply();
        assert_eq!(c.cmd("MAIL FROM:<sender@example.net>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd("RCPT TO:<alice@pochta.test>"), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354 "));
        let mut data = format!("Subject: smuggle-{name}\r\n\r\nbefore").into_bytes();
        data.extend_from_slice(seq);
        data.extend_from_slice(
            b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<bob@pochta.test>\r\nDATA\r\n\
              smuggled-body\r\n.\r\n",
        );
        c.send(&data);
        let r = c.reply().pop().unwrap();
        queue_id(&r);
        // Exactly one reply: the next one answers our NOOP.
        assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok", "{name}");
        assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
        let text = st.wait_delivered("alice", &format!("smuggle-{name}"));
        assert!(text.contains("smuggled-body"), "{name}: {text}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let bob = st.maildir("bob");
    for sub in ["new", "cur"] {
        let n = std::fs::read_dir(bob.join(sub)).map_or(0, |r| r.count());
        assert_eq!(n, 0, "a smuggled message reached bob");
    }
    assert!(
        !st.log().contains("evil@example.net>, size"),
        "{}",
        st.log()
    );
}

/// A command pipelined behind STARTTLS in the same packet is never executed: with
/// forbid_unauth_pipelining the session ends with 554 before STARTTLS; without it the
/// driver closes after the 220 instead of starting TLS.
#[test]
fn starttls_injection_never_executed() {
    let st = Stack::start(Peers::Pochta, "");
    let mut c = Client::tcp(st.smtp);
    c.reply();
    c.send(b"EHLO client.test\r\n");
    c.reply();
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n");
    assert_eq!(
        c.line().as_deref(),
        Some("554 5.5.0 Error: SMTP protocol synchronization")
    );
    assert!(c.closed());

    let st2 = Stack::start(Peers::Pochta, "forbid_unauth_pipelining = false");
    let mut c = Client::tcp(st2.smtp);
    c.reply();
    c.send(b"EHLO client.test\r\n");
    c.reply();
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n");
    assert_eq!(c.line().as_deref(), Some("220 2.0.0 Ready to start TLS"));
    assert!(c.closed(), "the connection stayed open after an injection");
    for log in [st.log(), st2.log()] {
        assert!(!log.contains("injected@example.net"), "{log}");
    }
    assert!(
        st2.log().contains("plaintext pipelined after STARTTLS"),
        "{}",
        st2.log()
    );
    // Pipelining before EHLO and HTTP requests end the session too.
    let mut c = Client::tcp(st.smtp);
    c.reply();
    c.send(b"EHLO client.test\r\nMAIL FROM:<a@example.net>\r\n");
    assert_eq!(
        c.line().as_deref(),
        Some("554 5.5.0 Error: SMTP protocol synchronization")
    );
    let mut c = Client::tcp(st.smtp);
    c.reply();
    c.send(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        c.line().as_deref(),
        Some("221 2.7.0 Error: I can break rules, too. Goodbye.")
    );
    assert!(c.closed());
}

/// Every verb over loopback on port 25, unauthenticated.
#[test]
fn transcript_every_verb() {
    let st = Stack::start(Peers::Pochta, "");
    let script = format!(
        "S: 220 {HOST} ESMTP pochta\n\
         C: HELP\n\
         S: 214 2.0.0 Commands: HELO EHLO LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN \
         HELP STARTTLS AUTH\n\
         C: MAIL FROM:<a@example.net>\nS: 503 5.5.1 Error: send HELO/EHLO first\n\
         C: HELO client.test\nS: 250 {HOST}\n\
         C: EHLO client.test\nS: 250-{HOST}\nS: 250-PIPELINING\nS: 250-SIZE 10240000\n\
         S: 250-STARTTLS\nS: 250-ENHANCEDSTATUSCODES\nS: 250-8BITMIME\nS: 250-DSN\n\
         S: 250-SMTPUTF8\nS: 250 CHUNKING\n\
         C: LHLO client.test\nS: 500 5.5.2 Error: command not recognized\n\
         C: AUTH PLAIN AGEAYg==\nS: 503 5.5.1 Error: authentication not enabled\n\
         C: VRFY alice@pochta.test\nS: 252 2.3.3 Try RCPT instead\n\
         C: EXPN staff\nS: 502 5.5.1 EXPN not available\n\
         C: NOOP\nS: 250 2.0.0 Ok\n\
         C: RCPT TO:<alice@pochta.test>\nS: 503 5.5.1 Error: need MAIL command\n\
         C: DATA\nS: 503 5.5.1 Error: need MAIL command\n\
         C: MAIL FROM:<sender@example.net> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=e1\n\
         S: 250 2.1.0 Ok\n\
         C: MAIL FROM:<sender@example.net>\nS: 503 5.5.1 Error: nested MAIL command\n\
         C: RCPT TO:<nobody-here@pochta.test>\n\
         S: 550 5.1.1 <nobody-here@pochta.test>: Recipient address rejected: User unknown in \
         virtual mailbox table\n\
         C: RCPT TO:<relaytest@example.net>\n\
         S: 554 5.7.1 <relaytest@example.net>: Relay access denied\n\
         C: RCPT TO:<alice+tag@Pochta.Test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@pochta.test\n\
         S: 250 2.1.5 Ok\n\
         C: RCPT TO:<Postmaster>\nS: 250 2.1.5 Ok\n\
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>\n\
         C: Subject: verbs-data\nC:\nC: ..leading dot\nC: .\nS: 250 2.0.0 Ok: queued as *\n\
         C: RSET\nS: 250 2.0.0 Ok\n\
         C: MAIL FROM:<>\nS: 250 2.1.0 Ok\n\
         R: BDAT 5\\r\\nabcde\nS: 503 5.5.1 Error: need RCPT command\n\
         C: RCPT TO:<bob@pochta.test>\nS: 250 2.1.5 Ok\n\
         R: BDAT 14\\r\\nSubject: x\\r\\n\\r\\n\nS: 250 2.0.0 Ok: 14 octets received\n\
         R: BDAT 21 LAST\\r\\nSubject: verbs-bdat\\r\\n\nS: 250 2.0.0 Ok: queued as *\n\
         C: MAIL FROM:<bad address>\nS: 501 5.1.7 Bad sender address syntax: *\n\
         C: FOO bar\nS: 500 5.5.2 Error: command not recognized\n\
         C: QUIT\nS: 221 2.0.0 Bye\nE:\n"
    );
    replay(Client::tcp(st.smtp), &script);
    let text = st.wait_delivered("alice", "verbs-data");
    assert!(text.contains("\n.leading dot"), "{text}");
    assert!(text.contains("for <alice+tag@pochta.test>"), "{text}");
    st.wait_delivered("bob", "verbs-bdat");
}

/// Limits from the config: recipients, size, line length, errors, idle time.
#[test]
fn limits_from_config() {
    let st = Stack::start(
        Peers::Pochta,
        "max_recipients = 2\nmax_message_size = 2000\nmax_line = 600\nmax_errors = 3",
    );
    let long = "x".repeat(700);
    let big = "y".repeat(3000);
    let script = format!(
        "S: 220 *\nC: EHLO client.test\nS: 250-*\nS: 250-PIPELINING\nS: 250-SIZE 2000\n\
         S: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250 CHUNKING\n\
         C: MAIL FROM:<a@example.net> SIZE=5000\nS: 552 5.3.4 Message size exceeds fixed limit\n\
         C: MAIL FROM:<a@example.net>\nS: 250 2.1.0 Ok\n\
         C: RCPT TO:<alice@pochta.test>\nS: 250 2.1.5 Ok\n\
         C: RCPT TO:<bob@pochta.test>\nS: 250 2.1.5 Ok\n\
         C: RCPT TO:<alice@pochta.test>\nS: 452 4.5.3 Error: too many recipients\n\
         C: DATA\nS: 354 *\nC: {big}\nC: .\nS: 552 5.3.4 Message size exceeds fixed limit\n\
         C: NOOP {long}\nS: 500 5.5.0 Error: line too long\n\
         C: FOO\nS: 500 5.5.2 Error: command not recognized\n\
         S: 421 4.7.0 {HOST} Error: too many errors\nE:\n"
    );
    replay(Client::tcp(st.smtp), &script);

    // An idle client is told goodbye after the listener's idle_timeout.
    let st = Stack::start_with(Peers::Pochta, "", "idle_timeout = \"1s\"");
    let script = format!(
        "S: 220 *\nC: HELO client.test\nS: 250 {HOST}\n\
         S: 421 4.4.2 {HOST} Error: timeout exceeded\nE:\n"
    );
    replay(Client::tcp(st.smtp), &script);
    assert!(
        st.log().contains("timeout from unknown[127.0.0.1]"),
        "{}",
        st.log()
    );
}

/// The local submission socket: trusted to relay, no AUTH, the peer's uid in the Received
/// header and the log; Message-ID and Date added.
#[test]
fn local_socket_submission() {
    let st = Stack::start(Peers::Pochta, "");
    let uid = nix::unistd::Uid::effective().as_raw();
    let c = Client::unix(&st.local);
    let script = format!(
        "S: 220 {HOST} ESMTP pochta\nC: EHLO localhost\nS: 250-*\nS: 250-*\nS: 250-*\n\
         S: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250 CHUNKING\n\
         C: MAIL FROM:<root@{HOST}>\nS: 250 2.1.0 Ok\n\
         C: RCPT TO:<somebody@example.net>\nS: 250 2.1.5 Ok\n\
         C: RCPT TO:<alice@pochta.test>\nS: 250 2.1.5 Ok\n\
         C: DATA\nS: 354 *\nC: Subject: local-socket\nC:\nC: hi\nC: .\n\
         S: 250 2.0.0 Ok: queued as *\nC: QUIT\nS: 221 2.0.0 Bye\n"
    );
    replay(c, &script);
    let text = st.wait_delivered("alice", "local-socket");
    assert!(
        text.contains(&format!("by {HOST} (pochta, from userid {uid})")),
        "{text}"
    );
    assert!(text.contains("Message-ID: <"), "{text}");
    st.wait_log(&format!("client=local uid={uid} ("));
}

/// userdb down → 451 4.3.0 at RCPT; queue unwritable → 451 4.3.0 after DATA.
#[test]
fn temporary_failures() {
    let st = Stack::start(Peers::Pochta, "");
    // The authd process is the userdb: stop it.
    if let Some(a) = &st.authd {
        a.daemon.signal(nix::sys::signal::Signal::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut c = Client::tcp(st.smtp);
    c.reply();
    c.send(b"EHLO client.test\r\n");
    c.reply();
    assert_eq!(c.cmd("MAIL FROM:<a@example.net>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<alice@pochta.test>"),
        "451 4.3.0 <alice@pochta.test>: Temporary lookup failure"
    );
    // A queue that cannot be written: 451 after DATA, never 250. The trusted local socket
    // needs no userdb for a remote recipient.
    use std::os::unix::fs::PermissionsExt;
    // Queue files are written in place in queue/ (see pochta-queue's spool).
    let queue = st.spool.join("queue");
    assert!(queue.is_dir(), "no queue/ in the spool");
    let mode = std::fs::metadata(&queue).unwrap().permissions().mode();
    std::fs::set_permissions(&queue, std::fs::Permissions::from_mode(0o000)).unwrap();
    let script = format!(
        "S: 220 *\nC: HELO localhost\nS: 250 {HOST}\n\
         C: MAIL FROM:<root@{HOST}>\nS: 250 2.1.0 Ok\n\
         C: RCPT TO:<somebody@example.net>\nS: 250 2.1.5 Ok\n\
         C: DATA\nS: 354 *\nC: Subject: unqueued\nC:\nC: x\nC: .\n\
         S: 451 4.3.0 Error: queue file write error\nC: QUIT\nS: 221 2.0.0 Bye\n"
    );
    replay(Client::unix(&st.local), &script);
    std::fs::set_permissions(&queue, std::fs::Permissions::from_mode(mode)).unwrap();
    st.wait_log("queue file write error");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
}

/// The same with a real Dovecot: SASL on Dovecot's auth-client socket, RCPT checks on its
/// auth-userdb socket, delivery into Dovecot LMTP.
#[test]
fn dovecot_auth_and_lmtp() {
    let st = Stack::start(Peers::Dovecot, "");
    smtplib(
        "starttls",
        st.submission,
        true,
        "alice@pochta.test",
        "bob@pochta.test",
        "dc-587",
    );
    smtplib(
        "plain",
        st.smtp,
        false,
        "x@example.net",
        "alice@pochta.test",
        "dc-25",
    );
    let text = st.wait_delivered("bob", "dc-587");
    assert!(text.contains("with ESMTPSA id "), "{text}");
    st.wait_delivered("alice", "dc-25");
    let mut c = Client::tcp(st.smtp);
    c.reply();
    c.send(b"EHLO client.test\r\n");
    c.reply();
    assert_eq!(c.cmd("MAIL FROM:<a@example.net>"), "250 2.1.0 Ok");
    assert!(c
        .cmd("RCPT TO:<nobody-here@pochta.test>")
        .starts_with("550 5.1.1 "));
    let log = st.log();
    assert!(
        log.contains("sasl_method=PLAIN, sasl_username=alice@pochta.test"),
        "{}",
        st.all_logs()
    );
}

/// Postfix's smtp-source, 5 parallel sessions (one with several messages per connection):
/// every message accepted and delivered, none refused for pipelining.
#[test]
fn smtp_source_load_delivered() {
    let st = Stack::start(Peers::Pochta, "");
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(need("smtp-source"));
        cmd.args(["-s", "5", "-m", "20", "-l", "2048", "-S", "load-test"])
            .args(["-f", "sender@example.net", "-t", "alice@pochta.test"])
            .args(extra)
            .arg(format!("127.0.0.1:{}", st.smtp));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "smtp-source failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            st.log()
        );
    };
    run(&[]);
    run(&["-d"]);
    let md = st.maildir("alice").join("new");
    let count = || std::fs::read_dir(&md).map_or(0, |r| r.count());
    let end = Instant::now() + DEADLINE;
    while count() < 40 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(), 40, "{}", st.all_logs());
    assert!(!st.log().contains("synchronization"), "{}", st.log());
}

/// `sender_login_match`: an authenticated user sends only as themselves.
#[test]
fn sender_login_match() {
    let st = Stack::start(Peers::Pochta, "sender_login_match = true");
    let script = format!(
        "S: 220 *\nC: EHLO client.test\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-AUTH PLAIN LOGIN\n\
         S: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250 CHUNKING\n\
         C: AUTH PLAIN {}\nS: 235 2.7.0 Authentication successful\n\
         C: MAIL FROM:<bob@pochta.test>\n\
         S: 553 5.7.1 <bob@pochta.test>: Sender address rejected: not owned by user \
         alice@pochta.test\n\
         C: MAIL FROM:<alice+lists@pochta.test>\nS: 250 2.1.0 Ok\n\
         C: QUIT\nS: 221 2.0.0 Bye\n",
        plain("alice@pochta.test", PASSWORD)
    );
    replay(Client::tls(st.submissions), &script);
    st.wait_log("reject: MAIL from unknown[127.0.0.1]: 553 5.7.1");
}

/// A client in `trusted_networks` relays without AUTH; the percent hack, bang paths and
/// quoted local parts with `@` are refused even then.
#[test]
fn trusted_network_relays_but_never_address_hacks() {
    let st = Stack::start(Peers::Pochta, "trusted_networks = [\"127.0.0.0/8\"]");
    let script = format!(
        "S: 220 *\nC: HELO client.test\nS: 250 {HOST}\n\
         C: MAIL FROM:<app@example.net>\nS: 250 2.1.0 Ok\n\
         C: RCPT TO:<relaytest@nmap.scanme.org>\nS: 250 2.1.5 Ok\n\
         C: RCPT TO:<relaytest%nmap.scanme.org@[127.0.0.1]>\n\
         S: 554 5.7.1 <relaytest%nmap.scanme.org@[127.0.0.1]>: Relay access denied\n\
         C: RCPT TO:<nmap.scanme.org!relaytest@{HOST}>\n\
         S: 554 5.7.1 <nmap.scanme.org!relaytest@{HOST}>: Relay access denied\n\
         C: RCPT TO:<\"relaytest@nmap.scanme.org\"@pochta.test>\n\
         S: 554 5.7.1 <\"relaytest@nmap.scanme.org\"@pochta.test>: Relay access denied\n\
         C: DATA\nS: 354 *\nC: Subject: trusted\nC:\nC: x\nC: .\nS: 250 2.0.0 Ok: queued as *\n\
         C: QUIT\nS: 221 2.0.0 Bye\n"
    );
    replay(Client::tcp(st.smtp), &script);
}

/// The demo (docs/architecture.md#the-demo): mail to alice@pochta.test on 2525 is in her
/// Maildir within a second of the 250; strangers cannot relay on 2525, alice can on 5587 with
/// her password.
#[test]
fn demo_delivers_on_2525_within_a_second() {
    let demo = crate::demo::SuiteDemo::start(&["authd", "mda-lmtp", "mta"]);
    let new = demo.dir.join("demo/mail/pochta.test/alice/Maildir/new");
    smtplib(
        "plain",
        2525,
        false,
        "bob@pochta.test",
        "alice@pochta.test",
        "demo-e2e",
    );
    let sent = Instant::now();
    let found = || {
        std::fs::read_dir(&new)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read(e.path())
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains("demo-e2e"))
            })
    };
    while !found() && sent.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = sent.elapsed();
    assert!(found(), "not delivered:\n{}", demo.run.stdout());
    assert!(took < Duration::from_secs(1), "delivered after {took:?}");
    let mut c = Client::tcp(2525);
    c.reply();
    c.send(b"EHLO client.test\r\n");
    c.reply();
    assert_eq!(c.cmd("MAIL FROM:<x@example.net>"), "250 2.1.0 Ok");
    assert!(c.cmd("RCPT TO:<x@example.org>").starts_with("554 5.7.1 "));
    let out = swaks(&[
        "--server",
        "127.0.0.1:5587",
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@pochta.test",
        "--auth-password",
        &demo.password,
        "--from",
        "alice@pochta.test",
        "--to",
        "someone@example.org",
    ]);
    assert!(out.contains("queued as"), "{out}");
}

/// SIGHUP re-reads the policy: a network made trusted relays in the next session.
#[test]
fn reload_applies_new_policy() {
    let st = Stack::start(Peers::Pochta, "");
    let relay = |want: &str| {
        let mut c = Client::tcp(st.smtp);
        c.reply();
        assert_eq!(c.cmd("HELO client.test"), format!("250 {HOST}"));
        assert_eq!(c.cmd("MAIL FROM:<a@example.net>"), "250 2.1.0 Ok");
        let r = c.cmd("RCPT TO:<b@example.org>");
        assert!(r.starts_with(want), "{r}");
        c.cmd("QUIT");
    };
    relay("554 5.7.1 ");
    let cfg = std::fs::read_to_string(&st.mta.config).unwrap();
    let cfg = cfg.replace("[smtpd]\n", "[smtpd]\ntrusted_networks = [\"127.0.0.1\"]\n");
    std::fs::write(&st.mta.config, cfg).unwrap();
    st.mta.daemon.signal(nix::sys::signal::Signal::SIGHUP);
    st.wait_log("configuration reloaded");
    relay("250 2.1.5 ");
}
