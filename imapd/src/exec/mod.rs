//! Mailbox commands, run on a blocking thread (they read directories and files and fsync):
//! a [`Job`] owns the session's [`Ctx`] while it runs and hands it back in [`JobDone`] with the
//! response bytes (untagged data, then the tagged reply).

mod fetch;
mod mailboxes;
mod messages;
mod search;
mod selected;

pub use selected::Selected;

use crate::config::SpecialMailbox;
use pochta_imap_proto::{encode, CommandBody};
use pochta_mailstore::names::{mutf7_decode, mutf7_encode};
use pochta_mailstore::{Error as StoreError, MailboxName, Maildir};
use std::sync::Arc;

/// The logged-in user's store.
#[derive(Clone, Debug)]
pub struct Store {
    pub maildir: Maildir,
    pub special: Arc<Vec<SpecialMailbox>>,
    /// The user's quota (userdb `quota_rule` `*:` rules), checked by APPEND, COPY and MOVE
    /// against `maildirsize` as Dovecot's quota plugin does.
    pub quota: Option<pochta_mailstore::QuotaLimit>,
}

impl Store {
    /// Opens the user's Maildir: INBOX and the configured special-use mailboxes are created
    /// (and subscribed) when missing, as Dovecot's `auto = create/subscribe`. Blocking.
    pub fn open(
        maildir: Maildir,
        special: Arc<Vec<SpecialMailbox>>,
        quota: Option<pochta_mailstore::QuotaLimit>,
    ) -> Result<Store, StoreError> {
        maildir.create_if_missing()?;
        for m in special.iter().filter(|m| m.auto != "no") {
            if !maildir.folder_exists(&m.name) {
                match maildir.create_mailbox(&m.name) {
                    Ok(()) | Err(StoreError::MailboxExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                if m.auto == "subscribe" {
                    maildir.subscribe(&m.name)?;
                }
            }
        }
        Ok(Store {
            maildir,
            special,
            quota: quota.filter(|q| !q.is_unlimited()),
        })
    }

    /// The special-use attribute of a mailbox, from the config.
    pub fn special_use(&self, name: &str) -> Option<&str> {
        self.special
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.special_use.as_str())
    }
}

/// A logged-in session's state that mailbox commands use.
#[derive(Debug)]
pub struct Ctx {
    pub store: Store,
    pub selected: Option<Selected>,
    /// IMAP4rev2 enabled: no \Recent, ESEARCH replies to SEARCH, UTF-8 names.
    pub rev2: bool,
    /// UTF8=ACCEPT (or rev2): mailbox names in UTF-8 instead of modified UTF-7.
    pub utf8: bool,
}

impl Ctx {
    pub fn new(store: Store) -> Ctx {
        Ctx {
            store,
            selected: None,
            rev2: false,
            utf8: false,
        }
    }
}

/// What a job does.
#[derive(Debug)]
pub enum JobKind {
    Command {
        tag: String,
        cmd: CommandBody,
        /// FETCH continues at this index of its message set (output is produced in parts of
        /// about [`FETCH_PART`] bytes, so a big FETCH never sits in memory whole).
        resume: usize,
    },
    /// Report mailbox changes (IDLE).
    Refresh,
}

/// A unit of blocking work.
#[derive(Debug)]
pub struct Job {
    pub kind: JobKind,
    pub ctx: Ctx,
}

/// Output size after which a FETCH hands back a part and continues in a new job.
pub const FETCH_PART: usize = 1 << 20;

/// A finished job.
#[derive(Debug)]
pub struct JobDone {
    pub ctx: Ctx,
    pub out: Vec<u8>,
    /// The session must end (the selected mailbox vanished).
    pub logout: bool,
    /// Not finished: write `out`, then run this.
    pub more: Option<JobKind>,
}

/// The tagged reply after the tag, e.g. `OK Select completed.`.
#[derive(Debug)]
pub(crate) struct Reply(pub(crate) String);

pub(crate) type Done = Result<Reply, Reply>;

pub(crate) fn ok(s: impl Into<String>) -> Done {
    Ok(Reply(format!("OK {}", s.into())))
}
pub(crate) fn no(s: impl Into<String>) -> Reply {
    Reply(format!("NO {}", s.into()))
}
pub(crate) fn bad(s: impl Into<String>) -> Reply {
    Reply(format!("BAD {}", s.into()))
}

impl From<StoreError> for Reply {
    fn from(e: StoreError) -> Reply {
        match &e {
            StoreError::InvalidMailboxName { reason, .. } => {
                no(format!("[CANNOT] Invalid mailbox name: {reason}."))
            }
            StoreError::MailboxNotFound { .. } => no("[NONEXISTENT] Mailbox doesn't exist."),
            StoreError::MailboxExists { .. } => no("[ALREADYEXISTS] Mailbox already exists."),
            StoreError::NotAllowed { reason } => no(format!("[CANNOT] {reason}.")),
            StoreError::OverQuota { .. } => no("[OVERQUOTA] Quota exceeded."),
            StoreError::KeywordsFull => no("[LIMIT] Too many keywords in this mailbox."),
            StoreError::InvalidKeyword { .. } => bad("Invalid keyword."),
            StoreError::MessageNotFound { .. } => {
                no("[EXPUNGEISSUED] Some of the requested messages no longer exist.")
            }
            _ => {
                tracing::error!(error = %e, "store error");
                no("[SERVERBUG] Internal error occurred. Refer to server log for more information.")
            }
        }
    }
}

/// A mailbox name from the wire: modified UTF-7 (or UTF-8 with UTF8=ACCEPT/IMAP4rev2),
/// validated by the store's rules (no `/`, no empty levels, no control characters).
pub(crate) fn decode_mailbox(raw: &[u8], utf8: bool) -> Result<MailboxName, Reply> {
    let invalid = || no("[CANNOT] Invalid mailbox name.");
    let text = std::str::from_utf8(raw).map_err(|_| invalid())?;
    let name = if utf8 {
        text.to_string()
    } else {
        if !text.is_ascii() {
            return Err(invalid());
        }
        mutf7_decode(text).ok_or_else(invalid)?
    };
    MailboxName::new(&name).map_err(Reply::from)
}

/// A mailbox name for the wire.
pub(crate) fn encode_mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        encode::mailbox(out, name.as_bytes(), true);
    } else {
        encode::mailbox(out, mutf7_encode(name).as_bytes(), false);
    }
}

