//! The sans-I/O IMAP session: bytes in ([`Session::feed`]), actions out
//! ([`Session::next_action`]). States (RFC 9051 §3): not authenticated, authenticated,
//! selected, logout. Whatever needs I/O comes out as an [`Action`]: a SASL step, opening the
//! user's store, the TLS handshake, and every mailbox command as a [`Job`] the driver runs on a
//! blocking thread (the session's store context moves into the job and comes back with
//! [`Session::job_done`], so the mailbox view has one owner at a time).

use crate::exec::{Ctx, Job, JobDone, JobKind};
use pochta_auth_proto::{base64_decode, base64_encode, MechFlag, Mechanism};
use pochta_imap_proto::{parse_command, Command, CommandBody, Frame, Framer, Limits, Oversize};
use std::collections::VecDeque;
use std::path::PathBuf;

type AuthSecret = pochta_auth_proto::Secret<Vec<u8>>;

/// Longest SASL response line (Dovecot's auth protocol caps a line at 16 KiB).
const MAX_SASL_LINE: usize = 16 * 1024;
/// Longest line while idling (`DONE`).
const MAX_IDLE_LINE: usize = 1024;

/// Protocol settings of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub greeting: String,
    pub max_bad_commands: u32,
    pub max_auth_failures: u32,
    /// Framing limits after login.
    pub limits: Limits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            greeting: "pochta ready.".into(),
            max_bad_commands: 20,
            max_auth_failures: 3,
            limits: Limits {
                max_line: 64 * 1024,
                max_literal: 64 << 20,
                max_command: (64 << 20) + 256 * 1024,
                max_nonsync: None,
            },
        }
    }
}

/// Facts about the connection that decide what may be offered.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnFacts {
    pub tls: bool,
    /// STARTTLS can be offered (a certificate is configured, TLS not active).
    pub starttls: bool,
    /// Trusted network: plaintext logins allowed without TLS.
    pub trusted: bool,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Action {
    Write(Vec<u8>),
    /// Feed more input.
    NeedInput,
    /// Flush output, upgrade to TLS, discard buffered plaintext, call [`Session::tls_started`].
    StartTls,
    /// Start a SASL exchange; answer with [`Session::auth_answer`].
    AuthStart {
        mechanism: String,
        initial_response: Option<AuthSecret>,
    },
    AuthContinue(AuthSecret),
    /// Drop the SASL exchange; no answer.
    AuthAbort,
    /// Logged in: look the user up and open the Maildir; answer [`Session::store_opened`].
    OpenStore {
        user: String,
    },
    /// Run on a blocking thread; answer [`Session::job_done`].
    Run(Box<Job>),
    /// IDLE: wait for input ([`Session::feed`]) or a change in these directories
    /// ([`Session::mailbox_changed`]).
    Idle {
        watch: Vec<PathBuf>,
    },
    /// Send pending output, then close.
    Close,
}

/// The auth server's verdict on one step.
#[derive(Debug)]
pub enum AuthAnswer {
    Challenge(AuthSecret),
    Success { user: String },
    Failure,
    TempFailure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotAuthenticated,
    Authenticated,
    Selected,
    Logout,
}

#[derive(Debug)]
enum Mode {
    Command,
    /// In a SASL exchange (reading response lines).
    Sasl {
        tag: String,
    },
    /// Waiting for the driver's answer to an action.
    Waiting,
    Idle {
        tag: String,
    },
}

/// One IMAP session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    facts: ConnFacts,
    mechanisms: Vec<Mechanism>,
    state: State,
    mode: Mode,
    framer: Framer,
    /// Raw line being read (SASL, IDLE).
    line: Vec<u8>,
    line_overflow: bool,
    actions: VecDeque<Action>,
    out: Vec<u8>,
    /// The logged-in user's store and selected mailbox (absent while a job has it).
    ctx: Option<Ctx>,
    bad_commands: u32,
    auth_failures: u32,
    /// Tag of the command waiting for the driver.
    pending_tag: String,
    user: Option<String>,
    /// An IDLE refresh is running (its output goes out untagged).
    idle_refresh: bool,
    /// The running exchange was started by LOGIN (a challenge is then a failure).
    sasl_plain_login: bool,
}

