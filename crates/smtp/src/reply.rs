//! Typed SMTP replies: a three-digit code, an optional RFC 3463 enhanced status code and one or
//! more text lines, encoded as RFC 5321 §4.2 multi-line replies.

use std::fmt;

/// An RFC 3463 enhanced status code `class.subject.detail` (e.g. `5.1.1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedStatus {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedStatus {
            class,
            subject,
            detail,
        }
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// Longest text we put on one reply line (RFC 5321 §4.5.3.1.5 allows 512 octets with the code).
const MAX_TEXT: usize = 480;

/// One SMTP/LMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    status: Option<EnhancedStatus>,
    lines: Vec<String>,
}

impl Reply {
    /// A one-line reply. `code` must be 200..=599; anything else is clamped to 451 (a driver bug
    /// must not put garbage on the wire). CR, LF and other controls in `text` become spaces, so
    /// client-supplied text (an address) cannot inject a reply line.
    pub fn new(code: u16, status: Option<EnhancedStatus>, text: impl Into<String>) -> Self {
        Self::multiline(code, status, vec![text.into()])
    }

    /// A reply with several text lines (EHLO capabilities, HELP).
    pub fn multiline(code: u16, status: Option<EnhancedStatus>, lines: Vec<String>) -> Self {
        let code = if (200..=599).contains(&code) {
            code
        } else {
            451
        };
        let mut lines: Vec<String> = lines.into_iter().map(|l| sanitize(&l)).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Reply {
            code,
            status,
            lines,
        }
    }

    /// Shorthand for a reply with an enhanced status code.
    pub fn with_status(code: u16, status: (u8, u16, u16), text: impl Into<String>) -> Self {
        Self::new(
            code,
            Some(EnhancedStatus::new(status.0, status.1, status.2)),
            text,
        )
    }

    pub fn code(&self) -> u16 {
        self.code
    }
    pub fn status(&self) -> Option<EnhancedStatus> {
        self.status
    }
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
    /// 2xx.
    pub fn is_success(&self) -> bool {
        self.code < 300
    }
    /// 3xx (354, 334).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }
    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the wire form. Enhanced status codes are written on every line when `enhanced`
    /// (the server advertised ENHANCEDSTATUSCODES), as Postfix and Dovecot do.
    pub fn encode(&self, enhanced: bool, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let mut s = format!("{}{}", self.code, sep);
            if let (true, Some(st)) = (enhanced, self.status) {
                s.push_str(&st.to_string());
                if !line.is_empty() {
                    s.push(' ');
                }
            }
            s.push_str(line);
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a `String` (tests, logs).
    pub fn to_wire(&self, enhanced: bool) -> String {
        let mut v = Vec::new();
        self.encode(enhanced, &mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
}

impl fmt::Display for Reply {
    /// One line for logs: `550 5.1.1 text` (continuation lines joined with " / ").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(s) = self.status {
            write!(f, " {s}")?;
        }
        write!(f, " {}", self.lines.join(" / "))
    }
}

fn sanitize(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_multiline_with_status() {
        let r = Reply::multiline(250, None, vec!["mx.example".into(), "PIPELINING".into()]);
        assert_eq!(r.to_wire(true), "250-mx.example\r\n250 PIPELINING\r\n");
        let r = Reply::with_status(550, (5, 1, 1), "<a@b> User doesn't exist: a@b");
        assert_eq!(
            r.to_wire(true),
            "550 5.1.1 <a@b> User doesn't exist: a@b\r\n"
        );
        assert_eq!(r.to_wire(false), "550 <a@b> User doesn't exist: a@b\r\n");
    }

    #[test]
    fn text_cannot_inject_lines() {
        let r = Reply::new(250, None, "a\r\n250 b");
        assert_eq!(r.to_wire(true), "250 a  250 b\r\n");
        assert_eq!(Reply::new(999, None, "x").code(), 451);
    }
}
