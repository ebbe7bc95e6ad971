//! Parse any passdb password and verify any password against it: never a panic, and what
//! parses behaves (verify answers, CRAM-MD5/SCRAM keys derive). Input: one byte of options,
//! then `stored` NUL `password`. Entries whose cost parameters make one verification slow are
//! parsed but not verified (`work_factor`), so the fuzzer keeps its speed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_password::{generate, Scheme, ScramHash, StoredPassword};

fuzz_target!(|data: &[u8]| {
    let Some((&opts, rest)) = data.split_first() else {
        return;
    };
    let (stored, password) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"secret"[..]),
    };
    let Ok(stored) = std::str::from_utf8(stored) else {
        return;
    };
    let all = Scheme::all();
    let default = all[usize::from(opts >> 1) % all.len()];
    let Ok(p) = StoredPassword::parse(stored, default, opts & 1 == 1) else {
        return;
    };
    let _ = format!("{p:?}");
    if p.work_factor() <= 20_000 {
        let _ = p.verify(password, "user@realm");
    }
    if let Some(k) = p.cram_md5() {
        let _ = k.hmac(password);
    }
    if p.cleartext().is_some() || p.scram(ScramHash::Sha1).is_some() {
        let _ = p.scram(ScramHash::Sha256);
    }
    // Cleartext round trip: what generate writes for it parses and verifies.
    if let Some(clear) = p.cleartext() {
        if let Ok(g) = generate(Scheme::Plain, clear, "", None) {
            let again = StoredPassword::parse(&g, Scheme::Crypt, false).expect("generated parses");
            assert!(again.verify(clear, "").expect("verifies"));
        }
    }
});
