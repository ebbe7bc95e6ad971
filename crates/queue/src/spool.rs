//! The spool: durable enqueue with group commit, crash recovery, and the file operations the
//! runner needs (load, append state, remove).
//!
//! Enqueue: the queue file is created as `queue/<id>` and written and fdatasync'ed on tokio's
//! blocking pool (concurrent enqueues fsync in parallel, which the filesystem journal batches);
//! then a dedicated commit thread fsyncs `queue/` once for every file that is ready, and only
//! then are they acknowledged. A file is complete only with its checksummed `end` line. Until
//! the acknowledgement nobody else looks at the file (the runner hears of it afterwards); a
//! crash before it leaves a file that `Spool::open` removes when incomplete — a complete one
//! that missed its acknowledgement is delivered, the unavoidable SMTP duplicate (RFC 1047).
//! After the directory fsync the message survives anything.

use crate::config::QueueConfig;
use crate::file::{self, Envelope, Parsed, RcptState, StoredRecipient};
use crate::id::IdSource;
use crate::{now_ms, QueueId};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc as tmpsc, oneshot};

/// A message the smtpd accepted, to be queued.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Reverse-path without `<>`; "" = null sender `<>`.
    pub sender: String,
    /// RCPT order, at least one.
    pub recipients: Vec<NewRecipient>,
    /// DSN ENVID (decoded xtext).
    pub envid: Option<String>,
    pub ret: Option<pochta_smtp::Ret>,
    /// BODY= from MAIL.
    pub body: Option<pochta_smtp::Body>,
    pub smtputf8: bool,
    /// "name[ip]" or "local uid=1000 (user)" — for logs.
    pub client: String,
    pub sasl_username: Option<String>,
    /// The whole message as it will be delivered, CRLF line ends.
    pub content: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct NewRecipient {
    /// Where it goes: as accepted, or what alias expansion made of it.
    pub address: String,
    /// The address as received when expansion changed it (Postfix orig_to).
    pub orig: Option<String>,
    pub orcpt: Option<pochta_smtp::Orcpt>,
    pub notify: Option<pochta_smtp::Notify>,
    /// Who delivers it: a mailbox (by domain), or an aliases(5) command or file, whose
    /// `address` is then the command or the path. Set only by the mta's alias expansion,
    /// never from what a client wrote.
    pub agent: crate::Agent,
}

