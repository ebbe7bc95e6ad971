//! SRS forward and reverse rewriting: no panic on any address, and what forward writes,
//! reverse turns back (encode → decode) — exactly for plain senders, into the SRS0 address
//! for SRS0/SRS1 senders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_srs::Srs;

const DAY: u64 = 86_400;

fuzz_target!(|data: &[u8]| {
    // First 8 bytes: the clock; the rest: an address.
    let Some((clock, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let now = u64::from_le_bytes(*clock) / 2;
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(srs) = Srs::new(
        "srs.example.org",
        vec![b"fuzz secret".to_vec(), b"old".to_vec()],
    ) else {
        panic!("valid configuration refused");
    };
    let _ = Srs::new(input, vec![input.as_bytes().to_vec()]);
    let _ = srs.reverse(input, now);
    let Ok(forwarded) = srs.forward(input, now) else {
        return;
    };
    if forwarded == input {
        // Already in the SRS domain.
        assert!(input.to_ascii_lowercase().ends_with("@srs.example.org"));
        return;
    }
    // Within the maximum age, later the same day and three weeks on.
    for later in [now, now - now % DAY + 21 * DAY] {
        let back = match srs.reverse(&forwarded, later) {
            Ok(Some(back)) => back,
            other => panic!("{input:?} → {forwarded:?} → {other:?}"),
        };
        let (local, host) = input.rsplit_once('@').unwrap_or_default();
        let tag = local.get(..5).map(|t| t.to_ascii_uppercase());
        match tag.as_deref() {
            Some("SRS0=" | "SRS0+" | "SRS0-") => {
                assert_eq!(back, format!("SRS0{}@{host}", &local[4..]))
            }
            Some("SRS1=" | "SRS1+" | "SRS1-") => assert!(back.starts_with("SRS0")),
            _ => assert_eq!(back, input),
        }
    }
    // A day more and an SRS0 address has expired (SRS1 carries no timestamp).
    let expired = srs.reverse(&forwarded, now - now % DAY + 22 * DAY);
    if forwarded.starts_with("SRS0") {
        assert!(expired.is_err(), "{forwarded:?}: {expired:?}");
    }
});
