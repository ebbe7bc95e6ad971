//! The whole session on arbitrary input after a login, with a real (temporary) Maildir:
//! never a panic, output always whole lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_imapd::replay::Replay;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("pochta-imapd-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = Replay::new(dir.clone());
    r.send(b"");
    r.send(b"l LOGIN alice secret\r\ns SELECT INBOX\r\n");
    for chunk in data.split_inclusive(|&b| b == b'\n') {
        let out = r.send(chunk);
        assert!(out.is_empty() || out.ends_with(b"\r\n") || out.ends_with(b"+ OK\r\n"));
        if r.closed {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});