/// Queue failures. For the smtpd every one of them means 451 4.3.0.
#[derive(Debug)]
pub enum QueueError {
    Io {
        what: String,
        source: io::Error,
    },
    /// Another process holds the spool lock (a second mta on the same spool).
    Locked(PathBuf),
    /// A queue file that does not parse.
    Format(QueueId, file::FormatError),
    NotFound(QueueId),
    Invalid(&'static str),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Io { what, source } => write!(f, "{what}: {source}"),
            QueueError::Locked(p) => {
                write!(f, "{}: spool in use by another process", p.display())
            }
            QueueError::Format(id, e) => write!(f, "{id}: {e}"),
            QueueError::NotFound(id) => write!(f, "{id}: no such message in the queue"),
            QueueError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for QueueError {}

pub(crate) fn io_err(what: impl fmt::Display, path: &Path) -> impl FnOnce(io::Error) -> QueueError {
    let what = format!("{what} {}", path.display());
    move |source| QueueError::Io { what, source }
}

/// A file waiting for the group commit.
struct CommitJob {
    id: QueueId,
    reply: oneshot::Sender<Result<(), QueueError>>,
}

/// The open spool of the running mta. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    ids: IdSource,
    commit: Mutex<mpsc::Sender<CommitJob>>,
    /// New messages for the runner.
    wake: tmpsc::UnboundedSender<QueueId>,
    wake_rx: Mutex<Option<tmpsc::UnboundedReceiver<QueueId>>>,
    /// Held for the process lifetime: the flock that makes this mta the spool's only writer.
    _lock: nix::fcntl::Flock<File>,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// Subdirectories of the spool.
pub(crate) const TMP: &str = "tmp";
pub(crate) const QUEUE: &str = "queue";
pub(crate) const HOLD: &str = "hold";
pub(crate) const CORRUPT: &str = "corrupt";

impl Spool {
    /// Blocking: creates/validates the spool tree, takes its lock, removes incomplete queue
    /// files (never acknowledged; damaged ones go to `corrupt/`) and starts the commit thread.
    pub fn open(cfg: &QueueConfig) -> Result<Spool, QueueError> {
        let dir = cfg.dir.clone();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir)
            .map_err(io_err("create", &dir))?;
        for sub in [TMP, QUEUE, HOLD, CORRUPT] {
            let p = dir.join(sub);
            match std::fs::DirBuilder::new().mode(0o750).create(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create", &p)(e)),
            }
        }
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o640)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| QueueError::Locked(lock_path))?;
        let removed = clean_tmp(&dir.join(TMP))? + remove_incomplete(&dir)?;
        if removed > 0 {
            tracing::info!(
                files = removed,
                "removed incomplete queue files (never acknowledged)"
            );
        }
        let floor = max_id(&dir);
        let (commit_tx, commit_rx) = mpsc::channel::<CommitJob>();
        let commit_dir = dir.clone();
        let batch = cfg.max_commit_batch.max(1);
        std::thread::Builder::new()
            .name("queue-commit".into())
            .spawn(move || commit_thread(commit_dir, commit_rx, batch))
            .map_err(io_err("start commit thread for", &dir))?;
        let (wake, wake_rx) = tmpsc::unbounded_channel();
        Ok(Spool {
            inner: Arc::new(Inner {
                dir,
                ids: IdSource::new(floor),
                commit: Mutex::new(commit_tx),
                wake,
                wake_rx: Mutex::new(Some(wake_rx)),
                _lock: lock,
            }),
        })
    }

    /// A fresh unique queue id.
    pub fn new_id(&self) -> QueueId {
        self.inner.ids.next()
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Durable: Ok only after the queue file and its directory entry are fsynced. Wakes the
    /// runner. Logs `<id>: from=<sender>, size=N, nrcpt=M (queue active)`.
    pub async fn enqueue(&self, id: &QueueId, msg: NewMessage) -> Result<(), QueueError> {
        if msg.recipients.is_empty() {
            return Err(QueueError::Invalid("message without recipients"));
        }
        let size = msg.content.len();
        let nrcpt = msg.recipients.len();
        let sender = msg.sender.clone();
        let env = Envelope {
            id: id.clone(),
            arrival_ms: now_ms(),
            sender: msg.sender,
            recipients: msg
                .recipients
                .into_iter()
                .map(|r| StoredRecipient {
                    address: r.address,
                    notify: r.notify,
                    orcpt: r.orcpt,
                    orig: r.orig,
                    agent: r.agent,
                })
                .collect(),
            envid: msg.envid,
            ret: msg.ret,
            body: msg.body,
            smtputf8: msg.smtputf8,
            client: msg.client,
            sasl_username: msg.sasl_username,
        };
        let path = self.inner.dir.join(QUEUE).join(id.as_str());
        let content = msg.content;
        tokio::task::spawn_blocking(move || write_file(&path, &env, &content))
            .await
            .map_err(|e| QueueError::Io {
                what: "queue writer task".into(),
                source: io::Error::other(e.to_string()),
            })??;
        let (tx, rx) = oneshot::channel();
        let job = CommitJob {
            id: id.clone(),
            reply: tx,
        };
        let sent = self
            .inner
            .commit
            .lock()
            .map_err(|_| QueueError::Invalid("commit channel poisoned"))?
            .send(job)
            .is_ok();
        let res = if sent {
            rx.await
                .unwrap_or(Err(QueueError::Invalid("commit thread gone")))
        } else {
            Err(QueueError::Invalid("commit thread gone"))
        };
        if let Err(e) = res {
            let _ = std::fs::remove_file(self.inner.dir.join(QUEUE).join(id.as_str()));
            return Err(e);
        }
        tracing::info!("{id}: from=<{sender}>, size={size}, nrcpt={nrcpt} (queue active)");
        let _ = self.inner.wake.send(id.clone());
        Ok(())
    }

    /// The runner's feed of new messages (taken once).
    pub(crate) fn take_wake(&self) -> Option<tmpsc::UnboundedReceiver<QueueId>> {
        self.inner.wake_rx.lock().ok()?.take()
    }
}

/// Blocking: reads and parses `queue/<id>`; cuts off a torn last record. An incomplete file is
/// an enqueue in progress (NotFound); a damaged one is moved to `corrupt/` (never deleted: it
/// may hold acknowledged mail).
pub(crate) fn load(dir: &Path, id: &QueueId) -> Result<(Parsed, Vec<u8>), QueueError> {
    let path = dir.join(QUEUE).join(id.as_str());
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(QueueError::NotFound(id.clone()))
        }
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    match file::parse(&bytes) {
        Ok(p) => {
            if p.valid_len < bytes.len() {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err("open", &path))?;
                f.set_len(p.valid_len as u64)
                    .and_then(|()| f.sync_data())
                    .map_err(io_err("truncate torn record of", &path))?;
            }
            Ok((p, bytes))
        }
        // Still being written (an enqueue in progress): not there yet for the runner.
        Err(file::FormatError::Incomplete) => Err(QueueError::NotFound(id.clone())),
        Err(e) => {
            let to = dir.join(CORRUPT).join(id.as_str());
            tracing::error!("{id}: {e}; moved to {}", to.display());
            let _ = std::fs::rename(&path, &to);
            Err(QueueError::Format(id.clone(), e))
        }
    }
}

