//! pochta-imapd against real clients: python imaplib over STARTTLS and implicit TLS, logging
//! in (LOGIN and AUTHENTICATE PLAIN) through pochta-authd, mail delivered by pochta-mda-lmtp
//! (IDLE must report it within a second), plus raw bad input over the socket.

use crate::authd::Authd;
use crate::config::daemon_bin;
use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const USER: &str = "alice@pochta.test";
const PASS: &str = "wonderland";

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

/// pochta-authd, pochta-mda-lmtp and pochta-imapd on one Maildir tree.
struct Setup {
    _dir: TempDir,
    imapd_dir: TempDir,
    authd: Authd,
    mda: Daemon,
    imapd: Daemon,
    plain_port: u16,
    tls_port: u16,
    lmtp: PathBuf,
    maildir: PathBuf,
}

impl Setup {
    fn start() -> Self {
        let dir = TempDir::new("imap");
        let (uid, gid) = mail_owner();
        let home = dir.join("home");
        std::fs::create_dir_all(home.join("alice")).unwrap();
        chown(&home);
        chown(&home.join("alice"));
        let passwd = format!(
            "{USER}:{{PLAIN}}{PASS}:{uid}:{gid}::{}::\n",
            home.join("alice").display()
        );
        let authd = Authd::start(
            &passwd,
            "mechanisms = [\"PLAIN\", \"LOGIN\"]\nfailure_delay = \"1s\"",
        );
        chown(&authd.userdb);

        let lmtp = dir.join("lmtp");
        let mda_cfg = format!(
            "[server]\nlog_level = \"debug\"\n\n[[listener]]\nservice = \"lmtp\"\n\
             address = \"{}\"\nmode = \"0666\"\n\n[lmtp]\nhostname = \"lmtp.test\"\n\n\
             [userdb]\nsocket = \"{}\"\n\n[delivery]\nmail_location = \"{}/%n/Maildir\"\n",
            lmtp.display(),
            authd.userdb.display(),
            home.display()
        );
        let mda_path = dir.join("mda-lmtp.toml");
        std::fs::write(&mda_path, as_test_user(&mda_cfg)).unwrap();
        let mut notify = Notify::new(&dir);
        let mut cmd = Command::new(daemon_bin("mda-lmtp"));
        cmd.arg("-c").arg(&mda_path);
        let mut mda = Daemon::spawn(cmd, &dir, &notify);
        notify.wait_for("READY=1", &mut mda);

        let imapd_dir = TempDir::new("imapd");
        let (cert, key) = (imapd_dir.join("cert.pem"), imapd_dir.join("key.pem"));
        write_cert(&cert, &key);
        let (plain_port, tls_port) = (free_port(), free_port());
        let config = format!(
            "[server]\nlog_level = \"debug\"\n\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [[listener]]\nservice = \"imap\"\naddress = \"127.0.0.1:{plain_port}\"\n\
             tls = \"starttls\"\n\n\
             [[listener]]\nservice = \"imaps\"\naddress = \"127.0.0.1:{tls_port}\"\n\
             tls = \"implicit\"\n\n\
             [imap]\nmax_message_size = \"1M\"\n\n\
             [auth]\nclient_socket = \"{}\"\nuserdb_socket = \"{}\"\n\n\
             [mail]\nlocation = \"{}/%n/Maildir\"\n",
            cert.display(),
            key.display(),
            authd.client.display(),
            authd.userdb.display(),
            home.display(),
        );
        let cfg = imapd_dir.join("imapd.toml");
        std::fs::write(&cfg, as_test_user(&config)).unwrap();
        let mut notify = Notify::new(&imapd_dir);
        let mut cmd = Command::new(daemon_bin("imapd"));
        cmd.arg("-c").arg(&cfg);
        let mut imapd = Daemon::spawn(cmd, &imapd_dir, &notify);
        notify.wait_for("READY=1", &mut imapd);
        Setup {
            maildir: home.join("alice/Maildir"),
            _dir: dir,
            imapd_dir,
            authd,
            mda,
            imapd,
            plain_port,
            tls_port,
            lmtp,
        }
    }

    fn logs(&self) -> String {
        format!(
            "imapd:\n{}\nmda-lmtp:\n{}\nauthd:\n{}",
            self.imapd.log(),
            self.mda.log(),
            self.authd.log()
        )
    }
}

/// The imaplib scenario: every step prints `key<TAB>value`.
const IMAPLIB: &str = r#"
import imaplib, ssl, sys, time, smtplib, base64
host, port, tls_port, user, pw, lmtp = sys.argv[1:7]
ctx = ssl._create_unverified_context()
imaplib.Commands.setdefault("MOVE", ("SELECTED",))
def out(k, v):
    print(f"{k}\t{v}", flush=True)
def enc(x):
    return x.decode() if isinstance(x, bytes) else str(x)
def parts(data):
    for d in data:
        if isinstance(d, tuple):
            out("part", enc(d[0]) + "\t" + base64.b64encode(d[1]).decode())
        else:
            out("rest", enc(d))

m = imaplib.IMAP4(host, int(port))
out("caps_plain", " ".join(m.capabilities))
try:
    m.login(user, pw)
    out("plain_login", "accepted")
except imaplib.IMAP4.error as e:
    out("plain_login", enc(e.args[0]))
m.starttls(ssl_context=ctx)
out("caps_tls", " ".join(m.capabilities))
typ, data = m.login(user, pw)
out("login", typ + " " + enc(data[0]))
for f in ["Projects", "Projects.2024", "Projects.2024.Q1", "Lists.rust"]:
    out("create", f + " " + m.create(f)[0])
for d in m.list()[1]:
    out("list", enc(d))
for d in m.list("\"\"", "Projects.%")[1]:
    out("list_pct", enc(d))
msg1 = (b"From: Alice <alice@pochta.test>\r\nTo: Bob <bob@example.org>\r\n"
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Wed, 17 Jul 1996 02:44:25 -0700\r\n"
        b"Message-ID: <m1@pochta.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello world\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b1--\r\n")
typ, data = m.append("Projects.2024", r"(\Seen $Important)",
                     imaplib.Time2Internaldate(837596665), msg1)