impl Session {
    pub fn new(config: SessionConfig, facts: ConnFacts, mechanisms: Vec<Mechanism>) -> Self {
        let mut s = Session {
            config,
            facts,
            mechanisms,
            state: State::NotAuthenticated,
            mode: Mode::Command,
            framer: Framer::new(Limits::PRE_AUTH),
            line: Vec::new(),
            line_overflow: false,
            actions: VecDeque::new(),
            out: Vec::new(),
            ctx: None,
            bad_commands: 0,
            auth_failures: 0,
            pending_tag: String::new(),
            user: None,
            idle_refresh: false,
            sasl_plain_login: false,
        };
        let greeting = format!(
            "* OK [CAPABILITY {}] {}\r\n",
            s.capabilities(),
            s.config.greeting
        );
        s.out.extend_from_slice(greeting.as_bytes());
        s
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn plaintext_allowed(&self) -> bool {
        self.facts.tls || self.facts.trusted
    }

    /// The CAPABILITY list for the current state.
    pub fn capabilities(&self) -> String {
        let mut c = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "SASL-IR",
            "LITERAL+",
            "ID",
            "ENABLE",
            "IDLE",
        ];
        if self.state == State::NotAuthenticated {
            if self.facts.starttls && !self.facts.tls {
                c.push("STARTTLS");
            }
            if !self.plaintext_allowed() {
                c.push("LOGINDISABLED");
            }
            let mut auth: Vec<String> = Vec::new();
            for m in &self.mechanisms {
                if m.flags.contains(MechFlag::Plaintext) && !self.plaintext_allowed() {
                    continue;
                }
                auth.push(format!("AUTH={}", m.name));
            }
            let mut s = c.join(" ");
            for a in auth {
                s.push(' ');
                s.push_str(&a);
            }
            return s;
        }
        c.extend([
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CHILDREN",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "SPECIAL-USE",
            "ESEARCH",
            "STATUS=SIZE",
            "BINARY",
            "UTF8=ACCEPT",
        ]);
        c.join(" ")
    }

