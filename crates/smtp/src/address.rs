//! RFC 5321 §4.1.2 paths and mailboxes, with RFC 6531 UTF-8 local parts and domains.
//!
//! Parsing is strict about structure (dot-atoms, quoted strings, domains, address literals) and
//! lenient where Postfix is: a source route (`<@a,@b:user@c>`) is accepted and dropped, and the
//! angle brackets may be missing around a single-token address.

use std::fmt;

/// Why a path did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressError {
    Empty,
    MissingBracket,
    BadLocalPart,
    BadDomain,
    MissingDomain,
    /// Non-ASCII where SMTPUTF8 was not declared (RFC 6531 §3.4).
    NeedsSmtpUtf8,
    TrailingGarbage,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::Empty => "empty address",
            AddressError::MissingBracket => "missing '<' or '>'",
            AddressError::BadLocalPart => "invalid local part",
            AddressError::BadDomain => "invalid domain",
            AddressError::MissingDomain => "missing domain",
            AddressError::NeedsSmtpUtf8 => "non-ASCII address without SMTPUTF8",
            AddressError::TrailingGarbage => "garbage after address",
        })
    }
}

/// A domain name or an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`), as the client wrote
/// it (case preserved; compare with [`Domain::eq_ignore_case`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Domain(String);

impl Domain {
    /// Parses a domain or address literal. `utf8` allows U-labels (RFC 6531). One trailing
    /// dot (`example.org.`, the root made explicit) is accepted and dropped, as Postfix does.
    pub fn parse(s: &str, utf8: bool) -> Result<Domain, AddressError> {
        if s.starts_with('[') {
            return parse_literal(s).map(|()| Domain(s.to_owned()));
        }
        let s = match s.strip_suffix('.') {
            Some(rest) if !rest.is_empty() && !rest.ends_with('.') => rest,
            _ => s,
        };
        if s.is_empty() || s.len() > 255 {
            return Err(AddressError::BadDomain);
        }
        for label in s.split('.') {
            let b = label.as_bytes();
            let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
                return Err(AddressError::BadDomain);
            };
            if b.len() > 63 && b.is_ascii() {
                return Err(AddressError::BadDomain);
            }
            let ok_char = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || (utf8 && c >= 0x80);
            if first == b'-' || last == b'-' || !b.iter().all(|&c| ok_char(c)) {
                return Err(if !utf8 && !b.is_ascii() {
                    AddressError::NeedsSmtpUtf8
                } else {
                    AddressError::BadDomain
                });
            }
        }
        Ok(Domain(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_literal(&self) -> bool {
        self.0.starts_with('[')
    }
    pub fn eq_ignore_case(&self, other: &str) -> bool {
        self.0.to_lowercase() == other.to_lowercase()
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_literal(s: &str) -> Result<(), AddressError> {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(AddressError::BadDomain)?;
    if inner.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    if let Some(v6) = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
    {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| AddressError::BadDomain);
    }
    // General-address-literal: Standardized-tag ":" 1*dcontent
    let (tag, content) = inner.split_once(':').ok_or(AddressError::BadDomain)?;
    let tag_ok = !tag.is_empty()
        && tag.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        && !tag.ends_with('-');
    let content_ok = !content.is_empty()
        && content
            .bytes()
            .all(|c| (33..=90).contains(&c) || (94..=126).contains(&c));
    if tag_ok && content_ok {
        Ok(())
    } else {
        Err(AddressError::BadDomain)
    }
}

/// `local@domain`. The local part is kept decoded (quotes and backslashes removed); `Display`
/// quotes it again when it is not a dot-atom.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mailbox {
    local: String,
    domain: Domain,
}

impl Mailbox {
    /// Parses `local@domain` (no angle brackets).
    pub fn parse(s: &str, utf8: bool) -> Result<Mailbox, AddressError> {
        let (local, rest) = parse_local(s, utf8)?;
        let domain = rest.strip_prefix('@').ok_or(AddressError::MissingDomain)?;
        let domain = Domain::parse(domain, utf8)?;
        Ok(Mailbox { local, domain })
    }

    pub fn new(local: String, domain: Domain) -> Self {
        Mailbox { local, domain }
    }
    /// The decoded local part.
    pub fn local(&self) -> &str {
        &self.local
    }
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
    /// Whether the address needs SMTPUTF8 to be sent on.
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.0.is_ascii()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_atom(&self.local, true) {
            write!(f, "{}@{}", self.local, self.domain)
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            write!(f, "\"@{}", self.domain)
        }
    }
}

fn is_atext(c: u8, utf8: bool) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c) || (utf8 && c >= 0x80)
}

fn is_dot_atom(s: &str, utf8: bool) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|a| !a.is_empty() && a.bytes().all(|c| is_atext(c, utf8)))
}

/// Parses a local part at the start of `s`; returns it decoded and the rest (starting at '@').
fn parse_local(s: &str, utf8: bool) -> Result<(String, &str), AddressError> {
    if !utf8 && !s.is_ascii() {
        return Err(AddressError::NeedsSmtpUtf8);
    }
    if let Some(q) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    // An empty quoted local part ("") is allowed by RFC 5321's grammar.
                    return Ok((out, &q[i + 1..]));
                }
                '\\' => match chars.next() {
                    Some((_, e)) if (' '..='~').contains(&e) => out.push(e),
                    _ => return Err(AddressError::BadLocalPart),
                },
                ' ' | '!' | '#'..='[' | ']'..='~' => out.push(c),
                c if utf8 && !c.is_ascii() => out.push(c),
                _ => return Err(AddressError::BadLocalPart),
            }
        }
        return Err(AddressError::BadLocalPart);
    }
    let end = s.find('@').ok_or(AddressError::MissingDomain)?;
    let local = &s[..end];
    if local.is_empty() || !is_dot_atom(local, utf8) {
        return Err(AddressError::BadLocalPart);
    }
    Ok((local.to_owned(), &s[end..]))
}

