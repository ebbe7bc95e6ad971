//! DANE (RFC 7672) against real peers: a validating unbound serves DNSSEC-signed test zones
//! (keys made and zones signed per test with ldns-keygen/ldns-signzone; the zones' DS records
//! are its trust anchors) and unsigned ones; a private Postfix with a test certificate is the
//! MX. The mta runs with `[outbound] tls = "dane"`.
//!
//! A certificate no TLSA record matches is deferred with Postfix's enhanced status 4.7.5.

use super::*;

/// A test CA, a leaf for `names` signed by it: PEMs, the CA's DER and the leaf key's
/// SubjectPublicKeyInfo DER.
struct DanePki {
    ca_pem: String,
    ca_der: Vec<u8>,
    leaf_pem: String,
    key_pem: String,
    spki_der: Vec<u8>,
}

fn dane_pki(names: &[&str]) -> DanePki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pochta DANE test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    DanePki {
        ca_pem: ca.pem(),
        ca_der: ca.der().to_vec(),
        leaf_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
        spki_der: key.public_key_der(),
    }
}

/// SHA2-256 in hex, by coreutils' sha256sum.
fn sha256_hex(dir: &TempDir, data: &[u8]) -> String {
    let f = dir.join("to-hash.der");
    std::fs::write(&f, data).unwrap();
    let out = Command::new(need("sha256sum")).arg(&f).output().unwrap();
    assert!(out.status.success(), "sha256sum: {out:?}");
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn listener(ip: &str) -> PfListener<'_> {
    PfListener { ip, opts: &[] }
}

fn dane_mta(dir: &TempDir, dns: &Dns, port: u16, extra: &str) -> MtaSetup {
    let nowhere = dir.join("nowhere");
    MtaSetup::new(dir, dns, port, &nowhere, &nowhere, "tls = \"dane\"", extra)
}

