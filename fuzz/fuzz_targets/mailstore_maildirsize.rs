//! maildirsize parser and quota rules: no panic; a parsed file's limits line re-parses to the
//! same limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_mailstore::quota::{MaildirSize, QuotaLimit};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = MaildirSize::parse(data) {
        let _ = m.would_exceed(u64::MAX, u64::MAX);
        let header = format!("{}\n", m.limit.header_line());
        let again = MaildirSize::parse(header.as_bytes()).expect("limits line re-parses");
        assert_eq!(again.limit, m.limit);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = QuotaLimit::from_rule(s);
    }
});
