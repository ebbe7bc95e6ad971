//! In-process replay of a session for transcript tests, the proptest and the fuzz target: the
//! [`Session`] driven by canned answers instead of sockets. The auth answers come from a small
//! PLAIN/LOGIN verifier over fixed credentials and the maildrop is a fixed list of messages, so
//! the state machine is exercised end to end without I/O. Not used by the daemon.

use crate::message::wire_size;
use crate::session::{
    Action, AuthAnswer, ConnFacts, MaildropEntry, Session, SessionConfig, StoreError,
};
use pochta_auth_proto::{MechFlag, Mechanism, Secret};

/// The password every canned user has.
pub const PASSWORD: &[u8] = b"secret";
/// Users that exist; `broken` logs in but its maildrop cannot be opened.
pub const USERS: [&str; 3] = ["alice", "bob", "broken"];
/// A user whose logins fail temporarily (auth backend down).
pub const TEMPFAIL_USER: &str = "tempfail";

/// The canned maildrop.
pub fn messages() -> Vec<Vec<u8>> {
    vec![
        b"Subject: one\n\nhello\n.dot line\n..two dots\n".to_vec(),
        b"Subject: two\r\n\r\nbody\r\n".to_vec(),
        b"Subject: three\nX: y\n\nl1\nl2\nl3\n".to_vec(),
    ]
}

/// PLAIN and LOGIN with Dovecot's flags.
pub fn mechanisms() -> Vec<Mechanism> {
    vec![
        Mechanism::new("PLAIN", &[MechFlag::Plaintext]),
        Mechanism::new("LOGIN", &[MechFlag::Plaintext]),
        Mechanism::new("CRAM-MD5", &[MechFlag::Dictionary, MechFlag::Active]),
    ]
}

enum Sasl {
    Idle,
    /// PLAIN without initial response: the next response is the PLAIN message.
    Plain,
    LoginUser,
    LoginPass(Vec<u8>),
    /// CRAM-MD5 is advertised but the canned verifier fails it.
    Cram,
}

/// A session with canned answers.
pub struct Replay {
    pub session: Session,
    messages: Vec<Vec<u8>>,
    sasl: Sasl,
    input: Vec<u8>,
    output: Vec<u8>,
    closed: bool,
}

fn verdict(user: &[u8], pass: &[u8]) -> AuthAnswer {
    if user == TEMPFAIL_USER.as_bytes() {
        return AuthAnswer::TempFailure;
    }
    match USERS.iter().find(|u| u.as_bytes() == user) {
        Some(u) if pass == PASSWORD => AuthAnswer::Success {
            user: (*u).to_owned(),
        },
        _ => AuthAnswer::Failure,
    }
}

fn plain(msg: &[u8]) -> AuthAnswer {
    let parts: Vec<&[u8]> = msg.split(|&b| b == 0).collect();
    match parts.as_slice() {
        [_authz, user, pass] => verdict(user, pass),
        _ => AuthAnswer::Failure,
    }
}

impl Replay {
    pub fn new(config: SessionConfig, facts: ConnFacts) -> Self {
        Replay {
            session: Session::new(config, facts, mechanisms()),
            messages: messages(),
            sasl: Sasl::Idle,
            input: Vec::new(),
            output: Vec::new(),
            closed: false,
        }
    }

    /// True once the session closed the connection.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Output so far (markers `<starttls>`, `<update …>`, `<close>` on their own lines).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    fn entries(&self) -> Vec<MaildropEntry> {
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| MaildropEntry {
                size: wire_size(m),
                uidl: format!("{:08x}{:08x}", i + 1, 1_700_000_000u32),
            })
            .collect()
    }

    fn sasl_start(&mut self, mechanism: &str, ir: Option<Secret<Vec<u8>>>) -> AuthAnswer {
        match (mechanism, ir) {
            ("PLAIN", Some(ir)) => plain(ir.expose()),
            ("PLAIN", None) => {
                self.sasl = Sasl::Plain;
                AuthAnswer::Challenge(Secret::new(Vec::new()))
            }
            ("LOGIN", None) => {
                self.sasl = Sasl::LoginUser;
                AuthAnswer::Challenge(Secret::new(b"Username:".to_vec()))
            }
            ("LOGIN", Some(user)) => {
                self.sasl = Sasl::LoginPass(user.into_inner());
                AuthAnswer::Challenge(Secret::new(b"Password:".to_vec()))
            }
            ("CRAM-MD5", _) => {
                self.sasl = Sasl::Cram;
                AuthAnswer::Challenge(Secret::new(b"<1.2@pochta.test>".to_vec()))
            }
            _ => AuthAnswer::Failure,
        }
    }

    fn sasl_continue(&mut self, data: &[u8]) -> AuthAnswer {
        match std::mem::replace(&mut self.sasl, Sasl::Idle) {
            Sasl::Plain => plain(data),
            Sasl::LoginUser => {
                self.sasl = Sasl::LoginPass(data.to_vec());
                AuthAnswer::Challenge(Secret::new(b"Password:".to_vec()))
            }
            Sasl::LoginPass(user) => verdict(&user, data),
            Sasl::Cram | Sasl::Idle => AuthAnswer::Failure,
        }
    }

    /// Feeds `data` and runs the session until it needs more input or closes.
    pub fn input(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
        while !self.closed {
            match self.session.next_action() {
                Action::Write(b) => self.output.extend_from_slice(&b),
                Action::NeedInput => {
                    let n = self.session.feed(&self.input);
                    if n == 0 {
                        return;
                    }
                    self.input.drain(..n);
                }
                Action::StartTls => {
                    // What Connection::starttls does: plaintext after STLS is discarded.
                    self.input.clear();
                    self.output.extend_from_slice(b"<starttls>\r\n");
                    self.session.tls_started();
                }
                Action::AuthStart {
                    mechanism,
                    initial_response,
                } => {
                    let a = self.sasl_start(&mechanism, initial_response);
                    self.session.auth_answer(a);
                }
                Action::AuthContinue(data) => {
                    let a = self.sasl_continue(data.expose());
                    self.session.auth_answer(a);
                }
                Action::AuthAbort => self.sasl = Sasl::Idle,
                Action::OpenMaildrop { user } => {
                    let r = if user == "broken" {
                        Err(StoreError::Temporary)
                    } else {
                        Ok(self.entries())
                    };
                    self.session.maildrop_opened(r);
                }
                Action::Fetch { index, .. } => {
                    let r = self.messages.get(index).cloned().ok_or(StoreError::Gone);
                    self.session.fetched(r);
                }
                Action::Update { delete, seen } => {
                    let list = |v: &[usize]| {
                        v.iter()
                            .map(|i| (i + 1).to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    let marker =
                        format!("<update delete={} seen={}>\r\n", list(&delete), list(&seen));
                    self.output.extend_from_slice(marker.as_bytes());
                    self.session.updated(Ok(!delete.is_empty()));
                }
                Action::Close => {
                    self.output.extend_from_slice(b"<close>\r\n");
                    self.closed = true;
                }
            }
        }
    }
}