/// MAIL FROM's argument: the null path `<>` (bounces) or a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Mailbox(Mailbox),
}

impl ReversePath {
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }
}

impl fmt::Display for ReversePath {
    /// The address without brackets; empty for the null path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(m) => write!(f, "{m}"),
        }
    }
}

/// RCPT TO's argument: a mailbox or the special `<Postmaster>` (RFC 5321 §4.1.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardPath {
    Postmaster,
    Mailbox(Mailbox),
}

impl ForwardPath {
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(m) => Some(m),
        }
    }
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("Postmaster"),
            ForwardPath::Mailbox(m) => write!(f, "{m}"),
        }
    }
}

/// Splits `<path> params` (after `FROM:`/`TO:`) into the path text (brackets and source route
/// removed) and the parameter text. Quoted strings may contain spaces and '>'.
pub(crate) fn split_path(arg: &str) -> Result<(&str, &str), AddressError> {
    let arg = arg.trim_start_matches(' ');
    if arg.is_empty() {
        return Err(AddressError::Empty);
    }
    let (path, rest) = if let Some(inner) = arg.strip_prefix('<') {
        let end = find_close(inner).ok_or(AddressError::MissingBracket)?;
        (&inner[..end], &inner[end + 1..])
    } else {
        // Postfix accepts a bare address when it is one token (strict_rfc821_envelopes = no).
        let end = arg.find(' ').unwrap_or(arg.len());
        let path = &arg[..end];
        if path.contains('<') || path.contains('>') || path.contains('"') {
            return Err(AddressError::MissingBracket);
        }
        (path, &arg[end..])
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(AddressError::TrailingGarbage);
    }
    // A-d-l ":" — source routes are ignored (RFC 5321 §4.1.1.3 / Appendix C).
    let path = if path.starts_with('@') {
        match path.find(':') {
            Some(i) => &path[i + 1..],
            None => return Err(AddressError::BadDomain),
        }
    } else {
        path
    };
    Ok((path, rest.trim_start_matches(' ')))
}

/// Index of the '>' closing the path, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '>' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

pub(crate) fn parse_reverse_path(path: &str, utf8: bool) -> Result<ReversePath, AddressError> {
    if path.is_empty() {
        return Ok(ReversePath::Null);
    }
    Mailbox::parse(path, utf8).map(ReversePath::Mailbox)
}

pub(crate) fn parse_forward_path(path: &str, utf8: bool) -> Result<ForwardPath, AddressError> {
    if path.is_empty() {
        return Err(AddressError::Empty);
    }
    if path.eq_ignore_ascii_case("postmaster") {
        return Ok(ForwardPath::Postmaster);
    }
    Mailbox::parse(path, utf8).map(ForwardPath::Mailbox)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> Result<Mailbox, AddressError> {
        Mailbox::parse(s, false)
    }

    #[test]
    fn mailboxes() {
        assert_eq!(mb("a.b+c@x.example").unwrap().local(), "a.b+c");
        // One trailing dot is the same domain (Postfix accepts it); two are not a domain.
        assert_eq!(mb("a@x.example.").unwrap().domain().as_str(), "x.example");
        assert!(mb("a@x.example..").is_err());
        assert!(mb("a@.").is_err());
        let q = mb("\"john \\\"q\\\" doe\"@x.example").unwrap();
        assert_eq!(q.local(), "john \"q\" doe");
        assert_eq!(q.to_string(), "\"john \\\"q\\\" doe\"@x.example");
        assert!(mb("a@[192.0.2.1]").is_ok());
        assert!(mb("a@[IPv6:2001:db8::1]").is_ok());
        assert!(mb("a@[300.1.1.1]").is_err());
        assert_eq!(mb("a..b@x").unwrap_err(), AddressError::BadLocalPart);
        assert_eq!(mb(".a@x").unwrap_err(), AddressError::BadLocalPart);
        assert_eq!(mb("a@").unwrap_err(), AddressError::BadDomain);
        assert_eq!(mb("a@-x.y").unwrap_err(), AddressError::BadDomain);
        assert_eq!(mb("a@x..y").unwrap_err(), AddressError::BadDomain);
        assert_eq!(mb("a").unwrap_err(), AddressError::MissingDomain);
        assert_eq!(mb("a b@x").unwrap_err(), AddressError::BadLocalPart);
        assert_eq!(mb("δ@x").unwrap_err(), AddressError::NeedsSmtpUtf8);
        let u = Mailbox::parse("δοκιμή@παράδειγμα.δοκιμή", true).unwrap();
        assert!(!u.is_ascii());
    }

    #[test]
    fn paths() {
        assert_eq!(split_path("<a@b> SIZE=10").unwrap(), ("a@b", "SIZE=10"));
        assert_eq!(split_path("<@r1,@r2:a@b>").unwrap(), ("a@b", ""));
        assert_eq!(
            split_path("a@b BODY=8BITMIME").unwrap(),
            ("a@b", "BODY=8BITMIME")
        );
        assert_eq!(split_path("<\"a>b\"@c>").unwrap(), ("\"a>b\"@c", ""));
        assert_eq!(
            split_path("<a@b").unwrap_err(),
            AddressError::MissingBracket
        );
        assert_eq!(
            split_path("<a@b>x").unwrap_err(),
            AddressError::TrailingGarbage
        );
        assert_eq!(parse_reverse_path("", false).unwrap(), ReversePath::Null);
        assert_eq!(
            parse_forward_path("POSTMASTER", false).unwrap(),
            ForwardPath::Postmaster
        );
        assert!(parse_forward_path("", false).is_err());
    }
}
