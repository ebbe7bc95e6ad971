//! Header blocks: finding where a header ends and iterating its fields without copying.
//!
//! Lines end in LF or CRLF. A field is `name ":" value` plus continuation lines starting with
//! SP/HT; a line without a colon is kept as a field whose value is empty (Dovecot does the
//! same), so HEADER output stays byte-exact. Every scan is linear in the header size.

use std::ops::Range;

/// One line: `content` excludes the line end, `next` is where the following line starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Line {
    pub start: usize,
    pub content_end: usize,
    pub next: usize,
}

/// The line starting at `pos` inside `raw[..end]` (`None` at `end`).
pub(crate) fn line_at(raw: &[u8], pos: usize, end: usize) -> Option<Line> {
    if pos >= end {
        return None;
    }
    let hay = raw.get(pos..end)?;
    match hay.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let lf = pos + i;
            let content_end = if lf > pos && raw.get(lf - 1) == Some(&b'\r') {
                lf - 1
            } else {
                lf
            };
            Some(Line {
                start: pos,
                content_end,
                next: lf + 1,
            })
        }
        None => Some(Line {
            start: pos,
            content_end: end,
            next: end,
        }),
    }
}

/// A header field as ranges into the raw message.
#[derive(Clone, Debug)]
pub(crate) struct Field {
    /// The name, trailing whitespace before the colon removed.
    pub name: Range<usize>,
    /// The value after the colon and leading blanks, up to (not including) the final line end;
    /// continuation line ends are inside.
    pub value: Range<usize>,
    /// The whole field including its final line end.
    pub line: Range<usize>,
}

/// Iterates the fields of the header block `raw[start..end]` (`end` = where the blank line
/// or the body starts).
pub(crate) struct Fields<'a> {
    raw: &'a [u8],
    pos: usize,
    end: usize,
}

pub(crate) fn fields(raw: &[u8], hdr: Range<usize>) -> Fields<'_> {
    Fields {
        raw,
        pos: hdr.start,
        end: hdr.end,
    }
}

impl Iterator for Fields<'_> {
    type Item = Field;
    fn next(&mut self) -> Option<Field> {
        let first = line_at(self.raw, self.pos, self.end)?;
        if first.content_end == first.start && first.next > first.start {
            // A blank line: the end of the header (callers pass ranges without it).
            self.pos = self.end;
            return None;
        }
        let content = &self.raw[first.start..first.content_end];
        let (name, value_start) = match content.iter().position(|&b| b == b':') {
            Some(c) => {
                let mut ne = first.start + c;
                while ne > first.start && matches!(self.raw[ne - 1], b' ' | b'\t') {
                    ne -= 1;
                }
                let mut vs = first.start + c + 1;
                while vs < first.content_end && matches!(self.raw[vs], b' ' | b'\t') {
                    vs += 1;
                }
                (first.start..ne, vs)
            }
            None => (first.start..first.content_end, first.content_end),
        };
        let mut last = first;
        while let Some(l) = line_at(self.raw, last.next, self.end) {
            match self.raw.get(l.start) {
                Some(b' ' | b'\t') => last = l,
                _ => break,
            }
        }
        self.pos = last.next;
        let value = value_start.min(last.content_end)..last.content_end;
        Some(Field {
            name,
            value,
            line: first.start..last.next,
        })
    }
}

/// Where the header starting at `start` ends: `(fields_end, body_start)`. `fields_end` is the
/// start of the blank line, `body_start` the byte after it. Without a blank line the whole
/// range is header and the body is empty.
pub(crate) fn header_end(raw: &[u8], start: usize, end: usize) -> (usize, usize) {
    let mut pos = start;
    while let Some(l) = line_at(raw, pos, end) {
        if l.content_end == l.start && l.next > l.start {
            return (l.start, l.next);
        }
        pos = l.next;
    }
    (end, end)
}

/// The value with line breaks removed (RFC 5322 unfolding). Like Dovecot's header parser,
/// NUL becomes U+FFFD; a lone CR stays (string output turns it into a blank).
pub(crate) fn unfold(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for (i, &b) in v.iter().enumerate() {
        match b {
            b'\n' => {}
            b'\r' if v.get(i + 1) == Some(&b'\n') => {}
            0 => out.extend_from_slice("\u{FFFD}".as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterate() {
        let raw = b"A: 1\r\nB : two\n  lines\nnocolon\nC:\n\nbody";
        let (fe, bs) = header_end(raw, 0, raw.len());
        assert_eq!(&raw[bs..], b"body");
        let f: Vec<_> = fields(raw, 0..fe).collect();
        assert_eq!(f.len(), 4);
        assert_eq!(&raw[f[1].name.clone()], b"B");
        assert_eq!(unfold(&raw[f[1].value.clone()]), b"two  lines");
        assert_eq!(&raw[f[2].name.clone()], b"nocolon");
        assert_eq!(&raw[f[3].value.clone()], b"");
    }
}