/// (1) DANE-EE: TLSA 3 1 1 of the Postfix's key in a signed zone → delivered over TLS the
/// mta logs as Verified, although the certificate names another host (DANE-EE checks no
/// name). The Postfix serves that certificate only to clients that send SNI mx.dane.test
/// (tls_server_sni_maps; its default certificate has another key), so the mta's SNI is shown
/// too. A host of the same signed zone without TLSA (secure denial) still gets its mail with
/// opportunistic TLS (Untrusted).
#[test]
fn tlsa_3_1_1_matching_is_verified() {
    require_root("a private Postfix");
    let dir = TempDir::new("ob-dane-ee");
    let port = receiver_port();
    let pki = dane_pki(&["unrelated.example"]);
    let default = dane_pki(&["unrelated.example"]);
    let hash = sha256_hex(&dir, &pki.spki_der);
    // Postfix's SNI table (postmap -F embeds the key and chain in the .db).
    let chain = dir.join("sni-mx.pem");
    std::fs::write(&chain, format!("{}{}", pki.key_pem, pki.leaf_pem)).unwrap();
    let sni = dir.join("sni");
    std::fs::write(&sni, format!("mx.dane.test {}\n", chain.display())).unwrap();
    // postmap reads main.cf: the private Postfix's, never /etc/postfix's (absent when the
    // package is unconfigured). Postfix::start replaces this minimal one with its own.
    let pf_conf = Postfix::conf_dir(&dir);
    std::fs::create_dir_all(&pf_conf).unwrap();
    std::fs::write(pf_conf.join("main.cf"), "compatibility_level = 3.6\n").unwrap();
    let out = Command::new(need("postmap"))
        .arg("-c")
        .arg(&pf_conf)
        .arg("-F")
        .arg(format!("hash:{}", sni.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "postmap -F: {out:?}");
    let sni_opt = format!("tls_server_sni_maps=hash:{}", sni.display());
    let mut records = vec![
        "dane.test. MX 10 mx.dane.test.".to_owned(),
        "mx.dane.test. A 127.0.0.121".to_owned(),
        format!("_{port}._tcp.mx.dane.test. TLSA 3 1 1 {hash}"),
        "nodane.dane.test. MX 10 mx2.dane.test.".to_owned(),
        "mx2.dane.test. A 127.0.0.122".to_owned(),
    ];
    // 24 more (non-matching) records: the TLSA answer outgrows the 1232 octets of EDNS(0)
    // over UDP, the resolver sets TC and the mta asks again over TCP.
    for i in 0..24u128 {
        records.push(format!("_{port}._tcp.mx.dane.test. TLSA 3 1 2 {i:0128x}"));
    }
    let dns = Dns::start_dnssec(
        &dir,
        &[Zone {
            name: "dane.test",
            signed: true,
            records: &records,
            bogus: &[],
        }],
    );
    let pf = Postfix::start(
        &dir,
        port,
        &[
            PfListener {
                ip: "127.0.0.121",
                opts: &[&sni_opt],
            },
            listener("127.0.0.122"),
        ],
        &["alice@dane.test", "bob@nodane.dane.test"],
        &default.leaf_pem,
        &default.key_pem,
    );
    let setup = dane_mta(&dir, &dns, port, "");
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["alice@dane.test"],
        b"Subject: under DANE\r\n\r\nbody\r\n",
    );
    setup.send(
        "sender@client.test",
        &["bob@nodane.dane.test"],
        b"Subject: no TLSA\r\n\r\nbody\r\n",
    );
    wait_until(Duration::from_secs(20), "both deliveries", || {
        pf.delivered("alice@dane.test").len() == 1
            && pf.delivered("bob@nodane.dane.test").len() == 1
    });
    let log = mta.wait_log("to=<bob@nodane.dane.test>");
    let tlsa = log
        .lines()
        .find(|l| {
            l.contains(&format!(
                "mx.dane.test: DANE TLSA at _{port}._tcp.mx.dane.test: "
            ))
        })
        .unwrap_or_else(|| panic!("no TLSA line: {log}"));
    assert!(tlsa.contains(&format!("3 1 1 {hash}")), "{tlsa}");
    assert_eq!(tlsa.matches("3 1 2 ").count(), 24, "{tlsa}");
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to mx.dane.test[127.0.0.121]:{port}: TLSv1.3"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Untrusted TLS connection established to mx2.dane.test[127.0.0.122]:{port}: TLSv1."
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "to=<alice@dane.test>, relay=mx.dane.test[127.0.0.121]:{port}"
        )),
        "{log}"
    );
    let pflog = pf.log();
    // Postfix names the SNI it matched after "to".
    assert!(
        pflog.contains(
            "TLS connection established from unknown[127.0.0.1] to mx.dane.test: TLSv1.3"
        ),
        "{pflog}"
    );
    let alice = String::from_utf8(pf.delivered("alice@dane.test").remove(0)).unwrap();
    assert!(alice.contains("(using TLSv1.3"), "{alice}");
    assert!(alice.contains("Subject: under DANE"), "{alice}");
}

