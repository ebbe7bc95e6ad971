//! Robustness: any input gives an answer without panicking, outputs stay consistent with
//! the input (sizes, section bounds), deep nesting is cut off, and big inputs take linear
//! time. A cheap proptest runs in the normal test command; the fuzz target imap_message (fuzz/)
//! does the same checks for longer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pochta_imap_message::{Message, Section, SectionKind};
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Exercises every API on `raw` and checks the invariants that hold for any input.
fn exercise(raw: &[u8]) {
    let m = Message::parse(raw);
    let size = m.size();
    let full = m
        .section(&Section {
            part: vec![],
            kind: SectionKind::Full,
        })
        .unwrap();
    assert_eq!(full.len() as u64, size, "BODY[] length = RFC822.SIZE");
    let header = m
        .section(&Section {
            part: vec![],
            kind: SectionKind::Header,
        })
        .unwrap();
    let text = m
        .section(&Section {
            part: vec![],
            kind: SectionKind::Text,
        })
        .unwrap();
    assert_eq!(
        header.len() + text.len(),
        full.len(),
        "HEADER + TEXT = whole message"
    );
    let env = m.envelope();
    assert!(env.starts_with(b"(") && env.ends_with(b")"));
    let bs = m.body_structure(true);
    assert!(bs.starts_with(b"(") && bs.ends_with(b")"));
    let _ = m.body_structure(false);
    let paths: [&[u32]; 8] = [
        &[1],
        &[2],
        &[1, 1],
        &[1, 2],
        &[2, 1],
        &[1, 1, 1],
        &[3, 1, 2],
        &[0],
    ];
    for p in paths {
        for kind in [
            SectionKind::Full,
            SectionKind::Header,
            SectionKind::Text,
            SectionKind::Mime,
            SectionKind::HeaderFields(vec!["subject".into(), "content-type".into()]),
            SectionKind::HeaderFieldsNot(vec!["from".into()]),
        ] {
            if let Some(s) = m.section(&Section {
                part: p.to_vec(),
                kind,
            }) {
                assert!(
                    s.len() as u64 <= size * 2 + 2,
                    "section larger than the message"
                );
            }
        }
        if let Ok(Some(b)) = m.binary(p) {
            assert_eq!(m.binary_size(p), Ok(Some(b.len() as u64)));
        }
    }
    let _ = m.binary(&[]);
    let _ = m.header_values("Subject");
    let _ = m.header_contains("to", "Ünï");
    let _ = m.sent_date();
    let _ = m.body_contains("ß");
    let _ = m.text_contains("x");
}

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"MIME-Version: 1.0\n".to_vec()),
        Just(b"Content-Type: multipart/mixed; boundary=b\n".to_vec()),
        Just(b"Content-Type: multipart/digest; boundary=bb\n".to_vec()),
        Just(b"Content-Type: message/rfc822\n".to_vec()),
        Just(b"Content-Type: text/plain; charset*0*=utf-8''%C3; charset*1=x\n".to_vec()),
        Just(b"Content-Transfer-Encoding: base64\n".to_vec()),
        Just(b"Content-Transfer-Encoding: quoted-printable\n".to_vec()),
        Just(b"Content-Disposition: attachment; filename=\"a\\\"b\"\n".to_vec()),
        Just(b"From: \"A (B)\" <a@b>, g: c@d;, (x\n".to_vec()),
        Just(b"Subject: =?utf-8?q?=C3=A4?= =?x?b?\n".to_vec()),
        Just(b"Date: Mon, 2 Jan 2023 10:00 +0100\n".to_vec()),
        Just(b"--b\n".to_vec()),
        Just(b"--b--\n".to_vec()),
        Just(b"--bb\n".to_vec()),
        Just(b" folded\n".to_vec()),
        Just(b"=3D=\n".to_vec()),
        Just(b"aGVsbG8=\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_mime_like_input(pieces in proptest::collection::vec(piece(), 0..40)) {
        exercise(&pieces.concat());
    }

    #[test]
    fn never_panics_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        exercise(&raw);
    }
}

#[test]
fn deep_nesting_is_cut_off() {
    let mut raw = Vec::new();
    for i in 0..5000 {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"\nleaf\n");
    let mut rfc = Vec::new();
    for _ in 0..5000 {
        rfc.extend_from_slice(b"Content-Type: message/rfc822\n\n");
    }
    rfc.extend_from_slice(b"\nbody\n");
    for raw in [raw, rfc] {
        let raw2 = raw.clone();
        // Run on a thread with a small stack: the depth limit, not the stack size, must stop
        // the recursion.
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || exercise(&raw2))
            .unwrap()
            .join()
            .unwrap();
        let bs = Message::parse(&raw).body_structure(true);
        assert!(bs.len() < raw.len() * 4);
    }
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

