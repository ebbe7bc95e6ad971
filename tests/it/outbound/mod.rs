//! pochta-mta's remote delivery (pochta-outbound) against real peers on one machine: unbound
//! serving the zone `test.` (MX, A, null MX; names without data are NXDOMAIN), receiving hosts
//! on distinct 127.0.0.x addresses sharing one port (the mta's `[outbound] port`): a real
//! Postfix (STARTTLS with a certificate from a test CA; one listener without 8BITMIME) and
//! smtp-sink with failure injection; Dovecot for local delivery of bounces.
//!
//! - the lower-preference MX gets the mail when the primary refuses connections;
//! - STARTTLS is used when offered: Postfix logs the TLS session, the mta logs `Verified TLS
//!   connection established` (policy verify, test CA) and `Trusted` elsewhere;
//! - an 8-bit body to a peer without 8BITMIME arrives as quoted-printable, one with it as is;
//! - a 4xx at RCPT defers, the mta is restarted in the middle of the retry schedule, and the
//!   retry delivers (nothing lost, no flush needed);
//! - null MX, NXDOMAIN and a 5xx at RCPT bounce: one notice each in the local sender's Maildir
//!   carrying the original headers;
//! - an MX with only AAAA is reached over IPv6, `address_preference` picks the family;
//! - an open relay stays closed: a client outside trusted_networks cannot relay to a remote
//!   domain;
//! - [`relay`]: a relayhost with AUTH PLAIN over STARTTLS (Postfix + Dovecot SASL);
//! - [`mta_sts`]: an MTA-STS `enforce` policy skips an unlisted MX and verifies TLS;
//! - [`dane`]: DANE (TLSA in DNSSEC-signed zones, a validating unbound): DANE-EE and DANE-TA
//!   verified, a mismatch or a bogus TLSA answer deferred, TLSA in an unsigned zone unused,
//!   DANE over MTA-STS.

mod dane;
mod mta_sts;
pub mod peers;
mod relay;

use crate::config::daemon_bin;
use crate::harness::*;
use peers::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const DOMAIN: &str = "pochta.test";

/// One mta instance's paths; each run gets its own log.
struct MtaSetup {
    config: PathBuf,
    spool: PathBuf,
    smtp: u16,
}

impl MtaSetup {
    /// `lmtp`/`userdb`: local delivery (Dovecot) or paths nobody listens on. `extra`: more
    /// lines appended (e.g. `[outbound.domains."x"]` tables).
    fn new(
        dir: &TempDir,
        dns: &Dns,
        port: u16,
        lmtp: &std::path::Path,
        userdb: &std::path::Path,
        outbound: &str,
        extra: &str,
    ) -> MtaSetup {
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        chown_test_user(&spool);
        let smtp = free_port();
        let cfg = format!(
            "[server]\nlog_level = \"info\"\n\n\
             [[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:{smtp}\"\n\n\
             [smtpd]\nhostname = \"mx.{DOMAIN}\"\nlocal_domains = [\"{DOMAIN}\"]\n\
             trusted_networks = [\"127.0.0.1/32\"]\n\n\
             [auth]\nuserdb_socket = \"{userdb}\"\n\n\
             [queue]\ndir = \"{spool}\"\n\n\
             [delivery]\nlmtp = \"unix:{lmtp}\"\nminimal_backoff = \"3s\"\n\
             maximal_backoff = \"6s\"\n\n\
             [outbound]\nnameservers = [\"{dns}\"]\nport = {port}\nconnect_timeout = \"5s\"\n\
             dns_timeout = \"2s\"\n{outbound}\n{extra}\n",
            userdb = userdb.display(),
            spool = spool.display(),
            lmtp = lmtp.display(),
            dns = dns.addr,
        );
        let config = dir.join("mta.toml");
        std::fs::write(&config, as_test_user(&cfg)).unwrap();
        MtaSetup {
            config,
            spool,
            smtp,
        }
    }

    fn start(&self) -> MtaRun {
        let dir = TempDir::new("ob-run");
        let mut notify = Notify::new(&dir);
        let mut cmd = Command::new(daemon_bin("mta"));
        cmd.arg("-c").arg(&self.config);
        let mut daemon = Daemon::spawn(cmd, &dir, &notify);
        notify.wait_for("READY=1", &mut daemon);
        MtaRun { daemon, _dir: dir }
    }

