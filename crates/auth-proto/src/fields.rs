//! Shared pieces of every line: request ids, `key=value` fields, number parsing, base64 and the
//! line writer.

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::error::ParseError;
use crate::escape::{escape_into, unescape};

/// A request id: non-zero `u32`, unique among the in-flight requests of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(NonZeroU32);

impl RequestId {
    /// Id 1.
    pub const MIN: RequestId = RequestId(NonZeroU32::MIN);

    /// `None` for 0.
    pub fn new(id: u32) -> Option<Self> {
        NonZeroU32::new(id).map(RequestId)
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// Parses the decimal wire form (digits only, like Dovecot's `str_to_uint`; 0 rejected).
    pub fn parse(s: &str) -> Option<Self> {
        parse_u32(s).and_then(RequestId::new)
    }

    /// The id after this one, wrapping past `u32::MAX` to 1 (clients number their requests).
    pub fn next(self) -> Self {
        RequestId(self.0.checked_add(1).unwrap_or(NonZeroU32::MIN))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Decimal `u32`: ASCII digits only, no sign, no spaces.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One optional argument: a bare flag (`secured`) or `name=value` split at the first `=`.
/// Both parts are tab-unescaped. `Debug` hides the value of password-like keys (`pass=` is a
/// passdb extra field that proxies receive).
#[derive(Clone, PartialEq, Eq)]
pub struct Field {
    /// The name (must not contain `=`).
    pub key: String,
    /// `None` for a bare flag; `Some("")` for `name=`.
    pub value: Option<String>,
}

impl Field {
    /// `key=value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Field {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// A bare flag.
    pub fn flag(key: impl Into<String>) -> Self {
        Field {
            key: key.into(),
            value: None,
        }
    }

    /// Parses one raw (still escaped) argument.
    pub fn parse(raw: &str) -> Self {
        match raw.split_once('=') {
            Some((k, v)) => Field::new(unescape(k), unescape(v)),
            None => Field::flag(unescape(raw)),
        }
    }

    /// Appends `\t` and the escaped field to a line.
    pub(crate) fn write(&self, line: &mut LineWriter) {
        match &self.value {
            Some(v) => line.kv(&self.key, v),
            None => line.arg(&self.key),
        };
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = matches!(self.key.as_str(), "pass" | "password" | "proxy_pass");
        match (&self.value, secret) {
            (None, _) => write!(f, "{:?}", self.key),
            (Some(_), true) => write!(f, "{:?}=***", self.key),
            (Some(v), false) => write!(f, "{:?}={:?}", self.key, v),
        }
    }
}

/// Finds a field's value by key (first match).
pub fn field_value<'a>(fields: &'a [Field], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|f| f.key == key)
        .and_then(|f| f.value.as_deref())
}

/// Parses a list of raw arguments, skipping empty ones (2.4 can double a TAB).
pub(crate) fn parse_fields<'a>(args: impl Iterator<Item = &'a str>) -> Vec<Field> {
    // An empty argument, or one that unescapes to nothing, carries nothing (and could not be
    // written back).
    args.filter(|a| !a.is_empty())
        .map(Field::parse)
        .filter(|f| !(f.key.is_empty() && f.value.is_none()))
        .collect()
}

/// A line split at TABs: the command word and the raw (still escaped) arguments.
pub(crate) struct RawLine<'a> {
    pub(crate) command: &'a str,
    pub(crate) args: Vec<&'a str>,
}

impl<'a> RawLine<'a> {
    pub(crate) fn split(line: &'a [u8]) -> Result<Self, ParseError> {
        let text = std::str::from_utf8(line).map_err(|_| ParseError::InvalidUtf8)?;
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut parts = text.split('\t');
        let command = parts.next().unwrap_or_default();
        Ok(RawLine {
            command,
            args: parts.collect(),
        })
    }

