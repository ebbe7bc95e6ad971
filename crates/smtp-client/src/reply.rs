//! Server replies as a client reads them (RFC 5321 §4.2): `ddd-text` continuation lines, a final
//! `ddd text` (or bare `ddd`) line, an optional RFC 3463 enhanced status code at the start of the
//! text. Framing has hard limits: a line longer than [`MAX_LINE`] or a reply with more than
//! [`MAX_LINES`] lines is a protocol error, never unbounded memory.

use std::fmt;

/// Longest reply line we accept, CRLF included (RFC 5321 says 512; servers send more).
pub const MAX_LINE: usize = 4096;
/// Most lines in one multi-line reply (EHLO answers have ~20).
pub const MAX_LINES: usize = 256;

/// One complete reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    /// `class.subject.detail` when the first line carries one matching the code's class.
    status: Option<String>,
    /// Text of each line, without the code, separator and enhanced status.
    lines: Vec<String>,
}

impl Reply {
    /// A reply made up by the client itself (e.g. for a connection error report).
    pub fn new(code: u16, status: Option<&str>, text: &str) -> Reply {
        Reply {
            code,
            status: status.map(str::to_owned),
            lines: vec![text.to_owned()],
        }
    }
    pub fn code(&self) -> u16 {
        self.code
    }
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
    /// The enhanced status to report (Postfix's `dsn=`): the server's, or one derived from the
    /// reply class (`2.0.0`, `4.0.0`, `5.0.0`).
    pub fn dsn(&self) -> String {
        match &self.status {
            Some(s) => s.clone(),
            None => format!("{}.0.0", (self.code / 100).clamp(2, 5)),
        }
    }
}

/// `250 2.0.0 text text2` — the form Postfix puts in parentheses after `status=`.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(s) = &self.status {
            write!(f, " {s}")?;
        }
        for l in &self.lines {
            if !l.is_empty() {
                write!(f, " {l}")?;
            }
        }
        Ok(())
    }
}

/// Why the server's bytes are not a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// A line over [`MAX_LINE`] octets.
    LineTooLong,
    /// More than [`MAX_LINES`] lines in one reply.
    TooManyLines,
    /// Not `ddd[ -]text`, a code outside 200..=599, or continuation lines with different codes.
    Syntax(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::LineTooLong => write!(f, "server reply line too long"),
            ReplyError::TooManyLines => write!(f, "server reply has too many lines"),
            ReplyError::Syntax(l) => write!(f, "malformed server reply: {l}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Incremental reply reader: [`ReplyParser::feed`] bytes as they arrive, then take complete
/// replies with [`ReplyParser::next_reply`]. After an error the parser stays failed.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    /// Lines of the reply being assembled: (code, text).
    pending: Vec<(u16, String)>,
    failed: Option<ReplyError>,
}

impl ReplyParser {
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes fed but not yet part of a returned reply (a server that sent more than asked).
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty() || !self.pending.is_empty()
    }

    /// The next complete reply, `None` when more input is needed.
    pub fn next_reply(&mut self) -> Option<Result<Reply, ReplyError>> {
        if let Some(e) = &self.failed {
            return Some(Err(e.clone()));
        }
        loop {
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE {
                    return Some(Err(self.fail(ReplyError::LineTooLong)));
                }
                return None;
            };
            if nl + 1 > MAX_LINE {
                return Some(Err(self.fail(ReplyError::LineTooLong)));
            }
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let (code, last, rest) = match split_line(&text) {
                Some(v) => v,
                None => return Some(Err(self.fail(ReplyError::Syntax(truncate(&text))))),
            };
            if let Some((first, _)) = self.pending.first() {
                if *first != code {
                    return Some(Err(self.fail(ReplyError::Syntax(truncate(&text)))));
                }
            }
            if self.pending.len() >= MAX_LINES {
                return Some(Err(self.fail(ReplyError::TooManyLines)));
            }
            self.pending.push((code, rest.to_owned()));
            if last {
                let lines: Vec<String> = self.pending.drain(..).map(|(_, t)| t).collect();
                return Some(Ok(build(code, lines)));
            }
        }
    }

    fn fail(&mut self, e: ReplyError) -> ReplyError {
        self.buf = Vec::new();
        self.pending = Vec::new();
        self.failed = Some(e.clone());
        e
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// `(code, is_last, text)` of one line.
fn split_line(line: &str) -> Option<(u16, bool, &str)> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code: u16 = line.get(..3)?.parse().ok()?;
    if !(200..=599).contains(&code) {
        return None;
    }
    match b.get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, line.get(4..)?)),
        Some(b'-') => Some((code, false, line.get(4..)?)),
        Some(_) => None,
    }
}

