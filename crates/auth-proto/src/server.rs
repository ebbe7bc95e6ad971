//! Server side of the auth-client protocol (the role of Dovecot's auth-client-connection.c and
//! auth-request-handler.c): handshake, request bookkeeping, and Dovecot's rules for what gets a
//! `FAIL` and what closes the connection.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;

use crate::auth_request::{decode_initial_response, AuthRequest};
use crate::client_msg::ClientLine;
use crate::error::ParseError;
use crate::fields::{base64_decode, sanitize, RawLine, RequestId};
use crate::framing::{FrameError, LineFramer, AUTH_CLIENT_MAX_LINE};
use crate::mech::{Cookie, MechFlag, Mechanism};
use crate::secret::Secret;
use crate::server_msg::{FailCode, FailReply, OkReply, ServerReply};
use crate::PROTOCOL_MAJOR;

/// Settings of one auth-client listener.
#[derive(Debug, Clone)]
pub struct AuthServerConfig {
    /// Mechanisms to advertise and accept, in advertising order. Postfix and Exim call a socket
    /// "wrong" when `SPID` comes before any `MECH`, so list at least one.
    pub mechanisms: Vec<Mechanism>,
    /// `SPID`: the server's process id.
    pub server_pid: u32,
    /// `CUID`: this connection's counter.
    pub connection_id: u32,
    /// `COOKIE`: 128 random bits from the caller.
    pub cookie: Cookie,
    /// Minor version to announce (2 = Dovecot 2.3; channel-binding mechanisms are only
    /// advertised from 3 on).
    pub minor: u32,
    /// Input line limit.
    pub max_line: usize,
    /// In-flight requests allowed per connection; one more disconnects (a pochta limit, Dovecot
    /// has none).
    pub max_in_flight: usize,
}

impl AuthServerConfig {
    /// Defaults: minor 2, 16384-byte lines, 1024 requests in flight.
    pub fn new(
        mechanisms: Vec<Mechanism>,
        server_pid: u32,
        connection_id: u32,
        cookie: Cookie,
    ) -> Self {
        AuthServerConfig {
            mechanisms,
            server_pid,
            connection_id,
            cookie,
            minor: 2,
            max_line: AUTH_CLIENT_MAX_LINE,
            max_in_flight: 1024,
        }
    }

    /// The handshake block written at accept (2.3 style: everything at once, which Postfix,
    /// Exim, chasquid and Dovecot's lib-auth-client all accept).
    pub fn handshake(&self) -> Vec<u8> {
        let mut out = ServerReply::Version {
            major: PROTOCOL_MAJOR,
            minor: self.minor,
        }
        .encode();
        for mech in self.advertised() {
            out.extend(ServerReply::Mech(mech.clone()).encode());
        }
        out.extend(ServerReply::Spid(self.server_pid).encode());
        out.extend(ServerReply::Cuid(self.connection_id).encode());
        out.extend(ServerReply::Cookie(self.cookie).encode());
        out.extend(ServerReply::Done.encode());
        out
    }

    fn advertised(&self) -> impl Iterator<Item = &Mechanism> {
        let cb = self.minor >= 3;
        self.mechanisms
            .iter()
            .filter(move |m| cb || !m.flags.contains(MechFlag::ChannelBinding))
    }
}

/// An `AUTH` request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthStart {
    /// The request. Its `initial_response` follows the client's minor version: `None` means no
    /// initial response, `Some(empty)` an empty one.
    pub request: AuthRequest,
    /// The configured mechanism it names.
    pub mechanism: Mechanism,
}

/// What the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The client finished its handshake (`VERSION` then `CPID`). Login sockets must refuse a
    /// pid that belongs to another live connection; that check needs global state, so it is the
    /// driver's.
    Hello {
        /// The client's minor version.
        minor: u32,
        /// The client's pid.
        client_pid: NonZeroU32,
    },
    /// Start a SASL exchange.
    Auth(Box<AuthStart>),
    /// The client's next response for a request the driver answered with `CONT`.
    Continue {
        /// Request id.
        id: RequestId,
        /// Decoded response.
        data: Secret<Vec<u8>>,
    },
    /// The client gave up a request (`CANCEL`); `CANCELLED` is already queued. Drop its state.
    Cancel {
        /// Request id.
        id: RequestId,
    },
}

/// What an error means for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The request got a `FAIL` line (already queued) and is over; the connection goes on.
    Failed(RequestId),
    /// Close the connection (after writing what is queued). Dovecot logs these as "BUG".
    Disconnect,
}

