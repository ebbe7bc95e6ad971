//! docs/mix-1-pochta-alone.md: the five pochta daemons with the guide's files.

use super::*;

#[test]
fn pochta_alone_as_the_guide_shows() {
    require_root("the mixing guides' tests (daemons drop to nobody)");
    let guide = Guide::load("mix-1-pochta-alone.md");
    let local = Local::new(
        "guide-alone",
        &[
            "/etc/pochta",
            "/run/pochta",
            "/var/mail",
            "/var/spool/pochta",
        ],
    );
    local.owned_dir("/var/mail/example.org");
    local.owned_dir("/var/spool/pochta");
    let users = local.install(&guide, "users", "/etc/pochta/users");
    // the guide's `chgrp pochta … && chmod 0640 …`: only authd's group may read the hashes
    nix::unistd::chown(&users, None, Some(nobody().gid)).unwrap();
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    local.cert("/etc/pochta/tls/cert.pem", "/etc/pochta/tls/key.pem");
    local.install(&guide, "aliases", "/etc/pochta/aliases");
    local.install(&guide, "virtual", "/etc/pochta/virtual");
    let mut daemons = Vec::new();
    for name in ["authd", "mda-lmtp", "mta", "imapd", "pop3d"] {
        let file = format!("{name}.toml");
        assert_unit_allows(name, &guide.file(&file), "");
        let config = local.install(&guide, &file, &format!("/etc/pochta/{file}"));
        daemons.push(Pochta::start(name, &config));
    }
    guide.done();
    let [authd, mda, mta, imapd, pop3d] = &daemons[..] else {
        unreachable!()
    };
    let logs = || all_logs(&[mta, mda, authd, imapd, pop3d], &[]);
    let (alice, bob) = ("alice@example.org", "bob@example.org");

    // From the Internet on 25, and from alice to bob on 587 and 465 with AUTH.
    let id = send(
        local.port(25),
        "plain",
        "",
        ("carol@example.net", alice),
        "g1-mx",
        &logs,
    );
    send(
        local.port(587),
        "starttls",
        alice,
        (alice, bob),
        "g1-587",
        &logs,
    );
    send(local.port(465), "ssl", alice, (alice, bob), "g1-465", &logs);
    read_back(local.port(143), local.port(110), alice, "g1-mx", &logs);
    read_back(local.port(143), local.port(110), bob, "g1-587", &logs);
    read_back(local.port(143), local.port(110), bob, "g1-465", &logs);

    // sendmail(1) over the local listener, finding it through mta.toml as admins run it.
    let mut sendmail = Command::new(bin_dir().join("sendmail"))
        .arg("-C")
        .arg(local.path("/etc/pochta/mta.toml"))
        .arg(alice)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sendmail is built with pochta-mta");
    let msg = b"Subject: g1-sendmail\n\nFrom cron.\n";
    std::io::Write::write_all(sendmail.stdin.as_mut().unwrap(), msg).unwrap();
    let out = sendmail.wait_with_output().unwrap();
    assert!(out.status.success(), "sendmail: {out:?}\n{}", logs());
    read_back(
        local.port(143),
        local.port(110),
        alice,
        "g1-sendmail",
        &logs,
    );

    // The guide's aliases: the postmaster, cron's root, a shared address, an alias domain.
    for (to, reader, subject) in [
        ("postmaster@example.org", alice, "g1-postmaster"),
        ("info@example.org", bob, "g1-info"),
        ("bob@example.net", bob, "g1-aliasdomain"),
    ] {
        send(
            local.port(25),
            "plain",
            "",
            ("carol@example.net", to),
            subject,
            &logs,
        );
        read_back(local.port(143), local.port(110), reader, subject, &logs);
    }
    let mut root = Command::new(bin_dir().join("sendmail"))
        .arg("-C")
        .arg(local.path("/etc/pochta/mta.toml"))
        .arg("root")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(root.stdin.as_mut().unwrap(), b"Subject: g1-root\n\ncron\n").unwrap();
    let out = root.wait_with_output().unwrap();
    assert!(out.status.success(), "sendmail root: {out:?}\n{}", logs());
    read_back(local.port(143), local.port(110), alice, "g1-root", &logs);
    assert!(
        mta.log()
            .contains("to=<alice@example.org>, orig_to=<root@example.org>,"),
        "{}",
        logs()
    );

    // An unknown local user is refused at RCPT time (userdb lookup on authd's socket).
    let p = local.port(25).to_string();
    let rcpt = python(
        CLIENT,
        &["rcpt", &p, "carol@example.net", "nobody@example.org"],
        &logs,
    );
    let reply = value(&rcpt, "rcpt");
    assert!(reply.starts_with("550 5.1.1"), "{reply}\n{}", logs());

    follow_queue_id(&id, alice, mta, mda);
    troubles(&local, &mut daemons);
}

