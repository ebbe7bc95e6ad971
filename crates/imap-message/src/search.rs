//! SEARCH helpers: header values decoded for HEADER/FROM/SUBJECT…, and BODY/TEXT substring
//! matching on decoded text with Unicode case folding (RFC 9051 §6.4.4 asks for
//! i;unicode-casemap; we fold with full upper- then lower-casing, which maps ß/SS, ſ/s and
//! Greek final sigma together; canonical decomposition is not applied).

use crate::decode::{self, Cte};
use crate::header;
use crate::mime::{Kind, Part};
use std::ops::Range;

/// Case-folds for matching.
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            for u in c.to_uppercase() {
                out.extend(u.to_lowercase());
            }
        }
    }
    out
}

fn contains_folded(hay: &str, folded_needle: &str) -> bool {
    folded_needle.is_empty() || fold(hay).contains(folded_needle)
}

pub(crate) fn header_values(raw: &[u8], hdr: Range<usize>, name: &str) -> Vec<String> {
    header::fields(raw, hdr)
        .filter(|f| raw[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| decode::decode_2047(&header::unfold(&raw[f.value])))
        .collect()
}

pub(crate) fn header_contains(raw: &[u8], hdr: Range<usize>, needle: &str) -> bool {
    header::fields(raw, hdr).any(|f| {
        let mut s = String::from_utf8_lossy(&raw[f.name]).into_owned();
        s.push_str(": ");
        s.push_str(&decode::decode_2047(&header::unfold(&raw[f.value])));
        contains_folded(&s, needle)
    })
}

/// True when some text part (or a part without Content-Type) contains the needle after
/// transfer and charset decoding; encapsulated messages are searched header and body.
pub(crate) fn body_contains(raw: &[u8], part: &Part, needle: &str) -> bool {
    match part.kind {
        Kind::Multipart => part.children.iter().any(|c| body_contains(raw, c, needle)),
        Kind::Message => part.children.first().is_some_and(|m| {
            header_contains(raw, m.hdr_start..m.fields_end, needle) || body_contains(raw, m, needle)
        }),
        Kind::Leaf => {
            let c = &part.content;
            let texty = c.ctype.is_none() || c.is_type(b"text", None);
            if !texty {
                return false;
            }
            let body = raw.get(part.body()).unwrap_or_default();
            let decoded;
            let bytes: &[u8] = match decode::cte_of(c.cte.as_deref()) {
                Some(Cte::Base64) => {
                    let mut v = Vec::new();
                    decode::base64(body, &mut v);
                    decoded = v;
                    &decoded
                }
                Some(Cte::QuotedPrintable) => {
                    let mut v = Vec::new();
                    decode::quoted_printable(body, &mut v);
                    decoded = v;
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
        assert_eq!(fold("Straße"), fold("STRASSE"));
        assert_eq!(fold("ΣΊΣΥΦΟΣ"), fold("σίσυφος"));
        assert!(fold("Hello WORLD").contains(&fold("o w")));
    }
}
