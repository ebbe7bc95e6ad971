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

/// A parsed `type/subtype; params` value (Content-Type, or Content-Disposition with no `/`).
#[derive(Clone, Debug, Default)]
pub(crate) struct ParamValue {
    pub value: Vec<u8>,
    pub sub: Option<Vec<u8>>,
    pub params: Params,
}

/// Parses `token ["/" token] *(";" attribute "=" value)`. `None` when the leading token
/// (or `type/subtype` when `with_sub`) is malformed; parameters stop at the first syntax
/// error, keeping those before it.
pub(crate) fn parse_param_value(v: &[u8], with_sub: bool) -> Option<ParamValue> {
    let mut lx = Lexer::new(v);
    lx.skip_cfws();
    let mut out = ParamValue::default();
    if !lx.take_while(is_token, &mut out.value) {
        return None;
    }
    lx.skip_cfws();
    if with_sub {
        if lx.peek() != Some(b'/') {
            return None;
        }
        lx.pos += 1;
        lx.skip_cfws();
        let mut sub = Vec::new();
        if !lx.take_while(is_token, &mut sub) {
            return None;
        }
        out.sub = Some(sub);
        lx.skip_cfws();
    }
    let mut raw_params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    while lx.peek() == Some(b';') {
        lx.pos += 1;
        lx.skip_cfws();
        let mut key = Vec::new();
        if !lx.take_while(is_token, &mut key) {
            break;
        }
        lx.skip_cfws();
        if lx.peek() != Some(b'=') {
            break;
        }
        lx.pos += 1;
        lx.skip_cfws();
        let mut val = Vec::new();
        let ok = if lx.peek() == Some(b'"') {
            lx.quoted(&mut val);
            true
        } else {
            lx.take_while(is_token, &mut val)
        };
        if !ok {
            break;
        }
        raw_params.push((key, val));
        lx.skip_cfws();
    }
    out.params = rfc2231_merge(raw_params);
    Some(out)
}

/// Joins RFC 2231 continuations (`name*0`, `name*1*`, …) into one parameter, in order of the
/// first segment. A merged parameter with any extended (`*`) segment is named `name*` and its
/// value stays encoded, as Dovecot returns it.
fn rfc2231_merge(params: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    if !params.iter().any(|(k, _)| k.contains(&b'*')) {
        return params;
    }
    struct Cont {
        name: Vec<u8>,
        segs: Vec<(u32, bool, Vec<u8>)>,
    }
    let mut out: Vec<Result<Param, Cont>> = Vec::new();
    for (k, v) in params {
        let Some(star) = k.iter().position(|&b| b == b'*') else {
            out.push(Ok((k, v)));
            continue;
        };
        let base = k[..star].to_vec();
        let rest = &k[star + 1..];
        let (num, ext) = match rest {
            [] => {
                out.push(Ok((k, v)));
                continue;
            }
            _ => {
                let (digits, ext) = match rest.strip_suffix(b"*") {
                    Some(d) => (d, true),
                    None => (rest, false),
                };
                match std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse::<u32>().ok())
                {
                    Some(n) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
                        (n, ext)
                    }
                    _ => {
                        out.push(Ok((k, v)));
                        continue;
                    }
                }
            }
        };
        let existing = out.iter_mut().find_map(|e| match e {
            Err(c) if c.name.eq_ignore_ascii_case(&base) => Some(c),
            _ => None,
        });
        match existing {
            Some(c) => c.segs.push((num, ext, v)),
            None => out.push(Err(Cont {
                name: base,
                segs: vec![(num, ext, v)],
            })),
        }
    }
    out.into_iter()
        .map(|e| match e {
            Ok(p) => p,
            Err(mut c) => {
                c.segs.sort_by_key(|s| s.0);
                let ext = c.segs.iter().any(|s| s.1);
                let mut name = c.name;
                if ext {
                    name.push(b'*');
                }
                let mut val = Vec::new();
                for (_, _, v) in c.segs {
                    val.extend_from_slice(&v);
                }
                (name, val)
            }
        })
        .collect()
}

