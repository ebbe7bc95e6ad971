//! Content decoding: Content-Transfer-Encodings (base64, quoted-printable, identity),
//! RFC 2047 encoded-words and charset conversion to UTF-8 (encoding_rs: the WHATWG label
//! set, the same one browsers use, maintained and fast). All decoders are linear and
//! lenient: bad input is skipped or kept, never an error or a panic.

use encoding_rs::Encoding;

/// A transfer encoding we can undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cte {
    Identity,
    Base64,
    QuotedPrintable,
}

/// Classifies a Content-Transfer-Encoding value; `None` = unknown (RFC 3516 UNKNOWN-CTE).
pub(crate) fn cte_of(v: Option<&[u8]>) -> Option<Cte> {
    let Some(v) = v else {
        return Some(Cte::Identity);
    };
    if v.eq_ignore_ascii_case(b"7bit")
        || v.eq_ignore_ascii_case(b"8bit")
        || v.eq_ignore_ascii_case(b"binary")
    {
        Some(Cte::Identity)
    } else if v.eq_ignore_ascii_case(b"base64") {
        Some(Cte::Base64)
    } else if v.eq_ignore_ascii_case(b"quoted-printable") {
        Some(Cte::QuotedPrintable)
    } else {
        None
    }
}

fn b64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Base64 decoding that skips whitespace and other non-alphabet bytes and stops at `=`.
pub(crate) fn base64(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len() / 4 * 3);
    let mut acc = 0u32;
    let mut n = 0u8;
    for &b in input {
        if b == b'=' {
            break;
        }
        let Some(v) = b64_value(b) else { continue };
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Quoted-printable body decoding (RFC 2045 §6.7): `=XX` escapes, soft line breaks, trailing
/// blanks of each line dropped; line ends come out as given (CRLF input stays CRLF).
pub(crate) fn quoted_printable(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    for line in input.split_inclusive(|&b| b == b'\n') {
        let (content, eol): (&[u8], &[u8]) = if let Some(c) = line.strip_suffix(b"\r\n") {
            (c, b"\r\n")
        } else if let Some(c) = line.strip_suffix(b"\n") {
            (c, b"\n")
        } else {
            (line, b"")
        };
        let mut end = content.len();
        while end > 0 && matches!(content[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        let content = &content[..end];
        let soft = content.last() == Some(&b'=');
        let body = if soft {
            &content[..content.len() - 1]
        } else {
            content
        };
        qp_bytes(body, out);
        if !soft {
            out.extend_from_slice(eol);
        }
    }
}

/// `=XX` decoding of one line (also used by RFC 2047 `Q`, with `_` handled by the caller).
fn qp_bytes(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'=' {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
}

/// Decodes `bytes` in `charset` to UTF-8 (lossy). Unknown or missing charset: UTF-8 lossy.
pub(crate) fn to_utf8(bytes: &[u8], charset: Option<&[u8]>) -> String {
    // US-ASCII is read as UTF-8 (as Dovecot does: mislabelled 8-bit text is usually UTF-8);
    // WHATWG would map it to windows-1252.
    let ascii = charset
        .is_some_and(|c| c.eq_ignore_ascii_case(b"us-ascii") || c.eq_ignore_ascii_case(b"ascii"));
    let enc = charset
        .filter(|_| !ascii)
        .and_then(Encoding::for_label)
        .unwrap_or(encoding_rs::UTF_8);
    let (s, _, _) = enc.decode(bytes);
    s.into_owned()
}

/// RFC 2047 decoding of an unfolded header value to UTF-8: encoded-words become text,
/// whitespace between two adjacent encoded-words disappears, the rest is taken as UTF-8.
pub(crate) fn decode_2047(v: &[u8]) -> String {
    let mut out = String::with_capacity(v.len());
    let mut i = 0;
    let mut last_was_word = false;
    let mut lit_start = 0;
    while i < v.len() {
        if v[i] == b'=' && v.get(i + 1) == Some(&b'?') {
            if let Some((text, end)) = encoded_word(&v[i..]) {
                // Flush literal text before the word, unless it is only whitespace between
                // two encoded-words.
                let lit = &v[lit_start..i];
                let only_ws = lit.iter().all(|b| matches!(b, b' ' | b'\t'));
                if !(last_was_word && only_ws) {
                    out.push_str(&String::from_utf8_lossy(lit));
                }
                out.push_str(&text);
                i += end;
                lit_start = i;
                last_was_word = true;
                continue;
            }
        }
        if !matches!(v[i], b' ' | b'\t') {
            last_was_word = false;
        }
        i += 1;
    }
    out.push_str(&String::from_utf8_lossy(&v[lit_start..]));
    out
}

/// Longest encoded-word we decode (75 by the RFC; some mailers write longer ones).
const MAX_ENCODED_WORD: usize = 1024;

/// `=?charset?enc?text?=` at the start of `s`: the decoded text and the length consumed.
fn encoded_word(s: &[u8]) -> Option<(String, usize)> {
    let rest = s.get(2..)?;
    // RFC 2047 words are at most 75 bytes; looking further would make a header full of
    // unterminated "=?" quadratic.
    let rest = &rest[..rest.len().min(MAX_ENCODED_WORD)];
    let q1 = rest.iter().position(|&b| b == b'?')?;
    let charset = &rest[..q1];
    let enc = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let text_len = rest
        .get(text_start..)?
        .windows(2)
        .position(|w| w == b"?=")?;
    let text = &rest[text_start..text_start + text_len];
    if text.iter().any(|&b| b == b' ' || b == b'\t') {
        return None;
    }
    // RFC 2231 language suffix: charset*lang.
    let charset = charset.split(|&b| b == b'*').next().unwrap_or(charset);
    let mut bytes = Vec::with_capacity(text.len());
    match enc {
        b'B' | b'b' => base64(text, &mut bytes),
        b'Q' | b'q' => {
            let t: Vec<u8> = text
                .iter()
                .map(|&b| if b == b'_' { b' ' } else { b })
                .collect();
            qp_bytes(&t, &mut bytes);
        }
        _ => return None,
    }
    Encoding::for_label(charset)?;
    Some((
        to_utf8(&bytes, Some(charset)),
        2 + text_start + text_len + 2,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64() {
        let mut o = Vec::new();
        base64(b"aGVs\r\nbG8=", &mut o);
        assert_eq!(o, b"hello");
    }

    #[test]
    fn qp() {
        let mut o = Vec::new();
        quoted_printable(b"a=3Db  \r\nsoft=\r\nline\r\n=E4", &mut o);
        assert_eq!(o, b"a=b\r\nsoftline\r\n\xe4");
    }

    #[test]
    fn rfc2047() {
        assert_eq!(
            decode_2047(b"=?UTF-8?B?w6Q=?= =?iso-8859-1?Q?=E4_x?= y"),
            "ää x y"
        );
        assert_eq!(decode_2047(b"plain =?bogus?Q?x?="), "plain =?bogus?Q?x?=");
        assert_eq!(to_utf8(b"\xe4", Some(b"ISO-8859-1")), "ä");
    }
}
