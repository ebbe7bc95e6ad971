//! FETCH data items (RFC 9051 §6.4.5, RFC 3516 BINARY).

use crate::cursor::{err, Cursor, PResult};

/// What part of a message (or of one MIME part) a section names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionText {
    /// The whole part (`BODY[]`, `BODY[1]`).
    Full,
    Header,
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    Mime,
}

/// `[1.2.HEADER]` → part `[1, 2]`, text `Header`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: SectionText,
}

impl Section {
    /// The section spec as echoed in the response (`1.2.HEADER.FIELDS (FROM TO)`).
    pub fn spec(&self) -> String {
        let mut s: String = self
            .part
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".");
        let (word, fields) = match &self.text {
            SectionText::Full => ("", None),
            SectionText::Header => ("HEADER", None),
            SectionText::HeaderFields(f) => ("HEADER.FIELDS", Some(f)),
            SectionText::HeaderFieldsNot(f) => ("HEADER.FIELDS.NOT", Some(f)),
            SectionText::Text => ("TEXT", None),
            SectionText::Mime => ("MIME", None),
        };
        if !word.is_empty() {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(word);
        }
        if let Some(f) = fields {
            s.push_str(" (");
            s.push_str(&f.join(" "));
            s.push(')');
        }
        s
    }
}

/// One FETCH data item; macros (ALL, FAST, FULL) are expanded by the parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchItem {
    Flags,
    InternalDate,
    Rfc822Size,
    Uid,
    Envelope,
    /// BODY (false) / BODYSTRUCTURE (true).
    BodyStructure(bool),
    /// RFC822 (= BODY[]), RFC822.HEADER (= BODY.PEEK[HEADER]), RFC822.TEXT (= BODY[TEXT]):
    /// answered under their own names.
    Rfc822(SectionText),
    BodySection {
        section: Section,
        peek: bool,
        /// `<origin.length>`
        partial: Option<(u64, u64)>,
    },
    Binary {
        part: Vec<u32>,
        peek: bool,
        partial: Option<(u64, u64)>,
    },
    BinarySize(Vec<u32>),
}

impl FetchItem {
    /// Fetching it sets \Seen (RFC 9051 §6.4.5) unless the mailbox is read-only.
    pub fn sets_seen(&self) -> bool {
        match self {
            FetchItem::BodySection { peek, .. } | FetchItem::Binary { peek, .. } => !peek,
            FetchItem::Rfc822(t) => *t != SectionText::Header,
            _ => false,
        }
    }

    /// Needs the message bytes (not just the listing).
    pub fn needs_content(&self) -> bool {
        !matches!(
            self,
            FetchItem::Flags | FetchItem::InternalDate | FetchItem::Rfc822Size | FetchItem::Uid
        )
    }
}

fn header_list(c: &mut Cursor<'_>) -> PResult<Vec<String>> {
    c.sp()?;
    c.expect(b'(', "Expected a header list")?;
    let mut out = Vec::new();
    loop {
        let f = c.astring_utf8()?;
        if f.is_empty() || !f.bytes().all(|b| b > 0x20 && b < 0x7f && b != b':') {
            return err("Invalid header field name");
        }
        out.push(f.to_ascii_uppercase());
        if out.len() > 100 {
            return err("Too many header fields");
        }
        if c.eat(b')') {
            return Ok(out);
        }
        c.sp()?;
    }
}

fn part(c: &mut Cursor<'_>) -> PResult<Vec<u32>> {
    let mut p = Vec::new();
    while c.peek().is_some_and(|b| b.is_ascii_digit()) {
        p.push(c.nz_number()?);
        if p.len() > 32 {
            return err("Section part nested too deeply");
        }
        if !(c.peek() == Some(b'.') && c.rest().get(1).is_some_and(u8::is_ascii_digit)) {
            break;
        }
        c.pos += 1;
    }
    Ok(p)
}

