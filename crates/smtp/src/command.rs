//! SMTP/LMTP commands parsed once into types (RFC 5321 §4.1, RFC 2033, RFC 3030 BDAT,
//! RFC 3207 STARTTLS, RFC 4954 AUTH), with per-verb properties in one table.

use crate::address::{
    parse_forward_path, parse_reverse_path, split_path, AddressError, ForwardPath, ReversePath,
};
use crate::params::{MailParams, ParamError, RcptParams};
use crate::reply::Reply;
use std::fmt;

/// The command verbs we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Helo,
    Ehlo,
    Lhlo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
}

impl Verb {
    /// Every verb, for tables and fuzz dictionaries.
    pub const ALL: [Verb; 15] = [
        Verb::Helo,
        Verb::Ehlo,
        Verb::Lhlo,
        Verb::Mail,
        Verb::Rcpt,
        Verb::Data,
        Verb::Bdat,
        Verb::Rset,
        Verb::Noop,
        Verb::Quit,
        Verb::Vrfy,
        Verb::Expn,
        Verb::Help,
        Verb::StartTls,
        Verb::Auth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Helo => "HELO",
            Verb::Ehlo => "EHLO",
            Verb::Lhlo => "LHLO",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Bdat => "BDAT",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Quit => "QUIT",
            Verb::Vrfy => "VRFY",
            Verb::Expn => "EXPN",
            Verb::Help => "HELP",
            Verb::StartTls => "STARTTLS",
            Verb::Auth => "AUTH",
        }
    }

    fn from_bytes(v: &[u8]) -> Option<Verb> {
        Verb::ALL
            .into_iter()
            .find(|verb| verb.as_str().as_bytes().eq_ignore_ascii_case(v))
    }

    /// Allowed on a listener that demands TLS before it is active (RFC 3207 §4: "530 Must issue a
    /// STARTTLS command first" for everything else).
    pub fn allowed_before_tls(self) -> bool {
        matches!(
            self,
            Verb::Helo
                | Verb::Ehlo
                | Verb::Lhlo
                | Verb::StartTls
                | Verb::Noop
                | Verb::Rset
                | Verb::Quit
                | Verb::Help
        )
    }

    /// Allowed on a listener that demands AUTH before mail (submission).
    pub fn allowed_before_auth(self) -> bool {
        self.allowed_before_tls() || matches!(self, Verb::Auth)
    }

    /// The client must wait for this command's reply before sending more (RFC 2920 §3.1: EHLO,
    /// DATA, VRFY, EXPN, TURN, QUIT, NOOP end a group; so do STARTTLS and AUTH, which change the
    /// session, and BDAT LAST / DATA which hand over the message).
    pub fn ends_pipelining_group(self) -> bool {
        matches!(
            self,
            Verb::Helo
                | Verb::Ehlo
                | Verb::Lhlo
                | Verb::Data
                | Verb::Vrfy
                | Verb::Expn
                | Verb::Quit
                | Verb::Noop
                | Verb::StartTls
                | Verb::Auth
                | Verb::Help
        )
    }

    /// Whether a rejection of this command counts toward the session's error limit (Postfix's
    /// `smtpd_hard_error_limit`); QUIT and NOOP never fail, RSET cannot be abused.
    pub fn counts_errors(self) -> bool {
        !matches!(self, Verb::Quit | Verb::Noop | Verb::Rset)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// HELO/EHLO/LHLO with the client's name (syntax checked only as "one printable token").
    Hello {
        verb: Verb,
        name: String,
    },
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt {
        to: ForwardPath,
        params: RcptParams,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help,
    StartTls,
    Auth {
        mechanism: String,
        /// The initial response as sent (base64 or `=`), not decoded here.
        initial: Option<String>,
    },
}

impl Command {
    pub fn verb(&self) -> Verb {
        match self {
            Command::Hello { verb, .. } => *verb,
            Command::Mail { .. } => Verb::Mail,
            Command::Rcpt { .. } => Verb::Rcpt,
            Command::Data => Verb::Data,
            Command::Bdat { .. } => Verb::Bdat,
            Command::Rset => Verb::Rset,
            Command::Noop => Verb::Noop,
            Command::Quit => Verb::Quit,
            Command::Vrfy(_) => Verb::Vrfy,
            Command::Expn(_) => Verb::Expn,
            Command::Help => Verb::Help,
            Command::StartTls => Verb::StartTls,
            Command::Auth { .. } => Verb::Auth,
        }
    }
}

/// Why a command line did not parse. [`CommandError::reply`] is the one place that maps these to
/// reply codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Not a verb we know (500 5.5.2).
    Unrecognized,
    /// Bytes that are neither ASCII nor UTF-8, or control characters (500 5.5.2).
    BadCharacters,
    /// Known verb, bad arguments (501 5.5.4) — the text says what was expected.
    Syntax(Verb, &'static str),
    Address(Verb, AddressError),
    Param(Verb, ParamError),
    /// A BDAT whose size we cannot read: the chunk boundary is lost, the session must end.
    BdatSyntax,
}

impl CommandError {
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unrecognized | CommandError::BadCharacters => {
                Reply::with_status(500, (5, 5, 2), "Error: command not recognized")
            }
            CommandError::Syntax(_, usage) => {
                Reply::with_status(501, (5, 5, 4), format!("Syntax: {usage}"))
            }
            CommandError::Address(_, AddressError::NeedsSmtpUtf8) => Reply::with_status(
                553,
                (5, 6, 7),
                "Must declare SMTPUTF8 to send unicode address",
            ),
            CommandError::Address(verb, e) => Reply::with_status(
                501,
                (5, 1, if *verb == Verb::Mail { 7 } else { 3 }),
                format!("Bad {} address syntax: {e}", address_role(*verb)),
            ),
            CommandError::Param(_, e @ ParamError::Unsupported(_)) => {
                Reply::with_status(555, (5, 5, 4), e.to_string())
            }
            CommandError::Param(_, e) => Reply::with_status(501, (5, 5, 4), e.to_string()),
            CommandError::BdatSyntax => {
                Reply::with_status(501, (5, 5, 4), "Syntax: BDAT count [LAST]")
            }
        }
    }
}

