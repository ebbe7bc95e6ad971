//! RFC 5322 address lists as ENVELOPE needs them, parsed the way Dovecot 2.3's
//! message-address parser does, including its recovery from broken input (checked against
//! Dovecot in tests/dovecot_golden.rs):
//! - a group is `phrase ":" [mailbox-list] ";"` (the phrase may be empty) and becomes
//!   `(NIL NIL "name" NIL)` … `(NIL NIL NIL NIL)`;
//! - a missing local part or domain becomes `MISSING_MAILBOX` / `MISSING_DOMAIN`, a broken
//!   `<…>` gets the domain `SYNTAX_ERROR`, a broken route `INVALID_ROUTE`;
//! - after an address that does not end in `,` the rest of the list is ignored;
//! - a comment after a bare addr-spec is its display name.
//!
//! Every step consumes input or stops, so parsing is linear; nothing recurses.

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
const INVALID_ROUTE: &[u8] = b"INVALID_ROUTE";

/// RFC 5322 atext plus 8-bit bytes (Dovecot accepts those in atoms).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// Parser state. Results follow Dovecot's convention: `1` = more input follows, `0` = the
/// end was reached, `-1` = syntax error.
struct P<'a> {
    s: &'a [u8],
    pos: usize,
    last_comment: Vec<u8>,
    out: Vec<Addr>,
    addr: Addr,
    /// Fill a missing local part or domain with MISSING_* (ENVELOPE) or leave it empty
    /// (SEARCH).
    fill: bool,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn more(&self) -> i32 {
        i32::from(self.pos < self.s.len())
    }

    fn skip_comment(&mut self) -> i32 {
        self.last_comment.clear();
        self.pos += 1;
        let mut level = 1usize;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        return self.more();
                    }
                }
                b'\\' => match self.peek() {
                    Some(n) => {
                        self.pos += 1;
                        self.last_comment.push(n);
                        continue;
                    }
                    None => return -1,
                },
                _ => {}
            }
            self.last_comment.push(b);
        }
        -1
    }

    fn skip_lwsp(&mut self) -> i32 {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.pos += 1,
                Some(b'(') => {
                    if self.skip_comment() < 0 {
                        return -1;
                    }
                }
                _ => return self.more(),
            }
        }
    }

    fn quoted(&mut self, out: &mut Vec<u8>) -> i32 {
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => return self.skip_lwsp(),
                b'\\' => match self.peek() {
                    Some(n) => {
                        self.pos += 1;
                        out.push(n);
                    }
                    None => return -1,
                },
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
        }
        -1
    }

    fn take(&mut self, f: impl Fn(u8) -> bool, out: &mut Vec<u8>) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        out.extend_from_slice(&self.s[start..self.pos]);
        self.pos - start
    }

    fn phrase(&mut self, out: &mut Vec<u8>) -> i32 {
        match self.peek() {
            None => return 0,
            Some(b'.') => return -1,
            Some(_) => {}
        }
        loop {
            let r = if self.peek() == Some(b'"') {
                self.quoted(out)
            } else {
                self.take(|b| is_atext(b) || b == b'.', out);
                self.skip_lwsp()
            };
            if r <= 0 {
                return r;
            }
            match self.peek() {
                Some(b) if is_atext(b) || b == b'"' || b == b'.' => out.push(b' '),
                _ => break,
            }
        }
        self.skip_lwsp()
    }

    /// Local part: quoted string, or atoms and dots (leading, doubled and trailing dots
    /// accepted, as Dovecot does).
    fn local_part(&mut self) -> i32 {
        let mut v = Vec::new();
        let r = match self.peek() {
            Some(b'"') => self.quoted(&mut v),
            Some(b) if is_atext(b) || b == b'.' => loop {
                self.take(is_atext, &mut v);
                let r = self.skip_lwsp();
                if r <= 0 {
                    break r;
                }
                if self.peek() != Some(b'.') {
                    break 1;
                }
                self.pos += 1;
                v.push(b'.');
                // A blank after the dot ends the local part ("J. Doe" is two words).
                if matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n' | b'(')) {
                    break self.skip_lwsp();
                }
                if self.peek().is_none() {
                    break 0;
                }
            },
            _ => return -1,
        };
        if r >= 0 {
            self.addr.mailbox = Some(v);
        }
        r
    }

    /// `"@" domain` at the cursor, appended to `out`: a dot-atom with no empty label, or a
    /// domain literal kept as written.
    fn domain_into(&mut self, out: &mut Vec<u8>) -> i32 {
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        if self.peek() == Some(b'[') {
            let start = self.pos;
            while let Some(b) = self.peek() {
                self.pos += 1;
                match b {
                    b'\\' => {
                        if self.peek().is_none() {
                            return -1;
                        }
                        self.pos += 1;
                    }
                    b']' => {
                        out.extend_from_slice(&self.s[start..self.pos]);
                        return self.skip_lwsp();
                    }
                    _ => {}
                }
            }
            return -1;
        }
        loop {
            if self.take(is_atext, out) == 0 {
                return -1;
            }
            let r = self.skip_lwsp();
            if r <= 0 {
                return r;
            }
            if self.peek() != Some(b'.') {
                return 1;
            }
            self.pos += 1;
            out.push(b'.');
            if self.skip_lwsp() <= 0 {
                return -1;
            }
        }
    }

    fn domain(&mut self) -> i32 {
        let mut d = Vec::new();
        let r = self.domain_into(&mut d);
        if r >= 0 {
            self.addr.domain = Some(d);
        }
        r
    }

    fn route(&mut self) -> i32 {
        let mut v = Vec::new();
        loop {
            match self.peek() {
                None => return 0,
                Some(b'@') => {}
                Some(_) => break,
            }
            if !v.is_empty() {
                v.push(b',');
            }
            v.push(b'@');
            let r = self.domain_into(&mut v);
            if r <= 0 {
                return r;
            }
            while self.skip_lwsp() > 0 && self.peek() == Some(b',') {
                self.pos += 1;
            }
        }
        self.addr.route = Some(v);
        1
    }

    fn angle_addr(&mut self) -> i32 {
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        if self.peek() == Some(b'>') {
            // "<>": no address at all (missing mailbox and domain, not a syntax error).
            self.pos += 1;
            return self.skip_lwsp();
        }
        if self.peek() == Some(b'@') {
            if self.route() <= 0 || self.peek() != Some(b':') {
                // Dovecot marks the route and reads on.
                self.addr.route = Some(INVALID_ROUTE.to_vec());
            } else {
                self.pos += 1;
                if self.skip_lwsp() <= 0 {
                    return -1;
                }
            }
            if self.peek() == Some(b'>') {
                // "<@route:>": a route and no address.
                self.pos += 1;
                return self.skip_lwsp();
            }
        }
        if self.local_part() <= 0 {
            return -1;
        }
        if self.peek() == Some(b'@') && self.domain() <= 0 {
            return -1;
        }
        if self.peek() != Some(b'>') {
            return -1;
        }
        self.pos += 1;
        self.skip_lwsp()
    }

    fn name_addr(&mut self) -> i32 {
        let mut name = Vec::new();
        if self.phrase(&mut name) <= 0 || self.peek() != Some(b'<') {
            return -1;
        }
        self.addr.name = (!name.is_empty()).then_some(name);
        if self.angle_addr() < 0 {
            self.addr.domain = Some(SYNTAX_ERROR.to_vec());
        }
        self.more()
    }

    fn addr_spec(&mut self) -> i32 {
        self.last_comment.clear();
        let mut r = self.local_part();
        if r != 0 && self.peek() == Some(b'@') {
            let r2 = self.domain();
            if r2 <= 0 {
                r = r2;
            }
        }
        if !self.last_comment.is_empty() {
            self.addr.name = Some(self.last_comment.clone());
        }
        r
    }

    fn push_fixed(&mut self) {
        let mut a = std::mem::take(&mut self.addr);
        let (m, d): (&[u8], &[u8]) = if self.fill {
            (MISSING_MAILBOX, MISSING_DOMAIN)
        } else {
            (b"", b"")
        };
        a.mailbox.get_or_insert_with(|| m.to_vec());
        a.domain.get_or_insert_with(|| d.to_vec());
        self.out.push(a);
    }

    fn mailbox(&mut self) -> i32 {
        let start = self.pos;
        let mut r = self.name_addr();
        if r < 0 {
            self.pos = start;
            self.addr = Addr::default();
            r = self.addr_spec();
            // A lone quoted string is a display name, not a local part.
            let lone = self.addr.domain.is_none() && self.addr.name.is_none();
            if r >= 0 && lone && self.s.get(start) == Some(&b'"') {
                self.addr.name = self.addr.mailbox.take();
            }
            // More words after a local part without "@": the words are a display name with
            // no address (Dovecot 2.3).
            let more_words = self.peek().is_some_and(|b| is_atext(b) || b == b'"');
            if r > 0 && self.addr.domain.is_none() && more_words {
                self.pos = start;
                self.addr = Addr::default();
                let mut name = Vec::new();
                r = self.phrase(&mut name);
                self.addr.name = (!name.is_empty()).then_some(name);
            }
        }
        self.push_fixed();
        r
    }

    fn group(&mut self) -> i32 {
        let mut name = Vec::new();
        if self.phrase(&mut name) <= 0 || self.peek() != Some(b':') {
            return -1;
        }
        self.pos += 1;
        let mut r = self.skip_lwsp();
        self.out.push(Addr {
            mailbox: Some(name),
            ..Addr::default()
        });
        if r > 0 && self.peek() != Some(b';') {
            loop {
                // Only the end of the input stops the list; a broken mailbox followed by ","
                // does not (Dovecot 2.3).
                if self.mailbox() == 0 {
                    r = -1;
                    break;
                }
                if self.peek() != Some(b',') {
                    break;
                }
                self.pos += 1;
                if self.skip_lwsp() <= 0 {
                    r = -1;
                    break;
                }
            }
        }
        if r >= 0 {
            if self.peek() == Some(b';') {
                self.pos += 1;
                r = self.skip_lwsp();
            } else {
                r = -1;
            }
        }
        self.out.push(Addr::default());
        if r == 0 {
            0
        } else {
            1
        }
    }

    fn address(&mut self) -> i32 {
        let start = self.pos;
        let r = self.group();
        if r >= 0 {
            return r;
        }
        self.pos = start;
        self.addr = Addr::default();
        self.mailbox()
    }
}

