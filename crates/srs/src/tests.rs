use proptest::prelude::*;

use crate::secrets::parse_secrets;
use crate::{read_secrets, HashAlphabet, Srs, SrsError, MAX_ADDRESS_LEN};

const DAY: u64 = 86_400;
/// 2020-01-01 00:01:00 UTC: postsrsd's own test suite runs at this time with secret
/// `tops3cr3t` and domain `example.com`; the expected strings below are from its test suite.
const POSTSRSD_TEST_TIME: u64 = 1_577_836_860;

fn srs() -> Srs {
    Srs::new("example.com", vec![b"tops3cr3t".to_vec()]).unwrap()
}

#[test]
fn postsrsd_known_answers_forward() {
    let s = srs();
    let now = POSTSRSD_TEST_TIME;
    assert_eq!(
        s.forward("test@otherdomain.com", now).unwrap(),
        "SRS0=vmyz=2W=otherdomain.com=test@example.com"
    );
    assert_eq!(
        s.forward("SRS1=X=thirddomain.com==opaque+string@otherdomain.com", now)
            .unwrap(),
        "SRS1=JIBX=thirddomain.com==opaque+string@example.com"
    );
    let srs1 = s
        .forward("SRS0=opaque+string@otherdomain.com", now)
        .unwrap();
    assert!(
        srs1.starts_with("SRS1=") && srs1.ends_with("=otherdomain.com==opaque+string@example.com"),
        "{srs1}"
    );
    // Our own domain is not rewritten.
    assert_eq!(
        s.forward("test@example.com", now).unwrap(),
        "test@example.com"
    );
    assert_eq!(
        s.forward("test@EXAMPLE.com", now).unwrap(),
        "test@EXAMPLE.com"
    );
}

#[test]
fn postsrsd_known_answers_reverse() {
    let s = srs();
    let now = POSTSRSD_TEST_TIME;
    let rev = |a: &str| s.reverse(a, now);
    assert_eq!(
        rev("SRS0=XjO9=2V=otherdomain.com=test@example.com").unwrap(),
        Some("test@otherdomain.com".to_owned())
    );
    assert_eq!(
        rev("SRS0=vmyz=2W=otherdomain.com=test@example.com").unwrap(),
        Some("test@otherdomain.com".to_owned())
    );
    assert_eq!(
        rev("SRS1=JIBX=thirddomain.com==opaque+string@example.com").unwrap(),
        Some("SRS0=opaque+string@thirddomain.com".to_owned())
    );
    assert_eq!(rev("test@example.com").unwrap(), None);
    // Six months in the past and in the future, correctly signed.
    assert!(matches!(
        rev("SRS0=te87=T7=otherdomain.com=test@example.com"),
        Err(SrsError::Expired { .. })
    ));
    assert!(matches!(
        rev("SRS0=VcIb=7N=otherdomain.com=test@example.com"),
        Err(SrsError::Expired { .. })
    ));
    assert_eq!(
        rev("SRS0=FAKE=2V=otherdomain.com=test@example.com"),
        Err(SrsError::BadHash)
    );
    // Case changed by some MTA on the way.
    assert_eq!(
        rev("srs0=xjo9=2v=otherdomain.com=test@example.com").unwrap(),
        Some("test@otherdomain.com".to_owned())
    );
    assert_eq!(
        rev("SRS0=XJO9=2V=OTHERDOMAIN.COM=TEST@EXAMPLE.COM").unwrap(),
        Some("TEST@OTHERDOMAIN.COM".to_owned())
    );
    for missing in [
        "SRS0=@example.com",
        "SRS0=XjO9@example.com",
        "SRS0=XjO9=2V@example.com",
        "SRS0=XjO9=2V=otherdomain.com@example.com",
        "SRS0==2V=otherdomain.com=test@example.com",
        "SRS0=XjO9=2V==test@example.com",
        "SRS0=XjO9=2V=otherdomain.com=@example.com",
        "SRS1=@example.com",
        "SRS1=JIBX@example.com",
        "SRS1=JIBX=thirddomain.com@example.com",
        "SRS1=JIBX==x@example.com",
    ] {
        assert!(
            matches!(rev(missing), Err(SrsError::Syntax { .. })),
            "{missing}: {:?}",
            rev(missing)
        );
    }
}

