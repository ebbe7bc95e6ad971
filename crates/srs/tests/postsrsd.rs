//! Interop with the real postsrsd (Debian package `postsrsd`): a private instance with its own
//! secrets file in a temporary directory, on loopback ports (1.x, Postfix tcp_table protocol) or
//! a unix socket (2.x, socketmap protocol) of its own. What pochta writes, postsrsd reverses,
//! and the other way round; with the same secret and day both write the same bytes.
//!
//! postsrsd missing is a failure, never a skip: `apt-get install postsrsd`.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pochta_srs::{read_secrets, HashAlphabet, Srs, SrsError};

const POSTSRSD: &str = "/usr/sbin/postsrsd";
const DOMAIN: &str = "srs.example.org";
/// Spaces and `=` inside, a trailing space: both sides must take the line byte for byte.
const SECRET: &str = "pochta interop s3cr3t = with spaces ";
const START_DEADLINE: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const BARE_SRS0: &str = "SRS0@example.org";

/// (sender, what reversing its rewritten form gives back). Every case but the last is
/// rewritten to the same bytes by both sides.
fn cases() -> Vec<(&'static str, &'static str)> {
    vec![
        ("alice@example.net", "alice@example.net"),
        (
            "Bob.Smith+tag@Sub.Example.NET",
            "Bob.Smith+tag@Sub.Example.NET",
        ),
        ("x=y=z@example.org", "x=y=z@example.org"),
        ("percent%40hack@example.com", "percent%40hack@example.com"),
        ("o'brien&co@example.ie", "o'brien&co@example.ie"),
        ("MiXeD@CaSe.Example", "MiXeD@CaSe.Example"),
        (
            "user-name@xn--bcher-kva.example",
            "user-name@xn--bcher-kva.example",
        ),
        ("a@b.c", "a@b.c"),
        (
            "bounce-123-456@lists.example.com",
            "bounce-123-456@lists.example.com",
        ),
        ("srs2=not-a-tag@example.net", "srs2=not-a-tag@example.net"),
        // SRS0 addresses of other forwarders (their hashes are not ours).
        (
            "SRS0=HHHH=TT=origin.example=user@fwd1.example",
            "SRS0=HHHH=TT=origin.example=user@fwd1.example",
        ),
        (
            "SRS0+ab/c=XY=example.net=bob@relay.example",
            "SRS0+ab/c=XY=example.net=bob@relay.example",
        ),
        (
            "SRS0-Zz9+=AB=example.net=carol=x@relay.example",
            "SRS0-Zz9+=AB=example.net=carol=x@relay.example",
        ),
        // A lowercase tag comes back spelled SRS0 (libsrs2 writes the tag itself).
        (
            "srs0=hhhh=tt=origin.example=dave@fwd1.example",
            "SRS0=hhhh=tt=origin.example=dave@fwd1.example",
        ),
        // SRS1 keeps the first forwarder; reversing gives the SRS0 address there.
        (
            "SRS1=abcd=fwd1.example==HHHH=TT=origin.example=user@fwd2.example",
            "SRS0=HHHH=TT=origin.example=user@fwd1.example",
        ),
        // libsrs2 reads a bare `SRS0` local part as an SRS0 address (SRS1=HHHH=example.org=@…);
        // we write an SRS0 address for it. Each side reverses what the other writes.
        (BARE_SRS0, BARE_SRS0),
    ]
}

