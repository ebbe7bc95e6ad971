//! The shared daemon runtime, exercised through the pochta-testd binary: socket activation,
//! privilege drop, TLS reload, STARTTLS injection, drain, sd_notify, limits, idle timeout.

use crate::harness::*;
use nix::sys::signal::Signal;
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

fn tls_config(dir: &TempDir) -> (String, Vec<u8>) {
    let der = write_cert(&dir.join("cert.pem"), &dir.join("key.pem"));
    let text = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    (text, der)
}

#[test]
fn ping_over_tcp_and_unix() {
    let dir = TempDir::new("basic");
    let port = free_port();
    let sock = dir.join("echo.sock");
    let (_d, _n) = start_testd(
        &dir,
        &format!(
            "[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{port}\"\n\n\
             [[listener]]\nservice = \"echo\"\naddress = \"{}\"\nmode = \"0600\"\n",
            sock.display()
        ),
    );
    let mut c = connect(port);
    assert_eq!(c.line(), "+OK testd ready\r\n");
    assert_eq!(c.cmd("PING"), "+OK pong\r\n");
    assert_eq!(c.cmd("QUIT"), "+OK bye\r\n");
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let u = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut c = LineClient::new(u);
    assert_eq!(c.line(), "+OK testd ready\r\n");
    assert_eq!(c.cmd("PING"), "+OK pong\r\n");
}

/// `0.0.0.0:P` and `[::]:P` side by side: the IPv6 socket is IPv6-only (as Postfix and Dovecot
/// bind them), and both answer.
#[test]
fn ipv4_and_ipv6_on_one_port() {
    std::net::TcpListener::bind("[::1]:0")
        .unwrap_or_else(|e| panic!("this test needs IPv6 on loopback (::1): {e}"));
    let dir = TempDir::new("dualstack");
    let port = free_port();
    let (_d, _n) = start_testd(
        &dir,
        &format!(
            "[[listener]]\nservice = \"echo\"\naddress = \"0.0.0.0:{port}\"\n\n\
             [[listener]]\nservice = \"echo\"\naddress = \"[::]:{port}\"\n"
        ),
    );
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let s = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut c = LineClient::new(s);
        assert_eq!(c.line(), "+OK testd ready\r\n", "{addr}");
        assert_eq!(c.cmd("PING"), "+OK pong\r\n", "{addr}");
    }
}

