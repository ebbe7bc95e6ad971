//! Server side of the auth-master/auth-userdb protocol (Dovecot's auth-master-connection.c,
//! userdb role): `VERSION`+`SPID` at accept, then `USER`/`PASS`/`LIST` requests as events.

use std::fmt;

use crate::error::ParseError;
use crate::fields::{field_value, parse_u32, sanitize, Field, RawLine, RequestId};
use crate::framing::{FrameError, LineFramer, USERDB_SERVER_MAX_LINE};
use crate::server::Disposition;
use crate::userdb_msg::{ListRequest, UserLookup, UserdbReply, UserdbRequest};
use crate::PROTOCOL_MAJOR;

/// Settings of one userdb listener.
#[derive(Debug, Clone)]
pub struct UserdbServerConfig {
    /// `SPID`: the server's process id.
    pub server_pid: u32,
    /// Minor version to announce (Dovecot 2.3: 1).
    pub minor: u32,
    /// Input line limit (Dovecot: 1024).
    pub max_line: usize,
    /// Restricted connection (socket mode exactly 0666 and the peer's uid/gid differ from the
    /// socket owner's): `USER` answers only when the result's `uid` equals this peer uid,
    /// `PASS` and `LIST` fail. The driver decides from the peer credentials.
    pub restricted_uid: Option<u32>,
}

impl UserdbServerConfig {
    /// Defaults: minor 1, 1024-byte lines, unrestricted.
    pub fn new(server_pid: u32) -> Self {
        UserdbServerConfig {
            server_pid,
            minor: 1,
            max_line: USERDB_SERVER_MAX_LINE,
            restricted_uid: None,
        }
    }
}

/// A request for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserdbServerEvent {
    /// The client's `VERSION` arrived.
    Hello {
        /// Client minor version.
        minor: u32,
    },
    /// Userdb lookup; answer with `reply_user`, `reply_notfound` or `reply_fail`.
    User(UserLookup),
    /// Passdb lookup without password; answer with `reply_pass`, `reply_notfound` or
    /// `reply_fail`.
    Pass(UserLookup),
    /// User iteration; answer with `list_user`… then `list_done`.
    List(ListRequest),
}

/// A client misbehaved or was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserdbServerError {
    /// A line exceeded the limit.
    LineTooLong(FrameError),
    /// The first line was not `VERSION\t1\t…`.
    VersionMismatch(String),
    /// `CPID`: an auth client connected to the userdb socket.
    AuthClientOnUserdbSocket,
    /// A command other than `USER`/`PASS`/`LIST` (master commands are not served here).
    UnknownCommand(String),
    /// A broken request, including one without `service=`.
    Broken(ParseError),
    /// `PASS`/`LIST` on a restricted connection: answered `FAIL` / `DONE\tfail`.
    Restricted(RequestId),
    /// `LIST` while another iteration runs: answered `DONE\t<id>\tfail`.
    ListInProgress(RequestId),
}

impl UserdbServerError {
    /// Whether the request was failed or the connection must close.
    pub fn disposition(&self) -> Disposition {
        match self {
            UserdbServerError::Restricted(id) | UserdbServerError::ListInProgress(id) => {
                Disposition::Failed(*id)
            }
            _ => Disposition::Disconnect,
        }
    }
}

impl fmt::Display for UserdbServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserdbServerError::LineTooLong(e) => write!(f, "master sent a {e}"),
            UserdbServerError::VersionMismatch(l) => {
                write!(
                    f,
                    "master not compatible with this server (first line: {l})"
                )
            }
            UserdbServerError::AuthClientOnUserdbSocket => {
                f.write_str("authentication client trying to connect to userdb socket")
            }
            UserdbServerError::UnknownCommand(c) => {
                write!(f, "unknown command in userdb socket: {c}")
            }
            UserdbServerError::Broken(e) => write!(f, "master sent broken request: {e}"),
            UserdbServerError::Restricted(id) => {
                write!(f, "request {id}: not permitted on a restricted connection")
            }
            UserdbServerError::ListInProgress(id) => {
                write!(f, "request {id}: already iterating users")
            }
        }
    }
}

impl std::error::Error for UserdbServerError {}

/// One accepted auth-userdb connection, server side.
#[derive(Debug)]
pub struct UserdbServerConn {
    config: UserdbServerConfig,
    framer: LineFramer,
    out: Vec<u8>,
    version_received: bool,
    closed: bool,
    /// The running `LIST` (Dovecot allows one iteration per connection).
    listing: Option<RequestId>,
}

impl UserdbServerConn {
    /// A new connection; `VERSION` and `SPID` are queued at once.
    pub fn new(config: UserdbServerConfig) -> Self {
        let mut out = UserdbReply::Version {
            major: PROTOCOL_MAJOR,
            minor: config.minor,
        }
        .encode();
        out.extend(UserdbReply::Spid(config.server_pid).encode());
        UserdbServerConn {
            framer: LineFramer::new(config.max_line),
            config,
            out,
            version_received: false,
            closed: false,
            listing: None,
        }
    }

    /// Adds bytes read from the client.
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

