//! Reading one mailbox: sync (scan `new/` and `cur/`, move new→cur, give UIDs to files the
//! uidlist lacks, keep the UIDs of known files), message list, message bytes, flag/keyword changes
//! (renames), expunge. Readers take no lock; anything that writes the uidlist or the keywords file
//! holds `dovecot-uidlist.lock`, as Dovecot does. Every call reads the files again.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::filename::{dovecot_sort_cmp, Filename, Flags, SizeCounter};
use crate::keywords::{self, Keywords};
use crate::lock::{DotLock, LockSettings};
use crate::names::MailboxName;
use crate::quota;
use crate::uidlist::{self, UidList, UidRecord};
use crate::uidvalidity::{new_guid, next_uid_validity};

/// tmp/ files older than this are garbage from crashed deliveries (Dovecot: 36 h).
pub const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 3600);

/// Which of `new/` or `cur/` a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subdir {
    /// `new/`: delivered, not yet seen by any IMAP session (\Recent).
    New,
    /// `cur/`
    Cur,
}

impl Subdir {
    /// `"new"` or `"cur"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subdir::New => "new",
            Subdir::Cur => "cur",
        }
    }
}

/// How a sync may change the mailbox.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncOptions {
    /// Move `new/` files to `cur/` (appending `:2,`), as a read-write IMAP SELECT or POP3 session
    /// does. The moved messages are reported with `recent = true`.
    pub move_new_to_cur: bool,
}

/// One message as listed by a sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// IMAP UID.
    pub uid: u32,
    /// Current file name (base + info).
    pub file_name: String,
    /// Directory the file was found in.
    pub subdir: Subdir,
    /// Bytes on disk (`S=`, else the file size).
    pub size: u64,
    /// RFC822.SIZE (`W=` of the name, else the uidlist's `W`, else counted from the file).
    pub vsize: u64,
    /// System flags and keyword letters of the name.
    pub flags: Flags,
    /// Keyword names (from `dovecot-keywords`; unmapped letters as `unknown-<n>`).
    pub keywords: Vec<String>,
    /// INTERNALDATE: the file's mtime.
    pub internal_date: SystemTime,
    /// POP3 UIDL (`P` field of the uidlist, else Dovecot's default `%08Xu%08Xv`, which Dovecot
    /// renders in lowercase hex).
    pub pop3_uidl: String,
    /// The file was in `new/` when this sync started (IMAP \Recent).
    pub recent: bool,
}

impl Message {
    /// Identity: the file name before `:`.
    pub fn base(&self) -> &str {
        self.file_name.split(':').next().unwrap_or("")
    }
}

/// The result of a sync.
#[derive(Clone, Debug)]
pub struct MailboxState {
    /// IMAP UIDVALIDITY.
    pub uid_validity: u32,
    /// IMAP UIDNEXT.
    pub next_uid: u32,
    /// Messages by ascending UID.
    pub messages: Vec<Message>,
    /// The keyword table (slot → name) at the time of the sync.
    pub keywords: Keywords,
}

/// How to change flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagOp {
    /// Set exactly these (IMAP `FLAGS`).
    Replace,
    /// Add these (`+FLAGS`).
    Add,
    /// Remove these (`-FLAGS`).
    Remove,
}

/// One mailbox directory (INBOX = the Maildir root, a folder = `<root>/.A.B`).
#[derive(Clone, Debug)]
pub struct Mailbox {
    root: PathBuf,
    dir: PathBuf,
    name: MailboxName,
}