/// Blocking: appends state records to `queue/<id>` and fdatasyncs. NotFound when the admin
/// deleted or held the message meanwhile.
pub(crate) fn append_states(
    dir: &Path,
    id: &QueueId,
    states: &[(usize, RcptState)],
) -> Result<(), QueueError> {
    let path = dir.join(QUEUE).join(id.as_str());
    let mut f = match OpenOptions::new().append(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(QueueError::NotFound(id.clone()))
        }
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let mut buf = Vec::new();
    for (i, st) in states {
        buf.extend_from_slice(&file::encode_record(*i, st));
    }
    f.write_all(&buf)
        .and_then(|()| f.sync_data())
        .map_err(io_err("append to", &path))
}

/// Blocking: removes a finished message. No directory fsync: if the removal is lost in a
/// crash, the file's records say every recipient is done and the next start removes it again.
pub(crate) fn remove(dir: &Path, id: &QueueId) -> Result<(), QueueError> {
    let path = dir.join(QUEUE).join(id.as_str());
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", &path)(e)),
    }
}

/// Blocking: the ids in `queue/` (or another subdirectory).
pub(crate) fn list_ids(dir: &Path, sub: &str) -> Result<Vec<QueueId>, QueueError> {
    let p = dir.join(sub);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&p).map_err(io_err("read directory", &p))? {
        let entry = entry.map_err(io_err("read directory", &p))?;
        if let Some(id) = entry.file_name().to_str().and_then(QueueId::parse) {
            out.push(id);
        }
    }
    out.sort();
    Ok(out)
}

fn write_file(path: &Path, env: &Envelope, content: &[u8]) -> Result<(), QueueError> {
    let bytes = file::encode(env, content);
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(path)?;
        f.write_all(&bytes)?;
        f.sync_data()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(path);
        return Err(io_err("write", path)(e));
    }
    Ok(())
}

fn commit_thread(dir: PathBuf, rx: mpsc::Receiver<CommitJob>, max_batch: usize) {
    let queue = dir.join(QUEUE);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // One directory fsync makes every file of the batch durable.
        let synced = File::open(&queue).and_then(|d| d.sync_all());
        for job in batch {
            let res = match &synced {
                Ok(()) => Ok(()),
                Err(e) => {
                    // Not durable: take it back so it is never delivered unacknowledged.
                    let _ = std::fs::remove_file(queue.join(job.id.as_str()));
                    Err(io_err("fsync", &queue)(io::Error::new(
                        e.kind(),
                        e.to_string(),
                    )))
                }
            };
            let _ = job.reply.send(res);
        }
    }
}

/// At open (no enqueue runs yet): removes queue files whose write never finished; moves
/// damaged ones to `corrupt/`.
fn remove_incomplete(dir: &Path) -> Result<usize, QueueError> {
    let mut n = 0;
    for id in list_ids(dir, QUEUE)? {
        let path = dir.join(QUEUE).join(id.as_str());
        let bytes = std::fs::read(&path).map_err(io_err("read", &path))?;
        match file::parse(&bytes) {
            Ok(_) => {}
            Err(file::FormatError::Incomplete) => {
                std::fs::remove_file(&path).map_err(io_err("remove", &path))?;
                n += 1;
            }
            Err(e) => {
                let to = dir.join(CORRUPT).join(id.as_str());
                tracing::error!("{id}: {e}; moved to {}", to.display());
                std::fs::rename(&path, &to).map_err(io_err("move", &path))?;
            }
        }
    }
    Ok(n)
}

fn clean_tmp(tmp: &Path) -> Result<usize, QueueError> {
    let mut n = 0;
    for entry in std::fs::read_dir(tmp).map_err(io_err("read directory", tmp))? {
        let entry = entry.map_err(io_err("read directory", tmp))?;
        std::fs::remove_file(entry.path()).map_err(io_err("remove", &entry.path()))?;
        n += 1;
    }
    Ok(n)
}

/// The largest id (as a number) already in the spool, so new ids stay unique even if the
/// clock went back.
fn max_id(dir: &Path) -> u64 {
    let mut max = 0;
    for sub in [QUEUE, HOLD, CORRUPT] {
        if let Ok(ids) = list_ids(dir, sub) {
            for id in ids {
                if let Some(n) = crate::id::decode(id.as_str()) {
                    max = max.max(n);
                }
            }
        }
    }
    max
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