    /// The unescaped argument at `i`, or a `Missing` error naming it.
    pub(crate) fn arg(&self, i: usize, what: &'static str) -> Result<String, ParseError> {
        self.args
            .get(i)
            .map(|a| unescape(a).into_owned())
            .ok_or(ParseError::Missing {
                command: self.command.to_owned(),
                what,
            })
    }

    pub(crate) fn id(&self, i: usize) -> Result<RequestId, ParseError> {
        let raw = self.arg(i, "request id")?;
        RequestId::parse(&raw).ok_or(ParseError::BadRequestId(sanitize(&raw)))
    }

    pub(crate) fn number(&self, i: usize, what: &'static str) -> Result<u32, ParseError> {
        let raw = self.arg(i, what)?;
        parse_u32(&raw).ok_or(ParseError::BadNumber {
            what,
            value: sanitize(&raw),
        })
    }

    pub(crate) fn expect_args(&self, n: usize) -> Result<(), ParseError> {
        if self.args.len() > n {
            return Err(ParseError::ExtraArguments {
                command: self.command.to_owned(),
            });
        }
        Ok(())
    }
}

/// Builds one protocol line: arguments are tab-escaped, the line ends in LF.
pub(crate) struct LineWriter {
    buf: Vec<u8>,
}

impl LineWriter {
    pub(crate) fn new(command: &str) -> Self {
        LineWriter {
            buf: command.as_bytes().to_vec(),
        }
    }

    /// `\t` + escaped argument.
    pub(crate) fn arg(&mut self, value: &str) -> &mut Self {
        self.buf.push(b'\t');
        escape_into(value.as_bytes(), &mut self.buf);
        self
    }

    /// `\t` + argument written as is (numbers, base64, protocol words).
    pub(crate) fn raw(&mut self, value: &str) -> &mut Self {
        self.buf.push(b'\t');
        self.buf.extend_from_slice(value.as_bytes());
        self
    }

    /// `\tkey=value`, value escaped.
    pub(crate) fn kv(&mut self, key: &str, value: &str) -> &mut Self {
        self.buf.push(b'\t');
        escape_into(key.as_bytes(), &mut self.buf);
        self.buf.push(b'=');
        escape_into(value.as_bytes(), &mut self.buf);
        self
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.push(b'\n');
        self.buf
    }
}

/// Lenient standard base64 (RFC 4648 §4): padding optional, like Dovecot's decoder.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as standard padded base64.
pub fn base64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

/// Decodes standard base64 (padding optional). `None` on invalid input.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.as_bytes()).ok()
}

/// Shortens and cleans peer text for error messages and logs (Dovecot's `str_sanitize(_, 80)`).
pub(crate) fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 80 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id() {
        assert_eq!(RequestId::parse("17").map(RequestId::get), Some(17));
        assert_eq!(RequestId::parse("0"), None);
        assert_eq!(RequestId::parse("-1"), None);
        assert_eq!(RequestId::parse("+1"), None);
        assert_eq!(RequestId::parse("4294967296"), None);
        assert_eq!(RequestId::parse(""), None);
        let max = RequestId::new(u32::MAX).unwrap();
        assert_eq!(max.next().get(), 1);
    }

    #[test]
    fn field_parse() {
        assert_eq!(Field::parse("secured"), Field::flag("secured"));
        assert_eq!(Field::parse("a=b=c"), Field::new("a", "b=c"));
        assert_eq!(Field::parse("reason=x\x01ty"), Field::new("reason", "x\ty"));
        assert_eq!(Field::parse("lip="), Field::new("lip", ""));
        assert_eq!(format!("{:?}", Field::new("pass", "x")), "\"pass\"=***");
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("AHVzZXIAcGFzcw==").unwrap(), b"\0user\0pass");
        assert_eq!(base64_decode("AHVzZXIAcGFzcw").unwrap(), b"\0user\0pass");
        assert!(base64_decode("not base64!").is_none());
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_encode(b"\0user\0pass"), "AHVzZXIAcGFzcw==");
    }
}
