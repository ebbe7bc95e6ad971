//! Line-level parse errors, shared by every message type.

use std::fmt;

use crate::fields::RequestId;

/// Why one line could not be turned into a message. The state machines decide what such an error
/// means for the connection (reply `FAIL`, skip, or disconnect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The line is not UTF-8.
    InvalidUtf8,
    /// The line is empty.
    Empty,
    /// The command word is not one this direction knows (sanitized, at most 80 chars).
    UnknownCommand(String),
    /// A required argument is missing.
    Missing {
        /// The command.
        command: String,
        /// What was expected.
        what: &'static str,
    },
    /// More arguments than the command takes.
    ExtraArguments {
        /// The command.
        command: String,
    },
    /// A request id that is not a non-zero decimal `u32`.
    BadRequestId(String),
    /// A number that is not a decimal `u32`.
    BadNumber {
        /// What the number is.
        what: &'static str,
        /// The text seen (sanitized).
        value: String,
    },
    /// A malformed value (cookie, version...).
    BadValue {
        /// What the value is.
        what: &'static str,
        /// The text seen (sanitized).
        value: String,
    },
    /// `AUTH` with arguments after `resp=`.
    ParamsAfterResp(RequestId),
    /// `AUTH`/`USER`/`PASS` without `service=` or `protocol=`.
    MissingService(RequestId),
    /// Base64 that does not decode.
    InvalidBase64(RequestId),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::InvalidUtf8 => f.write_str("line is not valid UTF-8"),
            ParseError::Empty => f.write_str("empty line"),
            ParseError::UnknownCommand(c) => write!(f, "unknown command: {c}"),
            ParseError::Missing { command, what } => write!(f, "{command}: missing {what}"),
            ParseError::ExtraArguments { command } => write!(f, "{command}: too many arguments"),
            ParseError::BadRequestId(v) => write!(f, "invalid request id: {v}"),
            ParseError::BadNumber { what, value } => write!(f, "invalid {what}: {value}"),
            ParseError::BadValue { what, value } => write!(f, "invalid {what}: {value}"),
            ParseError::ParamsAfterResp(id) => {
                write!(f, "AUTH {id}: parameters after resp=")
            }
            ParseError::MissingService(id) => write!(f, "request {id}: no service= or protocol="),
            ParseError::InvalidBase64(id) => write!(f, "request {id}: invalid base64 data"),
        }
    }
}

impl std::error::Error for ParseError {}
