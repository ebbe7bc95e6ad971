//! 8BITMIME downgrade (RFC 6152 §3, what Postfix's smtp does when the peer lacks 8BITMIME):
//! every MIME leaf part whose body has 8-bit octets is re-encoded as quoted-printable
//! (RFC 2045 §6.7) and its Content-Transfer-Encoding header rewritten; multiparts are walked
//! by their boundaries, message/rfc822 parts recursively. What cannot be converted — 8-bit
//! header fields, 8-bit octets in a part labelled base64/quoted-printable, a multipart without
//! a boundary, nesting deeper than [`MAX_DEPTH`] — is an error (the caller bounces, 5.6.3).
//!
//! Input is untrusted (any message); work and memory are linear in its size.

/// Deepest MIME nesting converted.
pub const MAX_DEPTH: usize = 20;

/// Why the content cannot be sent 7-bit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unconvertible(pub &'static str);

/// Whether any octet has the high bit set.
pub fn has_8bit(b: &[u8]) -> bool {
    b.iter().any(|&c| c >= 0x80)
}

/// The header section (up to and excluding the blank line) of a message.
pub fn header_section(msg: &[u8]) -> &[u8] {
    split_entity(msg).0
}

/// The message converted to 7-bit; unchanged when it has no 8-bit octets.
pub fn downgrade(msg: &[u8]) -> Result<Vec<u8>, Unconvertible> {
    if !has_8bit(msg) {
        return Ok(msg.to_vec());
    }
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 4);
    entity(msg, true, 0, &mut out)?;
    Ok(out)
}

/// Header bytes (each line with its line end) and the body after the blank line.
fn split_entity(e: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let mut pos = 0;
    while pos < e.len() {
        let end = e[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(e.len(), |i| pos + i + 1);
        let line = &e[pos..end];
        if line == b"\r\n" || line == b"\n" {
            return (&e[..pos], line, &e[end..]);
        }
        pos = end;
    }
    (e, b"", b"")
}

/// Unfolded header fields: (lower-case name, value).
fn fields(h: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in h.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(text.trim());
            }
            continue;
        }
        if let Some((n, v)) = text.split_once(':') {
            out.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    out
}

/// Type/subtype (lower case) and boundary parameter of Content-Type.
fn content_type(fields: &[(String, String)]) -> (String, Option<String>) {
    let Some((_, v)) = fields.iter().find(|(n, _)| n == "content-type") else {
        return ("text/plain".into(), None);
    };
    let mut parts = split_params(v).into_iter();
    let ty = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let mut boundary = None;
    for p in parts {
        if let Some((k, val)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("boundary") {
                let val = val.trim();
                let val = val
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(val);
                if !val.is_empty() && val.len() <= 200 {
                    boundary = Some(val.to_owned());
                }
            }
        }
    }
    (ty, boundary)
}

