//! BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) in Dovecot 2.3's rendering:
//! missing Content-Type → `"text" "plain" ("charset" "us-ascii")`, a text part without a
//! charset gets `("charset" "us-ascii")` appended, missing subtype → `plain` (text) or
//! `unknown`, a multipart without parts renders one empty text/plain part and a missing
//! multipart subtype `x-unknown`; sizes are CRLF sizes and line counts count LFs.

use crate::crlf::{crlf_len, lines};
use crate::envelope;
use crate::mime::{Content, Kind, Part};
use crate::quote::{imap_string, nstring_nolf};

const EMPTY_BODY: &[u8] = b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
const EMPTY_BODYSTRUCTURE: &[u8] =
    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)";

/// Appends the structure of the whole message (without the outer parentheses). A plain
/// 7-bit text/plain message gets Dovecot's canned form (lower-case type, only the us-ascii
/// charset), whatever its Content-Type spelled.
pub(crate) fn write_top(out: &mut Vec<u8>, raw: &[u8], root: &Part, extended: bool) {
    if is_plain_7bit(root) {
        out.extend_from_slice(b"\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" ");
        out.extend_from_slice(crlf_len(raw, root.body()).to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(lines(raw, root.body()).to_string().as_bytes());
        if extended {
            out.extend_from_slice(b" NIL NIL NIL NIL");
        }
        return;
    }
    write(out, raw, root, extended);
}

/// Dovecot's message_part_data_is_plain_7bit: text/plain (or no Content-Type), no
/// parameter but charset=us-ascii, 7bit, and no other Content-* header.
fn is_plain_7bit(p: &Part) -> bool {
    let c = &p.content;
    if p.kind != Kind::Leaf || p.digest_default {
        return false;
    }
    let text_plain = match &c.ctype {
        None => true,
        Some((ty, Some(sub))) => {
            ty.eq_ignore_ascii_case(b"text") && sub.eq_ignore_ascii_case(b"plain")
        }
        Some(_) => false,
    };
    if !text_plain {
        return false;
    }
    match c.params.as_slice() {
        [] => {}
        [(k, v)] if k.eq_ignore_ascii_case(b"charset") && v.eq_ignore_ascii_case(b"us-ascii") => {}
        _ => return false,
    }
    c.id.is_none()
        && c.description.is_none()
        && c.cte
            .as_deref()
            .is_none_or(|e| e.eq_ignore_ascii_case(b"7bit"))
        && c.md5.is_none()
        && c.disposition.is_none()
        && c.language.is_none()
        && c.location.is_none()
}

/// Appends the structure of `part` (the top-level message's part has no surrounding
/// parentheses of its own: the caller adds them, as `BODY (…)`).
pub(crate) fn write(out: &mut Vec<u8>, raw: &[u8], part: &Part, extended: bool) {
    match part.kind {
        Kind::Multipart => write_multipart(out, raw, part, extended),
        _ => write_single(out, raw, part, extended),
    }
}

fn write_multipart(out: &mut Vec<u8>, raw: &[u8], part: &Part, extended: bool) {
    if part.children.is_empty() {
        out.extend_from_slice(if extended {
            EMPTY_BODYSTRUCTURE
        } else {
            EMPTY_BODY
        });
    }
    for c in &part.children {
        out.push(b'(');
        write(out, raw, c, extended);
        out.push(b')');
    }
    let c = &part.content;
    out.push(b' ');
    match c.ctype.as_ref().and_then(|t| t.1.as_deref()) {
        Some(sub) => imap_string(out, sub),
        None => out.extend_from_slice(b"\"x-unknown\""),
    }
    if !extended {
        return;
    }
    out.push(b' ');
    params(out, &c.params, false);
    write_ext_common(out, c);
}

fn write_single(out: &mut Vec<u8>, raw: &[u8], part: &Part, extended: bool) {
    let c = &part.content;
    let text;
    if part.over_limit {
        out.extend_from_slice(b"\"application\" \"octet-stream\"");
        text = false;
    } else if part.kind == Kind::Message || part.digest_default {
        out.extend_from_slice(b"\"message\" \"rfc822\"");
        text = false;
    } else {
        match &c.ctype {
            None => {
                out.extend_from_slice(b"\"text\" \"plain\"");
                text = true;
            }
            Some((ty, sub)) => {
                text = ty.eq_ignore_ascii_case(b"text");
                imap_string(out, ty);
                out.push(b' ');
                // A broken Content-Type has no subtype: Dovecot writes "".
                imap_string(out, sub.as_deref().unwrap_or_default());
            }
        }
    }
    out.push(b' ');
    params(out, &c.params, text);
    out.push(b' ');
    nstring_nolf(out, c.id.as_deref());
    out.push(b' ');
    nstring_nolf(out, c.description.as_deref());
    out.push(b' ');
    match &c.cte {
        None => out.extend_from_slice(b"\"7bit\""),
        Some(e) => imap_string(out, e),
    }
    out.push(b' ');
    out.extend_from_slice(crlf_len(raw, part.body()).to_string().as_bytes());
    if text {
        out.push(b' ');
        out.extend_from_slice(lines(raw, part.body()).to_string().as_bytes());
    } else if part.kind == Kind::Message {
        if let Some(inner) = part.children.first() {
            out.extend_from_slice(b" (");
            envelope::write(out, raw, inner.hdr_start..inner.fields_end);
            out.extend_from_slice(b") (");
            write(out, raw, inner, extended);
            out.extend_from_slice(b") ");
            out.extend_from_slice(lines(raw, part.body()).to_string().as_bytes());
        }
    }
    if !extended {
        return;
    }
    out.push(b' ');
    nstring_nolf(out, c.md5.as_deref());
    write_ext_common(out, c);
}

/// ` disposition language location`.
fn write_ext_common(out: &mut Vec<u8>, c: &Content) {
    out.push(b' ');
    match &c.disposition {
        None => out.extend_from_slice(b"NIL"),
        Some((d, p)) => {
            out.push(b'(');
            imap_string(out, d);
            out.push(b' ');
            params(out, p, false);
            out.push(b')');
        }
    }
    out.push(b' ');
    match &c.language {
        None => out.extend_from_slice(b"NIL"),
        Some(langs) => {
            out.push(b'(');
            for (i, l) in langs.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                imap_string(out, l);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring_nolf(out, c.location.as_deref());
}

fn params(out: &mut Vec<u8>, p: &[(Vec<u8>, Vec<u8>)], default_charset: bool) {
    if p.is_empty() && !default_charset {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    let mut seen_charset = false;
    for (i, (k, v)) in p.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if k.eq_ignore_ascii_case(b"charset") {
            seen_charset = true;
        }
        imap_string(out, k);
        out.push(b' ');
        imap_string(out, v);
    }
    if default_charset && !seen_charset {
        if !p.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"charset\" \"us-ascii\"");
    }
    out.push(b')');
}
