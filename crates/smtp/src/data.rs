//! The DATA body decoder: finds the end of data, removes dot-stuffing and caps the size.
//!
//! Only `CRLF . CRLF` ends the data (RFC 5321 §4.1.1.4; Postfix's smuggling fix): never
//! `LF . LF`, `LF . CRLF`, `CRLF . LF` or `CR . CR`. A bare CR is content. A bare LF is a line
//! ending for dot handling and is stored as CRLF (Postfix ≥ 3.9 `smtpd_forbid_bare_newline =
//! normalize`); the decoder reports that it saw one so the session can reject the message when
//! configured to. A lone "." line that does not end the data (it followed a bare LF, or ended
//! with a bare LF) is kept as ".", so the attempt stays visible in the stored message.

/// Where the decoder is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line; `crlf` = the previous line ended with CRLF (not a bare LF).
    LineStart { crlf: bool },
    /// Saw "." at the start of a line.
    Dot { crlf: bool },
    /// Saw ".\r" at the start of a line.
    DotCr { crlf: bool },
    /// Inside a line.
    Mid,
    /// Saw "\r" inside a line.
    Cr,
}

/// Streaming DATA decoder. Feed it input; it appends decoded bytes to its body until the cap,
/// counting (not storing) the rest, and says where the end-of-data marker ended.
#[derive(Debug)]
pub(crate) struct DotDecoder {
    state: State,
    body: Vec<u8>,
    /// Decoded bytes seen, stored or not.
    size: u64,
    max_size: u64,
    pub(crate) bare_lf: bool,
}

impl DotDecoder {
    pub(crate) fn new(max_size: u64) -> Self {
        DotDecoder {
            // The DATA command's CRLF counts as the line ending before the first line.
            state: State::LineStart { crlf: true },
            body: Vec::new(),
            size: 0,
            max_size,
            bare_lf: false,
        }
    }

    pub(crate) fn oversize(&self) -> bool {
        self.size > self.max_size
    }

    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size <= self.max_size {
            self.body.extend_from_slice(bytes);
        }
    }

    /// Consumes input. Returns `(used, done)`: how many bytes of `input` were consumed and
    /// whether the end-of-data line was among them (then `used` ends right after it).
    pub(crate) fn decode(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Mid => {
                    // Fast path: copy the run up to the next CR or LF.
                    let run = input[i..]
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(input.len() - i);
                    if run > 0 {
                        self.emit(&input[i..i + run]);
                        i += run;
                        continue;
                    }
                    i += 1;
                    if b == b'\r' {
                        self.state = State::Cr;
                    } else {
                        self.bare_line_feed();
                    }
                }
                State::Cr => {
                    i += 1;
                    match b {
                        b'\n' => {
                            self.emit(b"\r\n");
                            self.state = State::LineStart { crlf: true };
                        }
                        // A bare CR is content; the next CR may start a CRLF.
                        b'\r' => self.emit(b"\r"),
                        _ => {
                            self.emit(b"\r");
                            self.emit(&[b]);
                            self.state = State::Mid;
                        }
                    }
                }
                State::LineStart { crlf } => {
                    if b == b'.' {
                        i += 1;
                        self.state = State::Dot { crlf };
                    } else {
                        self.state = State::Mid;
                    }
                }
                State::Dot { crlf } => match b {
                    b'\r' => {
                        i += 1;
                        self.state = State::DotCr { crlf };
                    }
                    b'\n' => {
                        i += 1;
                        // ".<LF>": not an end; keep the line as ".".
                        self.emit(b".");
                        self.bare_line_feed();
                    }
                    // Dot-stuffed line: drop the first dot, the byte is content.
                    _ => self.state = State::Mid,
                },
                State::DotCr { crlf } => match b {
                    b'\n' if crlf => return (i + 1, true),
                    b'\n' => {
                        i += 1;
                        self.emit(b".\r\n");
                        self.state = State::LineStart { crlf: true };
                    }
                    // ".\r" then something else: an unstuffed line starting with a CR that is
                    // still pending; the Cr state decides what it is.
                    _ => self.state = State::Cr,
                },
            }
        }
        (i, false)
    }

    fn bare_line_feed(&mut self) {
        self.bare_lf = true;
        self.emit(b"\r\n");
        self.state = State::LineStart { crlf: false };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Vec<u8>, Option<usize>, bool) {
        let mut d = DotDecoder::new(1 << 20);
        let (used, done) = d.decode(input);
        let bare = d.bare_lf;
        (d.into_body(), done.then_some(used), bare)
    }

    #[test]
    fn ends_only_on_crlf_dot_crlf() {
        assert_eq!(run(b".\r\n"), (vec![], Some(3), false));
        assert_eq!(run(b"a\r\n.\r\nQUIT"), (b"a\r\n".to_vec(), Some(6), false));
        assert_eq!(run(b"a\n.\n").1, None);
        assert_eq!(run(b"a\n.\r\n").1, None);
        assert_eq!(run(b"a\r\n.\n").1, None);
        assert_eq!(run(b"a\r.\r").1, None);
        assert_eq!(run(b"a\r.\r\n").1, None);
    }

    #[test]
    fn unstuffs_and_normalizes() {
        let (body, end, bare) = run(b"..x\r\n...\r\nb\nc\r\n.\r\n");
        assert_eq!(body, b".x\r\n..\r\nb\r\nc\r\n");
        assert_eq!(end, Some(18));
        assert!(bare);
        // The lone dot after a bare LF is kept, and the later CRLF.CRLF ends the data.
        let (body, end, _) = run(b"a\n.\r\nb\r\n.\r\n");
        assert_eq!(body, b"a\r\n.\r\nb\r\n");
        assert!(end.is_some());
        // Bare CRs are content.
        assert_eq!(run(b"a\rb\r\r\n.\r\n").0, b"a\rb\r\r\n");
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let input: &[u8] = b"x\r\n..y\r\n.\rz\n.\n\r\r\n.\r\n";
        let mut d = DotDecoder::new(1 << 20);
        let mut end = None;
        for (k, b) in input.iter().enumerate() {
            let (used, done) = d.decode(std::slice::from_ref(b));
            assert_eq!(used, 1);
            if done {
                end = Some(k + 1);
                break;
            }
        }
        assert_eq!(end, Some(input.len()));
        assert_eq!(d.into_body(), run(input).0);
    }

    #[test]
    fn caps_size_but_finds_end() {
        let mut d = DotDecoder::new(4);
        let (used, done) = d.decode(b"0123456789\r\n.\r\n");
        assert!(done && used == 15 && d.oversize());
        assert!(d.into_body().len() <= 4);
    }
}