out("append1", typ + " " + enc(data[0]))
msg2 = b"From: bob@example.org\r\nSubject: second\r\n\r\nplain body\r\nline two\r\n"
typ, data = m.append("Projects.2024", None, None, msg2)
out("append2", typ + " " + enc(data[0]))
typ, data = m.select("Projects.2024")
out("select", typ + " " + enc(data[0]))
out("uidvalidity", enc(m.response("UIDVALIDITY")[1][0]))
typ, data = m.fetch("1", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
out("fetch_meta", enc(data[0]))
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[1] BODY.PEEK[]<0.10> "
                         "BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[1.MIME])")
parts(data)
typ, data = m.fetch("2", "(FLAGS)")
out("flags2_before", enc(data[0]))
typ, data = m.fetch("2", "(BODY[TEXT])")
parts(data)
typ, data = m.fetch("2", "(FLAGS)")
out("flags2_after", enc(data[0]))
out("search_all", enc(m.search(None, "ALL")[1][0]))
m.literal = "Grüße".encode()
out("search_subject_utf8", enc(m.search("UTF-8", "SUBJECT")[1][0]))
out("search_text", enc(m.search(None, 'TEXT "hello WORLD"')[1][0]))
out("search_header", enc(m.search(None, 'HEADER Message-ID "<m1@pochta.test>"')[1][0]))
out("search_sent", enc(m.search(None, "SENTBEFORE 1-Jan-2000")[1][0]))
out("search_keyword", enc(m.search(None, "KEYWORD $Important")[1][0]))
out("uid_search_unflagged", enc(m.uid("SEARCH", "UNFLAGGED")[1][0]))
typ, data = m.store("1", "+FLAGS", r"(\Flagged)")
out("store", enc(data[0]))
typ, data = m.uid("STORE", "2", "+FLAGS", r"(\Answered $Label1)")
out("uid_store", enc(data[0]))
typ, data = m.store("1", "-FLAGS.SILENT", r"(\Seen)")
out("store_silent", typ + " " + repr(data))
typ, data = m.copy("1:2", "Lists.rust")
out("copy", typ + " " + enc(data[0]))
typ, data = m.uid("MOVE", "1", "Projects")
out("move", typ + " " + enc(data[0]))
out("move_untagged", repr(m.untagged_responses.get("EXPUNGE")))
typ, data = m.status("Lists.rust", "(MESSAGES UNSEEN SIZE UIDNEXT)")
out("status", enc(data[0]))
typ, data = m.store("1", "+FLAGS", r"(\Deleted)")
typ, data = m.expunge()
out("expunge", typ + " " + repr(data))
typ, data = m.select("Projects.2024", readonly=True)
out("examine", typ + " " + enc(data[0]))
typ, data = m.rename("Projects", "Work")
out("rename", typ)
for d in m.list("\"\"", "*")[1]:
    out("list_after", enc(d))
typ, data = m.delete("Work.2024.Q1")
out("delete", typ)
m.logout()

s = imaplib.IMAP4_SSL(host, int(tls_port), ssl_context=ctx)
typ, data = s.authenticate("PLAIN", lambda _: f"\0{user}\0{pw}".encode())
out("auth_plain", typ)
typ, data = s.select("INBOX")
out("inbox", enc(data[0]))
tag = s._new_tag()
s.send(tag + b" IDLE\r\n")
out("idle_cont", enc(s.readline().strip()))
l = smtplib.LMTP(lmtp)
t = time.monotonic()
l.sendmail("sender@example.org", [user], b"Subject: idle test\r\n\r\nhi\r\n")
l.quit()
s.sock.settimeout(5)
line = s.readline()
out("idle_delay", time.monotonic() - t)
out("idle_event", enc(line.strip()))
s.send(b"DONE\r\n")
while True:
    line = s.readline()
    if line.startswith(tag):
        break
out("idle_done", enc(line.strip()))
typ, data = s.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
parts(data)
s.logout()
"#;

/// The `key<TAB>value` lines of a script run.
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

