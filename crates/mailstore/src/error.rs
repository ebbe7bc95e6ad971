//! The one error type of the crate. For a delivery agent every variant but [`Error::OverQuota`] is
//! a temporary failure (LMTP 451 4.3.0); over quota is 552 5.2.2 (or 452 4.2.2 when configured so).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, with the file and the operation that failed.
#[derive(Debug)]
pub enum Error {
    /// A system call failed.
    Io {
        /// The operation, e.g. `"open"`, `"rename"`, `"fsync"`.
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A mailbox name that cannot be mapped to a Maildir++ folder safely.
    InvalidMailboxName { name: String, reason: &'static str },
    /// A dot-lock could not be taken in time (another process holds it and it is not stale).
    LockTimeout { path: PathBuf },
    /// A control file is broken beyond what Dovecot tolerates.
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// All 26 keyword letters of the mailbox are taken.
    KeywordsFull,
    /// A keyword that is not an IMAP atom (empty, space, control or special characters).
    InvalidKeyword { name: String },
    /// The message file is gone (expunged, or renamed by another process: resync and retry).
    MessageNotFound { path: PathBuf },
    /// The mailbox does not exist.
    MailboxNotFound { path: PathBuf },
    /// The mailbox already exists.
    MailboxExists { path: PathBuf },
    /// Storing the message would exceed the user's quota (`maildirsize`).
    OverQuota {
        /// Bytes / messages in use before this message.
        used_bytes: u64,
        used_messages: u64,
        /// The message that did not fit.
        size: u64,
    },
    /// The operation is not possible on this mailbox (e.g. deleting INBOX).
    NotAllowed { reason: &'static str },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True if the user is over quota; a delivery agent answers 552 5.2.2 (everything else it
    /// treats as a temporary failure).
    pub fn is_over_quota(&self) -> bool {
        matches!(self, Error::OverQuota { .. })
    }

    /// True if retrying later may succeed (not a bad name, a full keyword table, an existing
    /// mailbox, a forbidden operation or over quota).
    pub fn is_temporary(&self) -> bool {
        !matches!(
            self,
            Error::InvalidMailboxName { .. }
                | Error::KeywordsFull
                | Error::InvalidKeyword { .. }
                | Error::MailboxExists { .. }
                | Error::OverQuota { .. }
                | Error::NotAllowed { .. }
        )
    }

    /// A copy of this error (`io::Error` is not `Clone`: kind and message are kept), for handing
    /// one failure of a group commit to every delivery of the group.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::InvalidMailboxName { name, reason } => Error::InvalidMailboxName {
                name: name.clone(),
                reason,
            },
            Error::LockTimeout { path } => Error::LockTimeout { path: path.clone() },
            Error::Corrupt { path, line, reason } => Error::Corrupt {
                path: path.clone(),
                line: *line,
                reason: reason.clone(),
            },
            Error::KeywordsFull => Error::KeywordsFull,
            Error::InvalidKeyword { name } => Error::InvalidKeyword { name: name.clone() },
            Error::MessageNotFound { path } => Error::MessageNotFound { path: path.clone() },
            Error::MailboxNotFound { path } => Error::MailboxNotFound { path: path.clone() },
            Error::MailboxExists { path } => Error::MailboxExists { path: path.clone() },
            Error::OverQuota {
                used_bytes,
                used_messages,
                size,
            } => Error::OverQuota {
                used_bytes: *used_bytes,
                used_messages: *used_messages,
                size: *size,
            },
            Error::NotAllowed { reason } => Error::NotAllowed { reason },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => {
                write!(f, "{op}({}) failed: {source}", path.display())
            }
            Error::InvalidMailboxName { name, reason } => {
                write!(f, "invalid mailbox name {name:?}: {reason}")
            }
            Error::LockTimeout { path } => write!(f, "timeout waiting for lock {}", path.display()),
            Error::Corrupt { path, line, reason } => {
                write!(f, "broken file {} line {line}: {reason}", path.display())
            }
            Error::KeywordsFull => write!(f, "all 26 Maildir keyword slots are in use"),
            Error::InvalidKeyword { name } => write!(f, "invalid keyword {name:?}"),
            Error::MessageNotFound { path } => {
                write!(f, "message file {} not found", path.display())
            }
            Error::MailboxNotFound { path } => {
                write!(f, "mailbox {} does not exist", path.display())
            }
            Error::MailboxExists { path } => write!(f, "mailbox {} already exists", path.display()),
            Error::OverQuota {
                used_bytes,
                used_messages,
                size,
            } => write!(
                f,
                "quota exceeded (in use {used_bytes} bytes, {used_messages} messages; message \
                 {size} bytes)"
            ),
            Error::NotAllowed { reason } => write!(f, "not allowed: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, Error>;
