//! Message bytes as POP3 sends them (RFC 1939 §3, §7): every line ends in CRLF whatever the file
//! uses (Dovecot stores LF), a leading `.` is doubled, and the multi-line response ends with
//! `.` CRLF. `TOP` sends the header, the blank line and the first n body lines.

/// Appends the RETR/TOP body of `data` (without the status line) and the terminating `.` line.
/// `body_lines`: `None` for the whole message (RETR), `Some(n)` for TOP.
pub fn encode_message(data: &[u8], body_lines: Option<u64>, out: &mut Vec<u8>) {
    out.reserve(data.len() + data.len() / 32 + 8);
    let mut in_body = false;
    let mut body_sent = 0u64;
    let mut rest = data;
    while !rest.is_empty() {
        if in_body && body_lines.is_some_and(|n| body_sent >= n) {
            break;
        }
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        if in_body {
            body_sent += 1;
        } else if line.is_empty() {
            in_body = true;
        }
        rest = next;
    }
    out.extend_from_slice(b".\r\n");
}

/// RFC 822 size of `data`: octets with every line ending counted as CRLF, which is what
/// [`encode_message`] sends before dot-stuffing (Dovecot's "virtual size").
pub fn wire_size(data: &[u8]) -> u64 {
    let mut n = data.len() as u64;
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(d: &[u8], top: Option<u64>) -> Vec<u8> {
        let mut v = Vec::new();
        encode_message(d, top, &mut v);
        v
    }

    #[test]
    fn lf_to_crlf_and_dots() {
        assert_eq!(
            enc(b"A: b\n\n.x\n..\nend\n", None),
            b"A: b\r\n\r\n..x\r\n...\r\nend\r\n.\r\n"
        );
        assert_eq!(
            enc(b"A: b\r\n\r\nno newline", None),
            b"A: b\r\n\r\nno newline\r\n.\r\n"
        );
        assert_eq!(enc(b"", None), b".\r\n");
    }

    #[test]
    fn top() {
        let m = b"A: 1\nB: 2\n\nl1\nl2\nl3\n";
        assert_eq!(enc(m, Some(0)), b"A: 1\r\nB: 2\r\n\r\n.\r\n");
        assert_eq!(enc(m, Some(2)), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n.\r\n");
        assert_eq!(enc(m, Some(99)), enc(m, None));
        assert_eq!(enc(b"A: 1\n", Some(0)), b"A: 1\r\n.\r\n");
    }

    #[test]
    fn size_matches_sent_octets() {
        for m in [&b"A: b\n\nx\n"[..], b"A: b\r\n\r\nx\r\n", b"a\nb\r\nc\n"] {
            let sent = enc(m, None);
            assert_eq!(wire_size(m), sent.len() as u64 - 3);
        }
    }
}
