//! SEARCH helpers: header values decoded for HEADER/FROM/SUBJECT…, and BODY/TEXT substring
//! matching on decoded text, compared against Dovecot 2.3 (tests/dovecot_golden.rs):
//! - case-insensitive as Dovecot's i;unicode-casemap behaves (see the casemap module:
//!   canonical decomposition, simple uppercase; ß does not match SS, é contains e);
//! - text/* parts and parts without Content-Type are searched after transfer decoding (the
//!   first Content-Transfer-Encoding header counts even without MIME-Version; a part with an
//!   unknown one is skipped) and charset conversion; other leaf parts, preamble and epilogue
//!   are not;
//! - TEXT also searches every part's MIME header and the header of encapsulated messages
//!   (message/rfc822, digest parts); BODY only their bodies;
//! - header values are unfolded, RFC 2047-decoded, with runs of blanks collapsed; address
//!   headers are matched in their parsed and rewritten form, as Dovecot does.

use crate::address;
use crate::binary::{self, Cte};
use crate::decode;
use crate::header;
use crate::mime::{Kind, Part};
use std::ops::Range;

pub(crate) use crate::casemap::fold;

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

/// The decoded, whitespace-normalised value of a header field; with `addresses` (SEARCH
/// HEADER/FROM/TO…, not TEXT) address headers in Dovecot's rewritten form (see
/// `address::rewrite_for_search`).
fn field_text(raw: &[u8], f: &header::Field, addresses: bool) -> String {
    let value = header::unfold(&raw[f.value.clone()]);
    let value = if addresses && address::is_address_header(&raw[f.name.clone()]) {
        address::rewrite_for_search(&value)
    } else {
        value
    };
    collapse_blanks(&decode::decode_2047(&value))
}

fn contains_folded(hay: &str, folded_needle: &str) -> bool {
    folded_needle.is_empty() || fold(hay).contains(folded_needle)
}

pub(crate) fn header_values(raw: &[u8], hdr: Range<usize>, name: &str) -> Vec<String> {
    header::fields(raw, hdr)
        .filter(|f| raw[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| field_text(raw, &f, true))
        .collect()
}

pub(crate) fn header_contains(raw: &[u8], hdr: Range<usize>, needle: &str) -> bool {
    header::fields(raw, hdr).any(|f| {
        let mut s = String::from_utf8_lossy(&raw[f.name.clone()]).into_owned();
        s.push_str(": ");
        s.push_str(&field_text(raw, &f, false));
        contains_folded(&s, needle)
    })
}

/// True when some text part (or a part without Content-Type) contains the needle after
/// transfer and charset decoding; with `headers` (TEXT) also the MIME headers of the parts
/// and the headers of encapsulated messages (Dovecot's BODY skips them).
pub(crate) fn body_contains(raw: &[u8], part: &Part, needle: &str, headers: bool) -> bool {
    match part.kind {
        Kind::Multipart => part.children.iter().any(|c| {
            (headers && header_contains(raw, c.hdr_start..c.fields_end, needle))
                || body_contains(raw, c, needle, headers)
        }),
        Kind::Message => part.children.first().is_some_and(|m| {
            (headers && header_contains(raw, m.hdr_start..m.fields_end, needle))
                || body_contains(raw, m, needle, headers)
        }),
        Kind::Leaf => {
            let c = &part.content;
            // No Content-Type means text/plain; text/* and message/* leaves are text (Dovecot's
            // message-search), a broken type ("text" alone) is not.
            let texty = match &c.ctype {
                None => true,
                Some((ty, sub)) => {
                    (ty.eq_ignore_ascii_case(b"text") || ty.eq_ignore_ascii_case(b"message"))
                        && sub.is_some()
                }
            };
            if !texty {
                return false;
            }
            let body = raw.get(part.body()).unwrap_or_default();
            let mut decoded = Vec::new();
            let bytes: &[u8] = match binary::cte(raw, part) {
                Ok(Cte::Base64) => {
                    decode::base64(body, &mut decoded);
                    &decoded
                }
                Ok(Cte::Qp) => {
                    decode::quoted_printable(body, &mut decoded);
                    &decoded
                }
                Ok(Cte::Identity) => body,
                // Dovecot does not search what it cannot decode.
                Err(_) => return false,
            };
            contains_folded(&decode::to_utf8(bytes, c.param(b"charset")), needle)
        }
    }
}