#[test]
fn big_inputs_take_linear_time() {
    // 4 MB header of 100k fields, many unterminated encoded-words and comments.
    let mut hdr = Vec::new();
    for i in 0..100_000 {
        hdr.extend_from_slice(format!("X-F{i}: =?x?q?a (c\n").as_bytes());
    }
    hdr.extend_from_slice(b"From: ");
    for _ in 0..20_000 {
        hdr.extend_from_slice(b"a@b, \"q\" <c@d>, ");
    }
    hdr.extend_from_slice(b"\nSubject: ");
    for _ in 0..50_000 {
        hdr.extend_from_slice(b"=?utf-8?q?x ");
    }
    hdr.extend_from_slice(b"\n\nbody\n");
    // 4 MB body of lines that look like boundaries.
    let mut mp = b"Content-Type: multipart/mixed; boundary=abcdefghij\n\n".to_vec();
    for _ in 0..400_000 {
        mp.extend_from_slice(b"--abcdefghi\n");
    }
    for raw in [hdr, mp] {
        let elapsed = time(|| {
            let m = Message::parse(&raw);
            let _ = m.envelope();
            let _ = m.body_structure(true);
            let _ = m.header_values("subject");
            let _ = m.text_contains("needle");
            let _ = m.section(&Section {
                part: vec![],
                kind: SectionKind::HeaderFields(vec!["From".into()]),
            });
        });
        // Linear work on a few MB takes well under a second even unoptimised; a quadratic
        // algorithm would take minutes.
        assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    }
}

#[test]
fn envelope_does_not_parse_the_body() {
    // A header-only request must not walk a huge body: ENVELOPE of a message with a 50 MB
    // body takes as long as one with an empty body (within noise).
    let mut raw = b"Subject: s\nContent-Type: multipart/mixed; boundary=x\n\n".to_vec();
    raw.resize(50 << 20, b'-');
    let t = time(|| {
        for _ in 0..1000 {
            let m = Message::parse(&raw);
            let _ = m.envelope();
            let _ = m.section(&Section {
                part: vec![],
                kind: SectionKind::Header,
            });
        }
    });
    assert!(t < Duration::from_secs(5), "took {t:?}");
}

/// The nesting and part-count limits behave as Dovecot 2.3's: BODYSTRUCTURE of a 120-deep
/// multipart and a 120-deep message/rfc822 equals what Dovecot answered (saved in
/// tests/limits/, made from these same messages), and after 10,000 parts no more boundaries
/// are recognised (Dovecot: 9,999 parts, the last one running to the end).
#[test]
fn nesting_and_part_limits_match_dovecot() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/limits");
    let mut deep = String::from("MIME-Version: 1.0\nSubject: deep\n");
    for i in 0..120 {
        deep.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=l{i}\n\n--l{i}\n"
        ));
    }
    deep.push_str("Content-Type: text/plain\n\ndeep text\n");
    for i in (0..120).rev() {
        deep.push_str(&format!("--l{i}--\n"));
    }
    let mut rfc = String::from("MIME-Version: 1.0\nSubject: deep\n");
    for i in 0..120 {
        rfc.push_str(&format!(
            "Content-Type: message/rfc822\n\nSubject: level {i}\n"
        ));
    }
    rfc.push_str("\nbody\n");
    for (name, raw) in [("a-deep-multipart", deep), ("b-deep-rfc822", rfc)] {
        let want = std::fs::read(format!("{dir}/{name}.bodystructure")).unwrap();
        let got = Message::parse(raw.as_bytes()).body_structure(true);
        assert!(got == want, "{name}: BODYSTRUCTURE differs from Dovecot's");
    }
    let mut many = String::from("MIME-Version: 1.0\nSubject: many\n");
    many.push_str("Content-Type: multipart/mixed; boundary=m\n\n");
    for i in 0..10_050 {
        many.push_str(&format!("--m\n\n{i}\n"));
    }
    many.push_str("--m--\n");
    let bs = Message::parse(many.as_bytes()).body_structure(false);
    let bs = String::from_utf8(bs).unwrap();
    assert_eq!(bs.matches("(\"text\" \"plain\"").count(), 9_999);
    // Dovecot: the last part holds the rest, 726 bytes in 155 lines.
    assert!(
        bs.ends_with("\"7bit\" 726 155) \"mixed\")"),
        "{}",
        &bs[bs.len() - 200..]
    );
}