/// A client misbehaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    /// A line exceeded the limit.
    LineTooLong(FrameError),
    /// The first line was not `VERSION\t1\t<minor>`.
    VersionMismatch(String),
    /// The second line was not `CPID`.
    ExpectedCpid(String),
    /// `CPID` was 0 or not a number.
    InvalidCpid(String),
    /// A command other than `AUTH`/`CONT`/`CANCEL` after the handshake (includes a second
    /// `VERSION` or `CPID`).
    UnknownCommand(String),
    /// A broken `AUTH`/`CONT`/`CANCEL` line.
    Broken(ParseError),
    /// `AUTH` for a mechanism that is not configured.
    UnsupportedMechanism {
        /// Request id.
        id: RequestId,
        /// What the client asked for (sanitized).
        mechanism: String,
    },
    /// `AUTH` reused the id of an in-flight request.
    DuplicateId(RequestId),
    /// More requests in flight than `max_in_flight`.
    TooManyRequests(RequestId),
    /// Invalid base64 in `resp=` or `CONT`: answered `FAIL … code=invalid_base64`.
    InvalidBase64 {
        /// Request id.
        id: RequestId,
        /// In `resp=` rather than in `CONT`.
        initial: bool,
    },
    /// `CONT` for an id not in flight: answered `FAIL … reason=Authentication request timed out`.
    UnknownRequest(RequestId),
    /// `CONT` without a preceding server `CONT`: answered
    /// `FAIL … reason=Unexpected continuation`.
    UnexpectedContinuation(RequestId),
}

impl ServerError {
    /// Whether the request was failed or the connection must close.
    pub fn disposition(&self) -> Disposition {
        match self {
            ServerError::InvalidBase64 { id, .. }
            | ServerError::UnknownRequest(id)
            | ServerError::UnexpectedContinuation(id) => Disposition::Failed(*id),
            _ => Disposition::Disconnect,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::LineTooLong(e) => write!(f, "client sent a {e}"),
            ServerError::VersionMismatch(l) => {
                write!(
                    f,
                    "client not compatible with this server (first line: {l})"
                )
            }
            ServerError::ExpectedCpid(l) => {
                write!(f, "client sent unknown handshake command: {l}")
            }
            ServerError::InvalidCpid(v) => write!(f, "client sent invalid CPID: {v}"),
            ServerError::UnknownCommand(c) => write!(f, "client sent unknown command: {c}"),
            ServerError::Broken(e) => write!(f, "client sent broken request: {e}"),
            ServerError::UnsupportedMechanism { id, mechanism } => {
                write!(f, "request {id}: unsupported mechanism {mechanism}")
            }
            ServerError::DuplicateId(id) => write!(f, "client sent a duplicate ID {id}"),
            ServerError::TooManyRequests(id) => {
                write!(f, "request {id}: too many requests in flight")
            }
            ServerError::InvalidBase64 { id, initial: true } => {
                write!(f, "request {id}: invalid base64 data in initial response")
            }
            ServerError::InvalidBase64 { id, initial: false } => {
                write!(f, "request {id}: invalid base64 data in continued response")
            }
            ServerError::UnknownRequest(id) => write!(f, "CONT for unknown request {id}"),
            ServerError::UnexpectedContinuation(id) => {
                write!(f, "request {id}: unexpected continuation")
            }
        }
    }
}

impl std::error::Error for ServerError {}

/// A reply named a request that is not in flight (finished, failed or cancelled); nothing was
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInFlight(pub RequestId);

impl fmt::Display for NotInFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {} is not in flight", self.0)
    }
}

impl std::error::Error for NotInFlight {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ExpectVersion,
    ExpectCpid,
    Ready,
    Closed,
}

#[derive(Debug, Default)]
struct InFlight {
    /// The server sent `CONT`; exactly one client `CONT` may follow.
    accept_cont: bool,
    /// The client sent `final-resp-ok`.
    final_resp_ok: bool,
    /// An `OK` held back until the client acknowledges final SASL data sent as `CONT`.
    pending_ok: Option<OkReply>,
}

/// One accepted auth-client connection, server side.
#[derive(Debug)]
pub struct AuthServerConn {
    config: AuthServerConfig,
    framer: LineFramer,
    out: Vec<u8>,
    state: State,
    client_minor: u32,
    requests: HashMap<RequestId, InFlight>,
}