#[test]
fn pochta_and_postsrsd_reverse_each_other() {
    let postsrsd = Postsrsd::start(&[SECRET], Options::default());
    let secrets = read_secrets(&postsrsd.secrets_file).unwrap();
    assert_eq!(secrets, vec![SECRET.as_bytes().to_vec()]);
    let pochta = Srs::new(DOMAIN, secrets).unwrap();
    let url_safe = Srs::new(DOMAIN, vec![SECRET.as_bytes().to_vec()])
        .unwrap()
        .with_hash_alphabet(HashAlphabet::UrlSafe);
    let mut checked = 0;
    for (sender, original) in cases() {
        let before = unix_now();
        let ours = pochta.forward(sender, before).unwrap();
        let theirs = postsrsd.forward(sender);
        let after = unix_now();
        let theirs = match theirs {
            Ok(t) => t,
            Err(e) => panic!(
                "postsrsd {} did not forward <{sender}>: {e}",
                postsrsd.version
            ),
        };
        // Same secret, same day: the same bytes (postsrsd >= 2.2.6 writes base64url hashes).
        let candidates = [
            pochta.forward(sender, before).unwrap(),
            pochta.forward(sender, after).unwrap(),
            url_safe.forward(sender, before).unwrap(),
            url_safe.forward(sender, after).unwrap(),
        ];
        assert!(
            candidates.contains(&theirs) || sender == BARE_SRS0,
            "<{sender}>: postsrsd {} wrote <{theirs}>, pochta <{ours}>",
            postsrsd.version
        );
        assert_eq!(
            postsrsd.reverse(&ours).as_deref(),
            Ok(original),
            "postsrsd reversing pochta's <{ours}>"
        );
        assert_eq!(
            pochta.reverse(&theirs, unix_now()).unwrap().as_deref(),
            Some(original),
            "pochta reversing postsrsd's <{theirs}>"
        );
        checked += 1;
    }
    assert!(checked >= 10);

    // Neither side rewrites an address that is already in the SRS domain.
    let own = format!("postmaster@{DOMAIN}");
    assert_eq!(pochta.forward(&own, unix_now()).unwrap(), own);
    match postsrsd.forward(&own) {
        // 1.x answers with the address itself, 2.x with NOTFOUND ("need not rewrite").
        Ok(same) => assert_eq!(same, own),
        Err(e) => assert!(e.starts_with("NOTFOUND"), "postsrsd on <{own}>: {e}"),
    }

    // Both refuse a tampered hash and a tampered field.
    let good = pochta.forward("victim@example.net", unix_now()).unwrap();
    let tampered_field = good.replace("=victim@", "=attacker@");
    let tampered_hash = flip_hash(&good);
    for bad in [&tampered_field, &tampered_hash] {
        assert!(postsrsd.reverse(bad).is_err(), "postsrsd accepted <{bad}>");
        assert_eq!(
            pochta.reverse(bad, unix_now()),
            Err(SrsError::BadHash),
            "<{bad}>"
        );
    }
}

#[test]
fn postsrsd_with_other_separator_and_longer_hashes() {
    // postsrsd -a+ -n8: SRS0+HHHHHHHH=...; we verify the first 4 hash characters, it accepts
    // our 4 (its minimum stays 4).
    let postsrsd = Postsrsd::start(
        &[SECRET],
        Options {
            separator: '+',
            hash_length: 8,
        },
    );
    let pochta = Srs::new(DOMAIN, vec![SECRET.as_bytes().to_vec()]).unwrap();
    for (sender, original) in cases() {
        let theirs = postsrsd.forward(sender).unwrap();
        assert!(
            theirs.starts_with("SRS0+") || theirs.starts_with("SRS1+"),
            "{theirs}"
        );
        assert_eq!(
            pochta.reverse(&theirs, unix_now()).unwrap().as_deref(),
            Some(original),
            "pochta reversing postsrsd's <{theirs}>"
        );
        let ours = pochta.forward(sender, unix_now()).unwrap();
        assert_eq!(postsrsd.reverse(&ours).as_deref(), Ok(original), "<{ours}>");
    }
}

#[test]
fn key_rotation_matches_postsrsd() {
    // postsrsd signs with the first line and verifies with every line; so do we.
    let postsrsd = Postsrsd::start(&["new secret", "old secret"], Options::default());
    let old_only = Srs::new(DOMAIN, vec![b"old secret".to_vec()]).unwrap();
    let rotated = Srs::new(DOMAIN, read_secrets(&postsrsd.secrets_file).unwrap()).unwrap();
    let new_only = Srs::new(DOMAIN, vec![b"new secret".to_vec()]).unwrap();
    for (sender, original) in cases().into_iter().take(5) {
        let by_old = old_only.forward(sender, unix_now()).unwrap();
        assert_eq!(
            postsrsd.reverse(&by_old).as_deref(),
            Ok(original),
            "{by_old}"
        );
        let theirs = postsrsd.forward(sender).unwrap();
        assert_eq!(
            rotated.reverse(&theirs, unix_now()).unwrap().as_deref(),
            Some(original)
        );
        assert_eq!(
            new_only.reverse(&theirs, unix_now()).unwrap().as_deref(),
            Some(original)
        );
        assert_eq!(
            old_only.reverse(&theirs, unix_now()),
            Err(SrsError::BadHash),
            "{theirs}"
        );
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Changes the first hash character to one that no case folding makes equal.
fn flip_hash(address: &str) -> String {
    let mut bytes = address.as_bytes().to_vec();
    bytes[5] = if bytes[5].eq_ignore_ascii_case(&b'q') {
        b'x'
    } else {
        b'q'
    };
    String::from_utf8(bytes).unwrap()
}

#[derive(Clone, Copy)]
struct Options {
    separator: char,
    hash_length: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            separator: '=',
            hash_length: 4,
        }
    }
}

