//! Lines an auth server sends on the auth-client socket: the handshake (`VERSION`, `MECH`,
//! `SPID`, `CUID`, `COOKIE`, `DONE`) and the replies `CONT`, `OK`, `FAIL`, `CANCELLED`.

use crate::error::ParseError;
use crate::fields::{
    base64_decode, base64_encode, parse_fields, sanitize, Field, LineWriter, RawLine, RequestId,
};
use crate::mech::{Cookie, MechFlag, MechFlags, Mechanism};
use crate::secret::Secret;

/// `FAIL` codes (`code=` since 2.3.0; 2.2 sent bare flags, which parse to the same values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailCode {
    /// `temp_fail` (2.2: `temp`): internal or database error, try again later.
    TempFail,
    /// `authz_fail` (2.2: `authz`): the master user was fine, the target user refused.
    AuthzFail,
    /// `user_disabled`.
    UserDisabled,
    /// `pass_expired`.
    PassExpired,
    /// `invalid_base64`.
    InvalidBase64,
    /// A code this crate does not know.
    Other(String),
}

impl FailCode {
    /// The `code=` value.
    pub fn as_str(&self) -> &str {
        match self {
            FailCode::TempFail => "temp_fail",
            FailCode::AuthzFail => "authz_fail",
            FailCode::UserDisabled => "user_disabled",
            FailCode::PassExpired => "pass_expired",
            FailCode::InvalidBase64 => "invalid_base64",
            FailCode::Other(s) => s,
        }
    }

    /// Parses a `code=` value.
    pub fn parse(s: &str) -> Self {
        match s {
            "temp_fail" => FailCode::TempFail,
            "authz_fail" => FailCode::AuthzFail,
            "user_disabled" => FailCode::UserDisabled,
            "pass_expired" => FailCode::PassExpired,
            "invalid_base64" => FailCode::InvalidBase64,
            other => FailCode::Other(other.to_owned()),
        }
    }

    /// The code a 2.2 bare flag stands for.
    fn from_legacy_flag(s: &str) -> Option<Self> {
        match s {
            "temp" => Some(FailCode::TempFail),
            "authz" => Some(FailCode::AuthzFail),
            "user_disabled" => Some(FailCode::UserDisabled),
            "pass_expired" => Some(FailCode::PassExpired),
            _ => None,
        }
    }
}

/// `OK\t<id>\tuser=<user>[\t<field>...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkReply {
    /// Request id.
    pub id: RequestId,
    /// `user=`: always sent by servers; a reply without it is a backend error for clients.
    pub user: Option<String>,
    /// `resp=`: final server SASL data (only when the request had `final-resp-ok`).
    pub final_response: Option<Secret<Vec<u8>>>,
    /// Other fields (`original_user=`, `auth_user=`, `anonymous`, passdb extra fields).
    pub fields: Vec<Field>,
}

/// `FAIL\t<id>[\tuser=<u>][\tcode=<code>][\treason=<text>][\t<field>...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailReply {
    /// Request id.
    pub id: RequestId,
    /// `user=` when known.
    pub user: Option<String>,
    /// `code=` (or a 2.2 bare flag).
    pub code: Option<FailCode>,
    /// `reason=`: user-visible text; must not tell unknown users from bad passwords.
    pub reason: Option<String>,
    /// Other fields (`nodelay`, …).
    pub fields: Vec<Field>,
}

impl FailReply {
    /// A `FAIL` with only a reason.
    pub fn with_reason(id: RequestId, reason: impl Into<String>) -> Self {
        FailReply {
            id,
            user: None,
            code: None,
            reason: Some(reason.into()),
            fields: Vec::new(),
        }
    }

    /// A `FAIL` with a code and a reason.
    pub fn with_code(id: RequestId, code: FailCode, reason: impl Into<String>) -> Self {
        FailReply {
            code: Some(code),
            ..FailReply::with_reason(id, reason)
        }
    }
}

