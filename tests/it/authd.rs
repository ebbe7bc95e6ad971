//! pochta-authd and pochta-auth-client against real peers: Postfix smtpd with
//! `smtpd_sasl_type = dovecot`, Dovecot's doveadm, a real Dovecot auth service, and raw bad
//! input (compat.md §1, §2, §4).

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
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
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
        "alice@example.org:{PLAIN}wonderland:5000:5000::/srv/mail/alice::userdb_mail=maildir:~/Maildir userdb_quota_rule=*:storage=1G\n",
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
