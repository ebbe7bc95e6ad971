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

    /// Encodes the next chunk of the stored message. Runs of line content are copied whole:
    /// only CR, LF and a `.` at the start of a line need a decision.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.reserve(data.len() + data.len() / 32);
        let mut rest = data;
        while !rest.is_empty() {
            if self.done {
                return;
            }
            if !self.pending_cr {
                let run = line_run(rest);
                if run > 0 {
                    self.content(rest[0], out);
                    out.extend_from_slice(&rest[1..run]);
                    rest = &rest[run..];
                    continue;
                }
            }
            let b = rest[0];
            rest = &rest[1..];
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

/// Length of the leading run of `data` without CR or LF. Tests 8 bytes per step (SWAR: a byte
/// equal to CR or LF becomes zero after the XOR, and the zero-byte test flags the first one
/// exactly; later flags may be false, so only the lowest is used).
fn line_run(data: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let mut at = 0;
    for chunk in data.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let hits = zero_byte(x ^ (LO * u64::from(b'\n'))) | zero_byte(x ^ (LO * u64::from(b'\r')));
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let is_eol = |b: &u8| *b == b'\n' || *b == b'\r';
    at + data[at..]
        .iter()
        .position(is_eol)
        .unwrap_or(data.len() - at)
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

    /// The encoding byte by byte, as RFC 1939 states it: the reference for the fast path.
    fn reference(data: &[u8], top: Option<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut lines, mut body_left) = (data.split(|&b| b == b'\n').peekable(), top);
        let mut in_body = false;
        while let Some(line) = lines.next() {
            let last = lines.peek().is_none();
            let line = if last {
                line
            } else {
                line.strip_suffix(b"\r").unwrap_or(line)
            };
            if last && line.is_empty() {
                break;
            }
            if in_body && body_left == Some(0) {
                break;
            }
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            if in_body {
                body_left = body_left.map(|n| n.saturating_sub(1));
            } else if line.is_empty() {
                in_body = true;
            }
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    proptest::proptest! {
        #[test]
        fn fast_path_equals_reference(
            data in proptest::collection::vec(
                proptest::sample::select(&b"ab.\r\n"[..]), 0..300),
            chunk in 1usize..80,
            top in proptest::option::of(0u64..5),
        ) {
            let mut out = Vec::new();
            let mut e = Encoder::new(top);
            for c in data.chunks(chunk) {
                e.push(c, &mut out);
            }
            e.finish(&mut out);
            proptest::prop_assert_eq!(out, reference(&data, top));
        }
    }

    proptest::proptest! {
        #[test]
        fn line_run_finds_the_first_line_end(data in proptest::collection::vec(
            proptest::sample::select(&[0u8, 1, 9, 10, 11, 12, 13, 14, 0x80, 0x8a, 0xff, b'x'][..]),
            0..40,
        )) {
            let want = data.iter().position(|&b| b == b'\n' || b == b'\r').unwrap_or(data.len());
            proptest::prop_assert_eq!(line_run(&data), want);
        }
    }

    #[test]
    fn line_runs() {
        assert_eq!(line_run(b""), 0);
        assert_eq!(line_run(b"\nabc"), 0);
        assert_eq!(line_run(b"abc"), 3);
        let long = [b'x'; 100];
        assert_eq!(line_run(&long), 100);
        for at in 0..100 {
            for eol in [b'\r', b'\n'] {
                let mut v = long.to_vec();
                v[at] = eol;
                assert_eq!(line_run(&v), at);
            }
        }
    }

    #[test]
    fn long_lines_and_dots_across_blocks() {
        let line = format!(".{}\n", "y".repeat(70));
        let m = format!("A: 1\n\n{line}{line}\r\n{}\r", "z".repeat(40));
        let (y, z) = ("y".repeat(70), "z".repeat(40));
        let want = format!("A: 1\r\n\r\n..{y}\r\n..{y}\r\n\r\n{z}\r\r\n.\r\n");
        assert_eq!(String::from_utf8(enc(m.as_bytes(), None)).unwrap(), want);
    }

    #[test]
    fn size_matches_sent_octets() {
        for m in [&b"A: b\n\nx\n"[..], b"A: b\r\n\r\nx\r\n", b"a\nb\r\nc\n"] {
            let sent = enc(m, None);
            assert_eq!(wire_size(m), sent.len() as u64 - 3);
        }
    }
}
