//! pochta-imap-proto: the IMAP wire format for pochta-imapd, without I/O.
//!
//! - [`frame`]: cuts input into whole commands (line + literals) under hard limits
//!   (pre-auth: 8 KiB lines, 4 KiB literals; after login: configured), draining oversized
//!   non-synchronizing literals without storing them. Nothing is parsed before it is framed.
//! - [`parse_command`]: a framed command → [`Command`] (typed verbs and arguments). Total: any
//!   byte string gives a command or a [`ParseError`] (with the tag when it could be read), never
//!   a panic; recursion (search keys) is depth-limited.
//! - [`encode`]: response building blocks (strings as atom/quoted/literal, flag lists,
//!   sequence-set compression).
//!
//! RFCs: 3501 and 9051 (IMAP4rev1/rev2 syntax), 7888 (LITERAL+/LITERAL-), 4959 (SASL-IR),
//! 5161 (ENABLE), 2971 (ID), 2342 (NAMESPACE), 5258/5819/6154 (LIST-EXTENDED, LIST-STATUS,
//! SPECIAL-USE), 4731 (ESEARCH), 3516 (BINARY), 4315 (UIDPLUS), 6851 (MOVE), 3691 (UNSELECT),
//! 2177 (IDLE), 8438 (STATUS=SIZE).
//! Trusts: nothing; the input is from the network. No dependencies (own code instead of
//! imap-codec 2.0.0-alpha: an alpha API, and the limits here are exactly ours).

#![forbid(unsafe_code)]

mod command;
mod cursor;
pub mod encode;
mod fetch;
pub mod frame;
mod search;
mod sequence;

pub use command::{
    parse_command, Command, CommandBody, ListReturn, ListSelect, StatusItem, StoreOp,
};
pub use cursor::{civil_from_days, days_from_civil};
pub use fetch::{FetchItem, Section, SectionText};
pub use frame::{Frame, Framer, Limits, Oversize};
pub use search::{SearchKey, SearchReturn, MAX_SEARCH_DEPTH};
pub use sequence::{SeqNum, SequenceSet};

use std::fmt;

/// Why a command could not be parsed; the session answers `tag BAD <message>` (or untagged
/// BAD when no tag was read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<String>,
    pub message: &'static str,
    /// The verb itself was unknown (counts differently in logs).
    pub unknown_command: bool,
    /// SEARCH with an unsupported charset: `NO [BADCHARSET]`, not BAD.
    pub bad_charset: bool,
}

impl ParseError {
    pub(crate) fn new(message: &'static str) -> Self {
        ParseError {
            tag: None,
            message,
            unknown_command: false,
            bad_charset: false,
        }
    }
    pub(crate) fn with_tag(mut self, tag: &str) -> Self {
        self.tag = Some(tag.to_string());
        self
    }
    pub(crate) fn unknown(mut self) -> Self {
        self.unknown_command = true;
        self
    }
    pub(crate) fn badcharset(mut self) -> Self {
        self.bad_charset = true;
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for ParseError {}

/// A credential: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(v: T) -> Self {
        Secret(v)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A message flag as the client names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Flag {
    Answered,
    Flagged,
    Deleted,
    Seen,
    Draft,
    /// `\Recent` (never storable) and other `\Word`s (special-use attributes in CREATE).
    Extension(String),
    Keyword(String),
}

impl Flag {
    /// `\Word` by name (case-insensitive for the system flags).
    pub fn system(word: &str) -> Flag {
        match word.to_ascii_lowercase().as_str() {
            "answered" => Flag::Answered,
            "flagged" => Flag::Flagged,
            "deleted" => Flag::Deleted,
            "seen" => Flag::Seen,
            "draft" => Flag::Draft,
            _ => Flag::Extension(format!("\\{word}")),
        }
    }

    /// Wire form.
    pub fn as_str(&self) -> &str {
        match self {
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Seen => "\\Seen",
            Flag::Draft => "\\Draft",
            Flag::Extension(s) | Flag::Keyword(s) => s,
        }
    }
}

#[cfg(test)]
mod tests;
