//! Message bytes as POP3 sends them (RFC 1939 §3, §7): every line ends in CRLF whatever the file
//! uses (Dovecot stores LF), a leading `.` is doubled, and the multi-line response ends with
//! `.` CRLF. `TOP` sends the header, the blank line and the first n body lines.

/// Appends the RETR/TOP body of `data` (without the status line) and the terminating `.` line.
/// `body_lines`: `None` for the whole message (RETR), `Some(n)` for TOP.
pub fn encode_message(data: &[u8], body_lines: Option<u64>, out: &mut Vec<u8>) {
    out.reserve(data.len() + data.len() / 32 + 8);
    let mut e = Encoder::new(body_lines);
    e.push(data, out);
    e.finish(out);
}

/// The same encoding fed in chunks of any size, so a big message is sent without holding it
/// (or its encoded copy) in memory.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// Nothing of the current line was written yet.
    line_start: bool,
    /// A CR was read and the next byte decides whether it ends the line.
    pending_cr: bool,
    /// The blank line after the header was passed.
    in_body: bool,
    /// TOP: body lines still to send.
    body_lines: Option<u64>,
    /// TOP has sent all it should; the rest is dropped.
    done: bool,
}

impl Encoder {
    pub fn new(body_lines: Option<u64>) -> Self {
        Encoder {
            line_start: true,
            pending_cr: false,
            in_body: false,
            body_lines,
            done: false,
        }
    }

    /// True when TOP needs no more input.
    pub fn done(&self) -> bool {
        self.done
    }

    fn content(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.line_start {
            if b == b'.' {
                out.push(b'.');
            }
            self.line_start = false;
        }
        out.push(b);
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        let empty = self.line_start;
        out.extend_from_slice(b"\r\n");
        self.line_start = true;
        if self.in_body {
            if let Some(n) = self.body_lines.as_mut() {
                *n = n.saturating_sub(1);
            }
        } else if empty {
            self.in_body = true;
        }
        if self.in_body && self.body_lines == Some(0) {
            self.done = true;
        }
    }

    /// Encodes the next chunk of the stored message.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if self.done {
                return;
            }
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.end_line(out);
                    continue;
                }
                // A CR inside a line is content.
                self.content(b'\r', out);
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.end_line(out),
                _ => self.content(b, out),
            }
        }
    }

    /// Ends the message: a last line without line end gets CRLF, then the `.` line.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if !self.done {
            if self.pending_cr {
                self.pending_cr = false;
                self.content(b'\r', out);
            }
            if !self.line_start {
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b".\r\n");
    }
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
    fn chunked_equals_whole() {
        let m: &[u8] = b"A: 1\r\nB: 2\n\n.l1\r\r\nl2\rx\n..\nl4\r";
        for top in [None, Some(0), Some(1), Some(2), Some(9)] {
            let whole = enc(m, top);
            for size in 1..m.len() {
                let mut out = Vec::new();
                let mut e = Encoder::new(top);
                for c in m.chunks(size) {
                    e.push(c, &mut out);
                }
                e.finish(&mut out);
                assert_eq!(out, whole, "top {top:?} chunk {size}");
            }
        }
    }

    #[test]
    fn size_matches_sent_octets() {
        for m in [&b"A: b\n\nx\n"[..], b"A: b\r\n\r\nx\r\n", b"a\nb\r\nc\n"] {
            let sent = enc(m, None);
            assert_eq!(wire_size(m), sent.len() as u64 - 3);
        }
    }
}
