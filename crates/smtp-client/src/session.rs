//! The sans-I/O client session: greeting → EHLO/LHLO (HELO fallback for SMTP) → transactions
//! (MAIL, RCPT…, DATA or BDAT, pipelined when offered) → QUIT. Bytes in with
//! [`ClientSession::feed`]; [`ClientSession::step`] says what to do next. No sockets here.

use crate::caps::Capabilities;
use crate::dot::{canonical_len, encode_content};
use crate::reply::{Reply, ReplyError, ReplyParser};
use pochta_smtp::{xtext_encode, Body, Notify, Orcpt, Ret};
use std::collections::VecDeque;
use std::fmt;

/// SMTP (RFC 5321) or LMTP (RFC 2033: LHLO, one reply per recipient after the data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

/// Session settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub protocol: Protocol,
    /// Our name in EHLO/LHLO.
    pub helo_name: String,
    /// Use BDAT instead of DATA when the server offers CHUNKING.
    pub chunking: bool,
}

/// One envelope recipient with its DSN parameters (RFC 3461), sent when the server has DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub notify: Option<Notify>,
    pub orcpt: Option<Orcpt>,
}

/// The envelope of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Reverse-path without `<>`; empty = null sender.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub envid: Option<String>,
    pub ret: Option<Ret>,
    pub body: Option<Body>,
    pub smtputf8: bool,
}

/// Where in the dialogue something happened; Postfix's "(in reply to … command)".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Helo,
    StartTls,
    Mail,
    Rcpt,
    Data,
    EndOfData,
    Rset,
    Quit,
}

impl Stage {
    /// Postfix's wording: `in reply to RCPT TO command`, `while sending end of data`.
    pub fn command(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Greeting => "initial server greeting",
            Stage::Helo => "EHLO/LHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of data",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        }
    }
}

/// The server's answer for one recipient and the command it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptOutcome {
    pub reply: Reply,
    pub stage: Stage,
}

