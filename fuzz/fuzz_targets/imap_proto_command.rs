//! Framer + parser on arbitrary input: never a panic, never more held than the limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_imap_proto::{parse_command, Frame, Framer, Limits};

fuzz_target!(|data: &[u8]| {
    let _ = parse_command(data);
    let limits = Limits::PRE_AUTH;
    let mut f = Framer::new(limits);
    let mut input = data;
    while !input.is_empty() {
        let (n, frame) = f.push(input);
        assert!(f.held() <= limits.max_command);
        if let Some(Frame::Command(c)) = frame {
            if let Ok(cmd) = parse_command(&c) {
                let _ = cmd.body.name();
            }
        }
        if n == 0 {
            break;
        }
        input = &input[n..];
    }
});