    /// `pochta queue list` (Postfix mailq layout).
    fn mailq(&self) -> String {
        let bin = bin_dir().join("pochta");
        assert!(bin.exists(), "{} is not built", bin.display());
        let out = Command::new(&bin)
            .args(["queue", "--spool", self.spool.to_str().unwrap(), "list"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    }

    /// One message over SMTP from 127.0.0.1 (trusted: may relay).
    fn send(&self, from: &str, to: &[&str], message: &[u8]) {
        smtp_send(self.smtp, from, to, message).unwrap_or_else(|e| panic!("send: {e}"));
    }
}

struct MtaRun {
    daemon: Daemon,
    _dir: TempDir,
}

impl MtaRun {
    fn log(&self) -> String {
        self.daemon.log()
    }

    fn wait_log(&self, needle: &str) -> String {
        let mut log = String::new();
        let end = std::time::Instant::now() + DEADLINE;
        while std::time::Instant::now() < end {
            log = self.log();
            if log.contains(needle) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{needle:?} not logged:\n{log}");
    }

    fn stop(mut self) -> String {
        self.daemon.signal(nix::sys::signal::Signal::SIGTERM);
        self.daemon.wait_exit(DEADLINE);
        self.log()
    }
}

/// A plain SMTP client; Err(text) when the server refuses something.
fn smtp_send(port: u16, from: &str, to: &[&str], message: &[u8]) -> Result<(), String> {
    let mut c = connect(port);
    let expect = |c: &mut LineClient<std::net::TcpStream>, code: &str| -> Result<(), String> {
        loop {
            let l = c.line();
            if !l.starts_with(code) {
                return Err(l);
            }
            if l.as_bytes().get(3) == Some(&b' ') {
                return Ok(());
            }
        }
    };
    expect(&mut c, "220")?;
    c.send("EHLO client.test\r\n");
    expect(&mut c, "250")?;
    c.send(&format!("MAIL FROM:<{from}>\r\n"));
    expect(&mut c, "250")?;
    for t in to {
        c.send(&format!("RCPT TO:<{t}>\r\n"));
        expect(&mut c, "250")?;
    }
    c.send("DATA\r\n");
    expect(&mut c, "354")?;
    let mut stuffed = Vec::with_capacity(message.len() + 8);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    c.get_mut().write_all(&stuffed).unwrap();
    c.send(".\r\n");
    expect(&mut c, "250")?;
    c.send("QUIT\r\n");
    Ok(())
}

/// Receivers of a test listen on 127.0.0.x at one port, which is the mta's remote port.
fn receiver_port() -> u16 {
    free_port()
}

/// Primary MX refuses connections: the lower-preference MX (smtp-sink) gets the message;
/// both attempts are logged, with Postfix's wording.
#[test]
fn lower_preference_mx_when_primary_down() {
    let dir = TempDir::new("ob-mx");
    let port = receiver_port();
    let dns = Dns::start(
        &dir,
        &[
            "backup.test. MX 10 mx1.backup.test.",
            "backup.test. MX 20 mx2.backup.test.",
            "mx1.backup.test. A 127.0.0.31",
            "mx2.backup.test. A 127.0.0.32",
        ],
    );
    let sink = Sink::start(&dir, "mx2.backup.test", "127.0.0.32", port, &[]);
    let nowhere = dir.join("nowhere");
    let setup = MtaSetup::new(&dir, &dns, port, &nowhere, &nowhere, "", "");
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["rcpt@backup.test"],
        b"Subject: fallback\r\n\r\nbody\r\n",
    );
    let log = mta.wait_log("status=sent");
    assert!(
        log.contains(&format!(
            "connect to mx1.backup.test[127.0.0.31]:{port}: Connection refused"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "to=<rcpt@backup.test>, relay=mx2.backup.test[127.0.0.32]:{port}, delay="
        )),
        "{log}"
    );
    // smtp-sink's answer to the end of data.
    assert!(
        log.contains("dsn=2.0.0, status=sent (250 2.0.0 Ok)"),
        "{log}"
    );
    wait_until(DEADLINE, "the message at the sink", || {
        sink.messages().len() == 1
    });
    let m = &sink.messages()[0];
    assert!(m.contains("X-Rcpt-Args: <rcpt@backup.test>"), "{m}");
    assert!(m.contains("Subject: fallback"), "{m}");
    wait_until(DEADLINE, "an empty queue", || {
        setup.mailq().contains("Mail queue is empty")
    });
}

/// An MX host with only an AAAA record is reached over IPv6 (smtp-sink on [::1]); a host
/// with both records is reached over IPv4 first with the default `address_preference`, and
/// over IPv6 when the preference says so (a second mta on the same zone).
#[test]
fn aaaa_records_and_address_preference() {
    let dir = TempDir::new("ob-v6");
    let port = receiver_port();
    let dns = Dns::start(
        &dir,
        &[
            "v6.test. MX 10 mx.v6.test.",
            "mx.v6.test. AAAA ::1",
            "dual.test. MX 10 mx.dual.test.",
            "mx.dual.test. A 127.0.0.81",
            "mx.dual.test. AAAA ::1",
        ],
    );
    let sink6 = Sink::start(&dir, "six", "[::1]", port, &[]);
    let sink4 = Sink::start(&dir, "four", "127.0.0.81", port, &[]);
    let nowhere = dir.join("nowhere");
    let setup = MtaSetup::new(&dir, &dns, port, &nowhere, &nowhere, "", "");
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["a@v6.test"],
        b"Subject: six\r\n\r\nbody\r\n",
    );
    setup.send(
        "sender@client.test",
        &["b@dual.test"],
        b"Subject: dual\r\n\r\nbody\r\n",
    );
    wait_until(DEADLINE, "one message at each sink", || {
        sink6.messages().len() == 1 && sink4.messages().len() == 1
    });
    let log = mta.wait_log("to=<b@dual.test>");
    assert!(
        log.contains(&format!("to=<a@v6.test>, relay=mx.v6.test[::1]:{port}")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "to=<b@dual.test>, relay=mx.dual.test[127.0.0.81]:{port}"
        )),
        "{log}"
    );
    assert!(sink6.messages()[0].contains("Subject: six"));
    mta.stop();
    let dir2 = TempDir::new("ob-v6b");
    let setup = MtaSetup::new(
        &dir2,
        &dns,
        port,
        &nowhere,
        &nowhere,
        "address_preference = \"ipv6\"",
        "",
    );
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["c@dual.test"],
        b"Subject: dual six\r\n\r\nbody\r\n",
    );
    wait_until(DEADLINE, "the second message over IPv6", || {
        sink6.messages().len() == 2
    });
    let log = mta.wait_log("to=<c@dual.test>");
    assert!(
        log.contains(&format!("to=<c@dual.test>, relay=mx.dual.test[::1]:{port}")),
        "{log}"
    );
    assert_eq!(sink4.messages().len(), 1);
}

