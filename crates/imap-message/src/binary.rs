//! BINARY[section] (RFC 3516) the way Dovecot 2.3 builds it: a leaf part's body is
//! transfer-decoded (base64 bytes as decoded, quoted-printable with CRLF line ends); a
//! multipart or message/rfc822 part (and the whole message for `BINARY[]`) is rebuilt with
//! every base64/quoted-printable leaf decoded and its Content-Transfer-Encoding header
//! replaced by `Content-Transfer-Encoding: binary` at the end of that part's header.
//!
//! The encoding is read from the first Content-Transfer-Encoding header even without
//! MIME-Version (as Dovecot does for BINARY); a value that is not exactly one known token is
//! unknown → [`BinaryError::UnknownCte`].

use crate::crlf::push_crlf;
use crate::decode;
use crate::header;
use crate::mime::{Kind, Part};
use crate::rfc822::{is_token, Lexer};
use crate::BinaryError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cte {
    Identity,
    Base64,
    Qp,
}

fn is_cte_field(raw: &[u8], f: &header::Field) -> bool {
    raw[f.name.clone()].eq_ignore_ascii_case(b"Content-Transfer-Encoding")
}

/// The transfer encoding BINARY (and SEARCH) decode: the first Content-Transfer-Encoding
/// header, MIME-Version or not; anything but exactly one known token is unknown.
pub(crate) fn cte(raw: &[u8], part: &Part) -> Result<Cte, BinaryError> {
    let Some(f) =
        header::fields(raw, part.hdr_start..part.fields_end).find(|f| is_cte_field(raw, f))
    else {
        return Ok(Cte::Identity);
    };
    let v = header::unfold(&raw[f.value]);
    let mut lx = Lexer::new(&v);
    lx.skip_cfws();
    let mut tok = Vec::new();
    lx.take_while(is_token, &mut tok);
    lx.skip_cfws();
    if !lx.at_end() {
        return Err(BinaryError::UnknownCte);
    }
    match decode::cte_of(Some(&tok)) {
        Some(decode::Cte::Identity) => Ok(Cte::Identity),
        Some(decode::Cte::Base64) => Ok(Cte::Base64),
        Some(decode::Cte::QuotedPrintable) => Ok(Cte::Qp),
        None => Err(BinaryError::UnknownCte),
    }
}

/// Appends the decoded body of `part` (converted recursively for multiparts and messages).
pub(crate) fn body(raw: &[u8], part: &Part, out: &mut Vec<u8>) -> Result<(), BinaryError> {
    match part.kind {
        Kind::Leaf => match cte(raw, part)? {
            Cte::Identity => push_crlf(out, raw, part.body()),
            Cte::Base64 => decode::base64(raw.get(part.body()).unwrap_or_default(), out),
            Cte::Qp => {
                let mut crlf = Vec::new();
                push_crlf(&mut crlf, raw, part.body());
                decode::quoted_printable(&crlf, out);
            }
        },
        Kind::Multipart | Kind::Message => {
            // Not decoded (Dovecot sends a message/rfc822 in base64 as it is), but an unknown
            // encoding is still refused.
            cte(raw, part)?;
            let mut pos = part.body_start;
            for c in &part.children {
                if c.hdr_start < pos {
                    // An encapsulated message that starts at its parent's cut blank line:
                    // no header of its own, that line break belongs to the boundary.
                    body(raw, c, out)?;
                } else {
                    push_crlf(out, raw, pos..c.hdr_start);
                    whole(raw, c, out)?;
                }
                pos = c.body_end.max(pos);
            }
            push_crlf(out, raw, pos..part.body_end.max(pos));
        }
    }
    Ok(())
}

/// Appends header and body of `part`, the header rewritten when the body gets decoded.
pub(crate) fn whole(raw: &[u8], part: &Part, out: &mut Vec<u8>) -> Result<(), BinaryError> {
    // Dovecot rewrites the header of a part it decodes, except when a boundary cut the
    // header short before any blank line (then nothing is decoded and it keeps the header).
    let has_blank = part.fields_end == part.hdr_start
        || raw.get(part.fields_end.wrapping_sub(1)) == Some(&b'\n');
    let decoded = part.kind == Kind::Leaf
        && cte(raw, part)? != Cte::Identity
        && (part.body_end > part.body_start || has_blank);
    if decoded {
        for f in header::fields(raw, part.hdr_start..part.fields_end) {
            if !is_cte_field(raw, &f) {
                push_crlf(out, raw, f.line);
            }
        }
        // Its own blank line; a line break that the boundary owns follows it.
        out.extend_from_slice(b"Content-Transfer-Encoding: binary\r\n\r\n");
    } else {
        push_crlf(out, raw, part.header());
    }
    push_crlf(out, raw, part.hdr_end..part.body_start.max(part.hdr_end));
    body(raw, part, out)
}

/// A leaf whose BINARY is its body unchanged (size known without decoding).
pub(crate) fn is_plain_leaf(raw: &[u8], part: &Part) -> bool {
    part.kind == Kind::Leaf && cte(raw, part) == Ok(Cte::Identity)
}