#[test]
fn round_trip_plain_addresses() {
    let s = srs();
    let now = 1_700_000_000;
    for sender in [
        "alice@example.net",
        "Bob.Smith+tag@Sub.Example.NET",
        "x=y=z@example.org",
        "SRS0@example.org",
        "srs2=x@example.org",
        "üser@例え.jp",
        "a@b",
    ] {
        let fwd = s.forward(sender, now).unwrap();
        assert!(fwd.starts_with("SRS0="), "{fwd}");
        assert!(fwd.ends_with("@example.com"), "{fwd}");
        assert_eq!(s.reverse(&fwd, now).unwrap().as_deref(), Some(sender));
        assert_eq!(
            s.reverse(&fwd.to_ascii_uppercase(), now).unwrap(),
            Some(sender.to_ascii_uppercase())
        );
        assert_eq!(
            s.reverse(&fwd.to_ascii_lowercase(), now).unwrap(),
            Some(sender.to_ascii_lowercase())
        );
    }
}

#[test]
fn srs0_from_elsewhere_becomes_srs1_and_reverses_to_it() {
    let first = Srs::new("fwd1.example", vec![b"first secret".to_vec()]).unwrap();
    let s = srs();
    let now = 1_700_000_000;
    let srs0 = first.forward("user@origin.example", now).unwrap();
    let srs1 = s.forward(&srs0, now).unwrap();
    assert!(srs1.starts_with("SRS1="), "{srs1}");
    assert!(
        srs1.contains("=fwd1.example==") && srs1.ends_with("@example.com"),
        "{srs1}"
    );
    // Our reverse gives the first forwarder's address back; it reverses to the original.
    assert_eq!(
        s.reverse(&srs1, now).unwrap().as_deref(),
        Some(srs0.as_str())
    );
    assert_eq!(
        first.reverse(&srs0, now).unwrap().as_deref(),
        Some("user@origin.example")
    );
    // A third hop keeps pointing at fwd1 (no growth); reversing it shortcuts to fwd1 too.
    let third = Srs::new("fwd3.example", vec![b"third".to_vec()]).unwrap();
    let srs1_again = third.forward(&srs1, now).unwrap();
    assert!(srs1_again.starts_with("SRS1="), "{srs1_again}");
    assert!(srs1_again.contains("=fwd1.example=="), "{srs1_again}");
    assert_eq!(
        srs1_again.len(),
        srs1.len() - "example.com".len() + "fwd3.example".len()
    );
    assert_eq!(
        third.reverse(&srs1_again, now).unwrap().as_deref(),
        Some(srs0.as_str())
    );
    // Other separators after the tag travel along unchanged.
    let plus = "SRS0+HHHH=TT=origin.example=user@fwd1.example";
    let srs1_plus = s.forward(plus, now).unwrap();
    assert!(srs1_plus.contains("=fwd1.example=+HHHH="), "{srs1_plus}");
    assert_eq!(s.reverse(&srs1_plus, now).unwrap().as_deref(), Some(plus));
    // A lowercase tag is recognised; the reversal spells the tag SRS0 (as libsrs2).
    let lower = "srs0=hhhh=tt=origin.example=user@fwd1.example";
    let back = s.reverse(&s.forward(lower, now).unwrap(), now).unwrap();
    assert_eq!(
        back.as_deref(),
        Some("SRS0=hhhh=tt=origin.example=user@fwd1.example")
    );
}

#[test]
fn libsrs2_bare_srs0_quirk() {
    // libsrs2 (so postsrsd) reads a sender whose local part is just `SRS0` as an SRS0 address
    // with an empty rest and writes SRS1=HHHH=example.org=@domain; we reverse that to what it
    // stood for. We ourselves treat such a sender as plain.
    let s = srs();
    let now = POSTSRSD_TEST_TIME;
    let srs1 = s
        .forward("SRS1=xxxx=example.org=@fwd.example", now)
        .unwrap();
    assert!(
        srs1.starts_with("SRS1=") && srs1.ends_with("=example.org=@example.com"),
        "{srs1}"
    );
    assert_eq!(
        s.reverse(&srs1, now).unwrap().as_deref(),
        Some("SRS0@example.org")
    );
    let plain = s.forward("SRS0@example.org", now).unwrap();
    assert!(plain.starts_with("SRS0=") && plain.ends_with("=example.org=SRS0@example.com"));
    assert_eq!(
        s.reverse(&plain, now).unwrap().as_deref(),
        Some("SRS0@example.org")
    );
}

#[test]
fn separators_after_the_tag() {
    let s = srs();
    let now = POSTSRSD_TEST_TIME;
    for sep in ['=', '+', '-'] {
        let a = format!("SRS0{sep}vmyz=2W=otherdomain.com=test@example.com");
        assert_eq!(
            s.reverse(&a, now).unwrap().as_deref(),
            Some("test@otherdomain.com"),
            "{a}"
        );
    }
    assert_eq!(
        s.reverse("SRS0_vmyz=2W=otherdomain.com=test@example.com", now),
        Ok(None)
    );
    assert_eq!(
        s.reverse("SRS2=vmyz=2W=otherdomain.com=test@example.com", now),
        Ok(None)
    );
}

