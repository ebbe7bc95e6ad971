//! Framing: cuts the input into whole commands (a line plus the literals it announces) before
//! anything is parsed, with hard limits on line length, literal size and total command size.
//!
//! * `{n}` synchronizing literal: the framer stops with [`Frame::Continue`]; the caller sends
//!   `+ …` and feeds on. Over the limit: [`Frame::Rejected`] at once, nothing more is read for
//!   that command (the client waits for a `+` that never comes and sees the tagged reply).
//! * `{n+}` non-synchronizing (RFC 7888 LITERAL+ / LITERAL-): the bytes are coming whatever we
//!   say, so an oversized one is drained (counted, never stored) to the end of the command, then
//!   rejected.
//! * A line over the limit is drained to its end, then rejected; its last bytes are still looked
//!   at, so a literal it announces is drained too and never read as a command.

/// Limits of one framer; the session swaps them at login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (between literals), CRLF included.
    pub max_line: usize,
    /// Largest literal.
    pub max_literal: u64,
    /// Most bytes of one command held in memory (lines and literals).
    pub max_command: usize,
    /// Largest non-synchronizing literal when LITERAL+ is not offered (LITERAL-: 4096); `None`
    /// = LITERAL+ (any size up to `max_literal`).
    pub max_nonsync: Option<u64>,
}

impl Limits {
    /// Before authentication: short lines, small literals (enough for LOGIN and a SASL IR).
    pub const PRE_AUTH: Limits = Limits {
        max_line: 8 * 1024,
        max_literal: 4 * 1024,
        max_command: 16 * 1024,
        max_nonsync: Some(4096),
    };
}

/// Why a command was dropped by the framer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversize {
    Line,
    Literal,
    Command,
    /// A `{n+}` over 4096 without LITERAL+.
    NonSyncLiteral,
}

/// What the framer has for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole command: lines with CRLF and literal bytes inline, exactly as received.
    Command(Vec<u8>),
    /// A synchronizing literal of this size was announced and accepted: send a continuation.
    Continue(u64),
    /// The command was too big and has been dropped; `tag` as far as it could be read (for the
    /// tagged reply).
    Rejected { tag: Vec<u8>, why: Oversize },
}

#[derive(Debug)]
enum State {
    Line,
    /// Reading literal bytes into the command.
    Literal(u64),
    /// Discarding a literal's bytes; then the rest of the command.
    DrainLiteral(u64),
    /// Discarding up to the end of a line.
    DrainLine,
}

/// Bytes kept from a drained line, to see a literal announced at its end.
const TAIL: usize = 32;

/// Incremental command framer.
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    buf: Vec<u8>,
    /// Start of the current line in `buf`.
    line_start: usize,
    state: State,
    /// Set once the current command is being discarded.
    rejected: Option<Oversize>,
    /// Tag of the command being discarded.
    tag: Vec<u8>,
    tail: Vec<u8>,
}