enum Protocol {
    /// postsrsd 1.x: one TCP port per map, `get KEY\n` → `200 VALUE\n` / `500 REASON\n`, both
    /// URL-encoded (Postfix tcp_table).
    TcpTable { forward: u16, reverse: u16 },
    /// postsrsd 2.x: one socket, netstrings `forward KEY` / `reverse KEY` → `OK VALUE` /
    /// `NOTFOUND REASON` / `PERM REASON` (Postfix socketmap).
    Socketmap { path: PathBuf },
}

struct Postsrsd {
    child: Child,
    version: String,
    protocol: Protocol,
    secrets_file: PathBuf,
    // Keeps the secrets file and socket until postsrsd is gone.
    _dir: tempfile::TempDir,
}

impl Postsrsd {
    fn start(secrets: &[&str], options: Options) -> Postsrsd {
        if !Path::new(POSTSRSD).exists() {
            panic!(
                "{POSTSRSD} not found: the SRS interop test needs the real postsrsd — \
                 apt-get install postsrsd (then make sure no system-wide postsrsd runs; the test \
                 starts its own)"
            );
        }
        let version = Command::new(POSTSRSD)
            .arg("-v")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {POSTSRSD} -v: {e}"));
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let secrets_file = dir.path().join("postsrsd.secret");
        let mut content = secrets.join("\n");
        content.push('\n');
        std::fs::write(&secrets_file, content).unwrap();
        std::fs::set_permissions(&secrets_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        if version.starts_with("1.") {
            Self::start_1x(version, dir, secrets_file, options)
        } else {
            Self::start_2x(version, dir, secrets_file, options)
        }
    }

    fn start_1x(
        version: String,
        dir: tempfile::TempDir,
        secrets_file: PathBuf,
        options: Options,
    ) -> Postsrsd {
        let stderr = dir.path().join("stderr");
        let mut last_error = String::new();
        // postsrsd 1.x takes port numbers only; a port taken between our probe and its bind
        // makes it exit at once, and we try other ports.
        for _attempt in 0..5 {
            let (forward, reverse) = (free_port(), free_port());
            if forward == reverse {
                continue;
            }
            let mut child = Command::new(POSTSRSD)
                .arg(format!("-s{}", secrets_file.display()))
                .arg(format!("-d{DOMAIN}"))
                .arg(format!("-a{}", options.separator))
                .arg(format!("-n{}", options.hash_length))
                .arg("-N4")
                .arg("-l127.0.0.1")
                .arg("-4")
                .arg(format!("-f{forward}"))
                .arg(format!("-r{reverse}"))
                .arg("-t60")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {POSTSRSD}: {e}"));
            let ready = wait_ready(&mut child, || {
                TcpStream::connect((Ipv4Addr::LOCALHOST, forward)).is_ok()
                    && TcpStream::connect((Ipv4Addr::LOCALHOST, reverse)).is_ok()
            });
            match ready {
                Ok(()) => {
                    return Postsrsd {
                        child,
                        version,
                        protocol: Protocol::TcpTable { forward, reverse },
                        secrets_file,
                        _dir: dir,
                    }
                }
                Err(e) => {
                    // Our own child only, by its handle.
                    let _ = child.kill();
                    let _ = child.wait();
                    let output = std::fs::read_to_string(&stderr).unwrap_or_default();
                    last_error = format!("{e}: {output}");
                }
            }
        }
        panic!("postsrsd {version} did not start: {last_error}");
    }

    fn start_2x(
        version: String,
        dir: tempfile::TempDir,
        secrets_file: PathBuf,
        options: Options,
    ) -> Postsrsd {
        let socket = dir.path().join("srs.sock");
        let config = dir.path().join("postsrsd.conf");
        std::fs::write(
            &config,
            format!(
                "srs-domain = \"{DOMAIN}\"\n\
                 domains = {{}}\n\
                 separator = \"{}\"\n\
                 hash-length = {}\n\
                 hash-minimum = 4\n\
                 socketmap = \"unix:{}\"\n\
                 keep-alive = 60\n\
                 secrets-file = \"{}\"\n\
                 unprivileged-user = \"\"\n\
                 chroot-dir = \"\"\n\
                 daemonize = false\n",
                options.separator,
                options.hash_length,
                socket.display(),
                secrets_file.display()
            ),
        )
        .unwrap();
        let stderr = dir.path().join("stderr");
        let mut child = Command::new(POSTSRSD)
            .arg("-C")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {POSTSRSD}: {e}"));
        if let Err(e) = wait_ready(&mut child, || UnixStream::connect(&socket).is_ok()) {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(&stderr).unwrap_or_default();
            panic!("postsrsd {version} did not start: {e}: {output}");
        }
        Postsrsd {
            child,
            version,
            protocol: Protocol::Socketmap { path: socket },
            secrets_file,
            _dir: dir,
        }
    }

    fn forward(&self, address: &str) -> Result<String, String> {
        self.query("forward", address)
    }

    fn reverse(&self, address: &str) -> Result<String, String> {
        self.query("reverse", address)
    }

    /// One lookup on a fresh connection: `Ok(result)` or `Err(postsrsd's reason)`.
    fn query(&self, map: &str, key: &str) -> Result<String, String> {
        match &self.protocol {
            Protocol::TcpTable { forward, reverse } => {
                let port = if map == "forward" { *forward } else { *reverse };
                let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let mut writer = stream.try_clone().unwrap();
                writer
                    .write_all(format!("get {}\n", url_encode(key)).as_bytes())
                    .unwrap();
                let mut line = String::new();
                BufReader::new(stream).read_line(&mut line).unwrap();
                let line = line.trim_end_matches(['\r', '\n']);
                match line.split_once(' ') {
                    Some(("200", value)) => Ok(url_decode(value)),
                    Some(("500", reason)) => Err(url_decode(reason)),
                    _ => panic!("postsrsd answered {map} {key:?} with {line:?}"),
                }
            }
            Protocol::Socketmap { path } => {
                let mut stream = UnixStream::connect(path).unwrap();
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                let request = format!("{map} {key}");
                stream
                    .write_all(format!("{}:{request},", request.len()).as_bytes())
                    .unwrap();
                let reply = read_netstring(&mut stream);
                let (status, rest) = reply.split_once(' ').unwrap_or((reply.as_str(), ""));
                match status {
                    "OK" => Ok(rest.to_owned()),
                    "NOTFOUND" | "PERM" | "TEMP" => Err(reply.clone()),
                    _ => panic!("postsrsd answered {map} {key:?} with {reply:?}"),
                }
            }
        }
    }
}

/// Waits until `ready()` holds; fails when the child exits or the deadline passes.
fn wait_ready(child: &mut Child, ready: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("exited with {status}"));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not listening after {START_DEADLINE:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Postsrsd {
    fn drop(&mut self) {
        // Our own child only, by its id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Postfix tcp_table encoding: `%XX` for `%`, space, controls and non-ASCII.
fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// `LEN:DATA,` with a sanity bound on LEN.
fn read_netstring(stream: &mut UnixStream) -> String {
    let mut len = 0usize;
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).unwrap();
        match byte[0] {
            b'0'..=b'9' => len = len * 10 + usize::from(byte[0] - b'0'),
            b':' => break,
            other => panic!("bad netstring length byte {other:#x}"),
        }
        assert!(len < 100_000, "netstring too long");
    }
    let mut data = vec![0u8; len + 1];
    stream.read_exact(&mut data).unwrap();
    assert_eq!(data.pop(), Some(b','), "netstring not terminated by ','");
    String::from_utf8(data).unwrap()
}