    fn write(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn tagged(&mut self, tag: &str, text: &str) {
        let line = format!("{tag} {text}\r\n");
        self.write(&line);
    }

    fn flush_out(&mut self) {
        if !self.out.is_empty() {
            let o = std::mem::take(&mut self.out);
            self.actions.push_back(Action::Write(o));
        }
    }

    fn close(&mut self) {
        self.state = State::Logout;
        self.flush_out();
        self.actions.push_back(Action::Close);
    }

    /// The next thing to do.
    pub fn next_action(&mut self) -> Action {
        self.flush_out();
        if let Some(a) = self.actions.pop_front() {
            return a;
        }
        match &self.mode {
            Mode::Waiting => {
                // Cannot happen while every action is answered: close rather than spin.
                Action::Close
            }
            _ if self.state == State::Logout => Action::Close,
            _ => Action::NeedInput,
        }
    }

    /// Takes pending output (for the driver's streaming).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Consumes input; returns how many bytes were used (stops after each command).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        match self.mode {
            Mode::Waiting => 0,
            Mode::Sasl { .. } | Mode::Idle { .. } => self.feed_line(input),
            Mode::Command => {
                if self.state == State::Logout {
                    return input.len();
                }
                let (n, frame) = self.framer.push(input);
                match frame {
                    None => {}
                    Some(Frame::Continue(_)) => self.write("+ OK\r\n"),
                    Some(Frame::Rejected { tag, why }) => self.rejected(&tag, why),
                    Some(Frame::Command(bytes)) => match parse_command(&bytes) {
                        Ok(cmd) => self.command(cmd),
                        Err(e) => {
                            let text = if e.bad_charset {
                                "NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset".to_string()
                            } else if e.unknown_command {
                                "BAD Error in IMAP command: Unknown command.".to_string()
                            } else {
                                format!("BAD Error in IMAP command: {}.", e.message)
                            };
                            let tag = e.tag.clone().unwrap_or_else(|| "*".into());
                            self.tagged(&tag, &text);
                            if !e.bad_charset {
                                self.bad_command();
                            }
                        }
                    },
                }
                n
            }
        }
    }

    fn bad_command(&mut self) {
        self.bad_commands += 1;
        if self.bad_commands >= self.config.max_bad_commands {
            self.write("* BYE Too many invalid IMAP commands.\r\n");
            self.close();
        }
    }

    fn rejected(&mut self, tag: &[u8], why: Oversize) {
        let tag = if tag.is_empty() || !tag.iter().all(|b| b.is_ascii_graphic()) {
            "*".to_string()
        } else {
            String::from_utf8_lossy(tag).into_owned()
        };
        let text = match why {
            Oversize::Line => "BAD [TOOBIG] Command line too long.",
            Oversize::Literal | Oversize::Command => "NO [TOOBIG] Literal too big.",
            Oversize::NonSyncLiteral => "BAD [TOOBIG] Non-synchronizing literal over 4096 bytes.",
        };
        self.tagged(&tag, text);
        self.bad_command();
    }

    /// Reads one raw line (SASL response, IDLE's DONE).
    fn feed_line(&mut self, input: &[u8]) -> usize {
        let max = if matches!(self.mode, Mode::Idle { .. }) {
            MAX_IDLE_LINE
        } else {
            MAX_SASL_LINE
        };
        let lf = input.iter().position(|&b| b == b'\n');
        let used = lf.map_or(input.len(), |i| i + 1);
        if !self.line_overflow {
            self.line.extend_from_slice(&input[..used]);
            if self.line.len() > max {
                self.line_overflow = true;
                self.line.clear();
            }
        }
        if lf.is_none() {
            return used;
        }
        let overflow = std::mem::replace(&mut self.line_overflow, false);
        let mut line = std::mem::take(&mut self.line);
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Idle { tag } => {
                if !overflow && line.eq_ignore_ascii_case(b"DONE") {
                    self.tagged(&tag, "OK Idle completed.");
                } else {
                    self.tagged(&tag, "BAD Expected DONE.");
                    self.bad_command();
                }
            }
            Mode::Sasl { tag, .. } => {
                if overflow {
                    self.actions.push_back(Action::AuthAbort);
                    self.tagged(&tag, "BAD Authentication response too long.");
                    self.bad_command();
                } else if line == b"*" {
                    self.actions.push_back(Action::AuthAbort);
                    self.tagged(&tag, "BAD Authentication aborted by client.");
                } else {
                    match base64_decode(&String::from_utf8_lossy(&line)) {
                        Some(data) => {
                            self.mode = Mode::Waiting;
                            self.pending_tag = tag;
                            self.actions.push_back(Action::AuthContinue(
                                pochta_auth_proto::Secret::new(data),
                            ));
                        }
                        None => {
                            self.actions.push_back(Action::AuthAbort);
                            self.tagged(&tag, "BAD Invalid base64 data in continued response.");
                            self.bad_command();
                        }
                    }
                }
            }
            other => self.mode = other,
        }
        used
    }

    fn command(&mut self, cmd: Command) {
        let Command { tag, body } = cmd;
        use CommandBody as C;
        match self.state {
            State::NotAuthenticated if !body.allowed_unauthenticated() => {
                self.tagged(&tag, "BAD Please log in first.");
                return self.bad_command();
            }
            State::Authenticated | State::Selected
                if matches!(body, C::Login { .. } | C::Authenticate { .. } | C::StartTls) =>
            {
                self.tagged(&tag, "BAD Already logged in.");
                return self.bad_command();
            }
            State::Authenticated if body.needs_selected() => {
                self.tagged(&tag, "BAD No mailbox selected.");
                return self.bad_command();
            }
            _ => {}
        }
        match body {
            C::Capability => {
                let caps = format!("* CAPABILITY {}\r\n", self.capabilities());
                self.write(&caps);
                self.tagged(&tag, "OK Capability completed.");
            }
            C::Noop if self.state != State::Selected => {
                self.tagged(&tag, "OK NOOP completed.");
            }
            C::Logout => {
                self.write("* BYE Logging out\r\n");
                self.tagged(&tag, "OK Logout completed.");
                self.close();
            }
            C::StartTls => {
                if self.facts.tls || !self.facts.starttls {
                    self.tagged(&tag, "BAD TLS is already active or not available.");
                    return self.bad_command();
                }
                self.tagged(&tag, "OK Begin TLS negotiation now.");
                self.flush_out();
                self.mode = Mode::Waiting;
                self.actions.push_back(Action::StartTls);
            }
            C::Login { user, password } => {
                if !self.plaintext_allowed() {
                    self.tagged(
                        &tag,
                        "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on \
                         non-secure (SSL/TLS) connections.",
                    );
                    return self.auth_failed();
                }
                // LOGIN is relayed as SASL PLAIN, as Dovecot's imap-login does.
                let pw = password.expose();
                let mut ir = Vec::with_capacity(user.len() + pw.len() + 2);
                ir.push(0);
                ir.extend_from_slice(user.as_bytes());
                ir.push(0);
                ir.extend_from_slice(pw);
                self.start_auth(tag, "PLAIN".into(), Some(ir), true);
            }
            C::Authenticate { mechanism, initial } => {
                let Some(mech) = self.mechanisms.iter().find(|m| m.matches(&mechanism)) else {
                    self.tagged(&tag, "NO Unsupported authentication mechanism.");
                    return self.bad_command();
                };
                if mech.flags.contains(MechFlag::Plaintext) && !self.plaintext_allowed() {
                    self.tagged(
                        &tag,
                        "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on \
                         non-secure (SSL/TLS) connections.",
                    );
                    return self.auth_failed();
                }
                let name = mech.name.clone();
                let ir = match initial {
                    None => None,
                    Some(b) if b.expose() == b"=" => Some(Vec::new()),
                    Some(b) => match base64_decode(&String::from_utf8_lossy(b.expose())) {
                        Some(v) => Some(v),
                        None => {
                            self.tagged(&tag, "BAD Invalid base64 data in initial response.");
                            return self.bad_command();
                        }
                    },
                };
                self.start_auth(tag, name, ir, false);
            }
            C::Enable(caps) => {
                let Some(ctx) = self.ctx.as_mut() else {
                    return self.tagged(&tag, "NO Not logged in.");
                };
                let mut enabled = Vec::new();
                for c in caps {
                    match c.as_str() {
                        "IMAP4REV2" if !ctx.rev2 => {
                            ctx.rev2 = true;
                            ctx.utf8 = true;
                            enabled.push("IMAP4rev2");
                        }
                        "UTF8=ACCEPT" if !ctx.utf8 || !enabled.contains(&"UTF8=ACCEPT") => {
                            ctx.utf8 = true;
                            enabled.push("UTF8=ACCEPT");
                        }
                        _ => {}
                    }
                }
                let mut line = String::from("* ENABLED");
                for e in enabled {
                    line.push(' ');
                    line.push_str(e);
                }
                line.push_str("\r\n");
                self.write(&line);
                self.tagged(&tag, "OK Enabled.");
            }
            C::Id(_) => {
                self.write("* ID (\"name\" \"pochta\" \"vendor\" \"pochta\")\r\n");
                self.tagged(&tag, "OK ID completed.");
            }
            C::Namespace => {
                self.write("* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
                self.tagged(&tag, "OK Namespace completed.");
            }
            C::Idle => {
                self.write("+ idling\r\n");
                let watch = self
                    .ctx
                    .as_ref()
                    .and_then(|c| c.selected.as_ref())
                    .map(|s| s.watch_dirs())
                    .unwrap_or_default();
                self.mode = Mode::Idle { tag };
                self.flush_out();
                self.actions.push_back(Action::Idle { watch });
            }
            body => self.run_job(JobKind::Command {
                tag,
                cmd: body,
                resume: 0,
            }),
        }
    }

    fn run_job(&mut self, kind: JobKind) {
        let Some(ctx) = self.ctx.take() else {
            if let JobKind::Command { tag, .. } = kind {
                self.tagged(&tag, "NO Not logged in.");
            }
            return;
        };
        if let JobKind::Command { tag, .. } = &kind {
            self.pending_tag = tag.clone();
        }
        self.flush_out();
        self.mode = Mode::Waiting;
        self.actions
            .push_back(Action::Run(Box::new(Job { kind, ctx })));
    }

    /// The driver's result of [`Action::Run`].
    pub fn job_done(&mut self, done: JobDone) {
        let JobDone {
            ctx,
            out,
            logout,
            more,
        } = done;
        if let Some(kind) = more {
            // a part of a long FETCH: send it, then go on with the same context
            self.out.extend_from_slice(&out);
            self.flush_out();
            self.actions
                .push_back(Action::Run(Box::new(Job { kind, ctx })));
            return;
        }
        self.state = if ctx.selected.is_some() {
            State::Selected
        } else {
            State::Authenticated
        };
        self.ctx = Some(ctx);
        self.out.extend_from_slice(&out);
        if logout {
            return self.close();
        }
        if self.idle_refresh {
            self.idle_refresh = false;
            if let Mode::Idle { .. } = self.mode {
                let watch = self
                    .ctx
                    .as_ref()
                    .and_then(|c| c.selected.as_ref())
                    .map(|s| s.watch_dirs())
                    .unwrap_or_default();
                self.flush_out();
                self.actions.push_back(Action::Idle { watch });
                return;
            }
        }
        self.mode = Mode::Command;
    }

    /// IDLE: something changed in a watched directory (or the poll timer fired).
    pub fn mailbox_changed(&mut self) {
        if !matches!(self.mode, Mode::Idle { .. }) {
            return;
        }
        let Some(ctx) = self.ctx.take() else {
            return;
        };
        self.idle_refresh = true;
        self.actions.push_back(Action::Run(Box::new(Job {
            kind: JobKind::Refresh,
            ctx,
        })));
    }

    /// True while idling (the driver then also watches the mailbox).
    pub fn idling(&self) -> bool {
        matches!(self.mode, Mode::Idle { .. })
    }

    fn start_auth(&mut self, tag: String, mechanism: String, ir: Option<Vec<u8>>, plain: bool) {
        // the first answer comes through auth_answer: wait for it
        self.pending_tag = tag;
        self.mode = Mode::Waiting;
        self.sasl_plain_login = plain;
        self.actions.push_back(Action::AuthStart {
            mechanism,
            initial_response: ir.map(pochta_auth_proto::Secret::new),
        });
    }

    fn auth_failed(&mut self) {
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_auth_failures {
            self.write("* BYE Too many authentication failures.\r\n");
            self.close();
        }
    }

    /// The auth server's answer to [`Action::AuthStart`] / [`Action::AuthContinue`].
    pub fn auth_answer(&mut self, answer: AuthAnswer) {
        if !matches!(self.mode, Mode::Waiting) {
            return;
        }
        let tag = std::mem::take(&mut self.pending_tag);
        self.mode = Mode::Command;
        match answer {
            AuthAnswer::Challenge(c) if !self.sasl_plain_login => {
                let line = format!("+ {}\r\n", base64_encode(c.expose()));
                self.write(&line);
                self.mode = Mode::Sasl { tag };
            }
            AuthAnswer::Challenge(_) | AuthAnswer::Failure => {
                if matches!(answer, AuthAnswer::Challenge(_)) {
                    self.actions.push_back(Action::AuthAbort);
                }
                self.tagged(&tag, "NO [AUTHENTICATIONFAILED] Authentication failed.");
                self.auth_failed();
            }
            AuthAnswer::TempFailure => {
                self.tagged(&tag, "NO [UNAVAILABLE] Temporary authentication failure.");
            }
            AuthAnswer::Success { user } => {
                self.pending_tag = tag;
                self.mode = Mode::Waiting;
                self.actions.push_back(Action::OpenStore { user });
            }
        }
    }

    /// The result of [`Action::OpenStore`].
    pub fn store_opened(&mut self, user: &str, result: Result<Ctx, String>) {
        if !matches!(self.mode, Mode::Waiting) {
            return;
        }
        let tag = std::mem::take(&mut self.pending_tag);
        self.mode = Mode::Command;
        match result {
            Ok(ctx) => {
                self.ctx = Some(ctx);
                self.user = Some(user.to_string());
                self.state = State::Authenticated;
                self.framer.set_limits(self.config.limits);
                let text = format!("OK [CAPABILITY {}] Logged in", self.capabilities());
                self.tagged(&tag, &text);
            }
            Err(_) => {
                self.tagged(
                    &tag,
                    "NO [UNAVAILABLE] Temporary failure opening the mailbox.",
                );
            }
        }
    }

    /// STARTTLS handshake done.
    pub fn tls_started(&mut self) {
        self.facts.tls = true;
        self.mode = Mode::Command;
        self.framer = Framer::new(Limits::PRE_AUTH);
    }

    /// Test helper: the session's context (store, selected mailbox).
    pub fn ctx(&self) -> Option<&Ctx> {
        self.ctx.as_ref()
    }
}
