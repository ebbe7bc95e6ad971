//! Message content on the wire: canonical CRLF line ends (a bare LF or bare CR becomes CRLF,
//! RFC 5321 §2.3.8) and, for DATA, dot-stuffing plus the `.` terminator (§4.5.2). BDAT content
//! is canonicalized but never stuffed.

/// Appends `content` to `out` with canonical CRLF line ends; the result ends in CRLF unless the
/// content is empty. With `stuff`, a line starting with `.` gets one more, and `.\r\n` follows.
pub fn encode_content(content: &[u8], stuff: bool, out: &mut Vec<u8>) {
    out.reserve(content.len() + content.len() / 64 + 5);
    let mut at_line_start = true;
    let mut i = 0;
    while i < content.len() {
        let c = content[i];
        if at_line_start && stuff && c == b'.' {
            out.push(b'.');
        }
        match c {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if content.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(c);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    if stuff {
        out.extend_from_slice(b".\r\n");
    }
}

/// Size of `content` after [`encode_content`] without stuffing (what `SIZE=` announces).
pub fn canonical_len(content: &[u8]) -> u64 {
    let mut n: u64 = 0;
    let mut i = 0;
    let mut at_line_start = true;
    while i < content.len() {
        match content[i] {
            b'\r' => {
                n += 2;
                if content.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            b'\n' => {
                n += 2;
                at_line_start = true;
            }
            _ => {
                n += 1;
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        n += 2;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(c: &[u8], stuff: bool) -> Vec<u8> {
        let mut out = Vec::new();
        encode_content(c, stuff, &mut out);
        out
    }

    #[test]
    fn stuffing_and_line_ends() {
        assert_eq!(enc(b"a\r\n.b\r\n..\r\n", true), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(enc(b".\nx\ry", true), b"..\r\nx\r\ny\r\n.\r\n");
        assert_eq!(enc(b"", true), b".\r\n");
        assert_eq!(enc(b".x", false), b".x\r\n");
    }

    /// The dot-unstuffing a server does: what comes back must equal the canonical content.
    fn unstuff(wire: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for line in wire.split_inclusive(|&b| b == b'\n') {
            if line == b".\r\n" {
                return Some(out);
            }
            let line = line.strip_prefix(b".").unwrap_or(line);
            out.extend_from_slice(line);
        }
        None
    }

    proptest::proptest! {
        #[test]
        fn server_sees_canonical_content(
            c in proptest::collection::vec(
                proptest::sample::select(vec![b'.', b'\r', b'\n', b'a', 0u8]), 0..200)
        ) {
            let wire = enc(&c, true);
            let back = unstuff(&wire).unwrap();
            proptest::prop_assert_eq!(back.clone(), enc(&c, false));
            proptest::prop_assert_eq!(back.len() as u64, canonical_len(&c));
            // No bare CR or LF on the wire.
            for (i, &b) in wire.iter().enumerate() {
                if b == b'\n' { proptest::prop_assert!(i > 0 && wire[i - 1] == b'\r'); }
                if b == b'\r' { proptest::prop_assert_eq!(wire.get(i + 1), Some(&b'\n')); }
            }
        }
    }
}
