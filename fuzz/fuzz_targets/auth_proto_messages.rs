//! Every line parser on arbitrary bytes: never a panic, and what parses re-encodes to a line
//! that parses to the same message (encode is the inverse of parse on its image).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_auth_proto::{ClientCommand, ServerReply, UserdbReply, UserdbRequest};

fn strip(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

fuzz_target!(|line: &[u8]| {
    if let Ok(m) = ServerReply::parse(line) {
        let again = ServerReply::parse(strip(&m.encode()));
        assert_eq!(again.as_ref(), Ok(&m), "server reply");
    }
    if let Ok(m) = ClientCommand::parse(line) {
        let again = ClientCommand::parse(strip(&m.encode()));
        assert_eq!(again.as_ref(), Ok(&m), "client command");
    }
    if let Ok(m) = UserdbReply::parse(line) {
        let again = UserdbReply::parse(strip(&m.encode()));
        assert_eq!(again.as_ref(), Ok(&m), "userdb reply");
    }
    if let Ok(m) = UserdbRequest::parse(line) {
        let again = UserdbRequest::parse(strip(&m.encode()));
        assert_eq!(again.as_ref(), Ok(&m), "userdb request");
    }
});
