//! The queue file parser: no panic on any bytes; what parses re-encodes to a file that parses
//! to the same envelope, content and recipient states (decode → encode → decode).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_queue::file::{encode, encode_record, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = parse(data) else { return };
    let content = &data[p.content.clone()];
    let mut again = encode(&p.envelope, content);
    for (i, st) in p.states.iter().enumerate() {
        if st.attempts > 0 || st.status != pochta_queue::file::RcptStatus::Pending {
            again.extend_from_slice(&encode_record(i, st));
        }
    }
    let q = parse(&again).expect("re-encoded queue file parses");
    assert_eq!(q.envelope, p.envelope);
    assert_eq!(&again[q.content.clone()], content);
    assert_eq!(q.states.len(), p.states.len());
    for (a, b) in q.states.iter().zip(p.states.iter()) {
        assert_eq!(a.status == b.status || a.status.is_open() && b.status.is_open(), true);
        assert_eq!(a.attempts, b.attempts);
    }
});
