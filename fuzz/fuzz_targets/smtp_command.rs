//! The SMTP/LMTP command parser: no panic on any line, and what parses re-parses to the same
//! command after printing its addresses back (decode → encode → decode).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_smtp::{parse_command, Command};

fuzz_target!(|data: &[u8]| {
    for utf8 in [false, true] {
        let Ok(cmd) = parse_command(data, utf8) else {
            continue;
        };
        let _ = cmd.verb().ends_pipelining_group();
        let again = match &cmd {
            // A non-ASCII reverse-path needs SMTPUTF8 on the same line (RFC 6531 §3.4).
            Command::Mail { from, params } if params.smtputf8 => {
                format!("MAIL FROM:<{from}> SMTPUTF8")
            }
            Command::Mail { from, .. } => format!("MAIL FROM:<{from}>"),
            Command::Rcpt { to, .. } => format!("RCPT TO:<{to}>"),
            _ => continue,
        };
        let reparsed = parse_command(again.as_bytes(), true).expect("printed address re-parses");
        match (&cmd, &reparsed) {
            (Command::Mail { from: a, .. }, Command::Mail { from: b, .. }) => assert_eq!(a, b),
            (Command::Rcpt { to: a, .. }, Command::Rcpt { to: b, .. }) => assert_eq!(a, b),
            _ => panic!("verb changed: {cmd:?} → {reparsed:?}"),
        }
    }
});