    /// The next request, an error, or `None` when more input is needed.
    pub fn next_event(&mut self) -> Option<Result<UserdbServerEvent, UserdbServerError>> {
        while !self.closed {
            let line = match self.framer.next_line()? {
                Ok(line) => line,
                Err(e) => return Some(Err(self.close(UserdbServerError::LineTooLong(e)))),
            };
            match self.handle_line(&line) {
                Ok(Some(ev)) => return Some(Ok(ev)),
                Ok(None) => {}
                Err(e) if e.disposition() == Disposition::Disconnect => {
                    return Some(Err(self.close(e)))
                }
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    fn close(&mut self, e: UserdbServerError) -> UserdbServerError {
        self.closed = true;
        self.listing = None;
        e
    }

    fn handle_line(&mut self, line: &[u8]) -> Result<Option<UserdbServerEvent>, UserdbServerError> {
        let shown = || sanitize(&String::from_utf8_lossy(line));
        if !self.version_received {
            // Dovecot checks only the prefix and the major number here.
            let minor = match UserdbRequest::parse(line) {
                Ok(UserdbRequest::Version { major, minor }) if major == PROTOCOL_MAJOR => minor,
                _ => return Err(UserdbServerError::VersionMismatch(shown())),
            };
            self.version_received = true;
            return Ok(Some(UserdbServerEvent::Hello { minor }));
        }
        let command = RawLine::split(line)
            .map_err(UserdbServerError::Broken)?
            .command;
        match command {
            "USER" | "PASS" | "LIST" => {}
            "CPID" => return Err(UserdbServerError::AuthClientOnUserdbSocket),
            _ => return Err(UserdbServerError::UnknownCommand(shown())),
        }
        match UserdbRequest::parse(line).map_err(UserdbServerError::Broken)? {
            UserdbRequest::User(l) => Ok(Some(UserdbServerEvent::User(l))),
            UserdbRequest::Pass(l) => {
                if self.config.restricted_uid.is_some() {
                    self.queue(UserdbReply::Fail {
                        id: l.id,
                        reason: None,
                    });
                    return Err(UserdbServerError::Restricted(l.id));
                }
                Ok(Some(UserdbServerEvent::Pass(l)))
            }
            UserdbRequest::List(l) => {
                let refused = if self.listing.is_some() {
                    Some(UserdbServerError::ListInProgress(l.id))
                } else if self.config.restricted_uid.is_some() {
                    Some(UserdbServerError::Restricted(l.id))
                } else {
                    None
                };
                if let Some(e) = refused {
                    self.queue(UserdbReply::Done {
                        id: l.id,
                        failed: true,
                    });
                    return Err(e);
                }
                self.listing = Some(l.id);
                Ok(Some(UserdbServerEvent::List(l)))
            }
            UserdbRequest::Version { .. } => Err(UserdbServerError::UnknownCommand(shown())),
        }
    }

    fn queue(&mut self, reply: UserdbReply) {
        self.out.extend(reply.encode());
    }

    /// Answers `USER` with the canonical user name and userdb fields. On a restricted
    /// connection a result whose `uid` is not the peer's becomes a bare `FAIL`; returns whether
    /// the `USER` line was sent.
    pub fn reply_user(&mut self, id: RequestId, user: &str, fields: Vec<Field>) -> bool {
        if let Some(peer) = self.config.restricted_uid {
            if field_value(&fields, "uid").and_then(parse_u32) != Some(peer) {
                self.queue(UserdbReply::Fail { id, reason: None });
                return false;
            }
        }
        self.queue(UserdbReply::User {
            id,
            user: user.to_owned(),
            fields,
        });
        true
    }

    /// Answers `PASS` (`user=` plus passdb extra fields).
    pub fn reply_pass(&mut self, id: RequestId, user: &str, fields: Vec<Field>) {
        self.queue(UserdbReply::Pass {
            id,
            user: Some(user.to_owned()),
            fields,
        });
    }

    /// `NOTFOUND` (for `PASS` also disabled or expired users).
    pub fn reply_notfound(&mut self, id: RequestId) {
        self.queue(UserdbReply::NotFound(id));
    }

    /// `FAIL` (lookup error).
    pub fn reply_fail(&mut self, id: RequestId, reason: Option<&str>) {
        self.queue(UserdbReply::Fail {
            id,
            reason: reason.map(str::to_owned),
        });
    }

    /// One user of the running `LIST`.
    pub fn list_user(&mut self, id: RequestId, user: &str) {
        self.queue(UserdbReply::List {
            id,
            user: user.to_owned(),
        });
    }

    /// Ends the running `LIST`.
    pub fn list_done(&mut self, id: RequestId, failed: bool) {
        if self.listing == Some(id) {
            self.listing = None;
        }
        self.queue(UserdbReply::Done { id, failed });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> RequestId {
        RequestId::new(n).unwrap()
    }

    #[test]
    fn restricted_connection() {
        let mut cfg = UserdbServerConfig::new(1);
        cfg.restricted_uid = Some(1000);
        let mut c = UserdbServerConn::new(cfg);
        assert_eq!(c.take_output(), b"VERSION\t1\t1\nSPID\t1\n");
        c.feed(b"VERSION\t1\t0\nUSER\t1\tu\tservice=x\nPASS\t2\tu\tservice=x\nLIST\t3\n");
        assert!(matches!(
            c.next_event(),
            Some(Ok(UserdbServerEvent::Hello { minor: 0 }))
        ));
        assert!(matches!(
            c.next_event(),
            Some(Ok(UserdbServerEvent::User(_)))
        ));
        assert_eq!(
            c.next_event(),
            Some(Err(UserdbServerError::Restricted(id(2))))
        );
        assert_eq!(
            c.next_event(),
            Some(Err(UserdbServerError::Restricted(id(3))))
        );
        assert_eq!(c.next_event(), None);
        assert!(!c.reply_user(id(1), "u", vec![Field::new("uid", "0")]));
        assert!(c.reply_user(id(1), "u", vec![Field::new("uid", "1000")]));
        assert_eq!(
            c.take_output(),
            b"FAIL\t2\nDONE\t3\tfail\nFAIL\t1\nUSER\t1\tu\tuid=1000\n"
        );
    }
}