impl Job {
    /// Runs the job (blocking).
    pub fn run(self) -> JobDone {
        let Job { kind, mut ctx } = self;
        let mut out = Vec::new();
        let mut logout = false;
        match kind {
            JobKind::Refresh => {
                if let Some(sel) = ctx.selected.as_mut() {
                    if let Err(e) = sel.refresh(true, ctx.rev2, &mut out) {
                        logout = vanished(&e, &mut out);
                    }
                }
            }
            JobKind::Command { tag, cmd, resume } => {
                let forbids_expunge = cmd.forbids_expunge_responses();
                let refresh = !matches!(
                    cmd,
                    CommandBody::Select { .. } | CommandBody::Close | CommandBody::Unselect
                );
                let reply = if let CommandBody::Fetch { uid, set, items } = &cmd {
                    match fetch::fetch(&mut ctx, *uid, set, items, &mut out, resume) {
                        fetch::Progress::Done(r) => r,
                        fetch::Progress::More(next) => {
                            return JobDone {
                                ctx,
                                out,
                                logout,
                                more: Some(JobKind::Command {
                                    tag,
                                    cmd,
                                    resume: next,
                                }),
                            };
                        }
                    }
                } else {
                    dispatch(&mut ctx, &tag, cmd, &mut out)
                };
                let reply = match reply {
                    Ok(r) | Err(r) => r,
                };
                if refresh {
                    if let Some(sel) = ctx.selected.as_mut() {
                        if let Err(e) = sel.refresh(!forbids_expunge, ctx.rev2, &mut out) {
                            logout = vanished(&e, &mut out);
                        }
                    }
                }
                out.extend_from_slice(tag.as_bytes());
                out.push(b' ');
                out.extend_from_slice(reply.0.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        JobDone {
            ctx,
            out,
            logout,
            more: None,
        }
    }
}

/// The selected mailbox failed to sync; if it was deleted, the session ends (Dovecot does
/// the same: `* BYE Mailbox was deleted`).
fn vanished(e: &StoreError, out: &mut Vec<u8>) -> bool {
    if matches!(e, StoreError::MailboxNotFound { .. }) {
        out.extend_from_slice(b"* BYE Selected mailbox was deleted, have to disconnect.\r\n");
        true
    } else {
        tracing::warn!(error = %e, "mailbox sync failed");
        false
    }
}

fn dispatch(ctx: &mut Ctx, tag: &str, cmd: CommandBody, out: &mut Vec<u8>) -> Done {
    use CommandBody as C;
    match cmd {
        C::Select { mailbox, read_only } => mailboxes::select(ctx, &mailbox, read_only, out),
        C::Create {
            mailbox,
            special_use,
        } => mailboxes::create(ctx, &mailbox, &special_use),
        C::Delete(m) => mailboxes::delete(ctx, &m),
        C::Rename { from, to } => mailboxes::rename(ctx, &from, &to),
        C::Subscribe(m) => mailboxes::subscribe(ctx, &m, true),
        C::Unsubscribe(m) => mailboxes::subscribe(ctx, &m, false),
        C::List {
            reference,
            patterns,
            select,
            ret,
            extended,
        } => mailboxes::list(ctx, &reference, &patterns, select, &ret, extended, out),
        C::Lsub { reference, pattern } => mailboxes::lsub(ctx, &reference, &pattern, out),
        C::Status { mailbox, items } => mailboxes::status(ctx, &mailbox, &items, out),
        C::Append {
            mailbox,
            flags,
            date,
            message,
            binary: _,
        } => messages::append(ctx, &mailbox, &flags, date, &message),
        C::Noop => ok("NOOP completed."),
        C::Check => ok("Check completed."),
        C::Close => messages::close(ctx, true),
        C::Unselect => messages::close(ctx, false),
        C::Expunge { uids } => messages::expunge(ctx, uids.as_ref(), out),
        C::Search { uid, ret, key } => search::search(ctx, tag, uid, ret, &key, out),
        C::Store {
            uid,
            set,
            op,
            silent,
            flags,
        } => messages::store(ctx, uid, &set, op, silent, &flags, out),
        C::Copy { uid, set, mailbox } => messages::copy(ctx, uid, &set, &mailbox, false, out),
        C::Move { uid, set, mailbox } => messages::copy(ctx, uid, &set, &mailbox, true, out),
        other => Err(bad(format!("{} is not a mailbox command.", other.name()))),
    }
}
