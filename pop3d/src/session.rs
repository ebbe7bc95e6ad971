//! The sans-I/O POP3 session: bytes in ([`Session::feed`]), actions out ([`Session::next_action`]).
//! Whatever needs I/O — a SASL step, opening the maildrop, reading a message, the UPDATE state's
//! deletions, the TLS handshake — comes out as an [`Action`] the async driver performs and
//! answers ([`Session::auth_answer`], [`Session::maildrop_opened`], [`Session::fetched`],
//! [`Session::updated`], [`Session::tls_started`]).
//!
//! States (RFC 1939 §3): AUTHORIZATION (USER/PASS, AUTH, STLS, CAPA), TRANSACTION (the maildrop
//! snapshot taken at login), UPDATE (only reached by QUIT: deletions and \Seen are applied there,
//! a dropped connection deletes nothing). Replies follow Dovecot's texts so scripts written for
//! it keep working.

use crate::command::{Allowed, Command, MsgArg, ParseError};
use crate::message::Encoder;
use pochta_auth_proto::{base64_decode, base64_encode, MechFlag, Mechanism, Secret};
use std::collections::VecDeque;

/// Longest line of a SASL exchange (RFC 5034 allows responses beyond the 255-octet command
/// limit; Dovecot's auth protocol caps a line at 16 KiB).
pub const MAX_SASL_LINE: usize = 16 * 1024;

/// Protocol settings of a session (from the `[pop3]` config table).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Text after `+OK ` in the greeting.
    pub greeting: String,
    /// CAPA `IMPLEMENTATION` value; empty = not advertised.
    pub implementation: String,
    /// Longest command line in octets, CRLF included.
    pub max_line: usize,
    /// Unknown or malformed commands before the session is closed.
    pub max_bad_commands: u32,
    /// Failed logins before the session is closed.
    pub max_auth_failures: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            greeting: "pochta ready.".into(),
            implementation: "pochta".into(),
            max_line: 1024,
            max_bad_commands: 10,
            max_auth_failures: 3,
        }
    }
}

/// Facts about the connection that decide what may be offered.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnFacts {
    /// TLS is active (implicit TLS listener, or after STLS).
    pub tls: bool,
    /// STLS can be offered (a certificate is configured and TLS is not active).
    pub starttls: bool,
    /// The client is in a trusted network: plaintext logins allowed without TLS.
    pub trusted: bool,
}

/// One message of the maildrop as the session needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildropEntry {
    /// Octets RETR sends (CRLF line ends, before dot-stuffing): LIST/STAT size.
    pub size: u64,
    /// UIDL value.
    pub uidl: String,
}

/// What the driver must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the client.
    Write(Vec<u8>),
    /// Feed more input ([`Session::feed`]).
    NeedInput,
    /// Upgrade to TLS (the `+OK` was in an earlier `Write`; send pending output first), discard
    /// plaintext the client sent after STLS, then call [`Session::tls_started`].
    StartTls,
    /// Start a SASL exchange; answer with [`Session::auth_answer`].
    AuthStart {
        mechanism: String,
        initial_response: Option<Secret<Vec<u8>>>,
    },
    /// The client's answer to the last challenge; answer with [`Session::auth_answer`].
    AuthContinue(Secret<Vec<u8>>),
    /// The client cancelled the exchange (or sent garbage): drop it. No answer.
    AuthAbort,
    /// Logged in as `user`: take the maildrop snapshot; answer [`Session::maildrop_opened`].
    OpenMaildrop { user: String },
    /// Read message `index` (0-based in the snapshot); answer [`Session::fetched`].
    Fetch {
        index: usize,
        /// `None` = RETR, `Some(n)` = TOP with n body lines.
        body_lines: Option<u64>,
    },
    /// UPDATE state: expunge `delete`, set \Seen on `seen` (0-based); answer
    /// [`Session::updated`].
    Update {
        delete: Vec<usize>,
        seen: Vec<usize>,
    },
    /// Send pending output, then close the connection.
    Close,
}