/// A server → client line of the auth-client protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerReply {
    /// `VERSION\t<major>\t<minor>`.
    Version {
        /// Protocol major (1).
        major: u32,
        /// Protocol minor.
        minor: u32,
    },
    /// `MECH\t<name>[\t<flag>...]`; unknown flags are ignored.
    Mech(Mechanism),
    /// `SPID\t<server pid>`.
    Spid(u32),
    /// `CUID\t<connection id>`.
    Cuid(u32),
    /// `COOKIE\t<32 hex>`.
    Cookie(Cookie),
    /// `DONE`: end of the handshake.
    Done,
    /// `CONT\t<id>\t<base64>[\t<field>...]` (e.g. `channel_binding=`).
    Cont {
        /// Request id.
        id: RequestId,
        /// Decoded server challenge (may be empty).
        data: Secret<Vec<u8>>,
        /// Extra fields.
        fields: Vec<Field>,
    },
    /// `OK`.
    Ok(OkReply),
    /// `FAIL`.
    Fail(FailReply),
    /// `CANCELLED\t<id>`.
    Cancelled(RequestId),
}

impl ServerReply {
    /// Parses one line (without LF).
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        let raw = RawLine::split(line)?;
        let number = |what| raw.number(0, what);
        Ok(match raw.command {
            "VERSION" => ServerReply::Version {
                major: raw.number(0, "major version")?,
                minor: raw.number(1, "minor version")?,
            },
            "MECH" => {
                let name = raw.arg(0, "mechanism")?;
                let flags = raw.args[1..]
                    .iter()
                    .filter_map(|f| MechFlag::parse(f))
                    .fold(MechFlags::empty(), MechFlags::with);
                ServerReply::Mech(Mechanism { name, flags })
            }
            "SPID" => ServerReply::Spid(number("server pid")?),
            "CUID" => ServerReply::Cuid(number("connection id")?),
            "COOKIE" => {
                let hex = raw.arg(0, "cookie")?;
                ServerReply::Cookie(Cookie::from_hex(&hex).ok_or(ParseError::BadValue {
                    what: "cookie",
                    value: sanitize(&hex),
                })?)
            }
            "DONE" => ServerReply::Done,
            "CONT" => {
                let id = raw.id(0)?;
                let data = raw.args.get(1).ok_or(ParseError::Missing {
                    command: "CONT".into(),
                    what: "data",
                })?;
                let data = base64_decode(data).ok_or(ParseError::InvalidBase64(id))?;
                ServerReply::Cont {
                    id,
                    data: Secret::new(data),
                    fields: parse_fields(raw.args[2..].iter().copied()),
                }
            }
            "OK" => {
                let id = raw.id(0)?;
                let mut reply = OkReply {
                    id,
                    user: None,
                    final_response: None,
                    fields: Vec::new(),
                };
                for field in parse_fields(raw.args[1..].iter().copied()) {
                    match (field.key.as_str(), field.value) {
                        ("user", Some(v)) => reply.user = Some(v),
                        ("resp", Some(v)) => {
                            let data = base64_decode(&v).ok_or(ParseError::InvalidBase64(id))?;
                            reply.final_response = Some(Secret::new(data));
                        }
                        (_, value) => reply.fields.push(Field {
                            key: field.key,
                            value,
                        }),
                    }
                }
                ServerReply::Ok(reply)
            }
            "FAIL" => {
                let id = raw.id(0)?;
                let mut reply = FailReply {
                    id,
                    user: None,
                    code: None,
                    reason: None,
                    fields: Vec::new(),
                };
                for field in parse_fields(raw.args[1..].iter().copied()) {
                    match (field.key.as_str(), field.value) {
                        ("user", Some(v)) => reply.user = Some(v),
                        ("code", Some(v)) => reply.code = Some(FailCode::parse(&v)),
                        ("reason", Some(v)) => reply.reason = Some(v),
                        (k, None) if FailCode::from_legacy_flag(k).is_some() => {
                            reply.code = FailCode::from_legacy_flag(k);
                        }
                        (_, value) => reply.fields.push(Field {
                            key: field.key,
                            value,
                        }),
                    }
                }
                ServerReply::Fail(reply)
            }
            "CANCELLED" => ServerReply::Cancelled(raw.id(0)?),
            other => return Err(ParseError::UnknownCommand(sanitize(other))),
        })
    }

    /// The wire line, LF included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ServerReply::Version { major, minor } => {
                let mut w = LineWriter::new("VERSION");
                w.raw(&major.to_string()).raw(&minor.to_string());
                w.finish()
            }
            ServerReply::Mech(m) => {
                let mut w = LineWriter::new("MECH");
                w.arg(&m.name);
                for f in m.flags.iter() {
                    w.raw(f.as_str());
                }
                w.finish()
            }
            ServerReply::Spid(pid) => number_line("SPID", *pid),
            ServerReply::Cuid(cuid) => number_line("CUID", *cuid),
            ServerReply::Cookie(c) => {
                let mut w = LineWriter::new("COOKIE");
                w.raw(&c.to_hex());
                w.finish()
            }
            ServerReply::Done => LineWriter::new("DONE").finish(),
            ServerReply::Cont { id, data, fields } => {
                let mut w = LineWriter::new("CONT");
                // The data field is always present, even when empty (Postfix needs it).
                w.raw(&id.to_string()).raw(&base64_encode(data.expose()));
                for f in fields {
                    f.write(&mut w);
                }
                w.finish()
            }
            ServerReply::Ok(ok) => {
                let mut w = LineWriter::new("OK");
                w.raw(&ok.id.to_string());
                if let Some(u) = &ok.user {
                    w.kv("user", u);
                }
                for f in &ok.fields {
                    f.write(&mut w);
                }
                if let Some(r) = &ok.final_response {
                    w.raw(&format!("resp={}", base64_encode(r.expose())));
                }
                w.finish()
            }
            ServerReply::Fail(fail) => {
                let mut w = LineWriter::new("FAIL");
                w.raw(&fail.id.to_string());
                if let Some(u) = &fail.user {
                    w.kv("user", u);
                }
                if let Some(c) = &fail.code {
                    w.kv("code", c.as_str());
                }
                if let Some(r) = &fail.reason {
                    w.kv("reason", r);
                }
                for f in &fail.fields {
                    f.write(&mut w);
                }
                w.finish()
            }
            ServerReply::Cancelled(id) => number_line("CANCELLED", id.get()),
        }
    }
}