/// One ENVELOPE address or group marker: `(name route mailbox domain)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Addr {
    pub name: Option<Vec<u8>>,
    pub route: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub domain: Option<Vec<u8>>,
}

const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";

fn is_phrase_char(b: u8) -> bool {
    is_atext(b) || b == b'.'
}

/// Parses an address list (From/To/…) into ENVELOPE entries: groups become
/// `(NIL NIL "group" NIL)` … `(NIL NIL NIL NIL)`; a missing local part or domain is filled
/// with `MISSING_MAILBOX` / `MISSING_DOMAIN` (Dovecot's rendering of broken addresses).
pub(crate) fn parse_addresses(v: &[u8]) -> Vec<Addr> {
    let mut lx = Lexer::new(v);
    lx.keep_comment = true;
    let mut out = Vec::new();
    let mut in_group = false;
    loop {
        lx.skip_cfws();
        match lx.peek() {
            None => break,
            Some(b',') => {
                lx.pos += 1;
                continue;
            }
            Some(b';') if in_group => {
                lx.pos += 1;
                out.push(Addr::default());
                in_group = false;
                continue;
            }
            Some(_) => {}
        }
        let before = lx.pos;
        if !in_group {
            if let Some(name) = try_group_start(&mut lx) {
                out.push(Addr {
                    mailbox: Some(name),
                    ..Addr::default()
                });
                in_group = true;
                continue;
            }
            lx.pos = before;
        }
        parse_mailbox(&mut lx, &mut out);
        if lx.pos == before {
            // Nothing consumed: skip one byte so a stray special cannot stall us.
            lx.pos += 1;
        }
    }
    if in_group {
        out.push(Addr::default());
    }
    out
}

fn phrase(lx: &mut Lexer<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut words = 0usize;
    loop {
        lx.skip_cfws();
        match lx.peek() {
            Some(b'"') => {
                if words > 0 {
                    out.push(b' ');
                }
                lx.quoted(&mut out);
            }
            Some(b) if is_phrase_char(b) => {
                if words > 0 {
                    out.push(b' ');
                }
                lx.take_while(is_phrase_char, &mut out);
            }
            _ => break,
        }
        words += 1;
    }
    (words > 0).then_some(out)
}

fn try_group_start(lx: &mut Lexer<'_>) -> Option<Vec<u8>> {
    let name = phrase(lx)?;
    lx.skip_cfws();
    if lx.peek() == Some(b':') {
        lx.pos += 1;
        Some(name)
    } else {
        None
    }
}

fn parse_mailbox(lx: &mut Lexer<'_>, out: &mut Vec<Addr>) {
    let start = lx.pos;
    lx.last_comment = None;
    let name = phrase(lx);
    lx.skip_cfws();
    let mut addr = Addr::default();
    if lx.peek() == Some(b'<') {
        lx.pos += 1;
        addr.name = name;
        lx.skip_cfws();
        if lx.peek() == Some(b'@') {
            let mut route = Vec::new();
            while lx.peek() == Some(b'@') || lx.peek() == Some(b',') {
                if lx.peek() == Some(b',') {
                    route.push(b',');
                    lx.pos += 1;
                    lx.skip_cfws();
                    continue;
                }
                route.push(b'@');
                lx.pos += 1;
                domain(lx, &mut route);
                lx.skip_cfws();
            }
            if lx.peek() == Some(b':') {
                lx.pos += 1;
            }
            addr.route = Some(route);
        }
        addr_spec(lx, &mut addr);
        lx.skip_cfws();
        if lx.peek() == Some(b'>') {
            lx.pos += 1;
        }
    } else {
        lx.pos = start;
        lx.last_comment = None;
        addr_spec(lx, &mut addr);
        lx.skip_cfws();
        if let Some(c) = lx.last_comment.take() {
            if !c.is_empty() {
                addr.name = Some(c);
            }
        }
    }
    // Skip junk up to the next separator.
    while let Some(b) = lx.peek() {
        if b == b',' || b == b';' {
            break;
        }
        if b == b'"' {
            let mut sink = Vec::new();
            lx.quoted(&mut sink);
            continue;
        }
        if b == b'(' {
            lx.skip_cfws();
            continue;
        }
        lx.pos += 1;
    }
    if addr.mailbox.as_deref().is_none_or(<[u8]>::is_empty) {
        addr.mailbox = Some(MISSING_MAILBOX.to_vec());
    }
    if addr.domain.as_deref().is_none_or(<[u8]>::is_empty) {
        addr.domain = Some(MISSING_DOMAIN.to_vec());
    }
    out.push(addr);
}

