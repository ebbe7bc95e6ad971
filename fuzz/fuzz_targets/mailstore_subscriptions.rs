//! subscriptions parser: no panic; version-2 files round-trip (decode → encode → decode).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_mailstore::subscriptions::Subscriptions;

fuzz_target!(|data: &[u8]| {
    let subs = Subscriptions::parse(data);
    if subs.version == 2 {
        let again = Subscriptions::parse(subs.serialize().as_bytes());
        assert_eq!(again.version, 2);
        assert_eq!(again.names.len(), subs.names.len());
    }
});