fn section(c: &mut Cursor<'_>) -> PResult<Section> {
    c.expect(b'[', "Expected [")?;
    let part = part(c)?;
    let text = if c.peek() == Some(b']') {
        SectionText::Full
    } else {
        if !part.is_empty() {
            c.expect(b'.', "Invalid section")?;
        }
        if c.eat_word("HEADER.FIELDS.NOT") {
            SectionText::HeaderFieldsNot(header_list(c)?)
        } else if c.eat_word("HEADER.FIELDS") {
            SectionText::HeaderFields(header_list(c)?)
        } else if c.eat_word("HEADER") {
            SectionText::Header
        } else if c.eat_word("TEXT") {
            SectionText::Text
        } else if !part.is_empty() && c.eat_word("MIME") {
            SectionText::Mime
        } else {
            return err("Invalid section");
        }
    };
    c.expect(b']', "Expected ]")?;
    Ok(Section { part, text })
}

fn partial(c: &mut Cursor<'_>) -> PResult<Option<(u64, u64)>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let origin = c.number64()?;
    c.expect(b'.', "Expected . in partial")?;
    let len = c.number64()?;
    if len == 0 {
        return err("Zero partial length");
    }
    c.expect(b'>', "Expected >")?;
    Ok(Some((origin, len)))
}

fn binary_part(c: &mut Cursor<'_>) -> PResult<Vec<u32>> {
    c.expect(b'[', "Expected [")?;
    let p = part(c)?;
    c.expect(b']', "Expected ]")?;
    Ok(p)
}

fn item(c: &mut Cursor<'_>) -> PResult<FetchItem> {
    let start = c.pos;
    while c
        .peek()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        c.pos += 1;
    }
    let word = String::from_utf8_lossy(&c.buf[start..c.pos]).to_ascii_uppercase();
    let it = match word.as_str() {
        "FLAGS" => FetchItem::Flags,
        "INTERNALDATE" => FetchItem::InternalDate,
        "RFC822.SIZE" => FetchItem::Rfc822Size,
        "UID" => FetchItem::Uid,
        "ENVELOPE" => FetchItem::Envelope,
        "BODYSTRUCTURE" => FetchItem::BodyStructure(true),
        "RFC822" => FetchItem::Rfc822(SectionText::Full),
        "RFC822.HEADER" => FetchItem::Rfc822(SectionText::Header),
        "RFC822.TEXT" => FetchItem::Rfc822(SectionText::Text),
        "BODY" if c.peek() != Some(b'[') => FetchItem::BodyStructure(false),
        "BODY" | "BODY.PEEK" => {
            let section = section(c)?;
            FetchItem::BodySection {
                section,
                peek: word == "BODY.PEEK",
                partial: partial(c)?,
            }
        }
        "BINARY" | "BINARY.PEEK" => {
            let part = binary_part(c)?;
            FetchItem::Binary {
                part,
                peek: word == "BINARY.PEEK",
                partial: partial(c)?,
            }
        }
        "BINARY.SIZE" => FetchItem::BinarySize(binary_part(c)?),
        _ => return err("Unknown FETCH item"),
    };
    Ok(it)
}

pub(crate) fn fetch_items(c: &mut Cursor<'_>) -> PResult<Vec<FetchItem>> {
    use FetchItem as F;
    if c.eat_word("ALL") {
        return Ok(vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope]);
    }
    if c.eat_word("FAST") {
        return Ok(vec![F::Flags, F::InternalDate, F::Rfc822Size]);
    }
    if c.eat_word("FULL") {
        return Ok(vec![
            F::Flags,
            F::InternalDate,
            F::Rfc822Size,
            F::Envelope,
            F::BodyStructure(false),
        ]);
    }
    if !c.eat(b'(') {
        return Ok(vec![item(c)?]);
    }
    let mut out = Vec::new();
    loop {
        out.push(item(c)?);
        if out.len() > 100 {
            return err("Too many FETCH items");
        }
        if c.eat(b')') {
            return Ok(out);
        }
        c.sp()?;
    }
}
