//! The tokio driver: connects to a UNIX or TCP endpoint, runs a [`ClientSession`] over it with
//! timeouts, and keeps the connection for reuse. The stream is boxed so a TLS layer (STARTTLS,
//! outbound) can replace it later without touching the session.

use crate::reply::Reply;
use crate::session::{
    ClientConfig, ClientSession, Envelope, RcptOutcome, SessionError, Stage, Step,
};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where the server listens: Postfix's `unix:/path` or `inet:host:port` notation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Inet { host: String, port: u16 },
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Endpoint, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("empty socket path".into());
            }
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if s.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(s)));
        }
        let rest = s.strip_prefix("inet:").unwrap_or(s);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}`: expected unix:/path or inet:host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| format!("`{s}`: bad port"))?;
        if host.is_empty() || port == 0 {
            return Err(format!("`{s}`: expected inet:host:port"));
        }
        Ok(Endpoint::Inet {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Inet { host, port } => write!(f, "inet:{host}:{port}"),
        }
    }
}

/// Timeouts of one connection (Postfix's smtp_*_timeout / lmtp_*_timeout).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// Greeting, EHLO and each command reply.
    pub command: Duration,
    /// Writing the content and waiting for the final reply(ies).
    pub data: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(300),
            data: Duration::from_secs(600),
        }
    }
}

/// Why a connection or transaction failed, with the stage for Postfix-style reports.
#[derive(Debug)]
pub enum ClientError {
    Connect(std::io::Error),
    Io(Stage, std::io::Error),
    /// The server closed the connection.
    Lost(Stage),
    Timeout(Stage),
    Session(SessionError),
}

impl ClientError {
    /// Postfix's wording, with the relay name: `connect to X: Connection refused`, `lost
    /// connection with X while sending end of data`…
    pub fn describe(&self, relay: &str) -> String {
        match self {
            ClientError::Connect(e) => format!("connect to {relay}: {}", io_text(e)),
            ClientError::Io(s, e) => format!(
                "lost connection with {relay} while {}: {}",
                while_text(*s),
                io_text(e)
            ),
            ClientError::Lost(s) => {
                format!("lost connection with {relay} while {}", while_text(*s))
            }
            ClientError::Timeout(s) => {
                format!(
                    "conversation with {relay} timed out while {}",
                    while_text(*s)
                )
            }
            ClientError::Session(SessionError::Rejected(stage, r)) => {
                format!(
                    "host {relay} said: {r} (in reply to {} command)",
                    stage.command()
                )
            }
            ClientError::Session(e) => format!("{e} (with {relay})"),
        }
    }

    /// The server's reply when the failure was one (a refused greeting or HELO).
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            ClientError::Session(SessionError::Rejected(_, r)) => Some(r),
            _ => None,
        }
    }
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

fn while_text(s: Stage) -> &'static str {
    match s {
        Stage::Connect => "connecting",
        Stage::Greeting => "receiving the initial server greeting",
        Stage::Helo => "performing the EHLO/LHLO handshake",
        Stage::StartTls => "performing the STARTTLS handshake",
        Stage::Mail => "sending MAIL FROM",
        Stage::Rcpt => "sending RCPT TO",
        Stage::Data => "sending DATA",
        Stage::EndOfData => "sending end of data -- message may be sent more than once",
        Stage::Rset => "sending RSET",
        Stage::Quit => "sending QUIT",
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("server"))
    }
}

impl std::error::Error for ClientError {}

/// A transaction that failed mid-way: what the server answered so far (a `Some` is final,
/// e.g. an LMTP 250 read before the connection dropped) and why it stopped.
#[derive(Debug)]
pub struct Incomplete {
    pub known: Vec<Option<RcptOutcome>>,
    pub error: ClientError,
    /// The content was written: recipients without a known outcome may have been delivered.
    pub data_sent: bool,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open, greeted connection ready for transactions.
pub struct Connection {
    io: Box<dyn Io>,
    session: ClientSession,
    timeouts: Timeouts,
    /// `host[addr]:port` or `name[path]`: what logs show as `relay=`.
    relay: String,
    buf: Vec<u8>,
    usable: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("relay", &self.relay)
            .finish()
    }
}

