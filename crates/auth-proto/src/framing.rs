//! Line framing with a hard per-line limit.
//!
//! The auth protocols are LF-terminated lines. A [`LineFramer`] takes bytes as they arrive and
//! hands back complete lines. A line longer than the limit is reported once as
//! [`FrameError::LineTooLong`] and its bytes are dropped as they arrive (never buffered), so the
//! framer holds at most `max_line` bytes of a partial line plus the complete lines of the last
//! `feed` not yet pulled. A trailing CR before the LF is stripped; raw CR is never valid content
//! (it is tab-escaped), so this only makes the codec tolerant of CRLF peers.

use std::collections::VecDeque;
use std::fmt;

/// Dovecot's auth-client server input limit per line (`AUTH_CLIENT_MAX_LINE_LENGTH`).
pub const AUTH_CLIENT_MAX_LINE: usize = 16384;
/// Dovecot's auth-master/userdb server input limit (`MAX_INBUF_SIZE` in auth-master-connection.c).
pub const USERDB_SERVER_MAX_LINE: usize = 1024;
/// What Dovecot's userdb client accepts per reply line; also Exim's buffer for auth-client
/// lines, which is why servers keep their lines under it.
pub const CLIENT_MAX_LINE: usize = 8192;

/// Framing failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A line exceeded the limit; its bytes were discarded.
    LineTooLong {
        /// The configured limit in bytes (LF excluded).
        limit: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::LineTooLong { limit } => write!(f, "line longer than {limit} bytes"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits a byte stream into LF-terminated lines of bounded length.
#[derive(Debug, Clone)]
pub struct LineFramer {
    max_line: usize,
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf` (compacted lazily).
    start: usize,
    /// Dropping the rest of an overlong line until its LF.
    discarding: bool,
    /// Where in `buf` an overlong line was cut while buffering: reported when reading gets
    /// there, so the complete lines before it come out first.
    /// Positions of the cuts in order (one per `feed` at most).
    overflow_at: VecDeque<usize>,
}

impl LineFramer {
    /// A framer whose lines (without LF) may be at most `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineFramer {
            max_line,
            buf: Vec::new(),
            start: 0,
            discarding: false,
            overflow_at: VecDeque::new(),
        }
    }

    /// The per-line limit.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes held: complete lines not yet pulled plus a partial line.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Adds received bytes. Pull lines with [`LineFramer::next_line`] until it returns `None`
    /// before feeding again to keep memory at one read's worth.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.discarding {
            match data.iter().position(|&b| b == b'\n') {
                None => return,
                Some(pos) => {
                    self.discarding = false;
                    data = &data[pos + 1..];
                }
            }
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            // Every pending cut sits at the end of the data, which is now empty.
            self.overflow_at.iter_mut().for_each(|at| *at = 0);
        }
        self.buf.extend_from_slice(data);
        // Bound the trailing partial line: everything after the last LF.
        let tail_start = match self.buf[self.start..].iter().rposition(|&b| b == b'\n') {
            Some(pos) => self.start + pos + 1,
            None => self.start,
        };
        let tail_len = self.buf.len() - tail_start;
        if tail_len > self.max_line + 1 || (tail_len == self.max_line + 1 && !self.ends_cr()) {
            self.buf.truncate(tail_start);
            self.discarding = true;
            self.overflow_at.push_back(tail_start);
        }
    }

    fn ends_cr(&self) -> bool {
        self.buf.last() == Some(&b'\r')
    }

    /// The next complete line without its LF (and without a CR before it), or `None` when more
    /// input is needed.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        if self.overflow_at.front() == Some(&self.start) {
            self.overflow_at.pop_front();
            return Some(Err(FrameError::LineTooLong {
                limit: self.max_line,
            }));
        }
        let pending = &self.buf[self.start..];
        match pending.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let mut line = &pending[..pos];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let result = if line.len() > self.max_line {
                    Err(FrameError::LineTooLong {
                        limit: self.max_line,
                    })
                } else {
                    Ok(line.to_vec())
                };
                self.start += pos + 1;
                if self.start > self.max_line || self.start == self.buf.len() {
                    self.buf.drain(..self.start);
                    // Cuts lie at or after `start`: reading stops at a cut until it is reported.
                    let start = self.start;
                    self.overflow_at.iter_mut().for_each(|at| *at -= start);
                    self.start = 0;
                }
                Some(result)
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(f: &mut LineFramer) -> Vec<Result<Vec<u8>, FrameError>> {
        std::iter::from_fn(|| f.next_line()).collect()
    }

    #[test]
    fn splits_lines_across_feeds() {
        let mut f = LineFramer::new(100);
        f.feed(b"VERSION\t1\t2\nCP");
        assert_eq!(lines(&mut f), vec![Ok(b"VERSION\t1\t2".to_vec())]);
        f.feed(b"ID\t42\r\n");
        assert_eq!(lines(&mut f), vec![Ok(b"CPID\t42".to_vec())]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn exact_limit_is_fine() {
        let mut f = LineFramer::new(4);
        f.feed(b"abcd\nabcd\r\n");
        assert_eq!(
            lines(&mut f),
            vec![Ok(b"abcd".to_vec()), Ok(b"abcd".to_vec())]
        );
        f.feed(b"abcd");
        f.feed(b"\r");
        f.feed(b"\n");
        assert_eq!(lines(&mut f), vec![Ok(b"abcd".to_vec())]);
    }

    #[test]
    fn overlong_complete_line() {
        let mut f = LineFramer::new(4);
        f.feed(b"ok\nabcdef\nok2\n");
        assert_eq!(
            lines(&mut f),
            vec![
                Ok(b"ok".to_vec()),
                Err(FrameError::LineTooLong { limit: 4 }),
                Ok(b"ok2".to_vec())
            ]
        );
    }

    #[test]
    fn overlong_partial_line_is_not_buffered() {
        let mut f = LineFramer::new(8);
        f.feed(b"first\n0123456789");
        assert!(f.buffered() <= 8 + 6);
        for _ in 0..1000 {
            f.feed(&[b'x'; 1000]);
            assert!(f.buffered() <= 8 + 6);
        }
        assert_eq!(
            lines(&mut f),
            vec![
                Ok(b"first".to_vec()),
                Err(FrameError::LineTooLong { limit: 8 })
            ]
        );
        f.feed(b"yyy\nnext\n");
        assert_eq!(lines(&mut f), vec![Ok(b"next".to_vec())]);
    }

    #[test]
    fn two_cuts_without_pulling() {
        let mut f = LineFramer::new(3);
        f.feed(b"a\nlonglong");
        f.feed(b"\nb\nmorelong");
        f.feed(b"\nc\n");
        assert_eq!(
            lines(&mut f),
            vec![
                Ok(b"a".to_vec()),
                Err(FrameError::LineTooLong { limit: 3 }),
                Ok(b"b".to_vec()),
                Err(FrameError::LineTooLong { limit: 3 }),
                Ok(b"c".to_vec())
            ]
        );
    }

    #[test]
    fn byte_at_a_time() {
        let mut f = LineFramer::new(16);
        let mut out = Vec::new();
        for &b in b"A\tB\nC\n" {
            f.feed(&[b]);
            out.extend(lines(&mut f));
        }
        assert_eq!(out, vec![Ok(b"A\tB".to_vec()), Ok(b"C".to_vec())]);
    }
}
