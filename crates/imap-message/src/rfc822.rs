//! RFC 5322 / RFC 2045 lexical parsing of unfolded header values: comments, atoms, tokens,
//! quoted strings, Content-Type style parameters (with RFC 2231 continuations) and address
//! lists. Linear time, no recursion (comment nesting is a counter).

/// A cursor over one unfolded header value.
pub(crate) struct Lexer<'a> {
    pub s: &'a [u8],
    pub pos: usize,
    /// Text of the last comment skipped (used as a display name after a bare addr-spec).
    pub last_comment: Option<Vec<u8>>,
    pub keep_comment: bool,
}

pub(crate) fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// RFC 2045 token: any CHAR except SPACE, CTLs and tspecials (8-bit accepted, as Dovecot).
pub(crate) fn is_token(b: u8) -> bool {
    b > b' ' && b != 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        Lexer {
            s,
            pos: 0,
            last_comment: None,
            keep_comment: false,
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Skips whitespace and (nested) comments. Returns false on an unterminated comment
    /// (the cursor is then at the end).
    pub(crate) fn skip_cfws(&mut self) -> bool {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.pos += 1,
                Some(b'(') => {
                    if !self.skip_comment() {
                        return false;
                    }
                }
                _ => return true,
            }
        }
    }

    fn skip_comment(&mut self) -> bool {
        let mut depth = 0usize;
        let mut text = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'(' => {
                    if depth > 0 {
                        text.push(b);
                    }
                    depth += 1;
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        if self.keep_comment {
                            self.last_comment = Some(text);
                        }
                        return true;
                    }
                    text.push(b);
                }
                b'\\' => {
                    if let Some(n) = self.peek() {
                        self.pos += 1;
                        text.push(n);
                    }
                }
                b'\r' | b'\n' => {}
                _ => text.push(b),
            }
        }
        false
    }

    /// A run of bytes accepted by `f`, appended to `out`; false if empty.
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool, out: &mut Vec<u8>) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        out.extend_from_slice(&self.s[start..self.pos]);
        self.pos > start
    }

    /// A quoted string at the cursor (which must be on `"`), unescaped into `out`. An
    /// unterminated string takes the rest of the input and returns false.
    pub(crate) fn quoted(&mut self, out: &mut Vec<u8>) -> bool {
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => return true,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        self.pos += 1;
                        out.push(n);
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
        }
        false
    }
}

/// MIME parameters, `(name, value)` in order.
pub(crate) type Param = (Vec<u8>, Vec<u8>);
pub(crate) type Params = Vec<Param>;

/// A parsed Content-Type: `ctype` is `(type, subtype)`; a broken value keeps what Dovecot
/// keeps (the type alone when the value ends right after it, else empty strings) and then
/// has no parameters.
#[derive(Clone, Debug, Default)]
pub(crate) struct ContentType {
    pub ctype: (Vec<u8>, Option<Vec<u8>>),
    pub params: Params,
}

pub(crate) fn parse_content_type(v: &[u8]) -> ContentType {
    let mut lx = Lexer::new(v);
    let broken = |ty: Vec<u8>| ContentType {
        ctype: (ty, None),
        params: Vec::new(),
    };
    if !lx.skip_cfws() || lx.at_end() {
        return broken(Vec::new());
    }
    let mut ty = Vec::new();
    if !lx.take_while(is_token, &mut ty) {
        return broken(Vec::new());
    }
    lx.skip_cfws();
    if lx.at_end() {
        return broken(ty);
    }
    if lx.peek() != Some(b'/') {
        return broken(Vec::new());
    }
    lx.pos += 1;
    if !lx.skip_cfws() || lx.at_end() {
        return broken(Vec::new());
    }
    let mut sub = Vec::new();
    if !lx.take_while(is_token, &mut sub) {
        return broken(Vec::new());
    }
    lx.skip_cfws();
    ContentType {
        ctype: (ty, Some(sub)),
        params: parse_params(&mut lx),
    }
}

/// Content-Disposition: the disposition token (possibly empty) and its parameters.
pub(crate) fn parse_disposition(v: &[u8]) -> (Vec<u8>, Params) {
    let mut lx = Lexer::new(v);
    lx.skip_cfws();
    let mut d = Vec::new();
    lx.take_while(is_token, &mut d);
    lx.skip_cfws();
    (d, parse_params(&mut lx))
}

/// `*(";" attribute "=" value)` with Dovecot's error recovery: a malformed parameter is
/// dropped and parsing resumes one byte further (in effect at the next `;`); a value that
/// starts with `=` (an unquoted encoded-word) runs to the next `;` or blank.
fn parse_params(lx: &mut Lexer<'_>) -> Params {
    let mut raw = Vec::new();
    while !lx.at_end() {
        match content_param(lx) {
            Some(p) => raw.push(p),
            None => {
                if lx.at_end() {
                    break;
                }
                lx.pos += 1;
            }
        }
    }
    rfc2231_merge(raw)
}

