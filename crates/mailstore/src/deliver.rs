//! Delivery of one message into a mailbox, as Dovecot LMTP/deliver saves into Maildir:
//!
//! 1. quota check against `maildirsize` (when a limit is given);
//! 2. `tmp/<unique>` created `O_EXCL`, written, fsynced (in the caller's thread, so concurrent
//!    deliveries overlap their fsyncs);
//! 3. under `dovecot-uidlist.lock`: rename into `new/<base>` (or `cur/<base>:2,<flags>` when flags
//!    or keywords are given), fsync `new/` (and `cur/`), append `<uid> :<base>` records with the
//!    next UIDs to `dovecot-uidlist`, fdatasync it, unlock;
//! 4. a `maildirsize` delta line.
//!
//! Group commit: deliveries to the same mailbox from threads of this process queue up while one of
//! them holds the uidlist lock; the holder then commits the whole queue with one lock, one
//! directory fsync and one uidlist write. Nobody is answered before their file, its directory entry
//! and its uidlist record are on disk. Other processes (Dovecot, another pochta) are serialised by
//! the dot-lock as usual.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::filename::{generate_base, with_sizes, Filename, Flags, SizeCounter};
use crate::keywords;
use crate::lock::{DotLock, LockSettings};
use crate::quota::{self, QuotaLimit};
use crate::uidlist::{self, AppendState, UidList, UidRecord};
use crate::uidvalidity::{new_guid, next_uid_validity};

/// What to do besides storing the bytes.
#[derive(Clone, Debug, Default)]
pub struct DeliverOptions {
    /// Check and update `maildirsize` against this limit (`None`: no check; an existing
    /// `maildirsize` still gets its delta line).
    pub quota: Option<QuotaLimit>,
    /// Initial system flags and keyword letters (letters are ignored here: use `keywords`).
    pub flags: Flags,
    /// Initial keywords by name (`$Junk`, …); slots are assigned in `dovecot-keywords`.
    pub keywords: Vec<String>,
}

/// The stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// UID assigned in the mailbox's `dovecot-uidlist`.
    pub uid: u32,
    /// File name in `new/` (or `cur/` when flags were given), with `,S=` and `,W=`.
    pub file_name: String,
    /// Bytes on disk (`S=`).
    pub size: u64,
}

/// A message written to tmp/ and waiting for its commit.
struct Pending {
    tmp: PathBuf,
    /// Base name with sizes, e.g. `1700000000.M1P2Q3.host,S=10,W=12`.
    base: String,
    flags: Flags,
    keywords: Vec<String>,
    size: u64,
}

#[derive(Default)]
struct Queue {
    next_id: u64,
    pending: Vec<(u64, Pending)>,
    results: HashMap<u64, Result<Delivered>>,
    committing: bool,
}

/// The commit queue of one mailbox directory in this process.
#[derive(Default)]
struct Committer {
    queue: Mutex<Queue>,
    done: Condvar,
}

fn committer_for(dir: &Path) -> Arc<Committer> {
    static ALL: OnceLock<Mutex<HashMap<PathBuf, Weak<Committer>>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = all.get(dir).and_then(Weak::upgrade) {
        return c;
    }
    if all.len() > 1024 {
        all.retain(|_, w| w.strong_count() > 0);
    }
    let c = Arc::new(Committer::default());
    all.insert(dir.to_path_buf(), Arc::downgrade(&c));
    c
}