/// The auth server's verdict on one step.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthAnswer {
    Challenge(Secret<Vec<u8>>),
    Success {
        user: String,
    },
    /// Wrong credentials (the auth server already delayed this answer).
    Failure,
    /// The auth server could not decide (down, backend failure).
    TempFailure,
}

/// Why the maildrop or a message could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The message is gone (expunged by another session).
    Gone,
    /// Storage failure: try again later.
    Temporary,
}

#[derive(Debug)]
enum Line {
    Complete(Vec<u8>),
    TooLong,
}

#[derive(Debug)]
struct Maildrop {
    entries: Vec<MaildropEntry>,
    deleted: Vec<bool>,
    retrieved: Vec<bool>,
}

#[derive(Debug)]
enum State {
    Authorization {
        user: Option<String>,
    },
    /// Inside AUTH: the next line is a SASL response.
    Sasl,
    Transaction(Maildrop),
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    /// `plain_login`: started by USER/PASS (a challenge is then a protocol error).
    Auth {
        plain_login: bool,
    },
    Maildrop,
    Fetch {
        index: usize,
        body_lines: Option<u64>,
    },
    Update,
}

/// One POP3 session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    facts: ConnFacts,
    mechanisms: Vec<Mechanism>,
    state: State,
    pending: Pending,
    /// Bytes of the line being read (at most the line limit).
    partial: Vec<u8>,
    /// The current line passed the limit: drop bytes up to its LF.
    overflow: bool,
    ready: Option<Line>,
    out: Vec<u8>,
    actions: VecDeque<Action>,
    bad_commands: u32,
    auth_failures: u32,
}

const PLAINTEXT_REFUSED: &str =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";
const INTERNAL_ERROR: &str =
    "-ERR [SYS/TEMP] Internal error occurred. Refer to server log for more information.";

impl Session {
    /// A new session; the greeting is the first output. `mechanisms`: the auth server's public
    /// mechanisms (filtered per connection here).
    pub fn new(config: SessionConfig, facts: ConnFacts, mechanisms: Vec<Mechanism>) -> Self {
        let mut s = Session {
            config,
            facts,
            mechanisms,
            state: State::Authorization { user: None },
            pending: Pending::None,
            partial: Vec::new(),
            overflow: false,
            ready: None,
            out: Vec::new(),
            actions: VecDeque::new(),
            bad_commands: 0,
            auth_failures: 0,
        };
        let greeting = format!("+OK {}", s.config.greeting);
        s.reply(&greeting);
        s
    }

    /// Plaintext credentials may be used: TLS is active or the client is trusted.
    pub fn plaintext_allowed(&self) -> bool {
        self.facts.tls || self.facts.trusted
    }

    /// True once the session is in the TRANSACTION state.
    pub fn logged_in(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    fn line_limit(&self) -> usize {
        match self.state {
            State::Sasl => MAX_SASL_LINE,
            _ => self.config.max_line,
        }
    }

    /// Takes input up to and including the first LF; returns how many bytes of `data` were
    /// used. Takes nothing while a line is waiting to be processed or an answer is pending, so
    /// pipelined commands stay in the driver's buffer (and STLS can discard them).
    pub fn feed(&mut self, data: &[u8]) -> usize {
        if self.ready.is_some()
            || self.pending != Pending::None
            || matches!(self.state, State::Closed)
        {
            return 0;
        }
        let (chunk, complete) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (&data[..=i], true),
            None => (data, false),
        };
        if !self.overflow {
            if self.partial.len() + chunk.len() > self.line_limit() {
                self.overflow = true;
                self.partial = Vec::new();
            } else {
                self.partial.extend_from_slice(chunk);
            }
        }
        if complete {
            let line = if self.overflow {
                self.overflow = false;
                Line::TooLong
            } else {
                let mut l = std::mem::take(&mut self.partial);
                l.pop();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                Line::Complete(l)
            };
            self.ready = Some(line);
        }
        chunk.len()
    }

