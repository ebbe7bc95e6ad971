//! Client side of the auth-client protocol (what Postfix's xsasl_dovecot, Exim, chasquid and
//! Dovecot's lib-auth-client do): pipelined `VERSION`/`CPID` hello, the server handshake up to
//! `DONE`, `AUTH`/`CONT`/`CANCEL` requests and reply parsing.

use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroU32;

use crate::auth_request::AuthRequest;
use crate::client_msg::ClientCommand;
use crate::error::ParseError;
use crate::fields::RequestId;
use crate::framing::{FrameError, LineFramer, AUTH_CLIENT_MAX_LINE};
use crate::mech::{Cookie, MechFlag, Mechanism};
use crate::secret::Secret;
use crate::server::NotInFlight;
use crate::server_msg::{FailReply, OkReply, ServerReply};
use crate::PROTOCOL_MAJOR;

/// Client settings.
#[derive(Debug, Clone)]
pub struct AuthClientConfig {
    /// Our pid for `CPID` (must be non-zero).
    pub client_pid: NonZeroU32,
    /// Minor version to announce. 2 (the default, like Dovecot 2.3) makes an empty `resp=` mean
    /// "empty initial response"; 4 is needed for `CANCEL`.
    pub minor: u32,
    /// Input line limit.
    pub max_line: usize,
}

impl AuthClientConfig {
    /// Defaults: minor 2, 16384-byte lines.
    pub fn new(client_pid: NonZeroU32) -> Self {
        AuthClientConfig {
            client_pid,
            minor: 2,
            max_line: AUTH_CLIENT_MAX_LINE,
        }
    }
}

/// What the server announced in its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Server minor version.
    pub minor: u32,
    /// Mechanisms in announcement order, `private` ones included (filter with
    /// [`ServerInfo::public_mechanisms`] before advertising to users).
    pub mechanisms: Vec<Mechanism>,
    /// `SPID`.
    pub server_pid: Option<u32>,
    /// `CUID`.
    pub connection_id: Option<u32>,
    /// `COOKIE`.
    pub cookie: Option<Cookie>,
}

impl ServerInfo {
    /// Mechanisms without the `private` flag (what Postfix offers in EHLO).
    pub fn public_mechanisms(&self) -> impl Iterator<Item = &Mechanism> {
        self.mechanisms
            .iter()
            .filter(|m| !m.flags.contains(MechFlag::Private))
    }

    /// The announced mechanism `name` names (case-insensitive).
    pub fn mechanism(&self, name: &str) -> Option<&Mechanism> {
        self.mechanisms.iter().find(|m| m.matches(name))
    }
}

/// What the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The handshake is complete (`DONE`).
    Ready(ServerInfo),
    /// A SASL challenge; answer with [`AuthClientConn::respond`].
    Continue {
        /// Request id.
        id: RequestId,
        /// Decoded challenge.
        data: Secret<Vec<u8>>,
    },
    /// Authenticated. `user` is the server's (possibly rewritten) user name.
    Success {
        /// User name (`user=`).
        user: String,
        /// The whole reply (`final_response`, extra fields).
        reply: OkReply,
    },
    /// Not authenticated.
    Failure(FailReply),
    /// The server confirmed a `CANCEL`.
    Cancelled(RequestId),
}

/// Errors on the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// A server line exceeded the limit (fatal).
    LineTooLong(FrameError),
    /// The first line was not `VERSION\t1\t…` (fatal).
    VersionMismatch(String),
    /// `SPID` before any `MECH`: this is an auth-master/userdb socket (fatal; Postfix and Exim
    /// say the same).
    WrongSocket,
    /// A handshake or reply line of a known command did not parse (fatal).
    Protocol(ParseError),
    /// `OK` without `user=` (Postfix: "authentication backend error"); the request is over.
    MissingUser(RequestId),
    /// [`AuthClientConn::start`] with an id already in flight.
    DuplicateId(RequestId),
    /// [`AuthClientConn::start`] for a mechanism the server did not announce.
    UnknownMechanism(String),
    /// [`AuthClientConn::cancel`] on a server older than minor 4.
    CancelUnsupported,
    /// A request id that is not in flight.
    NotInFlight(RequestId),
}

