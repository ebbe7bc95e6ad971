//! dovecot-keywords parser: no panic; the written table re-parses to the same slots.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_mailstore::keywords::Keywords;

fuzz_target!(|data: &[u8]| {
    let kw = Keywords::parse(data);
    let again = Keywords::parse(kw.serialize().as_bytes());
    for (i, name) in kw.iter() {
        if !name.contains('\n') {
            assert_eq!(again.name(i), Some(name));
        }
    }
});