#[test]
fn check_config_exit_codes() {
    let dir = TempDir::new("check");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = Command::new(testd())
        .arg("--check-config")
        .arg("-c")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:1\"\nmax_conections = 5\n",
    )
    .unwrap();
    let out = Command::new(testd())
        .arg("--check-config")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:4:1: unknown field `max_conections`",
            bad.display()
        )),
        "{err}"
    );

    // A TLS listener without [tls] is a config error that names the listener.
    let notls = dir.join("notls.toml");
    std::fs::write(
        &notls,
        "[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:1\"\ntls = \"implicit\"\n",
    )
    .unwrap();
    let out = Command::new(testd())
        .arg("--check-config")
        .arg("-c")
        .arg(&notls)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a [tls] table"));

    // A missing certificate file is caught by --check-config too.
    let nocert = dir.join("nocert.toml");
    std::fs::write(
        &nocert,
        "[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n\
        [[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = Command::new(testd())
        .arg("--check-config")
        .arg("-c")
        .arg(&nocert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls.cert /nonexistent/c.pem"));
}

#[test]
fn socket_activation_uses_passed_fds() {
    let dir = TempDir::new("sockact");
    let port = free_port();
    let unix_path = dir.join("passed.sock");
    // The config names paths that must NOT be bound: the passed sockets are used instead.
    let not_bound = dir.join("config-tcp-would-be-here.sock");
    let cfg = dir.join("testd.toml");
    std::fs::write(
        &cfg,
        as_test_user(&format!(
            "[[listener]]\nservice = \"echo\"\nfd_name = \"echo-tcp\"\n\
                address = \"127.0.0.1:{port}\"\n\n\
             [[listener]]\nservice = \"echo\"\nfd_name = \"echo-unix\"\naddress = \"{}\"\n",
            not_bound.display()
        )),
    )
    .unwrap();
    let mut notify = Notify::new(&dir);
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-l")
        .arg(&unix_path)
        .arg("--fdname=echo-tcp:echo-unix")
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify.path.display()))
        .arg("-E")
        .arg("POCHTA_LOG=debug")
        .arg(testd())
        .arg("-c")
        .arg(&cfg);
    let mut d = Daemon::spawn(cmd, &dir, &notify);
    // systemd-socket-activate binds first, then execs the daemon on the first connection.
    let end = Instant::now() + DEADLINE;
    let tcp = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > end => {
                panic!("systemd-socket-activate never listened: {e}\n{}", d.log())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut c = LineClient::new(tcp);
    notify.wait_for("READY=1", &mut d);
    assert_eq!(c.line(), "+OK testd ready\r\n");
    assert_eq!(c.cmd("PING"), "+OK pong\r\n");
    let mut u = LineClient::new(std::os::unix::net::UnixStream::connect(&unix_path).unwrap());
    assert_eq!(u.line(), "+OK testd ready\r\n");
    assert!(
        !not_bound.exists(),
        "the configured path was bound although systemd passed the socket"
    );
    // Graceful stop must not unlink a socket systemd owns.
    d.signal(Signal::SIGTERM);
    drop(c);
    drop(u);
    d.wait_exit(Duration::from_secs(15));
    assert!(
        unix_path.exists(),
        "the daemon removed systemd's socket file"
    );
}

#[test]
fn privilege_drop_after_bind() {
    require_root("the privilege drop test");
    let dir = TempDir::new("privdrop");
    // A port below 1024 proves the bind happened before the drop.
    let low_port = (700..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024");
    let sock = dir.join("owned.sock");
    let (d, _n) = start_testd(
        &dir,
        &format!(
            "[server]\nuser = \"nobody\"\n\n[[listener]]\nservice = \"echo\"\n\
                address = \"127.0.0.1:{low_port}\"\n\n\
             [[listener]]\nservice = \"echo\"\naddress = \"{}\"\nowner = \"nobody\"\n\
                 mode = \"0640\"\n",
            sock.display()
        ),
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{name} not in /proc status"))
    };
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let (uid, gid) = (nobody.uid.to_string(), nobody.gid.to_string());
    assert_eq!(field("Uid:"), vec![uid.clone(); 4], "{status}");
    assert_eq!(field("Gid:"), vec![gid.clone(); 4], "{status}");
    assert!(
        field("Groups:").iter().all(|g| *g == gid),
        "supplementary groups kept: {status}"
    );
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    assert_eq!(meta.mode() & 0o777, 0o640);
    let mut c = connect(low_port);
    assert_eq!(c.line(), "+OK testd ready\r\n");

    // Root without server.user is refused, with a message that says what to set.
    let cfg = dir.join("root.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{}\"\n",
            free_port()
        ),
    )
    .unwrap();
    let out = Command::new(testd()).arg("-c").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(71));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.user is not set"));
}

