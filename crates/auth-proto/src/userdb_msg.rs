//! Lines of the auth-master/auth-userdb protocol (docs/formats.md#auth-userdb): `USER`, `PASS`,
//! `LIST`
//! requests and their replies.

use crate::error::ParseError;
use crate::fields::{parse_fields, sanitize, Field, LineWriter, RawLine, RequestId};

/// `USER`/`PASS` request body: `<id>\t<user>\tservice=<svc>[\t<k>=<v>...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLookup {
    /// Request id.
    pub id: RequestId,
    /// The user to look up.
    pub user: String,
    /// `service=` or `protocol=` (mandatory); encoded as `service=`.
    pub service: String,
    /// Other fields (`lip=`, `rip=`, `session=`, `debug`…), in order.
    pub fields: Vec<Field>,
}

impl UserLookup {
    /// A lookup with no extra fields.
    pub fn new(id: RequestId, user: impl Into<String>, service: impl Into<String>) -> Self {
        UserLookup {
            id,
            user: user.into(),
            service: service.into(),
            fields: Vec::new(),
        }
    }

    fn parse(raw: &RawLine<'_>) -> Result<Self, ParseError> {
        let id = raw.id(0)?;
        let user = raw.arg(1, "user")?;
        let mut service = None;
        let mut fields = Vec::new();
        for f in parse_fields(raw.args[2..].iter().copied()) {
            match (f.key.as_str(), f.value) {
                ("service" | "protocol", Some(v)) => service = Some(v),
                (_, value) => fields.push(Field { key: f.key, value }),
            }
        }
        let service = service.ok_or(ParseError::MissingService(id))?;
        Ok(UserLookup {
            id,
            user,
            service,
            fields,
        })
    }

    fn encode(&self, command: &str) -> Vec<u8> {
        let mut w = LineWriter::new(command);
        w.raw(&self.id.to_string())
            .arg(&self.user)
            .kv("service", &self.service);
        for f in &self.fields {
            f.write(&mut w);
        }
        w.finish()
    }
}

/// `LIST\t<id>[\tuser=<mask>][\tservice=<svc>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// Request id.
    pub id: RequestId,
    /// `user=`: wildcard mask (`*`, `?`).
    pub user_mask: Option<String>,
    /// `service=`/`protocol=`.
    pub service: Option<String>,
    /// Other fields.
    pub fields: Vec<Field>,
}

/// A client → server line on the userdb/master socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserdbRequest {
    /// `VERSION\t<major>\t<minor>`.
    Version {
        /// Protocol major (1).
        major: u32,
        /// Protocol minor.
        minor: u32,
    },
    /// `USER`: userdb lookup.
    User(UserLookup),
    /// `PASS`: passdb lookup without password check.
    Pass(UserLookup),
    /// `LIST`: iterate users.
    List(ListRequest),
}

impl UserdbRequest {
    /// Parses one line (without LF).
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        let raw = RawLine::split(line)?;
        Ok(match raw.command {
            "VERSION" => {
                let major = raw.number(0, "major version")?;
                let minor = raw.number(1, "minor version")?;
                UserdbRequest::Version { major, minor }
            }
            "USER" => UserdbRequest::User(UserLookup::parse(&raw)?),
            "PASS" => UserdbRequest::Pass(UserLookup::parse(&raw)?),
            "LIST" => {
                let id = raw.id(0)?;
                let mut req = ListRequest {
                    id,
                    user_mask: None,
                    service: None,
                    fields: Vec::new(),
                };
                for f in parse_fields(raw.args[1..].iter().copied()) {
                    match (f.key.as_str(), f.value) {
                        ("user", Some(v)) => req.user_mask = Some(v),
                        ("service" | "protocol", Some(v)) => req.service = Some(v),
                        (_, value) => req.fields.push(Field { key: f.key, value }),
                    }
                }
                UserdbRequest::List(req)
            }
            other => return Err(ParseError::UnknownCommand(sanitize(other))),
        })
    }

    /// The wire line, LF included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            UserdbRequest::Version { major, minor } => {
                let mut w = LineWriter::new("VERSION");
                w.raw(&major.to_string()).raw(&minor.to_string());
                w.finish()
            }
            UserdbRequest::User(l) => l.encode("USER"),
            UserdbRequest::Pass(l) => l.encode("PASS"),
            UserdbRequest::List(l) => {
                let mut w = LineWriter::new("LIST");
                w.raw(&l.id.to_string());
                if let Some(m) = &l.user_mask {
                    w.kv("user", m);
                }
                if let Some(s) = &l.service {
                    w.kv("service", s);
                }
                for f in &l.fields {
                    f.write(&mut w);
                }
                w.finish()
            }
        }
    }
}