/// A Postfix MX with STARTTLS: the session is encrypted (Postfix logs it, its Received header
/// names the cipher; the mta logs Verified for the domain with policy verify and the test
/// CA, Trusted for the host whose name is not in the certificate). The listener without
/// 8BITMIME gets the 8-bit body as quoted-printable; the other gets it unchanged.
#[test]
fn starttls_to_postfix_and_8bit_downgrade() {
    require_root("a private Postfix");
    let dir = TempDir::new("ob-tls");
    let port = receiver_port();
    let dns = Dns::start(
        &dir,
        &[
            "pf.test. MX 10 mx.pf.test.",
            "mx.pf.test. A 127.0.0.41",
            "seven.test. MX 10 mx.seven.test.",
            "mx.seven.test. A 127.0.0.42",
        ],
    );
    let (ca, cert, key) = ca_and_cert(&["mx.pf.test"]);
    let pf = Postfix::start(
        &dir,
        port,
        &[
            PfListener {
                ip: "127.0.0.41",
                opts: &[],
            },
            PfListener {
                ip: "127.0.0.42",
                opts: &["smtpd_discard_ehlo_keywords=8bitmime"],
            },
        ],
        &["bob@pf.test", "carol@seven.test"],
        &cert,
        &key,
    );
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    give_to_test_user(&ca_file);
    let nowhere = dir.join("nowhere");
    let setup = MtaSetup::new(
        &dir,
        &dns,
        port,
        &nowhere,
        &nowhere,
        &format!("tls_ca_file = \"{}\"", ca_file.display()),
        "[outbound.domains.\"pf.test\"]\ntls = \"verify\"\n",
    );
    let mta = setup.start();
    let body = "Grüße aus München — 8-bit body\r\n.dot line\r\n";
    let msg = format!(
        "From: sender@client.test\r\nSubject: eight bit\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
    );
    setup.send(
        "sender@client.test",
        &["bob@pf.test", "carol@seven.test"],
        msg.as_bytes(),
    );
    wait_until(Duration::from_secs(30), "both deliveries", || {
        pf.delivered("bob@pf.test").len() == 1 && pf.delivered("carol@seven.test").len() == 1
    });
    let log = mta.wait_log("to=<carol@seven.test>");
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to mx.pf.test[127.0.0.41]:{port}: TLSv1."
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Trusted TLS connection established to mx.seven.test[127.0.0.42]:{port}: TLSv1."
        )),
        "{log}"
    );
    let pflog = pf.log();
    assert!(
        pflog.matches("TLS connection established from").count() >= 2,
        "{pflog}"
    );
    // bob: 8BITMIME offered, the body arrives byte for byte.
    let bob = String::from_utf8(pf.delivered("bob@pf.test").remove(0)).unwrap();
    assert!(bob.contains("(using TLSv1."), "{bob}");
    assert!(bob.contains("Content-Transfer-Encoding: 8bit"), "{bob}");
    assert!(bob.contains("Grüße aus München"), "{bob}");
    // carol: no 8BITMIME, converted to quoted-printable, 7-bit clean.
    let carol = pf.delivered("carol@seven.test").remove(0);
    assert!(carol.iter().all(|&b| b < 0x80), "8-bit octets arrived");
    let carol = String::from_utf8(carol).unwrap();
    assert!(carol.contains("(using TLSv1."), "{carol}");
    assert!(
        carol.contains("Content-Transfer-Encoding: quoted-printable"),
        "{carol}"
    );
    assert!(
        !carol.contains("Content-Transfer-Encoding: 8bit"),
        "{carol}"
    );
    assert!(
        carol.contains("Gr=C3=BC=C3=9Fe aus M=C3=BCnchen =E2=80=94 8-bit body\n.dot line"),
        "{carol}"
    );
}

