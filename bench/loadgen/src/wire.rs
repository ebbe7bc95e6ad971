//! A line-oriented connection with a bounded reader and a per-read timeout.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest server line accepted.
const MAX_LINE: usize = 64 * 1024;

pub(crate) struct Wire<S> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub(crate) fn new(stream: S, timeout: Duration) -> Self {
        Wire {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            start: 0,
            timeout,
        }
    }

    /// The next line without its LF (a CR before it is kept: callers trim).
    pub(crate) async fn line(&mut self) -> Result<&[u8], String> {
        loop {
            if let Some(i) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
                let (from, to) = (self.start, self.start + i);
                self.start = to + 1;
                return Ok(&self.buf[from..to]);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            if self.buf.len() > MAX_LINE {
                return Err(format!("server line longer than {MAX_LINE} bytes"));
            }
            let old = self.buf.len();
            self.buf.resize(old + 16 * 1024, 0);
            let read =
                tokio::time::timeout(self.timeout, self.stream.read(&mut self.buf[old..])).await;
            let n = match read {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    self.buf.truncate(old);
                    return Err(format!("read: {e}"));
                }
                Err(_) => {
                    self.buf.truncate(old);
                    return Err(format!("no reply within {:?}", self.timeout));
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                return Err("server closed the connection".into());
            }
        }
    }

    /// The next line as text, CRLF removed.
    pub(crate) async fn text(&mut self) -> Result<String, String> {
        let l = self.line().await?;
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        Ok(String::from_utf8_lossy(l).into_owned())
    }

    /// Exactly `n` octets (an IMAP literal), bounded by the caller.
    pub(crate) async fn bytes(&mut self, n: usize) -> Result<usize, String> {
        let mut need = n;
        loop {
            let have = self.buf.len() - self.start;
            let take = have.min(need);
            self.start += take;
            need -= take;
            if need == 0 {
                return Ok(n);
            }
            self.buf.clear();
            self.start = 0;
            self.buf.resize(16 * 1024, 0);
            let read = tokio::time::timeout(self.timeout, self.stream.read(&mut self.buf)).await;
            let got = match read {
                Ok(Ok(got)) => got,
                Ok(Err(e)) => return Err(format!("read: {e}")),
                Err(_) => return Err(format!("no data within {:?}", self.timeout)),
            };
            self.buf.truncate(got);
            if got == 0 {
                return Err("server closed the connection".into());
            }
        }
    }

    pub(crate) async fn send(&mut self, s: &str) -> Result<(), String> {
        tokio::time::timeout(self.timeout, self.stream.write_all(s.as_bytes()))
            .await
            .map_err(|_| format!("write blocked for {:?}", self.timeout))?
            .map_err(|e| format!("write: {e}"))
    }
}
