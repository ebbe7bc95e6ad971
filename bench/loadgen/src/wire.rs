//! A line-oriented connection with a bounded reader and a per-read timeout.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest server line accepted.
const MAX_LINE: usize = 64 * 1024;

pub(crate) struct Wire<S> {
    stream: S,
    /// Received bytes are `buf[start..end]`; `buf[end..]` is room for the next read. The
    /// buffer is zeroed once when it grows, never per read (a 16 KiB memset per reply line
    /// was a good part of the generator's CPU).
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// `buf[start..scanned]` has no LF (a partial line is not searched again).
    scanned: usize,
    timeout: Duration,
}

/// Bytes asked for per read.
const READ_SIZE: usize = 16 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub(crate) fn new(stream: S, timeout: Duration) -> Self {
        Wire {
            stream,
            buf: vec![0; READ_SIZE],
            start: 0,
            end: 0,
            scanned: 0,
            timeout,
        }
    }

    /// Reads more after `end`, making room first; `Ok(false)` at EOF.
    async fn fill(&mut self) -> Result<bool, String> {
        if self.buf.len() - self.end < READ_SIZE / 2 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.end, self.scanned) = (self.end - self.start, self.scanned - self.start);
                self.start = 0;
            }
            if self.buf.len() - self.end < READ_SIZE / 2 {
                self.buf.resize(self.end + READ_SIZE, 0);
            }
        }
        let read = tokio::time::timeout(self.timeout, self.stream.read(&mut self.buf[self.end..]))
            .await
            .map_err(|_| format!("no reply within {:?}", self.timeout))?
            .map_err(|e| format!("read: {e}"))?;
        self.end += read;
        Ok(read > 0)
    }

    /// The next line without its LF (a CR before it is kept: callers trim).
    pub(crate) async fn line(&mut self) -> Result<&[u8], String> {
        loop {
            let from = self.scanned.max(self.start);
            if let Some(i) = find_lf(&self.buf[from..self.end]) {
                let (line_start, line_end) = (self.start, from + i);
                self.start = line_end + 1;
                self.scanned = self.start;
                return Ok(&self.buf[line_start..line_end]);
            }
            self.scanned = self.end;
            if self.end - self.start > MAX_LINE {
                return Err(format!("server line longer than {MAX_LINE} bytes"));
            }
            if !self.fill().await? {
                return Err("server closed the connection".into());
            }
        }
    }

    /// Hands every following line (without its LF) to `f` until it returns `Some`, without an
    /// await per line: a POP3 body or an IMAP listing is many short lines, and the generator's
    /// own CPU is part of the measured loop.
    pub(crate) async fn each_line<T>(
        &mut self,
        mut f: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<T, String> {
        loop {
            let mut from = self.scanned.max(self.start);
            while let Some(i) = find_lf(&self.buf[from..self.end]) {
                let (line_start, line_end) = (self.start, from + i);
                self.start = line_end + 1;
                self.scanned = self.start;
                if let Some(t) = f(&self.buf[line_start..line_end]) {
                    return Ok(t);
                }
                from = self.start;
            }
            self.scanned = self.end;
            if self.end - self.start > MAX_LINE {
                return Err(format!("server line longer than {MAX_LINE} bytes"));
            }
            if !self.fill().await? {
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
            let take = (self.end - self.start).min(need);
            self.start += take;
            self.scanned = self.scanned.max(self.start);
            need -= take;
            if need == 0 {
                return Ok(n);
            }
            (self.start, self.end, self.scanned) = (0, 0, 0);
            if !self.fill().await? {
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

/// Position of the first LF, 8 bytes per step (SWAR: an LF byte is zero after the XOR; the
/// zero-byte test flags the first zero exactly).
fn find_lf(data: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    for chunk in data.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ (LO * u64::from(b'\n'));
        let hits = x.wrapping_sub(LO) & !x & HI;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    data[at..].iter().position(|&b| b == b'\n').map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn lines_literals_and_long_lines_across_reads() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, mut server) = tokio::io::duplex(1024);
            let long = "x".repeat(40 * 1024);
            tokio::spawn(async move {
                let mut all = b"one\r\ntwo\n".to_vec();
                all.extend_from_slice(b"12345");
                all.extend_from_slice(long.as_bytes());
                all.extend_from_slice(b"\r\nlast");
                for c in all.chunks(700) {
                    server.write_all(c).await.unwrap();
                }
            });
            let mut w = Wire::new(client, Duration::from_secs(5));
            assert_eq!(w.text().await.unwrap(), "one");
            assert_eq!(w.line().await.unwrap(), b"two");
            assert_eq!(w.bytes(5).await.unwrap(), 5);
            let mut seen = 0;
            let n = w
                .each_line(|l| {
                    seen += 1;
                    Some(l.len())
                })
                .await
                .unwrap();
            assert_eq!((seen, n), (1, 40 * 1024 + 1));
            assert!(w.line().await.is_err(), "no LF before EOF");
        });
    }

    #[test]
    fn find_lf_is_exact() {
        for len in 0..40 {
            for at in 0..=len {
                let mut v: Vec<u8> = (0..len).map(|i| [0, 1, 9, 11, 0x8a, 0xff][i % 6]).collect();
                if at < len {
                    v[at] = b'\n';
                    if at + 1 < len {
                        v[at + 1] = b'\n';
                    }
                }
                let want = v.iter().position(|&b| b == b'\n');
                assert_eq!(find_lf(&v), want, "{v:?}");
            }
        }
    }

    #[test]
    fn lines_until_eof() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, mut server) = tokio::io::duplex(1024);
            let long = "x".repeat(40 * 1024);
            let writer = tokio::spawn(async move {
                let mut all = b"one\r\ntwo\n".to_vec();
                all.extend_from_slice(b"12345");
                all.extend_from_slice(long.as_bytes());
                all.extend_from_slice(b"\r\nlast");
                for c in all.chunks(700) {
                    server.write_all(c).await.unwrap();
                }
            });
            let mut w = Wire::new(client, Duration::from_secs(5));
            assert_eq!(w.text().await.unwrap(), "one");
            assert_eq!(w.line().await.unwrap(), b"two");
            assert_eq!(w.bytes(5).await.unwrap(), 5);
            assert_eq!(w.line().await.unwrap().len(), 40 * 1024 + 1);
            writer.await.unwrap();
            assert!(w.line().await.is_err(), "no LF before EOF");
        });
    }
}
