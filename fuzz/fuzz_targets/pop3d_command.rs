//! The command parser on arbitrary lines: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_pop3d::command::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Command::parse(data) {
        let _ = c.verb();
        let _ = c.allowed();
    }
});
