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
const SYNTAX_ERROR: &[u8] = b"SYNTAX_ERROR";

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
    // Whether an element was parsed since the last separator: an empty element before a
    // comma is reported as a missing address, as Dovecot does.
    let mut element = false;
    loop {
        lx.skip_cfws();
        match lx.peek() {
            None => break,
            Some(b',') => {
                lx.pos += 1;
                if !element {
                    out.push(Addr {
                        mailbox: Some(MISSING_MAILBOX.to_vec()),
                        domain: Some(MISSING_DOMAIN.to_vec()),
                        ..Addr::default()
                    });
                }
                element = false;
                continue;
            }
            Some(b';') if in_group => {
                lx.pos += 1;
                out.push(Addr::default());
                in_group = false;
                element = true;
                continue;
            }
            Some(_) => {}
        }
        element = true;
        let before = lx.pos;
        if !in_group {
            if let Some(name) = try_group_start(&mut lx) {
                out.push(Addr {
                    mailbox: Some(name),
                    ..Addr::default()
                });
                in_group = true;
                element = false;
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
        // An empty display name ("" <a@b>) is no name.
        addr.name = name.filter(|n| !n.is_empty());
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
        } else if addr.mailbox.as_deref().is_some_and(|m| !m.is_empty()) {
            // "<a@b" without ">": Dovecot keeps the local part and flags the domain.
            addr.domain = Some(SYNTAX_ERROR.to_vec());
        }
    } else {
        lx.pos = start;
        lx.last_comment = None;
        if addr_spec(lx, &mut addr) {
            addr.name = addr.mailbox.take();
        }
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

/// Parses `local-part ["@" domain]`; returns true when the local part was one quoted
/// string and no domain followed (Dovecot then takes it as a display name).
fn addr_spec(lx: &mut Lexer<'_>, addr: &mut Addr) -> bool {
    let mut local = Vec::new();
    let mut words = 0;
    let mut quoted_only = true;
    loop {
        lx.skip_cfws();
        words += 1;
        match lx.peek() {
            Some(b'"') => {
                lx.quoted(&mut local);
            }
            Some(b) if is_atext(b) || b == b'.' => {
                // Dovecot accepts leading, doubled and trailing dots in a local part.
                quoted_only = false;
                lx.take_while(|c| is_atext(c) || c == b'.', &mut local);
            }
            _ => {
                words -= 1;
                break;
            }
        }
        lx.skip_cfws();
        if lx.peek() == Some(b'.') {
            lx.pos += 1;
            local.push(b'.');
            quoted_only = false;
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
        return false;
    }
    quoted_only && words == 1
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
    // Dot-atom; an empty label ("b." or "a..b") makes the domain invalid, which Dovecot
    // reports as MISSING_DOMAIN.
    let start = out.len();
    let mut valid = true;
    loop {
        lx.skip_cfws();
        if !lx.take_while(is_atext, out) {
            valid = false;
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
    if !valid {
        out.truncate(start);
    }
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
