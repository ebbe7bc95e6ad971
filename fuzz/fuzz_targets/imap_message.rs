//! Fuzzes the whole message API: parse, ENVELOPE, BODY/BODYSTRUCTURE, every section form of
//! a few part numbers, BINARY and the SEARCH helpers, with the invariants of tests/robust.rs
//! (BODY[] = RFC822.SIZE bytes, HEADER + TEXT = BODY[], BINARY.SIZE = len(BINARY)).
//! Run: fuzz/run imap_message (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_imap_message::{Message, Section, SectionKind};

fuzz_target!(|raw: &[u8]| {
    let m = Message::parse(raw);
    let size = m.size();
    let full = m
        .section(&Section {
            part: vec![],
            kind: SectionKind::Full,
        })
        .unwrap_or_default();
    assert_eq!(full.len() as u64, size);
    let h = m
        .section(&Section {
            part: vec![],
            kind: SectionKind::Header,
        })
        .unwrap_or_default();
    let t = m
        .section(&Section {
            part: vec![],
            kind: SectionKind::Text,
        })
        .unwrap_or_default();
    assert_eq!(h.len() + t.len(), full.len());
    let _ = m.envelope();
    let _ = m.body_structure(true);
    let _ = m.body_structure(false);
    for p in [&[][..], &[1], &[2], &[1, 1], &[2, 1], &[1, 2, 1], &[0]] {
        for kind in [
            SectionKind::Full,
            SectionKind::Header,
            SectionKind::Text,
            SectionKind::Mime,
            SectionKind::HeaderFields(vec!["Subject".into(), "Content-Type".into()]),
            SectionKind::HeaderFieldsNot(vec!["From".into()]),
        ] {
            let _ = m.section(&Section {
                part: p.to_vec(),
                kind,
            });
        }
        if let Ok(Some(b)) = m.binary(p) {
            assert_eq!(m.binary_size(p), Ok(Some(b.len() as u64)));
        }
    }
    let _ = m.header_values("subject");
    let _ = m.header_contains("From", "é");
    let _ = m.sent_date();
    let _ = m.body_contains("Straße");
    let _ = m.text_contains("x");
});
