//! docs/mix-2-postfix-front.md: a private Postfix with the guide's main.cf lines in front of
//! pochta-authd and pochta-mda-lmtp (the guide's files), pochta-imapd and pochta-pop3d (mix 1's).

use super::*;

/// The Postfix this guide starts from ("your existing Postfix"): a private instance on a
/// loopback port with TLS; the guide's lines are appended to it.
fn base_main_cf(local: &Local, port_tls: (&Path, &Path)) -> String {
    let spool = local.path("/var/spool/postfix");
    format!(
        "compatibility_level = 3.6\nqueue_directory = {spool}\ndata_directory = {data}\n\
         mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mail.example.org\n\
         mydomain = example.org\nmyorigin = $myhostname\nmydestination =\n\
         inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks =\n\
         in_flow_delay = 0\nsmtpd_peername_lookup = no\nsmtp_dns_support_level = disabled\n\
         lmtp_host_lookup = native\nalias_maps =\nalias_database =\nbiff = no\n\
         smtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\n\
         smtpd_tls_security_level = may\n\
         maillog_file = {log}\nmaillog_file_prefixes = /tmp, /var, /dev/stdout\n\
         master_service_disable =\n\n",
        spool = spool.display(),
        data = local.path("/var/lib/postfix").display(),
        cert = port_tls.0.display(),
        key = port_tls.1.display(),
        log = local.path("/var/log/mail.log").display(),
    )
}

fn master_cf(port: u16) -> String {
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         pickup unix n - n 60 1 pickup\ncleanup unix n - n - 0 cleanup\n\
         qmgr unix n - n 300 1 qmgr\ntlsmgr unix - - n 1000? 1 tlsmgr\n\
         rewrite unix - - n - - trivial-rewrite\nbounce unix - - n - 0 bounce\n\
         defer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce\n\
         verify unix - - n - 1 verify\nflush unix n - n 1000? 0 flush\n\
         proxymap unix - - n - - proxymap\nproxywrite unix - - n - 1 proxymap\n\
         smtp unix - - n - - smtp\nrelay unix - - n - - smtp\n\
         showq unix n - n - - showq\nerror unix - - n - - error\n\
         retry unix - - n - - error\ndiscard unix - - n - - discard\n\
         lmtp unix - - n - - lmtp\nanvil unix - - n - 1 anvil\n\
         scache unix - - n - 1 scache\npostlog unix-dgram n - n - 1 postlogd\n"
    )
}

#[test]
fn postfix_in_front_as_the_guide_shows() {
    require_root("the mixing guides' tests (Postfix; daemons drop to nobody)");
    let guide = Guide::load("mix-2-postfix-front.md");
    let mix1 = Guide::load("mix-1-pochta-alone.md");
    let local = Local::new(
        "guide-postfix",
        &[
            "/etc/pochta",
            "/etc/postfix",
            "/run/pochta",
            "/var/mail",
            "/var/spool/postfix",
            "/var/lib/postfix",
            "/var/log",
        ],
    );
    local.owned_dir("/var/mail/example.org");
    local.install(&mix1, "users", "/etc/pochta/users");
    local.cert("/etc/pochta/tls/cert.pem", "/etc/pochta/tls/key.pem");

    // Postfix first: it creates its queue directory, where the pochta sockets go.
    let smtp = local.port(25);
    let tls = (
        local.path("/etc/pochta/tls/cert.pem"),
        local.path("/etc/pochta/tls/key.pem"),
    );
    let main_cf = base_main_cf(&local, (&tls.0, &tls.1)) + &local.apply(&guide.file("main.cf"));
    std::fs::write(local.path("/etc/postfix/main.cf"), main_cf).unwrap();
    std::fs::write(local.path("/etc/postfix/master.cf"), master_cf(smtp)).unwrap();
    let postfix = Postfix::start(
        &local.path("/etc/postfix"),
        &local.path("/var/spool/postfix"),
        &local.path("/var/lib/postfix"),
        &local.path("/var/log/mail.log"),
    );
    let private = local.path("/var/spool/postfix/private");
    let logs0 = || postfix.log();
    wait_for(|| private.is_dir(), "Postfix's private/ directory", &logs0);

    let dropin = guide.file("postfix-private.conf");
    assert_unit_allows("authd", &guide.file("authd.toml"), &dropin);
    assert_unit_allows("mda-lmtp", &guide.file("mda-lmtp.toml"), &dropin);
    let authd_cfg = local.install(&guide, "authd.toml", "/etc/pochta/authd.toml");
    let authd = Pochta::start("authd", &authd_cfg);
    let mda_cfg = local.install(&guide, "mda-lmtp.toml", "/etc/pochta/mda-lmtp.toml");
    let mda = Pochta::start("mda-lmtp", &mda_cfg);
    let imapd_cfg = local.install(&mix1, "imapd.toml", "/etc/pochta/imapd.toml");
    let imapd = Pochta::start("imapd", &imapd_cfg);
    let pop3d_cfg = local.install(&mix1, "pop3d.toml", "/etc/pochta/pop3d.toml");
    let pop3d = Pochta::start("pop3d", &pop3d_cfg);
    guide.done();
    let logs = || {
        all_logs(
            &[&authd, &mda, &imapd, &pop3d],
            &[("postfix", postfix.log())],
        )
    };
    let (alice, bob) = ("alice@example.org", "bob@example.org");

    // The sockets Postfix uses belong to postfix, as the guide says.
    let pf = nix::unistd::User::from_name("postfix").unwrap().unwrap();
    for s in ["pochta-auth", "pochta-lmtp"] {
        let meta = std::fs::metadata(private.join(s)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (pf.uid.as_raw(), 0o600),
            "{s}"
        );
    }

    let id = send(
        smtp,
        "plain",
        "",
        ("carol@example.net", alice),
        "g2-mx",
        &logs,
    );
    send(smtp, "starttls", alice, (alice, bob), "g2-auth", &logs);
    read_back(local.port(143), local.port(110), alice, "g2-mx", &logs);
    read_back(local.port(143), local.port(110), bob, "g2-auth", &logs);
    let delivered = format!("{id}: to=<{alice}>, relay=");
    wait_for(
        || postfix.log().contains(&delivered),
        "Postfix's lmtp line",
        &logs,
    );
    let log = postfix.log();
    let line = log.lines().find(|l| l.contains(&delivered)).unwrap();
    assert!(
        line.contains("status=sent (250 2.0.0 <alice@example.org> "),
        "{line}"
    );

    // Unknown user: 550 from the verify probe through mda-lmtp and authd's userdb.
    let p = smtp.to_string();
    let rcpt = python(
        CLIENT,
        &["rcpt", &p, "carol@example.net", "nobody@example.org"],
        &logs,
    );
    let reply = value(&rcpt, "rcpt");
    assert!(reply.starts_with("550"), "{reply}\n{}", logs());
    // A wrong password: Postfix's 535 after authd's FAIL.
    let bad = python(CLIENT, &["badauth", &p, alice], &logs);
    assert!(
        value(&bad, "auth").starts_with("535 5.7.8"),
        "{bad:?}\n{}",
        logs()
    );
}
