//! The stored file may use bare LF; IMAP sees CRLF. These helpers measure and copy byte
//! ranges as if every bare LF were CRLF, without converting the whole message up front.

use std::ops::Range;

/// Number of LF bytes in `raw[r]` that are not preceded by CR (the byte before the range
/// counts, so a range never splits a CRLF into two line ends).
pub(crate) fn bare_lfs(raw: &[u8], r: Range<usize>) -> u64 {
    let Some(s) = raw.get(r.clone()) else {
        return 0;
    };
    let mut n = 0u64;
    let mut prev = if r.start > 0 {
        raw.get(r.start - 1).copied().unwrap_or(0)
    } else {
        0
    };
    for &b in s {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

/// Size of `raw[r]` with CRLF line ends.
pub(crate) fn crlf_len(raw: &[u8], r: Range<usize>) -> u64 {
    (r.end.saturating_sub(r.start)) as u64 + bare_lfs(raw, r)
}

/// Number of LF bytes (lines) in `raw[r]`.
pub(crate) fn lines(raw: &[u8], r: Range<usize>) -> u64 {
    raw.get(r)
        .map_or(0, |s| s.iter().filter(|&&b| b == b'\n').count() as u64)
}

/// Appends `raw[r]` with every bare LF turned into CRLF.
pub(crate) fn push_crlf(out: &mut Vec<u8>, raw: &[u8], r: Range<usize>) {
    let Some(s) = raw.get(r.clone()) else { return };
    out.reserve(s.len() + s.len() / 32);
    let mut prev = if r.start > 0 {
        raw.get(r.start - 1).copied().unwrap_or(0)
    } else {
        0
    };
    let mut from = 0;
    for (i, &b) in s.iter().enumerate() {
        if b == b'\n' && prev != b'\r' {
            out.extend_from_slice(&s[from..i]);
            out.extend_from_slice(b"\r\n");
            from = i + 1;
        }
        prev = b;
    }
    out.extend_from_slice(&s[from..]);
}

/// [`push_crlf`] for BODY[] output: NUL bytes become 0x80, as Dovecot sends them (a NUL is
/// not allowed in an IMAP literal; BINARY keeps them in literal8).
pub(crate) fn push_text(out: &mut Vec<u8>, raw: &[u8], r: Range<usize>) {
    let from = out.len();
    push_crlf(out, raw, r);
    if let Some(tail) = out.get_mut(from..) {
        for b in tail.iter_mut().filter(|b| **b == 0) {
            *b = 0x80;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert() {
        let raw = b"a\nb\r\nc\n";
        let mut v = Vec::new();
        push_crlf(&mut v, raw, 0..raw.len());
        assert_eq!(v, b"a\r\nb\r\nc\r\n");
        assert_eq!(crlf_len(raw, 0..raw.len()), 9);
        assert_eq!(crlf_len(raw, 4..5), 1);
        assert_eq!(lines(raw, 0..raw.len()), 3);
    }
}
