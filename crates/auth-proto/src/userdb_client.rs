//! Client side of the auth-userdb protocol (Dovecot's lib-auth-client auth-master.c, chasquid):
//! `VERSION` at connect, the server's `VERSION`+`SPID`, then `USER`/`PASS`/`LIST` requests.

use std::collections::HashMap;
use std::fmt;

use crate::error::ParseError;
use crate::fields::{Field, RequestId};
use crate::framing::{FrameError, LineFramer, CLIENT_MAX_LINE};
use crate::userdb_msg::{ListRequest, UserLookup, UserdbReply, UserdbRequest};
use crate::PROTOCOL_MAJOR;

/// Client settings.
#[derive(Debug, Clone)]
pub struct UserdbClientConfig {
    /// Minor version to announce (Dovecot 2.3's library sends 0, chasquid 1).
    pub minor: u32,
    /// Input line limit (Dovecot's client: 8192).
    pub max_line: usize,
}

impl Default for UserdbClientConfig {
    fn default() -> Self {
        UserdbClientConfig {
            minor: 1,
            max_line: CLIENT_MAX_LINE,
        }
    }
}

/// A reply from the userdb server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserdbEvent {
    /// The server's `VERSION` and `SPID` arrived.
    Ready {
        /// Server minor version.
        minor: u32,
        /// Server pid.
        server_pid: u32,
    },
    /// `USER` found: use `user` (it may be rewritten).
    User {
        /// Request id.
        id: RequestId,
        /// Canonical user name.
        user: String,
        /// Userdb fields.
        fields: Vec<Field>,
    },
    /// `PASS` found.
    Pass {
        /// Request id.
        id: RequestId,
        /// `user=`, when sent.
        user: Option<String>,
        /// Passdb extra fields.
        fields: Vec<Field>,
    },
    /// No such user.
    NotFound(RequestId),
    /// Lookup failed (temporary).
    Failed {
        /// Request id.
        id: RequestId,
        /// `reason=`.
        reason: Option<String>,
    },
    /// One user of a `LIST`.
    ListUser {
        /// Request id.
        id: RequestId,
        /// User name.
        user: String,
    },
    /// End of a `LIST`.
    ListDone {
        /// Request id.
        id: RequestId,
        /// The iteration failed.
        failed: bool,
    },
}

/// Fatal userdb client errors: close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserdbClientError {
    /// A line exceeded the limit.
    LineTooLong(FrameError),
    /// The server's `VERSION` had another major number.
    VersionMismatch(u32),
    /// A reply of a known command did not parse.
    Protocol(ParseError),
    /// A reply that does not fit the request with that id (e.g. `LIST` for a `USER`).
    UnexpectedReply(RequestId),
    /// A request id already in flight.
    DuplicateId(RequestId),
}

impl fmt::Display for UserdbClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserdbClientError::LineTooLong(e) => write!(f, "userdb server sent a {e}"),
            UserdbClientError::VersionMismatch(m) => {
                write!(f, "userdb server speaks major version {m}")
            }
            UserdbClientError::Protocol(e) => write!(f, "userdb protocol error: {e}"),
            UserdbClientError::UnexpectedReply(id) => {
                write!(f, "reply does not match request {id}")
            }
            UserdbClientError::DuplicateId(id) => write!(f, "request {id} is already in flight"),
        }
    }
}

impl std::error::Error for UserdbClientError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Pass,
    List,
}

/// One auth-userdb connection, client side.
#[derive(Debug)]
pub struct UserdbClientConn {
    framer: LineFramer,
    out: Vec<u8>,
    server_minor: Option<u32>,
    ready: bool,
    closed: bool,
    pending: HashMap<RequestId, Kind>,
    next_id: RequestId,
}

impl UserdbClientConn {
    /// A new connection; `VERSION` is queued at once and requests may follow without waiting.
    pub fn new(config: UserdbClientConfig) -> Self {
        UserdbClientConn {
            framer: LineFramer::new(config.max_line),
            out: UserdbRequest::Version {
                major: PROTOCOL_MAJOR,
                minor: config.minor,
            }
            .encode(),
            server_minor: None,
            ready: false,
            closed: false,
            pending: HashMap::new(),
            next_id: RequestId::MIN,
        }
    }

    /// Adds bytes read from the server.
    pub fn feed(&mut self, data: &[u8]) {
        if !self.closed {
            self.framer.feed(data);
        }
    }