#[test]
fn sighup_reloads_certificate_and_keeps_sessions() {
    let dir = TempDir::new("reload");
    let (tls, first_der) = tls_config(&dir);
    let (tls_port, st_port) = (free_port(), free_port());
    let (mut d, mut notify) = start_testd(
        &dir,
        &format!(
            "{tls}\n[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{tls_port}\"\n\
                tls = \"implicit\"\n\n\
             [[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{st_port}\"\n\
                 tls = \"starttls\"\n"
        ),
    );
    let old = tls_wrap(TcpStream::connect(("127.0.0.1", tls_port)).unwrap());
    assert_eq!(presented_cert(&old), first_der);
    let mut old = LineClient::new(old);
    assert_eq!(old.line(), "+OK testd ready\r\n");
    assert_eq!(old.cmd("TLS"), "+OK TLSv1.3\r\n");

    let second_der = write_cert(&dir.join("cert.pem"), &dir.join("key.pem"));
    assert_ne!(first_der, second_der);
    d.signal(Signal::SIGHUP);
    let reloading = notify.wait_for("RELOADING=1", &mut d);
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    notify.wait_for("READY=1", &mut d);

    let new = tls_wrap(TcpStream::connect(("127.0.0.1", tls_port)).unwrap());
    assert_eq!(
        presented_cert(&new),
        second_der,
        "new handshake still sees the old certificate"
    );
    // The session opened before the reload goes on.
    assert_eq!(old.cmd("PING"), "+OK pong\r\n");

    // STARTTLS on the other listener also uses the new certificate.
    let mut c = connect(st_port);
    assert_eq!(c.line(), "+OK testd ready\r\n");
    assert_eq!(c.cmd("TLS"), "+OK none\r\n");
    assert_eq!(c.cmd("STARTTLS"), "+OK begin TLS\r\n");
    let tcp = c.get_mut().try_clone().unwrap();
    let s = tls_wrap(tcp);
    assert_eq!(presented_cert(&s), second_der);
    let mut s = LineClient::new(s);
    assert_eq!(s.cmd("TLS"), "+OK TLSv1.3\r\n");

    // A broken certificate file on reload keeps the running one.
    std::fs::write(dir.join("cert.pem"), "garbage").unwrap();
    d.signal(Signal::SIGHUP);
    notify.wait_for("RELOADING=1", &mut d);
    let ready = notify.wait_for("READY=1", &mut d);
    assert!(ready.contains("reload failed"), "{ready}");
    let again = tls_wrap(TcpStream::connect(("127.0.0.1", tls_port)).unwrap());
    assert_eq!(presented_cert(&again), second_der);
}

#[test]
fn starttls_discards_injected_plaintext() {
    let dir = TempDir::new("inject");
    let (tls, _) = tls_config(&dir);
    let port = free_port();
    let (_d, _n) = start_testd(
        &dir,
        &format!(
            "{tls}\n[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{port}\"\n\
            tls = \"starttls\"\n"
        ),
    );
    let mut c = connect(port);
    assert_eq!(c.line(), "+OK testd ready\r\n");
    // Plaintext pipelined after STARTTLS must never be executed as if it came over TLS.
    c.send("STARTTLS\r\nPING\r\n");
    assert_eq!(c.line(), "+OK begin TLS\r\n");
    assert!(
        c.closed(),
        "server answered plaintext injected after STARTTLS"
    );
}

#[test]
fn sigterm_drains_then_says_goodbye() {
    let dir = TempDir::new("drain");
    let port = free_port();
    let (mut d, mut notify) = start_testd(
        &dir,
        &format!(
            "[server]\ndrain_timeout = \"2s\"\n\n[[listener]]\nservice = \"echo\"\n\
            address = \"127.0.0.1:{port}\"\n"
        ),
    );
    let mut c = connect(port);
    assert_eq!(c.line(), "+OK testd ready\r\n");
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    let stopping = notify.wait_for("STOPPING=1", &mut d);
    assert!(stopping.contains("1 sessions open"), "{stopping}");
    // Draining: no new connections, the open session still works.
    let end = Instant::now() + DEADLINE;
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < end, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.cmd("PING"), "+OK pong\r\n");
    assert_eq!(c.line(), "-ERR server shutting down\r\n");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "goodbye before the drain time: {waited:?}"
    );
    assert!(
        d.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        d.log()
    );
}

