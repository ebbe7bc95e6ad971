//! The MIME tree: one linear pass over the message with a stack of active boundaries, the
//! way Dovecot's message parser cuts a message, so part sizes, line counts and section
//! numbers agree with Dovecot's.
//!
//! Rules (RFC 2046 §5.1 plus Dovecot's choices where the RFC is silent):
//! - a boundary line is `--` + a boundary of any enclosing multipart at the start of a line;
//!   the rest of the line is ignored, the longest matching boundary wins; `--b--` closes;
//! - the line break before a boundary line belongs to the boundary, not to the part;
//! - a boundary line also ends a header that has no blank line;
//! - preamble and epilogue are not parts;
//! - `message/rfc822` has one child: the encapsulated message;
//! - parts in `multipart/digest` default to `message/rfc822`;
//! - nesting deeper than [`MAX_DEPTH`] or more than [`MAX_PARTS`] parts: the rest is a leaf.

use crate::header::{self, line_at, Line};
use crate::rfc822::{Lexer, Params};
use std::ops::Range;

/// Deepest multipart / message/rfc822 nesting parsed (Dovecot's default limit too).
pub(crate) const MAX_DEPTH: usize = 100;
/// Longest boundary accepted.
pub(crate) const MAX_BOUNDARY: usize = 1000;
/// Most parts parsed in one message (Dovecot's default limit too).
pub(crate) const MAX_PARTS: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Leaf,
    Multipart,
    /// message/rfc822: `children[0]` is the encapsulated message.
    Message,
}

/// Content-* header data of one part (first occurrence of each header wins).
#[derive(Clone, Debug, Default)]
pub(crate) struct Content {
    /// `Some` when a Content-Type header was seen: (type, subtype) as written, possibly empty
    /// when broken.
    pub ctype: Option<(Vec<u8>, Option<Vec<u8>>)>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub cte: Option<Vec<u8>>,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    pub md5: Option<Vec<u8>>,
    pub location: Option<Vec<u8>>,
    pub disposition: Option<(Vec<u8>, Params)>,
    pub language: Option<Vec<Vec<u8>>>,
}

impl Content {
    pub(crate) fn is_type(&self, t: &[u8], sub: Option<&[u8]>) -> bool {
        match &self.ctype {
            Some((ty, st)) => {
                ty.eq_ignore_ascii_case(t)
                    && sub.is_none_or(|s| st.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(s)))
            }
            None => false,
        }
    }

    pub(crate) fn param(&self, name: &[u8]) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Part {
    pub hdr_start: usize,
    /// End of the header as a section (MIME/HEADER): normally `body_start`, but when a
    /// boundary line follows the header directly, the line break before it belongs to the
    /// boundary (Dovecot's cut).
    pub hdr_end: usize,
    /// Where the header's blank line starts (end of the fields).
    pub fields_end: usize,
    pub body_start: usize,
    pub body_end: usize,
    pub kind: Kind,
    /// Set when the Content-Type was absent and the part sits in a multipart/digest.
    pub digest_default: bool,
    /// A multipart or message/rfc822 nested deeper than Dovecot parses: kept as one leaf,
    /// which Dovecot reports as application/octet-stream.
    pub over_limit: bool,
    pub content: Content,
    pub children: Vec<Part>,
}

impl Part {
    /// A part with no header and no body at `pos`.
    pub(crate) fn empty(pos: usize) -> Part {
        Part {
            hdr_start: pos,
            hdr_end: pos,
            fields_end: pos,
            body_start: pos,
            body_end: pos,
            kind: Kind::Leaf,
            digest_default: false,
            over_limit: false,
            content: Content::default(),
            children: Vec::new(),
        }
    }

    pub(crate) fn header(&self) -> Range<usize> {
        self.hdr_start..self.hdr_end
    }
    pub(crate) fn body(&self) -> Range<usize> {
        self.body_start..self.body_end
    }
}