/// A server → client line on the userdb/master socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserdbReply {
    /// `VERSION\t<major>\t<minor>`.
    Version {
        /// Protocol major (1).
        major: u32,
        /// Protocol minor.
        minor: u32,
    },
    /// `SPID\t<pid>`.
    Spid(u32),
    /// `USER\t<id>\t<canonical user>[\t<k>=<v>...]`: use this user name, it may be rewritten.
    User {
        /// Request id.
        id: RequestId,
        /// Canonical user name.
        user: String,
        /// Userdb fields (`uid`, `gid`, `home`, `mail`…); a field without `=` is a boolean.
        fields: Vec<Field>,
    },
    /// `PASS\t<id>\tuser=<user>[\t<field>...]`.
    Pass {
        /// Request id.
        id: RequestId,
        /// `user=`.
        user: Option<String>,
        /// Passdb extra fields.
        fields: Vec<Field>,
    },
    /// `NOTFOUND\t<id>` (for `PASS` also disabled/expired users).
    NotFound(RequestId),
    /// `FAIL\t<id>[\treason=<text>]`.
    Fail {
        /// Request id.
        id: RequestId,
        /// `reason=`.
        reason: Option<String>,
    },
    /// `LIST\t<id>\t<user>`: one user of an iteration.
    List {
        /// Request id.
        id: RequestId,
        /// User name.
        user: String,
    },
    /// `DONE\t<id>\t` (success) or `DONE\t<id>\tfail`: end of an iteration.
    Done {
        /// Request id.
        id: RequestId,
        /// The iteration failed.
        failed: bool,
    },
}