impl Framer {
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            buf: Vec::new(),
            line_start: 0,
            state: State::Line,
            rejected: None,
            tag: Vec::new(),
            tail: Vec::new(),
        }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// True when no command is partly read.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && matches!(self.state, State::Line) && self.rejected.is_none()
    }

    /// Bytes held for the command in progress.
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Consumes input; returns how many bytes were used and a frame if one is complete. Stops
    /// after each frame (so the caller can act before reading on, e.g. STARTTLS).
    pub fn push(&mut self, input: &[u8]) -> (usize, Option<Frame>) {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match self.state {
                State::Literal(n) => {
                    let take = (n.min(rest.len() as u64)) as usize;
                    self.buf.extend_from_slice(&rest[..take]);
                    used += take;
                    let left = n - take as u64;
                    if left == 0 {
                        self.state = State::Line;
                        self.line_start = self.buf.len();
                    } else {
                        self.state = State::Literal(left);
                    }
                }
                State::DrainLiteral(n) => {
                    let take = (n.min(rest.len() as u64)) as usize;
                    used += take;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::DrainLine
                    } else {
                        State::DrainLiteral(left)
                    };
                    if left == 0 {
                        self.tail.clear();
                    }
                }
                State::DrainLine => {
                    let lf = rest.iter().position(|&b| b == b'\n');
                    let chunk = &rest[..lf.map_or(rest.len(), |i| i + 1)];
                    used += chunk.len();
                    self.tail.extend_from_slice(chunk);
                    if self.tail.len() > TAIL {
                        self.tail.drain(..self.tail.len() - TAIL);
                    }
                    if lf.is_some() {
                        let tail = std::mem::take(&mut self.tail);
                        if let Some((n, _)) = literal_at_end(&tail) {
                            // the client sends it only if non-synchronizing; a synchronizing
                            // one waits for our `+`, which never comes
                            if tail.ends_with(b"+}\r\n") || tail.ends_with(b"+}\n") {
                                self.state = State::DrainLiteral(n);
                                continue;
                            }
                        }
                        return (used, Some(self.finish_reject()));
                    }
                }
                State::Line => {
                    let lf = rest.iter().position(|&b| b == b'\n');
                    let chunk = &rest[..lf.map_or(rest.len(), |i| i + 1)];
                    let line_len = self.buf.len() - self.line_start + chunk.len();
                    if line_len > self.limits.max_line
                        || self.buf.len() + chunk.len() > self.limits.max_command
                    {
                        let why = if line_len > self.limits.max_line {
                            Oversize::Line
                        } else {
                            Oversize::Command
                        };
                        let head: Vec<u8> =
                            self.buf.iter().chain(chunk).take(65).copied().collect();
                        self.buf = head;
                        self.start_reject(why);
                        self.buf.clear();
                        self.tail.clear();
                        self.state = State::DrainLine;
                        continue;
                    }
                    self.buf.extend_from_slice(chunk);
                    used += chunk.len();
                    if lf.is_none() {
                        continue;
                    }
                    let line = &self.buf[self.line_start..];
                    match literal_at_end(line) {
                        None => {
                            let cmd = std::mem::take(&mut self.buf);
                            self.line_start = 0;
                            return (used, Some(Frame::Command(cmd)));
                        }
                        Some((n, sync)) => {
                            let too_big = if n > self.limits.max_literal {
                                Some(Oversize::Literal)
                            } else if self.buf.len() as u64 + n > self.limits.max_command as u64 {
                                Some(Oversize::Command)
                            } else if !sync && self.limits.max_nonsync.is_some_and(|m| n > m) {
                                Some(Oversize::NonSyncLiteral)
                            } else {
                                None
                            };
                            if let Some(why) = too_big {
                                self.start_reject(why);
                                self.buf.clear();
                                self.line_start = 0;
                                if sync {
                                    return (used, Some(self.finish_reject()));
                                }
                                self.state = State::DrainLiteral(n);
                                continue;
                            }
                            self.state = State::Literal(n);
                            if n == 0 {
                                self.state = State::Line;
                                self.line_start = self.buf.len();
                            }
                            if sync {
                                return (used, Some(Frame::Continue(n)));
                            }
                        }
                    }
                }
            }
        }
        (used, None)
    }

    fn start_reject(&mut self, why: Oversize) {
        if self.rejected.is_none() {
            self.rejected = Some(why);
            let t: Vec<u8> = self
                .buf
                .iter()
                .take_while(|&&b| b != b' ' && b != b'\r' && b != b'\n')
                .take(64)
                .copied()
                .collect();
            self.tag = t;
        }
    }

    fn finish_reject(&mut self) -> Frame {
        self.state = State::Line;
        self.line_start = 0;
        self.buf.clear();
        self.tail.clear();
        let why = self.rejected.take().unwrap_or(Oversize::Line);
        Frame::Rejected {
            tag: std::mem::take(&mut self.tag),
            why,
        }
    }
}

