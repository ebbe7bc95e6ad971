//! Maildir file names: no panic; setting flags keeps the base name and yields exactly the flags
//! set, and is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_mailstore::filename::{dovecot_sort_cmp, Filename, Flags, SizeCounter};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = Filename::parse(s) else {
        return;
    };
    let _ = (name.size(), name.vsize(), name.timestamp(), name.info());
    let flags = name.flags();
    let same = name.with_flags(&flags);
    assert_eq!(same.base(), name.base());
    assert_eq!(same.flags(), flags);
    let mut other = Flags::from_letters("FSa");
    other.set_keyword((data.len() % 26) as u8, true);
    let changed = name.with_flags(&other);
    assert_eq!(changed.flags(), other);
    assert_eq!(changed.base(), name.base());
    assert_eq!(Filename::parse(changed.as_str()).expect("re-parses").with_flags(&other), changed);
    let _ = dovecot_sort_cmp(s, changed.as_str());
    let mut c = SizeCounter::default();
    c.update(data);
    assert!(c.vsize() >= c.size());
});