fn addr_spec(lx: &mut Lexer<'_>, addr: &mut Addr) {
    let mut local = Vec::new();
    loop {
        lx.skip_cfws();
        match lx.peek() {
            Some(b'"') => {
                lx.quoted(&mut local);
            }
            Some(b) if is_atext(b) => {
                lx.take_while(is_atext, &mut local);
            }
            _ => break,
        }
        lx.skip_cfws();
        if lx.peek() == Some(b'.') {
            lx.pos += 1;
            local.push(b'.');
        } else {
            break;
        }
    }
    addr.mailbox = Some(local);
    lx.skip_cfws();
    if lx.peek() == Some(b'@') {
        lx.pos += 1;
        let mut d = Vec::new();
        domain(lx, &mut d);
        addr.domain = Some(d);
    }
}

fn domain(lx: &mut Lexer<'_>, out: &mut Vec<u8>) {
    lx.skip_cfws();
    if lx.peek() == Some(b'[') {
        while let Some(b) = lx.peek() {
            lx.pos += 1;
            match b {
                b'\\' => {
                    if let Some(n) = lx.peek() {
                        lx.pos += 1;
                        out.push(n);
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
            if b == b']' {
                break;
            }
        }
        return;
    }
    loop {
        lx.skip_cfws();
        if !lx.take_while(is_atext, out) {
            break;
        }
        lx.skip_cfws();
        if lx.peek() == Some(b'.') {
            lx.pos += 1;
            out.push(b'.');
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type() {
        let p = parse_param_value(b"Text/Plain; charset=\"utf-8\" (c); format=flowed", true);
        let p = p.unwrap_or_default();
        assert_eq!(p.value, b"Text");
        assert_eq!(p.sub.as_deref(), Some(&b"Plain"[..]));
        assert_eq!(p.params.len(), 2);
        assert_eq!(p.params[0].1, b"utf-8");
        let p = parse_param_value(b"a/b; n*0=x; n*1=y; m*=utf-8''%41", true).unwrap_or_default();
        assert_eq!(p.params[0], (b"n".to_vec(), b"xy".to_vec()));
        assert_eq!(p.params[1], (b"m*".to_vec(), b"utf-8''%41".to_vec()));
        assert!(parse_param_value(b"text", true).is_none());
    }

    #[test]
    fn addresses() {
        let a = parse_addresses(b"\"Doe, J\" <j@x.org>, k@y (Kay), g: a@b, c@d;, <@r1,@r2:m@e>");
        assert_eq!(a.len(), 7);
        assert_eq!(a[0].name.as_deref(), Some(&b"Doe, J"[..]));
        assert_eq!(a[1].name.as_deref(), Some(&b"Kay"[..]));
        assert_eq!(a[2].mailbox.as_deref(), Some(&b"g"[..]));
        assert_eq!(a[5], Addr::default());
        assert_eq!(a[6].route.as_deref(), Some(&b"@r1,@r2"[..]));
        let a = parse_addresses(b"foo");
        assert_eq!(a[0].domain.as_deref(), Some(MISSING_DOMAIN));
    }
}