impl ClientError {
    /// Whether the connection is unusable and must be closed.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ClientError::LineTooLong(_)
                | ClientError::VersionMismatch(_)
                | ClientError::WrongSocket
                | ClientError::Protocol(_)
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::LineTooLong(e) => write!(f, "auth server sent a {e}"),
            ClientError::VersionMismatch(l) => {
                write!(f, "auth server not compatible (first line: {l})")
            }
            ClientError::WrongSocket => {
                f.write_str("SPID before MECH: this is not an auth-client socket")
            }
            ClientError::Protocol(e) => write!(f, "auth server protocol error: {e}"),
            ClientError::MissingUser(id) => write!(f, "request {id}: OK without user="),
            ClientError::DuplicateId(id) => write!(f, "request {id} is already in flight"),
            ClientError::UnknownMechanism(m) => write!(f, "mechanism {m} not offered"),
            ClientError::CancelUnsupported => f.write_str("server does not support CANCEL"),
            ClientError::NotInFlight(id) => write!(f, "request {id} is not in flight"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<NotInFlight> for ClientError {
    fn from(e: NotInFlight) -> Self {
        ClientError::NotInFlight(e.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ExpectVersion,
    Handshake,
    Ready,
    Closed,
}

/// One auth-client connection, client side.
#[derive(Debug)]
pub struct AuthClientConn {
    framer: LineFramer,
    out: Vec<u8>,
    state: State,
    info: ServerInfo,
    in_flight: HashSet<RequestId>,
    next_id: RequestId,
}

impl AuthClientConn {
    /// A new connection; `VERSION` and `CPID` are queued at once (clients do not wait for the
    /// server's handshake before sending them).
    pub fn new(config: AuthClientConfig) -> Self {
        let mut out = ClientCommand::Version {
            major: PROTOCOL_MAJOR,
            minor: config.minor,
        }
        .encode();
        out.extend(ClientCommand::Cpid(config.client_pid).encode());
        AuthClientConn {
            framer: LineFramer::new(config.max_line),
            out,
            state: State::ExpectVersion,
            info: ServerInfo {
                minor: 0,
                mechanisms: Vec::new(),
                server_pid: None,
                connection_id: None,
                cookie: None,
            },
            in_flight: HashSet::new(),
            next_id: RequestId::MIN,
        }
    }

    /// Adds bytes read from the server.
    pub fn feed(&mut self, data: &[u8]) {
        if self.state != State::Closed {
            self.framer.feed(data);
        }
    }

    /// Bytes to write to the server; empties the queue.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether a fatal error closed the connection.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the handshake is complete.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// The server's handshake, once complete.
    pub fn server_info(&self) -> Option<&ServerInfo> {
        (self.state == State::Ready).then_some(&self.info)
    }

    /// A fresh request id (counts from 1, skipping ids in flight).
    pub fn next_request_id(&mut self) -> RequestId {
        loop {
            let id = self.next_id;
            self.next_id = id.next();
            if !self.in_flight.contains(&id) {
                return id;
            }
        }
    }

    /// Queues an `AUTH` request. It may be sent before the handshake is over (Exim does); after
    /// it, the mechanism must be one the server announced.
    pub fn start(&mut self, request: &AuthRequest) -> Result<(), ClientError> {
        if self.in_flight.contains(&request.id) {
            return Err(ClientError::DuplicateId(request.id));
        }
        if self.state == State::Ready && self.info.mechanism(&request.mechanism).is_none() {
            return Err(ClientError::UnknownMechanism(request.mechanism.clone()));
        }
        self.in_flight.insert(request.id);
        self.out.extend(request.encode());
        Ok(())
    }

    /// Answers a `CONT` challenge.
    pub fn respond(&mut self, id: RequestId, data: &[u8]) -> Result<(), ClientError> {
        if !self.in_flight.contains(&id) {
            return Err(ClientError::NotInFlight(id));
        }
        self.out.extend(
            ClientCommand::Cont {
                id,
                data: Secret::new(data.to_vec()),
            }
            .encode(),
        );
        Ok(())
    }

    /// Sends `CANCEL` (server minor ≥ 4 only); a `Cancelled` event follows.
    pub fn cancel(&mut self, id: RequestId) -> Result<(), ClientError> {
        if !self.in_flight.contains(&id) {
            return Err(ClientError::NotInFlight(id));
        }
        if self.state == State::Ready && self.info.minor < 4 {
            return Err(ClientError::CancelUnsupported);
        }
        self.out.extend(ClientCommand::Cancel(id).encode());
        Ok(())
    }

    /// Stops tracking a request (e.g. after a local timeout); late replies are then skipped.
    pub fn forget(&mut self, id: RequestId) -> bool {
        self.in_flight.remove(&id)
    }

    /// The next event, an error, or `None` when more input is needed. Call until `None` after
    /// every `feed`. Unknown commands and replies for ids not in flight are skipped, as Postfix
    /// does.
    pub fn next_event(&mut self) -> Option<Result<ClientEvent, ClientError>> {
        while self.state != State::Closed {
            let line = match self.framer.next_line()? {
                Ok(line) => line,
                Err(e) => return Some(Err(self.close(ClientError::LineTooLong(e)))),
            };
            match self.handle_line(&line) {
                Ok(Some(ev)) => return Some(Ok(ev)),
                Ok(None) => {}
                Err(e) if e.is_fatal() => return Some(Err(self.close(e))),
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    fn close(&mut self, e: ClientError) -> ClientError {
        self.state = State::Closed;
        self.in_flight.clear();
        e
    }

    fn handle_line(&mut self, line: &[u8]) -> Result<Option<ClientEvent>, ClientError> {
        let reply = match ServerReply::parse(line) {
            Ok(r) => r,
            Err(ParseError::UnknownCommand(_)) if self.state != State::ExpectVersion => {
                return Ok(None)
            }
            Err(e) if self.state == State::ExpectVersion => {
                return Err(ClientError::VersionMismatch(format!("{e}")))
            }
            Err(e) => return Err(ClientError::Protocol(e)),
        };
        match self.state {
            State::ExpectVersion => match reply {
                ServerReply::Version { major, minor } if major == PROTOCOL_MAJOR => {
                    self.info.minor = minor;
                    self.state = State::Handshake;
                    Ok(None)
                }
                other => Err(ClientError::VersionMismatch(format!("{other:?}"))),
            },
            State::Handshake => self.handshake_line(reply),
            State::Ready => Ok(self.reply_line(reply)?),
            State::Closed => Ok(None),
        }
    }

    fn handshake_line(&mut self, reply: ServerReply) -> Result<Option<ClientEvent>, ClientError> {
        match reply {
            ServerReply::Mech(m) => self.info.mechanisms.push(m),
            ServerReply::Spid(_) if self.info.mechanisms.is_empty() => {
                return Err(ClientError::WrongSocket)
            }
            ServerReply::Spid(pid) => self.info.server_pid = Some(pid),
            ServerReply::Cuid(cuid) => self.info.connection_id = Some(cuid),
            ServerReply::Cookie(c) => self.info.cookie = Some(c),
            ServerReply::Done => {
                self.state = State::Ready;
                return Ok(Some(ClientEvent::Ready(self.info.clone())));
            }
            // Replies cannot come before DONE (the server reads AUTH only after the hello, and
            // writes the handshake first); a second VERSION is ignored like other noise.
            _ => {}
        }
        Ok(None)
    }

    fn reply_line(&mut self, reply: ServerReply) -> Result<Option<ClientEvent>, ClientError> {
        let id = match &reply {
            ServerReply::Cont { id, .. } | ServerReply::Cancelled(id) => *id,
            ServerReply::Ok(ok) => ok.id,
            ServerReply::Fail(f) => f.id,
            // Handshake lines after DONE: ignored.
            _ => return Ok(None),
        };
        if !self.in_flight.contains(&id) {
            return Ok(None);
        }
        Ok(Some(match reply {
            ServerReply::Cont { id, data, .. } => ClientEvent::Continue { id, data },
            ServerReply::Ok(ok) => {
                self.in_flight.remove(&id);
                let user = ok.user.clone().ok_or(ClientError::MissingUser(id))?;
                ClientEvent::Success { user, reply: ok }
            }
            ServerReply::Fail(f) => {
                self.in_flight.remove(&id);
                ClientEvent::Failure(f)
            }
            ServerReply::Cancelled(id) => {
                self.in_flight.remove(&id);
                ClientEvent::Cancelled(id)
            }
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> AuthClientConn {
        AuthClientConn::new(AuthClientConfig::new(NonZeroU32::new(23044).unwrap()))
    }

    #[test]
    fn hello_is_pipelined() {
        let mut c = conn();
        assert_eq!(c.take_output(), b"VERSION\t1\t2\nCPID\t23044\n");
    }

    #[test]
    fn ids_skip_in_flight() {
        let mut c = conn();
        let a = c.next_request_id();
        c.start(&AuthRequest::new(a, "PLAIN", "smtp")).unwrap();
        assert_eq!(
            c.start(&AuthRequest::new(a, "PLAIN", "smtp")),
            Err(ClientError::DuplicateId(a))
        );
        assert_eq!(c.next_request_id().get(), 2);
    }

    #[test]
    fn first_line_must_be_version() {
        let mut c = conn();
        c.feed(b"MECH\tPLAIN\n");
        assert!(matches!(
            c.next_event(),
            Some(Err(ClientError::VersionMismatch(_)))
        ));
        assert!(c.is_closed());
    }
}
