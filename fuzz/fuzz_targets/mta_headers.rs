//! The header-block scan of a client's message and the assembly of the queued content around
//! it: no panic, the block end within the input, the client's bytes after it kept verbatim.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_mta::headers;

fuzz_target!(|data: &[u8]| {
    let scan = headers::scan(data);
    assert!(scan.end <= data.len());
    let (added, id) = headers::missing_headers(&scan, "ID", "mx.test", std::time::UNIX_EPOCH);
    assert!(id.is_some() || !scan.has_message_id || scan.message_id.is_some());
    let out = headers::assemble(b"Received: x\r\n", data, scan.end, &added);
    assert!(out.starts_with(b"Received: x\r\n"));
    assert!(out.ends_with(&data[scan.end..]));
});
