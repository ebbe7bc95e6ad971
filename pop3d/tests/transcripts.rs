//! Transcript tests: every `tests/transcripts/*.pop3` file is replayed in-process against the
//! session state machine with canned auth and maildrop answers (`pochta_pop3d::replay`).
//!
//! Format: `O: tls|starttls|trusted` options first; then `C:` lines (consecutive ones are sent
//! in one packet, i.e. pipelined) each followed by the `S:` lines expected in answer. The first
//! `S:` lines before any `C:` are the greeting. `C: @long N` sends a line of N octets.
//! Markers in `S:` lines: `<starttls>`, `<update delete=… seen=…>`, `<close>`. `#` = comment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pochta_pop3d::replay::Replay;
use pochta_pop3d::session::{ConnFacts, SessionConfig};
use std::path::Path;

fn run(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut facts = ConnFacts::default();
    let mut groups: Vec<(Vec<u8>, String)> = vec![(Vec::new(), String::new())];
    let mut last_was_client = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (tag, rest) = line
            .split_once(": ")
            .or_else(|| line.strip_suffix(':').map(|t| (t, "")))
            .unwrap_or_else(|| panic!("{}:{}: bad line", path.display(), n + 1));
        match tag {
            "O" => match rest {
                "tls" => facts.tls = true,
                "starttls" => facts.starttls = true,
                "trusted" => facts.trusted = true,
                o => panic!("{}:{}: unknown option {o}", path.display(), n + 1),
            },
            "C" => {
                if !last_was_client {
                    groups.push((Vec::new(), String::new()));
                }
                let g = groups.last_mut().unwrap();
                if let Some(len) = rest.strip_prefix("@long ") {
                    g.0.extend(std::iter::repeat_n(b'A', len.parse().unwrap()));
                } else {
                    g.0.extend_from_slice(rest.as_bytes());
                }
                g.0.extend_from_slice(b"\r\n");
                last_was_client = true;
            }
            "S" => {
                let g = groups.last_mut().unwrap();
                g.1.push_str(rest);
                g.1.push_str("\r\n");
                last_was_client = false;
            }
            t => panic!("{}:{}: unknown tag {t}", path.display(), n + 1),
        }
    }
    let mut r = Replay::new(SessionConfig::default(), facts);
    for (i, (send, expect)) in groups.iter().enumerate() {
        r.input(send);
        let got = String::from_utf8_lossy(&r.take_output()).into_owned();
        assert_eq!(
            got,
            *expect,
            "{}: exchange {i} (after sending {:?})",
            path.display(),
            String::from_utf8_lossy(&send[..send.len().min(200)])
        );
    }
}

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pop3"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "transcripts missing in {}", dir.display());
    for f in files {
        run(&f);
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn words() -> impl Strategy<Value = Vec<u8>> {
        let word = prop_oneof![
            Just(b"USER alice\r\n".to_vec()),
            Just(b"PASS secret\r\n".to_vec()),
            Just(b"STLS\r\n".to_vec()),
            Just(b"AUTH LOGIN\r\n".to_vec()),
            Just(b"RETR 1\r\n".to_vec()),
            Just(b"TOP 3 1\r\n".to_vec()),
            Just(b"DELE 2\r\n".to_vec()),
            Just(b"LIST\r\n".to_vec()),
            Just(b"UIDL\r\n".to_vec()),
            Just(b"*\r\n".to_vec()),
            Just(b"QUIT\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..64),
        ];
        proptest::collection::vec(word, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        /// Any input in any chunking: no panic, and every reply line is a status, a
        /// continuation, a marker or part of a dot-terminated multi-line answer.
        #[test]
        fn any_input_any_chunks(data in words(), chunk in 1usize..64, starttls: bool, tls: bool) {
            let facts = ConnFacts { tls, starttls, trusted: false };
            let mut r = Replay::new(SessionConfig::default(), facts);
            r.input(b"");
            for c in data.chunks(chunk) {
                r.input(c);
            }
            let out = r.take_output();
            prop_assert!(out.starts_with(b"+OK pochta ready.\r\n"));
            prop_assert!(out.is_empty() || out.ends_with(b"\r\n"));
        }
    }
}