/// 450 at RCPT: deferred (mailq shows why); the mta is stopped and started again within the
/// backoff; the sink now accepts and the scheduled retry delivers — nothing lost, no flush.
#[test]
fn soft_failure_retried_across_restart() {
    let dir = TempDir::new("ob-retry");
    let port = receiver_port();
    let dns = Dns::start(
        &dir,
        &[
            "soft.test. MX 10 mx.soft.test.",
            "mx.soft.test. A 127.0.0.51",
        ],
    );
    let sink = Sink::start(&dir, "mx.soft.test", "127.0.0.51", port, &["-r", "RCPT"]);
    let nowhere = dir.join("nowhere");
    let setup = MtaSetup::new(&dir, &dns, port, &nowhere, &nowhere, "", "");
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["later@soft.test"],
        b"Subject: retried\r\n\r\nbody\r\n",
    );
    let log = mta.wait_log("status=deferred");
    assert!(
        log.contains(&format!(
            "to=<later@soft.test>, relay=mx.soft.test[127.0.0.51]:{port}"
        )),
        "{log}"
    );
    assert!(
        log.contains("dsn=4.3.0, status=deferred (host mx.soft.test[127.0.0.51]"),
        "{log}"
    );
    let q = setup.mailq();
    assert!(q.contains("later@soft.test"), "{q}");
    assert!(q.contains("450 4.3.0 Error: command failed"), "{q}");
    mta.stop();
    drop(sink);
    let sink = Sink::start(&dir, "mx.soft.test-2", "127.0.0.51", port, &[]);
    let mta = setup.start();
    let log = mta.wait_log("status=sent");
    assert!(log.contains("to=<later@soft.test>"), "{log}");
    wait_until(DEADLINE, "the message at the sink", || {
        sink.messages().len() == 1
    });
    assert!(sink.messages()[0].contains("Subject: retried"));
    wait_until(DEADLINE, "an empty queue", || {
        setup.mailq().contains("Mail queue is empty")
    });
}