impl Connection {
    /// Connects, reads the greeting and sends EHLO/LHLO. `name` is the peer's name for logs.
    pub async fn connect(
        endpoint: &Endpoint,
        cfg: ClientConfig,
        timeouts: Timeouts,
    ) -> Result<Connection, ClientError> {
        let (io, relay): (Box<dyn Io>, String) = match endpoint {
            Endpoint::Unix(p) => {
                let s = tokio::time::timeout(timeouts.connect, tokio::net::UnixStream::connect(p))
                    .await
                    .map_err(|_| ClientError::Timeout(Stage::Connect))?
                    .map_err(ClientError::Connect)?;
                (Box::new(s), format!("local[{}]", p.display()))
            }
            Endpoint::Inet { host, port } => {
                let s = tokio::time::timeout(
                    timeouts.connect,
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await
                .map_err(|_| ClientError::Timeout(Stage::Connect))?
                .map_err(ClientError::Connect)?;
                let _ = s.set_nodelay(true);
                let ip = s
                    .peer_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_else(|_| host.clone());
                (Box::new(s), format!("{host}[{ip}]:{port}"))
            }
        };
        let mut conn = Connection {
            io,
            session: ClientSession::new(cfg),
            timeouts,
            relay,
            buf: vec![0; 16 * 1024],
            usable: true,
        };
        match conn.run().await {
            Ok(Step::Ready) => Ok(conn),
            Ok(_) => Err(ClientError::Lost(Stage::Helo)),
            Err(e) => Err(e),
        }
    }

    /// What logs show as `relay=`.
    pub fn relay(&self) -> &str {
        &self.relay
    }

    pub fn session(&self) -> &ClientSession {
        &self.session
    }

    /// Still good for another transaction (no error, no 421).
    pub fn is_usable(&self) -> bool {
        self.usable
    }

    /// One transaction: an outcome per recipient in envelope order, or what is known when the
    /// connection failed part-way.
    pub async fn send(
        &mut self,
        env: &Envelope,
        content: &[u8],
    ) -> Result<Vec<RcptOutcome>, Incomplete> {
        if let Err(e) = self.session.start_transaction(env, content) {
            self.usable = false;
            return Err(Incomplete {
                known: vec![None; env.recipients.len()],
                error: ClientError::Session(e),
                data_sent: false,
            });
        }
        match self.run().await {
            Ok(Step::Done(o)) => Ok(o),
            Ok(_) => {
                self.usable = false;
                Err(self.incomplete(ClientError::Lost(self.session.stage())))
            }
            Err(e) => Err(self.incomplete(e)),
        }
    }

    fn incomplete(&self, error: ClientError) -> Incomplete {
        Incomplete {
            known: self.session.partial_outcomes(),
            error,
            data_sent: self.session.data_sent(),
        }
    }

    /// QUIT and close (errors ignored: the server may already be gone).
    pub async fn quit(mut self) {
        if self.usable {
            self.session.quit();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.run()).await;
        }
        let _ = self.io.shutdown().await;
    }

    /// Drives the session until it is Ready, Done, Closed or failed.
    async fn run(&mut self) -> Result<Step, ClientError> {
        loop {
            match self.session.step() {
                Step::Write(bytes) => {
                    let stage = self.session.stage();
                    let t = self.stage_timeout(stage);
                    match tokio::time::timeout(t, self.io.write_all(&bytes)).await {
                        Err(_) => return Err(self.fail(ClientError::Timeout(stage))),
                        Ok(Err(e)) => return Err(self.fail(ClientError::Io(stage, e))),
                        Ok(Ok(())) => {}
                    }
                }
                Step::NeedInput => {
                    let stage = self.session.stage();
                    let t = self.stage_timeout(stage);
                    if let Err(e) = self.io.flush().await {
                        return Err(self.fail(ClientError::Io(stage, e)));
                    }
                    match tokio::time::timeout(t, self.io.read(&mut self.buf)).await {
                        Err(_) => return Err(self.fail(ClientError::Timeout(stage))),
                        Ok(Err(e)) => return Err(self.fail(ClientError::Io(stage, e))),
                        Ok(Ok(0)) => return Err(self.fail(ClientError::Lost(stage))),
                        Ok(Ok(n)) => {
                            let (head, _) = self.buf.split_at(n);
                            self.session.feed(head);
                        }
                    }
                }
                Step::Failed(e) => return Err(self.fail(ClientError::Session(e))),
                // This driver never asks for STARTTLS (the TLS layer comes with outbound
                // delivery); a session saying so is a bug, not a server's doing.
                Step::StartTls | Step::TlsRefused(_) => {
                    let e = SessionError::Misuse("STARTTLS step without a TLS layer");
                    return Err(self.fail(ClientError::Session(e)));
                }
                Step::Closed => {
                    self.usable = false;
                    return Ok(Step::Closed);
                }
                s @ (Step::Ready | Step::Done(_)) => {
                    if matches!(s, Step::Done(_)) {
                        // A 421 inside the transaction: Closed follows, no reuse.
                        if matches!(self.session.step(), Step::Closed) {
                            self.usable = false;
                        }
                    }
                    return Ok(s);
                }
            }
        }
    }

    fn stage_timeout(&self, stage: Stage) -> Duration {
        if stage == Stage::EndOfData {
            self.timeouts.data
        } else {
            self.timeouts.command
        }
    }

    fn fail(&mut self, e: ClientError) -> ClientError {
        self.usable = false;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            "unix:/run/pochta/lmtp".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/run/pochta/lmtp".into())
        );
        assert_eq!(
            "inet:127.0.0.1:24".parse::<Endpoint>().unwrap(),
            Endpoint::Inet {
                host: "127.0.0.1".into(),
                port: 24
            }
        );
        assert_eq!(
            "inet:[::1]:24".parse::<Endpoint>().unwrap(),
            Endpoint::Inet {
                host: "::1".into(),
                port: 24
            }
        );
        assert!("inet:host".parse::<Endpoint>().is_err());
        assert!("unix:".parse::<Endpoint>().is_err());
    }
}