/// Splits an RFC 3463 status off the first line when its class matches the reply code.
fn build(code: u16, mut lines: Vec<String>) -> Reply {
    let mut status = None;
    if let Some(first) = lines.first_mut() {
        let (word, rest) = first.split_once(' ').unwrap_or((first.as_str(), ""));
        if is_status(word, code) {
            status = Some(word.to_owned());
            *first = rest.to_owned();
        }
    }
    Reply {
        code,
        status,
        lines,
    }
}

fn is_status(word: &str, code: u16) -> bool {
    let mut parts = word.split('.');
    let (Some(c), Some(s), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let num = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    num(c, 1) && num(s, 3) && num(d, 3) && c.as_bytes()[0] == b'0' + (code / 100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Result<Reply, ReplyError>> {
        let mut p = ReplyParser::new();
        p.feed(input);
        let mut out = Vec::new();
        while let Some(r) = p.next_reply() {
            let stop = r.is_err();
            out.push(r);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn single_and_multi_line() {
        let r =
            parse_all(b"220 mx.test ESMTP\r\n250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
        assert_eq!(r.len(), 2);
        let greet = r[0].as_ref().unwrap();
        assert_eq!(greet.code(), 220);
        assert_eq!(greet.lines(), ["mx.test ESMTP"]);
        let ehlo = r[1].as_ref().unwrap();
        assert_eq!(ehlo.lines(), ["mx.test", "PIPELINING", "SIZE 100"]);
    }

    #[test]
    fn enhanced_status_only_when_class_matches() {
        let r = parse_all(b"550 5.1.1 <x@y> unknown\r\n250 4.0.0 odd\r\n354\r\n");
        let a = r[0].as_ref().unwrap();
        assert_eq!(a.status(), Some("5.1.1"));
        assert_eq!(a.to_string(), "550 5.1.1 <x@y> unknown");
        let b = r[1].as_ref().unwrap();
        assert_eq!(b.status(), None);
        assert_eq!(b.dsn(), "2.0.0");
        assert_eq!(r[2].as_ref().unwrap().code(), 354);
    }

    #[test]
    fn split_across_feeds() {
        let mut p = ReplyParser::new();
        p.feed(b"250-a\r");
        assert!(p.next_reply().is_none());
        p.feed(b"\n250 b\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().lines(), ["a", "b"]);
        assert!(!p.has_buffered());
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse_all(b"hello\r\n")[0],
            Err(ReplyError::Syntax(_))
        ));
        assert!(matches!(
            parse_all(b"250-a\r\n251 b\r\n")[0],
            Err(ReplyError::Syntax(_))
        ));
        assert!(matches!(
            parse_all(b"999 x\r\n")[0],
            Err(ReplyError::Syntax(_))
        ));
        let long = vec![b'2'; MAX_LINE + 10];
        assert_eq!(parse_all(&long)[0], Err(ReplyError::LineTooLong));
        let many = b"250-x\r\n".repeat(MAX_LINES + 1);
        assert_eq!(parse_all(&many)[0], Err(ReplyError::TooManyLines));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(input in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_all(&input);
        }

        #[test]
        fn roundtrip(code in 200u16..600, texts in proptest::collection::vec("[ -~]{0,40}", 1..5)) {
            let mut wire = String::new();
            for (i, t) in texts.iter().enumerate() {
                let sep = if i + 1 == texts.len() { ' ' } else { '-' };
                wire.push_str(&format!("{code}{sep}{t}\r\n"));
            }
            let r = parse_all(wire.as_bytes());
            let reply = r[0].as_ref().unwrap();
            proptest::prop_assert_eq!(reply.code(), code);
            proptest::prop_assert_eq!(reply.lines().len(), texts.len());
        }
    }
}
