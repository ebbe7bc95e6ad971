//! SEARCH helpers: header values decoded for HEADER/FROM/SUBJECT…, and BODY/TEXT substring
//! matching on decoded text, compared against Dovecot 2.3 (tests/dovecot_golden.rs):
//! - case-insensitive per character with simple (1:1) case mapping, as Dovecot's
//!   i;unicode-casemap does (so ß does not match SS, but σ/ς/Σ match each other); canonical
//!   decomposition is not applied;
//! - text/* parts and parts without Content-Type are searched after transfer decoding (the
//!   first Content-Transfer-Encoding header counts even without MIME-Version) and charset
//!   conversion; other leaf parts, preamble and epilogue are not;
//! - in an encapsulated message (message/rfc822, digest parts) BODY searches the body, TEXT
//!   also the header;
//! - header values are unfolded, RFC 2047-decoded, with runs of blanks collapsed.

use crate::decode::{self, Cte};
use crate::header;
use crate::mime::{Kind, Part};
use crate::rfc822::{is_token, Lexer};
use std::ops::Range;

/// Case-folds for matching: each character to its simple uppercase when that is one
/// character, else unchanged.
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_uppercase());
        } else {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => out.push(u),
                _ => out.push(c),
            }
        }
    }
    out
}

/// Runs of blanks become one space.
fn collapse_blanks(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = false;
    for c in s.chars() {
        if c == ' ' || c == '\t' {
            if !blank {
                out.push(' ');
            }
            blank = true;
        } else {
            out.push(c);
            blank = false;
        }
    }
    out
}

/// The decoded, whitespace-normalised value of a header field.
fn field_text(raw: &[u8], f: &header::Field) -> String {
    collapse_blanks(&decode::decode_2047(&header::unfold(&raw[f.value.clone()])))
}

fn contains_folded(hay: &str, folded_needle: &str) -> bool {
    folded_needle.is_empty() || fold(hay).contains(folded_needle)
}

pub(crate) fn header_values(raw: &[u8], hdr: Range<usize>, name: &str) -> Vec<String> {
    header::fields(raw, hdr)
        .filter(|f| raw[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| field_text(raw, &f))
        .collect()
}

pub(crate) fn header_contains(raw: &[u8], hdr: Range<usize>, needle: &str) -> bool {
    header::fields(raw, hdr).any(|f| {
        let mut s = String::from_utf8_lossy(&raw[f.name.clone()]).into_owned();
        s.push_str(": ");
        s.push_str(&field_text(raw, &f));
        contains_folded(&s, needle)
    })
}

/// The transfer encoding search decodes: the first token of the first
/// Content-Transfer-Encoding header, MIME-Version or not; unknown ones are searched as is.
fn search_cte(raw: &[u8], part: &Part) -> Option<Cte> {
    let f = header::fields(raw, part.hdr_start..part.fields_end)
        .find(|f| raw[f.name.clone()].eq_ignore_ascii_case(b"Content-Transfer-Encoding"))?;
    let v = header::unfold(&raw[f.value]);
    let mut lx = Lexer::new(&v);
    lx.skip_cfws();
    let mut tok = Vec::new();
    lx.take_while(is_token, &mut tok);
    decode::cte_of(Some(&tok))
}

/// True when some text part (or a part without Content-Type) contains the needle after
/// transfer and charset decoding; with `headers` (TEXT) also the headers of encapsulated
/// messages (Dovecot's BODY skips them).
pub(crate) fn body_contains(raw: &[u8], part: &Part, needle: &str, headers: bool) -> bool {
    match part.kind {
        Kind::Multipart => part
            .children
            .iter()
            .any(|c| body_contains(raw, c, needle, headers)),
        Kind::Message => part.children.first().is_some_and(|m| {
            (headers && header_contains(raw, m.hdr_start..m.fields_end, needle))
                || body_contains(raw, m, needle, headers)
        }),
        Kind::Leaf => {
            let c = &part.content;
            let texty = c.ctype.is_none() || c.is_type(b"text", None);
            if !texty {
                return false;
            }
            let body = raw.get(part.body()).unwrap_or_default();
            let mut decoded = Vec::new();
            let bytes: &[u8] = match search_cte(raw, part) {
                Some(Cte::Base64) => {
                    decode::base64(body, &mut decoded);
                    &decoded
                }
                Some(Cte::QuotedPrintable) => {
                    decode::quoted_printable(body, &mut decoded);
                    &decoded
                }
                _ => body,
            };
            contains_folded(&decode::to_utf8(bytes, c.param(b"charset")), needle)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn folding() {
        assert_ne!(fold("Straße"), fold("STRASSE"));
        assert_eq!(fold("Grüße"), fold("GRÜßE"));
        assert_eq!(fold("ΣΊΣΥΦΟΣ"), fold("σίσυφος"));
        assert!(fold("Hello WORLD").contains(&fold("o w")));
    }
}