/// A file found by a directory scan.
#[derive(Clone, Debug)]
struct Found {
    name: Filename,
    subdir: Subdir,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Mailbox {
    pub(crate) fn new(root: PathBuf, dir: PathBuf, name: MailboxName) -> Mailbox {
        Mailbox { root, dir, name }
    }

    /// The mailbox name (IMAP, `.`-separated).
    pub fn name(&self) -> &MailboxName {
        &self.name
    }

    /// The mailbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Scans `new/` then `cur/` (a file moved from new to cur in between is seen in both and kept
    /// once, as its cur/ entry). Hidden and unparsable names are skipped.
    fn scan(&self) -> Result<HashMap<String, Found>> {
        let mut found: HashMap<String, Found> = HashMap::new();
        for subdir in [Subdir::New, Subdir::Cur] {
            let path = self.dir.join(subdir.as_str());
            let rd = match fs::read_dir(&path) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && subdir == Subdir::New => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::MailboxNotFound {
                        path: self.dir.clone(),
                    })
                }
                Err(e) => return Err(Error::io("opendir", &path, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| Error::io("readdir", &path, e))?;
                let os = entry.file_name();
                let Some(name) = os.to_str().and_then(|n| Filename::parse(n).ok()) else {
                    continue;
                };
                found.insert(name.base().to_string(), Found { name, subdir });
            }
        }
        Ok(found)
    }

    /// Syncs the mailbox with its directories and returns the message list. Without changes to
    /// write this takes no lock.
    pub fn sync(&self, opts: SyncOptions) -> Result<MailboxState> {
        let mut files = self.scan()?;
        let list = match uidlist::read(&self.dir) {
            Ok(l) => l,
            Err(Error::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        let clean = list.as_ref().is_some_and(|l| {
            !l.needs_rewrite && {
                let known: HashSet<&str> = l.records.iter().map(UidRecord::base).collect();
                files.keys().all(|b| known.contains(b.as_str()))
            }
        });
        let has_new = files.values().any(|f| f.subdir == Subdir::New);
        let recent: HashSet<String> = files
            .iter()
            .filter(|(_, f)| f.subdir == Subdir::New)
            .map(|(b, _)| b.clone())
            .collect();
        let list = match list {
            Some(l) if clean && !(opts.move_new_to_cur && has_new) => l,
            _ => {
                let (l, f) = self.sync_locked(opts)?;
                files = f;
                l
            }
        };
        let kw = keywords::read(&self.dir)?;
        let mut messages = Vec::with_capacity(list.records.len());
        for rec in &list.records {
            let Some(found) = files.get(rec.base()) else {
                continue;
            };
            let path = self
                .dir
                .join(found.subdir.as_str())
                .join(found.name.as_str());
            let md = match fs::metadata(&path) {
                Ok(md) => md,
                // renamed or expunged since the scan: the next sync sees it
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &path, e)),
            };
            let size = found
                .name
                .size()
                .or_else(|| rec.ext('S').and_then(|s| s.parse().ok()))
                .unwrap_or(md.len());
            let vsize = match found
                .name
                .vsize()
                .or_else(|| rec.ext('W').and_then(|s| s.parse().ok()))
            {
                Some(v) => v,
                None => match count_vsize(&path) {
                    Ok(v) => v,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("read", &path, e)),
                },
            };
            let flags = found.name.flags();
            messages.push(Message {
                uid: rec.uid,
                file_name: found.name.as_str().to_string(),
                subdir: found.subdir,
                size,
                vsize,
                flags,
                keywords: flags.keywords().map(|i| kw.display_name(i)).collect(),
                internal_date: mtime_of(&md),
                pop3_uidl: rec.pop3_uidl(list.uid_validity),
                recent: recent.contains(rec.base()),
            });
        }
        Ok(MailboxState {
            uid_validity: list.uid_validity,
            next_uid: list.next_uid,
            messages,
            keywords: kw,
        })
    }

    /// The writing part of a sync, under the uidlist lock.
    fn sync_locked(&self, opts: SyncOptions) -> Result<(UidList, HashMap<String, Found>)> {
        let lock = DotLock::acquire(&self.dir.join(uidlist::UIDLIST_NAME), LockSettings::UIDLIST)?;
        if opts.move_new_to_cur {
            self.move_new_to_cur()?;
            self.sweep_tmp()?;
        }
        let files = self.scan()?;
        let (mut list, mut rewrite) = match uidlist::read(&self.dir) {
            Ok(Some(l)) => {
                let r = l.needs_rewrite;
                (l, r)
            }
            Ok(None) | Err(Error::Corrupt { .. }) => (
                UidList::new(next_uid_validity(&self.root), new_guid()),
                true,
            ),
            Err(e) => return Err(e),
        };
        if list.guid.is_none() {
            list.guid = Some(new_guid());
            rewrite = true;
        }
        let known: HashSet<&str> = list.records.iter().map(UidRecord::base).collect();
        let mut unknown: Vec<&Found> = files
            .values()
            .filter(|f| !known.contains(f.name.base()))
            .collect();
        unknown.sort_by(|a, b| dovecot_sort_cmp(a.name.as_str(), b.name.as_str()));
        let mut added = Vec::with_capacity(unknown.len());
        let mut touched = std::time::Instant::now();
        for f in unknown {
            // counting sizes of many files can take long: keep the lock fresh, as Dovecot does,
            // so that waiters don't take it over as stale
            if touched.elapsed() > Duration::from_secs(10) {
                lock.touch()?;
                touched = std::time::Instant::now();
            }
            if list.next_uid >= u32::MAX - 1 {
                break;
            }
            let mut ext = Vec::new();
            if f.name.vsize().is_none() {
                let path = self.dir.join(f.subdir.as_str()).join(f.name.as_str());
                match count_vsize(&path) {
                    Ok(v) => ext.push(('W', v.to_string())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("read", &path, e)),
                }
            }
            added.push(UidRecord {
                uid: list.next_uid,
                ext,
                filename: f.name.base().to_string(),
            });
            list.next_uid += 1;
        }
        if rewrite {
            list.records.extend(added);
            list.needs_rewrite = false;
            uidlist::rewrite(&self.dir, &list)?;
        } else if !added.is_empty() {
            uidlist::append(&self.dir, &added)?;
            list.records.extend(added);
        }
        Ok((list, files))
    }

    /// Renames every `new/` file to `cur/<name>:2,` (or `cur/<name>` when it has an info already).
    fn move_new_to_cur(&self) -> Result<()> {
        let new = self.dir.join("new");
        let rd = match fs::read_dir(&new) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("opendir", &new, e)),
        };
        let cur = self.dir.join("cur");
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("readdir", &new, e))?;
            let os = entry.file_name();
            let Some(name) = os.to_str().and_then(|n| Filename::parse(n).ok()) else {
                continue;
            };
            let dest = match name.info() {
                Some(_) => name.as_str().to_string(),
                None => format!("{}:2,", name.as_str()),
            };
            match fs::rename(entry.path(), cur.join(dest)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("rename", &entry.path(), e)),
            }
        }
        Ok(())
    }

    /// Deletes `tmp/` files older than 36 h (leftovers of crashed deliveries). Returns how many.
    /// Dot-lock temporary files (`.temp.*`) of crashed processes in the mailbox directory go
    /// too.
    pub fn sweep_tmp(&self) -> Result<usize> {
        let limit = now_secs() - TMP_MAX_AGE.as_secs() as i64;
        let mut n = sweep_dir(&self.dir.join("tmp"), limit, |_| true)?;
        n += sweep_dir(&self.dir, limit, |name| name.starts_with(".temp."))?;
        Ok(n)
    }

    /// Finds the current file of a message by its base name (it may have been renamed by a flag
    /// change or moved to cur/ since the listing).
    fn locate(&self, base: &str, hint: Option<(Subdir, &str)>) -> Result<(Subdir, String)> {
        if let Some((sub, name)) = hint {
            if self.dir.join(sub.as_str()).join(name).exists() {
                return Ok((sub, name.to_string()));
            }
        }
        self.locate_by_scan(base)
    }

    fn locate_by_scan(&self, base: &str) -> Result<(Subdir, String)> {
        let files = self.scan()?;
        match files.get(base) {
            Some(f) => Ok((f.subdir, f.name.as_str().to_string())),
            None => Err(Error::MessageNotFound {
                path: self.dir.join("cur").join(base),
            }),
        }
    }

    /// Opens the message's file for reading (following renames by other processes).
    pub fn open_message(&self, msg: &Message) -> Result<File> {
        let mut hint = Some((msg.subdir, msg.file_name.as_str()));
        for _ in 0..3 {
            let (sub, name) = self.locate(msg.base(), hint)?;
            let path = self.dir.join(sub.as_str()).join(&name);
            match File::open(&path) {
                Ok(f) => return Ok(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => hint = None,
                Err(e) => return Err(Error::io("open", &path, e)),
            }
        }
        Err(Error::MessageNotFound {
            path: self.dir.join(msg.subdir.as_str()).join(&msg.file_name),
        })
    }

    /// Reads the whole message.
    pub fn read_message(&self, msg: &Message) -> Result<Vec<u8>> {
        let mut f = self.open_message(msg)?;
        let mut buf = Vec::with_capacity(msg.size as usize);
        f.read_to_end(&mut buf)
            .map_err(|e| Error::io("read", &self.dir.join(&msg.file_name), e))?;
        Ok(buf)
    }

    /// Changes flags and keywords of a message by renaming its file (into `cur/`). Keyword slots
    /// missing from `dovecot-keywords` are assigned under the uidlist lock. The flags are applied
    /// to the file's current name, so concurrent changes of other flags survive. Returns the
    /// message as it is now.
    pub fn store_flags(
        &self,
        msg: &Message,
        op: FlagOp,
        flags: Flags,
        keyword_names: &[String],
    ) -> Result<Message> {
        let mut kw = keywords::read(&self.dir)?;
        let missing =
            op != FlagOp::Remove && keyword_names.iter().any(|k| kw.index_of(k).is_none());
        if missing {
            let _lock =
                DotLock::acquire(&self.dir.join(uidlist::UIDLIST_NAME), LockSettings::UIDLIST)?;
            kw = keywords::read(&self.dir)?;
            let mut changed = false;
            for k in keyword_names {
                changed |= kw.get_or_assign(k)?.1;
            }
            if changed {
                keywords::write(&self.dir, &mut kw)?;
            }
        }
        let mut change = flags.system_only();
        for k in keyword_names {
            if let Some(i) = kw.index_of(k) {
                change.set_keyword(i, true);
            }
        }
        let mut hint = Some((msg.subdir, msg.file_name.as_str()));
        for _ in 0..5 {
            let (sub, name) = self.locate(msg.base(), hint)?;
            let old = Filename::parse(&name).map_err(|_| Error::MessageNotFound {
                path: self.dir.join(sub.as_str()).join(&name),
            })?;
            let new_flags = match op {
                FlagOp::Replace => change,
                FlagOp::Add => old.flags().union(&change),
                FlagOp::Remove => old.flags().minus(&change),
            };
            let new = old.with_flags(&new_flags);
            let from = self.dir.join(sub.as_str()).join(&name);
            let to = self.dir.join("cur").join(new.as_str());
            if from != to {
                match fs::rename(&from, &to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        hint = None;
                        continue;
                    }
                    Err(e) => return Err(Error::io("rename", &from, e)),
                }
            }
            let mut out = msg.clone();
            out.file_name = new.as_str().to_string();
            out.subdir = Subdir::Cur;
            out.flags = new_flags;
            out.keywords = new_flags.keywords().map(|i| kw.display_name(i)).collect();
            return Ok(out);
        }
        Err(Error::MessageNotFound {
            path: self.dir.join("cur").join(&msg.file_name),
        })
    }

    /// Deletes messages: unlinks their files (already gone = already expunged), appends one
    /// `maildirsize` delta, and drops their records from `dovecot-uidlist` (rewrite under the
    /// lock). Returns the UIDs actually removed by this call.
    pub fn expunge(&self, msgs: &[Message]) -> Result<Vec<u32>> {
        let mut removed = Vec::new();
        let mut bases = HashSet::new();
        let (mut bytes, mut count) = (0i64, 0i64);
        let mut touched = HashSet::new();
        for msg in msgs {
            let mut hint = Some((msg.subdir, msg.file_name.as_str()));
            for _ in 0..5 {
                let (sub, name) = match self.locate(msg.base(), hint) {
                    Ok(x) => x,
                    Err(Error::MessageNotFound { .. }) => break,
                    Err(e) => return Err(e),
                };
                let path = self.dir.join(sub.as_str()).join(&name);
                match fs::remove_file(&path) {
                    Ok(()) => {
                        touched.insert(sub);
                        removed.push(msg.uid);
                        bases.insert(msg.base().to_string());
                        bytes += msg.size as i64;
                        count += 1;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => hint = None,
                    Err(e) => return Err(Error::io("unlink", &path, e)),
                }
            }
        }
        if count > 0 {
            // the unlinks are durable before the caller reports success (POP3 QUIT, EXPUNGE)
            for sub in touched {
                let path = self.dir.join(sub.as_str());
                File::open(&path)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io("fsync", &path, e))?;
            }
            quota::append_delta(&self.root, -bytes, -count)?;
            let _lock =
                DotLock::acquire(&self.dir.join(uidlist::UIDLIST_NAME), LockSettings::UIDLIST)?;
            if let Ok(Some(mut list)) = uidlist::read(&self.dir) {
                let before = list.records.len();
                list.records.retain(|r| !bases.contains(r.base()));
                if list.records.len() != before || list.needs_rewrite {
                    list.needs_rewrite = false;
                    uidlist::rewrite(&self.dir, &list)?;
                }
            }
        }
        Ok(removed)
    }

    /// The uidlist of this mailbox as it is on disk (`None` if there is none yet).
    pub fn uidlist(&self) -> Result<Option<UidList>> {
        uidlist::read(&self.dir)
    }
}

fn mtime_of(md: &fs::Metadata) -> SystemTime {
    let secs = md.mtime();
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, md.mtime_nsec().clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH
    }
}

/// RFC822.SIZE of a file: bytes with every bare LF counted as CRLF.
pub fn count_vsize(path: &Path) -> io::Result<u64> {
    let mut f = File::open(path)?;
    let mut counter = SizeCounter::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        counter.update(&buf[..n]);
    }
    Ok(counter.vsize())
}

/// Deletes the regular files of `dir` selected by `pick` whose times are all before `limit`.
fn sweep_dir(dir: &Path, limit: i64, pick: impl Fn(&str) -> bool) -> Result<usize> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("opendir", dir, e)),
    };
    let mut n = 0;
    for entry in rd.flatten() {
        if !pick(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let Ok(md) = entry.metadata() else { continue };
        // Dovecot looks at atime, mtime and ctime: a file is garbage when all are old
        if md.is_file() && md.atime().max(md.mtime()).max(md.ctime()) < limit {
            match fs::remove_file(entry.path()) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("unlink", &entry.path(), e)),
            }
        }
    }
    Ok(n)
}
