//! Test plumbing: temporary directories, free loopback ports, a NOTIFY_SOCKET to watch a daemon's
//! sd_notify datagrams, daemon processes killed on drop, and line clients over TCP/TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "pochta-it-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        // Daemons that dropped privileges must still reach their sockets in here.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` with no stdin; panics with its output unless it exits 0. Returns stdout then
/// stderr.
pub fn run_ok(mut cmd: Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The NOTIFY_SOCKET end, as systemd would hold it.
pub struct Notify {
    sock: UnixDatagram,
    pub path: PathBuf,
    pub seen: Vec<String>,
}

impl Notify {
    pub fn new(dir: &TempDir) -> Self {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Notify {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram containing the line `line` (e.g. "READY=1"); returns that datagram.
    pub fn wait_for(&mut self, line: &str, daemon: &mut Daemon) -> String {
        let end = Instant::now() + DEADLINE;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(msg.clone());
                if msg.lines().any(|l| l == line) {
                    return msg;
                }
            } else if let Some(status) = daemon.try_exit() {
                panic!(
                    "daemon exited ({status}) before sending {line}:\n{}",
                    daemon.log()
                );
            }
        }
        panic!(
            "no {line} within {DEADLINE:?}; seen {:?}\n{}",
            self.seen,
            daemon.log()
        );
    }
}

/// target/<profile>: where cargo puts the workspace's binaries (this test binary is in deps/).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

pub fn testd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pochta-testd"))
}

/// A daemon process; killed when dropped.
pub struct Daemon {
    pub child: Child,
    log_path: PathBuf,
}

impl Daemon {
    /// Starts `cmd` (already holding its arguments) with stderr to a log file and NOTIFY_SOCKET
    /// set.
    pub fn spawn(mut cmd: Command, dir: &TempDir, notify: &Notify) -> Self {
        let log_path = dir.join(&format!("daemon-{}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).unwrap();
        cmd.env("NOTIFY_SOCKET", &notify.path)
            .env("POCHTA_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Daemon { child, log_path }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the process to exit within the deadline.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(s) = self.try_exit() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon still running after {within:?}\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds `user = "nobody"` to the `[server]` table when the tests run as root (daemons refuse to
/// stay root without being told to).
pub fn as_test_user(config: &str) -> String {
    if !nix::unistd::Uid::effective().is_root()
        || config.contains("\nuser =")
        || config.starts_with("user =")
    {
        return config.to_owned();
    }
    match config.find("[server]\n") {
        Some(i) => format!(
            "{}[server]\nuser = \"nobody\"\n{}",
            &config[..i],
            &config[i + 9..]
        ),
        None => format!("[server]\nuser = \"nobody\"\n\n{config}"),
    }
}

/// Gives a file to the user daemons run as in tests, so they can re-read it after dropping root.
pub fn give_to_test_user(path: &Path) {
    if nix::unistd::Uid::effective().is_root() {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        nix::unistd::chown(path, Some(nobody.uid), None).unwrap();
    }
}

/// Starts pochta-testd with `config` (TOML text) and waits for READY=1.
pub fn start_testd(dir: &TempDir, config: &str) -> (Daemon, Notify) {
    let cfg = dir.join("testd.toml");
    std::fs::write(&cfg, as_test_user(config)).unwrap();
    let mut notify = Notify::new(dir);
    let mut cmd = Command::new(testd());
    cmd.arg("-c").arg(&cfg);
    let mut d = Daemon::spawn(cmd, dir, &notify);
    notify.wait_for("READY=1", &mut d);
    (d, notify)
}

/// A line client over any stream.
pub struct LineClient<S: Read + Write> {
    r: BufReader<S>,
}

impl<S: Read + Write> LineClient<S> {
    pub fn new(s: S) -> Self {
        LineClient {
            r: BufReader::new(s),
        }
    }
    pub fn line(&mut self) -> String {
        let mut l = String::new();
        self.r
            .read_line(&mut l)
            .unwrap_or_else(|e| panic!("read: {e}"));
        l
    }
    pub fn send(&mut self, data: &str) {
        self.r.get_mut().write_all(data.as_bytes()).unwrap();
        self.r.get_mut().flush().unwrap();
    }
    pub fn cmd(&mut self, c: &str) -> String {
        self.send(&format!("{c}\r\n"));
        self.line()
    }
    pub fn get_mut(&mut self) -> &mut S {
        self.r.get_mut()
    }
    /// True when the server closed the connection (EOF or reset) without sending more.
    pub fn closed(&mut self) -> bool {
        let mut l = String::new();
        matches!(self.r.read_line(&mut l), Ok(0) | Err(_))
    }
}

pub fn connect(port: u16) -> LineClient<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    LineClient::new(s)
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Accepts any server certificate: the tests compare the presented certificate themselves.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Wraps a connected TCP stream in a client TLS session and completes the handshake.
pub fn tls_wrap(tcp: TcpStream) -> TlsStream {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

/// The DER of the certificate the server presented.
pub fn presented_cert(s: &TlsStream) -> Vec<u8> {
    s.conn.peer_certificates().unwrap()[0].to_vec()
}

/// Writes a fresh self-signed certificate and key; returns the certificate's DER.
pub fn write_cert(cert: &Path, key: &Path) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(cert, ck.cert.pem()).unwrap();
    std::fs::write(key, ck.key_pair.serialize_pem()).unwrap();
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    give_to_test_user(key);
    ck.cert.der().to_vec()
}

/// Fails loudly when a test needs root (privilege drop, low ports) and does not have it.
pub fn require_root(what: &str) {
    if !nix::unistd::Uid::effective().is_root() {
        panic!("{what} needs root: run the test suite as root (the README's test command does)");
    }
}
