//! Mailbox names and modified UTF-7: no panic; valid names never map to a path outside the
//! Maildir; decoding an encoding gives the name back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_mailstore::names::{mutf7_decode, mutf7_encode, MailboxName};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = mutf7_decode(s);
    assert_eq!(mutf7_decode(&mutf7_encode(s)).as_deref(), Some(s));
    if let Ok(name) = MailboxName::new(s) {
        for utf8 in [false, true] {
            let dir = name.dir_name(utf8);
            assert!(!dir.contains('/') && dir != "." && dir != "..");
            if !name.is_inbox() {
                assert_eq!(MailboxName::from_dir_name(&dir, utf8).ok().as_ref(), Some(&name));
            }
        }
    }
    let _ = MailboxName::from_dir_name(s, false);
});