fn python(script: &str, args: &[&str], logs: &dyn Fn() -> String) -> Dump {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed (run-tests installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {}\nstdout:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    Dump(
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn b64(s: &str) -> Vec<u8> {
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

#[test]
fn imaplib_scenario_with_lmtp_delivery_and_idle() {
    let s = Setup::start();
    let logs = || s.logs();
    let d = python(
        IMAPLIB,
        &[
            "127.0.0.1",
            &s.plain_port.to_string(),
            &s.tls_port.to_string(),
            USER,
            PASS,
            s.lmtp.to_str().unwrap(),
        ],
        &logs,
    );
    let ctx = || format!("{:#?}\n{}", d.0, s.logs());
    let check = |cond: bool, what: &str| assert!(cond, "{what}\n{}", ctx());
    // LOGINDISABLED and no plaintext mechanisms until STARTTLS
    let caps = d.one("caps_plain");
    check(caps.contains("STARTTLS LOGINDISABLED"), "caps before TLS");
    check(!caps.contains("AUTH=PLAIN"), "no AUTH=PLAIN before TLS");
    check(
        d.one("plain_login").starts_with("[PRIVACYREQUIRED]"),
        "LOGIN refused",
    );
    let caps = d.one("caps_tls");
    check(
        caps.contains("AUTH=PLAIN") && !caps.contains("LOGINDISABLED"),
        "caps after TLS",
    );
    check(
        d.one("login").starts_with("OK [CAPABILITY IMAP4rev1"),
        "login",
    );
    check(
        d.all("create").iter().all(|c| c.ends_with(" OK")),
        "creates",
    );
    let list = d.all("list");
    for want in [
        "(\\HasNoChildren) \".\" INBOX",
        "(\\HasNoChildren \\Sent) \".\" \"Sent\"",
        "(\\HasNoChildren \\Trash) \".\" \"Trash\"",
        "(\\Noselect \\HasChildren) \".\" \"Lists\"",
        "(\\HasChildren) \".\" \"Projects.2024\"",
        "(\\HasNoChildren) \".\" \"Projects.2024.Q1\"",
    ] {
        check(list.iter().any(|l| l == want), want);
    }
    check(list[0].ends_with("INBOX"), "INBOX first");
    check(
        d.all("list_pct") == vec!["(\\HasChildren) \".\" \"Projects.2024\"".to_string()],
        "LIST %",
    );
    let v = d.one("uidvalidity");
    check(
        d.one("append1") == format!("OK [APPENDUID {v} 1] Append completed."),
        "append1",
    );
    check(
        d.one("append2") == format!("OK [APPENDUID {v} 2] Append completed."),
        "append2",
    );
    check(d.one("select") == "OK 2", "select");
    // INTERNALDATE is the APPEND date; RFC822.SIZE and BODYSTRUCTURE from the stored bytes
    let meta = d.one("fetch_meta");
    for want in [
        "UID 1 FLAGS (\\Seen $Important) INTERNALDATE \"17-Jul-1996 09:44:25 +0000\" \
         RFC822.SIZE 395 ENVELOPE (\"Wed, 17 Jul 1996 02:44:25 -0700\" \
         \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" ((\"Alice\" NIL \"alice\" \"pochta.test\"))",
        "((\"Bob\" NIL \"bob\" \"example.org\")) NIL NIL NIL \"<m1@pochta.test>\")",
        "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 11 0 \
         NIL NIL NIL NIL)(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 8 NIL NIL \
         NIL NIL) \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)",
    ] {
        check(meta.contains(want), want);
    }
    let parts = d.all("part");
    let part = |prefix: &str| -> Vec<u8> {
        let p = parts
            .iter()
            .find(|p| p.contains(prefix))
            .unwrap_or_else(|| panic!("no {prefix}\n{}", ctx()));
        b64(p.rsplit('\t').next().unwrap())
    };
    check(
        part("BODY[HEADER.FIELDS (SUBJECT)] {40}")
            == b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n",
        "HEADER.FIELDS",
    );
    check(part("BODY[1] {11}") == b"hello world", "BODY[1]");
    check(part("BODY[]<0> {10}") == b"From: Alic", "partial");
    check(
        part("BINARY[2] ~{5}") == [0, 1, 2, 3, 4],
        "BINARY (literal8 for NUL)",
    );
    check(
        parts.iter().any(|p| p.contains("BINARY.SIZE[2] 5")),
        "BINARY.SIZE",
    );
    check(
        part("BODY[1.MIME]") == b"Content-Type: text/plain; charset=utf-8\r\n\r\n",
        "MIME",
    );
    check(
        part("BODY[TEXT] {22}") == b"plain body\r\nline two\r\n",
        "TEXT",
    );
    // BODY[] without PEEK sets \Seen and says so
    check(
        d.one("flags2_before") == "2 (FLAGS (\\Recent))",
        "flags before",
    );
    check(
        d.one("flags2_after") == "2 (FLAGS (\\Seen \\Recent))",
        "flags after",
    );
    for (k, want) in [
        ("search_all", "1 2"),
        ("search_subject_utf8", "1"),
        ("search_text", "1"),
        ("search_header", "1"),
        ("search_sent", "1"),
        ("search_keyword", "1"),
        ("uid_search_unflagged", "1 2"),
        ("store", "1 (FLAGS (\\Flagged \\Seen $Important))"),
        (
            "uid_store",
            "2 (UID 2 FLAGS (\\Answered \\Seen $Label1 \\Recent))",
        ),
        ("store_silent", "OK [None]"),
        (
            "status",
            "\"Lists.rust\" (MESSAGES 2 UNSEEN 1 SIZE 459 UIDNEXT 3)",
        ),
        ("examine", "OK 0"),
        ("rename", "OK"),
        ("delete", "OK"),
        ("auth_plain", "OK"),
        ("idle_cont", "+ idling"),
        ("idle_event", "* 1 EXISTS"),
    ] {
        check(d.one(k) == want, k);
    }
    check(d.one("copy").starts_with("OK [COPYUID "), "COPYUID");
    check(
        d.one("copy").ends_with(" 1:2 1:2] Copy completed."),
        "COPYUID sets",
    );
    check(d.one("move_untagged") == "[b'1']", "MOVE expunges");
    let after = d.all("list_after");
    check(
        after.iter().any(|l| l.ends_with("\"Work.2024.Q1\"")),
        "RENAME moves children",
    );
    check(
        !after.iter().any(|l| l.contains("Projects")),
        "old names gone",
    );
    // IDLE sees the LMTP delivery within a second
    let delay: f64 = d.one("idle_delay").parse().unwrap();
    check(delay < 1.0, "IDLE within a second");
    check(
        part("BODY[HEADER.FIELDS (SUBJECT)] {22}") == b"Subject: idle test\r\n\r\n",
        "IDLE",
    );
    check(d.one("idle_done").ends_with(" OK Idle completed."), "DONE");
    // on disk: Dovecot's formats (keywords file, uidlist)
    let kw = std::fs::read_to_string(s.maildir.join(".Lists.rust/dovecot-keywords")).unwrap();
    check(
        kw.contains("$Important") && kw.contains("$Label1"),
        "dovecot-keywords",
    );
    let _ = (&s.imapd_dir, Instant::now(), Duration::ZERO);
}

fn need(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is not installed: install dovecot-core and dovecot-imapd (run-tests)");
}

/// A private Dovecot imap serving the same user and home as [`Setup`].
struct DovecotImap {
    dir: TempDir,
    port: u16,
}

impl DovecotImap {
    fn start(home: &Path) -> Self {
        let dir = TempDir::new("imap-dovecot");
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let (uid, gid) = mail_owner();
        let port = free_port();
        std::fs::write(
            dir.join("users"),
            format!("{USER}:{{PLAIN}}{PASS}:{uid}:{gid}::{}::\n", home.display()),
        )
        .unwrap();
        let conf = format!(
            "base_dir = {base}\nstate_dir = {state}\ninstance_name = pochta-it-imap-{pid}-{port}\n\
             protocols = imap\nlisten = 127.0.0.1\nlog_path = {log}\nssl = no\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             first_valid_uid = {uid}\nlast_valid_uid = {uid}\n\
             mail_location = maildir:~/Maildir\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    \
             port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            base = dir.join("run").display(),
            state = dir.join("state").display(),
            pid = std::process::id(),
            log = dir.join("dovecot.log").display(),
            users = dir.join("users").display(),
        );
        std::fs::write(dir.join("dovecot.conf"), conf).unwrap();
        let err_path = dir.join("dovecot.stderr");
        let status = Command::new(need("dovecot"))
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        let d = DovecotImap { dir, port };
        assert!(
            status.success(),
            "dovecot did not start: {}\n{}",
            std::fs::read_to_string(&err_path).unwrap_or_default(),
            d.log()
        );
        let end = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", d.port)).is_err() {
            assert!(
                Instant::now() < end,
                "dovecot imap not listening\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for DovecotImap {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("run/master.pid")).unwrap_or_default();
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

/// What a client sees of the account (`view`), or a phase of changes (`phase1`…).
/// `\Recent` is left out: it is per server by definition.
const TURNS: &str = r#"
import imaplib, sys, re, time
host, port, user, pw, mode, tls = sys.argv[1:7]
imaplib.Commands.setdefault("MOVE", ("SELECTED",))
if tls == "starttls":
    import ssl
    m = imaplib.IMAP4(host, int(port))
    m.starttls(ssl_context=ssl._create_unverified_context())
else:
    m = imaplib.IMAP4(host, int(port))
m.login(user, pw)
def out(k, v):
    print(f"{k}\t{v}")
def msg(s):
    return f"From: t@example.org\r\nSubject: {s}\r\nMessage-ID: <{s}@t>\r\n\r\nbody {s}\r\n".encode()
def date(t):
    return imaplib.Time2Internaldate(t)
def name_of(line):
    mm = re.match(rb'\((.*?)\) "\." (.*)$', line)
    return mm.group(1).decode(), mm.group(2).decode().strip('"')
def ok(r):
    assert r[0] == "OK", r
if mode == "view":
    names = []
    for d in m.list('""', "*")[1]:
        attrs, name = name_of(d)
        if "\\Noselect" in attrs or "\\NonExistent" in attrs:
            continue
        names.append(name)
    for n in sorted(names):
        out("mailbox", n)
    for s in sorted(set(name_of(d)[1] for d in m.lsub('""', "*")[1] if d)):
        out("subscribed", s)
    for n in sorted(names):
        typ, data = m.status(f'"{n}"', "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
        nums = dict(re.findall(rb"([A-Z]+) (\d+)", data[0].split(b"(", 1)[1]))
        out("status", n + " " + " ".join(f"{k.decode()}={v.decode()}" for k, v in sorted(nums.items())))
        if nums[b"MESSAGES"] == b"0":
            continue
        ok(m.select(f'"{n}"', readonly=True))
        typ, data = m.fetch("1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        for d in data:
            if not isinstance(d, tuple):
                continue
            head = d[0].decode()
            uid = re.search(r"UID (\d+)", head).group(1)
            flags = sorted(f for f in re.search(r"FLAGS \(([^)]*)\)", head).group(1).split() if f != "\\Recent")
            idate = time.mktime(imaplib.Internaldate2tuple(d[0]))
            size = re.search(r"RFC822.SIZE (\d+)", head).group(1)
            subj = d[1].decode().strip()
            out("msg", f"{n} uid={uid} flags={' '.join(flags)} date={int(idate)} size={size} {subj}")
elif mode == "phase1":
    for f in ["A", "A.B", "Deep.x.y"]:
        ok(m.create(f))
    ok(m.subscribe("A.B"))
    ok(m.append("INBOX", r"(\Seen)", date(1700000000), msg("one")))
    ok(m.append("INBOX", r"($Junk \Flagged)", date(1700000100), msg("two")))
    ok(m.append("INBOX", None, date(1700000200), msg("three")))
    ok(m.append("A.B", r"($NonJunk)", date(1700000300), msg("four")))
elif mode == "phase2":
    ok(m.select("INBOX"))
    ok(m.store("1", "+FLAGS", r"(\Answered $Work)"))
    ok(m.store("2", "-FLAGS", "($Junk)"))
    ok(m.copy("2:3", "A"))
    ok(m.create("C"))
    ok(m.subscribe("C"))
    ok(m.rename("A.B", "A.D"))
    ok(m.store("3", "+FLAGS", r"(\Deleted)"))
    ok(m.expunge())
    ok(m.append("A", r"($Later)", date(1700000400), msg("five")))
elif mode == "phase3":
    ok(m.select("A"))
    ok(m.store("1:*", "+FLAGS", r"(\Seen $Dove)"))
    ok(m.uid("MOVE", "1", "INBOX"))
    ok(m.select("INBOX"))
    ok(m.store("1", "FLAGS", r"(\Draft)"))
    ok(m.delete("C"))
    ok(m.unsubscribe("C"))
m.logout()
"#;

#[test]
fn dovecot_and_pochta_take_turns_on_one_maildir() {
    require_root("the Dovecot interop test (Dovecot's mail user must differ from root)");
    let s = Setup::start();
    let dc = DovecotImap::start(s.maildir.parent().unwrap());
    let logs = || format!("{}\ndovecot:\n{}", s.logs(), dc.log());
    let ours = s.plain_port.to_string();
    let theirs = dc.port.to_string();
    let run = |port: &str, mode: &str| {
        let tls = if port == ours { "starttls" } else { "plain" };
        python(TURNS, &["127.0.0.1", port, USER, PASS, mode, tls], &logs)
    };
    let same_view = |after: &str| {
        let a = run(&theirs, "view").0;
        let b = run(&ours, "view").0;
        assert_eq!(
            a,
            b,
            "after {after}: Dovecot's view (left) differs from ours\n{}",
            logs()
        );
        assert!(
            a.iter().any(|(k, _)| k == "msg"),
            "empty view after {after}"
        );
    };
    // our first login creates the special-use folders (auto = subscribe); Dovecot then sees
    // them like any folder
    run(&ours, "view");
    run(&theirs, "phase1");
    same_view("Dovecot's phase 1");
    run(&ours, "phase2");
    same_view("our phase 2");
    run(&theirs, "phase3");
    same_view("Dovecot's phase 3");
}

/// The imapclient (PyPI) scenario: its response parser is strict, so every FETCH item, LIST,
/// STATUS and SEARCH reply goes through a second, independent IMAP parser.
const IMAPCLIENT: &str = r#"
import ssl, sys, time, smtplib, datetime
from imapclient import IMAPClient
host, tls_port, user, pw, lmtp = sys.argv[1:6]
ctx = ssl._create_unverified_context()
def out(k, v):
    print(f"{k}\t{v}", flush=True)
c = IMAPClient(host, port=int(tls_port), ssl=True, ssl_context=ctx, timeout=30)
c.login(user, pw)
out("caps", " ".join(sorted(x.decode() for x in c.capabilities())))
for f in ["Clients", "Clients.imapclient", "Clients.imapclient.deep"]:
    c.create_folder(f)
out("folders", "|".join(f"{sorted(x.decode() for x in fl)}:{n}" for fl, d, n in c.list_folders("Clients")))
out("exists", c.folder_exists("Clients.imapclient.deep"))
out("special", sorted((n, [x.decode() for x in fl if x.decode() in ("\\Sent", "\\Trash")]) for fl, d, n in c.list_folders() if n in ("Sent", "Trash")))
msg = (b"From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nTo: a@pochta.test, b@pochta.test\r\n"
       b"Cc: c@example.org\r\nSubject: imapclient test\r\nDate: Mon, 2 Jan 2023 10:00:00 +0100\r\n"
       b"In-Reply-To: <x@y>\r\nMessage-ID: <ic1@t>\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/alternative; boundary=zz\r\n\r\npreamble\r\n"
       b"--zz\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=E4se\r\n"
       b"--zz\r\nContent-Type: text/html\r\nContent-Disposition: inline\r\n\r\n<p>hi</p>\r\n--zz--\r\n")
when = datetime.datetime(2023, 1, 2, 9, 0, 0, tzinfo=datetime.timezone.utc)
r = c.append("Clients.imapclient", msg, flags=[b"\\Flagged", b"$Custom"], msg_time=when)
out("append", r.decode())
c.append("Clients.imapclient", b"Subject: small\r\n\r\nx\r\n")
sel = c.select_folder("Clients.imapclient")
out("select", f"{sel[b'EXISTS']} {sel[b'UIDNEXT']} {sorted(x.decode() for x in sel[b'FLAGS'])}")
data = c.fetch([1], ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[1]", "BINARY.PEEK[1]", "BODY.PEEK[HEADER.FIELDS (SUBJECT CC)]"])
d = data[1]
out("flags", sorted(x.decode() for x in d[b"FLAGS"]))
out("internaldate", d[b"INTERNALDATE"].isoformat())
out("size", d[b"RFC822.SIZE"])
e = d[b"ENVELOPE"]
out("env_subject", e.subject.decode())
out("env_from", f"{e.from_[0].name.decode()} {e.from_[0].mailbox.decode()}@{e.from_[0].host.decode()}")
out("env_to", len(e.to))
out("env_cc", e.cc[0].mailbox.decode())
out("env_reply", e.in_reply_to.decode())
out("env_date", e.date.isoformat() if e.date else None)
bs = d[b"BODYSTRUCTURE"]
out("bs_multipart", bs.is_multipart)
out("bs_sub", bs[1].decode())
out("bs_part1", f"{bs[0][0][0].decode()}/{bs[0][0][1].decode()} {bs[0][0][5].decode()}")
out("body1", d[b"BODY[1]"].decode("latin-1"))
out("binary1", d[b"BINARY[1]"].decode("latin-1"))
out("hdr", d[b"BODY[HEADER.FIELDS (SUBJECT CC)]"].decode())
out("search_subject", c.search(["SUBJECT", "imapclient"]))
out("search_flagged", c.search(["FLAGGED"]))
out("search_body", c.search(["BODY", "hi"]))
out("search_since", c.search(["SINCE", datetime.date(2023, 1, 1)]))
out("search_or", c.search(["OR", "FLAGGED", "SMALLER", 100]))
out("add_flags", c.add_flags([2], [b"\\Seen", b"$Other"]))
out("remove_flags", c.remove_flags([1], [b"$Custom"]))
out("set_flags", c.set_flags([2], [b"\\Answered"]))
out("copy", c.copy([1, 2], "Clients"))
out("move", c.move([2], "Clients.imapclient.deep"))
out("status", c.folder_status("Clients", ["MESSAGES", "UNSEEN", "UIDNEXT"]))
c.delete_messages([1])
out("expunge", c.expunge())
out("left", c.search(["ALL"]))
c.select_folder("INBOX")
c.idle()
l = smtplib.LMTP(lmtp)
t = time.monotonic()
l.sendmail("sender@example.org", [user], b"Subject: idle imapclient\r\n\r\nhi\r\n")
l.quit()
responses = c.idle_check(timeout=5)
out("idle_delay", time.monotonic() - t)
out("idle_responses", responses)
c.idle_done()
c.logout()
"#;

#[test]
fn imapclient_scenario() {
    let s = Setup::start();
    let logs = || s.logs();
    let d = python(
        IMAPCLIENT,
        &[
            "127.0.0.1",
            &s.tls_port.to_string(),
            USER,
            PASS,
            s.lmtp.to_str().unwrap(),
        ],
        &logs,
    );
    let ctx = || format!("{:#?}\n{}", d.0, s.logs());
    for (k, want) in [
        (
            "folders",
            "['\\\\HasChildren']:Clients|['\\\\HasChildren']:Clients.imapclient|\
             ['\\\\HasNoChildren']:Clients.imapclient.deep",
        ),
        ("exists", "True"),
        (
            "special",
            "[('Sent', ['\\\\Sent']), ('Trash', ['\\\\Trash'])]",
        ),
        ("flags", "['$Custom', '\\\\Flagged']"),
        ("size", "472"),
        ("env_subject", "imapclient test"),
        ("env_from", "=?utf-8?q?J=C3=B6rg?= j@example.org"),
        ("env_to", "2"),
        ("env_cc", "c"),
        ("env_reply", "<x@y>"),
        ("bs_multipart", "True"),
        ("bs_sub", "alternative"),
        ("bs_part1", "text/plain quoted-printable"),
        ("body1", "K=E4se"),
        ("binary1", "K\u{e4}se"),
        ("hdr", "Cc: c@example.org"),
        ("search_subject", "[1]"),
        ("search_flagged", "[1]"),
        ("search_body", "[1]"),
        ("search_since", "[1, 2]"),
        ("search_or", "[1, 2]"),
        ("add_flags", "{2: (b'\\\\Seen', b'$Other', b'\\\\Recent')}"),
        ("remove_flags", "{1: (b'\\\\Flagged',)}"),
        ("set_flags", "{2: (b'\\\\Answered', b'\\\\Recent')}"),
        ("status", "{b'MESSAGES': 2, b'UNSEEN': 2, b'UIDNEXT': 3}"),
        ("expunge", "(b'Expunge completed.', [(1, b'EXPUNGE')])"),
        ("left", "[]"),
        ("idle_responses", "[(1, b'EXISTS'), (1, b'RECENT')]"),
    ] {
        assert_eq!(d.one(k), want, "{k}\n{}", ctx());
    }
    assert!(d.one("append").starts_with("[APPENDUID "), "{}", ctx());
    assert!(d.one("select").starts_with("2 3 "), "{}", ctx());
    let delay: f64 = d.one("idle_delay").parse().unwrap();
    assert!(delay < 1.0, "IDLE took {delay} s\n{}", ctx());
}

/// The 1,000-message, 5-folder account the mirroring clients sync.
const MIRROR_FOLDERS: [(&str, usize); 5] = [
    ("INBOX", 400),
    ("Sent", 200),
    ("Archive", 200),
    ("Lists.rust", 100),
    ("Lists.go", 100),
];

/// Fills the account through the store (as deliveries would), with some flags and keywords.
fn fill_account(maildir: &Path) {
    use pochta_mailstore::{DeliverOptions, Flags, Maildir, SystemFlag};
    let m = Maildir::open(maildir);
    m.create_if_missing().unwrap();
    for (folder, n) in MIRROR_FOLDERS {
        if folder != "INBOX" && !m.folder_exists(folder) {
            m.create_mailbox(folder).unwrap();
        }
        for i in 0..n {
            let opts = DeliverOptions {
                flags: if i % 3 == 0 {
                    Flags::empty().with(SystemFlag::Seen)
                } else if i % 7 == 0 {
                    Flags::empty().with(SystemFlag::Flagged)
                } else {
                    Flags::empty()
                },
                keywords: if i % 11 == 0 {
                    vec!["$Important".into()]
                } else {
                    Vec::new()
                },
                ..DeliverOptions::default()
            };
            let body = format!(
                "From: s{i}@example.org\nTo: {USER}\nSubject: {folder} {i}\n\
                 Message-ID: <{i}.{folder}@mirror>\n\nmessage {i} in {folder}\n{}\n",
                "line\n".repeat(i % 13)
            );
            let target = (folder != "INBOX").then_some(folder);
            m.deliver(target, body.as_bytes(), &opts).unwrap();
        }
    }
    chown_tree(maildir);
}

fn chown_tree(p: &Path) {
    chown(p);
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path());
        }
    }
}

/// Message files per folder of a Maildir tree (`new` + `cur`), found recursively.
fn count_files(root: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, usize>) {
        let mut n = 0;
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
                n += rd.count();
            }
        }
        if dir.join("cur").is_dir() {
            let rel = dir
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel, n);
        }
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() && !["new", "cur", "tmp"].contains(&name.as_str()) {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Server-side view: messages per folder and how many are \Seen / \Flagged, through the store.
fn server_counts(maildir: &Path) -> Vec<(String, usize, usize, usize)> {
    use pochta_mailstore::{Maildir, SyncOptions, SystemFlag};
    let m = Maildir::open(maildir);
    let mut out = Vec::new();
    for name in m.list_mailboxes().unwrap() {
        let st = m
            .mailbox(name.as_str())
            .unwrap()
            .sync(SyncOptions::default())
            .unwrap();
        let seen = st
            .messages
            .iter()
            .filter(|x| x.flags.contains(SystemFlag::Seen))
            .count();
        let flagged = st
            .messages
            .iter()
            .filter(|x| x.flags.contains(SystemFlag::Flagged))
            .count();
        out.push((name.as_str().to_string(), st.messages.len(), seen, flagged));
    }
    out
}

fn mbsync(cfg: &Path, logs: &dyn Fn() -> String) -> String {
    let out = Command::new("mbsync")
        .arg("-c")
        .arg(cfg)
        .arg("-a")
        .output()
        .expect("mbsync is needed: apt install isync (run-tests)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mbsync failed:\n{text}\n{}", logs());
    text
}

#[test]
fn mbsync_mirrors_both_ways_and_then_has_nothing_to_do() {
    let s = Setup::start();
    let logs = || s.logs();
    fill_account(&s.maildir);
    let local = TempDir::new("mbsync-local");
    std::fs::create_dir_all(local.join("mail")).unwrap();
    let cfg = local.join("mbsyncrc");
    std::fs::write(
        &cfg,
        format!(
            "IMAPAccount pochta\nHost localhost\nPort {port}\nUser {USER}\nPass {PASS}\n\
             SSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore far\nAccount pochta\n\n\
             MaildirStore near\nPath {near}/\nInbox {near}/INBOX\nSubFolders Verbatim\n\n\
             Channel mirror\nFar :far:\nNear :near:\nPatterns *\nCreate Both\nExpunge Both\n\
             SyncState *\n",
            port = s.tls_port,
            cert = s.imapd_dir.join("cert.pem").display(),
            near = local.join("mail").display(),
        ),
    )
    .unwrap();
    let near_root = local.join("mail");
    let t = Instant::now();
    mbsync(&cfg, &logs);
    eprintln!("mbsync first run (1,000 messages): {:?}", t.elapsed());
    same_counts(&near_root, &s.maildir, &logs);
    assert_eq!(count_files(&near_root).values().sum::<usize>(), 1000);

    // a second run transfers nothing: neither side changes
    let before = (snapshot(&near_root), snapshot(&s.maildir));
    mbsync(&cfg, &logs);
    assert!(
        before == (snapshot(&near_root), snapshot(&s.maildir)),
        "second mbsync run changed something\n{}",
        logs()
    );

    change_both_sides(&near_root.join("INBOX"), &s.maildir);
    mbsync(&cfg, &logs);
    check_both_ways(&near_root, &s.maildir, &logs);

    let before = (snapshot(&near_root), snapshot(&s.maildir));
    mbsync(&cfg, &logs);
    assert!(
        before == (snapshot(&near_root), snapshot(&s.maildir)),
        "mbsync run after the two-way sync changed something\n{}",
        logs()
    );
}

/// Every message file name (with its flags) under a Maildir tree.
fn snapshot(root: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    fn walk(dir: &Path, out: &mut std::collections::BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d == "new" || d == "cur")
            {
                out.insert(p.to_string_lossy().into_owned());
                let _ = name;
            }
        }
    }
    walk(root, &mut out);
    out
}

/// Local (mbsync Maildir, `/` hierarchy) and server folders hold the same number of messages,
/// and the same number of them are \Seen and \Flagged.
fn same_counts(near: &Path, server: &Path, logs: &dyn Fn() -> String) {
    let mut local = Vec::new();
    for (folder, n) in count_files(near) {
        if folder.is_empty() {
            continue;
        }
        let (mut seen, mut flagged) = (0, 0);
        let dirs = [
            near.join(&folder).join("cur"),
            near.join(&folder).join("new"),
        ];
        for e in dirs.iter().flat_map(std::fs::read_dir).flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let flags = name
                .rsplit_once(":2,")
                .map(|x| x.1.to_string())
                .unwrap_or_default();
            seen += usize::from(flags.contains('S'));
            flagged += usize::from(flags.contains('F'));
        }
        local.push((folder.replace('/', "."), n, seen, flagged));
    }
    local.sort();
    let mut remote = server_counts(server);
    remote.sort();
    assert_eq!(
        local,
        remote,
        "local (left) and server (right) differ\n{}",
        logs()
    );
}

/// Changes on both sides of a mirror: in the local INBOX a new message, a \\Seen and a
/// deletion; on the server a delivery to Lists.go and a \\Flagged in Archive.
fn change_both_sides(inbox: &Path, maildir: &Path) {
    // both ways: a local new message, a local \Seen and a local deletion go up; a delivery
    // and a flag change on the server come down
    std::fs::write(
        inbox.join("new/1800000000.local.host"),
        "From: me@example.org\nSubject: written locally\n\nlocal\n",
    )
    .unwrap();
    let mut cur: Vec<PathBuf> = ["cur", "new"]
        .iter()
        .flat_map(|d| std::fs::read_dir(inbox.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("1800000000.local.host"))
        .collect();
    cur.sort();
    let info = |p: &Path| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        n.split_once(":2,").map(|x| x.1.to_string())
    };
    let unseen = cur
        .iter()
        .find(|p| {
            let i = info(p).unwrap_or_default();
            !i.contains('S') && !i.contains('F')
        })
        .unwrap()
        .clone();
    let name = unseen.file_name().unwrap().to_string_lossy().into_owned();
    let seen_name = match info(&unseen) {
        Some(_) => format!("{name}S"),
        None => format!("{name}:2,S"),
    };
    std::fs::rename(&unseen, inbox.join("cur").join(seen_name)).unwrap();
    let doomed = cur
        .iter()
        .find(|p| {
            let i = info(p).unwrap_or_default();
            **p != unseen && !i.contains('S') && !i.contains('F')
        })
        .unwrap();
    std::fs::remove_file(doomed).unwrap();
    {
        use pochta_mailstore::{DeliverOptions, FlagOp, Flags, Maildir, SyncOptions, SystemFlag};
        let m = Maildir::open(maildir);
        m.deliver(
            Some("Lists.go"),
            b"Subject: new on the server\n\nhello\n",
            &DeliverOptions::default(),
        )
        .unwrap();
        let mb = m.mailbox("Archive").unwrap();
        let st = mb.sync(SyncOptions::default()).unwrap();
        let first = st
            .messages
            .iter()
            .find(|x| !x.flags.contains(SystemFlag::Flagged))
            .unwrap();
        mb.store_flags(
            first,
            FlagOp::Add,
            Flags::empty().with(SystemFlag::Flagged),
            &[],
        )
        .unwrap();
        chown_tree(maildir);
    }
}

/// After a sync of [`change_both_sides`]: both sides agree and the changes went across.
fn check_both_ways(near_root: &Path, maildir: &Path, logs: &dyn Fn() -> String) {
    same_counts(near_root, maildir, logs);
    let server = server_counts(maildir);
    let get = |n: &str| server.iter().find(|x| x.0 == n).unwrap().clone();
    assert_eq!(
        get("INBOX").1,
        400,
        "one up, one deleted: {server:?}\n{}",
        logs()
    );
    assert_eq!(get("INBOX").2, 135, "the local \\Seen went up: {server:?}");
    assert_eq!(get("Lists.go").1, 101, "{server:?}");
    assert_eq!(get("Archive").3, 20, "{server:?}");
}

fn offlineimap(cfg: &Path, logs: &dyn Fn() -> String) -> String {
    let out = Command::new("offlineimap")
        .arg("-c")
        .arg(cfg)
        .args(["-o", "-u", "basic"])
        .output()
        .expect("offlineimap is needed: apt install offlineimap3 (run-tests)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("ERROR"),
        "offlineimap failed:\n{text}\n{}",
        logs()
    );
    text
}

#[test]
fn offlineimap_mirrors_both_ways_and_then_has_nothing_to_do() {
    let s = Setup::start();
    let logs = || s.logs();
    fill_account(&s.maildir);
    let local = TempDir::new("offlineimap-local");
    let near_root = local.join("mail");
    std::fs::create_dir_all(&near_root).unwrap();
    let cfg = local.join("offlineimaprc");
    std::fs::write(
        &cfg,
        format!(
            "[general]\naccounts = pochta\nmetadata = {meta}\n\n\
             [Account pochta]\nlocalrepository = near\nremoterepository = far\n\n\
             [Repository near]\ntype = Maildir\nlocalfolders = {near}\nsep = .\n\n\
             [Repository far]\ntype = IMAP\nremotehost = localhost\nremoteport = {port}\n\
             ssl = yes\nsslcacertfile = {cert}\nremoteuser = {USER}\nremotepass = {PASS}\n",
            meta = local.join("meta").display(),
            near = near_root.display(),
            port = s.tls_port,
            cert = s.imapd_dir.join("cert.pem").display(),
        ),
    )
    .unwrap();
    let t = Instant::now();
    offlineimap(&cfg, &logs);
    eprintln!("offlineimap first run (1,000 messages): {:?}", t.elapsed());
    same_counts(&near_root, &s.maildir, &logs);
    assert_eq!(count_files(&near_root).values().sum::<usize>(), 1000);

    let before = (snapshot(&near_root), snapshot(&s.maildir));
    offlineimap(&cfg, &logs);
    assert!(
        before == (snapshot(&near_root), snapshot(&s.maildir)),
        "second offlineimap run changed something\n{}",
        logs()
    );

    change_both_sides(&near_root.join("INBOX"), &s.maildir);
    offlineimap(&cfg, &logs);
    check_both_ways(&near_root, &s.maildir, &logs);

    let before = (snapshot(&near_root), snapshot(&s.maildir));
    offlineimap(&cfg, &logs);
    assert!(
        before == (snapshot(&near_root), snapshot(&s.maildir)),
        "offlineimap run after the two-way sync changed something\n{}",
        logs()
    );
}

fn imaps(port: u16) -> LineClient<TlsStream> {
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    LineClient::new(tls_wrap(tcp))
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn bad_input_over_the_wire_and_a_100_mb_append() {
    use std::io::Write;
    let mut s = Setup::start();
    let mut c = imaps(s.tls_port);
    assert!(c.line().starts_with("* OK [CAPABILITY IMAP4rev1"));
    let expect = |c: &mut LineClient<TlsStream>, cmd: &str, want: &str| {
        let got = c.cmd(cmd);
        assert_eq!(got, format!("{want}\r\n"), "{cmd}\n{}", s.logs());
    };
    expect(&mut c, "a1 SELECT INBOX", "a1 BAD Please log in first.");
    expect(
        &mut c,
        "a2 XYZZY",
        "a2 BAD Error in IMAP command: Unknown command.",
    );
    c.get_mut().write_all(b"a3 LOGIN \xe4\xf6 x\r\n").unwrap();
    assert_eq!(
        c.line(),
        "a3 BAD Error in IMAP command: 8-bit characters are not allowed in atoms.\r\n"
    );
    expect(&mut c, "a4 LOGIN {5000}", "a4 NO [TOOBIG] Literal too big.");
    let login = c.cmd(&format!("a5 LOGIN {USER} {PASS}"));
    assert!(login.starts_with("a5 OK [CAPABILITY"), "{login}");
    let mut nested = "a6 SEARCH ".to_string();
    nested.push_str(&"(".repeat(10_000));
    nested.push_str("ALL");
    nested.push_str(&")".repeat(10_000));
    expect(
        &mut c,
        &nested,
        "a6 BAD Error in IMAP command: Search keys nested too deeply.",
    );
    c.send("s SELECT INBOX\r\n");
    while !c.line().starts_with("s OK") {}

    // 100 MB with LITERAL+ over the 1 MB limit: drained, answered, not stored, memory flat
    let pid = s.imapd.pid();
    let before = rss_kib(pid);
    c.send("a7 APPEND INBOX {104857600+}\r\n");
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        c.get_mut().write_all(&chunk).unwrap();
    }
    c.send("\r\n");
    assert_eq!(c.line(), "a7 NO [TOOBIG] Literal too big.\r\n");
    let after = rss_kib(pid);
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // synchronizing: refused before the client sends a byte
    expect(
        &mut c,
        "a8 APPEND INBOX {104857600}",
        "a8 NO [TOOBIG] Literal too big.",
    );
    expect(&mut c, "a9 NOOP", "a9 OK NOOP completed.");
    // an unterminated literal, then the connection is cut
    c.send("b1 APPEND INBOX {100}\r\n");
    assert_eq!(c.line(), "+ OK\r\n");
    c.send("only a part");
    drop(c);
    let mut c = imaps(s.tls_port);
    c.line();
    assert!(c
        .cmd(&format!("b2 LOGIN {USER} {PASS}"))
        .starts_with("b2 OK"));
    c.send("b3 STATUS INBOX (MESSAGES)\r\n");
    assert_eq!(c.line(), "* STATUS INBOX (MESSAGES 0)\r\n");
    assert!(s.imapd.try_exit().is_none(), "imapd died\n{}", s.logs());
}

fn line_matches(expected: &str, got: &str) -> bool {
    let parts: Vec<&str> = expected.split('…').collect();
    if parts.len() == 1 {
        return expected == got;
    }
    let mut rest = got;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

/// imapd's transcripts (imapd/tests/transcripts, replayed in-process by its own tests) replayed
/// over IMAPS against the built binary: the canned user `alice`/`secret` becomes the authd
/// user, `!deliver`/`!expunge` act on the Maildir as another process would, `!changed` is
/// inotify's job here. Transcripts whose greeting is exact (plaintext capabilities) are skipped.
#[test]
fn transcripts_replayed_against_the_binary() {
    let s = Setup::start();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../imapd/tests/transcripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "imap"))
        .collect();
    files.sort();
    let mut replayed = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.contains("\nS: * OK …\n") {
            continue;
        }
        // a fresh account per transcript
        let _ = std::fs::remove_dir_all(&s.maildir);
        let mut c = imaps(s.tls_port);
        let mut expected: Vec<String> = Vec::new();
        let check = |c: &mut LineClient<TlsStream>, expected: &mut Vec<String>| {
            for want in expected.drain(..) {
                let got = c.line();
                let got = got.strip_suffix("\r\n").unwrap_or(&got).to_string();
                assert!(
                    line_matches(&want, &got),
                    "{}: expected {want:?}, got {got:?}\n{}",
                    file.display(),
                    s.logs()
                );
            }
        };
        for line in text.lines() {
            let c_line = if line == "C:" {
                Some("")
            } else {
                line.strip_prefix("C: ")
            };
            if let Some(cmd) = c_line {
                check(&mut c, &mut expected);
                let cmd = cmd.replace("LOGIN alice secret", &format!("LOGIN {USER} {PASS}"));
                c.send(&format!("{cmd}\r\n"));
            } else if let Some(want) = line.strip_prefix("S: ") {
                expected.push(want.to_string());
            } else if let Some(d) = line.strip_prefix("!deliver ") {
                check(&mut c, &mut expected);
                let mut w = d.splitn(3, ' ');
                let (_user, mailbox, subject) =
                    (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
                let md = pochta_mailstore::Maildir::open(&s.maildir);
                let msg = format!("From: x@example.org\nSubject: {subject}\n\nbody {subject}\n");
                let target = (mailbox != "INBOX").then_some(mailbox);
                md.deliver(target, msg.as_bytes(), &Default::default())
                    .unwrap();
                chown_tree(&s.maildir);
            } else if let Some(d) = line.strip_prefix("!expunge ") {
                check(&mut c, &mut expected);
                let mut w = d.splitn(3, ' ');
                let (_user, mailbox, uid) =
                    (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
                let mb = pochta_mailstore::Maildir::open(&s.maildir)
                    .mailbox(mailbox)
                    .unwrap();
                let st = mb.sync(Default::default()).unwrap();
                let uid: u32 = uid.parse().unwrap();
                let m: Vec<_> = st.messages.into_iter().filter(|m| m.uid == uid).collect();
                assert_eq!(mb.expunge(&m).unwrap(), vec![uid]);
                chown_tree(&s.maildir);
            } else if line == "!changed" {
                // the daemon's inotify sees the delivery by itself
            } else if !(line.trim().is_empty() || line.starts_with('#')) {
                panic!("{}: bad transcript line {line:?}", file.display());
            }
        }
        check(&mut c, &mut expected);
        replayed += 1;
    }
    assert!(replayed >= 2, "no transcripts replayed");
}