fn address_role(verb: Verb) -> &'static str {
    if verb == Verb::Mail {
        "sender"
    } else {
        "recipient"
    }
}

/// `root` → `root@DOMAIN` when a domain is given; anything with an `@`, a quoted local part,
/// `Postmaster` and the null path unchanged.
fn qualify<'a>(path: &'a str, domain: Option<&str>) -> std::borrow::Cow<'a, str> {
    match domain {
        Some(d)
            if !path.is_empty()
                && !path.contains(['@', '"'])
                && !path.eq_ignore_ascii_case("postmaster") =>
        {
            std::borrow::Cow::Owned(format!("{path}@{d}"))
        }
        _ => std::borrow::Cow::Borrowed(path),
    }
}

/// Parses one command line (without its line ending). Non-ASCII bytes must be UTF-8; whether a
/// non-ASCII address is allowed depends on SMTPUTF8 on MAIL (`utf8_txn` for RCPT, which the
/// session knows).
pub fn parse_command(line: &[u8], utf8_txn: bool) -> Result<Command, CommandError> {
    parse_command_with(line, utf8_txn, None)
}

/// [`parse_command`], where a MAIL or RCPT address without a domain (`<root>`) gets
/// `bare_domain` when it is set (Postfix's append_at_myorigin, for trusted local clients).
pub fn parse_command_with(
    line: &[u8],
    utf8_txn: bool,
    bare_domain: Option<&str>,
) -> Result<Command, CommandError> {
    let line = std::str::from_utf8(line).map_err(|_| CommandError::BadCharacters)?;
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(CommandError::BadCharacters);
    }
    let (verb_text, arg) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = Verb::from_bytes(verb_text.as_bytes()).ok_or(CommandError::Unrecognized)?;
    let arg_trim = arg.trim_matches([' ', '\t']);
    let no_arg = |usage| {
        if arg_trim.is_empty() {
            Ok(())
        } else {
            Err(CommandError::Syntax(verb, usage))
        }
    };
    Ok(match verb {
        Verb::Helo | Verb::Ehlo | Verb::Lhlo => {
            let usage = match verb {
                Verb::Helo => "HELO hostname",
                Verb::Ehlo => "EHLO hostname",
                _ => "LHLO hostname",
            };
            // RFC 5321 allows exactly one argument; clients sending "EHLO a b" exist, and Postfix
            // takes the first word, so do we.
            let name = arg_trim.split([' ', '\t']).next().unwrap_or_default();
            if name.is_empty() || name.len() > 255 {
                return Err(CommandError::Syntax(verb, usage));
            }
            Command::Hello {
                verb,
                name: name.to_owned(),
            }
        }
        Verb::Mail => {
            let rest = strip_keyword(arg, "FROM:")
                .ok_or(CommandError::Syntax(verb, "MAIL FROM:<address>"))?;
            let (path, params) = split_path(rest).map_err(|e| CommandError::Address(verb, e))?;
            let params = MailParams::parse(params).map_err(|e| CommandError::Param(verb, e))?;
            let path = qualify(path, bare_domain);
            let from = parse_reverse_path(&path, params.smtputf8)
                .map_err(|e| CommandError::Address(verb, e))?;
            Command::Mail { from, params }
        }
        Verb::Rcpt => {
            let rest =
                strip_keyword(arg, "TO:").ok_or(CommandError::Syntax(verb, "RCPT TO:<address>"))?;
            let (path, params) = split_path(rest).map_err(|e| CommandError::Address(verb, e))?;
            let params = RcptParams::parse(params).map_err(|e| CommandError::Param(verb, e))?;
            let path = qualify(path, bare_domain);
            let to =
                parse_forward_path(&path, utf8_txn).map_err(|e| CommandError::Address(verb, e))?;
            Command::Rcpt { to, params }
        }
        Verb::Data => {
            no_arg("DATA")?;
            Command::Data
        }
        Verb::Bdat => {
            let mut words = arg_trim.split(' ').filter(|w| !w.is_empty());
            let size = words
                .next()
                .filter(|w| w.len() <= 19 && w.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|w| w.parse::<u64>().ok())
                .ok_or(CommandError::BdatSyntax)?;
            let last = match words.next() {
                None => false,
                Some(w) if w.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(CommandError::BdatSyntax),
            };
            if words.next().is_some() {
                return Err(CommandError::BdatSyntax);
            }
            Command::Bdat { size, last }
        }
        Verb::Rset => {
            no_arg("RSET")?;
            Command::Rset
        }
        // NOOP may carry a string (RFC 5321 §4.1.1.9), which is ignored.
        Verb::Noop => Command::Noop,
        Verb::Quit => {
            no_arg("QUIT")?;
            Command::Quit
        }
        Verb::Vrfy | Verb::Expn => {
            if arg_trim.is_empty() {
                return Err(CommandError::Syntax(
                    verb,
                    if verb == Verb::Vrfy {
                        "VRFY address"
                    } else {
                        "EXPN mailing-list"
                    },
                ));
            }
            if verb == Verb::Vrfy {
                Command::Vrfy(arg_trim.to_owned())
            } else {
                Command::Expn(arg_trim.to_owned())
            }
        }
        Verb::Help => Command::Help,
        Verb::StartTls => {
            no_arg("STARTTLS")?;
            Command::StartTls
        }
        Verb::Auth => {
            let mut words = arg_trim.split(' ').filter(|w| !w.is_empty());
            let mechanism = words
                .next()
                .filter(|m| {
                    m.len() <= 20
                        && m.bytes()
                            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
                })
                .ok_or(CommandError::Syntax(
                    verb,
                    "AUTH mechanism [initial-response]",
                ))?
                .to_ascii_uppercase();
            let initial = words.next().map(str::to_owned);
            if words.next().is_some() {
                return Err(CommandError::Syntax(
                    verb,
                    "AUTH mechanism [initial-response]",
                ));
            }
            Command::Auth { mechanism, initial }
        }
    })
}

