//! The selected mailbox as this session's client knows it: sequence numbers → messages,
//! flags last reported, \Recent. [`Selected::refresh`] compares it with the Maildir and
//! reports the difference (EXISTS, EXPUNGE, FETCH FLAGS) only where the RFCs allow: expunges
//! wait while sequence numbers must stay stable (RFC 9051 §7.5.1).

use pochta_imap_proto::SequenceSet;
use pochta_mailstore::{Mailbox, Message, SyncOptions, SystemFlag};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// One message of the view.
#[derive(Clone, Debug)]
pub(crate) struct Msg {
    pub(crate) m: Message,
    /// \Recent for this session.
    pub(crate) recent: bool,
    /// Gone from the Maildir, EXPUNGE not yet sent.
    pub(crate) gone: bool,
}

/// The selected mailbox.
#[derive(Debug)]
pub struct Selected {
    pub(crate) mailbox: Mailbox,
    /// UTF-8 IMAP name.
    pub(crate) name: String,
    pub(crate) read_only: bool,
    pub(crate) uid_validity: u32,
    pub(crate) next_uid: u32,
    pub(crate) msgs: Vec<Msg>,
    /// Keywords announced in FLAGS.
    pub(crate) keywords: BTreeSet<String>,
    /// What the directories looked like at the last sync.
    stamp: Option<Stamp>,
}

/// mtimes/sizes/inodes of `new/`, `cur/`, `dovecot-uidlist`, `dovecot-keywords`: when none
/// changed (and the newest is older than [`STAMP_SETTLE_NS`]) a refresh has nothing to find,
/// and skips the directory scan.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    files: [(i64, u64, u64); 4],
    newest_ns: i64,
}

/// Timestamps are coarser than changes (the kernel's clock tick): within this time of the
/// newest mtime another change may not move it, so we sync anyway (as Dovecot does).
const STAMP_SETTLE_NS: i64 = 2_000_000_000;

