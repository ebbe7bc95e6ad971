//! Lines a client sends on the auth-client socket: `VERSION`, `CPID`, `AUTH`, `CONT`, `CANCEL`.

use std::num::NonZeroU32;

use crate::auth_request::AuthRequest;
use crate::error::ParseError;
use crate::fields::{base64_decode, base64_encode, sanitize, LineWriter, RawLine, RequestId};
use crate::secret::Secret;

/// A client → server line of the auth-client protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// `VERSION\t<major>\t<minor>`.
    Version {
        /// Protocol major (1).
        major: u32,
        /// Protocol minor: 0/1 (2.2 and older clients), 2 (2.3), 3–4 (2.4).
        minor: u32,
    },
    /// `CPID\t<pid>`.
    Cpid(NonZeroU32),
    /// `AUTH\t…`.
    Auth(Box<AuthRequest>),
    /// `CONT\t<id>\t<base64>`: the next SASL response, decoded.
    Cont {
        /// Request id.
        id: RequestId,
        /// Decoded response.
        data: Secret<Vec<u8>>,
    },
    /// `CANCEL\t<id>` (minor ≥ 4).
    Cancel(RequestId),
}

/// A client line split into parts but with base64 not yet decoded, so the server can run its
/// checks in Dovecot's order.
pub(crate) enum ClientLine<'a> {
    Version { major: u32, minor: u32 },
    Cpid(u32),
    Auth(Box<AuthRequest>, Option<&'a str>),
    Cont { id: RequestId, data: &'a str },
    Cancel(RequestId),
}

impl<'a> ClientLine<'a> {
    pub(crate) fn parse(raw: &RawLine<'a>) -> Result<Self, ParseError> {
        match raw.command {
            "VERSION" => {
                let major = raw.number(0, "major version")?;
                let minor = raw.number(1, "minor version")?;
                raw.expect_args(2)?;
                Ok(ClientLine::Version { major, minor })
            }
            "CPID" => {
                let pid = raw.number(0, "client pid")?;
                raw.expect_args(1)?;
                Ok(ClientLine::Cpid(pid))
            }
            "AUTH" => {
                let (req, resp) = AuthRequest::parse_args(raw)?;
                Ok(ClientLine::Auth(Box::new(req), resp))
            }
            "CONT" => {
                let id = raw.id(0)?;
                // Dovecot takes everything after the id as the data; extra TABs then fail base64.
                let data = match raw.args.len() {
                    1 => return Err(missing(raw, "data")),
                    2 => raw.args[1],
                    _ => "\t",
                };
                Ok(ClientLine::Cont { id, data })
            }
            "CANCEL" => {
                let id = raw.id(0)?;
                Ok(ClientLine::Cancel(id))
            }
            other => Err(ParseError::UnknownCommand(sanitize(other))),
        }
    }
}

fn missing(raw: &RawLine<'_>, what: &'static str) -> ParseError {
    ParseError::Missing {
        command: raw.command.to_owned(),
        what,
    }
}

impl ClientCommand {
    /// Parses one line (without LF).
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        let raw = RawLine::split(line)?;
        Ok(match ClientLine::parse(&raw)? {
            ClientLine::Version { major, minor } => ClientCommand::Version { major, minor },
            ClientLine::Cpid(pid) => {
                ClientCommand::Cpid(NonZeroU32::new(pid).ok_or(ParseError::BadValue {
                    what: "client pid",
                    value: "0".into(),
                })?)
            }
            ClientLine::Auth(..) => ClientCommand::Auth(Box::new(AuthRequest::parse(&raw)?)),
            ClientLine::Cont { id, data } => ClientCommand::Cont {
                id,
                data: Secret::new(base64_decode(data).ok_or(ParseError::InvalidBase64(id))?),
            },
            ClientLine::Cancel(id) => ClientCommand::Cancel(id),
        })
    }

    /// The wire line, LF included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ClientCommand::Version { major, minor } => {
                let mut w = LineWriter::new("VERSION");
                w.raw(&major.to_string()).raw(&minor.to_string());
                w.finish()
            }
            ClientCommand::Cpid(pid) => {
                let mut w = LineWriter::new("CPID");
                w.raw(&pid.to_string());
                w.finish()
            }
            ClientCommand::Auth(req) => req.encode(),
            ClientCommand::Cont { id, data } => {
                let mut w = LineWriter::new("CONT");
                w.raw(&id.to_string()).raw(&base64_encode(data.expose()));
                w.finish()
            }
            ClientCommand::Cancel(id) => {
                let mut w = LineWriter::new("CANCEL");
                w.raw(&id.to_string());
                w.finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_basic() {
        assert_eq!(
            ClientCommand::parse(b"VERSION\t1\t2"),
            Ok(ClientCommand::Version { major: 1, minor: 2 })
        );
        assert!(ClientCommand::parse(b"VERSION\t1").is_err());
        assert!(ClientCommand::parse(b"VERSION\t1\t2\t3").is_err());
        assert!(ClientCommand::parse(b"CPID\t0").is_err());
        assert_eq!(
            ClientCommand::parse(b"CONT\t5\t"),
            Ok(ClientCommand::Cont {
                id: RequestId::new(5).unwrap(),
                data: Secret::new(vec![])
            })
        );
        assert!(ClientCommand::parse(b"CONT\t5").is_err());
        assert!(matches!(
            ClientCommand::parse(b"HELLO"),
            Err(ParseError::UnknownCommand(_))
        ));
        assert_eq!(ClientCommand::parse(b""), Err(ParseError::Empty));
        assert_eq!(ClientCommand::parse(b"\xff"), Err(ParseError::InvalidUtf8));
    }

    #[test]
    fn debug_hides_credentials() {
        let c = ClientCommand::parse(b"CONT\t5\tc2VjcmV0").unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
