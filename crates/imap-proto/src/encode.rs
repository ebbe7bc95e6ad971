//! Response building blocks. Strings are sent as an atom only where the grammar allows one,
//! else quoted when that is possible (no CR, LF, NUL, 8-bit only when `utf8`), else as a
//! literal.

/// `string`: quoted if every byte can be quoted, else a literal.
pub fn string(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    let quotable = s.len() < 1024
        && s.iter()
            .all(|&b| b != b'\r' && b != b'\n' && b != 0 && (b < 0x80 || utf8))
        && (!utf8 || std::str::from_utf8(s).is_ok());
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

/// `{n}CRLF` + bytes.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// `astring`: an atom when every byte is an ASTRING-CHAR, else [`string`].
pub fn astring(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    if !s.is_empty() && s.iter().all(|&b| crate::cursor::is_astring_char(b)) {
        out.extend_from_slice(s);
    } else {
        string(out, s, utf8);
    }
}

/// `nstring`: NIL or [`string`].
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>, utf8: bool) {
    match s {
        None => out.extend_from_slice(b"NIL"),
        Some(s) => string(out, s, utf8),
    }
}

/// A mailbox name as Dovecot sends it: always quoted (or a literal), `INBOX` as is.
pub fn mailbox(out: &mut Vec<u8>, name: &[u8], utf8: bool) {
    if name.eq_ignore_ascii_case(b"INBOX") {
        out.extend_from_slice(b"INBOX");
    } else {
        string(out, name, utf8);
    }
}

/// `(\Seen $Junk)`
pub fn flag_list<'a>(out: &mut Vec<u8>, flags: impl IntoIterator<Item = &'a str>) {
    out.push(b'(');
    for (i, f) in flags.into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.as_bytes());
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        let mut o = Vec::new();
        string(&mut o, b"a \"b\"\\", false);
        assert_eq!(o, b"\"a \\\"b\\\"\\\\\"");
        o.clear();
        string(&mut o, b"x\r\ny", false);
        assert_eq!(o, b"{4}\r\nx\r\ny");
        o.clear();
        string(&mut o, "ü".as_bytes(), false);
        assert_eq!(o, b"{2}\r\n\xc3\xbc");
        o.clear();
        astring(&mut o, b"INBOX", false);
        assert_eq!(o, b"INBOX");
    }
}
