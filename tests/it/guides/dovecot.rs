//! docs/mix-3-mta-with-dovecot.md: pochta-mta (the guide's mta.toml) on a private Dovecot with
//! the guide's dovecot.conf lines: SASL, recipient lookups and LMTP all Dovecot's.

use super::*;

#[test]
fn mta_in_front_of_dovecot_as_the_guide_shows() {
    require_root("the mixing guides' tests (Dovecot; daemons drop to nobody)");
    let guide = Guide::load("mix-3-mta-with-dovecot.md");
    let mix1 = Guide::load("mix-1-pochta-alone.md");
    let local = Local::new(
        "guide-dovecot",
        &[
            "/etc/pochta",
            "/etc/dovecot",
            "/run/pochta",
            "/run/dovecot",
            "/var/lib/dovecot",
            "/var/log",
            "/var/mail",
            "/var/spool/pochta",
        ],
    );
    local.owned_dir("/var/mail/example.org");
    local.owned_dir("/var/spool/pochta");
    let users = local.install(&mix1, "users", "/etc/dovecot/users");
    let conf = dovecot_base(&local, &users)
        + "mail_location = maildir:"
        + &local.path("/var/mail").display().to_string()
        + "/%d/%n/Maildir\n"
        + &local.apply(&guide.file("dovecot.conf"));
    let conf_path = local.path("/etc/dovecot/dovecot.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let dovecot = Dovecot::start(
        &conf_path,
        &local.path("/run/dovecot"),
        &local.path("/var/log/dovecot.log"),
    );
    let logs0 = || dovecot.log();
    for s in ["auth-pochta-client", "auth-pochta-userdb", "lmtp-pochta"] {
        let p = local.path(&format!("/run/dovecot/{s}"));
        wait_for(|| p.exists(), "Dovecot's sockets for the mta", &logs0);
    }

    local.cert("/etc/pochta/tls/cert.pem", "/etc/pochta/tls/key.pem");
    assert_unit_allows("mta", &guide.file("mta.toml"), "");
    let mta_cfg = local.install(&guide, "mta.toml", "/etc/pochta/mta.toml");
    let mta = Pochta::start("mta", &mta_cfg);
    guide.done();
    let logs = || all_logs(&[&mta], &[("dovecot", dovecot.log())]);
    let (alice, bob) = ("alice@example.org", "bob@example.org");

    let id = send(
        local.port(25),
        "plain",
        "",
        ("carol@example.net", alice),
        "g3-mx",
        &logs,
    );
    send(
        local.port(587),
        "starttls",
        alice,
        (alice, bob),
        "g3-587",
        &logs,
    );
    read_back(local.port(143), local.port(110), alice, "g3-mx", &logs);
    read_back(local.port(143), local.port(110), bob, "g3-587", &logs);

    // The mta's delivery line carries Dovecot LMTP's reply with its session id, which Dovecot
    // logs on its own line for the delivery.
    let sent = format!("{id}: to=<{alice}>, relay=");
    wait_for(
        || mta.log().contains(&sent),
        "the mta's delivery line",
        &logs,
    );
    let log = mta.log();
    let line = log.lines().find(|l| l.contains(&sent)).unwrap();
    let session = line
        .split(&format!("(250 2.0.0 <{alice}> "))
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no Dovecot session id in {line}"));
    let saved = |l: &&str| l.contains(session) && l.contains("saved mail to INBOX");
    wait_for(
        || dovecot.log().lines().any(|l| saved(&l)),
        "Dovecot's saved line with the session id",
        &logs,
    );

    let p = local.port(25).to_string();
    let rcpt = python(
        CLIENT,
        &["rcpt", &p, "carol@example.net", "nobody@example.org"],
        &logs,
    );
    let reply = value(&rcpt, "rcpt");
    assert!(reply.starts_with("550 5.1.1"), "{reply}\n{}", logs());
}