/// Parses the Content-* fields of `raw[hdr]`. `in_multipart`: the part is a multipart
/// child, where Content-* headers count without MIME-Version.
pub(crate) fn parse_content(raw: &[u8], hdr: Range<usize>, in_multipart: bool) -> Content {
    let mut c = Content::default();
    let mut is_mime = in_multipart;
    for f in header::fields(raw, hdr) {
        let name = &raw[f.name.clone()];
        if name.eq_ignore_ascii_case(b"MIME-Version") {
            is_mime = true;
            continue;
        }
        if name.len() < 8 || !name[..8].eq_ignore_ascii_case(b"Content-") {
            continue;
        }
        let rest = &name[8..];
        let value = header::unfold(&raw[f.value.clone()]);
        if rest.eq_ignore_ascii_case(b"Type") {
            is_mime = true;
            if c.ctype.is_none() {
                parse_ctype(&mut c, &value);
            }
        } else if rest.eq_ignore_ascii_case(b"Transfer-Encoding") {
            if c.cte.is_none() {
                let mut lx = Lexer::new(&value);
                lx.skip_cfws();
                let mut tok = Vec::new();
                lx.take_while(crate::rfc822::is_token, &mut tok);
                lx.skip_cfws();
                if lx.at_end() && !tok.is_empty() {
                    c.cte = Some(tok);
                }
            }
        } else if rest.eq_ignore_ascii_case(b"ID") {
            c.id.get_or_insert(value);
        } else if rest.eq_ignore_ascii_case(b"MD5") {
            c.md5.get_or_insert(value);
        } else if rest.eq_ignore_ascii_case(b"Description") {
            c.description.get_or_insert(value);
        } else if rest.eq_ignore_ascii_case(b"Location") {
            c.location.get_or_insert(value);
        } else if rest.eq_ignore_ascii_case(b"Language") {
            if c.language.is_none() {
                c.language = parse_language(&value);
            }
        } else if rest.eq_ignore_ascii_case(b"Disposition") {
            // Dovecot re-parses a later Content-Disposition while the earlier had no params.
            if c.disposition.as_ref().is_none_or(|d| d.1.is_empty()) {
                c.disposition = Some(crate::rfc822::parse_disposition(&value));
            }
        }
    }
    if !is_mime {
        return Content::default();
    }
    c
}

fn parse_ctype(c: &mut Content, value: &[u8]) {
    let ct = crate::rfc822::parse_content_type(value);
    c.ctype = Some(ct.ctype);
    c.params = ct.params;
}

fn parse_language(v: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut lx = Lexer::new(v);
    lx.skip_cfws();
    let mut langs = Vec::new();
    loop {
        let mut atom = Vec::new();
        if !lx.take_while(crate::rfc822::is_atext, &mut atom) {
            break;
        }
        langs.push(atom);
        lx.skip_cfws();
        if lx.peek() != Some(b',') {
            break;
        }
        lx.pos += 1;
        lx.skip_cfws();
    }
    (!langs.is_empty()).then_some(langs)
}

/// `pos` moved back over one line break ending just before it, but not before `min`.
fn cut_eol(raw: &[u8], min: usize, pos: usize) -> usize {
    let mut e = pos;
    if e > min && raw.get(e - 1) == Some(&b'\n') {
        e -= 1;
        if e > min && raw.get(e - 1) == Some(&b'\r') {
            e -= 1;
        }
    }
    e
}

/// Where a scan stopped.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Eof,
    /// A boundary line of `bounds[idx]`; `end` is where the data before it ends: the line
    /// break before a boundary line belongs to the boundary when it was scanned as body
    /// data, not when it ends a header or a boundary line (Dovecot's sizes).
    Boundary {
        idx: usize,
        close: bool,
        line: Line,
        end: usize,
    },
}

struct Parser<'a> {
    raw: &'a [u8],
    end: usize,
    bounds: Vec<Vec<u8>>,
    parts: usize,
}

