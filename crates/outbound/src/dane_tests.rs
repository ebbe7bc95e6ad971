//! Unit tests of TLSA usability, certificate matching and DANE chain verification with
//! certificates made by rcgen.

use super::*;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

fn sha512(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA512, b)
        .as_ref()
        .to_vec()
}

struct Pki {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    leaf_spki: Vec<u8>,
}

/// A CA and a leaf for `names` signed by it.
fn pki(names: &[&str]) -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dane test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca: ca.der().clone(),
        leaf: leaf.der().clone(),
        leaf_spki: key.public_key_der(),
    }
}

fn rec(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
    Tlsa {
        usage,
        selector,
        matching,
        data,
    }
}

#[test]
fn spki_is_found_in_a_certificate() {
    let p = pki(&["mx.example"]);
    assert_eq!(spki(&p.leaf).unwrap(), p.leaf_spki.as_slice());
    assert!(spki(&p.ca).is_some());
    assert_eq!(spki(b""), None);
    assert_eq!(spki(&p.leaf[..p.leaf.len() / 2]), None);
    assert_eq!(spki(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    assert_eq!(spki(&[0x30, 0x80]), None);
}

#[test]
fn usability_per_rfc7672() {
    assert!(rec(3, 1, 1, vec![0; 32]).usable());
    assert!(rec(3, 0, 2, vec![0; 64]).usable());
    assert!(rec(2, 0, 0, vec![1]).usable());
    // PKIX-TA / PKIX-EE are unusable for SMTP.
    assert!(!rec(0, 1, 1, vec![0; 32]).usable());
    assert!(!rec(1, 1, 1, vec![0; 32]).usable());
    // Unknown selector or matching type, wrong digest length.
    assert!(!rec(3, 2, 1, vec![0; 32]).usable());
    assert!(!rec(3, 1, 3, vec![0; 32]).usable());
    assert!(!rec(3, 1, 1, vec![0; 31]).usable());
    assert!(!rec(3, 1, 2, vec![0; 32]).usable());
    assert!(!rec(3, 1, 0, vec![]).usable());
}

#[test]
fn rdata_round_trip() {
    assert_eq!(Tlsa::from_rdata(&[3, 1, 1]), Some(rec(3, 1, 1, vec![])));
    assert_eq!(
        Tlsa::from_rdata(&[2, 0, 0, 9, 9]),
        Some(rec(2, 0, 0, vec![9, 9]))
    );
    assert_eq!(Tlsa::from_rdata(&[3, 1]), None);
}

#[test]
fn matching_types_and_selectors() {
    let p = pki(&["mx.example"]);
    assert!(rec(3, 0, 0, p.leaf.to_vec()).matches(&p.leaf));
    assert!(rec(3, 0, 1, sha256(&p.leaf)).matches(&p.leaf));
    assert!(rec(3, 0, 2, sha512(&p.leaf)).matches(&p.leaf));
    assert!(rec(3, 1, 0, p.leaf_spki.clone()).matches(&p.leaf));
    assert!(rec(3, 1, 1, sha256(&p.leaf_spki)).matches(&p.leaf));
    assert!(rec(3, 1, 2, sha512(&p.leaf_spki)).matches(&p.leaf));
    assert!(!rec(3, 1, 1, sha256(&p.leaf)).matches(&p.leaf));
    assert!(!rec(3, 1, 1, sha256(&p.leaf_spki)).matches(&p.ca));
}

#[test]
fn dane_ee_ignores_names_dane_ta_checks_them() {
    let p = pki(&["mx.example"]);
    let now = UnixTime::now();
    let chain = [p.leaf.clone(), p.ca.clone()];
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // DANE-EE: any name.
    let ee = [rec(3, 1, 1, sha256(&p.leaf_spki))];
    let m = verify_chain(&ee, &names(&["other.example"]), &chain, now, &provider());
    assert!(matches!(m, Ok(DaneMatch::EndEntity(_))), "{m:?}");
    // DANE-TA: the CA in the chain, the leaf names the MX host.
    let ta = [rec(2, 0, 1, sha256(&p.ca))];
    let m = verify_chain(&ta, &names(&["mx.example"]), &chain, now, &provider());
    assert!(matches!(m, Ok(DaneMatch::TrustAnchor { .. })), "{m:?}");
    // … or the next-hop domain; a name it does not carry fails.
    let m = verify_chain(
        &ta,
        &names(&["other.example", "mx.example"]),
        &chain,
        now,
        &provider(),
    );
    assert!(m.is_ok(), "{m:?}");
    let m = verify_chain(&ta, &names(&["other.example"]), &chain, now, &provider());
    assert!(m.is_err(), "{m:?}");
    // The TA must be in the chain the server sent.
    let m = verify_chain(&ta, &names(&["mx.example"]), &chain[..1], now, &provider());
    assert!(m.is_err(), "{m:?}");
    // A CA of another PKI does not anchor this leaf.
    let other = pki(&["mx.example"]);
    let wrong_chain = [p.leaf.clone(), other.ca.clone()];
    let ta2 = [rec(2, 0, 1, sha256(&other.ca))];
    let m = verify_chain(
        &ta2,
        &names(&["mx.example"]),
        &wrong_chain,
        now,
        &provider(),
    );
    assert!(m.is_err(), "{m:?}");
    // Unusable records never match, even when their data would.
    let pkix = [rec(1, 1, 1, sha256(&p.leaf_spki))];
    assert!(verify_chain(&pkix, &names(&["mx.example"]), &chain, now, &provider()).is_err());
    assert!(verify_chain(&ee, &names(&["mx.example"]), &[], now, &provider()).is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_tlsa_and_certificates_never_panic(
        rdata in proptest::collection::vec(0u8..=255, 0..80),
        cert in proptest::collection::vec(0u8..=255, 0..300),
    ) {
        let _ = spki(&cert);
        if let Some(t) = Tlsa::from_rdata(&rdata) {
            let _ = t.usable();
            let _ = t.matches(&cert);
            let _ = t.to_string();
        }
    }

    #[test]
    fn mutated_certificates_never_panic(i in 0usize..2000, v in 0u8..=255) {
        let p = pki(&["mx.example"]);
        let mut c = p.leaf.to_vec();
        let n = c.len();
        c[i % n] = v;
        let _ = spki(&c);
        let t = rec(3, 1, 1, sha256(&p.leaf_spki));
        let _ = t.matches(&c);
    }
}