/// (2) TLSA 3 1 1 of another key: the handshake is refused, the mail deferred with 4.7.5
/// naming the MX host and its TLSA records, and mailq says why; nothing reaches Postfix. A
/// TLSA RRset whose signature is broken (bogus: the resolver answers SERVFAIL) defers too —
/// never a downgrade to unauthenticated TLS. TLSA records that are all unusable (PKIX-EE 1 1 1
/// is not for SMTP) make TLS mandatory without authentication: a listener without STARTTLS
/// is not used.
#[test]
fn tlsa_mismatch_and_bogus_tlsa_defer() {
    require_root("a private Postfix");
    let dir = TempDir::new("ob-dane-bad");
    let port = receiver_port();
    let pki = dane_pki(&["mx.dane.test"]);
    let other = dane_pki(&["mx.dane.test"]);
    let wrong = sha256_hex(&dir, &other.spki_der);
    let right = sha256_hex(&dir, &pki.spki_der);
    let bogus_owner = format!("_{port}._tcp.mxb.dane.test");
    let records = [
        "dane.test. MX 10 mx.dane.test.".to_owned(),
        "mx.dane.test. A 127.0.0.123".to_owned(),
        format!("_{port}._tcp.mx.dane.test. TLSA 3 1 1 {wrong}"),
        "bogus.dane.test. MX 10 mxb.dane.test.".to_owned(),
        "mxb.dane.test. A 127.0.0.124".to_owned(),
        format!("{bogus_owner}. TLSA 3 1 1 {right}"),
        "pkix.dane.test. MX 10 mxp.dane.test.".to_owned(),
        "mxp.dane.test. A 127.0.0.128".to_owned(),
        format!("_{port}._tcp.mxp.dane.test. TLSA 1 1 1 {right}"),
    ];
    let dns = Dns::start_dnssec(
        &dir,
        &[Zone {
            name: "dane.test",
            signed: true,
            records: &records,
            bogus: std::slice::from_ref(&bogus_owner),
        }],
    );
    let pf = Postfix::start(
        &dir,
        port,
        &[
            listener("127.0.0.123"),
            listener("127.0.0.124"),
            PfListener {
                ip: "127.0.0.128",
                opts: &["smtpd_tls_security_level=none"],
            },
        ],
        &[
            "carol@dane.test",
            "dave@bogus.dane.test",
            "eve@pkix.dane.test",
        ],
        &pki.leaf_pem,
        &pki.key_pem,
    );
    let setup = dane_mta(&dir, &dns, port, "");
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["carol@dane.test"],
        b"Subject: mismatch\r\n\r\nbody\r\n",
    );
    setup.send(
        "sender@client.test",
        &["dave@bogus.dane.test"],
        b"Subject: bogus\r\n\r\nbody\r\n",
    );
    setup.send(
        "sender@client.test",
        &["eve@pkix.dane.test"],
        b"Subject: unusable\r\n\r\nbody\r\n",
    );
    mta.wait_log("to=<carol@dane.test>");
    mta.wait_log("to=<eve@pkix.dane.test>");
    let log = mta.wait_log("to=<dave@bogus.dane.test>");
    let eve = log
        .lines()
        .find(|l| l.contains("to=<eve@pkix.dane.test>"))
        .unwrap();
    assert!(
        eve.contains(&format!(
            "status=deferred (TLS is required, but was not offered by host \
             mxp.dane.test[127.0.0.128]:{port})"
        )),
        "{log}"
    );
    assert!(
        log.contains("mxp.dane.test: TLSA records present but none usable"),
        "{log}"
    );
    let carol = log
        .lines()
        .find(|l| l.contains("to=<carol@dane.test>"))
        .unwrap();
    assert!(
        carol.contains(&format!("relay=mx.dane.test[127.0.0.123]:{port}"))
            && carol.contains("dsn=4.7.5, status=deferred (Server certificate not verified")
            && carol.contains(&format!("TLSA record at _{port}._tcp.mx.dane.test"))
            && carol.contains("(MX host mx.dane.test)"),
        "{log}"
    );
    let dave = log
        .lines()
        .find(|l| l.contains("to=<dave@bogus.dane.test>"))
        .unwrap();
    assert!(
        dave.contains("status=deferred (TLSA lookup error for mxb.dane.test:"),
        "{log}"
    );
    assert!(!log.contains("TLS connection established"), "{log}");
    let q = setup.mailq();
    assert!(q.contains("carol@dane.test"), "{q}");
    assert!(q.contains("Server certificate not verified"), "{q}");
    assert!(q.contains("dave@bogus.dane.test"), "{q}");
    assert!(q.contains("TLSA lookup error"), "{q}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(pf.delivered("carol@dane.test").is_empty());
    assert!(pf.delivered("dave@bogus.dane.test").is_empty());
    assert!(pf.delivered("eve@pkix.dane.test").is_empty());
    let dnslog = dns.log();
    assert!(
        dnslog.contains("validation failure") || dnslog.contains("bogus"),
        "{dnslog}"
    );
}

