//! A client connection as a session driver sees it: a plaintext or TLS stream over TCP or a UNIX
//! socket, a bounded read buffer the driver feeds to its sans-I/O protocol machine, idle timeout
//! and shutdown notification, and the STARTTLS upgrade.

use crate::tls::{TlsConfig, TlsInfo};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

/// Who is on the other end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    /// A local process; credentials from SO_PEERCRED.
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
    },
}

impl Peer {
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Peer::Tcp(a) => Some(a.ip()),
            Peer::Unix { .. } => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => write!(f, "{a}"),
            Peer::Unix {
                uid,
                pid: Some(pid),
                ..
            } => write!(f, "unix:uid={uid},pid={pid}"),
            Peer::Unix { uid, pid: None, .. } => write!(f, "unix:uid={uid}"),
        }
    }
}

#[derive(Debug)]
enum Plain {
    Tcp(TcpStream),
    Unix(UnixStream),
}

#[derive(Debug)]
enum Stream {
    Plain(Plain),
    Tls(Box<tokio_rustls::server::TlsStream<Plain>>),
    /// Transient state while a STARTTLS handshake owns the plaintext stream.
    Upgrading,
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain(Plain::Tcp($s)) => $e,
            Stream::Plain(Plain::Unix($s)) => $e,
            Stream::Tls($s) => $e,
            Stream::Upgrading => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "stream is being upgraded to TLS",
            ))),
        }
    };
}

impl AsyncRead for Plain {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Plain::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Plain::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Plain {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Plain::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Plain::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Plain::Tcp(s) => Pin::new(s).poll_flush(cx),
            Plain::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Plain::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Plain::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// What [`Connection::fill`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// New bytes are in [`Connection::buffered`].
    Data,
    /// The client closed its side.
    Eof,
    /// Nothing arrived within the idle timeout: say the protocol's goodbye and close.
    Idle,
    /// The daemon is stopping and the drain time is over: say goodbye and close.
    Shutdown,
}

/// Largest read per `fill` call.
const READ_CHUNK: usize = 16 * 1024;

/// A client connection.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    /// Most unconsumed bytes held; a driver that never consumes cannot make us buffer more.
    max_buffered: usize,
    idle_timeout: Duration,
    shutdown: CancellationToken,
    tls_config: Option<Arc<TlsConfig>>,
    tls_info: Option<TlsInfo>,
    peer: Peer,
}

impl Connection {
    pub(crate) fn tcp(stream: TcpStream, peer: SocketAddr) -> Self {
        let _ = stream.set_nodelay(true);
        Self::new(Stream::Plain(Plain::Tcp(stream)), Peer::Tcp(peer))
    }

    pub(crate) fn unix(stream: UnixStream) -> Self {
        let peer = match stream.peer_cred() {
            Ok(c) => Peer::Unix {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            Err(_) => Peer::Unix {
                uid: u32::MAX,
                gid: u32::MAX,
                pid: None,
            },
        };
        Self::new(Stream::Plain(Plain::Unix(stream)), peer)
    }

    fn new(stream: Stream, peer: Peer) -> Self {
        Connection {
            stream,
            buf: Vec::new(),
            pos: 0,
            max_buffered: 1 << 20,
            idle_timeout: Duration::from_secs(300),
            shutdown: CancellationToken::new(),
            tls_config: None,
            tls_info: None,
            peer,
        }
    }

    pub(crate) fn configure(
        &mut self,
        idle_timeout: Duration,
        shutdown: CancellationToken,
        tls_config: Option<Arc<TlsConfig>>,
    ) {
        self.idle_timeout = idle_timeout;
        self.shutdown = shutdown;
        self.tls_config = tls_config;
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    pub(crate) fn tls_config(&self) -> Option<Arc<TlsConfig>> {
        self.tls_config.clone()
    }

    /// Present once TLS is established (implicit TLS or after STARTTLS).
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls_info.as_ref()
    }

    /// Whether STARTTLS can be offered: a certificate is configured and TLS is not active yet.
    pub fn can_starttls(&self) -> bool {
        self.tls_config.is_some() && self.tls_info.is_none()
    }

    /// Changes the idle timeout (e.g. IMAP IDLE allows 30 min; pre-auth phases want less).
    pub fn set_idle_timeout(&mut self, t: Duration) {
        self.idle_timeout = t;
    }

    /// Changes the cap on unconsumed buffered bytes (default 1 MiB).
    pub fn set_max_buffered(&mut self, n: usize) {
        self.max_buffered = n.max(READ_CHUNK);
    }

    /// The token cancelled when the drain time is over.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Unconsumed input.
    pub fn buffered(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Marks `n` bytes of [`Connection::buffered`] as used.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more input into the buffer, or tells why none will come.
    /// Fails with `InvalidData` when the driver has let more than the buffer cap pile up.
    pub async fn fill(&mut self) -> io::Result<Fill> {
        if self.buffered().len() >= self.max_buffered {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "input buffer limit reached",
            ));
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let want = READ_CHUNK.min(self.max_buffered - self.buf.len());
        // Read into spare capacity (`read_buf` grows the length only by what arrived), so a
        // `fill` dropped by a `select!` leaves no zero bytes behind: this method is cancel-safe.
        // `reserve_exact` keeps the capacity, and so one read, within `max_buffered`.
        self.buf.reserve_exact(want);
        let (stream, buf, shutdown) = (&mut self.stream, &mut self.buf, &self.shutdown);
        let idle = self.idle_timeout;
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => Ok(Fill::Shutdown),
            r = tokio::time::timeout(idle, stream.read_buf(buf)) => match r {
                Err(_) => Ok(Fill::Idle),
                Ok(Ok(0)) => Ok(Fill::Eof),
                Ok(Ok(_)) => Ok(Fill::Data),
                Ok(Err(e)) => Err(e),
            },
        }
    }

    /// Writes and flushes. A client that does not read for the idle timeout is cut off.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let fut = async {
            self.stream.write_all(data).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.idle_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            )),
        }
    }

    /// Upgrades to TLS after the protocol's STARTTLS reply has been written.
    ///
    /// Any plaintext the client sent after the STARTTLS command is discarded (CVE-2011-0411); the
    /// number of discarded bytes is returned so the protocol can treat it as an attack and close.
    /// On error the connection is unusable.
    pub async fn starttls(&mut self) -> io::Result<usize> {
        let Some(tls) = self.tls_config.clone() else {
            return Err(io::Error::other("STARTTLS without a TLS configuration"));
        };
        if self.tls_info.is_some() {
            return Err(io::Error::other("TLS is already active"));
        }
        let discarded = self.buffered().len();
        self.buf.clear();
        self.pos = 0;
        self.handshake(&tls).await?;
        Ok(discarded)
    }

    /// Performs the server side of a TLS handshake on the plaintext stream.
    pub(crate) async fn handshake(&mut self, tls: &TlsConfig) -> io::Result<()> {
        let Stream::Plain(plain) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let accept = tls.acceptor().accept(plain);
        let tls_stream = match tokio::time::timeout(
            self.idle_timeout.min(Duration::from_secs(60)),
            accept,
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ))
            }
        };
        self.tls_info = Some(TlsInfo::from_conn(tls_stream.get_ref().1));
        self.stream = Stream::Tls(Box::new(tls_stream));
        Ok(())
    }

    /// Sends TLS close_notify (if TLS) and shuts the write side down.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.stream.shutdown()).await;
    }
}
