//! pochta-mailstore: one user's Maildir++ store, byte-compatible with what Dovecot writes
//! (`dovecot-uidlist` v3, `dovecot-keywords`, `dovecot-uidvalidity`, `subscriptions`,
//! `maildirsize`)
//! and tolerant of everything Dovecot, Postfix local(8)/virtual(8) and Courier write.
//!
//! Used by mda-lmtp (delivery), pop3d and imapd (reading, flags, expunge). Everything here is
//! blocking file I/O: async callers wrap calls in `spawn_blocking`.
//!
//! Trusts: the Maildir belongs to the user the process runs as (the vmail user, or the mail user
//! after privilege drop); the files in it may have been written by anyone's buggy software, so
//! every parser is bounded and total. Mailbox names come from users and are validated so that no
//! name can reach a path outside the Maildir ([`names::MailboxName`]).
//!
//! Conventions (see docs/formats.md#maildir-as-dovecot-keeps-it):
//! * Mailbox names are IMAP names with the Maildir++ hierarchy separator `.` (Dovecot's default for
//!   Maildir++): `Lists.rust` lives in `<root>/.Lists.rust`; `INBOX` (any case) or `None` is the
//!   root. Folder directory names are modified UTF-7 unless [`Maildir::with_utf8_names`] is set
//!   (Dovecot `mailbox_list_utf8 = yes` / `:UTF-8`).
//! * Messages are stored byte for byte as given. Dovecot stores LF-only messages; a delivery agent
//!   that wants files identical to Dovecot's converts CRLF to LF before calling
//!   [`Maildir::deliver`]. `,S=` is the size on disk and `,W=` the RFC822.SIZE (a bare LF counts
//!   as CRLF) of the bytes on disk, whatever their line endings.
//! * Caches are never authoritative: every call reads the files again.
//!
//! Formats implemented: Maildir (cr.yp.to/proto/maildir.html) and Maildir++ (folders, quota),
//! Dovecot's control files as its source writes them
//! (docs/formats.md#maildir-as-dovecot-keeps-it), modified UTF-7 mailbox names (RFC 3501
//! §5.1.3), POP3 UIDLs as Dovecot derives them (RFC 1939 UIDL).
//!
//! Dependencies: `nix` for the few system calls std lacks (kill(pid, 0) for stale dot-locks,
//! utimensat, gethostname).

#![forbid(unsafe_code)]

mod deliver;
mod error;
pub mod filename;
mod folders;
pub mod keywords;
pub mod location;
pub mod lock;
mod mailbox;
pub mod names;
pub mod quota;
pub mod subscriptions;
pub mod uidlist;
pub mod uidvalidity;
pub mod user;

#[cfg(test)]
mod testutil;

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use deliver::{DeliverOptions, Delivered};
pub use error::{Error, Result};
pub use filename::{Flags, SystemFlag};
pub use folders::MAILDIRFOLDER_NAME;
pub use mailbox::{
    count_vsize, FlagOp, Mailbox, MailboxState, Message, Subdir, SyncOptions, TMP_MAX_AGE,
};
pub use names::MailboxName;
pub use quota::QuotaLimit;
pub use user::UserMailbox;

/// One user's Maildir++ root (the INBOX) and its folders.
#[derive(Clone, Debug)]
pub struct Maildir {
    root: PathBuf,
    /// Folder directory names in UTF-8 instead of modified UTF-7.
    utf8_names: bool,
}

/// `new`, `cur`, `tmp` of a mailbox directory.
const SUBDIRS: [&str; 3] = ["new", "cur", "tmp"];

fn mkdir_0700(path: &Path) -> Result<bool> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("mkdir", path, e)),
    }
}

impl Maildir {
    /// The Maildir at `root` (does no I/O).
    pub fn open(root: impl Into<PathBuf>) -> Maildir {
        Maildir {
            root: root.into(),
            utf8_names: false,
        }
    }

    /// Folder directory names in UTF-8 (Dovecot `mailbox_list_utf8 = yes`) instead of modified
    /// UTF-7.
    pub fn with_utf8_names(mut self, utf8: bool) -> Maildir {
        self.utf8_names = utf8;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True if folder names on disk are UTF-8.
    pub fn utf8_names(&self) -> bool {
        self.utf8_names
    }

    /// Creates the root with `new/`, `cur/`, `tmp/` (mode 0700, parents too) if missing.
    pub fn create_if_missing(&self) -> Result<()> {
        if !self.root.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .map_err(|e| Error::io("mkdir", &self.root, e))?;
        }
        for sub in SUBDIRS {
            mkdir_0700(&self.root.join(sub))?;
        }
        Ok(())
    }

    /// The directory of a mailbox (`None` or `INBOX` = the root). Validates the name.
    pub fn mailbox_dir(&self, mailbox: Option<&str>) -> Result<PathBuf> {
        match mailbox {
            None => Ok(self.root.clone()),
            Some(name) => {
                let name = MailboxName::new(name)?;
                Ok(self.dir_of(&name))
            }
        }
    }

    pub(crate) fn dir_of(&self, name: &MailboxName) -> PathBuf {
        if name.is_inbox() {
            self.root.clone()
        } else {
            self.root.join(name.dir_name(self.utf8_names))
        }
    }

    /// True if the mailbox exists (INBOX: the root has `cur/`; a folder: its directory has `cur/`).
    /// `mailbox` is an IMAP name with `.` as separator, e.g. `Lists.rust`.
    pub fn folder_exists(&self, mailbox: &str) -> bool {
        self.mailbox_dir(Some(mailbox))
            .map(|d| d.join("cur").is_dir())
            .unwrap_or(false)
    }

    /// Stores a message. Blocking (async callers use `spawn_blocking`).
    ///
    /// tmp → write → fsync → rename into `new/` (or `cur/` when flags/keywords are given) → fsync
    /// the directory; the next UID is assigned in `dovecot-uidlist` under its lock and appended, as
    /// Dovecot LMTP does. With a quota, `maildirsize` is checked first ([`Error::is_over_quota`])
    /// and a delta line is appended after. `mailbox` `None` = INBOX; a folder must exist
    /// ([`Error::MailboxNotFound`] otherwise); INBOX is created when missing. Safe with concurrent
    /// deliveries from several threads and processes.
    pub fn deliver(
        &self,
        mailbox: Option<&str>,
        message: &[u8],
        opts: &DeliverOptions,
    ) -> Result<Delivered> {
        self.deliver_dated(mailbox, message, opts, None)
    }

    /// [`Maildir::deliver`] with the file's mtime (the IMAP INTERNALDATE) set to
    /// `internal_date` before the commit (IMAP APPEND with a date, COPY).
    pub fn deliver_dated(
        &self,
        mailbox: Option<&str>,
        message: &[u8],
        opts: &DeliverOptions,
        internal_date: Option<std::time::SystemTime>,
    ) -> Result<Delivered> {
        let dir = self.mailbox_dir(mailbox)?;
        if dir == self.root {
            if !self.root.join("tmp").is_dir() || !self.root.join("new").is_dir() {
                self.create_if_missing()?;
            }
        } else if !dir.join("cur").is_dir() {
            return Err(Error::MailboxNotFound { path: dir });
        } else if !dir.join("tmp").is_dir() || !dir.join("new").is_dir() {
            for sub in SUBDIRS {
                mkdir_0700(&dir.join(sub))?;
            }
        }
        deliver::deliver(&self.root, &dir, message, opts, internal_date)
    }
}

#[cfg(test)]
mod tests;
