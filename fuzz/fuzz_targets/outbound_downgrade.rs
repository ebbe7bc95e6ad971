//! The 8BITMIME downgrade on arbitrary messages: no panic, output bounded by the input, and a
//! success is 7-bit clean, keeps a 7-bit input byte for byte, and is a fixed point (downgrading
//! the result again changes nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_outbound::mime8::{downgrade, has_8bit};

fuzz_target!(|data: &[u8]| {
    let Ok(out) = downgrade(data) else { return };
    assert!(!has_8bit(&out));
    assert!(out.len() <= data.len() * 4 + 1024);
    if !has_8bit(data) {
        assert_eq!(out, data);
    }
    assert_eq!(downgrade(&out).as_deref(), Ok(&out[..]));
});