/// The failures troubleshooting.md explains, and the lines they leave in the logs.
fn troubles(local: &Local, daemons: &mut [Pochta]) {
    let alice = "alice@example.org";
    {
        let logs = || all_logs(&daemons.iter().collect::<Vec<_>>(), &[]);
        // A wrong password: 535 from the mta, the reason in authd's log only.
        let p = local.port(587).to_string();
        let bad = python(CLIENT, &["badauth", &p, alice], &logs);
        assert!(value(&bad, "auth").starts_with("535 5.7.8"), "{bad:?}");
        // Plaintext on the implicit-TLS port.
        let mut c = std::net::TcpStream::connect(("127.0.0.1", local.port(465))).unwrap();
        std::io::Write::write_all(&mut c, b"EHLO client.example.net\r\n").unwrap();
    }
    // mda-lmtp down: the mta keeps the message and says why.
    daemons[1].daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemons[1].daemon.wait_exit(DEADLINE);
    let logs = || all_logs(&daemons.iter().collect::<Vec<_>>(), &[]);
    let id = send(
        local.port(25),
        "plain",
        "",
        ("carol@example.net", alice),
        "g1-down",
        &logs,
    );
    let deferred = format!("{id}: to=<{alice}>, relay=");
    wait_for(
        || daemons[2].log().contains(&deferred),
        "the deferred line",
        &logs,
    );
    let (mta, authd) = (daemons[2].log(), daemons[0].log());
    let line = mta.lines().find(|l| l.contains(&deferred)).unwrap();
    assert!(
        line.contains("dsn=4.4.2, status=deferred (connect to local["),
        "{line}"
    );
    for (log, want) in [
        (
            &authd,
            "authentication failed: password mismatch mech=\"PLAIN\" user=\"alice@",
        ),
        (
            &mta,
            "]: SASL PLAIN authentication failed: (reason unavailable)",
        ),
        (&mta, "TLS handshake failed error="),
    ] {
        assert!(log.contains(want), "no {want:?} in the logs\n{}", logs());
    }
}

/// troubleshooting.md's walk: the queue id from `250 … queued as ID` leads to the mta's
/// `ID: to=<…>, relay=…, status=sent (250 2.0.0 <rcpt> SESSION Saved)` line, and SESSION to
/// mda-lmtp's `saved` line for that recipient.
fn follow_queue_id(id: &str, rcpt: &str, mta: &Pochta, mda: &Pochta) {
    let logs = || all_logs(&[mta, mda], &[]);
    let sent = format!("{id}: to=<{rcpt}>, relay=");
    wait_for(
        || mta.log().contains(&sent),
        "the mta's delivery line",
        &logs,
    );
    let log = mta.log();
    let line = log.lines().find(|l| l.contains(&sent)).unwrap();
    for want in [
        &format!("{id}: client="),
        &format!("{id}: message-id=<g1-mx@client.example.net>"),
        &format!("{id}: from=<carol@example.net>, size="),
        &format!("{id}: removed"),
    ] {
        assert!(
            log.contains(want.as_str()),
            "mta log lacks {want:?}\n{}",
            logs()
        );
    }
    assert!(line.contains("status=sent (250 2.0.0 <"), "{line}");
    let session = line
        .split(&format!("<{rcpt}> "))
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no LMTP session id in {line}"));
    let mda_log = mda.log();
    let saved = mda_log
        .lines()
        .find(|l| l.contains(session) && l.contains("saved") && l.contains(rcpt));
    assert!(
        saved.is_some(),
        "no mda-lmtp saved line for {session}\n{}",
        logs()
    );
}
