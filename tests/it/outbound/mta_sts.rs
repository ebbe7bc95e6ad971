//! MTA-STS against real peers: unbound publishes `_mta-sts.sts.test` (TXT) and two MX hosts,
//! python's http.server (TLS, certificate from the test CA) serves the policy, Postfix is the
//! listed MX (STARTTLS, certificate from the same CA), smtp-sink the unlisted one.

use super::*;

/// Policy `enforce` lists only good.sts.test: the better-preference bad.sts.test (smtp-sink,
/// no TLS) is skipped, the mail goes to Postfix over verified TLS.
#[test]
fn enforce_policy_skips_unlisted_mx_and_verifies_tls() {
    require_root("a private Postfix");
    let dir = TempDir::new("ob-sts");
    let port = receiver_port();
    let dns = Dns::start(
        &dir,
        &[
            "sts.test. MX 5 bad.sts.test.",
            "sts.test. MX 10 good.sts.test.",
            "bad.sts.test. A 127.0.0.92",
            "good.sts.test. A 127.0.0.91",
            "mta-sts.sts.test. A 127.0.0.93",
            "_mta-sts.sts.test. TXT \"v=STSv1; id=20261123T1;\"",
        ],
    );
    let (ca, leaves) = ca_and_certs(&[&["good.sts.test"], &["mta-sts.sts.test"]]);
    let (mx_cert, mx_key) = &leaves[0];
    let (web_cert, web_key) = &leaves[1];
    let pf = Postfix::start(
        &dir,
        port,
        &[PfListener {
            ip: "127.0.0.91",
            opts: &[],
        }],
        &["dave@sts.test"],
        mx_cert,
        mx_key,
    );
    let sink = Sink::start(&dir, "bad.sts.test", "127.0.0.92", port, &[]);
    let _web = Https::start(
        &dir,
        "127.0.0.93",
        port,
        web_cert,
        web_key,
        &[(
            ".well-known/mta-sts.txt",
            "version: STSv1\nmode: enforce\nmx: good.sts.test\nmax_age: 86400\n",
        )],
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
        &format!(
            "tls_ca_file = \"{}\"\nmta_sts_port = {port}",
            ca_file.display()
        ),
        "",
    );
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["dave@sts.test"],
        b"Subject: under MTA-STS\r\n\r\nbody\r\n",
    );
    wait_until(Duration::from_secs(30), "delivery to Postfix", || {
        pf.delivered("dave@sts.test").len() == 1
    });
    let log = mta.wait_log("to=<dave@sts.test>");
    assert!(
        log.contains("MTA-STS policy for sts.test: id=20261123T1, mode=Enforce, max_age=86400"),
        "{log}"
    );
    assert!(
        log.contains("MX host bad.sts.test does not match the MTA-STS policy of sts.test"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to good.sts.test[127.0.0.91]:{port}"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "to=<dave@sts.test>, relay=good.sts.test[127.0.0.91]:{port}"
        )) && log.contains("status=sent"),
        "{log}"
    );
    assert!(sink.messages().is_empty(), "the unlisted MX got mail");
}