impl UserdbReply {
    /// Parses one line (without LF).
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        let raw = RawLine::split(line)?;
        Ok(match raw.command {
            "VERSION" => UserdbReply::Version {
                major: raw.number(0, "major version")?,
                minor: raw.number(1, "minor version")?,
            },
            "SPID" => UserdbReply::Spid(raw.number(0, "server pid")?),
            "USER" => UserdbReply::User {
                id: raw.id(0)?,
                user: raw.arg(1, "user")?,
                fields: parse_fields(raw.args[2..].iter().copied()),
            },
            "PASS" => {
                let id = raw.id(0)?;
                let mut user = None;
                let mut fields = Vec::new();
                for f in parse_fields(raw.args[1..].iter().copied()) {
                    match (f.key.as_str(), f.value) {
                        ("user", Some(v)) if user.is_none() => user = Some(v),
                        (_, value) => fields.push(Field { key: f.key, value }),
                    }
                }
                UserdbReply::Pass { id, user, fields }
            }
            "NOTFOUND" => UserdbReply::NotFound(raw.id(0)?),
            "FAIL" => {
                let id = raw.id(0)?;
                let fields = parse_fields(raw.args[1..].iter().copied());
                let reason = fields
                    .into_iter()
                    .find(|f| f.key == "reason")
                    .and_then(|f| f.value);
                UserdbReply::Fail { id, reason }
            }
            "LIST" => UserdbReply::List {
                id: raw.id(0)?,
                user: raw.arg(1, "user")?,
            },
            "DONE" => UserdbReply::Done {
                id: raw.id(0)?,
                failed: raw.args.get(1).is_some_and(|a| *a == "fail"),
            },
            other => return Err(ParseError::UnknownCommand(sanitize(other))),
        })
    }

    /// The wire line, LF included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            UserdbReply::Version { major, minor } => {
                let mut w = LineWriter::new("VERSION");
                w.raw(&major.to_string()).raw(&minor.to_string());
                w.finish()
            }
            UserdbReply::Spid(pid) => {
                let mut w = LineWriter::new("SPID");
                w.raw(&pid.to_string());
                w.finish()
            }
            UserdbReply::User { id, user, fields } => {
                let mut w = LineWriter::new("USER");
                w.raw(&id.to_string()).arg(user);
                for f in fields {
                    f.write(&mut w);
                }
                w.finish()
            }
            UserdbReply::Pass { id, user, fields } => {
                let mut w = LineWriter::new("PASS");
                w.raw(&id.to_string());
                if let Some(u) = user {
                    w.kv("user", u);
                }
                for f in fields {
                    f.write(&mut w);
                }
                w.finish()
            }
            UserdbReply::NotFound(id) => {
                let mut w = LineWriter::new("NOTFOUND");
                w.raw(&id.to_string());
                w.finish()
            }
            UserdbReply::Fail { id, reason } => {
                let mut w = LineWriter::new("FAIL");
                w.raw(&id.to_string());
                if let Some(r) = reason {
                    w.kv("reason", r);
                }
                w.finish()
            }
            UserdbReply::List { id, user } => {
                let mut w = LineWriter::new("LIST");
                w.raw(&id.to_string()).arg(user);
                w.finish()
            }
            UserdbReply::Done { id, failed } => {
                let mut w = LineWriter::new("DONE");
                w.raw(&id.to_string())
                    .raw(if *failed { "fail" } else { "" });
                w.finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_example() {
        let r = UserdbReply::parse(
            b"USER\t1\talice@example.com\tuid=5000\tgid=5000\thome=/srv/vmail/example.com/alice\t\
              mail=maildir:~/Maildir\tquota_rule=*:storage=2G",
        )
        .unwrap();
        let UserdbReply::User { user, fields, .. } = &r else {
            panic!()
        };
        assert_eq!(user, "alice@example.com");
        assert_eq!(crate::fields::field_value(fields, "uid"), Some("5000"));
        assert_eq!(
            crate::fields::field_value(fields, "quota_rule"),
            Some("*:storage=2G")
        );
    }

    #[test]
    fn empty_fields_and_booleans() {
        let r = UserdbReply::parse(b"USER\t2\tbob\t\tlocal_name=x\t\tanonymous").unwrap();
        let UserdbReply::User { fields, .. } = r else {
            panic!()
        };
        assert_eq!(
            fields,
            vec![Field::new("local_name", "x"), Field::flag("anonymous")]
        );
    }

    #[test]
    fn done_forms() {
        assert_eq!(
            UserdbReply::parse(b"DONE\t3\t").unwrap().encode(),
            b"DONE\t3\t\n"
        );
        assert_eq!(
            UserdbReply::parse(b"DONE\t3\tfail").unwrap(),
            UserdbReply::Done {
                id: RequestId::new(3).unwrap(),
                failed: true
            }
        );
    }

    #[test]
    fn request_needs_service() {
        assert!(matches!(
            UserdbRequest::parse(b"USER\t1\talice"),
            Err(ParseError::MissingService(_))
        ));
        let r = UserdbRequest::parse(b"USER\t1\talice\tprotocol=lmtp\trip=10.0.0.5").unwrap();
        assert_eq!(r.encode(), b"USER\t1\talice\tservice=lmtp\trip=10.0.0.5\n");
    }
}
