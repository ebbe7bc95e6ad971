//! What `pochta queue …`, `mailq` and `sendmail -q` do to a spool, as the admin (root or the
//! mta's user), while the mta runs or not — like Postfix's postqueue/postsuper, which also
//! work on the queue files directly:
//! - list: read `queue/` and `hold/` ([`crate::mailq`]);
//! - hold: rename `queue/<id>` → `hold/<id>` (the runner skips a message it cannot find);
//! - release: rename back, then ask the runner to deliver it now;
//! - delete: unlink from `queue/` or `hold/`;
//! - flush: a datagram `flush [id]` to the runner's `<spool>/flush` socket.

use crate::runner::FLUSH_SOCKET;
use crate::spool::{HOLD, QUEUE};
use crate::QueueId;
use std::fmt;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Why an admin command failed.
#[derive(Debug)]
pub enum AdminError {
    /// No runner listens on the flush socket.
    MailSystemDown(io::Error),
    NotFound(QueueId),
    Io(String, io::Error),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::MailSystemDown(e) => {
                write!(f, "Cannot flush mail queue - mail system is down ({e})")
            }
            AdminError::NotFound(id) => write!(f, "{id}: no such message in the queue"),
            AdminError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for AdminError {}

/// Asks the running mta to retry one message (or all) now.
pub fn flush(dir: &Path, id: Option<&QueueId>) -> Result<(), AdminError> {
    let msg = match id {
        Some(id) => format!("flush {id}"),
        None => "flush".to_owned(),
    };
    let s = UnixDatagram::unbound().map_err(AdminError::MailSystemDown)?;
    s.send_to(msg.as_bytes(), dir.join(FLUSH_SOCKET))
        .map_err(AdminError::MailSystemDown)?;
    Ok(())
}

/// Moves a message to `hold/`: it stays in the queue and is not delivered until released.
pub fn hold(dir: &Path, id: &QueueId) -> Result<(), AdminError> {
    move_file(dir, id, QUEUE, HOLD)
}

/// Puts a held message back and asks the mta to deliver it now (a stopped mta picks it up at
/// its next start).
pub fn release(dir: &Path, id: &QueueId) -> Result<(), AdminError> {
    move_file(dir, id, HOLD, QUEUE)?;
    let _ = flush(dir, Some(id));
    Ok(())
}

/// Deletes a message (queued or held). Like `postsuper -d`: a delivery already in progress
/// may still complete.
pub fn delete(dir: &Path, id: &QueueId) -> Result<(), AdminError> {
    for sub in [QUEUE, HOLD] {
        let p = dir.join(sub).join(id.as_str());
        match std::fs::remove_file(&p) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(AdminError::Io(format!("remove {}", p.display()), e)),
        }
    }
    Err(AdminError::NotFound(id.clone()))
}

fn move_file(dir: &Path, id: &QueueId, from: &str, to: &str) -> Result<(), AdminError> {
    let src = dir.join(from).join(id.as_str());
    let dst = dir.join(to).join(id.as_str());
    match std::fs::rename(&src, &dst) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(AdminError::NotFound(id.clone()))
        }
        Err(e) => return Err(AdminError::Io(format!("rename {}", src.display()), e)),
    }
    // Make the move durable before reporting it.
    for d in [from, to] {
        let p = dir.join(d);
        std::fs::File::open(&p)
            .and_then(|f| f.sync_all())
            .map_err(|e| AdminError::Io(format!("fsync {}", p.display()), e))?;
    }
    Ok(())
}
