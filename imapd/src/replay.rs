//! In-process replay of a session for transcript tests, the proptest and the fuzz target: the
//! [`Session`] driven by canned auth answers (PLAIN/LOGIN over fixed credentials) and a real
//! Maildir in a directory the caller gives, with jobs run inline. Not used by the daemon.

use crate::config::ImapSection;
use crate::exec::{Ctx, Store};
use crate::session::{Action, AuthAnswer, ConnFacts, Session};
use pochta_auth_proto::{MechFlag, Mechanism, Secret};
use pochta_mailstore::Maildir;
use std::path::PathBuf;
use std::sync::Arc;

/// The password every canned user has.
pub const PASSWORD: &[u8] = b"secret";
/// Users that exist (each gets `<root>/<user>/Maildir`).
pub const USERS: [&str; 2] = ["alice", "bob"];

/// PLAIN and LOGIN with Dovecot's flags.
pub fn mechanisms() -> Vec<Mechanism> {
    vec![
        Mechanism::new("PLAIN", &[MechFlag::Plaintext]),
        Mechanism::new("LOGIN", &[MechFlag::Plaintext]),
    ]
}

enum Sasl {
    None,
    Plain,
    LoginUser,
    LoginPass(Vec<u8>),
}

/// A session with canned answers.
pub struct Replay {
    pub session: Session,
    root: PathBuf,
    sasl: Sasl,
    input: Vec<u8>,
    pub closed: bool,
    /// The session is idling and waits for input or a change.
    pub idling: bool,
    /// The quota the canned userdb gives (none by default).
    pub quota: Option<pochta_mailstore::QuotaLimit>,
}

fn verdict(user: &[u8], pass: &[u8]) -> AuthAnswer {
    if USERS.iter().any(|u| u.as_bytes() == user) && pass == PASSWORD {
        AuthAnswer::Success {
            user: String::from_utf8_lossy(user).into_owned(),
        }
    } else {
        AuthAnswer::Failure
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
    /// A session on a trusted connection (plaintext logins allowed) with mail under `root`.
    pub fn new(root: PathBuf) -> Replay {
        Replay::with_facts(
            root,
            ConnFacts {
                tls: false,
                starttls: true,
                trusted: true,
            },
        )
    }

    pub fn with_facts(root: PathBuf, facts: ConnFacts) -> Replay {
        let cfg = ImapSection::default().session_config();
        Replay {
            session: Session::new(cfg, facts, mechanisms()),
            root,
            sasl: Sasl::None,
            input: Vec::new(),
            closed: false,
            idling: false,
            quota: None,
        }
    }

    /// The Maildir of a canned user.
    pub fn maildir(&self, user: &str) -> Maildir {
        Maildir::open(self.root.join(user).join("Maildir"))
    }

    /// Feeds `input` and runs the session until it needs more; returns what it wrote.
    pub fn send(&mut self, input: &[u8]) -> Vec<u8> {
        self.input.extend_from_slice(input);
        self.run()
    }

    /// IDLE: tells the session its mailbox changed; returns what it wrote.
    pub fn changed(&mut self) -> Vec<u8> {
        self.session.mailbox_changed();
        self.run()
    }

    fn run(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            if self.closed {
                return out;
            }
            match self.session.next_action() {
                Action::Write(b) => out.extend_from_slice(&b),
                Action::NeedInput | Action::Idle { .. } => {
                    self.idling = self.session.idling();
                    if self.input.is_empty() {
                        return out;
                    }
                    let n = self.session.feed(&self.input);
                    if n == 0 {
                        return out;
                    }
                    self.input.drain(..n);
                }
                Action::StartTls => self.session.tls_started(),
                Action::AuthStart {
                    mechanism,
                    initial_response,
                } => {
                    let ans = match (mechanism.as_str(), initial_response) {
                        ("PLAIN", Some(ir)) => plain(ir.expose()),
                        ("PLAIN", None) => {
                            self.sasl = Sasl::Plain;
                            AuthAnswer::Challenge(Secret::new(Vec::new()))
                        }
                        ("LOGIN", Some(ir)) if !ir.expose().is_empty() => {
                            self.sasl = Sasl::LoginPass(ir.expose().clone());
                            AuthAnswer::Challenge(Secret::new(b"Password:".to_vec()))
                        }
                        ("LOGIN", _) => {
                            self.sasl = Sasl::LoginUser;
                            AuthAnswer::Challenge(Secret::new(b"Username:".to_vec()))
                        }
                        _ => AuthAnswer::Failure,
                    };
                    self.session.auth_answer(ans);
                }
                Action::AuthContinue(data) => {
                    let ans = match std::mem::replace(&mut self.sasl, Sasl::None) {
                        Sasl::Plain => plain(data.expose()),
                        Sasl::LoginUser => {
                            self.sasl = Sasl::LoginPass(data.expose().clone());
                            AuthAnswer::Challenge(Secret::new(b"Password:".to_vec()))
                        }
                        Sasl::LoginPass(user) => verdict(&user, data.expose()),
                        Sasl::None => AuthAnswer::Failure,
                    };
                    self.session.auth_answer(ans);
                }
                Action::AuthAbort => self.sasl = Sasl::None,
                Action::OpenStore { user } => {
                    let md = self.maildir(&user);
                    let special = Arc::new(ImapSection::default().mailboxes);
                    let r = Store::open(md, special, self.quota)
                        .map(Ctx::new)
                        .map_err(|e| e.to_string());
                    self.session.store_opened(&user, r);
                }
                Action::Run(job) => {
                    let done = job.run();
                    self.session.job_done(done);
                }
                Action::Close => {
                    self.closed = true;
                    return out;
                }
            }
        }
    }
}