/// Stores `message` in the mailbox directory `dir` (the root for INBOX) of the Maildir `root`.
pub(crate) fn deliver(
    root: &Path,
    dir: &Path,
    message: &[u8],
    opts: &DeliverOptions,
    internal_date: Option<SystemTime>,
) -> Result<Delivered> {
    let mut counter = SizeCounter::default();
    counter.update(message);
    if let Some(limit) = opts.quota.as_ref().filter(|l| !l.is_unlimited()) {
        let usage = quota::current(root, limit)?;
        if usage.would_exceed(counter.size(), 1) {
            return Err(Error::OverQuota {
                used_bytes: usage.bytes.max(0) as u64,
                used_messages: usage.messages.max(0) as u64,
                size: counter.size(),
            });
        }
    }
    let (tmp, base) = write_tmp(dir, message, &counter, internal_date)?;
    let pending = Pending {
        tmp,
        base,
        flags: opts.flags,
        keywords: opts.keywords.clone(),
        size: counter.size(),
    };
    let delivered = commit(dir, pending)?;
    quota::append_delta(root, delivered.size as i64, 1)?;
    Ok(delivered)
}

/// Creates `tmp/<unique>,S=,W=` with `O_EXCL`, writes and fsyncs it. Returns its path and base
/// name.
/// `internal_date` becomes the file's mtime (IMAP APPEND's date, COPY keeping INTERNALDATE).
fn write_tmp(
    dir: &Path,
    message: &[u8],
    counter: &SizeCounter,
    internal_date: Option<SystemTime>,
) -> Result<(PathBuf, String)> {
    let tmp_dir = dir.join("tmp");
    let mut attempts = 0;
    loop {
        let base = with_sizes(&generate_base(SystemTime::now()), counter);
        let path = tmp_dir.join(&base);
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 10 => {
                attempts += 1;
                continue;
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let written = f
            .write_all(message)
            .map_err(|e| Error::io("write", &path, e))
            .and_then(|()| match internal_date {
                Some(t) => f
                    .set_modified(t)
                    .map_err(|e| Error::io("utimens", &path, e)),
                None => Ok(()),
            })
            .and_then(|()| f.sync_all().map_err(|e| Error::io("fsync", &path, e)));
        if let Err(e) = written {
            drop(f);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        return Ok((path, base));
    }
}

/// Queues `p` for the mailbox's group commit and waits for its result.
fn commit(dir: &Path, p: Pending) -> Result<Delivered> {
    let c = committer_for(dir);
    let mut q = c.queue.lock().unwrap_or_else(|e| e.into_inner());
    let id = q.next_id;
    q.next_id += 1;
    q.pending.push((id, p));
    loop {
        if let Some(r) = q.results.remove(&id) {
            return r;
        }
        if !q.committing {
            q.committing = true;
            let batch = std::mem::take(&mut q.pending);
            drop(q);
            let results = commit_batch(dir, batch);
            q = c.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.committing = false;
            q.results.extend(results);
            c.done.notify_all();
            continue;
        }
        q = c.done.wait(q).unwrap_or_else(|e| e.into_inner());
    }
}

fn fsync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync", path, e))
}

/// Commits a batch under one uidlist lock. Every job gets a result; failed ones lose their tmp
/// file.
fn commit_batch(dir: &Path, batch: Vec<(u64, Pending)>) -> Vec<(u64, Result<Delivered>)> {
    match commit_locked(dir, &batch) {
        Ok(results) => batch
            .into_iter()
            .zip(results)
            .map(|((id, p), r)| {
                if r.is_err() {
                    let _ = fs::remove_file(&p.tmp);
                }
                (id, r)
            })
            .collect(),
        Err(e) => batch
            .into_iter()
            .map(|(id, p)| {
                // the rename may have happened before the failure: then the file stays (it is
                // durable or not, but never half-written) and the sender retries (a duplicate at
                // worst, never a loss)
                let _ = fs::remove_file(&p.tmp);
                (id, Err(e.duplicate()))
            })
            .collect(),
    }
}

/// The locked part. An `Err` fails the whole batch; per-job failures are in the vector.
fn commit_locked(dir: &Path, batch: &[(u64, Pending)]) -> Result<Vec<Result<Delivered>>> {
    let uidlist_path = dir.join(uidlist::UIDLIST_NAME);
    let _lock = DotLock::acquire(&uidlist_path, LockSettings::UIDLIST)?;
    let state = uidlist::append_state(dir)?;
    // the full list only when the file must be (re)written whole
    let mut full: Option<UidList> = match state {
        AppendState::Append { .. } => None,
        AppendState::Missing => Some(UidList::new(next_uid_validity_for(dir), new_guid())),
        AppendState::Rewrite => Some(match uidlist::read(dir) {
            Ok(Some(mut l)) => {
                if l.guid.is_none() {
                    l.guid = Some(new_guid());
                }
                l
            }
            // broken or vanished: start over like Dovecot (new UIDVALIDITY); the next sync
            // gives the files already there their UIDs
            Ok(None) | Err(Error::Corrupt { .. }) => {
                UidList::new(next_uid_validity_for(dir), new_guid())
            }
            Err(e) => return Err(e),
        }),
    };
    let mut next_uid = match (&state, &full) {
        (AppendState::Append { next_uid, .. }, _) => *next_uid,
        (_, Some(l)) => l.next_uid,
        (_, None) => 1,
    };

    // keyword slots (written under the uidlist lock, as Dovecot does)
    let mut kw_table = None;
    if batch.iter().any(|(_, p)| !p.keywords.is_empty()) {
        let mut table = keywords::read(dir)?;
        let mut changed = false;
        for (_, p) in batch {
            for k in &p.keywords {
                if let Ok((_, c)) = table.get_or_assign(k) {
                    changed |= c;
                }
            }
        }
        if changed {
            keywords::write(dir, &mut table)?;
        }
        kw_table = Some(table);
    }

    let mut results: Vec<Result<Delivered>> = Vec::with_capacity(batch.len());
    let mut records = Vec::with_capacity(batch.len());
    let (mut used_new, mut used_cur) = (false, false);
    for (_, p) in batch {
        if next_uid >= u32::MAX - 1 {
            results.push(Err(Error::Corrupt {
                path: uidlist_path.clone(),
                line: 1,
                reason: "UID space exhausted".into(),
            }));
            continue;
        }
        let mut flags = p.flags.system_only();
        if let Some(table) = &kw_table {
            for k in &p.keywords {
                if let Some(i) = table.index_of(k) {
                    flags.set_keyword(i, true);
                }
            }
        }
        let (sub, file_name) = if flags == Flags::empty() {
            ("new", p.base.clone())
        } else {
            let name = match Filename::parse(&p.base) {
                Ok(f) => f.with_flags(&flags).as_str().to_string(),
                Err(_) => format!("{}:2,{}", p.base, flags.letters()),
            };
            ("cur", name)
        };
        let dest = dir.join(sub).join(&file_name);
        if let Err(e) = fs::rename(&p.tmp, &dest) {
            results.push(Err(Error::io("rename", &p.tmp, e)));
            continue;
        }
        if sub == "new" {
            used_new = true;
        } else {
            used_cur = true;
        }
        records.push(UidRecord {
            uid: next_uid,
            ext: Vec::new(),
            filename: p.base.clone(),
        });
        results.push(Ok(Delivered {
            uid: next_uid,
            file_name,
            size: p.size,
        }));
        next_uid += 1;
    }
    if used_new {
        fsync_dir(&dir.join("new"))?;
    }
    if used_cur {
        fsync_dir(&dir.join("cur"))?;
    }
    match full {
        Some(ref mut list) => {
            list.records.extend(records);
            list.next_uid = list.next_uid.max(next_uid);
            list.needs_rewrite = false;
            uidlist::rewrite(dir, list)?;
        }
        None => uidlist::append(dir, &records)?,
    }
    Ok(results)
}

/// UIDVALIDITY for a new uidlist in `dir`: allocated from the Maildir root's `dovecot-uidvalidity`
/// (the root is `dir` itself or its parent for a `.folder`).
fn next_uid_validity_for(dir: &Path) -> u32 {
    let is_folder = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
        && dir.join("maildirfolder").exists();
    let root = if is_folder {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    next_uid_validity(root)
}