fn stamp(dir: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let mut files = [(0i64, 0u64, 0u64); 4];
    let mut newest_ns = 0i64;
    for (i, name) in ["new", "cur", "dovecot-uidlist", "dovecot-keywords"]
        .iter()
        .enumerate()
    {
        if let Ok(md) = std::fs::metadata(dir.join(name)) {
            let ns = md
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(md.mtime_nsec());
            files[i] = (ns, md.size(), md.ino());
            newest_ns = newest_ns.max(ns);
        }
    }
    Stamp { files, newest_ns }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

const SYSTEM: [(SystemFlag, &str); 5] = [
    (SystemFlag::Answered, "\\Answered"),
    (SystemFlag::Flagged, "\\Flagged"),
    (SystemFlag::Deleted, "\\Deleted"),
    (SystemFlag::Seen, "\\Seen"),
    (SystemFlag::Draft, "\\Draft"),
];

/// Drops what IMAP never uses (the POP3 UIDL string) from a listed message: the view holds
/// one per message for the whole session.
fn compact(mut m: Message) -> Message {
    m.pop3_uidl = String::new();
    m.file_name.shrink_to_fit();
    m
}

/// The flag list of a message as IMAP shows it.
pub(crate) fn flag_names(m: &Message, recent: bool, rev2: bool) -> Vec<String> {
    let mut v: Vec<String> = SYSTEM
        .iter()
        .filter(|(f, _)| m.flags.contains(*f))
        .map(|(_, s)| (*s).to_string())
        .collect();
    v.extend(m.keywords.iter().cloned());
    if recent && !rev2 {
        v.push("\\Recent".into());
    }
    v
}

pub(crate) fn write_flags(out: &mut Vec<u8>, m: &Message, recent: bool, rev2: bool) {
    let names = flag_names(m, recent, rev2);
    pochta_imap_proto::encode::flag_list(out, names.iter().map(String::as_str));
}

impl Selected {
    /// Opens `mailbox` and writes the SELECT/EXAMINE untagged data.
    pub(crate) fn open(
        mailbox: Mailbox,
        name: String,
        read_only: bool,
        rev2: bool,
        out: &mut Vec<u8>,
    ) -> pochta_mailstore::Result<Selected> {
        let before = stamp(mailbox.dir());
        let state = mailbox.sync(SyncOptions {
            move_new_to_cur: !read_only,
        })?;
        let keywords: BTreeSet<String> = state
            .keywords
            .iter()
            .map(|(_, k)| k.to_string())
            .chain(
                state
                    .messages
                    .iter()
                    .flat_map(|m| m.keywords.iter().cloned()),
            )
            .collect();
        let msgs: Vec<Msg> = state
            .messages
            .into_iter()
            .map(|m| Msg {
                recent: m.recent,
                m: compact(m),
                gone: false,
            })
            .collect();
        let sel = Selected {
            mailbox,
            name,
            read_only,
            uid_validity: state.uid_validity,
            next_uid: state.next_uid,
            msgs,
            keywords,
            stamp: Some(before),
        };
        sel.write_flags_responses(out);
        out.extend_from_slice(format!("* {} EXISTS\r\n", sel.msgs.len()).as_bytes());
        if !rev2 {
            let recent = sel.msgs.iter().filter(|m| m.recent).count();
            out.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
            if let Some(i) = sel
                .msgs
                .iter()
                .position(|m| !m.m.flags.contains(SystemFlag::Seen))
            {
                out.extend_from_slice(
                    format!("* OK [UNSEEN {}] First unseen.\r\n", i + 1).as_bytes(),
                );
            }
        }
        out.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n",
                sel.uid_validity, sel.next_uid
            )
            .as_bytes(),
        );
        Ok(sel)
    }

    fn write_flags_responses(&self, out: &mut Vec<u8>) {
        let sys = SYSTEM.iter().map(|(_, s)| *s);
        let kws = self.keywords.iter().map(String::as_str);
        out.extend_from_slice(b"* FLAGS ");
        pochta_imap_proto::encode::flag_list(out, sys.clone().chain(kws.clone()));
        out.extend_from_slice(b"\r\n* OK [PERMANENTFLAGS ");
        if self.read_only {
            out.extend_from_slice(b"()");
        } else {
            pochta_imap_proto::encode::flag_list(out, sys.chain(kws).chain(["\\*"]));
        }
        out.extend_from_slice(b"] Flags permitted.\r\n");
    }

    /// Directories IDLE watches.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.mailbox.dir().join("new"),
            self.mailbox.dir().join("cur"),
        ]
    }

    /// Syncs with the Maildir and reports changes. EXPUNGEs only when `allow_expunge`.
    pub(crate) fn refresh(
        &mut self,
        allow_expunge: bool,
        rev2: bool,
        out: &mut Vec<u8>,
    ) -> pochta_mailstore::Result<()> {
        let before = stamp(self.mailbox.dir());
        let pending_expunges = allow_expunge && self.msgs.iter().any(|m| m.gone);
        if self.stamp.as_ref() == Some(&before)
            && now_ns() - before.newest_ns > STAMP_SETTLE_NS
            && !pending_expunges
        {
            return Ok(());
        }
        if before.files[1].0 == 0 && !self.mailbox.dir().join("cur").is_dir() {
            return Err(pochta_mailstore::Error::MailboxNotFound {
                path: self.mailbox.dir().to_path_buf(),
            });
        }
        let state = self.mailbox.sync(SyncOptions {
            move_new_to_cur: !self.read_only,
        })?;
        self.stamp = Some(before);
        let mut now: HashMap<u32, Message> = state
            .messages
            .into_iter()
            .map(|m| (m.uid, compact(m)))
            .collect();
        // new keywords first, so that FETCH FLAGS never names an unannounced one
        let before = self.keywords.len();
        for m in now.values() {
            for k in &m.keywords {
                if !self.keywords.contains(k) {
                    self.keywords.insert(k.clone());
                }
            }
        }
        if self.keywords.len() != before {
            self.write_flags_responses(out);
        }
        let last_uid = self.msgs.last().map_or(0, |m| m.m.uid);
        for (i, msg) in self.msgs.iter_mut().enumerate() {
            match now.remove(&msg.m.uid) {
                None => msg.gone = true,
                Some(m) => {
                    let changed = m.flags != msg.m.flags || m.keywords != msg.m.keywords;
                    msg.m = m;
                    if changed && !msg.gone {
                        out.extend_from_slice(format!("* {} FETCH (FLAGS ", i + 1).as_bytes());
                        write_flags(out, &msg.m, msg.recent, rev2);
                        out.extend_from_slice(b")\r\n");
                    }
                }
            }
        }
        if allow_expunge {
            self.send_expunges(out);
        }
        let mut added: Vec<Message> = now.into_values().filter(|m| m.uid > last_uid).collect();
        added.sort_by_key(|m| m.uid);
        if !added.is_empty() {
            for m in added {
                self.msgs.push(Msg {
                    recent: m.recent,
                    m,
                    gone: false,
                });
            }
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.msgs.len()).as_bytes());
            if !rev2 {
                let recent = self.msgs.iter().filter(|m| m.recent).count();
                out.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
            }
        }
        self.next_uid = self.next_uid.max(state.next_uid);
        Ok(())
    }

    /// Sends `* n EXPUNGE` for messages gone, highest first (numbers below stay valid).
    pub(crate) fn send_expunges(&mut self, out: &mut Vec<u8>) {
        for i in (0..self.msgs.len()).rev() {
            if self.msgs[i].gone {
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                self.msgs.remove(i);
            }
        }
    }

    /// Indices (0-based) of the messages a set names, ascending. Sequence numbers beyond the
    /// mailbox are an error (RFC 9051 §9 seq-number); UIDs that don't exist are skipped.
    pub(crate) fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, ()> {
        let mut idx = Vec::new();
        if uid {
            let largest = self.msgs.last().map_or(0, |m| m.m.uid);
            let ranges: Vec<(u32, u32)> = set.ranges(largest).collect();
            for (i, m) in self.msgs.iter().enumerate() {
                if ranges.iter().any(|&(a, b)| a <= m.m.uid && m.m.uid <= b) {
                    idx.push(i);
                }
            }
        } else {
            let n = self.msgs.len() as u32;
            let mut seen = vec![false; self.msgs.len()];
            for (a, b) in set.ranges(n) {
                if a == 0 || b > n {
                    return Err(());
                }
                for s in a..=b {
                    seen[(s - 1) as usize] = true;
                }
            }
            idx = (0..self.msgs.len()).filter(|&i| seen[i]).collect();
        }
        Ok(idx)
    }
}
