//! pochta-authd and pochta-auth-client against real peers: Postfix smtpd with
//! `smtpd_sasl_type = dovecot`, Dovecot's doveadm, a real Dovecot auth service, and raw bad
//! input (docs/formats.md#dovecot-auth-protocol, #passwd-file, #password-schemes).

use crate::harness::*;
use pochta_auth_client::{
    filter_mechanisms, AuthClientError, ClientOptions, SaslClient, SaslRequest, SaslStep,
    UserdbClient,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Fails the test with a clear message when a peer program is not installed.
fn need(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is not installed: install the Debian packages listed in run-tests");
}

fn wait_for_path(path: &Path, what: &str, log: &dyn Fn() -> String) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: {} did not appear\n{}", path.display(), log());
}

/// A private Dovecot (auth service only) with its own config, base_dir and passwd-file.
pub struct Dovecot {
    pub dir: TempDir,
    pub base: PathBuf,
}

impl Dovecot {
    /// Starts Dovecot with `users` as its passwd-file (default scheme PLAIN).
    pub fn start(users: &str) -> Self {
        need("dovecot");
        let dir = TempDir::new("dovecot");
        let base = dir.join("run");
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::write(dir.join("users"), users).unwrap();
        let conf = format!(
            "base_dir = {base}\n\
             state_dir = {state}\n\
             instance_name = pochta-it-{pid}-{n}\n\
             protocols = none\n\
             log_path = {log}\n\
             ssl = no\n\
             auth_mechanisms = plain login cram-md5\n\
             auth_verbose = yes\nauth_debug = yes\nauth_failure_delay = 0\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
             service auth {{\n\
               unix_listener auth-client {{\n    mode = 0666\n  }}\n\
               unix_listener auth-userdb {{\n    mode = 0660\n    user = root\n  }}\n\
             }}\n",
            base = base.display(),
            state = dir.join("state").display(),
            pid = std::process::id(),
            n = free_port(),
            log = dir.join("dovecot.log").display(),
            users = dir.join("users").display(),
        );
        let conf_path = dir.join("dovecot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // Dovecot daemonizes; its children keep inherited pipes open, so no `output()`.
        let err_path = dir.join("dovecot.stderr");
        let status = Command::new(need("dovecot"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        let log_path = dir.join("dovecot.log");
        let log = move || std::fs::read_to_string(&log_path).unwrap_or_default();
        assert!(
            status.success(),
            "dovecot did not start: {}\n{}",
            std::fs::read_to_string(&err_path).unwrap_or_default(),
            log()
        );
        let d = Dovecot { dir, base };
        wait_for_path(&d.socket("auth-client"), "dovecot", &log);
        wait_for_path(&d.socket("auth-userdb"), "dovecot", &log);
        d
    }

    pub fn socket(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.base.join("master.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let pid = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                // Wait for it to go, so that it writes nothing into the removed directory.
                let end = Instant::now() + Duration::from_secs(5);
                while nix::sys::signal::kill(pid, None).is_ok() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn plain_ir(user: &str, pass: &str) -> Vec<u8> {
    format!("\0{user}\0{pass}").into_bytes()
}

/// Runs one whole exchange, answering challenges from `answers` in order.
async fn exchange(
    client: &SaslClient,
    mut req: SaslRequest,
    ir: Option<Vec<u8>>,
    answers: &[&[u8]],
) -> Result<SaslStep, AuthClientError> {
    req.initial_response = ir.map(Into::into);
    let (mut ex, mut step) = client.start(req).await?;
    let mut answers = answers.iter();
    while let SaslStep::Continue(_) = step {
        let a = answers
            .next()
            .expect("server asked for more than the test has");
        step = ex.respond(a).await?;
    }
    Ok(step)
}

fn request(mech: &str) -> SaslRequest {
    let mut r = SaslRequest::new(mech, "smtp");
    r.remote_ip = Some("127.0.0.1".parse().unwrap());
    r.local_ip = Some("127.0.0.1".parse().unwrap());
    r.secured = true;
    r
}

/// The client crate's SASL relay and userdb lookups against a real Dovecot 2.3 auth service.
#[test]
fn client_crate_against_real_dovecot() {
    let dc = Dovecot::start(
        "alice@example.org:{PLAIN}wonderland:5000:5000::/srv/mail/alice::\
         userdb_mail=maildir:~/Maildir userdb_quota_rule=*:storage=1G\n",
    );
    let rt = rt();
    rt.block_on(async {
        let sasl = SaslClient::new(dc.socket("auth-client"));
        let mechs = sasl.mechanisms().await.unwrap();
        let names: Vec<_> = mechs.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["PLAIN", "LOGIN", "CRAM-MD5"], "{mechs:?}");
        let insecure: Vec<_> = filter_mechanisms(&mechs, false)
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(insecure, ["CRAM-MD5"]);

        let ok = exchange(
            &sasl,
            request("PLAIN"),
            Some(plain_ir("alice@example.org", "wonderland")),
            &[],
        )
        .await
        .unwrap();
        match ok {
            SaslStep::Success(s) => assert_eq!(s.user, "alice@example.org"),
            other => panic!("PLAIN: {other:?}\n{}", dc.log()),
        }
        // LOGIN without an initial response: two challenges relayed.
        let ok = exchange(
            &sasl,
            request("login"),
            None,
            &[b"alice@example.org", b"wonderland"],
        )
        .await
        .unwrap();
        assert!(matches!(ok, SaslStep::Success(_)), "LOGIN: {ok:?}");
        // Wrong password: a failure that is not temporary. no-penalty keeps the test fast.
        let mut req = request("PLAIN");
        req.no_penalty = true;
        let bad = exchange(&sasl, req, Some(plain_ir("alice@example.org", "nope")), &[])
            .await
            .unwrap();
        match bad {
            SaslStep::Failure(f) => assert!(!f.is_temporary(), "{f:?}"),
            other => panic!("wrong password: {other:?}"),
        }

        let userdb = UserdbClient::new(dc.socket("auth-userdb"));
        let u = userdb
            .lookup("alice@example.org", "lmtp", None, None)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("alice not found\n{}", dc.log()));
        assert_eq!(u.user, "alice@example.org");
        assert_eq!(u.uid(), Some(5000));
        assert_eq!(u.gid(), Some(5000));
        assert_eq!(u.home(), Some("/srv/mail/alice"));
        assert_eq!(u.mail(), Some("maildir:~/Maildir"));
        assert_eq!(u.quota_rule(), Some("*:storage=1G"));
        assert_eq!(
            userdb
                .lookup("nobody@example.org", "lmtp", None, None)
                .await,
            Ok(None)
        );
        // Pipelined lookups on the one connection.
        let many = (0..20).map(|_| {
            let u = userdb.clone();
            async move { u.lookup("alice@example.org", "lmtp", None, None).await }
        });
        for r in futures_join(many).await {
            assert_eq!(r.unwrap().unwrap().uid(), Some(5000));
        }
    });
    drop(dc);
    // A dead socket is an error of its own, not a failed login.
    rt.block_on(async {
        let opts = ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        };
        let gone = SaslClient::with_options("/nonexistent/auth-client", opts);
        let e = exchange(&gone, request("PLAIN"), Some(plain_ir("a", "b")), &[])
            .await
            .unwrap_err();
        assert!(
            matches!(e, AuthClientError::Unavailable(_)) && e.is_temporary(),
            "{e:?}"
        );
    });
}

/// Awaits all futures concurrently (no extra crate for one join).
async fn futures_join<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// pochta-authd

/// A running pochta-authd with both sockets in its own directory.
pub struct Authd {
    pub dir: TempDir,
    pub daemon: Daemon,
    pub client: PathBuf,
    pub userdb: PathBuf,
}

impl Authd {
    /// Starts authd with `users` as its passwd-file and `auth` as the body of its `[auth]`
    /// table (TOML lines).
    pub fn start(users: &str, auth: &str) -> Self {
        let dir = TempDir::new("authd");
        std::fs::write(dir.join("users"), users).unwrap();
        let (client, userdb) = (dir.join("auth-client"), dir.join("auth-userdb"));
        let config = format!(
            "[server]\nlog_level = \"debug\"\n\n\
             [[listener]]\nservice = \"auth-client\"\naddress = \"{client}\"\nmode = \"0666\"\n\n\
             [[listener]]\nservice = \"auth-userdb\"\naddress = \"{userdb}\"\nmode = \"0660\"\n\n\
             [passdb]\npath = \"{users}\"\n\n\
             [userdb]\nhome = \"/var/mail/%d/%n\"\nmail = \"maildir:~/Maildir\"\n\n\
             [auth]\n{auth}\n",
            client = client.display(),
            userdb = userdb.display(),
            users = dir.join("users").display(),
        );
        let cfg = dir.join("authd.toml");
        std::fs::write(&cfg, as_test_user(&config)).unwrap();
        let mut notify = Notify::new(&dir);
        let mut cmd = Command::new(crate::config::daemon_bin("authd"));
        cmd.arg("-c").arg(&cfg);
        let mut daemon = Daemon::spawn(cmd, &dir, &notify);
        notify.wait_for("READY=1", &mut daemon);
        Authd {
            dir,
            daemon,
            client,
            userdb,
        }
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Kills the daemon (no goodbye to its clients) and starts it again on the same sockets.
    pub fn restart(&mut self) {
        let _ = self.daemon.child.kill();
        let _ = self.daemon.child.wait();
        let _ = std::fs::remove_file(self.dir.join("notify.sock"));
        let mut notify = Notify::new(&self.dir);
        let mut cmd = Command::new(crate::config::daemon_bin("authd"));
        cmd.arg("-c").arg(self.dir.join("authd.toml"));
        self.daemon = Daemon::spawn(cmd, &self.dir, &notify);
        notify.wait_for("READY=1", &mut self.daemon);
    }
}

const MECHS: &str =
    "mechanisms = [\"PLAIN\", \"LOGIN\", \"CRAM-MD5\", \"SCRAM-SHA-1\", \"SCRAM-SHA-256\"]";

/// A users file: a cleartext user (every mechanism), a SHA512-CRYPT user (PLAIN/LOGIN only) and
/// a user with nologin.
fn users_file() -> String {
    // -O: no dovecot.conf (without it doveadm reads /etc/dovecot's, or fails without one).
    let out = Command::new(need("doveadm"))
        .args(["-O", "pw", "-s", "SHA512-CRYPT", "-p", "crypted-pw"])
        .output()
        .unwrap();
    assert!(out.status.success(), "doveadm pw failed");
    let hash = String::from_utf8(out.stdout).unwrap();
    format!(
        "alice@example.org:{{PLAIN}}wonderland:5000:5000::/srv/mail/alice::\
         userdb_quota_rule=*:storage=1G\n\
         bob@example.org:{}:5001:5001::::\n\
         carol@example.org:{{PLAIN}}pw:5002:5002:::: nologin reason=Moved\n",
        hash.trim()
    )
}

/// `doveadm -O ARGS…`: no dovecot.conf (the socket comes with `-a`), not /etc/dovecot's.
fn doveadm_run(args: &[&str]) -> (i32, String) {
    let out = Command::new(need("doveadm"))
        .arg("-O")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Dovecot's own clients against authd's sockets: `doveadm auth test` and `doveadm user`.
#[test]
fn doveadm_against_authd() {
    let a = Authd::start(
        &users_file(),
        &format!("{MECHS}\nfailure_delay = \"100ms\""),
    );
    let sock = a.client.to_str().unwrap();
    let (code, out) = doveadm_run(&[
        "auth",
        "test",
        "-a",
        sock,
        "alice@example.org",
        "wonderland",
    ]);
    assert_eq!(code, 0, "{out}\n{}", a.log());
    assert!(
        out.contains("passdb: alice@example.org auth succeeded"),
        "{out}"
    );
    // Names are case-insensitive by default (username_format = lowercase, Dovecot's %Lu).
    for name in ["bob@Example.ORG", "BOB@EXAMPLE.ORG", "Bob@example.org"] {
        let (code, out) = doveadm_run(&["auth", "test", "-a", sock, name, "crypted-pw"]);
        assert_eq!(code, 0, "{name}: {out}\n{}", a.log());
        assert!(out.contains("user=bob@example.org"), "{name}: {out}");
    }
    let (code, out) = doveadm_run(&["auth", "test", "-a", sock, "bob@example.org", "wrong"]);
    assert_eq!(code, 77, "{out}");
    assert!(out.contains("auth failed"), "{out}");
    let (code, out) = doveadm_run(&["auth", "test", "-a", sock, "ghost@example.org", "wrong"]);
    assert_eq!(code, 77, "{out}");
    let (code, out) = doveadm_run(&["auth", "test", "-a", sock, "carol@example.org", "pw"]);
    assert_eq!(code, 77, "nologin must not log in: {out}");
    assert!(out.contains("reason=Moved"), "{out}");

    let sock = a.userdb.to_str().unwrap();
    let (code, out) = doveadm_run(&["user", "-a", sock, "alice@example.org"]);
    assert_eq!(code, 0, "{out}\n{}", a.log());
    for want in [
        "uid\t5000",
        "gid\t5000",
        "home\t/srv/mail/alice",
        "mail\tmaildir:~/Maildir",
        "quota_rule\t*:storage=1G",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    // Defaults and templates fill what the entry leaves empty.
    let (code, out) = doveadm_run(&["user", "-a", sock, "bob@example.org"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("home\t/var/mail/example.org/bob"), "{out}");
    let (code, out) = doveadm_run(&["user", "-a", sock, "ghost@example.org"]);
    assert_eq!(code, 67, "unknown user: {out}");
    assert!(out.contains("doesn't exist"), "{out}");
    let (code, out) = doveadm_run(&["user", "-a", sock, "*"]);
    assert_eq!(code, 0, "{out}");
    let listed: Vec<_> = out.lines().collect();
    assert_eq!(
        listed,
        ["alice@example.org", "bob@example.org", "carol@example.org"]
    );
}

/// The client crate against authd: every mechanism, schemes that cannot serve a mechanism, and
/// the canonical user name.
#[test]
fn client_crate_against_authd() {
    let a = Authd::start(
        &users_file(),
        &format!("{MECHS}\nfailure_delay = \"100ms\""),
    );
    rt().block_on(async {
        let sasl = SaslClient::new(&a.client);
        let names: Vec<_> = sasl
            .mechanisms()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(
            names,
            ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]
        );
        let ok = |s: SaslStep| match s {
            SaslStep::Success(s) => s.user,
            other => panic!("expected success: {other:?}\n{}", a.log()),
        };
        let failed = |s: SaslStep| match s {
            SaslStep::Failure(f) => assert!(!f.is_temporary(), "{f:?}"),
            other => panic!("expected failure: {other:?}"),
        };
        let ir = plain_ir("alice@example.org", "wonderland");
        assert_eq!(
            ok(exchange(&sasl, request("PLAIN"), Some(ir), &[])
                .await
                .unwrap()),
            "alice@example.org"
        );
        let ir = plain_ir("bob@EXAMPLE.org", "crypted-pw");
        assert_eq!(
            ok(exchange(&sasl, request("plain"), Some(ir), &[])
                .await
                .unwrap()),
            "bob@example.org"
        );
        let step = exchange(
            &sasl,
            request("LOGIN"),
            None,
            &[b"bob@example.org", b"crypted-pw"],
        );
        ok(step.await.unwrap());
        let step = exchange(
            &sasl,
            request("LOGIN"),
            None,
            &[b"bob@example.org", b"nope"],
        );
        failed(step.await.unwrap());

        // CRAM-MD5 works for the cleartext user, not for the SHA512-CRYPT one.
        for (user, pass, works) in [
            ("alice@example.org", "wonderland", true),
            ("alice@example.org", "wrong", false),
            ("bob@example.org", "crypted-pw", false),
        ] {
            let (mut ex, step) = sasl.start(request("CRAM-MD5")).await.unwrap();
            let SaslStep::Continue(challenge) = step else {
                panic!("{step:?}")
            };
            let key = pochta_password::StoredPassword::parse(
                &format!("{{PLAIN}}{pass}"),
                pochta_password::Scheme::Plain,
                false,
            )
            .unwrap()
            .cram_md5()
            .unwrap();
            let digest: String = key
                .hmac(challenge.expose())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let step = ex
                .respond(format!("{user} {digest}").as_bytes())
                .await
                .unwrap();
            if works {
                assert_eq!(ok(step), user);
            } else {
                failed(step);
            }
        }
    });
}

/// SCRAM by an independent client (Python's hashlib/hmac) over the raw auth protocol, as
/// Dovecot's 2.3 clients speak it: the server's final `v=` comes as a last CONT, then OK.
const SCRAM_CLIENT: &str = r#"
import base64, hashlib, hmac, os, socket, sys
path, mech, user, password = sys.argv[1:5]
h = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mech]
s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile("rb")
s.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
while f.readline().rstrip(b"\n") != b"DONE": pass
b64 = lambda b: base64.b64encode(b).decode()
nonce = b64(os.urandom(18))
bare = "n=%s,r=%s" % (user, nonce)
s.sendall(("AUTH\t1\t%s\tservice=imap\tresp=%s\n" % (mech, b64(("n,," + bare).encode()))).encode())
def reply():
    parts = f.readline().decode().rstrip("\n").split("\t")
    return parts
r = reply()
if r[0] != "CONT": print("FIRST", "\t".join(r)); sys.exit(0)
first = base64.b64decode(r[2]).decode()
attrs = dict(a.split("=", 1) for a in first.split(","))
salted = hashlib.pbkdf2_hmac(h, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
ck = hmac.new(salted, b"Client Key", h).digest()
sk = hashlib.new(h, ck).digest()
without = "c=biws,r=" + attrs["r"]
msg = ",".join([bare, first, without]).encode()
proof = bytes(a ^ b for a, b in zip(ck, hmac.new(sk, msg, h).digest()))
s.sendall(("CONT\t1\t%s\n" % b64((without + ",p=" + b64(proof)).encode())).encode())
r = reply()
if r[0] != "CONT": print("FINAL", "\t".join(r)); sys.exit(0)
server_sig = hmac.new(hmac.new(salted, b"Server Key", h).digest(), msg, h).digest()
ok_sig = base64.b64decode(r[2]).decode() == "v=" + b64(server_sig)
s.sendall(b"CONT\t1\t\n")
r = reply()
print("VERIFIED" if ok_sig else "BADSIG", "\t".join(r))
"#;

fn scram_python(socket: &Path, mech: &str, user: &str, password: &str) -> String {
    let out = Command::new(need("python3"))
        .arg("-c")
        .arg(SCRAM_CLIENT)
        .arg(socket)
        .args([mech, user, password])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python SCRAM client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn scram_against_an_independent_client() {
    // A stored SCRAM-SHA-256 hash from doveadm, besides the cleartext user.
    let out = Command::new(need("doveadm"))
        .args(["-O", "pw", "-s", "SCRAM-SHA-256", "-p", "scram-pw"])
        .output()
        .unwrap();
    let hash = String::from_utf8(out.stdout).unwrap();
    let users = format!("{}dave@example.org:{}::::::\n", users_file(), hash.trim());
    let a = Authd::start(&users, &format!("{MECHS}\nfailure_delay = \"100ms\""));
    for (mech, user, pass, want) in [
        (
            "SCRAM-SHA-256",
            "alice@example.org",
            "wonderland",
            "VERIFIED OK\t1\tuser=alice@example.org",
        ),
        (
            "SCRAM-SHA-1",
            "alice@example.org",
            "wonderland",
            "VERIFIED OK\t1\tuser=alice@example.org",
        ),
        (
            "SCRAM-SHA-256",
            "dave@example.org",
            "scram-pw",
            "VERIFIED OK\t1\tuser=dave@example.org",
        ),
        (
            "SCRAM-SHA-256",
            "alice@example.org",
            "wrong",
            "FINAL FAIL\t1",
        ),
        (
            "SCRAM-SHA-1",
            "dave@example.org",
            "scram-pw",
            "FINAL FAIL\t1",
        ),
        (
            "SCRAM-SHA-256",
            "bob@example.org",
            "crypted-pw",
            "FINAL FAIL\t1",
        ),
        ("SCRAM-SHA-256", "ghost@example.org", "x", "FINAL FAIL\t1"),
    ] {
        let got = scram_python(&a.client, mech, user, pass);
        assert!(got.starts_with(want), "{mech} {user}: {got}\n{}", a.log());
    }
}

/// A private Postfix whose smtpd listeners authenticate through `sasl_path`
/// (`smtpd_sasl_type = dovecot`); one listener per entry of `security`, with that
/// `smtpd_sasl_security_options`.
struct Postfix {
    conf: PathBuf,
    log: PathBuf,
    ports: Vec<u16>,
}

impl Postfix {
    fn start(dir: &TempDir, sasl_path: &Path, security: &[&str]) -> Self {
        let postfix = need("postfix");
        let base = dir.join("postfix");
        let (conf, queue, data) = (base.join("etc"), base.join("spool"), base.join("data"));
        for d in [&conf, &queue, &data] {
            std::fs::create_dir_all(d).unwrap();
        }
        let pf = nix::unistd::User::from_name("postfix").unwrap().unwrap();
        nix::unistd::chown(&data, Some(pf.uid), None).unwrap();
        let log = base.join("maillog");
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {queue}\ndata_directory = {data}\n\
                 mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mx.it.test\n\
                 mydomain = it.test\nmyorigin = $myhostname\nmydestination =\n\
                 inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks =\n\
                 in_flow_delay = 0\nsmtpd_peername_lookup = no\n\
                 smtp_dns_support_level = disabled\n\
                 alias_maps =\nalias_database =\nlocal_recipient_maps =\nbiff = no\n\
                 smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n\
                 smtpd_sasl_path = {sasl}\nbroken_sasl_auth_clients = no\n\
                 maillog_file = {log}\nmaillog_file_prefixes = /var, /dev/stdout, /tmp\n\
                 master_service_disable =\n",
                queue = queue.display(),
                data = data.display(),
                sasl = sasl_path.display(),
                log = log.display(),
            ),
        )
        .unwrap();
        let mut master = String::new();
        let mut ports = Vec::new();
        for opts in security {
            let port = free_port();
            ports.push(port);
            master.push_str(&format!(
                "127.0.0.1:{port} inet n - n - - smtpd -o smtpd_sasl_security_options={opts}\n"
            ));
        }
        master.push_str(
            "cleanup unix n - n - 0 cleanup\nqmgr unix n - n 300 1 qmgr\n\
             rewrite unix - - n - - trivial-rewrite\nbounce unix - - n - 0 bounce\n\
             defer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce\n\
             verify unix - - n - 1 verify\nproxymap unix - - n - - proxymap\n\
             error unix - - n - - error\nretry unix - - n - - error\n\
             discard unix - - n - - discard\nanvil unix - - n - 1 anvil\n\
             scache unix - - n - 1 scache\npostlog unix-dgram n - n - 1 postlogd\n",
        );
        std::fs::write(conf.join("master.cf"), master).unwrap();
        let errors = base.join("start.err");
        let status = Command::new(&postfix)
            .arg("-c")
            .arg(&conf)
            .arg("start")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&errors).unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "postfix start failed: {}\n{}",
            std::fs::read_to_string(&errors).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let end = Instant::now() + DEADLINE;
        for &port in &ports {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < end,
                    "postfix smtpd not listening on {port}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Postfix { conf, log, ports }
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
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// One SMTP AUTH by python's smtplib; prints the EHLO AUTH list, then the reply code.
const SMTPLIB: &str = r#"
import smtplib, sys
port, mech, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.ehlo("client.it.test")
print("MECHS", s.esmtp_features.get("auth", "").strip())
if mech != "-":
    s.user, s.password = user, password
    auth = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
    try:
        code, text = s.auth(mech, auth, initial_response_ok=(mech == "PLAIN"))
    except smtplib.SMTPAuthenticationError as e:
        code, text = e.smtp_code, e.smtp_error
    print("CODE", code, text.decode(errors="replace"))
s.quit()
"#;

fn smtplib(port: u16, mech: &str, user: &str, password: &str) -> (String, u16) {
    let out = Command::new(need("python3"))
        .arg("-c")
        .arg(SMTPLIB)
        .arg(port.to_string())
        .args([mech, user, password])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "smtplib: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mechs = text
        .lines()
        .find_map(|l| l.strip_prefix("MECHS "))
        .unwrap_or("")
        .to_owned();
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("CODE "))
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (mechs, code)
}

/// Postfix smtpd with `smtpd_sasl_type = dovecot` against authd: 235 for PLAIN and LOGIN with
/// the right password, 535 for a wrong one, and EHLO lists what the security options allow.
#[test]
fn postfix_smtpd_against_authd() {
    require_root("the Postfix peer");
    let config = format!("{MECHS}\nfailure_delay = \"200ms\"\npenalty_init = \"250ms\"");
    let a = Authd::start(&users_file(), &config);
    let pf = Postfix::start(
        &a.dir,
        &a.client,
        &[
            "noanonymous",
            "noanonymous,noplaintext",
            "noanonymous,noplaintext,nodictionary",
        ],
    );
    let ctx = || format!("maillog:\n{}\nauthd:\n{}", pf.log(), a.log());
    let (mechs, _) = smtplib(pf.ports[0], "-", "", "");
    assert_eq!(
        mechs,
        "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256",
        "{}",
        ctx()
    );
    let (mechs, _) = smtplib(pf.ports[1], "-", "", "");
    assert_eq!(mechs, "CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256", "{}", ctx());
    let (mechs, _) = smtplib(pf.ports[2], "-", "", "");
    assert_eq!(mechs, "SCRAM-SHA-1 SCRAM-SHA-256", "{}", ctx());

    let port = pf.ports[0];
    for (mech, user, pass) in [
        ("PLAIN", "alice@example.org", "wonderland"),
        ("LOGIN", "alice@example.org", "wonderland"),
        ("PLAIN", "bob@example.org", "crypted-pw"),
        ("LOGIN", "bob@example.org", "crypted-pw"),
        ("CRAM-MD5", "alice@example.org", "wonderland"),
    ] {
        let (_, code) = smtplib(port, mech, user, pass);
        assert_eq!(code, 235, "{mech} {user}\n{}", ctx());
    }
    // Failures last: they put 127.0.0.1 into the penalty box.
    for (mech, user, pass) in [
        ("PLAIN", "bob@example.org", "wrong"),
        ("LOGIN", "alice@example.org", "wrong"),
    ] {
        let (_, code) = smtplib(port, mech, user, pass);
        assert_eq!(code, 535, "{mech} {user}\n{}", ctx());
    }
}

/// What a server did with some input: the lines it sent after its handshake, and whether it
/// closed the connection.
#[derive(Debug, PartialEq, Eq)]
struct Probe {
    lines: Vec<String>,
    closed: bool,
}

/// Connects to an auth socket, skips the server's handshake (through the line starting with
/// `last`: `DONE` on auth-client sockets, `SPID` on userdb sockets), sends `input` and collects
/// what comes back within `wait`.
fn probe(socket: &Path, last: &str, input: &[u8], wait: Duration) -> Probe {
    use std::io::{BufRead, BufReader, Write};
    let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    // `\0WAIT\0` in the input: send the rest only after the server answered (a client that
    // waits for `CONT` before it continues). The server may close before taking it all: that
    // is one of the outcomes.
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut rest = input;
    while let Some(i) = rest.windows(6).position(|w| w == b"\0WAIT\0") {
        parts.push(&rest[..i]);
        rest = &rest[i + 6..];
    }
    parts.push(rest);
    let mut parts = parts.into_iter();
    let _ = w.write_all(parts.next().unwrap_or_default());
    let mut lines = Vec::new();
    let mut in_handshake = true;
    let end = Instant::now() + wait;
    let mut line = Vec::new();
    while Instant::now() < end {
        match r.read_until(b'\n', &mut line) {
            Ok(0) => {
                return Probe {
                    lines,
                    closed: true,
                }
            }
            Ok(_) if line.ends_with(b"\n") => {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                line.clear();
                if in_handshake {
                    in_handshake = !text.starts_with(last);
                } else {
                    lines.push(text);
                    if let Some(next) = parts.next() {
                        let _ = w.write_all(next);
                    }
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                return Probe {
                    lines,
                    closed: true,
                }
            }
        }
    }
    Probe {
        lines,
        closed: false,
    }
}

/// The first `n` tab-separated fields of every line (ids and commands; texts differ). When the
/// server disconnected, only that counts: what it flushed before closing depends on its output
/// buffering (Dovecot drops a queued `CONT` when a later line in the same read is fatal).
fn heads(p: &Probe, n: usize) -> (Vec<String>, bool) {
    if p.closed {
        return (Vec::new(), true);
    }
    let lines = p
        .lines
        .iter()
        .map(|l| l.split('\t').take(n).collect::<Vec<_>>().join("\t"))
        .collect();
    (lines, p.closed)
}

const HELLO: &str = "VERSION\t1\t2\nCPID\t4242\n";

/// Bad input on both sockets of authd and of a real Dovecot 2.3: the same answer (FAIL for the
/// same ids, or a disconnect), never a crash; authd still serves afterwards.
#[test]
fn bad_input_gets_dovecots_answer() {
    let users = "alice@example.org:{PLAIN}wonderland:5000:5000::/srv/mail/alice::\n";
    let a = Authd::start(
        users,
        "mechanisms = [\"PLAIN\", \"LOGIN\"]\nfailure_delay = \"100ms\"",
    );
    let dc = Dovecot::start(users);
    let long = "A".repeat(20_000);
    let cases: Vec<(&str, String)> = vec![
        ("garbage first line", "HELLO world\n".into()),
        ("binary garbage", "\u{1}\u{2}\u{3}\tVERSION\n\n".into()),
        ("wrong major", "VERSION\t2\t0\nCPID\t1\n".into()),
        (
            "no CPID",
            "VERSION\t1\t2\nAUTH\t1\tPLAIN\tservice=smtp\n".into(),
        ),
        ("CPID 0", "VERSION\t1\t2\nCPID\t0\n".into()),
        (
            "overlong line",
            format!("{HELLO}AUTH\t1\tPLAIN\tservice=smtp\tresp={long}\n"),
        ),
        ("overlong without LF", format!("{HELLO}{long}")),
        ("unknown command", format!("{HELLO}FOO\t1\n")),
        ("second VERSION", format!("{HELLO}VERSION\t1\t2\n")),
        ("second CPID", format!("{HELLO}CPID\t4242\n")),
        (
            "duplicate id",
            format!("{HELLO}AUTH\t1\tPLAIN\tservice=smtp\nAUTH\t1\tPLAIN\tservice=smtp\n"),
        ),
        (
            "CONT after the request ended",
            format!(
                "{HELLO}AUTH\t8\tPLAIN\tservice=smtp\n\0WAIT\0\
                 CONT\t8\tAGFsaWNlQGV4YW1wbGUub3JnAHdvbmRlcmxhbmQ=\n\0WAIT\0CONT\t8\tAAAA\n"
            ),
        ),
        (
            "bad base64 in resp",
            format!("{HELLO}AUTH\t2\tPLAIN\tservice=smtp\tresp=!!!!\n"),
        ),
        (
            "bad base64 in CONT",
            format!("{HELLO}AUTH\t3\tPLAIN\tservice=smtp\n\0WAIT\0CONT\t3\t!!!!\n"),
        ),
        ("CONT for unknown id", format!("{HELLO}CONT\t99\tAAAA\n")),
        ("id 0", format!("{HELLO}AUTH\t0\tPLAIN\tservice=smtp\n")),
        (
            "no service",
            format!("{HELLO}AUTH\t4\tPLAIN\tresp=AGEAYg==\n"),
        ),
        (
            "params after resp",
            format!("{HELLO}AUTH\t5\tPLAIN\tresp=\tservice=smtp\n"),
        ),
        (
            "unknown mechanism",
            format!("{HELLO}AUTH\t6\tNOPE\tservice=smtp\n"),
        ),
        (
            "broken PLAIN",
            format!("{HELLO}AUTH\t7\tPLAIN\tservice=smtp\tresp=YWJj\n"),
        ),
    ];
    let wait = Duration::from_millis(1500);
    for (what, input) in &cases {
        // Dovecot may take a while for its first CONT (an anvil penalty round trip).
        let wait = if input.contains("\0WAIT\0") {
            wait * 3
        } else {
            wait
        };
        let ours = probe(&a.client, "DONE", input.as_bytes(), wait);
        let theirs = probe(&dc.socket("auth-client"), "DONE", input.as_bytes(), wait);
        assert_eq!(
            heads(&ours, 2),
            heads(&theirs, 2),
            "{what}: authd {ours:?}, dovecot {theirs:?}\n{}\n{}",
            a.log(),
            dc.log()
        );
    }
    let userdb_cases: Vec<(&str, String)> = vec![
        ("garbage", "HELLO\n".into()),
        ("auth client on userdb socket", HELLO.into()),
        (
            "overlong",
            format!("VERSION\t1\t0\nUSER\t1\t{long}\tservice=x\n"),
        ),
        ("unknown command", "VERSION\t1\t0\nFOO\t1\n".into()),
        (
            "no service",
            "VERSION\t1\t0\nUSER\t1\talice@example.org\n".into(),
        ),
        (
            "unknown user",
            "VERSION\t1\t0\nUSER\t1\tghost@example.org\tservice=x\n".into(),
        ),
    ];
    for (what, input) in &userdb_cases {
        let ours = probe(&a.userdb, "SPID", input.as_bytes(), wait);
        let theirs = probe(&dc.socket("auth-userdb"), "SPID", input.as_bytes(), wait);
        assert_eq!(
            heads(&ours, 2),
            heads(&theirs, 2),
            "userdb {what}: authd {ours:?}, dovecot {theirs:?}"
        );
    }
    // Half-open connections (a partial line, or only the hello) do not block anyone.
    let mut idle = Vec::new();
    for i in 0..50 {
        let mut s = std::os::unix::net::UnixStream::connect(&a.client).unwrap();
        let part: &[u8] = if i % 2 == 0 {
            b"VERSION\t1"
        } else {
            HELLO.as_bytes()
        };
        std::io::Write::write_all(&mut s, part).unwrap();
        idle.push(s);
    }
    let ok = probe(
        &a.client,
        "DONE",
        format!(
            "{HELLO}AUTH\t1\tPLAIN\tservice=smtp\tresp=AGFsaWNlQGV4YW1wbGUub3JnAHdvbmRlcmxhbmQ=\n"
        )
        .as_bytes(),
        Duration::from_secs(2),
    );
    assert_eq!(ok.lines, ["OK\t1\tuser=alice@example.org"], "{}", a.log());
    drop(idle);
    let mut a = a;
    assert!(a.daemon.try_exit().is_none(), "authd died:\n{}", a.log());
}

/// A failed-login storm from one IP gets slowed (Dovecot's auth penalty); other IPs are not.
#[test]
fn failed_login_storm_is_slowed_per_ip() {
    let config = "failure_delay = \"100ms\"\npenalty_init = \"250ms\"\npenalty_max = \"2s\"";
    let a = Authd::start(&users_file(), config);
    rt().block_on(async {
        let sasl = SaslClient::new(&a.client);
        let from = |ip: &str| {
            let mut r = request("PLAIN");
            r.remote_ip = Some(ip.parse().unwrap());
            r
        };
        let attacker = "192.0.2.66";
        let storm = (0..8).map(|_| {
            let (sasl, req) = (sasl.clone(), from(attacker));
            async move {
                exchange(
                    &sasl,
                    req,
                    Some(plain_ir("alice@example.org", "guess")),
                    &[],
                )
                .await
            }
        });
        for r in futures_join(storm).await {
            assert!(matches!(r, Ok(SaslStep::Failure(_))), "{r:?}");
        }
        let timed = |ip: &'static str, pass: &'static str| {
            let (sasl, req) = (sasl.clone(), from(ip));
            async move {
                let t = Instant::now();
                let r = exchange(&sasl, req, Some(plain_ir("alice@example.org", pass)), &[]).await;
                (t.elapsed(), r)
            }
        };
        // Another IP at the same moment: answered at once.
        let (other, attacker_next) = tokio::join!(
            timed("198.51.100.7", "wonderland"),
            timed(attacker, "wonderland")
        );
        assert!(matches!(other.1, Ok(SaslStep::Success(_))), "{other:?}");
        assert!(
            other.0 < Duration::from_millis(500),
            "other IP slowed: {other:?}"
        );
        // The attacker's next request waits out its penalty (2 s cap), even with the right
        // password; then the success resets it.
        assert!(
            matches!(attacker_next.1, Ok(SaslStep::Success(_))),
            "{attacker_next:?}"
        );
        assert!(
            attacker_next.0 >= Duration::from_millis(1500),
            "attacker not slowed: {attacker_next:?}\n{}",
            a.log()
        );
        let again = timed(attacker, "wonderland").await;
        assert!(
            again.0 < Duration::from_millis(500),
            "penalty not reset: {again:?}"
        );
        // no-penalty requests are never counted nor delayed.
        for _ in 0..4 {
            let mut r = from("203.0.113.9");
            r.no_penalty = true;
            exchange(&sasl, r, Some(plain_ir("alice@example.org", "guess")), &[])
                .await
                .unwrap();
        }
        let mut r = from("203.0.113.9");
        r.no_penalty = true;
        let t = Instant::now();
        exchange(
            &sasl,
            r,
            Some(plain_ir("alice@example.org", "wonderland")),
            &[],
        )
        .await
        .unwrap();
        assert!(t.elapsed() < Duration::from_millis(500));
    });
}

/// Dovecot's rule for a 0666 userdb socket: a peer that is neither its owner nor in its group
/// only gets users with its own uid; PASS and LIST are refused.
#[test]
fn restricted_userdb_peer() {
    require_root("running a peer under another uid");
    let daemon = nix::unistd::User::from_name("daemon").unwrap().unwrap();
    let users = format!(
        "alice@example.org:{{PLAIN}}x:5000:5000::/srv/a::\n\
         svc@example.org:{{PLAIN}}x:{uid}:{uid}::/srv/s::\n",
        uid = daemon.uid
    );
    let a = Authd::start(&users, "");
    // Reopen the userdb socket to everyone, as Dovecot ships auth-userdb.
    std::fs::set_permissions(
        &a.userdb,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let script = "import socket,sys,time\n\
        s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);s.settimeout(2)\n\
        s.sendall(b'VERSION\\t1\\t0\\nUSER\\t1\\talice@example.org\\tservice=lmtp\\n\
USER\\t2\\tsvc@example.org\\tservice=lmtp\\nPASS\\t3\\tsvc@example.org\\tservice=lmtp\\n\
LIST\\t4\\n')\n\
        out=b''\n\
        while out.count(b'\\n')<6:\n    d=s.recv(4096)\n    if not d: break\n    out+=d\n\
        print(out.decode())\n";
    let out = Command::new(need("setpriv"))
        .args([
            "--reuid",
            "daemon",
            "--regid",
            "daemon",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(script)
        .arg(&a.userdb)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<_> = text.lines().skip(2).filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        [
            "FAIL\t1",
            "USER\t2\tsvc@example.org\tuid=1\tgid=1\thome=/srv/s\tmail=maildir:~/Maildir",
            "FAIL\t3",
            "DONE\t4\tfail"
        ],
        "{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log()
    );
}

fn pochta_run(args: &[&str]) -> (i32, String) {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("pochta");
    assert!(
        bin.exists(),
        "{} is not built: cargo build -p pochta",
        bin.display()
    );
    let out = Command::new(bin).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `doveadm -O ARGS…`: no dovecot.conf (the socket comes with `-a`), not /etc/dovecot's.
fn doveadm_stdout(args: &[&str]) -> (i32, String) {
    let out = Command::new(need("doveadm"))
        .arg("-O")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `pochta auth test` and `pochta user` print what `doveadm auth test` and `doveadm user` print,
/// with the same exit codes, against authd and against a real Dovecot.
#[test]
fn pochta_auth_commands_match_doveadm() {
    let users = "alice@example.org:{PLAIN}wonderland:5000:5000::/srv/mail/alice::\
                 userdb_mail=maildir:~/Maildir\nbob@example.org:{PLAIN}pw:5001:5001::/srv/b::\n";
    let a = Authd::start(users, "failure_delay = \"100ms\"");
    let dc = Dovecot::start(users);
    let servers = [
        (a.client.clone(), a.userdb.clone()),
        (dc.socket("auth-client"), dc.socket("auth-userdb")),
    ];
    for (client, userdb) in &servers {
        let (client, userdb) = (client.to_str().unwrap(), userdb.to_str().unwrap());
        for (user, pass) in [
            ("alice@example.org", "wonderland"),
            ("alice@example.org", "wrong"),
            ("ghost@example.org", "x"),
        ] {
            // Dovecot 2.3 ends its OK line with an empty field, which doveadm prints as a
            // blank "  " line; empty fields carry nothing and are not relayed.
            let (code, text) = doveadm_stdout(&["auth", "test", "-a", client, user, pass]);
            let theirs = (code, text.replace("\n  \n", "\n"));
            let ours = pochta_run(&["auth", "test", "-a", client, user, pass]);
            assert_eq!(ours, theirs, "auth test {user} {pass} on {client}");
        }
        for user in ["alice@example.org", "ghost@example.org", "*"] {
            let theirs = doveadm_stdout(&["user", "-a", userdb, user]);
            let ours = pochta_run(&["user", "-a", userdb, user]);
            assert_eq!(ours, theirs, "user {user} on {userdb}");
        }
    }
}

/// Both clients keep one connection and re-open it when authd went away (restart, crash).
#[test]
fn clients_reconnect_after_authd_restart() {
    let mut a = Authd::start(&users_file(), "failure_delay = \"100ms\"");
    let rt = rt();
    let sasl = SaslClient::new(&a.client);
    let userdb = UserdbClient::new(&a.userdb);
    let login = |sasl: SaslClient| async move {
        let ir = plain_ir("alice@example.org", "wonderland");
        exchange(&sasl, request("PLAIN"), Some(ir), &[]).await
    };
    rt.block_on(async {
        assert!(matches!(
            login(sasl.clone()).await,
            Ok(SaslStep::Success(_))
        ));
        let u = userdb.lookup("alice@example.org", "lmtp", None, None).await;
        assert_eq!(u.unwrap().unwrap().uid(), Some(5000));
    });
    a.restart();
    rt.block_on(async {
        // The old connections are dead: each client notices and connects again by itself.
        let r = login(sasl.clone()).await;
        assert!(matches!(r, Ok(SaslStep::Success(_))), "{r:?}\n{}", a.log());
        let u = userdb.lookup("alice@example.org", "lmtp", None, None).await;
        assert_eq!(u.unwrap().unwrap().uid(), Some(5000), "{}", a.log());
    });
}

/// passwd-file extra fields (nopassword, allow_nets) and re-reading the file when it changes.
#[test]
fn passwd_file_policy_and_reread() {
    let users = "eve@example.org::::::: nopassword\n\
                 net@example.org:{PLAIN}pw::::::allow_nets=192.0.2.0/24,::1\n";
    let a = Authd::start(users, "failure_delay = \"100ms\"");
    rt().block_on(async {
        let sasl = SaslClient::new(&a.client);
        let from = |ip: &str, user: &str, pass: &str| {
            let mut r = request("PLAIN");
            r.remote_ip = Some(ip.parse().unwrap());
            r.no_penalty = true;
            let sasl = sasl.clone();
            let ir = plain_ir(user, pass);
            async move { exchange(&sasl, r, Some(ir), &[]).await.unwrap() }
        };
        let success = |s: &SaslStep| matches!(s, SaslStep::Success(_));
        assert!(success(
            &from("127.0.0.1", "eve@example.org", "anything").await
        ));
        assert!(success(&from("192.0.2.9", "net@example.org", "pw").await));
        assert!(success(&from("::1", "net@example.org", "pw").await));
        let outside = from("198.51.100.1", "net@example.org", "pw").await;
        assert!(matches!(outside, SaslStep::Failure(_)), "{outside:?}");
        // A new user is seen as soon as the file changes, without a reload.
        let late = from("127.0.0.1", "late@example.org", "pw").await;
        assert!(matches!(late, SaslStep::Failure(_)));
        std::fs::write(
            a.dir.join("users"),
            format!("{users}late@example.org:{{PLAIN}}pw::::::\n"),
        )
        .unwrap();
        let late = from("127.0.0.1", "late@example.org", "pw").await;
        assert!(success(&late), "{late:?}\n{}", a.log());
    });
}
