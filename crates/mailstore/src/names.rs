//! Mailbox names: validation (no path can escape the Maildir) and the on-disk folder name, in
//! modified UTF-7 (RFC 3501 §5.1.3, Dovecot's default) or raw UTF-8 (`mailbox_list_utf8 = yes` /
//! `:UTF-8`).
//!
//! An IMAP name `A.B` (hierarchy separator `.`) lives in the Maildir++ folder `<root>/.A.B`;
//! `INBOX` (any case) is the root itself.

use crate::error::{Error, Result};

/// The hierarchy separator of Maildir++.
pub const SEPARATOR: char = '.';

/// Longest directory name most filesystems accept.
const MAX_DIR_NAME: usize = 255;

/// A validated mailbox name as IMAP clients see it (UTF-8, `.`-separated, `INBOX` normalised).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxName(String);

fn invalid(name: &str, reason: &'static str) -> Error {
    Error::InvalidMailboxName {
        name: name.to_string(),
        reason,
    }
}

impl MailboxName {
    /// The root folder.
    pub fn inbox() -> Self {
        MailboxName("INBOX".to_string())
    }

    /// Validates a name a user gave. Rejects anything that could name a path outside its folder:
    /// `/`, NUL and other control characters, empty hierarchy levels (a leading or trailing `.`,
    /// `..`), a leading `~`, and names too long for one directory entry.
    pub fn new(name: &str) -> Result<Self> {
        if name.is_empty() {
            return Err(invalid(name, "empty name"));
        }
        if name.chars().any(|c| c.is_control()) {
            return Err(invalid(name, "control character"));
        }
        if name.contains('/') {
            return Err(invalid(name, "'/' is not allowed"));
        }
        if name.starts_with('~') {
            return Err(invalid(name, "leading '~' is not allowed"));
        }
        if name.split(SEPARATOR).any(|level| level.is_empty()) {
            return Err(invalid(
                name,
                "empty hierarchy level (leading, trailing or double '.')",
            ));
        }
        let normalised = normalise_inbox(name);
        let out = MailboxName(normalised);
        if !out.is_inbox() && out.dir_name(false).len() > MAX_DIR_NAME {
            return Err(invalid(name, "name too long"));
        }
        Ok(out)
    }

    /// Parses a Maildir++ folder directory name (`.A.B`, without the root path).
    pub fn from_dir_name(dir: &str, utf8: bool) -> Result<Self> {
        let Some(stored) = dir.strip_prefix('.') else {
            return Err(invalid(dir, "folder directory names start with '.'"));
        };
        let decoded = if utf8 {
            stored.to_string()
        } else {
            mutf7_decode(stored).ok_or_else(|| invalid(dir, "invalid modified UTF-7"))?
        };
        let name = MailboxName::new(&decoded)?;
        if name.is_inbox() {
            return Err(invalid(dir, "'.INBOX' is not a folder"));
        }
        Ok(name)
    }

    /// The name as IMAP shows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the root folder.
    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }

    /// The directory name under the Maildir root (`.A.B`); empty for INBOX (the root itself).
    pub fn dir_name(&self, utf8: bool) -> String {
        if self.is_inbox() {
            return String::new();
        }
        let mut out = String::from(".");
        if utf8 {
            out.push_str(&self.0);
        } else {
            out.push_str(&mutf7_encode(&self.0));
        }
        out
    }

    /// The parent in the hierarchy (`A` for `A.B`), if any.
    pub fn parent(&self) -> Option<MailboxName> {
        self.0
            .rsplit_once(SEPARATOR)
            .map(|(parent, _)| MailboxName(parent.to_string()))
    }
}

impl std::fmt::Display for MailboxName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn normalise_inbox(name: &str) -> String {
    let (first, rest) = match name.split_once(SEPARATOR) {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    if first.eq_ignore_ascii_case("INBOX") {
        match rest {
            Some(rest) => format!("INBOX{SEPARATOR}{rest}"),
            None => "INBOX".to_string(),
        }
    } else {
        name.to_string()
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes UTF-8 as modified UTF-7 (RFC 3501 §5.1.3).
pub fn mutf7_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Decodes modified UTF-7; `None` for anything a strict decoder rejects (bad base64, unpaired
/// surrogates, non-zero padding bits, encoded printable ASCII, raw 8-bit bytes).
pub fn mutf7_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if !(0x20..=0x7e).contains(&c) {
            return None;
        }
        if c != b'&' {
            out.push(char::from(c));
            i += 1;
            continue;
        }
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i] != b'-' {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let run = &bytes[start..i];
        i += 1;
        if run.is_empty() {
            out.push('&');
            continue;
        }
        let mut units = Vec::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for &b in run {
            acc = (acc << 6) | b64_value(b)?;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push(((acc >> bits) & 0xffff) as u16);
            }
            acc &= (1 << bits) - 1;
        }
        if bits >= 6 || acc != 0 || units.is_empty() {
            return None;
        }
        let decoded = String::from_utf16(&units).ok()?;
        if decoded.chars().any(|c| (' '..='~').contains(&c)) {
            return None;
        }
        out.push_str(&decoded);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3501_examples() {
        assert_eq!(
            mutf7_encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            mutf7_decode("&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("台北/日本語")
        );
        assert_eq!(mutf7_encode("A&B"), "A&-B");
        assert_eq!(mutf7_encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(mutf7_decode("Entw&APw-rfe").as_deref(), Some("Entwürfe"));
    }

    #[test]
    fn mutf7_rejects_garbage() {
        for bad in ["&", "&U,BTFw", "&AGE-", "&Jjo!-", "\u{e9}", "&2D0-", "&APw"] {
            assert_eq!(mutf7_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_are_validated() {
        for bad in [
            "", ".", "..", ".A", "A.", "A..B", "A/B", "../x", "a\0b", "a\nb", "~root", "A/../B",
        ] {
            assert!(MailboxName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(MailboxName::new(&"x".repeat(300)).is_err());
        assert_eq!(
            MailboxName::new("inbox").map(|n| n.is_inbox()).ok(),
            Some(true)
        );
        assert_eq!(
            MailboxName::new("Inbox.Sub").ok().map(|n| n.0),
            Some("INBOX.Sub".into())
        );
    }

    #[test]
    fn dir_names() {
        let n = MailboxName::new("Archiv.Entwürfe").unwrap();
        assert_eq!(n.dir_name(false), ".Archiv.Entw&APw-rfe");
        assert_eq!(n.dir_name(true), ".Archiv.Entwürfe");
        assert_eq!(
            MailboxName::from_dir_name(".Archiv.Entw&APw-rfe", false).unwrap(),
            n
        );
        assert!(MailboxName::from_dir_name(".Entw&APw", false).is_err());
        assert!(MailboxName::from_dir_name("..", false).is_err());
        assert!(MailboxName::from_dir_name(".", false).is_err());
        assert_eq!(MailboxName::inbox().dir_name(false), "");
        assert_eq!(n.parent().map(|p| p.0), Some("Archiv".into()));
    }

    proptest! {
        #[test]
        fn mutf7_round_trip(s in "\\PC{0,40}") {
            let enc = mutf7_encode(&s);
            prop_assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(mutf7_decode(&enc), Some(s));
        }

        #[test]
        fn valid_names_stay_inside(s in "[^/\\x00-\\x1f]{1,30}") {
            if let Ok(n) = MailboxName::new(&s) {
                let d = n.dir_name(false);
                prop_assert!(!d.contains('/'));
                prop_assert!(n.is_inbox() || (d.starts_with('.') && d != "." && d != ".."));
                prop_assert!(!d.contains(".."));
            }
        }
    }
}