fn number_line(command: &str, n: u32) -> Vec<u8> {
    let mut w = LineWriter::new(command);
    w.raw(&n.to_string());
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> RequestId {
        RequestId::new(n).unwrap()
    }

    #[test]
    fn mech_line() {
        let r = ServerReply::parse(b"MECH\tCRAM-MD5\tDictionary\tactive\tfuture-flag").unwrap();
        let ServerReply::Mech(m) = &r else {
            panic!("{r:?}")
        };
        assert_eq!(m.name, "CRAM-MD5");
        assert_eq!(r.encode(), b"MECH\tCRAM-MD5\tdictionary\tactive\n");
    }

    #[test]
    fn cont_always_has_data_field() {
        let r = ServerReply::Cont {
            id: id(3),
            data: Secret::new(vec![]),
            fields: vec![],
        };
        assert_eq!(r.encode(), b"CONT\t3\t\n");
        assert_eq!(ServerReply::parse(b"CONT\t3\t").unwrap(), r);
        assert!(ServerReply::parse(b"CONT\t3").is_err());
    }

    #[test]
    fn fail_codes_new_and_legacy() {
        let new = ServerReply::parse(b"FAIL\t4\tuser=bob\tcode=temp_fail\treason=DB down").unwrap();
        let old = ServerReply::parse(b"FAIL\t4\tuser=bob\ttemp\treason=DB down").unwrap();
        assert_eq!(new, old);
        let ServerReply::Fail(f) = new else { panic!() };
        assert_eq!(f.code, Some(FailCode::TempFail));
        assert_eq!(f.reason.as_deref(), Some("DB down"));
        let f = ServerReply::parse(b"FAIL\t4\tauthz\tnodelay").unwrap();
        let ServerReply::Fail(f) = f else { panic!() };
        assert_eq!(f.code, Some(FailCode::AuthzFail));
        assert_eq!(f.fields, vec![Field::flag("nodelay")]);
    }

    #[test]
    fn ok_with_final_response() {
        let r = ServerReply::parse(b"OK\t1\tuser=alice\tresp=dj1hYmM=\tanonymous").unwrap();
        let ServerReply::Ok(ok) = &r else { panic!() };
        assert_eq!(ok.user.as_deref(), Some("alice"));
        assert_eq!(ok.final_response.as_ref().unwrap().expose(), b"v=abc");
        assert_eq!(ok.fields, vec![Field::flag("anonymous")]);
        assert_eq!(ServerReply::parse(r.encode().trim_ascii_end()).unwrap(), r);
    }

    #[test]
    fn escaped_reason() {
        let r = ServerReply::Fail(FailReply::with_reason(id(9), "a\tb\nc"));
        assert_eq!(r.encode(), b"FAIL\t9\treason=a\x01tb\x01nc\n");
    }
}