/// Strips a case-insensitive keyword like `FROM:` (tolerating spaces before it, as Postfix does).
fn strip_keyword<'a>(arg: &'a str, kw: &str) -> Option<&'a str> {
    let arg = arg.trim_start_matches(' ');
    let head = arg.get(..kw.len())?;
    head.eq_ignore_ascii_case(kw).then(|| &arg[kw.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Body;

    fn p(s: &str) -> Result<Command, CommandError> {
        parse_command(s.as_bytes(), false)
    }

    #[test]
    fn commands() {
        assert_eq!(
            p("lhlo mx.example").unwrap(),
            Command::Hello {
                verb: Verb::Lhlo,
                name: "mx.example".into()
            }
        );
        assert!(matches!(
            p("LHLO"),
            Err(CommandError::Syntax(Verb::Lhlo, _))
        ));
        let Command::Mail { from, params } = p("MAIL FROM:<a@b.c> BODY=8BITMIME").unwrap() else {
            panic!()
        };
        assert_eq!(from.to_string(), "a@b.c");
        assert_eq!(params.body, Some(Body::EightBitMime));
        assert!(matches!(
            p("MAIL FROM:<>").unwrap(),
            Command::Mail {
                from: ReversePath::Null,
                ..
            }
        ));
        assert!(matches!(p("MAIL TO:<a@b>"), Err(CommandError::Syntax(..))));
        assert!(matches!(p("RCPT TO:<>"), Err(CommandError::Address(..))));
        assert!(matches!(
            p("RCPT TO:<a@b> FOO=1"),
            Err(CommandError::Param(..))
        ));
        assert_eq!(
            p("BDAT 10 LAST").unwrap(),
            Command::Bdat {
                size: 10,
                last: true
            }
        );
        assert_eq!(p("BDAT x").unwrap_err(), CommandError::BdatSyntax);
        assert_eq!(p("XYZZY").unwrap_err(), CommandError::Unrecognized);
        assert_eq!(p("DATA\0").unwrap_err(), CommandError::BadCharacters);
        assert!(matches!(p("DATA x"), Err(CommandError::Syntax(..))));
        assert_eq!(
            p("AUTH plain AGZvbwBiYXI=").unwrap(),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGZvbwBiYXI=".into())
            }
        );
        // SMTPUTF8 on MAIL enables a UTF-8 sender; RCPT learns it from the session.
        assert!(p("MAIL FROM:<δ@x.example> SMTPUTF8").is_ok());
        assert_eq!(p("RCPT TO:<δ@x.example>").unwrap_err().reply().code(), 553);
        assert!(parse_command("RCPT TO:<δ@x.example>".as_bytes(), true).is_ok());
        // Bare names: refused, unless a domain is given for them (the mta's local socket).
        assert!(parse_command(b"RCPT TO:<root>", false).is_err());
        let d = Some("example.org");
        match parse_command_with(b"RCPT TO:<root>", false, d) {
            Ok(Command::Rcpt { to, .. }) => assert_eq!(to.to_string(), "root@example.org"),
            other => panic!("{other:?}"),
        }
        match parse_command_with(b"MAIL FROM:<cron>", false, d) {
            Ok(Command::Mail { from, .. }) => assert_eq!(from.to_string(), "cron@example.org"),
            other => panic!("{other:?}"),
        }
        for kept in [
            "RCPT TO:<Postmaster>",
            "MAIL FROM:<>",
            "RCPT TO:<a@b.example>",
        ] {
            let c = parse_command_with(kept.as_bytes(), false, d).unwrap();
            assert_eq!(c, parse_command(kept.as_bytes(), false).unwrap(), "{kept}");
        }
    }
}