/// Parses an address header value (unfolded) into ENVELOPE entries.
pub(crate) fn parse_addresses(v: &[u8]) -> Vec<Addr> {
    parse(v, true)
}

/// Headers whose values SEARCH matches in their parsed and rewritten form (Dovecot's list).
pub(crate) fn is_address_header(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 11] = [
        b"From",
        b"Sender",
        b"Reply-To",
        b"To",
        b"Cc",
        b"Bcc",
        b"Resent-From",
        b"Resent-Sender",
        b"Resent-To",
        b"Resent-Cc",
        b"Resent-Bcc",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// An address header as SEARCH sees it (Dovecot): parsed (without MISSING_* fillers) and
/// written back as `name <route:local@domain>`, `local@domain` and `group: …;`, joined by
/// ", "; what the parser dropped after a syntax error is not searchable.
pub(crate) fn rewrite_for_search(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut first = true;
    let mut in_group = false;
    for a in parse(v, false) {
        if first {
            first = false;
        } else {
            out.extend_from_slice(b", ");
        }
        let Some(d) = &a.domain else {
            // Group start (its name in `mailbox`) or end.
            if in_group {
                out.truncate(out.len().saturating_sub(2));
                out.push(b';');
            } else {
                out.extend_from_slice(a.mailbox.as_deref().unwrap_or_default());
                out.extend_from_slice(b": ");
                first = true;
            }
            in_group = !in_group;
            continue;
        };
        let m = a.mailbox.as_deref().unwrap_or_default();
        let named = a.name.as_deref().is_some_and(|n| !n.is_empty());
        if named || a.route.is_some() {
            if let Some(n) = &a.name {
                out.extend_from_slice(n);
                out.push(b' ');
            }
            out.push(b'<');
            if let Some(r) = &a.route {
                out.extend_from_slice(r);
                out.push(b':');
            }
        }
        out.extend_from_slice(m);
        out.push(b'@');
        out.extend_from_slice(d);
        if named || a.route.is_some() {
            out.push(b'>');
        }
    }
    out
}

fn parse(v: &[u8], fill: bool) -> Vec<Addr> {
    let mut p = P {
        s: v,
        pos: 0,
        last_comment: Vec::new(),
        out: Vec::new(),
        addr: Addr::default(),
        fill,
    };
    if p.skip_lwsp() <= 0 {
        return Vec::new();
    }
    loop {
        if p.address() == 0 {
            break;
        }
        if p.peek() != Some(b',') {
            break;
        }
        p.pos += 1;
        let r = p.skip_lwsp();
        if r <= 0 {
            if r < 0 {
                p.push_fixed();
            }
            break;
        }
    }
    p.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: &[u8]) -> Vec<String> {
        parse_addresses(v)
            .iter()
            .map(|a| {
                let f = |x: &Option<Vec<u8>>| {
                    x.as_deref()
                        .map_or("NIL".into(), |s| String::from_utf8_lossy(s).into_owned())
                };
                format!(
                    "{} {} {} {}",
                    f(&a.name),
                    f(&a.route),
                    f(&a.mailbox),
                    f(&a.domain)
                )
            })
            .collect()
    }

    #[test]
    fn lists() {
        assert_eq!(
            show(b"\"Doe, J\" <j@x.org>, k@y (Kay), g: a@b;, <@r1,@r2:m@e>"),
            [
                "Doe, J NIL j x.org",
                "Kay NIL k y",
                "NIL NIL g NIL",
                "NIL NIL a b",
                "NIL NIL NIL NIL",
                "NIL @r1,@r2 m e"
            ]
        );
        assert_eq!(show(b"foo"), ["NIL NIL foo MISSING_DOMAIN"]);
        assert_eq!(show(b",,"), ["NIL NIL MISSING_MAILBOX MISSING_DOMAIN"; 2]);
        assert_eq!(
            show(b"<a@b, c@d"),
            ["NIL NIL a SYNTAX_ERROR", "NIL NIL c d"]
        );
        assert_eq!(
            show(b"x <@r.example>"),
            ["x INVALID_ROUTE MISSING_MAILBOX MISSING_DOMAIN"]
        );
        assert!(show(b"  ").is_empty());
    }
}
