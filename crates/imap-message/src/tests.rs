//! Unit tests of the public API on small messages (the byte-exact Dovecot comparisons are in
//! tests/dovecot_golden.rs).

use super::*;

const SIMPLE: &[u8] = b"From: A <a@x.org>\nTo: b@y.org\nSubject: hi\n\
    Date: Thu, 1 Jan 1970 00:00:00 +0000\nMessage-ID: <1@x>\n\nline1\nline2\n";

fn sec(part: &[u32], kind: SectionKind) -> Section {
    Section {
        part: part.to_vec(),
        kind,
    }
}

#[test]
fn simple_message() {
    let m = Message::parse(SIMPLE);
    assert_eq!(m.size(), SIMPLE.len() as u64 + 8);
    assert_eq!(
        String::from_utf8_lossy(&m.envelope()),
        "(\"Thu, 1 Jan 1970 00:00:00 +0000\" \"hi\" ((\"A\" NIL \"a\" \"x.org\")) \
         ((\"A\" NIL \"a\" \"x.org\")) ((\"A\" NIL \"a\" \"x.org\")) ((NIL NIL \"b\" \"y.org\")) \
         NIL NIL NIL \"<1@x>\")"
    );
    assert_eq!(
        String::from_utf8_lossy(&m.body_structure(false)),
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)"
    );
    assert_eq!(
        m.section(&sec(&[], SectionKind::Text)),
        Some(b"line1\r\nline2\r\n".to_vec())
    );
    assert_eq!(
        m.section(&sec(&[1], SectionKind::Full)),
        Some(b"line1\r\nline2\r\n".to_vec())
    );
    assert_eq!(m.section(&sec(&[2], SectionKind::Full)), None);
    assert_eq!(
        m.section(&sec(
            &[],
            SectionKind::HeaderFields(vec!["subject".into(), "TO".into()])
        )),
        Some(b"To: b@y.org\r\nSubject: hi\r\n\r\n".to_vec())
    );
    assert_eq!(m.sent_date(), Some((0, 0)));
    assert!(m.body_contains("LINE2"));
    assert!(!m.body_contains("subject"));
    assert!(m.text_contains("SUBJECT: H"));
    assert_eq!(m.header_values("to"), vec!["b@y.org".to_string()]);
}

#[test]
fn binary_decoding() {
    let raw: &[u8] = b"Content-Type: multipart/mixed; boundary=x\n\n\
        --x\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n\
        --x\nContent-Transfer-Encoding: x-uu\n\nzz\n--x--\n";
    let m = Message::parse(raw);
    assert_eq!(m.binary(&[1]), Ok(Some(b"hello".to_vec())));
    assert_eq!(m.binary_size(&[1]), Ok(Some(5)));
    assert_eq!(m.binary(&[2]), Err(BinaryError::UnknownCte));
    assert_eq!(m.binary(&[3]), Ok(None));
}