/// (3) The same kind of TLSA records in an unsigned zone are not used (RFC 7672 §2.2): a
/// non-matching 3 1 1 record does not stop delivery with opportunistic TLS; a domain with
/// `tls = "dane-only"` in that zone is deferred.
#[test]
fn tlsa_in_insecure_zone_is_not_used() {
    require_root("a private Postfix");
    let dir = TempDir::new("ob-dane-insecure");
    let port = receiver_port();
    let pki = dane_pki(&["mx.plain.test"]);
    let other = dane_pki(&["mx.plain.test"]);
    let wrong = sha256_hex(&dir, &other.spki_der);
    let records = [
        "plain.test. MX 10 mx.plain.test.".to_owned(),
        "only.plain.test. MX 10 mx.plain.test.".to_owned(),
        "mx.plain.test. A 127.0.0.125".to_owned(),
        format!("_{port}._tcp.mx.plain.test. TLSA 3 1 1 {wrong}"),
    ];
    let dns = Dns::start_dnssec(
        &dir,
        &[Zone {
            name: "plain.test",
            signed: false,
            records: &records,
            bogus: &[],
        }],
    );
    let pf = Postfix::start(
        &dir,
        port,
        &[listener("127.0.0.125")],
        &["erin@plain.test", "frank@only.plain.test"],
        &pki.leaf_pem,
        &pki.key_pem,
    );
    let setup = dane_mta(
        &dir,
        &dns,
        port,
        "[outbound.domains.\"only.plain.test\"]\ntls = \"dane-only\"\n",
    );
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["erin@plain.test"],
        b"Subject: insecure zone\r\n\r\nbody\r\n",
    );
    setup.send(
        "sender@client.test",
        &["frank@only.plain.test"],
        b"Subject: dane-only\r\n\r\nbody\r\n",
    );
    wait_until(Duration::from_secs(20), "delivery to erin", || {
        pf.delivered("erin@plain.test").len() == 1
    });
    let log = mta.wait_log("to=<frank@only.plain.test>");
    assert!(
        log.contains(&format!(
            "Untrusted TLS connection established to mx.plain.test[127.0.0.125]:{port}: TLSv1."
        )),
        "{log}"
    );
    assert!(!log.contains("DANE TLSA at"), "{log}");
    assert!(
        log.contains(&format!(
            "to=<erin@plain.test>, relay=mx.plain.test[127.0.0.125]:{port}"
        )),
        "{log}"
    );
    let frank = log
        .lines()
        .find(|l| l.contains("to=<frank@only.plain.test>"))
        .unwrap();
    assert!(
        frank.contains(
            "status=deferred (TLS policy dane-only: no DANE for \
             mx.plain.test: MX records of only.plain.test are not DNSSEC-validated)"
        ),
        "{log}"
    );
    let erin = String::from_utf8(pf.delivered("erin@plain.test").remove(0)).unwrap();
    assert!(erin.contains("(using TLSv1."), "{erin}");
    assert!(pf.delivered("frank@only.plain.test").is_empty());
    let q = setup.mailq();
    assert!(q.contains("frank@only.plain.test"), "{q}");
    assert!(q.contains("dane-only"), "{q}");
}