#[test]
fn expiry_after_21_days() {
    let s = srs();
    let t0 = 1_700_000_000;
    let fwd = s.forward("a@example.net", t0).unwrap();
    let day_start = t0 - t0 % DAY;
    assert!(s.reverse(&fwd, day_start).unwrap().is_some());
    assert!(s.reverse(&fwd, day_start + 21 * DAY).unwrap().is_some());
    assert!(s.reverse(&fwd, day_start + 22 * DAY - 1).unwrap().is_some());
    assert_eq!(
        s.reverse(&fwd, day_start + 22 * DAY),
        Err(SrsError::Expired {
            age_days: 22,
            max_days: 21
        })
    );
    // The day before it was minted: reads as 1023 days old.
    assert_eq!(
        s.reverse(&fwd, day_start - 1),
        Err(SrsError::Expired {
            age_days: 1023,
            max_days: 21
        })
    );
}

#[test]
fn timestamp_wraps_every_1024_days() {
    let s = srs();
    // Three days before the stamp counter wraps from 1023 (77) to 0 (AA).
    let wrap = 1024 * 20 * DAY;
    let before = wrap - 3 * DAY;
    let fwd = s.forward("a@example.net", before).unwrap();
    assert!(
        fwd.starts_with("SRS0=") && fwd.contains("=75=example.net="),
        "{fwd}"
    );
    assert!(s.reverse(&fwd, wrap).unwrap().is_some());
    assert!(s.reverse(&fwd, wrap + 18 * DAY).unwrap().is_some());
    assert!(matches!(
        s.reverse(&fwd, wrap + 19 * DAY),
        Err(SrsError::Expired { age_days: 22, .. })
    ));
    let at_wrap = s.forward("a@example.net", wrap).unwrap();
    assert!(at_wrap.contains("=AA=example.net="), "{at_wrap}");
    // The format cannot tell a stamp from one exactly 1024 days older.
    assert!(s.reverse(&fwd, before + 1024 * DAY).unwrap().is_some());
}

#[test]
fn bad_hashes() {
    let s = srs();
    let now = POSTSRSD_TEST_TIME;
    let good = "SRS0=vmyz=2W=otherdomain.com=test@example.com";
    assert!(s.reverse(good, now).unwrap().is_some());
    for bad in [
        "SRS0=vmyy=2W=otherdomain.com=test@example.com",
        "SRS0=vmy!=2W=otherdomain.com=test@example.com",
        "SRS0=vmyz=2W=otherdomain.org=test@example.com",
        "SRS0=vmyz=2W=otherdomain.com=test2@example.com",
        "SRS1=vmyz=otherdomain.com==x@example.com",
        "SRS1=JIBX=thirddomain.com=@example.com",
    ] {
        assert_eq!(s.reverse(bad, now), Err(SrsError::BadHash), "{bad}");
    }
    // Changing the stamp invalidates the hash (a stamp still in range).
    assert_eq!(
        s.reverse("SRS0=vmyz=2V=otherdomain.com=test@example.com", now),
        Err(SrsError::BadHash)
    );
    assert!(matches!(
        s.reverse("SRS0=vmy=2W=otherdomain.com=test@example.com", now),
        Err(SrsError::Syntax { .. })
    ));
    // Longer hashes (postsrsd -n 8) count on their first four characters, as libsrs2.
    assert!(s
        .reverse("SRS0=vmyzABCD=2W=otherdomain.com=test@example.com", now)
        .unwrap()
        .is_some());
    assert!(matches!(
        s.reverse("SRS0=vmyz=2!=otherdomain.com=test@example.com", now),
        Err(SrsError::Syntax { .. })
    ));
    assert!(matches!(
        s.reverse("SRS0=vmyz=2WW=otherdomain.com=test@example.com", now),
        Err(SrsError::Syntax { .. })
    ));
}