impl AuthServerConn {
    /// A new connection; the handshake block is queued for writing at once.
    pub fn new(config: AuthServerConfig) -> Self {
        let out = config.handshake();
        AuthServerConn {
            framer: LineFramer::new(config.max_line),
            config,
            out,
            state: State::ExpectVersion,
            client_minor: 0,
            requests: HashMap::new(),
        }
    }

    /// Adds bytes read from the client.
    pub fn feed(&mut self, data: &[u8]) {
        if self.state != State::Closed {
            self.framer.feed(data);
        }
    }

    /// Bytes to write to the client; empties the queue.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether bytes are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether a fatal error closed the connection (write what is queued, then close).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The client's minor version, once its `VERSION` arrived.
    pub fn client_minor(&self) -> Option<u32> {
        (self.state != State::ExpectVersion).then_some(self.client_minor)
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// The next event, an error, or `None` when more input is needed (or the connection is
    /// closed). Call until `None` after every `feed`.
    pub fn next_event(&mut self) -> Option<Result<ServerEvent, ServerError>> {
        while self.state != State::Closed {
            let line = match self.framer.next_line()? {
                Ok(line) => line,
                Err(e) => return Some(Err(self.close(ServerError::LineTooLong(e)))),
            };
            match self.handle_line(&line) {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => continue,
                Err(e) => {
                    if e.disposition() == Disposition::Disconnect {
                        return Some(Err(self.close(e)));
                    }
                    return Some(Err(e));
                }
            }
        }
        None
    }

    fn close(&mut self, e: ServerError) -> ServerError {
        self.state = State::Closed;
        self.requests.clear();
        e
    }

    fn handle_line(&mut self, line: &[u8]) -> Result<Option<ServerEvent>, ServerError> {
        let shown = || sanitize(&String::from_utf8_lossy(line));
        let raw = RawLine::split(line);
        match self.state {
            State::ExpectVersion => {
                let ok = raw.as_ref().ok().and_then(|r| match ClientLine::parse(r) {
                    Ok(ClientLine::Version { major, minor }) if major == PROTOCOL_MAJOR => {
                        Some(minor)
                    }
                    _ => None,
                });
                let minor = ok.ok_or_else(|| ServerError::VersionMismatch(shown()))?;
                self.client_minor = minor;
                self.state = State::ExpectCpid;
                Ok(None)
            }
            State::ExpectCpid => {
                let raw = raw.map_err(|_| ServerError::ExpectedCpid(shown()))?;
                if raw.command != "CPID" {
                    return Err(ServerError::ExpectedCpid(shown()));
                }
                let pid = match ClientLine::parse(&raw) {
                    Ok(ClientLine::Cpid(pid)) => NonZeroU32::new(pid),
                    _ => None,
                };
                let pid = pid.ok_or_else(|| ServerError::InvalidCpid(shown()))?;
                self.state = State::Ready;
                Ok(Some(ServerEvent::Hello {
                    minor: self.client_minor,
                    client_pid: pid,
                }))
            }
            State::Ready => {
                let raw = raw.map_err(ServerError::Broken)?;
                if !matches!(raw.command, "AUTH" | "CONT" | "CANCEL") {
                    return Err(ServerError::UnknownCommand(shown()));
                }
                match ClientLine::parse(&raw).map_err(ServerError::Broken)? {
                    ClientLine::Auth(request, resp) => self.begin(*request, resp).map(Some),
                    ClientLine::Cont { id, data } => self.continue_request(id, data),
                    ClientLine::Cancel(id) => Ok(self.cancel(id)),
                    // Excluded by the command check above.
                    ClientLine::Version { .. } | ClientLine::Cpid(_) => {
                        Err(ServerError::UnknownCommand(shown()))
                    }
                }
            }
            State::Closed => Ok(None),
        }
    }

    fn begin(
        &mut self,
        mut request: AuthRequest,
        resp: Option<&str>,
    ) -> Result<ServerEvent, ServerError> {
        let id = request.id;
        let mechanism = self
            .config
            .mechanisms
            .iter()
            .find(|m| m.matches(&request.mechanism))
            .cloned()
            .ok_or_else(|| ServerError::UnsupportedMechanism {
                id,
                mechanism: sanitize(&request.mechanism),
            })?;
        if self.requests.contains_key(&id) {
            return Err(ServerError::DuplicateId(id));
        }
        if self.requests.len() >= self.config.max_in_flight {
            return Err(ServerError::TooManyRequests(id));
        }
        if let Some(raw) = resp {
            match decode_initial_response(raw, self.client_minor) {
                Some(ir) => request.initial_response = ir.map(Secret::new),
                None => {
                    self.queue(ServerReply::Fail(FailReply::with_code(
                        id,
                        FailCode::InvalidBase64,
                        "Invalid base64 data in initial response",
                    )));
                    return Err(ServerError::InvalidBase64 { id, initial: true });
                }
            }
        }
        self.requests.insert(
            id,
            InFlight {
                final_resp_ok: request.final_resp_ok,
                ..InFlight::default()
            },
        );
        Ok(ServerEvent::Auth(Box::new(AuthStart {
            request,
            mechanism,
        })))
    }

    fn continue_request(
        &mut self,
        id: RequestId,
        data: &str,
    ) -> Result<Option<ServerEvent>, ServerError> {
        let Some(req) = self.requests.get_mut(&id) else {
            self.queue(ServerReply::Fail(FailReply::with_reason(
                id,
                "Authentication request timed out",
            )));
            return Err(ServerError::UnknownRequest(id));
        };
        if !req.accept_cont {
            self.requests.remove(&id);
            self.queue(ServerReply::Fail(FailReply::with_reason(
                id,
                "Unexpected continuation",
            )));
            return Err(ServerError::UnexpectedContinuation(id));
        }
        req.accept_cont = false;
        if let Some(ok) = req.pending_ok.take() {
            // The client acknowledged the final SASL data; its (empty) response carries nothing.
            self.requests.remove(&id);
            self.queue(ServerReply::Ok(ok));
            return Ok(None);
        }
        let Some(data) = base64_decode(data) else {
            self.requests.remove(&id);
            self.queue(ServerReply::Fail(FailReply::with_code(
                id,
                FailCode::InvalidBase64,
                "Invalid base64 data in continued response",
            )));
            return Err(ServerError::InvalidBase64 { id, initial: false });
        };
        Ok(Some(ServerEvent::Continue {
            id,
            data: Secret::new(data),
        }))
    }

    fn cancel(&mut self, id: RequestId) -> Option<ServerEvent> {
        // A CANCEL racing with the final reply finds nothing; that is not an error.
        self.requests.remove(&id)?;
        self.queue(ServerReply::Cancelled(id));
        Some(ServerEvent::Cancel { id })
    }

    fn queue(&mut self, reply: ServerReply) {
        self.out.extend(reply.encode());
    }

    /// Sends a SASL challenge (`CONT`); the client may then send one `CONT` back.
    pub fn reply_continue(&mut self, id: RequestId, data: &[u8]) -> Result<(), NotInFlight> {
        let req = self.requests.get_mut(&id).ok_or(NotInFlight(id))?;
        req.accept_cont = true;
        self.queue(ServerReply::Cont {
            id,
            data: Secret::new(data.to_vec()),
            fields: Vec::new(),
        });
        Ok(())
    }

    /// Ends a request successfully. Final SASL data (`final_response`) goes inside the `OK` when
    /// the client sent `final-resp-ok`; otherwise it is sent as one more `CONT` and the `OK`
    /// follows the client's (empty) answer, as Dovecot does for Postfix.
    pub fn reply_ok(&mut self, mut reply: OkReply) -> Result<(), NotInFlight> {
        let id = reply.id;
        let req = self.requests.get_mut(&id).ok_or(NotInFlight(id))?;
        if !req.final_resp_ok {
            if let Some(data) = reply.final_response.take() {
                req.accept_cont = true;
                req.pending_ok = Some(reply);
                self.queue(ServerReply::Cont {
                    id,
                    data,
                    fields: Vec::new(),
                });
                return Ok(());
            }
        }
        self.requests.remove(&id);
        self.queue(ServerReply::Ok(reply));
        Ok(())
    }

    /// Ends a request with `FAIL`. Failure delays (`auth_failure_delay`) are the driver's job:
    /// call this when the delay is over.
    pub fn reply_fail(&mut self, reply: FailReply) -> Result<(), NotInFlight> {
        self.requests
            .remove(&reply.id)
            .ok_or(NotInFlight(reply.id))?;
        self.queue(ServerReply::Fail(reply));
        Ok(())
    }

    /// Drops a request without a reply (e.g. the driver's timeout fired).
    pub fn forget(&mut self, id: RequestId) -> bool {
        self.requests.remove(&id).is_some()
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
