//! POP3 commands parsed once into types (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).
//! Per-verb properties (which state allows it) live on the enum, not in the handlers.

use pochta_auth_proto::Secret;

/// Longest user name accepted by USER (Dovecot's login limit is similar).
pub const MAX_USER_LEN: usize = 255;

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Capa,
    Stls,
    /// `AUTH` without a mechanism: list mechanisms (the pre-RFC 5034 form clients still send).
    AuthList,
    /// `AUTH mechanism [initial-response]`; the response is still base64 here.
    Auth {
        mechanism: String,
        initial_response: Option<String>,
    },
    User(String),
    Pass(Secret<Vec<u8>>),
    Apop,
    Stat,
    /// `LIST [msg]`
    List(Option<MsgArg>),
    /// `UIDL [msg]`
    Uidl(Option<MsgArg>),
    Retr(MsgArg),
    /// `TOP msg n`
    Top(MsgArg, u64),
    Dele(MsgArg),
    Noop,
    Rset,
    Quit,
}

/// A message number as the client wrote it (1-based; 0 and out-of-range are checked against the
/// maildrop, so the reply can name the number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgArg(pub u64);

/// Which states accept a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    Authorization,
    Transaction,
    Both,
}

/// Why a line is not a command we can run.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Empty,
    Unknown(String),
    /// Known verb, bad arguments: the reply text says what was wrong.
    BadArguments(&'static str),
}

impl Command {
    pub fn allowed(&self) -> Allowed {
        match self {
            Command::Capa | Command::Quit | Command::Noop => Allowed::Both,
            Command::Stls
            | Command::AuthList
            | Command::Auth { .. }
            | Command::User(_)
            | Command::Pass(_)
            | Command::Apop => Allowed::Authorization,
            Command::Stat
            | Command::List(_)
            | Command::Uidl(_)
            | Command::Retr(_)
            | Command::Top(..)
            | Command::Dele(_)
            | Command::Rset => Allowed::Transaction,
        }
    }

    /// Verb for logs (never arguments: PASS and AUTH carry secrets).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::AuthList | Command::Auth { .. } => "AUTH",
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Apop => "APOP",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Top(..) => "TOP",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
        }
    }

    /// Parses one line without its CRLF/LF.
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        let (verb, rest) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        if verb.is_empty() {
            return Err(ParseError::Empty);
        }
        let upper = verb.to_ascii_uppercase();
        // PASS takes the rest of the line verbatim: passwords may contain spaces (RFC 1939 §7
        // allows servers to do so, Dovecot does).
        if upper == b"PASS" {
            return Ok(Command::Pass(Secret::new(rest.to_vec())));
        }
        let args: Vec<&[u8]> = rest
            .split(|&b| b == b' ')
            .filter(|a| !a.is_empty())
            .collect();
        let text = |a: &[u8]| String::from_utf8_lossy(a).into_owned();
        let none = |c: Command| {
            if args.is_empty() {
                Ok(c)
            } else {
                Err(ParseError::BadArguments("Too many arguments."))
            }
        };
        match upper.as_slice() {
            b"CAPA" => none(Command::Capa),
            b"STLS" => none(Command::Stls),
            b"STAT" => none(Command::Stat),
            b"NOOP" => none(Command::Noop),
            b"RSET" => none(Command::Rset),
            b"QUIT" => none(Command::Quit),
            b"APOP" => Ok(Command::Apop),
            b"USER" => {
                // The user name is the rest of the line (names with spaces exist in passwd-files).
                let name = rest;
                if name.is_empty() {
                    return Err(ParseError::BadArguments("No username given."));
                }
                if name.len() > MAX_USER_LEN || name.contains(&0) {
                    return Err(ParseError::BadArguments("Invalid username."));
                }
                let name = std::str::from_utf8(name)
                    .map_err(|_| ParseError::BadArguments("Invalid username."))?;
                Ok(Command::User(name.to_owned()))
            }
            b"AUTH" => match args.as_slice() {
                [] => Ok(Command::AuthList),
                [mech] => Ok(Command::Auth {
                    mechanism: text(mech).to_ascii_uppercase(),
                    initial_response: None,
                }),
                [mech, ir] => Ok(Command::Auth {
                    mechanism: text(mech).to_ascii_uppercase(),
                    initial_response: Some(text(ir)),
                }),
                _ => Err(ParseError::BadArguments("Too many arguments.")),
            },
            b"LIST" | b"UIDL" => {
                let msg = match args.as_slice() {
                    [] => None,
                    [n] => Some(msg_arg(n)?),
                    _ => return Err(ParseError::BadArguments("Too many arguments.")),
                };
                Ok(if upper == b"LIST" {
                    Command::List(msg)
                } else {
                    Command::Uidl(msg)
                })
            }
            b"RETR" | b"DELE" => {
                let msg = match args.as_slice() {
                    [n] => msg_arg(n)?,
                    [] => return Err(ParseError::BadArguments("Missing message number.")),
                    _ => return Err(ParseError::BadArguments("Too many arguments.")),
                };
                Ok(if upper == b"RETR" {
                    Command::Retr(msg)
                } else {
                    Command::Dele(msg)
                })
            }
            b"TOP" => match args.as_slice() {
                [n, lines] => Ok(Command::Top(msg_arg(n)?, number(lines)?)),
                [_] | [] => Err(ParseError::BadArguments("Missing arguments.")),
                _ => Err(ParseError::BadArguments("Too many arguments.")),
            },
            _ => Err(ParseError::Unknown(
                String::from_utf8_lossy(&verb[..verb.len().min(40)]).into_owned(),
            )),
        }
    }
}

fn number(a: &[u8]) -> Result<u64, ParseError> {
    if a.is_empty() || a.len() > 19 || !a.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadArguments("Invalid number argument."));
    }
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::BadArguments("Invalid number argument."))
}

fn msg_arg(a: &[u8]) -> Result<MsgArg, ParseError> {
    number(a).map(MsgArg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_any_case() {
        assert_eq!(Command::parse(b"stat"), Ok(Command::Stat));
        assert_eq!(
            Command::parse(b"LiSt 3"),
            Ok(Command::List(Some(MsgArg(3))))
        );
        assert_eq!(Command::parse(b"TOP 1 0"), Ok(Command::Top(MsgArg(1), 0)));
        assert_eq!(
            Command::parse(b"USER alice@example.org"),
            Ok(Command::User("alice@example.org".into()))
        );
        assert!(
            matches!(Command::parse(b"PASS a b "), Ok(Command::Pass(p)) if p.expose() == b"a b ")
        );
    }

    #[test]
    fn bad_arguments() {
        assert!(matches!(
            Command::parse(b"RETR"),
            Err(ParseError::BadArguments(_))
        ));
        assert!(matches!(
            Command::parse(b"RETR x"),
            Err(ParseError::BadArguments(_))
        ));
        assert!(matches!(
            Command::parse(b"RETR -1"),
            Err(ParseError::BadArguments(_))
        ));
        assert!(matches!(
            Command::parse(b"RETR 99999999999999999999999"),
            Err(ParseError::BadArguments(_))
        ));
        assert!(matches!(
            Command::parse(b"STAT 1"),
            Err(ParseError::BadArguments(_))
        ));
        assert!(matches!(
            Command::parse(b"XYZZY"),
            Err(ParseError::Unknown(_))
        ));
        assert_eq!(Command::parse(b""), Err(ParseError::Empty));
    }
}