/// (4) DANE-TA: TLSA 2 0 1 of the test CA, which the Postfix sends after its leaf: Verified
/// when the leaf names the MX host; deferred (4.7.5) for an MX host the leaf does not name.
#[test]
fn tlsa_2_0_1_trust_anchor_is_verified() {
    require_root("a private Postfix");
    let dir = TempDir::new("ob-dane-ta");
    let port = receiver_port();
    let pki = dane_pki(&["mx.ta.test"]);
    let ca_hash = sha256_hex(&dir, &pki.ca_der);
    let records = [
        "ta.test. MX 10 mx.ta.test.".to_owned(),
        "mx.ta.test. A 127.0.0.126".to_owned(),
        format!("_{port}._tcp.mx.ta.test. TLSA 2 0 1 {ca_hash}"),
        "other.ta.test. MX 10 mx2.ta.test.".to_owned(),
        "mx2.ta.test. A 127.0.0.127".to_owned(),
        format!("_{port}._tcp.mx2.ta.test. TLSA 2 0 1 {ca_hash}"),
    ];
    let dns = Dns::start_dnssec(
        &dir,
        &[Zone {
            name: "ta.test",
            signed: true,
            records: &records,
            bogus: &[],
        }],
    );
    let chain = format!("{}{}", pki.leaf_pem, pki.ca_pem);
    let pf = Postfix::start(
        &dir,
        port,
        &[listener("127.0.0.126"), listener("127.0.0.127")],
        &["gina@ta.test", "hal@other.ta.test"],
        &chain,
        &pki.key_pem,
    );
    let setup = dane_mta(&dir, &dns, port, "");
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["gina@ta.test"],
        b"Subject: trust anchor\r\n\r\nbody\r\n",
    );
    setup.send(
        "sender@client.test",
        &["hal@other.ta.test"],
        b"Subject: wrong name\r\n\r\nbody\r\n",
    );
    wait_until(Duration::from_secs(20), "delivery to gina", || {
        pf.delivered("gina@ta.test").len() == 1
    });
    let log = mta.wait_log("to=<hal@other.ta.test>");
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to mx.ta.test[127.0.0.126]:{port}: TLSv1.3"
        )),
        "{log}"
    );
    let hal = log
        .lines()
        .find(|l| l.contains("to=<hal@other.ta.test>"))
        .unwrap();
    assert!(
        hal.contains(&format!("relay=mx2.ta.test[127.0.0.127]:{port}"))
            && hal.contains("dsn=4.7.5, status=deferred (Server certificate not verified"),
        "{log}"
    );
    assert!(pf.delivered("hal@other.ta.test").is_empty());
}

/// (5) DANE wins over MTA-STS (RFC 8461 §2): both.test has an MTA-STS `enforce` policy
/// listing its MX, whose certificate is not from the CA in tls_ca_file (MTA-STS alone would
/// defer it), and a matching TLSA 3 1 1 record: the mail goes over DANE-verified TLS.
#[test]
fn dane_wins_over_mta_sts() {
    require_root("a private Postfix");
    let dir = TempDir::new("ob-dane-sts");
    let port = receiver_port();
    let mx = dane_pki(&["mx.both.test"]);
    let hash = sha256_hex(&dir, &mx.spki_der);
    let (ca, leaves) = ca_and_certs(&[&["mta-sts.both.test"]]);
    let (web_cert, web_key) = &leaves[0];
    let records = [
        "both.test. MX 10 mx.both.test.".to_owned(),
        "mx.both.test. A 127.0.0.131".to_owned(),
        format!("_{port}._tcp.mx.both.test. TLSA 3 1 1 {hash}"),
        "mta-sts.both.test. A 127.0.0.132".to_owned(),
        "_mta-sts.both.test. TXT \"v=STSv1; id=20261123T2;\"".to_owned(),
    ];
    let dns = Dns::start_dnssec(
        &dir,
        &[Zone {
            name: "both.test",
            signed: true,
            records: &records,
            bogus: &[],
        }],
    );
    let _web = Https::start(
        &dir,
        "127.0.0.132",
        port,
        web_cert,
        web_key,
        &[(
            ".well-known/mta-sts.txt",
            "version: STSv1\nmode: enforce\nmx: mx.both.test\nmax_age: 86400\n",
        )],
    );
    let pf = Postfix::start(
        &dir,
        port,
        &[listener("127.0.0.131")],
        &["ivy@both.test"],
        &mx.leaf_pem,
        &mx.key_pem,
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
            "tls = \"dane\"\ntls_ca_file = \"{}\"\nmta_sts_port = {port}",
            ca_file.display()
        ),
        "",
    );
    let mta = setup.start();
    setup.send(
        "sender@client.test",
        &["ivy@both.test"],
        b"Subject: DANE and MTA-STS\r\n\r\nbody\r\n",
    );
    wait_until(Duration::from_secs(20), "delivery to ivy", || {
        pf.delivered("ivy@both.test").len() == 1
    });
    let log = mta.wait_log("to=<ivy@both.test>");
    assert!(
        log.contains("MTA-STS policy for both.test: id=20261123T2, mode=Enforce"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to mx.both.test[127.0.0.131]:{port}: TLSv1.3"
        )),
        "{log}"
    );
    assert!(log.contains("status=sent"), "{log}");
}
