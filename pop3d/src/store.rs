//! The maildrop on disk: a snapshot of INBOX taken at login, message reads, and the UPDATE
//! state's \Seen flags and deletions. Blocking file I/O: the driver runs each call in
//! `spawn_blocking`.
//!
//! Concurrent sessions of one user are allowed, as in Dovecot (`pop3_lock_session = no`): each
//! works on its own snapshot; a message deleted by one is reported gone to the other
//! ("-ERR Message was expunged by another session."), and deleting it twice deletes nothing
//! more. Expunges go by file identity (base name), so nothing is resurrected.

use crate::session::{MaildropEntry, StoreError};
use pochta_mailstore::{Error, FlagOp, Flags, Mailbox, Maildir, Message, SyncOptions, SystemFlag};
use std::path::PathBuf;
use std::sync::Arc;

/// A user's maildrop snapshot.
#[derive(Clone, Debug)]
pub struct Maildrop {
    mailbox: Mailbox,
    messages: Arc<Vec<Message>>,
    uid_validity: u32,
}

fn store_error(e: &Error) -> StoreError {
    match e {
        Error::MessageNotFound { .. } => StoreError::Gone,
        _ => StoreError::Temporary,
    }
}

impl Maildrop {
    /// Syncs INBOX (new/ → cur/, UIDs for new files, as a Dovecot POP3 session does) and takes
    /// the snapshot: messages by ascending UID.
    pub fn open(root: PathBuf) -> Result<Maildrop, Error> {
        let mailbox = Maildir::open(root).inbox()?;
        let state = mailbox.sync(SyncOptions {
            move_new_to_cur: true,
        })?;
        Ok(Maildrop {
            mailbox,
            messages: Arc::new(state.messages),
            uid_validity: state.uid_validity,
        })
    }

    /// What the session needs: sizes as sent on the wire (RFC 822 size, CRLF) and UIDLs.
    pub fn entries(&self) -> Vec<MaildropEntry> {
        self.messages
            .iter()
            .map(|m| MaildropEntry {
                size: m.vsize,
                uidl: self.uidl(m),
            })
            .collect()
    }

    /// The UIDL Dovecot gives: the uidlist's `P` field if any, else its default
    /// `pop3_uidl_format = %08Xu%08Xv`, which Dovecot's var_expand renders in *lowercase* hex
    /// (seen against Dovecot 2.3.19 pop3 in tests/it/pop3.rs). pochta-mailstore's default is
    /// upper case; until it is fixed there, the default is recognised and rewritten here.
    fn uidl(&self, m: &Message) -> String {
        let upper = format!("{:08X}{:08X}", m.uid, self.uid_validity);
        if m.pop3_uidl == upper {
            format!("{:08x}{:08x}", m.uid, self.uid_validity)
        } else {
            m.pop3_uidl.clone()
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The bytes of message `index` as stored.
    pub fn read(&self, index: usize) -> Result<Vec<u8>, StoreError> {
        let msg = self.messages.get(index).ok_or(StoreError::Gone)?;
        self.mailbox.read_message(msg).map_err(|e| store_error(&e))
    }

    /// Opens message `index` for reading.
    pub fn open_message(&self, index: usize) -> Result<std::fs::File, StoreError> {
        let msg = self.messages.get(index).ok_or(StoreError::Gone)?;
        self.open_file(msg).map_err(|e| store_error(&e))
    }

    /// Opens the file under its name at login, the usual case; a file renamed since (flags
    /// changed by another session) or gone is left to the mailstore's search by base name.
    /// Saves the mailstore's `stat` before every open.
    fn open_file(&self, msg: &Message) -> Result<std::fs::File, Error> {
        let path = self
            .mailbox
            .dir()
            .join(msg.subdir.as_str())
            .join(&msg.file_name);
        match std::fs::File::open(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.mailbox.open_message(msg),
            Err(source) => Err(Error::Io {
                op: "open",
                path,
                source,
            }),
        }
    }

    /// Whole messages `from`, `from + 1`, … read for a sequential download: at most `max`
    /// messages and `budget` bytes in all. Stops quietly at the first one that does not fit or
    /// cannot be read (its own RETR then reports the error).
    pub fn read_ahead(&self, from: usize, max: usize, budget: usize) -> Vec<(usize, Vec<u8>)> {
        use std::io::Read;
        let mut out = Vec::new();
        let mut left = budget;
        for (index, msg) in self.messages.iter().enumerate().skip(from).take(max) {
            let fits = usize::try_from(msg.size).is_ok_and(|n| n < left);
            let Some(f) = fits.then(|| self.open_file(msg).ok()).flatten() else {
                break;
            };
            // Capacity from S= (or the size at sync); one byte more shows the file grew.
            let mut data = Vec::with_capacity(usize::try_from(msg.size).unwrap_or(0) + 1);
            let read = f.take(left as u64 + 1).read_to_end(&mut data);
            if read.is_err() || data.len() > left {
                break;
            }
            left -= data.len();
            out.push((index, data));
        }
        out
    }

    /// UPDATE state: \Seen on `seen`, then expunge `delete` (files unlinked, uidlist rewritten,
    /// `new/` and `cur/` fsynced). Returns whether anything was deleted.
    pub fn update(&self, delete: &[usize], seen: &[usize]) -> Result<bool, Error> {
        for &i in seen {
            let Some(msg) = self.messages.get(i) else {
                continue;
            };
            if msg.flags.contains(SystemFlag::Seen) {
                continue;
            }
            let flags = Flags::empty().with(SystemFlag::Seen);
            match self.mailbox.store_flags(msg, FlagOp::Add, flags, &[]) {
                Ok(_) | Err(Error::MessageNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let doomed: Vec<Message> = delete
            .iter()
            .filter_map(|&i| self.messages.get(i).cloned())
            .collect();
        if doomed.is_empty() {
            return Ok(false);
        }
        let removed = self.mailbox.expunge(&doomed)?;
        for sub in ["cur", "new"] {
            let dir = self.mailbox.dir().join(sub);
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| Error::Io {
                    op: "fsync",
                    path: dir.clone(),
                    source,
                })?;
        }
        Ok(!removed.is_empty())
    }
}