fn content_param(lx: &mut Lexer<'_>) -> Option<Param> {
    if lx.peek() != Some(b';') {
        return None;
    }
    lx.pos += 1;
    if !lx.skip_cfws() || lx.at_end() {
        return None;
    }
    let mut key = Vec::new();
    if !lx.take_while(is_token, &mut key) {
        return None;
    }
    if !lx.skip_cfws() || lx.peek() != Some(b'=') {
        return None;
    }
    lx.pos += 1;
    let mut val = Vec::new();
    if !lx.skip_cfws() {
        return None;
    }
    match lx.peek() {
        None => {}
        Some(b'"') => {
            if !lx.quoted(&mut val) {
                return None;
            }
            lx.skip_cfws();
        }
        Some(b'=') => {
            lx.take_while(
                |b| !matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n'),
                &mut val,
            );
        }
        Some(_) => {
            lx.take_while(is_token, &mut val);
            lx.skip_cfws();
        }
    }
    Some((key, val))
}

/// RFC 2231 continuations (`name*0`, `name*1*`, …) merged into one parameter after the plain
/// ones, sorted by name, exactly as Dovecot's rfc2231_parse does — including its quirks: a
/// bare `name*` takes the index of the previous continuation, and a series with a missing
/// index is returned unmerged as `name*N` / `name*N*`.
fn rfc2231_merge(params: Vec<Param>) -> Params {
    struct Cont {
        key: Vec<u8>,
        idx: u32,
        ext: bool,
        value: Vec<u8>,
    }
    let mut out = Vec::new();
    let mut conts: Vec<Cont> = Vec::new();
    let mut idx = 0u32;
    for (k, v) in params {
        let Some(star) = k.iter().position(|&b| b == b'*') else {
            out.push((k, v));
            continue;
        };
        let mut p = star;
        if p + 1 < k.len() {
            p += 1;
            idx = 0;
            while let Some(d) = k.get(p).filter(|d| d.is_ascii_digit()) {
                idx = idx.saturating_mul(10).saturating_add(u32::from(d - b'0'));
                p += 1;
            }
        }
        let ext = k.get(p) == Some(&b'*');
        if ext {
            p += 1;
        }
        if p != k.len() {
            out.push((k, v));
            continue;
        }
        conts.push(Cont {
            key: k[..star].to_vec(),
            idx,
            ext,
            value: v,
        });
    }
    conts.sort_by(|a, b| {
        a.key
            .to_ascii_lowercase()
            .cmp(&b.key.to_ascii_lowercase())
            .then(a.idx.cmp(&b.idx))
    });
    let mut i = 0;
    while i < conts.len() {
        let mut j = i;
        let mut ok = true;
        while j < conts.len() && conts[j].key.eq_ignore_ascii_case(&conts[i].key) {
            if conts[j].idx as usize != j - i {
                ok = false;
            }
            j += 1;
        }
        if ok {
            let mut key = conts[i].key.clone();
            if conts[i].ext {
                key.push(b'*');
            }
            let value = conts[i..j]
                .iter()
                .flat_map(|c| c.value.iter().copied())
                .collect();
            out.push((key, value));
        } else {
            for c in &conts[i..j] {
                let mut key = c.key.clone();
                key.push(b'*');
                key.extend_from_slice(c.idx.to_string().as_bytes());
                if c.ext {
                    key.push(b'*');
                }
                out.push((key, c.value.clone()));
            }
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type() {
        let p = parse_content_type(b"Text/Plain; charset=\"utf-8\" (c); format=flowed");
        assert_eq!(p.ctype, (b"Text".to_vec(), Some(b"Plain".to_vec())));
        assert_eq!(p.params.len(), 2);
        assert_eq!(p.params[0].1, b"utf-8");
        let p = parse_content_type(b"a/b; n*0=x; n*1=y; m*=utf-8''%41; bad; k=v");
        // "bad" has no "=": dropped, and recovery skips the ";" of k=v too (as Dovecot).
        assert_eq!(p.params.len(), 2);
        assert_eq!(p.params[0], (b"m*1*".to_vec(), b"utf-8''%41".to_vec()));
        assert_eq!(p.params[1], (b"n".to_vec(), b"xy".to_vec()));
        assert_eq!(parse_content_type(b"text").ctype, (b"text".to_vec(), None));
        assert_eq!(parse_content_type(b"text/").ctype, (Vec::new(), None));
    }
}
