//! Plumbing shared by both clients: options, the lazily started connection task that owns the
//! socket, and socket helpers.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::AuthClientError;

/// Timeouts of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Connecting plus the server's handshake.
    pub connect_timeout: Duration,
    /// Waiting for one answer (a userdb reply, the next SASL step). A failed authentication
    /// is answered only after the server's failure delay plus any penalty (Dovecot: 2 s plus
    /// up to 15 s), so keep this well above 17 s.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    /// 5 s to connect, 30 s per answer (Dovecot's auth-master client waits 30 s too).
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Size of one socket read.
const READ_CHUNK: usize = 8192;

/// Connects to a UNIX socket within the timeout.
pub(crate) async fn connect(path: &Path, timeout: Duration) -> Result<UnixStream, AuthClientError> {
    match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(AuthClientError::Unavailable(format!(
            "{}: {e}",
            path.display()
        ))),
        Err(_) => Err(AuthClientError::Unavailable(format!(
            "{}: connect timed out",
            path.display()
        ))),
    }
}

/// Reads what is available into `buf` (emptied first). Cancel-safe: nothing is lost when the
/// future is dropped before it completes. `Ok(0)` is end of file.
pub(crate) async fn read_some(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    buf.clear();
    buf.reserve(READ_CHUNK);
    stream.read_buf(buf).await
}

/// The sending side of a connection task, started on first use and restarted if it ended.
/// The task ends when every clone of its client is dropped.
#[derive(Debug)]
pub(crate) struct TaskHandle<J> {
    tx: Mutex<Option<mpsc::UnboundedSender<J>>>,
}

impl<J: Send + 'static> TaskHandle<J> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(TaskHandle {
            tx: Mutex::new(None),
        })
    }

    /// Hands `job` to the running task, starting one with `start` if there is none.
    pub(crate) fn submit<F, Fut>(&self, job: J, start: F)
    where
        F: FnOnce(mpsc::UnboundedReceiver<J>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        // Every critical section is a single assignment or send: a poisoned lock holds a
        // consistent value.
        let mut guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let job = match guard.as_ref() {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // A fresh receiver is alive until the task below drops it: this send cannot fail.
        let _ = tx.send(job);
        tokio::spawn(start(rx));
        *guard = Some(tx);
    }
}
