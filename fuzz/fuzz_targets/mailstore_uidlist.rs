//! dovecot-uidlist parser: no panic on any file, and what parses re-parses to the same list after
//! being written back as version 3 (decode → encode → decode).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_mailstore::uidlist::UidList;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = UidList::parse(data) else {
        return;
    };
    let text = list.serialize();
    let again = UidList::parse(text.as_bytes()).expect("written uidlist re-parses");
    assert_eq!(again.uid_validity, list.uid_validity);
    assert_eq!(again.next_uid, list.next_uid);
    assert_eq!(again.records.len(), list.records.len());
    for (a, b) in again.records.iter().zip(&list.records) {
        assert_eq!(a.uid, b.uid);
        assert_eq!(a.base(), b.base());
        assert_eq!(a.ext, b.ext);
    }
    for r in &list.records {
        let _ = r.pop3_uidl(list.uid_validity);
    }
});