#[test]
fn sigterm_exits_as_soon_as_sessions_end() {
    let dir = TempDir::new("drain2");
    let port = free_port();
    let (mut d, mut notify) = start_testd(
        &dir,
        &format!(
            "[server]\ndrain_timeout = \"60s\"\n\n[[listener]]\nservice = \"echo\"\n\
            address = \"127.0.0.1:{port}\"\n"
        ),
    );
    let mut c = connect(port);
    assert_eq!(c.line(), "+OK testd ready\r\n");
    d.signal(Signal::SIGINT);
    notify.wait_for("STOPPING=1", &mut d);
    assert_eq!(c.cmd("QUIT"), "+OK bye\r\n");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn watchdog_keepalives() {
    let dir = TempDir::new("watchdog");
    let port = free_port();
    let cfg = dir.join("testd.toml");
    std::fs::write(
        &cfg,
        as_test_user(&format!(
            "[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{port}\"\n"
        )),
    )
    .unwrap();
    let mut notify = Notify::new(&dir);
    let mut cmd = Command::new(testd());
    cmd.arg("-c").arg(&cfg).env("WATCHDOG_USEC", "200000");
    let mut d = Daemon::spawn(cmd, &dir, &notify);
    let ready = notify.wait_for("READY=1", &mut d);
    assert!(ready.lines().any(|l| l.starts_with("STATUS=")), "{ready}");
    for _ in 0..3 {
        notify.wait_for("WATCHDOG=1", &mut d);
    }
}

#[test]
fn connection_limits_refuse_with_protocol_reply() {
    let dir = TempDir::new("limits");
    let (p_total, p_ip) = (free_port(), free_port());
    let (_d, _n) = start_testd(
        &dir,
        &format!(
            "[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{p_total}\"\n\
                max_connections = 2\n\n\
             [[listener]]\nservice = \"echo\"\naddress = \"0.0.0.0:{p_ip}\"\n\
                 max_connections_per_ip = 1\n"
        ),
    );
    let mut a = connect(p_total);
    let mut b = connect(p_total);
    assert_eq!(a.line(), "+OK testd ready\r\n");
    assert_eq!(b.line(), "+OK testd ready\r\n");
    let mut c = connect(p_total);
    assert_eq!(c.line(), "-ERR too many connections\r\n");
    assert!(c.closed());
    // A slot is given back when a session ends.
    assert_eq!(a.cmd("QUIT"), "+OK bye\r\n");
    drop(a);
    let end = Instant::now() + DEADLINE;
    loop {
        let mut d = connect(p_total);
        if d.line() == "+OK testd ready\r\n" {
            break;
        }
        assert!(Instant::now() < end, "slot not released");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Per IP: a second connection from 127.0.0.1 is refused, one from 127.0.0.2 is not.
    let from = |ip: &str| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(
            &format!("{ip}:0")
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        s.connect(
            &format!("127.0.0.1:{p_ip}")
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        let t: TcpStream = s.into();
        t.set_read_timeout(Some(DEADLINE)).unwrap();
        LineClient::new(t)
    };
    let mut x = from("127.0.0.1");
    assert_eq!(x.line(), "+OK testd ready\r\n");
    let mut y = from("127.0.0.1");
    assert_eq!(y.line(), "-ERR too many connections\r\n");
    let mut z = from("127.0.0.2");
    assert_eq!(z.line(), "+OK testd ready\r\n");
}

#[test]
fn idle_timeout_says_goodbye() {
    let dir = TempDir::new("idle");
    let port = free_port();
    let (_d, _n) = start_testd(
        &dir,
        &format!(
            "[[listener]]\nservice = \"echo\"\naddress = \"127.0.0.1:{port}\"\n\
            idle_timeout = \"500ms\"\n"
        ),
    );
    let mut c = connect(port);
    assert_eq!(c.line(), "+OK testd ready\r\n");
    let t0 = Instant::now();
    assert_eq!(c.line(), "-ERR idle timeout\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(450));
    assert!(c.closed());
}
