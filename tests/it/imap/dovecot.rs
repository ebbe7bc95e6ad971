//! Dovecot imap and pochta-imapd take turns on one Maildir.

use super::*;

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
