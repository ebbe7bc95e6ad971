//! Cheap property tests (the fuzz target smtp_session in fuzz/ goes deeper): arbitrary input
//! never panics the session and keeps it bounded; any body survives dot-stuffing and arbitrary
//! splitting of the input byte for byte; mailboxes round-trip through Display and parse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pochta_smtp::*;
use proptest::prelude::*;

/// Drives the session with an accept-everything policy; returns output and delivered bodies.
fn run(cfg: SessionConfig, chunks: &[Vec<u8>]) -> (Vec<u8>, Vec<Vec<u8>>, bool) {
    let mut s = Session::new(cfg);
    let mut out = Vec::new();
    let mut bodies = Vec::new();
    let mut closed = false;
    let pump = |s: &mut Session, out: &mut Vec<u8>, bodies: &mut Vec<Vec<u8>>| loop {
        match s.next() {
            Event::Write(b) => out.extend(b),
            Event::NeedInput => return false,
            Event::Close => return true,
            Event::Pending => panic!("pending"),
            Event::Message(m) => {
                bodies.push(m.body);
                s.accept();
            }
            Event::StartTls => {
                s.tls_established();
            }
            Event::Auth { .. } | Event::AuthResponse(_) => s.auth_challenge("eA=="),
            Event::AuthAborted => {}
            Event::Hello { .. } | Event::Mail { .. } | Event::Rcpt { .. } => s.accept(),
        }
    };
    closed |= pump(&mut s, &mut out, &mut bodies);
    for c in chunks {
        let mut off = 0;
        while off < c.len() && !closed {
            let n = s.feed(&c[off..]);
            off += n;
            closed |= pump(&mut s, &mut out, &mut bodies);
            assert!(n > 0 || closed, "session took no input and wants more");
        }
    }
    (out, bodies, closed)
}

fn split(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut pts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    pts.push(0);
    pts.push(data.len());
    pts.sort_unstable();
    pts.windows(2).map(|w| data[w[0]..w[1]].to_vec()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_input_never_panics(
        prefix in proptest::sample::select(vec![
            "", "LHLO x\r\n", "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
            "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5\r\n",
        ]),
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        smtp in any::<bool>(),
    ) {
        let mut input = prefix.as_bytes().to_vec();
        input.extend(&data);
        let mut cfg = if smtp { SessionConfig::smtp("h") } else { SessionConfig::lmtp("h") };
        cfg.starttls = true;
        cfg.auth_mechanisms = vec!["PLAIN".into()];
        cfg.auth_requires_tls = false;
        let (out, _, _) = run(cfg, &split(&input, &cuts));
        // Every reply line is CRLF-terminated and starts with a code.
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            prop_assert!(line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit));
            prop_assert_eq!(line.last(), Some(&b'\r'));
        }
    }

    #[test]
    fn body_survives_stuffing_and_splitting(
        lines in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![Just(b'.'), Just(b'a'), Just(b' '), 0x20u8..0x7f, 0x80u8..=0xff],
                0..40),
            0..30),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut body = Vec::new();
        let mut wire = b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
        for l in &lines {
            body.extend(l);
            body.extend(b"\r\n");
            if l.first() == Some(&b'.') {
                wire.push(b'.');
            }
            wire.extend(l);
            wire.extend(b"\r\n");
        }
        wire.extend(b".\r\nQUIT\r\n");
        let (out, bodies, closed) = run(SessionConfig::lmtp("h"), &split(&wire, &cuts));
        prop_assert!(closed, "{}", String::from_utf8_lossy(&out));
        prop_assert_eq!(bodies.len(), 1);
        prop_assert_eq!(&bodies[0], &body);
    }

    #[test]
    fn bdat_is_byte_exact(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut wire = b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n".to_vec();
        let n = chunks.len();
        for (i, c) in chunks.iter().enumerate() {
            let last = if i + 1 == n { " LAST" } else { "" };
            wire.extend(format!("BDAT {}{last}\r\n", c.len()).as_bytes());
            wire.extend(c);
        }
        wire.extend(b"QUIT\r\n");
        let (_, bodies, closed) = run(SessionConfig::lmtp("h"), &split(&wire, &cuts));
        prop_assert!(closed);
        prop_assert_eq!(bodies, vec![chunks.concat()]);
    }

    #[test]
    fn mailbox_display_roundtrips(
        local in "[a-zA-Z0-9 .\"\\\\+_-]{1,20}",
        domain in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,3}",
    ) {
        let m = Mailbox::new(local.clone(), Domain::parse(&domain, false).unwrap());
        let shown = m.to_string();
        let back = Mailbox::parse(&shown, false).unwrap();
        prop_assert_eq!(back.local(), local.as_str());
        let cmd = parse_command(format!("RCPT TO:<{shown}>").as_bytes(), false).unwrap();
        let want = Command::Rcpt {
            to: ForwardPath::Mailbox(m),
            params: RcptParams::default(),
        };
        prop_assert_eq!(cmd, want);
    }
}