/// `{n}` / `{n+}` / `~{n}` at the end of a line (before CRLF or LF): the size and whether it is
/// synchronizing.
pub fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, sync) = match line.strip_suffix(b"+") {
        Some(l) => (l, false),
        None => (line, true),
    };
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    Some((n, sync))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_line: 100,
            max_literal: 50,
            max_command: 200,
            max_nonsync: Some(20),
        }
    }

    #[test]
    fn simple_and_pipelined() {
        let mut f = Framer::new(limits());
        let input = b"a NOOP\r\nb CAPABILITY\r\n";
        let (n, fr) = f.push(input);
        assert_eq!(fr, Some(Frame::Command(b"a NOOP\r\n".to_vec())));
        let (m, fr) = f.push(&input[n..]);
        assert_eq!(n + m, input.len());
        assert_eq!(fr, Some(Frame::Command(b"b CAPABILITY\r\n".to_vec())));
    }

    #[test]
    fn sync_literal_continues() {
        let mut f = Framer::new(limits());
        let (n, fr) = f.push(b"a LOGIN {3}\r\nbob x\r\n");
        assert_eq!(fr, Some(Frame::Continue(3)));
        assert_eq!(n, 13);
        let (_, fr) = f.push(b"bob x\r\n");
        assert_eq!(
            fr,
            Some(Frame::Command(b"a LOGIN {3}\r\nbob x\r\n".to_vec()))
        );
    }

    #[test]
    fn nonsync_literal_inline() {
        let mut f = Framer::new(limits());
        let (_, fr) = f.push(b"a LOGIN {3+}\r\nbob {1+}\r\nx\r\n");
        assert_eq!(
            fr,
            Some(Frame::Command(
                b"a LOGIN {3+}\r\nbob {1+}\r\nx\r\n".to_vec()
            ))
        );
    }

    #[test]
    fn oversized_sync_literal_rejected_without_reading() {
        let mut f = Framer::new(limits());
        let (n, fr) = f.push(b"t1 APPEND INBOX {5000}\r\nnext");
        assert_eq!(n, 24);
        assert_eq!(
            fr,
            Some(Frame::Rejected {
                tag: b"t1".to_vec(),
                why: Oversize::Literal
            })
        );
        assert!(f.is_idle());
    }

    #[test]
    fn oversized_nonsync_literal_drained() {
        let mut f = Framer::new(limits());
        let mut input = b"t1 APPEND INBOX {30+}\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 30]);
        input.extend_from_slice(b"\r\nt2 NOOP\r\n");
        let (n, fr) = f.push(&input);
        assert_eq!(
            fr,
            Some(Frame::Rejected {
                tag: b"t1".to_vec(),
                why: Oversize::NonSyncLiteral
            })
        );
        let (_, fr) = f.push(&input[n..]);
        assert_eq!(fr, Some(Frame::Command(b"t2 NOOP\r\n".to_vec())));
    }

    #[test]
    fn long_line_drained_with_its_literal() {
        let mut f = Framer::new(limits());
        let mut input = b"t1 X ".to_vec();
        input.extend_from_slice(&[b'a'; 300]);
        input.extend_from_slice(b" {5+}\r\n12345\r\nt2 NOOP\r\n");
        let mut used = 0;
        let mut frames = Vec::new();
        while used < input.len() {
            let (n, fr) = f.push(&input[used..]);
            used += n;
            frames.extend(fr);
        }
        assert_eq!(
            frames,
            vec![
                Frame::Rejected {
                    tag: b"t1".to_vec(),
                    why: Oversize::Line
                },
                Frame::Command(b"t2 NOOP\r\n".to_vec())
            ]
        );
    }

    #[test]
    fn byte_by_byte() {
        let mut f = Framer::new(limits());
        let input = b"a LOGIN {3+}\r\nbob pw\r\n";
        let mut out = None;
        for b in input.iter() {
            let (n, fr) = f.push(std::slice::from_ref(b));
            assert_eq!(n, 1);
            if fr.is_some() {
                out = fr;
            }
        }
        assert_eq!(out, Some(Frame::Command(input.to_vec())));
    }
}