/// Null MX (5.1.10), a domain that does not exist (5.1.2), a 550 at RCPT from smtp-sink and
/// an MX host that greets with our own name (5.4.6, "loops back to myself", the message not
/// sent): each recipient bounces, and the local sender gets one notice per message with the
/// original headers.
#[test]
fn permanent_failures_bounce_to_local_sender() {
    let dir = TempDir::new("ob-bounce");
    let port = receiver_port();
    let dns = Dns::start(
        &dir,
        &[
            "nullmx.test. MX 0 .",
            "hard.test. MX 10 mx.hard.test.",
            "mx.hard.test. A 127.0.0.61",
            "loop.test. MX 10 mx.loop.test.",
            "mx.loop.test. A 127.0.0.62",
        ],
    );
    let _sink = Sink::start(&dir, "mx.hard.test", "127.0.0.61", port, &["-f", "RCPT"]);
    // Greets as the mta itself ([smtpd] hostname, the default helo_name).
    let mirror = Sink::start(&dir, &format!("mx.{DOMAIN}"), "127.0.0.62", port, &[]);
    let dovecot = Dovecot::start(&dir, DOMAIN, &["alice"]);
    let setup = MtaSetup::new(&dir, &dns, port, &dovecot.lmtp(), &dovecot.userdb(), "", "");
    let mta = setup.start();
    let alice = format!("alice@{DOMAIN}");
    for (to, subject) in [
        ("x@nullmx.test", "to null mx"),
        ("x@nosuch.test", "to no such domain"),
        ("x@hard.test", "to hard failure"),
        ("x@loop.test", "to ourselves"),
    ] {
        let msg = format!("From: {alice}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody\r\n");
        setup.send(&alice, &[to], msg.as_bytes());
    }
    wait_until(Duration::from_secs(30), "four bounces for alice", || {
        dovecot.messages("alice").len() >= 4
    });
    let log = mta.log();
    assert!(
        log.contains("to=<x@nullmx.test>, relay=none, delay=")
            && log.contains(
                "dsn=5.1.10, status=bounced (Domain nullmx.test does not accept mail (nullMX))"
            ),
        "{log}"
    );
    assert!(
        log.contains("to=<x@nosuch.test>, relay=none,")
            && log.contains("dsn=5.1.2, status=bounced"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "to=<x@hard.test>, relay=mx.hard.test[127.0.0.61]:{port}"
        )) && log.contains("status=bounced (host mx.hard.test[127.0.0.61]"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "to=<x@loop.test>, relay=mx.loop.test[127.0.0.62]:{port}"
        )) && log.contains("dsn=5.4.6, status=bounced (mail for loop.test loops back to myself)"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "host mx.loop.test[127.0.0.62]:{port} greeted me with my own hostname mx.{DOMAIN}"
        )),
        "{log}"
    );
    assert!(mirror.messages().is_empty(), "sent to ourselves");
    let notices = dovecot.messages("alice");
    assert_eq!(notices.len(), 4, "{notices:?}");
    for (rcpt, subject, status) in [
        ("x@nullmx.test", "to null mx", "5.1.10"),
        ("x@nosuch.test", "to no such domain", "5.1.2"),
        ("x@hard.test", "to hard failure", "5.3.0"),
        ("x@loop.test", "to ourselves", "5.4.6"),
    ] {
        let n = notices
            .iter()
            .find(|n| n.contains(&format!("Subject: {subject}")))
            .unwrap_or_else(|| panic!("no bounce with the original headers of {rcpt}"));
        assert!(n.contains("multipart/report"), "{n}");
        assert!(
            n.contains(&format!("Final-Recipient: rfc822; {rcpt}")),
            "{n}"
        );
        assert!(n.contains(&format!("Status: {status}")), "{n}");
    }
    assert_eq!(dovecot.messages("alice").len(), 4);
}

/// The open-relay rule holds with outbound delivery in place: a client that is neither
/// trusted nor authenticated cannot send to a remote domain.
#[test]
fn untrusted_client_cannot_relay() {
    let dir = TempDir::new("ob-relay");
    let port = receiver_port();
    let dns = Dns::start(
        &dir,
        &["far.test. MX 10 mx.far.test.", "mx.far.test. A 127.0.0.71"],
    );
    let sink = Sink::start(&dir, "mx.far.test", "127.0.0.71", port, &[]);
    let nowhere = dir.join("nowhere");
    let setup = MtaSetup::new(&dir, &dns, port, &nowhere, &nowhere, "", "");
    // Trust nobody: the config's trusted_networks is replaced.
    let cfg = std::fs::read_to_string(&setup.config).unwrap().replace(
        "trusted_networks = [\"127.0.0.1/32\"]",
        "trusted_networks = []",
    );
    std::fs::write(&setup.config, cfg).unwrap();
    let mta = setup.start();
    let err = smtp_send(setup.smtp, "spam@client.test", &["x@far.test"], b"x\r\n")
        .expect_err("relayed for an untrusted client");
    assert!(
        err.starts_with("554 5.7.1") || err.starts_with("454 4.7.1"),
        "{err}"
    );
    assert!(err.contains("Relay access denied"), "{err}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.messages().is_empty());
    assert!(!mta.log().contains("to=<x@far.test>, relay="));
}