/// Builds the MIME tree of the message `raw`.
pub(crate) fn parse_tree(raw: &[u8]) -> Part {
    let mut p = Parser {
        raw,
        end: raw.len(),
        bounds: Vec::new(),
        parts: 0,
    };
    p.part(0, 0, false, false).0
}

impl Parser<'_> {
    /// Matches a line against the active boundaries (longest prefix wins, innermost first).
    fn boundary(&self, line: Line) -> Option<(usize, bool)> {
        if self.parts >= MAX_PARTS {
            // No more parts can be added: like Dovecot, stop looking for boundaries, so the
            // current part runs to the end of the message.
            return None;
        }
        let content = self.raw.get(line.start..line.content_end)?;
        let data = content.strip_prefix(b"--")?;
        let mut best: Option<usize> = None;
        for (i, b) in self.bounds.iter().enumerate().rev() {
            if data.starts_with(b) && best.is_none_or(|j| self.bounds[j].len() < b.len()) {
                best = Some(i);
                if b.len() == data.len() || (data.ends_with(b"--") && b.len() + 2 == data.len()) {
                    break;
                }
            }
        }
        let i = best?;
        let rest = &data[self.bounds[i].len()..];
        Some((i, rest.starts_with(b"--")))
    }

    /// Scans body data from `start` to the next boundary line of any enclosing multipart.
    fn scan(&self, start: usize) -> Stop {
        if self.bounds.is_empty() {
            return Stop::Eof;
        }
        let mut pos = start;
        while let Some(l) = line_at(self.raw, pos, self.end) {
            if self.raw.get(l.start) == Some(&b'-') {
                if let Some((idx, close)) = self.boundary(l) {
                    let end = cut_eol(self.raw, start, l.start);
                    return Stop::Boundary {
                        idx,
                        close,
                        line: l,
                        end,
                    };
                }
            }
            pos = l.next;
        }
        Stop::Eof
    }

    fn part(
        &mut self,
        start: usize,
        depth: usize,
        in_multipart: bool,
        digest: bool,
    ) -> (Part, Stop) {
        self.parts += 1;
        // Header: up to a blank line, a boundary line or the end.
        let mut pos = start;
        let mut hdr_stop = None;
        let (fields_end, body_start) = loop {
            match line_at(self.raw, pos, self.end) {
                None => break (self.end, self.end),
                Some(l) => {
                    if l.content_end == l.start && l.next > l.start {
                        break (l.start, l.next);
                    }
                    if !self.bounds.is_empty() && self.raw.get(l.start) == Some(&b'-') {
                        if let Some((idx, close)) = self.boundary(l) {
                            let end = l.start;
                            hdr_stop = Some(Stop::Boundary {
                                idx,
                                close,
                                line: l,
                                end,
                            });
                            break (cut_eol(self.raw, start, l.start), l.start);
                        }
                    }
                    pos = l.next;
                }
            }
        };
        let content = parse_content(self.raw, start..fields_end, in_multipart);
        let digest_default = digest && content.ctype.is_none();
        let mut part = Part {
            hdr_start: start,
            hdr_end: if hdr_stop.is_some() {
                fields_end
            } else {
                body_start
            },
            fields_end,
            body_start,
            body_end: body_start,
            kind: Kind::Leaf,
            digest_default,
            over_limit: false,
            content,
            children: Vec::new(),
        };
        // A part at depth 99 (the root is 0) can no longer contain parts (Dovecot's limit).
        let too_deep = depth + 1 >= MAX_DEPTH;
        let container = part.content.is_type(b"multipart", None)
            || digest_default
            || part.content.is_type(b"message", Some(b"rfc822"));
        if container && too_deep {
            part.over_limit = true;
        }
        if let Some(stop) = hdr_stop.filter(|_| part.over_limit) {
            return (part, stop);
        }
        if let Some(stop) = hdr_stop {
            // A boundary cut the header short: the part keeps its type, with no content.
            if part.content.is_type(b"multipart", None) {
                part.kind = Kind::Multipart;
            } else if digest_default || part.content.is_type(b"message", Some(b"rfc822")) {
                part.kind = Kind::Message;
                // The encapsulated message starts where the header was cut.
                part.children.push(Part::empty(fields_end));
            }
            return (part, stop);
        }
        let can_nest = !too_deep && self.parts < MAX_PARTS;
        let multipart = part.content.is_type(b"multipart", None);
        let boundary = if multipart {
            // Boundaries are at most 70 bytes (RFC 2046); absurdly long ones are ignored so
            // that matching stays cheap per line.
            part.content
                .param(b"boundary")
                .filter(|b| b.len() <= MAX_BOUNDARY)
                .map(<[u8]>::to_vec)
        } else {
            None
        };
        let is_message = digest_default || part.content.is_type(b"message", Some(b"rfc822"));
        if multipart && !too_deep {
            // Without a boundary it is still a multipart, one with no parts.
            part.kind = Kind::Multipart;
        }
        let stop = if let (Some(b), true) = (boundary, can_nest) {
            let is_digest = part.content.is_type(b"multipart", Some(b"digest"));
            let me = self.bounds.len();
            self.bounds.push(b);
            let mut stop = self.scan(body_start);
            loop {
                match stop {
                    Stop::Boundary {
                        idx,
                        close: false,
                        line,
                        ..
                    } if idx == me && line.content_end >= self.end => {
                        // A boundary line that ends the file without a line break starts no
                        // new part (Dovecot): like a closing delimiter with no epilogue.
                        self.bounds.truncate(me);
                        stop = Stop::Eof;
                        break;
                    }
                    Stop::Boundary {
                        idx,
                        close: false,
                        line,
                        ..
                    } if idx == me => {
                        if self.parts >= MAX_PARTS {
                            stop = self.scan(line.next);
                            continue;
                        }
                        let (child, s) = self.part(line.next, depth + 1, true, is_digest);
                        part.children.push(child);
                        stop = s;
                    }
                    Stop::Boundary {
                        idx,
                        close: true,
                        line,
                        ..
                    } if idx == me => {
                        self.bounds.truncate(me);
                        stop = self.scan(line.next);
                        break;
                    }
                    _ => {
                        self.bounds.truncate(me);
                        break;
                    }
                }
            }
            stop
        } else if is_message && !multipart && can_nest {
            part.kind = Kind::Message;
            let (child, s) = self.part(body_start, depth + 1, false, false);
            part.children.push(child);
            s
        } else {
            self.scan(body_start)
        };
        part.body_end = match stop {
            Stop::Eof => self.end,
            Stop::Boundary { end, .. } => end.max(body_start),
        };
        if let Stop::Boundary { line, .. } = stop {
            if line.start == body_start && body_start > fields_end {
                // The blank line ending the header is the line break before the boundary.
                part.hdr_end = fields_end;
                if part.kind == Kind::Message {
                    if let Some(c) = part.children.first_mut() {
                        // The encapsulated message then starts at that blank line.
                        c.hdr_start = fields_end;
                        c.hdr_end = fields_end;
                        c.fields_end = fields_end;
                    }
                }
            }
        }
        (part, stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart() {
        let raw: &[u8] = b"Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n\none\n\
            --b\nContent-Type: text/html\n\n<p>\n--b--\nepi\n";
        let t = parse_tree(raw);
        assert_eq!(t.kind, Kind::Multipart);
        assert_eq!(t.children.len(), 2);
        assert_eq!(&raw[t.children[0].body()], b"one");
        assert_eq!(&raw[t.children[1].body()], b"<p>");
        assert_eq!(t.body_end, raw.len());
    }

    #[test]
    fn nested_message() {
        let raw = b"Content-Type: message/rfc822\n\nSubject: x\n\nhi\n";
        let t = parse_tree(raw);
        assert_eq!(t.kind, Kind::Message);
        assert_eq!(&raw[t.children[0].body()], b"hi\n");
    }
}