#[test]
fn hash_alphabets_are_interchangeable_on_reverse() {
    let std = srs();
    let url = srs().with_hash_alphabet(HashAlphabet::UrlSafe);
    let now = 1_700_000_000;
    let mut seen_special = false;
    for i in 0..400 {
        let sender = format!("user{i}@example.net");
        let a = std.forward(&sender, now).unwrap();
        let b = url.forward(&sender, now).unwrap();
        let hash_a = &a[5..9];
        let hash_b = &b[5..9];
        assert!(!hash_a.contains(['-', '_']), "{a}");
        assert!(!hash_b.contains(['+', '/']), "{b}");
        assert_eq!(
            hash_a.replace('+', "-").replace('/', "_"),
            hash_b,
            "{a} {b}"
        );
        seen_special |= hash_a != hash_b;
        for address in [&a, &b] {
            assert_eq!(std.reverse(address, now).unwrap(), Some(sender.clone()));
            assert_eq!(url.reverse(address, now).unwrap(), Some(sender.clone()));
        }
    }
    assert!(seen_special, "no hash with + or / in 400 tries");
}

#[test]
fn foreign_and_non_srs_addresses_are_not_ours() {
    let s = srs();
    let now = POSTSRSD_TEST_TIME;
    for other in [
        "SRS0=vmyz=2W=otherdomain.com=test@example.org",
        "SRS0=vmyz=2W=otherdomain.com=test@sub.example.com",
        "SRS0=vmyz=2W=otherdomain.com=test",
        "postmaster@example.com",
        "SRS@example.com",
        "SRS0@example.com",
        "@example.com",
        "",
        "@",
    ] {
        assert_eq!(s.reverse(other, now), Ok(None), "{other}");
    }
    // The SRS domain is compared without regard to case.
    assert!(s
        .reverse("SRS0=vmyz=2W=otherdomain.com=test@Example.COM", now)
        .unwrap()
        .is_some());
}

#[test]
fn forward_refuses_unusable_senders() {
    let s = srs();
    let now = POSTSRSD_TEST_TIME;
    for bad in [
        "foo",
        "",
        "@example.net",
        "user@",
        "\"a@b\"@example.net",
        "user@exa=mple.net",
        "us er@example.net",
        "user\r\n@example.net",
    ] {
        assert!(
            matches!(s.forward(bad, now), Err(SrsError::Sender { .. })),
            "{bad:?}: {:?}",
            s.forward(bad, now)
        );
    }
    for bad in [
        "SRS1=@example.net",
        "SRS1=x@example.net",
        "SRS1=x=host@example.net",
        "SRS1=x==rest@example.net",
    ] {
        assert!(
            matches!(s.forward(bad, now), Err(SrsError::Syntax { .. })),
            "{bad:?}: {:?}",
            s.forward(bad, now)
        );
    }
    let long = format!("{}@example.net", "a".repeat(MAX_ADDRESS_LEN));
    assert!(matches!(
        s.forward(&long, now),
        Err(SrsError::TooLong { .. })
    ));
    // Fits as input, but not once rewritten.
    let near = format!("{}@example.net", "a".repeat(MAX_ADDRESS_LEN - 20));
    assert!(matches!(
        s.forward(&near, now),
        Err(SrsError::TooLong { .. })
    ));
    let too_long_srs = format!(
        "SRS0=vmyz=2W=otherdomain.com={}@example.com",
        "a".repeat(600)
    );
    assert!(matches!(
        s.reverse(&too_long_srs, now),
        Err(SrsError::TooLong { .. })
    ));
}

#[test]
fn key_rotation() {
    let now = 1_700_000_000;
    let old = Srs::new("example.com", vec![b"old".to_vec()]).unwrap();
    let rotated = Srs::new("example.com", vec![b"new".to_vec(), b"old".to_vec()]).unwrap();
    let new_only = Srs::new("example.com", vec![b"new".to_vec()]).unwrap();
    let by_old = old.forward("a@example.net", now).unwrap();
    let by_rotated = rotated.forward("a@example.net", now).unwrap();
    assert_ne!(by_old, by_rotated);
    assert_eq!(by_rotated, new_only.forward("a@example.net", now).unwrap());
    assert!(rotated.reverse(&by_old, now).unwrap().is_some());
    assert!(rotated.reverse(&by_rotated, now).unwrap().is_some());
    assert_eq!(new_only.reverse(&by_old, now), Err(SrsError::BadHash));
    assert_eq!(old.reverse(&by_rotated, now), Err(SrsError::BadHash));
}