    /// The next thing to do.
    pub fn next_action(&mut self) -> Action {
        loop {
            if let Some(a) = self.actions.pop_front() {
                return a;
            }
            if matches!(self.state, State::Closed) {
                if !self.out.is_empty() {
                    return Action::Write(std::mem::take(&mut self.out));
                }
                return Action::Close;
            }
            if self.pending == Pending::None {
                if let Some(line) = self.ready.take() {
                    self.process(line);
                    continue;
                }
            }
            if !self.out.is_empty() {
                return Action::Write(std::mem::take(&mut self.out));
            }
            return Action::NeedInput;
        }
    }

    fn reply(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Queues an action after the output so far.
    fn action(&mut self, a: Action) {
        if !self.out.is_empty() {
            self.actions
                .push_back(Action::Write(std::mem::take(&mut self.out)));
        }
        self.actions.push_back(a);
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.ready = None;
    }

    fn bad_command(&mut self, reply: &str) {
        self.bad_commands += 1;
        if self.bad_commands >= self.config.max_bad_commands {
            self.reply("-ERR Too many bad commands.");
            self.close();
        } else {
            self.reply(reply);
        }
    }

    fn process(&mut self, line: Line) {
        if matches!(self.state, State::Sasl) {
            return self.sasl_line(line);
        }
        let line = match line {
            Line::Complete(l) => l,
            Line::TooLong => return self.bad_command("-ERR Input line too long."),
        };
        let cmd = match Command::parse(&line) {
            Ok(c) => c,
            Err(ParseError::Empty) => return self.bad_command("-ERR Unknown command: "),
            Err(ParseError::Unknown(v)) => {
                let v = v.replace(|c: char| c.is_control(), "?");
                return self.bad_command(&format!("-ERR Unknown command: {v}"));
            }
            Err(ParseError::BadArguments(why)) => return self.bad_command(&format!("-ERR {why}")),
        };
        let in_auth = matches!(self.state, State::Authorization { .. });
        let ok = match cmd.allowed() {
            Allowed::Both => true,
            Allowed::Authorization => in_auth,
            Allowed::Transaction => !in_auth,
        };
        if !ok {
            let msg = format!("-ERR Unknown command: {}", cmd.verb());
            return self.bad_command(&msg);
        }
        match cmd {
            Command::Capa => self.capa(),
            Command::Quit => self.quit(),
            Command::Noop => self.reply("+OK"),
            Command::Stls => self.stls(),
            Command::User(name) => {
                if !self.plaintext_allowed() {
                    self.auth_failed_reply(PLAINTEXT_REFUSED);
                } else {
                    self.state = State::Authorization { user: Some(name) };
                    self.reply("+OK");
                }
            }
            Command::Pass(pass) => self.pass(pass),
            Command::Apop => self.bad_command("-ERR [AUTH] APOP is not supported."),
            Command::AuthList => {
                let mut text = String::from("+OK\r\n");
                for m in self.offered() {
                    text.push_str(&m.name);
                    text.push_str("\r\n");
                }
                text.push('.');
                self.reply(&text);
            }
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Command::Stat
            | Command::List(_)
            | Command::Uidl(_)
            | Command::Retr(_)
            | Command::Top(..)
            | Command::Dele(_)
            | Command::Rset => self.transaction(cmd),
        }
    }

    /// Mechanisms to show: public ones, plaintext ones only when plaintext is allowed.
    fn offered(&self) -> Vec<&Mechanism> {
        let plain_ok = self.plaintext_allowed();
        self.mechanisms
            .iter()
            .filter(|m| !m.flags.contains(MechFlag::Private))
            .filter(|m| plain_ok || !m.flags.contains(MechFlag::Plaintext))
            .collect()
    }

    fn capa(&mut self) {
        let mut lines = vec!["+OK".to_owned(), "CAPA".into(), "TOP".into(), "UIDL".into()];
        lines.extend(["RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"].map(String::from));
        if matches!(self.state, State::Authorization { .. }) {
            if self.facts.starttls && !self.facts.tls {
                lines.push("STLS".into());
            }
            if self.plaintext_allowed() {
                lines.push("USER".into());
            }
            let mechs: Vec<&str> = self.offered().iter().map(|m| m.name.as_str()).collect();
            if !mechs.is_empty() {
                lines.push(format!("SASL {}", mechs.join(" ")));
            }
        }
        if !self.config.implementation.is_empty() {
            lines.push(format!("IMPLEMENTATION {}", self.config.implementation));
        }
        lines.push(".".into());
        let text = lines.join("\r\n");
        self.reply(&text);
    }

    fn stls(&mut self) {
        if self.facts.tls {
            return self.bad_command("-ERR TLS is already active.");
        }
        if !self.facts.starttls {
            return self.bad_command("-ERR TLS support isn't enabled.");
        }
        self.reply("+OK Begin TLS negotiation now.");
        // Forget USER given in plaintext: the TLS session starts clean (RFC 2595 §4).
        self.state = State::Authorization { user: None };
        self.action(Action::StartTls);
    }

    /// The TLS handshake after STLS succeeded.
    pub fn tls_started(&mut self) {
        self.facts.tls = true;
        self.facts.starttls = false;
        self.partial.clear();
        self.overflow = false;
        self.ready = None;
    }

    fn auth_failed_reply(&mut self, text: &str) {
        self.auth_failures += 1;
        self.reply(text);
        if self.auth_failures >= self.config.max_auth_failures {
            self.close();
        }
    }

    fn pass(&mut self, pass: Secret<Vec<u8>>) {
        let State::Authorization { user } = &mut self.state else {
            return;
        };
        let Some(user) = user.take() else {
            return self.bad_command("-ERR No username given.");
        };
        if !self.plaintext_allowed() {
            return self.auth_failed_reply(PLAINTEXT_REFUSED);
        }
        // USER/PASS is relayed as SASL PLAIN, as Dovecot's pop3-login does.
        let mut ir = Vec::with_capacity(user.len() + pass.expose().len() + 2);
        ir.push(0);
        ir.extend_from_slice(user.as_bytes());
        ir.push(0);
        ir.extend_from_slice(pass.expose());
        self.pending = Pending::Auth { plain_login: true };
        self.action(Action::AuthStart {
            mechanism: "PLAIN".into(),
            initial_response: Some(Secret::new(ir)),
        });
    }

    fn auth(&mut self, mechanism: String, initial_response: Option<String>) {
        let Some(mech) = self.mechanisms.iter().find(|m| m.matches(&mechanism)) else {
            return self.bad_command("-ERR Unsupported authentication mechanism.");
        };
        if mech.flags.contains(MechFlag::Plaintext) && !self.plaintext_allowed() {
            return self.auth_failed_reply(PLAINTEXT_REFUSED);
        }
        let name = mech.name.clone();
        let ir = match initial_response.as_deref() {
            None => None,
            Some("=") => Some(Secret::new(Vec::new())),
            Some(b64) => match base64_decode(b64) {
                Some(v) => Some(Secret::new(v)),
                None => return self.bad_command("-ERR Invalid base64 data in initial response."),
            },
        };
        self.state = State::Authorization { user: None };
        self.pending = Pending::Auth { plain_login: false };
        self.action(Action::AuthStart {
            mechanism: name,
            initial_response: ir,
        });
    }

    fn sasl_line(&mut self, line: Line) {
        self.state = State::Authorization { user: None };
        let line = match line {
            Line::Complete(l) => l,
            Line::TooLong => {
                self.action(Action::AuthAbort);
                return self.auth_failed_reply("-ERR [AUTH] Authentication failed.");
            }
        };
        if line == b"*" {
            self.action(Action::AuthAbort);
            return self.reply("-ERR Authentication cancelled.");
        }
        let text = String::from_utf8_lossy(&line);
        let Some(data) = base64_decode(text.trim()) else {
            self.action(Action::AuthAbort);
            return self.bad_command("-ERR Invalid base64 data in continued response.");
        };
        self.state = State::Sasl;
        self.pending = Pending::Auth { plain_login: false };
        self.action(Action::AuthContinue(Secret::new(data)));
    }

    /// The auth server's answer to [`Action::AuthStart`] / [`Action::AuthContinue`].
    pub fn auth_answer(&mut self, answer: AuthAnswer) {
        let Pending::Auth { plain_login } = self.pending else {
            return;
        };
        self.pending = Pending::None;
        match answer {
            AuthAnswer::Challenge(c) if !plain_login => {
                self.state = State::Sasl;
                let line = format!("+ {}", base64_encode(c.expose()));
                self.reply(&line);
            }
            AuthAnswer::Challenge(_) => {
                self.state = State::Authorization { user: None };
                self.action(Action::AuthAbort);
                self.auth_failed_reply("-ERR [AUTH] Authentication failed.");
            }
            AuthAnswer::Success { user } => {
                self.state = State::Authorization { user: None };
                self.pending = Pending::Maildrop;
                self.action(Action::OpenMaildrop { user });
            }
            AuthAnswer::Failure => {
                self.state = State::Authorization { user: None };
                self.auth_failed_reply("-ERR [AUTH] Authentication failed.");
            }
            AuthAnswer::TempFailure => {
                self.state = State::Authorization { user: None };
                self.reply("-ERR [SYS/TEMP] Temporary authentication failure.");
            }
        }
    }

    /// The maildrop snapshot for [`Action::OpenMaildrop`].
    pub fn maildrop_opened(&mut self, result: Result<Vec<MaildropEntry>, StoreError>) {
        if self.pending != Pending::Maildrop {
            return;
        }
        self.pending = Pending::None;
        match result {
            Ok(entries) => {
                let n = entries.len();
                self.state = State::Transaction(Maildrop {
                    entries,
                    deleted: vec![false; n],
                    retrieved: vec![false; n],
                });
                self.reply("+OK Logged in.");
            }
            Err(_) => {
                self.reply(INTERNAL_ERROR);
                self.close();
            }
        }
    }

    fn transaction(&mut self, cmd: Command) {
        let State::Transaction(drop) = &mut self.state else {
            return;
        };
        let text = match cmd {
            Command::Stat => {
                let (n, size) = live(drop).fold((0u64, 0u64), |(n, s), i| {
                    (n + 1, s.saturating_add(drop.entries[i].size))
                });
                format!("+OK {n} {size}")
            }
            Command::List(None) | Command::Uidl(None) => {
                let list = matches!(cmd, Command::List(_));
                let mut t = if list {
                    format!("+OK {} messages:\r\n", live(drop).count())
                } else {
                    "+OK\r\n".to_owned()
                };
                for i in live(drop) {
                    let e = &drop.entries[i];
                    if list {
                        t.push_str(&format!("{} {}\r\n", i + 1, e.size));
                    } else {
                        t.push_str(&format!("{} {}\r\n", i + 1, e.uidl));
                    }
                }
                t.push('.');
                t
            }
            Command::List(Some(n)) => match lookup(drop, n) {
                Ok(i) => format!("+OK {} {}", i + 1, drop.entries[i].size),
                Err(e) => e,
            },
            Command::Uidl(Some(n)) => match lookup(drop, n) {
                Ok(i) => format!("+OK {} {}", i + 1, drop.entries[i].uidl),
                Err(e) => e,
            },
            Command::Retr(n) | Command::Top(n, _) => match lookup(drop, n) {
                Ok(index) => {
                    let body_lines = match cmd {
                        Command::Top(_, l) => Some(l),
                        _ => None,
                    };
                    self.pending = Pending::Fetch { index, body_lines };
                    return self.action(Action::Fetch { index, body_lines });
                }
                Err(e) => e,
            },
            Command::Dele(n) => match lookup(drop, n) {
                Ok(i) => {
                    drop.deleted[i] = true;
                    "+OK Marked to be deleted.".to_owned()
                }
                Err(e) => e,
            },
            Command::Rset => {
                drop.deleted.iter_mut().for_each(|d| *d = false);
                "+OK".to_owned()
            }
            _ => return,
        };
        self.reply(&text);
    }

    /// Answers [`Action::Fetch`] when the message is sent in chunks: on `Ok` the status line is
    /// queued (take it with [`Session::take_output`] and write it first) and the encoder for the
    /// stored bytes is returned; the driver pushes the file through it and calls
    /// [`Encoder::finish`]. A read error after that cannot be reported in POP3: close.
    pub fn fetch_begin(&mut self, result: Result<(), StoreError>) -> Option<Encoder> {
        let Pending::Fetch { index, body_lines } = self.pending else {
            return None;
        };
        self.pending = Pending::None;
        let State::Transaction(drop) = &mut self.state else {
            return None;
        };
        match result {
            Ok(()) => {
                // TOP sends no size: its octets are not the message's.
                if body_lines.is_some() {
                    self.out.extend_from_slice(b"+OK\r\n");
                } else {
                    drop.retrieved[index] = true;
                    let size = drop.entries[index].size;
                    self.out
                        .extend_from_slice(format!("+OK {size} octets\r\n").as_bytes());
                }
                Some(Encoder::new(body_lines))
            }
            Err(StoreError::Gone) => {
                self.reply("-ERR Message was expunged by another session.");
                None
            }
            Err(StoreError::Temporary) => {
                self.reply(INTERNAL_ERROR);
                None
            }
        }
    }

    /// Answers [`Action::Fetch`] with the whole message as stored.
    pub fn fetched(&mut self, result: Result<Vec<u8>, StoreError>) {
        match result {
            Ok(data) => {
                if let Some(mut e) = self.fetch_begin(Ok(())) {
                    e.push(&data, &mut self.out);
                    e.finish(&mut self.out);
                }
            }
            Err(e) => {
                let _ = self.fetch_begin(Err(e));
            }
        }
    }

    /// Output queued so far (for a driver that streams a message after its status line).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn quit(&mut self) {
        match &self.state {
            State::Transaction(drop) => {
                let n = drop.entries.len();
                let delete: Vec<usize> = (0..n).filter(|&i| drop.deleted[i]).collect();
                let seen: Vec<usize> = (0..n)
                    .filter(|&i| drop.retrieved[i] && !drop.deleted[i])
                    .collect();
                if delete.is_empty() && seen.is_empty() {
                    self.reply("+OK Logging out.");
                    self.close();
                } else {
                    self.pending = Pending::Update;
                    self.action(Action::Update { delete, seen });
                }
            }
            _ => {
                self.reply("+OK Logging out");
                self.close();
            }
        }
    }

    /// The result of [`Action::Update`]: `Ok(true)` when messages were deleted.
    pub fn updated(&mut self, result: Result<bool, StoreError>) {
        if self.pending != Pending::Update {
            return;
        }
        self.pending = Pending::None;
        match result {
            Ok(true) => self.reply("+OK Logging out, messages deleted."),
            Ok(false) => self.reply("+OK Logging out."),
            Err(_) => self.reply("-ERR [SYS/TEMP] Some deleted messages were not removed."),
        }
        self.close();
    }
}

/// Indexes of messages not marked deleted.
fn live(d: &Maildrop) -> impl Iterator<Item = usize> + '_ {
    (0..d.entries.len()).filter(move |&i| !d.deleted[i])
}

fn lookup(drop: &Maildrop, n: MsgArg) -> Result<usize, String> {
    let i = match usize::try_from(n.0) {
        Ok(i) if i >= 1 && i <= drop.entries.len() => i - 1,
        _ => return Err(format!("-ERR There's no message {}.", n.0)),
    };
    if drop.deleted[i] {
        return Err("-ERR Message is deleted.".to_owned());
    }
    Ok(i)
}