    /// Bytes to write; empties the queue.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether a fatal error closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the server's handshake arrived.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Requests waiting for an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A fresh request id (counts from 1, skipping ids in flight).
    pub fn next_request_id(&mut self) -> RequestId {
        loop {
            let id = self.next_id;
            self.next_id = id.next();
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
    }

    fn send(
        &mut self,
        id: RequestId,
        kind: Kind,
        req: UserdbRequest,
    ) -> Result<(), UserdbClientError> {
        if self.pending.contains_key(&id) {
            return Err(UserdbClientError::DuplicateId(id));
        }
        self.pending.insert(id, kind);
        self.out.extend(req.encode());
        Ok(())
    }

    /// Queues a `USER` lookup.
    pub fn user(&mut self, lookup: UserLookup) -> Result<(), UserdbClientError> {
        self.send(lookup.id, Kind::User, UserdbRequest::User(lookup))
    }

    /// Queues a `PASS` lookup.
    pub fn pass(&mut self, lookup: UserLookup) -> Result<(), UserdbClientError> {
        self.send(lookup.id, Kind::Pass, UserdbRequest::Pass(lookup))
    }

    /// Queues a `LIST`.
    pub fn list(&mut self, request: ListRequest) -> Result<(), UserdbClientError> {
        self.send(request.id, Kind::List, UserdbRequest::List(request))
    }

    /// Stops tracking a request (local timeout); late replies are then skipped.
    pub fn forget(&mut self, id: RequestId) -> bool {
        self.pending.remove(&id).is_some()
    }

    /// The next event, a fatal error, or `None` when more input is needed. Unknown commands and
    /// replies for ids not in flight are skipped.
    pub fn next_event(&mut self) -> Option<Result<UserdbEvent, UserdbClientError>> {
        while !self.closed {
            let line = match self.framer.next_line()? {
                Ok(line) => line,
                Err(e) => return Some(Err(self.close(UserdbClientError::LineTooLong(e)))),
            };
            match self.handle_line(&line) {
                Ok(Some(ev)) => return Some(Ok(ev)),
                Ok(None) => {}
                Err(e) => return Some(Err(self.close(e))),
            }
        }
        None
    }

    fn close(&mut self, e: UserdbClientError) -> UserdbClientError {
        self.closed = true;
        self.pending.clear();
        e
    }

    fn handle_line(&mut self, line: &[u8]) -> Result<Option<UserdbEvent>, UserdbClientError> {
        let reply = match UserdbReply::parse(line) {
            Ok(r) => r,
            Err(ParseError::UnknownCommand(_)) => return Ok(None),
            Err(e) => return Err(UserdbClientError::Protocol(e)),
        };
        let (id, expected) = match &reply {
            UserdbReply::Version { major, minor } => {
                if *major != PROTOCOL_MAJOR {
                    return Err(UserdbClientError::VersionMismatch(*major));
                }
                self.server_minor = Some(*minor);
                return Ok(None);
            }
            UserdbReply::Spid(pid) => {
                if self.ready {
                    return Ok(None);
                }
                self.ready = true;
                return Ok(Some(UserdbEvent::Ready {
                    minor: self.server_minor.unwrap_or(0),
                    server_pid: *pid,
                }));
            }
            UserdbReply::User { id, .. } => (*id, Some(Kind::User)),
            UserdbReply::Pass { id, .. } => (*id, Some(Kind::Pass)),
            UserdbReply::List { id, .. } | UserdbReply::Done { id, .. } => (*id, Some(Kind::List)),
            UserdbReply::NotFound(id) | UserdbReply::Fail { id, .. } => (*id, None),
        };
        let Some(&kind) = self.pending.get(&id) else {
            return Ok(None);
        };
        if expected.is_some_and(|k| k != kind) {
            return Err(UserdbClientError::UnexpectedReply(id));
        }
        let ends = !matches!(reply, UserdbReply::List { .. });
        if ends {
            self.pending.remove(&id);
        }
        Ok(Some(match reply {
            UserdbReply::User { id, user, fields } => UserdbEvent::User { id, user, fields },
            UserdbReply::Pass { id, user, fields } => UserdbEvent::Pass { id, user, fields },
            UserdbReply::NotFound(id) => UserdbEvent::NotFound(id),
            UserdbReply::Fail { id, reason } => UserdbEvent::Failed { id, reason },
            UserdbReply::List { id, user } => UserdbEvent::ListUser { id, user },
            UserdbReply::Done { id, failed } => UserdbEvent::ListDone { id, failed },
            UserdbReply::Version { .. } | UserdbReply::Spid(_) => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chasquid_style_lookup() {
        let mut c = UserdbClientConn::new(UserdbClientConfig::default());
        let id = c.next_request_id();
        c.user(UserLookup::new(id, "alice", "smtp")).unwrap();
        assert_eq!(
            c.take_output(),
            b"VERSION\t1\t1\nUSER\t1\talice\tservice=smtp\n"
        );
        c.feed(b"VERSION\t1\t1\nSPID\t9\nUSER\t1\talice\tuid=5000\n");
        assert_eq!(
            c.next_event(),
            Some(Ok(UserdbEvent::Ready {
                minor: 1,
                server_pid: 9
            }))
        );
        assert!(matches!(c.next_event(), Some(Ok(UserdbEvent::User { .. }))));
        assert_eq!(c.next_event(), None);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn mismatched_reply_is_fatal() {
        let mut c = UserdbClientConn::new(UserdbClientConfig::default());
        let id = c.next_request_id();
        c.user(UserLookup::new(id, "alice", "smtp")).unwrap();
        c.feed(b"LIST\t1\tbob\n");
        assert_eq!(
            c.next_event(),
            Some(Err(UserdbClientError::UnexpectedReply(id)))
        );
        assert!(c.is_closed());
    }
}