#[test]
fn configuration_errors() {
    let ok = || vec![b"s".to_vec()];
    assert_eq!(
        Srs::new(".example.com", ok()).unwrap().domain(),
        "example.com"
    );
    for bad in ["", ".", "a..b", "a.", "ex ample.com", "a@b", "a=b", "ü.de"] {
        assert!(
            matches!(Srs::new(bad, ok()), Err(SrsError::Domain { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Srs::new("example.com", vec![]),
        Err(SrsError::NoSecrets)
    ));
    for bad in [
        Vec::new(),
        b"a\0b".to_vec(),
        b"a\nb".to_vec(),
        vec![b'x'; 1023],
    ] {
        assert!(matches!(
            Srs::new("example.com", vec![b"fine".to_vec(), bad]),
            Err(SrsError::Secret { index: 1, .. })
        ));
    }
    assert!(Srs::new("example.com", vec![vec![b'x'; 1022]]).is_ok());
}

#[test]
fn debug_and_errors_never_show_secrets() {
    let s = Srs::new("example.com", vec![b"hunter2-secret".to_vec()]).unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("example.com"), "{shown}");
    let err = Srs::new("example.com", vec![b"hunter2\0x".to_vec()]).unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[test]
fn srs_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Srs>();
    check::<SrsError>();
}

#[test]
fn secrets_file_lines() {
    assert_eq!(
        parse_secrets(b"first\nsecond \r\n\n\r\nthird").unwrap(),
        vec![b"first".to_vec(), b"second ".to_vec(), b"third".to_vec()]
    );
    assert!(parse_secrets(b"").is_err());
    assert!(parse_secrets(b"\n\r\n").is_err());
    assert!(parse_secrets(b"a\rb\n").is_err());
    assert!(parse_secrets(b"a\0b\n").is_err());
    let long = vec![b'x'; 1023];
    assert!(parse_secrets(&long).is_err());
    assert!(parse_secrets(&long[1..]).is_ok());
}

#[test]
fn secrets_file_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.secret");
    std::fs::write(&path, "very secret\nolder secret\n").unwrap();
    for (mode, ok) in [
        (0o600, true),
        (0o400, true),
        (0o640, true),
        (0o644, false),
        (0o604, false),
        (0o660, false),
        (0o602, false),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let got = read_secrets(&path);
        assert_eq!(got.is_ok(), ok, "mode {mode:o}: {got:?}");
        if let Err(e) = got {
            assert!(!e.contains("very secret"), "{e}");
            assert!(e.contains("srs.secret"), "{e}");
        } else {
            assert_eq!(
                got.unwrap(),
                vec![b"very secret".to_vec(), b"older secret".to_vec()]
            );
        }
    }
    assert!(read_secrets(&dir.path().join("missing")).is_err());
    assert!(read_secrets(dir.path()).is_err());
}

fn sender_strategy() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,40}",
        "[A-Za-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,20}){0,3}",
    )
        .prop_map(|(local, host)| format!("{local}@{host}"))
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(input in "\\PC{0,80}", now in any::<u64>()) {
        let s = srs();
        let _ = s.forward(&input, now);
        let _ = s.reverse(&input, now);
        let _ = s.reverse(&format!("{input}@example.com"), now);
        let _ = s.reverse(&format!("SRS0={input}@example.com"), now);
        let _ = s.reverse(&format!("SRS1={input}@example.com"), now);
        let _ = s.forward(&format!("SRS1={input}@example.net"), now);
        let _ = parse_secrets(input.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let s = srs();
        let input = String::from_utf8_lossy(&bytes);
        let _ = s.forward(&input, POSTSRSD_TEST_TIME);
        let _ = s.reverse(&input, POSTSRSD_TEST_TIME);
    }

    #[test]
    fn forward_then_reverse_round_trips(
        sender in sender_strategy(),
        now in 0u64..(u64::MAX / 2),
        later in 0u64..(22 * DAY),
    ) {
        let s = srs();
        let Ok(fwd) = s.forward(&sender, now) else {
            // Only a malformed SRS1 sender is refused.
            prop_assert!(sender.get(..4).is_some_and(|t| t.eq_ignore_ascii_case("srs1")));
            return Ok(());
        };
        if sender.to_ascii_lowercase().ends_with("@example.com") {
            prop_assert_eq!(&fwd, &sender);
            return Ok(());
        }
        let day_start = now - now % DAY;
        let then = day_start + later;
        let back = s.reverse(&fwd, then).unwrap().unwrap();
        // An SRS0/SRS1 sender comes back as the SRS0 address it stands for (tag uppercased);
        // for all others the round trip is exact.
        if !fwd.starts_with("SRS1") {
            prop_assert_eq!(back, sender);
        } else {
            prop_assert!(back.starts_with("SRS0"));
        }
        // Mangling one character never panics.
        for i in 0..fwd.len() {
            let mut bytes = fwd.clone().into_bytes();
            bytes[i] = bytes[i].wrapping_add(1);
            if let Ok(m) = String::from_utf8(bytes) {
                let _ = s.reverse(&m, then);
            }
        }
    }
}
