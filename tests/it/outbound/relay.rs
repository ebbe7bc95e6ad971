//! A smarthost: every remote message goes to `[outbound] relayhost`, which is a Postfix that
//! relays only for SASL-authenticated clients (Dovecot's auth socket), offers AUTH only after
//! STARTTLS, and keeps what it accepts in a virtual mailbox.

use super::*;

/// AUTH PLAIN with the credentials file over STARTTLS; Postfix logs the SASL login and the
/// message arrives; the MX of the recipient domain is never asked.
#[test]
fn relayhost_with_auth_over_tls() {
    require_root("a private Postfix");
    let dir = TempDir::new("ob-relayhost");
    let port = receiver_port();
    let dns = Dns::start(
        &dir,
        &[
            "relay.test. A 127.0.0.101",
            "far.example.test. MX 10 mx.far.example.test.",
            "mx.far.example.test. A 127.0.0.102",
        ],
    );
    let dovecot = Dovecot::start(&dir, DOMAIN, &["alice"]);
    let (_, cert, key) = ca_and_cert(&["relay.test"]);
    let sasl = format!("smtpd_sasl_path={}", dovecot.auth_client().display());
    let pf = Postfix::start(
        &dir,
        port,
        &[PfListener {
            ip: "127.0.0.101",
            opts: &[
                "smtpd_sasl_auth_enable=yes",
                "smtpd_sasl_type=dovecot",
                &sasl,
                "smtpd_tls_auth_only=yes",
                "smtpd_recipient_restrictions=permit_sasl_authenticated,reject",
                "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
            ],
        }],
        &["x@far.example.test"],
        &cert,
        &key,
    );
    let direct = Sink::start(&dir, "mx.far.example.test", "127.0.0.102", port, &[]);
    let creds = dir.join("relay-password");
    std::fs::write(&creds, format!("alice@{DOMAIN}:pw\n")).unwrap();
    give_to_test_user(&creds);
    let nowhere = dir.join("nowhere");
    let setup = MtaSetup::new(
        &dir,
        &dns,
        port,
        &nowhere,
        &nowhere,
        &format!(
            "relayhost = \"[relay.test]\"\nrelayhost_credentials = \"{}\"",
            creds.display()
        ),
        "",
    );
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["x@far.example.test"],
        b"Subject: via the smarthost\r\n\r\nbody\r\n",
    );
    wait_until(
        Duration::from_secs(30),
        "delivery through the relayhost",
        || pf.delivered("x@far.example.test").len() == 1,
    );
    let log = mta.wait_log("to=<x@far.example.test>");
    assert!(
        log.contains(&format!(
            "TLS connection established to relay.test[127.0.0.101]:{port}"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "to=<x@far.example.test>, relay=relay.test[127.0.0.101]:{port}"
        )) && log.contains("status=sent"),
        "{log}"
    );
    assert!(!log.contains(":pw"), "credentials in the log");
    let pflog = pf.log();
    assert!(
        pflog.contains(&format!("sasl_method=PLAIN, sasl_username=alice@{DOMAIN}")),
        "{pflog}"
    );
    assert!(direct.messages().is_empty(), "the recipient's MX was used");
}
