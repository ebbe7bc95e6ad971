//! Dovecot's tab-escaping (`str_tabescape` / `str_tabunescape` in lib/strescape.c).
//!
//! Escape byte 0x01: NUL → `\x01 0`, 0x01 → `\x01 1`, TAB → `\x01 t`, CR → `\x01 r`,
//! LF → `\x01 n`. Decoding `\x01` + any other byte yields that byte; a trailing lone `\x01` is
//! dropped, exactly like Dovecot. Escaping and unescaping never turn valid UTF-8 into invalid
//! UTF-8 (only ASCII bytes are added or removed), so `&str` versions are provided besides the
//! byte versions.

use std::borrow::Cow;

const ESCAPE: u8 = 0x01;

fn needs_escape(b: u8) -> bool {
    matches!(b, 0 | ESCAPE | b'\t' | b'\r' | b'\n')
}

fn escape_code(b: u8) -> u8 {
    match b {
        0 => b'0',
        ESCAPE => b'1',
        b'\t' => b't',
        b'\r' => b'r',
        _ => b'n',
    }
}

fn unescape_code(b: u8) -> u8 {
    match b {
        b'0' => 0,
        b'1' => ESCAPE,
        b't' => b'\t',
        b'r' => b'\r',
        b'n' => b'\n',
        other => other,
    }
}

/// Appends the tab-escaped form of `src` to `out`.
pub fn escape_into(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(src.len());
    for &b in src {
        if needs_escape(b) {
            out.push(ESCAPE);
            out.push(escape_code(b));
        } else {
            out.push(b);
        }
    }
}

/// Tab-escapes `src`.
pub fn escape_bytes(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    escape_into(src, &mut out);
    out
}

/// Reverses [`escape_bytes`].
pub fn unescape_bytes(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut iter = src.iter();
    while let Some(&b) = iter.next() {
        if b == ESCAPE {
            // A lone trailing escape byte is dropped (Dovecot does the same).
            if let Some(&code) = iter.next() {
                out.push(unescape_code(code));
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// Tab-escapes a string; borrows when nothing needs escaping.
pub fn escape(src: &str) -> Cow<'_, str> {
    if !src.bytes().any(needs_escape) {
        return Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len() + 8);
    for c in src.chars() {
        let mut buf = [0u8; 4];
        let encoded = c.encode_utf8(&mut buf);
        if encoded.len() == 1 && needs_escape(encoded.as_bytes()[0]) {
            out.push(char::from(ESCAPE));
            out.push(char::from(escape_code(encoded.as_bytes()[0])));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Reverses [`escape`]; borrows when the input holds no escape byte.
pub fn unescape(src: &str) -> Cow<'_, str> {
    if !src.contains(char::from(ESCAPE)) {
        return Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        if c == char::from(ESCAPE) {
            if let Some(code) = chars.next() {
                if code.is_ascii() {
                    out.push(char::from(unescape_code(code as u8)));
                } else {
                    // `\x01` + a non-ASCII character yields that character.
                    out.push(code);
                }
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_bytes() {
        assert_eq!(
            escape("a\tb\nc\rd\0e\x01f"),
            "a\x01tb\x01nc\x01rd\x010e\x011f"
        );
        assert_eq!(escape_bytes(b"\t\n"), b"\x01t\x01n");
    }

    #[test]
    fn borrows_when_clean() {
        assert!(matches!(escape("alice@example.com"), Cow::Borrowed(_)));
        assert!(matches!(unescape("alice@example.com"), Cow::Borrowed(_)));
    }

    #[test]
    fn unescape_other_byte_and_trailing() {
        assert_eq!(unescape("a\x01xb"), "axb");
        assert_eq!(unescape("ab\x01"), "ab");
        assert_eq!(unescape("\x01é"), "é");
        assert_eq!(unescape_bytes(b"a\x01"), b"a");
        assert_eq!(unescape_bytes(b"\x010\x011"), b"\0\x01");
    }

    #[test]
    fn round_trip_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape_bytes(&escape_bytes(&all)), all);
        assert!(!escape_bytes(&all).iter().any(|&b| b == b'\t' || b == b'\n'));
    }
}