/// Splits at `;` outside double quotes.
fn split_params(v: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn cte(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .find(|(n, _)| n == "content-transfer-encoding")
        .map(|(_, v)| v.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "7bit".into())
}

/// Header bytes without Content-Transfer-Encoding fields (with their continuation lines).
fn without_cte(h: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(h.len());
    let mut skipping = false;
    for line in h.split_inclusive(|&c| c == b'\n') {
        let cont = line.first().is_some_and(|&c| c == b' ' || c == b'\t');
        if !cont {
            skipping =
                line.len() >= 26 && line[..26].eq_ignore_ascii_case(b"content-transfer-encoding:");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out
}

fn entity(e: &[u8], top: bool, depth: usize, out: &mut Vec<u8>) -> Result<(), Unconvertible> {
    if depth > MAX_DEPTH {
        return Err(Unconvertible("MIME nesting too deep to convert to 7bit"));
    }
    let (h, blank, body) = split_entity(e);
    if has_8bit(h) {
        return Err(Unconvertible("8-bit header cannot be converted to 7bit"));
    }
    if !has_8bit(body) {
        out.extend_from_slice(e);
        return Ok(());
    }
    let f = fields(h);
    let (ty, boundary) = content_type(&f);
    let enc = cte(&f);
    let mime_version = f.iter().any(|(n, _)| n == "mime-version");
    let head_out = |out: &mut Vec<u8>, new_cte: &str| {
        out.extend_from_slice(&without_cte(h));
        if top && !mime_version {
            out.extend_from_slice(b"MIME-Version: 1.0\r\n");
        }
        out.extend_from_slice(b"Content-Transfer-Encoding: ");
        out.extend_from_slice(new_cte.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(if blank.is_empty() { b"\r\n" } else { blank });
    };
    if ty.starts_with("multipart/") {
        let Some(b) = boundary else {
            return Err(Unconvertible("multipart without boundary"));
        };
        head_out(out, "7bit");
        return multipart(body, b.as_bytes(), depth, out);
    }
    if ty == "message/rfc822" || ty == "message/global" {
        head_out(out, "7bit");
        return entity(body, false, depth + 1, out);
    }
    if enc == "base64" || enc == "quoted-printable" {
        return Err(Unconvertible(
            "8-bit data in an encoded part cannot be converted to 7bit",
        ));
    }
    head_out(out, "quoted-printable");
    qp_encode(body, out);
    Ok(())
}

/// Whether `line` (without its line end) is `--boundary` or `--boundary--`; Some(true) = last.
fn delimiter(line: &[u8], b: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(b)?;
    let rest_trim = trim_end_ws(rest);
    if rest_trim.is_empty() {
        return Some(false);
    }
    if rest_trim == b"--" {
        return Some(true);
    }
    None
}

fn trim_end_ws(mut b: &[u8]) -> &[u8] {
    while let Some((&last, head)) = b.split_last() {
        if last == b' ' || last == b'\t' || last == b'\r' {
            b = head;
        } else {
            break;
        }
    }
    b
}

fn multipart(body: &[u8], b: &[u8], depth: usize, out: &mut Vec<u8>) -> Result<(), Unconvertible> {
    // (start of part content, delimiter line range) pairs
    let mut part_start: Option<usize> = None;
    let mut pos = 0;
    let mut closed = false;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(body.len(), |i| pos + i + 1);
        let line = &body[pos..end];
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        if let Some(last) = delimiter(bare, b) {
            match part_start {
                None => {
                    // Preamble: carried over; 8-bit there has no encoding to declare.
                    let pre = &body[..pos];
                    if has_8bit(pre) {
                        return Err(Unconvertible("8-bit multipart preamble"));
                    }
                    out.extend_from_slice(pre);
                }
                Some(s) => {
                    // The CRLF before the delimiter belongs to the delimiter (RFC 2046 §5.1.1).
                    let content = &body[s..pos];
                    let (inner, eol) = match content.strip_suffix(b"\r\n") {
                        Some(i) => (i, &b"\r\n"[..]),
                        None => match content.strip_suffix(b"\n") {
                            Some(i) => (i, &b"\n"[..]),
                            None => (content, &b""[..]),
                        },
                    };
                    let mut part = Vec::new();
                    entity(inner, false, depth + 1, &mut part)?;
                    // A converted part ends with its own CRLF; avoid doubling it.
                    if part.ends_with(b"\r\n") && inner.last() != Some(&b'\n') {
                        part.truncate(part.len() - 2);
                    }
                    out.extend_from_slice(&part);
                    out.extend_from_slice(eol);
                }
            }
            out.extend_from_slice(line);
            if last {
                closed = true;
                pos = end;
                break;
            }
            part_start = Some(end);
        }
        pos = end;
    }
    if !closed {
        // No closing delimiter: the last part runs to the end.
        match part_start {
            Some(s) => {
                let mut part = Vec::new();
                entity(&body[s..], false, depth + 1, &mut part)?;
                out.extend_from_slice(&part);
            }
            None => return Err(Unconvertible("multipart without any delimiter")),
        }
        return Ok(());
    }
    let epilogue = &body[pos..];
    if has_8bit(epilogue) {
        return Err(Unconvertible("8-bit multipart epilogue"));
    }
    out.extend_from_slice(epilogue);
    Ok(())
}

/// Quoted-printable with CRLF hard line breaks and soft breaks at 76 columns.
pub fn qp_encode(body: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        lines.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    let ends_with_break = rest.is_empty();
    lines.push(rest);
    let n = lines.len();
    for (k, line) in lines.into_iter().enumerate() {
        if k + 1 == n && ends_with_break {
            break;
        }
        let mut col = 0;
        for (i, &c) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                (c == b' ' || c == b'\t') && !last || (33..=126).contains(&c) && c != b'=';
            let width = if literal { 1 } else { 3 };
            if col + width > 75 {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            if literal {
                out.push(c);
            } else {
                out.extend_from_slice(&[b'=', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
            }
            col += width;
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
#[path = "mime8_tests.rs"]
mod tests;