/// Why the session cannot go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The server's bytes were not replies.
    Reply(ReplyError),
    /// A reply that makes the session unusable (greeting not 220, EHLO and HELO refused…).
    Rejected(Stage, Reply),
    /// The server replied where nothing was asked.
    Unexpected(Reply),
    /// Called in a state where that call makes no sense (a driver bug).
    Misuse(&'static str),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Reply(e) => write!(f, "{e}"),
            SessionError::Rejected(stage, r) => {
                write!(f, "server said: {r} (in reply to {})", stage.command())
            }
            SessionError::Unexpected(r) => write!(f, "unexpected server reply: {r}"),
            SessionError::Misuse(m) => write!(f, "client misuse: {m}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// What the driver does next.
#[derive(Debug)]
pub enum Step {
    /// Write these bytes, then call `step` again.
    Write(Vec<u8>),
    /// Read from the server, `feed`, then `step` again.
    NeedInput,
    /// Idle and usable: start a transaction or quit.
    Ready,
    /// A transaction ended: one outcome per envelope recipient, in order. `Ready` (or `Closed`
    /// when the server said 421) follows.
    Done(Vec<RcptOutcome>),
    /// The session is over (QUIT answered, or 421).
    Closed,
    /// The server answered STARTTLS with 220: run the TLS handshake on the connection, then
    /// call [`ClientSession::tls_established`] (until then `step` keeps saying this).
    StartTls,
    /// The server refused STARTTLS; the session is `Ready` in plaintext again (the caller's
    /// TLS policy decides whether to go on).
    TlsRefused(Reply),
    /// The session failed; the connection must be dropped.
    Failed(SessionError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Mail,
    Rcpt(usize),
    Data,
    /// Reply to a lone `.` sent because the server took DATA with no recipient accepted.
    DiscardDot,
    /// LMTP: reply for recipient i; SMTP: one reply for every accepted recipient (`usize::MAX`).
    EndOfData(usize),
    Rset,
    Quit,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Open,
    Ready,
    Txn,
    /// STARTTLS accepted: waiting for the driver's handshake.
    Tls,
    Closed,
    Failed,
}

/// Transaction bookkeeping.
#[derive(Debug, Default)]
struct Txn {
    outcomes: Vec<Option<RcptOutcome>>,
    accepted: Vec<usize>,
    mail_failed: bool,
    /// Commands not written yet (no PIPELINING): each with the reply it expects.
    queued: VecDeque<(Vec<u8>, Expect)>,
    /// Encoded content (dot-stuffed for DATA, raw for BDAT).
    content: Vec<u8>,
    bdat: bool,
    /// The data (or lone dot) is written: a lost connection now may mean delivered.
    data_sent: bool,
}

/// One client connection's protocol state.
#[derive(Debug)]
pub struct ClientSession {
    cfg: ClientConfig,
    parser: ReplyParser,
    caps: Capabilities,
    phase: Phase,
    expect: VecDeque<Expect>,
    out: Vec<u8>,
    txn: Option<Txn>,
    done: Option<Vec<RcptOutcome>>,
    closing: bool,
    error: Option<SessionError>,
    stage: Stage,
    tls_refused: Option<Reply>,
}

impl ClientSession {
    /// A session on a fresh connection: it waits for the greeting.
    pub fn new(cfg: ClientConfig) -> ClientSession {
        ClientSession {
            cfg,
            parser: ReplyParser::new(),
            caps: Capabilities::default(),
            phase: Phase::Open,
            expect: VecDeque::from([Expect::Greeting]),
            out: Vec::new(),
            txn: None,
            done: None,
            closing: false,
            error: None,
            stage: Stage::Greeting,
            tls_refused: None,
        }
    }

    /// What the server announced (valid once `Ready`).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The command whose reply we wait for (for error reports and timeouts).
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// During a transaction: whether the content was written (a failure now may mean the
    /// message was delivered: "may be sent more than once").
    pub fn data_sent(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| t.data_sent)
    }

    /// Outcomes known so far in a transaction that failed (LMTP replies already read count).
    pub fn partial_outcomes(&self) -> Vec<Option<RcptOutcome>> {
        self.txn
            .as_ref()
            .map(|t| t.outcomes.clone())
            .unwrap_or_default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.parser.feed(bytes);
    }

    /// Starts a transaction; only when `step` said `Ready`. `content` is the message; it goes
    /// out with canonical CRLF (and dot-stuffed for DATA).
    pub fn start_transaction(
        &mut self,
        env: &Envelope,
        content: &[u8],
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Ready {
            return Err(SessionError::Misuse("transaction outside Ready"));
        }
        if env.recipients.is_empty() {
            return Err(SessionError::Misuse("transaction without recipients"));
        }
        let bdat = self.cfg.chunking && self.caps.chunking;
        let mut content_buf = Vec::new();
        encode_content(content, !bdat, &mut content_buf);
        let mut cmds: Vec<(Vec<u8>, Expect)> = Vec::new();
        cmds.push((self.mail_command(env, canonical_len(content)), Expect::Mail));
        for (i, r) in env.recipients.iter().enumerate() {
            cmds.push((self.rcpt_command(r), Expect::Rcpt(i)));
        }
        let mut txn = Txn {
            outcomes: vec![None; env.recipients.len()],
            content: content_buf,
            bdat,
            ..Txn::default()
        };
        if !bdat {
            cmds.push((b"DATA\r\n".to_vec(), Expect::Data));
        }
        if self.caps.pipelining {
            for (c, e) in cmds {
                self.out.extend_from_slice(&c);
                self.expect.push_back(e);
            }
        } else {
            let mut it = cmds.into_iter();
            if let Some((c, e)) = it.next() {
                self.out.extend_from_slice(&c);
                self.expect.push_back(e);
            }
            txn.queued = it.collect();
        }
        self.stage = Stage::Mail;
        self.txn = Some(txn);
        self.phase = Phase::Txn;
        Ok(())
    }

    /// Asks for TLS (RFC 3207); only when `Ready` and the server offered STARTTLS. `step`
    /// then writes the command and says `StartTls` or `TlsRefused`.
    pub fn starttls(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::Ready || !self.caps.starttls {
            return Err(SessionError::Misuse(
                "STARTTLS outside Ready or not offered",
            ));
        }
        self.out.extend_from_slice(b"STARTTLS\r\n");
        self.expect.push_back(Expect::StartTls);
        self.stage = Stage::StartTls;
        self.phase = Phase::Open;
        Ok(())
    }

    /// The TLS handshake succeeded: everything learnt before it is forgotten (RFC 3207 §4.2)
    /// and EHLO/LHLO is sent again; `step` says `Ready` once it is answered.
    pub fn tls_established(&mut self) -> Result<(), SessionError> {
        if self.phase != Phase::Tls {
            return Err(SessionError::Misuse("tls_established without STARTTLS"));
        }
        self.caps = Capabilities::default();
        self.parser = ReplyParser::new();
        self.send_hello();
        self.phase = Phase::Open;
        Ok(())
    }

    fn send_hello(&mut self) {
        let verb = match self.cfg.protocol {
            Protocol::Smtp => "EHLO",
            Protocol::Lmtp => "LHLO",
        };
        self.out
            .extend_from_slice(format!("{verb} {}\r\n", self.cfg.helo_name).as_bytes());
        self.expect.push_back(Expect::Ehlo);
        self.stage = Stage::Helo;
    }

    /// Ends the session politely; `step` then writes QUIT and waits for its reply.
    pub fn quit(&mut self) {
        if self.phase == Phase::Ready {
            self.out.extend_from_slice(b"QUIT\r\n");
            self.expect.push_back(Expect::Quit);
            self.stage = Stage::Quit;
            self.phase = Phase::Open;
        }
    }

    /// The next thing to do.
    pub fn step(&mut self) -> Step {
        loop {
            if let Some(e) = self.error.take() {
                self.phase = Phase::Failed;
                return Step::Failed(e);
            }
            if !self.out.is_empty() {
                return Step::Write(std::mem::take(&mut self.out));
            }
            if let Some(d) = self.done.take() {
                return Step::Done(d);
            }
            if let Some(r) = self.tls_refused.take() {
                return Step::TlsRefused(r);
            }
            match self.phase {
                Phase::Closed => return Step::Closed,
                Phase::Tls => return Step::StartTls,
                Phase::Failed => return Step::Failed(SessionError::Misuse("session failed")),
                Phase::Ready if self.expect.is_empty() => return Step::Ready,
                _ => {}
            }
            if self.expect.is_empty() {
                // Defensive: nothing awaited outside Ready means we are finished.
                self.phase = if self.closing {
                    Phase::Closed
                } else {
                    Phase::Ready
                };
                continue;
            }
            match self.parser.next_reply() {
                None => return Step::NeedInput,
                Some(Err(e)) => self.error = Some(SessionError::Reply(e)),
                Some(Ok(r)) => self.on_reply(r),
            }
        }
    }

    fn on_reply(&mut self, r: Reply) {
        let Some(exp) = self.expect.pop_front() else {
            self.error = Some(SessionError::Unexpected(r));
            return;
        };
        if r.code() == 421 && exp != Expect::Quit {
            self.server_closing(exp, r);
            return;
        }
        match exp {
            Expect::Greeting => {
                if r.code() != 220 {
                    self.error = Some(SessionError::Rejected(Stage::Greeting, r));
                    return;
                }
                self.send_hello();
            }
            Expect::Ehlo => {
                if r.is_positive() {
                    self.caps = Capabilities::from_reply(&r);
                    self.phase = Phase::Ready;
                } else if r.is_permanent() && self.cfg.protocol == Protocol::Smtp {
                    self.out
                        .extend_from_slice(format!("HELO {}\r\n", self.cfg.helo_name).as_bytes());
                    self.expect.push_back(Expect::Helo);
                } else {
                    self.error = Some(SessionError::Rejected(Stage::Helo, r));
                }
            }
            Expect::Helo => {
                if r.is_positive() {
                    self.caps = Capabilities {
                        name: Capabilities::server_name(&r),
                        ..Capabilities::default()
                    };
                    self.phase = Phase::Ready;
                } else {
                    self.error = Some(SessionError::Rejected(Stage::Helo, r));
                }
            }
            Expect::Quit => {
                self.phase = Phase::Closed;
            }
            Expect::StartTls => {
                if r.code() == 220 {
                    if self.parser.has_buffered() {
                        // Bytes after the 220 would be read as if they came over TLS: the
                        // client side of the STARTTLS injection (CVE-2011-0411) — refuse.
                        self.error = Some(SessionError::Unexpected(r));
                    } else {
                        self.phase = Phase::Tls;
                    }
                } else {
                    self.phase = Phase::Ready;
                    self.tls_refused = Some(r);
                }
            }
            Expect::Rset => {
                self.stage = Stage::Rset;
                self.finish_txn();
            }
            Expect::Mail | Expect::Rcpt(_) | Expect::Data | Expect::DiscardDot => {
                self.on_txn_reply(exp, r)
            }
            Expect::EndOfData(i) => self.on_end_reply(i, r),
        }
    }

    fn on_txn_reply(&mut self, exp: Expect, r: Reply) {
        let lmtp = self.cfg.protocol == Protocol::Lmtp;
        let pipelining = self.caps.pipelining;
        let Some(txn) = self.txn.as_mut() else {
            self.error = Some(SessionError::Unexpected(r));
            return;
        };
        match exp {
            Expect::Mail => {
                self.stage = Stage::Rcpt;
                if !r.is_positive() {
                    txn.mail_failed = true;
                    for o in txn.outcomes.iter_mut() {
                        *o = Some(RcptOutcome {
                            reply: r.clone(),
                            stage: Stage::Mail,
                        });
                    }
                    if !pipelining {
                        txn.queued.clear();
                        self.finish_txn();
                        return;
                    }
                }
            }
            Expect::Rcpt(i) => {
                if r.is_positive() && !txn.mail_failed {
                    txn.accepted.push(i);
                } else if !txn.mail_failed {
                    if let Some(o) = txn.outcomes.get_mut(i) {
                        *o = Some(RcptOutcome {
                            reply: r,
                            stage: Stage::Rcpt,
                        });
                    }
                }
                let last = i + 1 == txn.outcomes.len();
                if last {
                    self.stage = Stage::Data;
                    if txn.accepted.is_empty() && !pipelining {
                        txn.queued.clear();
                        self.out.extend_from_slice(b"RSET\r\n");
                        self.expect.push_back(Expect::Rset);
                        return;
                    }
                    if txn.bdat && !txn.accepted.is_empty() {
                        let content = std::mem::take(&mut txn.content);
                        self.out.extend_from_slice(
                            format!("BDAT {} LAST\r\n", content.len()).as_bytes(),
                        );
                        self.out.extend_from_slice(&content);
                        txn.data_sent = true;
                        self.stage = Stage::EndOfData;
                        push_end_expects(&mut self.expect, txn, lmtp);
                        return;
                    }
                    if txn.bdat {
                        // Pipelined, nothing accepted: no content to send.
                        self.out.extend_from_slice(b"RSET\r\n");
                        self.expect.push_back(Expect::Rset);
                        return;
                    }
                }
            }
            Expect::Data => {
                if r.code() == 354 {
                    if txn.accepted.is_empty() || txn.mail_failed {
                        self.out.extend_from_slice(b".\r\n");
                        self.expect.push_back(Expect::DiscardDot);
                    } else {
                        let content = std::mem::take(&mut txn.content);
                        self.out.extend_from_slice(&content);
                        self.stage = Stage::EndOfData;
                        push_end_expects(&mut self.expect, txn, lmtp);
                    }
                    txn.data_sent = true;
                    return;
                }
                for &i in &txn.accepted {
                    if let Some(o) = txn.outcomes.get_mut(i) {
                        *o = Some(RcptOutcome {
                            reply: r.clone(),
                            stage: Stage::Data,
                        });
                    }
                }
                if txn.mail_failed {
                    self.finish_txn();
                } else {
                    self.out.extend_from_slice(b"RSET\r\n");
                    self.expect.push_back(Expect::Rset);
                }
                return;
            }
            Expect::DiscardDot => {
                self.finish_txn();
                return;
            }
            _ => {}
        }
        // Without PIPELINING the next command goes out only now.
        if let Some(txn) = self.txn.as_mut() {
            if let Some((c, e)) = txn.queued.pop_front() {
                self.out.extend_from_slice(&c);
                self.expect.push_back(e);
            }
        }
    }

    fn on_end_reply(&mut self, i: usize, r: Reply) {
        let Some(txn) = self.txn.as_mut() else {
            self.error = Some(SessionError::Unexpected(r));
            return;
        };
        let targets: Vec<usize> = if i == usize::MAX {
            txn.accepted.clone()
        } else {
            vec![i]
        };
        for t in targets {
            if let Some(o) = txn.outcomes.get_mut(t) {
                *o = Some(RcptOutcome {
                    reply: r.clone(),
                    stage: Stage::EndOfData,
                });
            }
        }
        if !self
            .expect
            .iter()
            .any(|e| matches!(e, Expect::EndOfData(_)))
        {
            self.finish_txn();
        }
    }

    /// 421: every recipient without an answer gets this one; the session then closes.
    fn server_closing(&mut self, exp: Expect, r: Reply) {
        self.closing = true;
        self.expect.clear();
        if let Some(txn) = self.txn.as_mut() {
            let stage = match exp {
                Expect::Mail => Stage::Mail,
                Expect::Rcpt(_) => Stage::Rcpt,
                Expect::Data | Expect::DiscardDot => Stage::Data,
                _ => Stage::EndOfData,
            };
            for o in txn.outcomes.iter_mut().filter(|o| o.is_none()) {
                *o = Some(RcptOutcome {
                    reply: r.clone(),
                    stage,
                });
            }
            self.finish_txn();
        } else {
            self.error = Some(SessionError::Rejected(self.stage, r));
        }
    }

    fn finish_txn(&mut self) {
        let Some(txn) = self.txn.take() else {
            self.phase = if self.closing {
                Phase::Closed
            } else {
                Phase::Ready
            };
            return;
        };
        // Every recipient has an outcome by now; a server that skipped one gets a made-up
        // temporary failure rather than a silent success.
        let outcomes = txn
            .outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(RcptOutcome {
                    reply: Reply::new(451, Some("4.4.0"), "no reply for this recipient"),
                    stage: Stage::EndOfData,
                })
            })
            .collect();
        self.done = Some(outcomes);
        self.phase = if self.closing {
            Phase::Closed
        } else {
            Phase::Ready
        };
    }

    fn mail_command(&self, env: &Envelope, size: u64) -> Vec<u8> {
        let mut c = format!("MAIL FROM:<{}>", env.sender);
        if self.caps.size.is_some() {
            c.push_str(&format!(" SIZE={size}"));
        }
        if let Some(body) = env.body {
            let kw = match body {
                Body::SevenBit => Some("7BIT"),
                Body::EightBitMime if self.caps.eightbitmime => Some("8BITMIME"),
                Body::BinaryMime if self.caps.binarymime => Some("BINARYMIME"),
                _ => None,
            };
            if let Some(kw) = kw {
                c.push_str(&format!(" BODY={kw}"));
            }
        }
        if env.smtputf8 && self.caps.smtputf8 {
            c.push_str(" SMTPUTF8");
        }
        if self.caps.dsn {
            if let Some(ret) = env.ret {
                c.push_str(match ret {
                    Ret::Full => " RET=FULL",
                    Ret::Hdrs => " RET=HDRS",
                });
            }
            if let Some(envid) = &env.envid {
                c.push_str(&format!(" ENVID={}", xtext_encode(envid)));
            }
        }
        c.push_str("\r\n");
        c.into_bytes()
    }

    fn rcpt_command(&self, r: &Recipient) -> Vec<u8> {
        let mut c = format!("RCPT TO:<{}>", r.address);
        if self.caps.dsn {
            if let Some(n) = r.notify {
                c.push_str(&format!(" NOTIFY={}", notify_value(n)));
            }
            if let Some(o) = &r.orcpt {
                c.push_str(&format!(
                    " ORCPT={};{}",
                    o.addr_type,
                    xtext_encode(&o.address)
                ));
            }
        }
        c.push_str("\r\n");
        c.into_bytes()
    }
}

fn push_end_expects(expect: &mut VecDeque<Expect>, txn: &Txn, lmtp: bool) {
    if lmtp {
        for &i in &txn.accepted {
            expect.push_back(Expect::EndOfData(i));
        }
    } else {
        expect.push_back(Expect::EndOfData(usize::MAX));
    }
}

/// `NEVER` or a comma list of SUCCESS, FAILURE, DELAY.
pub fn notify_value(n: Notify) -> String {
    if n.never {
        return "NEVER".to_owned();
    }
    let mut v = Vec::new();
    if n.success {
        v.push("SUCCESS");
    }
    if n.failure {
        v.push("FAILURE");
    }
    if n.delay {
        v.push("DELAY");
    }
    if v.is_empty() {
        return "NEVER".to_owned();
    }
    v.join(",")
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
