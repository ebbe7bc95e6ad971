//! A whole LMTP (first byte even) or SMTP session fed arbitrary bytes in arbitrary pieces:
//! no panic, bounded buffering, well-formed replies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_smtp::{Event, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut cfg = if mode & 1 == 0 {
        SessionConfig::lmtp("fuzz.test")
    } else {
        SessionConfig::smtp("fuzz.test")
    };
    cfg.max_message_size = 4096;
    cfg.starttls = mode & 2 != 0;
    cfg.auth_mechanisms = vec!["PLAIN".into()];
    cfg.auth_requires_tls = mode & 4 != 0;
    let mut s = Session::new(cfg);
    let piece = usize::from(mode >> 3) + 1;
    let mut out = Vec::new();
    for chunk in rest.chunks(piece) {
        let mut off = 0;
        loop {
            loop {
                match s.next() {
                    Event::Write(b) => out.extend(b),
                    Event::NeedInput => break,
                    Event::Close => return,
                    Event::Pending => panic!("decision left pending"),
                    Event::StartTls => {
                        s.tls_established();
                    }
                    Event::Auth { .. } | Event::AuthResponse(_) => s.auth_challenge(""),
                    Event::Message(m) => {
                        assert!(m.body.len() <= 4096);
                        s.accept();
                    }
                    _ => s.accept(),
                }
            }
            if off == chunk.len() {
                break;
            }
            off += s.feed(&chunk[off..]);
        }
    }
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit));
    }
});
