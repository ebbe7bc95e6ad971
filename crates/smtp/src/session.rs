//! The sans-I/O SMTP/LMTP server session: bytes in with [`Session::feed`], then
//! [`Session::next`] until it asks for input. Decisions that need I/O come out as [`Event`]s and
//! are answered with [`Session::accept`], [`Session::reply`], [`Session::reply_each`] and the
//! AUTH/STARTTLS calls.
//!
//! Replies are buffered while more complete commands are waiting (RFC 2920 PIPELINING) and
//! written when the input runs dry, when a command that ends a pipelining group needs its answer
//! on the wire (STARTTLS, QUIT, 421), or when the buffer gets large.

use crate::address::{Domain, ReversePath};
use crate::command::{parse_command_with, Command, CommandError, Verb};
use crate::config::{BareLf, Protocol, SessionConfig};
use crate::data::DotDecoder;
use crate::event::{AuthData, Event, Message, Recipient};
use crate::params::{Body, MailParams};
use crate::reply::Reply;
use crate::stats::CommandStats;

/// Input beyond a command line that the session buffers while a decision is outstanding.
const INPUT_SLACK: usize = 64 * 1024;
/// Buffered replies are written once they pass this size even if more commands wait.
const OUTPUT_FLUSH: usize = 16 * 1024;

#[derive(Debug)]
enum Reader {
    Command,
    /// Inside DATA.
    Data(DotDecoder),
    /// Inside a BDAT chunk; `reject` = the chunk is read and thrown away, then this is the reply.
    Bdat {
        remaining: u64,
        last: bool,
        reject: Option<Reply>,
    },
    /// Skipping the rest of an over-long line.
    DiscardLine,
    /// Reading a SASL response line.
    AuthLine,
}

#[derive(Debug)]
enum Pending {
    Hello {
        verb: Verb,
        name: String,
    },
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt(Recipient),
    Message {
        recipients: usize,
    },
    Auth,
    StartTls,
}

#[derive(Debug)]
struct Txn {
    from: ReversePath,
    params: MailParams,
    recipients: Vec<Recipient>,
    /// BDAT chunks so far; `None` until the first BDAT.
    chunks: Option<Vec<u8>>,
    chunk_size: u64,
}

/// What one parsing step achieved (short-lived; its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Step {
    Event(Event),
    Progress,
    NeedMore,
}

/// One SMTP or LMTP server session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    input: Vec<u8>,
    input_start: usize,
    output: Vec<u8>,
    reader: Reader,
    pending: Option<Pending>,
    /// An event to hand out right after the output preceding it has been flushed.
    deferred: Option<Event>,
    flush_now: bool,
    closing: bool,
    hello: Option<(Verb, String)>,
    tls: bool,
    auth: Option<String>,
    txn: Option<Txn>,
    errors: u32,
    stats: CommandStats,
}

impl Session {
    /// A new session; the 220 greeting is the first thing `next` returns.
    pub fn new(cfg: SessionConfig) -> Self {
        let greeting = Reply::new(220, None, format!("{} {}", cfg.hostname, cfg.banner));
        let mut s = Session {
            cfg,
            input: Vec::new(),
            input_start: 0,
            output: Vec::new(),
            reader: Reader::Command,
            pending: None,
            deferred: None,
            flush_now: true,
            closing: false,
            hello: None,
            tls: false,
            auth: None,
            txn: None,
            errors: 0,
            stats: CommandStats::default(),
        };
        s.push(&greeting);
        s
    }

    /// A session on a connection that is already encrypted (implicit TLS, port 465).
    pub fn new_tls(cfg: SessionConfig) -> Self {
        let mut s = Self::new(cfg);
        s.tls = true;
        s
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }
    pub fn hello_name(&self) -> Option<&str> {
        self.hello.as_ref().map(|(_, n)| n.as_str())
    }
    pub fn is_tls(&self) -> bool {
        self.tls
    }
    pub fn authenticated(&self) -> Option<&str> {
        self.auth.as_deref()
    }
    pub fn errors(&self) -> u32 {
        self.errors
    }
    /// Commands so far, per verb, for the end-of-session log line.
    pub fn stats(&self) -> &CommandStats {
        &self.stats
    }
    /// Input fed but not consumed yet. After [`Event::StartTls`], anything here (or still in the
    /// driver's own buffer) was pipelined behind STARTTLS in plaintext: a driver may close
    /// right away instead of starting the handshake.
    pub fn buffered_input(&self) -> usize {
        self.buffered().len()
    }

    /// Whether a message transaction (MAIL accepted) is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Offers input; returns how many bytes were taken (the rest must be offered again later).
    /// The session buffers at most one command line plus a bounded slack.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        if self.input_start > 0 {
            self.input.drain(..self.input_start);
            self.input_start = 0;
        }
        let cap = self.cfg.max_auth_line() + INPUT_SLACK;
        let n = data.len().min(cap.saturating_sub(self.input.len()));
        self.input.extend_from_slice(&data[..n]);
        n
    }

    fn buffered(&self) -> &[u8] {
        self.input.get(self.input_start..).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.input_start = (self.input_start + n).min(self.input.len());
        if self.input_start == self.input.len() {
            self.input.clear();
            self.input_start = 0;
        }
    }

    /// The next thing to do. Call repeatedly until [`Event::NeedInput`] or [`Event::Close`].
    // `next` is the sans-I/O convention (rustls, smtp-proto); a session is not an iterator, it
    // never runs out of events.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Event {
        loop {
            if !self.output.is_empty() && (self.flush_now || self.output.len() >= OUTPUT_FLUSH) {
                self.flush_now = false;
                return Event::Write(std::mem::take(&mut self.output));
            }
            self.flush_now = false;
            if let Some(ev) = self.deferred.take() {
                return ev;
            }
            if self.closing {
                return Event::Close;
            }
            if self.pending.is_some() {
                return Event::Pending;
            }
            match self.step() {
                Step::Event(ev) => return ev,
                Step::Progress => {}
                Step::NeedMore => {
                    if self.output.is_empty() {
                        return Event::NeedInput;
                    }
                    return Event::Write(std::mem::take(&mut self.output));
                }
            }
        }
    }

    /// Ends the session with `reply` (idle timeout, shutdown): queued, flushed, then `Close`.
    pub fn close_with(&mut self, reply: Reply) {
        self.push(&reply);
        self.closing = true;
        self.flush_now = true;
        self.pending = None;
    }

    fn push(&mut self, reply: &Reply) {
        if reply.code() >= 400 {
            self.stats.fail();
        }
        reply.encode(true, &mut self.output);
    }

    /// Queues an error reply and applies the error limit.
    fn error(&mut self, reply: Reply, counts: bool) {
        self.push(&reply);
        if counts {
            self.errors += 1;
            if self.errors >= self.cfg.max_errors {
                let bye = Reply::with_status(
                    421,
                    (4, 7, 0),
                    format!("{} Error: too many errors", self.cfg.hostname),
                );
                self.close_with(bye);
            }
        }
    }

    fn step(&mut self) -> Step {
        match self.reader {
            Reader::Command => self.step_command(),
            Reader::DiscardLine => {
                let buf = self.buffered();
                match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.consume(i + 1);
                        self.reader = Reader::Command;
                        self.error(
                            Reply::with_status(500, (5, 5, 0), "Error: line too long"),
                            true,
                        );
                        Step::Progress
                    }
                    None => {
                        let n = buf.len();
                        self.consume(n);
                        Step::NeedMore
                    }
                }
            }
            Reader::Data(ref mut dec) => {
                let start = self.input_start;
                let (used, done) = dec.decode(&self.input[start..]);
                self.consume(used);
                if !done {
                    return Step::NeedMore;
                }
                let Reader::Data(dec) = std::mem::replace(&mut self.reader, Reader::Command) else {
                    return Step::Progress;
                };
                let (oversize, bare_lf) = (dec.oversize(), dec.bare_lf);
                self.finish_message(dec.into_body(), oversize, bare_lf, false)
            }
            Reader::Bdat { .. } => {
                let avail = self.buffered().len() as u64;
                let Reader::Bdat {
                    ref mut remaining,
                    last,
                    ..
                } = self.reader
                else {
                    return Step::Progress;
                };
                let take = (*remaining).min(avail);
                *remaining -= take;
                let done = *remaining == 0;
                // `take` ≤ buffered length, which is a usize.
                let take = usize::try_from(take).unwrap_or(usize::MAX);
                let start = self.input_start;
                let cap = self.cfg.max_message_size;
                if let Some(txn) = self.txn.as_mut() {
                    if let Some(chunks) = txn.chunks.as_mut() {
                        txn.chunk_size = txn.chunk_size.saturating_add(take as u64);
                        if txn.chunk_size <= cap {
                            chunks.extend_from_slice(&self.input[start..start + take]);
                        }
                    }
                }
                self.consume(take);
                if !done {
                    return Step::NeedMore;
                }
                let Reader::Bdat { reject, .. } =
                    std::mem::replace(&mut self.reader, Reader::Command)
                else {
                    return Step::Progress;
                };
                if let Some(r) = reject {
                    self.error(r, true);
                    return Step::Progress;
                }
                self.end_chunk(last)
            }
            Reader::AuthLine => {
                let max = self.cfg.max_auth_line();
                let buf = self.buffered();
                let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
                    if buf.len() > max {
                        // The exchange is over; the drained line gets "500 5.5.0 line too long".
                        self.reader = Reader::DiscardLine;
                        return Step::Event(Event::AuthAborted);
                    }
                    return Step::NeedMore;
                };
                if lf + 1 > max {
                    self.consume(lf + 1);
                    self.reader = Reader::Command;
                    self.error(
                        Reply::with_status(500, (5, 5, 0), "Error: line too long"),
                        true,
                    );
                    return Step::Event(Event::AuthAborted);
                }
                let line = String::from_utf8_lossy(strip_cr(&buf[..lf])).into_owned();
                self.consume(lf + 1);
                self.reader = Reader::Command;
                if line == "*" {
                    self.push(&Reply::with_status(
                        501,
                        (5, 7, 0),
                        "Authentication aborted",
                    ));
                    return Step::Event(Event::AuthAborted);
                }
                self.pending = Some(Pending::Auth);
                Step::Event(Event::AuthResponse(AuthData(line)))
            }
        }
    }

    fn step_command(&mut self) -> Step {
        let buf = self.buffered();
        let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
            // Everything before is answered; a later 421 (idle) is no command's failure.
            let long = buf.len() >= self.cfg.max_line;
            self.stats.done();
            if long {
                self.stats.begin(None);
                self.reader = Reader::DiscardLine;
            }
            return Step::NeedMore;
        };
        if lf + 1 > self.cfg.max_line {
            self.stats.begin(None);
            self.consume(lf + 1);
            self.error(
                Reply::with_status(500, (5, 5, 0), "Error: line too long"),
                true,
            );
            return Step::Progress;
        }
        let bare_lf = lf == 0 || buf[lf - 1] != b'\r';
        let line = strip_cr(&buf[..lf]).to_vec();
        self.consume(lf + 1);
        if bare_lf && self.cfg.bare_lf == BareLf::Reject {
            self.close_with(Reply::with_status(
                550,
                (5, 5, 2),
                "Error: bare <LF> received",
            ));
            return Step::Progress;
        }
        if line.is_empty() {
            self.stats.begin(None);
            self.error(
                Reply::with_status(500, (5, 5, 2), "Error: bad syntax"),
                true,
            );
            return Step::Progress;
        }
        let utf8 = self.txn.as_ref().is_some_and(|t| t.params.smtputf8);
        let parsed = parse_command_with(&line, utf8, self.cfg.bare_address_domain.as_deref());
        let first_word = line
            .split(|&b| b == b' ' || b == b'\t')
            .next()
            .unwrap_or_default();
        self.stats.begin(match &parsed {
            Ok(c) => Some(c.verb()),
            Err(_) => Verb::ALL
                .into_iter()
                .find(|v| v.as_str().as_bytes().eq_ignore_ascii_case(first_word)),
        });
        let cmd = match parsed {
            Ok(c) => c,
            Err(CommandError::Unrecognized) if is_http_method(first_word) => {
                // A web client or a cross-protocol attack (Postfix's smtpd_forbidden_commands).
                self.close_with(Reply::with_status(
                    221,
                    (2, 7, 0),
                    "Error: I can break rules, too. Goodbye.",
                ));
                return Step::Progress;
            }
            Err(CommandError::BdatSyntax) => {
                // The chunk length is unknown, so the stream cannot be framed any more.
                self.close_with(CommandError::BdatSyntax.reply());
                return Step::Progress;
            }
            Err(e) => {
                self.error(e.reply(), true);
                return Step::Progress;
            }
        };
        if self.improper_pipelining(cmd.verb()) {
            self.close_with(Reply::with_status(
                554,
                (5, 5, 0),
                "Error: SMTP protocol synchronization",
            ));
            return Step::Progress;
        }
        self.command(cmd)
    }

    /// RFC 2920 §3.1 / Postfix's smtpd_forbid_unauth_pipelining: an unauthenticated client sent
    /// more input behind a command that must end a group, or pipelined without PIPELINING
    /// having been offered in reply to its EHLO/LHLO. BDAT is followed by its chunk, not by
    /// commands.
    fn improper_pipelining(&self, verb: Verb) -> bool {
        let offered =
            self.cfg.pipelining && matches!(self.hello, Some((Verb::Ehlo | Verb::Lhlo, _)));
        self.cfg.forbid_unauth_pipelining
            && self.auth.is_none()
            && verb != Verb::Bdat
            && !self.buffered().is_empty()
            && (verb.ends_pipelining_group() || !offered)
    }

    fn unrecognized(&mut self) -> Step {
        self.error(CommandError::Unrecognized.reply(), true);
        Step::Progress
    }

    fn sequence_error(&mut self, text: &str) -> Step {
        self.error(Reply::with_status(503, (5, 5, 1), text), true);
        Step::Progress
    }

    fn command(&mut self, cmd: Command) -> Step {
        let verb = cmd.verb();
        let lmtp = self.cfg.protocol == Protocol::Lmtp;
        match verb {
            Verb::Helo | Verb::Ehlo if lmtp => return self.unrecognized(),
            Verb::Lhlo if !lmtp => return self.unrecognized(),
            _ => {}
        }
        if self.cfg.require_tls && !self.tls && !verb.allowed_before_tls() {
            self.error(
                Reply::with_status(530, (5, 7, 0), "Must issue a STARTTLS command first"),
                verb.counts_errors(),
            );
            return Step::Progress;
        }
        if self.cfg.require_auth && self.auth.is_none() && !verb.allowed_before_auth() {
            self.error(
                Reply::with_status(530, (5, 7, 0), "Authentication required"),
                verb.counts_errors(),
            );
            return Step::Progress;
        }
        match cmd {
            Command::Hello { verb, name } => {
                if self.cfg.strict_hello && Domain::parse(&name, true).is_err() {
                    self.error(Reply::with_status(501, (5, 5, 4), "Invalid hostname"), true);
                    return Step::Progress;
                }
                // A new greeting resets the transaction (RFC 5321 §4.1.4).
                self.txn = None;
                self.pending = Some(Pending::Hello {
                    verb,
                    name: name.clone(),
                });
                Step::Event(Event::Hello { verb, name })
            }
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => {
                let Some(txn) = self.txn.as_ref() else {
                    return self.sequence_error("Error: need MAIL command");
                };
                if txn.chunks.is_some() {
                    return self.sequence_error("Error: RCPT after BDAT");
                }
                if txn.recipients.len() >= self.cfg.max_recipients {
                    self.push(&Reply::with_status(
                        452,
                        (4, 5, 3),
                        "Error: too many recipients",
                    ));
                    return Step::Progress;
                }
                // ORCPT is accepted without DSN, as Dovecot LMTP does.
                if params.notify.is_some() && !self.cfg.dsn {
                    self.error(
                        Reply::with_status(555, (5, 5, 4), "Unsupported option: NOTIFY"),
                        true,
                    );
                    return Step::Progress;
                }
                let r = Recipient {
                    path: to.clone(),
                    params: params.clone(),
                };
                self.pending = Some(Pending::Rcpt(r));
                Step::Event(Event::Rcpt { to, params })
            }
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.txn = None;
                self.push(&Reply::with_status(250, (2, 0, 0), "Ok"));
                Step::Progress
            }
            Command::Noop => {
                self.push(&Reply::with_status(250, (2, 0, 0), "Ok"));
                Step::Progress
            }
            Command::Quit => {
                self.close_with(Reply::with_status(221, (2, 0, 0), "Bye"));
                Step::Progress
            }
            Command::Vrfy(_) => {
                // Like Dovecot LMTP: no user enumeration.
                self.push(&Reply::with_status(252, (2, 3, 3), "Try RCPT instead"));
                Step::Progress
            }
            Command::Expn(_) => {
                self.push(&Reply::with_status(502, (5, 5, 1), "EXPN not available"));
                Step::Progress
            }
            Command::Help => {
                let verbs: Vec<&str> = Verb::ALL.iter().map(|v| v.as_str()).collect();
                self.push(&Reply::with_status(
                    214,
                    (2, 0, 0),
                    format!("Commands: {}", verbs.join(" ")),
                ));
                Step::Progress
            }
            Command::StartTls => {
                if self.tls {
                    return self.sequence_error("Error: TLS already active");
                }
                if !self.cfg.starttls {
                    self.error(
                        Reply::with_status(502, (5, 5, 1), "Error: command not implemented"),
                        true,
                    );
                    return Step::Progress;
                }
                self.push(&Reply::with_status(220, (2, 0, 0), "Ready to start TLS"));
                self.flush_now = true;
                self.pending = Some(Pending::StartTls);
                self.deferred = Some(Event::StartTls);
                Step::Progress
            }
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial),
        }
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) -> Step {
        if self.hello.is_none() {
            let text = match self.cfg.protocol {
                Protocol::Lmtp => "Error: send LHLO first",
                Protocol::Smtp => "Error: send HELO/EHLO first",
            };
            return self.sequence_error(text);
        }
        if self.txn.is_some() {
            return self.sequence_error("Error: nested MAIL command");
        }
        let unsupported = |name: &str| {
            Some(Reply::with_status(
                555,
                (5, 5, 4),
                format!("Unsupported option: {name}"),
            ))
        };
        let refusal = if params.size.is_some_and(|s| s > self.cfg.max_message_size) {
            Some(Reply::with_status(
                552,
                (5, 3, 4),
                "Message size exceeds fixed limit",
            ))
        } else if params.body == Some(Body::EightBitMime) && !self.cfg.eight_bit_mime {
            unsupported("BODY=8BITMIME")
        } else if params.body == Some(Body::BinaryMime)
            && !(self.cfg.chunking && self.cfg.binary_mime)
        {
            unsupported("BODY=BINARYMIME")
        } else if params.smtputf8 && !self.cfg.smtputf8 {
            unsupported("SMTPUTF8")
        } else if (params.ret.is_some() || params.envid.is_some()) && !self.cfg.dsn {
            unsupported(if params.ret.is_some() { "RET" } else { "ENVID" })
        } else if params.auth.is_some() && self.cfg.auth_mechanisms.is_empty() {
            unsupported("AUTH")
        } else {
            None
        };
        if let Some(r) = refusal {
            self.error(r, true);
            return Step::Progress;
        }
        self.pending = Some(Pending::Mail {
            from: from.clone(),
            params: params.clone(),
        });
        Step::Event(Event::Mail { from, params })
    }

    fn data(&mut self) -> Step {
        let Some(txn) = self.txn.as_ref() else {
            return self.sequence_error("Error: need MAIL command");
        };
        if txn.chunks.is_some() {
            return self.sequence_error("Error: DATA after BDAT");
        }
        if txn.recipients.is_empty() {
            match self.cfg.protocol {
                Protocol::Lmtp => return self.sequence_error("No valid recipients"),
                Protocol::Smtp => {
                    self.error(
                        Reply::with_status(554, (5, 5, 1), "Error: no valid recipients"),
                        true,
                    );
                    return Step::Progress;
                }
            }
        }
        if txn.params.body == Some(Body::BinaryMime) {
            return self.sequence_error("Error: BINARYMIME requires BDAT");
        }
        self.push(&Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"));
        self.flush_now = true;
        self.reader = Reader::Data(DotDecoder::new(self.cfg.max_message_size));
        Step::Progress
    }

    fn bdat(&mut self, size: u64, last: bool) -> Step {
        let reject = if !self.cfg.chunking {
            Some(Reply::with_status(
                502,
                (5, 5, 1),
                "Error: command not implemented",
            ))
        } else {
            match self.txn.as_mut() {
                None => Some(Reply::with_status(
                    503,
                    (5, 5, 1),
                    "Error: need MAIL command",
                )),
                Some(t) if t.recipients.is_empty() => Some(Reply::with_status(
                    503,
                    (5, 5, 1),
                    "Error: need RCPT command",
                )),
                Some(t) => {
                    t.chunks.get_or_insert_with(Vec::new);
                    None
                }
            }
        };
        // RFC 3030 §3: the chunk is read even when the command is refused.
        self.reader = Reader::Bdat {
            remaining: size,
            last,
            reject,
        };
        Step::Progress
    }

    fn end_chunk(&mut self, last: bool) -> Step {
        let Some(txn) = self.txn.as_mut() else {
            return Step::Progress;
        };
        if !last {
            let size = txn.chunk_size;
            self.push(&Reply::with_status(
                250,
                (2, 0, 0),
                format!("Ok: {size} octets received"),
            ));
            return Step::Progress;
        }
        let oversize = txn.chunk_size > self.cfg.max_message_size;
        let body = txn.chunks.take().unwrap_or_default();
        self.finish_message(body, oversize, false, true)
    }

    fn finish_message(
        &mut self,
        body: Vec<u8>,
        oversize: bool,
        bare_lf: bool,
        chunked: bool,
    ) -> Step {
        let Some(txn) = self.txn.take() else {
            return Step::Progress;
        };
        let refusal = if oversize {
            Some(Reply::with_status(
                552,
                (5, 3, 4),
                "Message size exceeds fixed limit",
            ))
        } else if bare_lf && self.cfg.bare_lf == BareLf::Reject {
            Some(Reply::with_status(
                550,
                (5, 5, 2),
                "Error: bare <LF> received",
            ))
        } else {
            None
        };
        if let Some(r) = refusal {
            let n = match self.cfg.protocol {
                Protocol::Lmtp => txn.recipients.len(),
                Protocol::Smtp => 1,
            };
            for _ in 0..n {
                self.push(&r);
            }
            return Step::Progress;
        }
        self.pending = Some(Pending::Message {
            recipients: txn.recipients.len(),
        });
        Step::Event(Event::Message(Message {
            reverse_path: txn.from,
            with_protocol: self.with_protocol(txn.params.smtputf8),
            mail_params: txn.params,
            recipients: txn.recipients,
            body,
            hello: self.hello_name().unwrap_or_default().to_owned(),
            bare_lf,
            chunked,
            auth: self.auth.clone(),
        }))
    }

    /// RFC 3848 / RFC 6531 §4.3 transmission types.
    fn with_protocol(&self, utf8: bool) -> &'static str {
        let esmtp = !matches!(self.hello, Some((Verb::Helo, _)));
        match (
            self.cfg.protocol,
            esmtp,
            utf8,
            self.tls,
            self.auth.is_some(),
        ) {
            (Protocol::Smtp, false, _, _, _) => "SMTP",
            (Protocol::Smtp, true, false, false, false) => "ESMTP",
            (Protocol::Smtp, true, false, false, true) => "ESMTPA",
            (Protocol::Smtp, true, false, true, false) => "ESMTPS",
            (Protocol::Smtp, true, false, true, true) => "ESMTPSA",
            (Protocol::Smtp, true, true, false, false) => "UTF8SMTP",
            (Protocol::Smtp, true, true, false, true) => "UTF8SMTPA",
            (Protocol::Smtp, true, true, true, false) => "UTF8SMTPS",
            (Protocol::Smtp, true, true, true, true) => "UTF8SMTPSA",
            (Protocol::Lmtp, _, false, false, false) => "LMTP",
            (Protocol::Lmtp, _, false, false, true) => "LMTPA",
            (Protocol::Lmtp, _, false, true, false) => "LMTPS",
            (Protocol::Lmtp, _, false, true, true) => "LMTPSA",
            (Protocol::Lmtp, _, true, false, false) => "UTF8LMTP",
            (Protocol::Lmtp, _, true, false, true) => "UTF8LMTPA",
            (Protocol::Lmtp, _, true, true, false) => "UTF8LMTPS",
            (Protocol::Lmtp, _, true, true, true) => "UTF8LMTPSA",
        }
    }

    fn auth(&mut self, mechanism: String, initial: Option<String>) -> Step {
        if self.cfg.auth_mechanisms.is_empty() || (self.cfg.auth_requires_tls && !self.tls) {
            return self.sequence_error("Error: authentication not enabled");
        }
        if !matches!(self.hello, Some((Verb::Ehlo | Verb::Lhlo, _))) {
            return self.sequence_error("Error: send EHLO first");
        }
        if self.auth.is_some() {
            return self.sequence_error("Error: already authenticated");
        }
        if self.txn.is_some() {
            return self.sequence_error("Error: MAIL transaction in progress");
        }
        if !self.cfg.auth_mechanisms.contains(&mechanism) {
            self.error(
                Reply::with_status(504, (5, 5, 4), "Unsupported authentication mechanism"),
                true,
            );
            return Step::Progress;
        }
        self.pending = Some(Pending::Auth);
        Step::Event(Event::Auth {
            mechanism,
            initial: initial.map(AuthData),
        })
    }

    fn capabilities(&self, verb: Verb) -> Reply {
        let mut lines = vec![self.cfg.hostname.clone()];
        if verb == Verb::Helo {
            return Reply::multiline(250, None, lines);
        }
        let c = &self.cfg;
        if c.pipelining {
            lines.push("PIPELINING".into());
        }
        if c.max_message_size < u64::MAX {
            lines.push(format!("SIZE {}", c.max_message_size));
        }
        if c.starttls && !self.tls {
            lines.push("STARTTLS".into());
        }
        if !c.auth_mechanisms.is_empty() && (self.tls || !c.auth_requires_tls) {
            lines.push(format!("AUTH {}", c.auth_mechanisms.join(" ")));
        }
        lines.push("ENHANCEDSTATUSCODES".into());
        if c.eight_bit_mime {
            lines.push("8BITMIME".into());
        }
        if c.dsn {
            lines.push("DSN".into());
        }
        if c.smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        if c.chunking {
            lines.push("CHUNKING".into());
            if c.binary_mime {
                lines.push("BINARYMIME".into());
            }
        }
        Reply::multiline(250, None, lines)
    }

    /// Accepts the outstanding decision with its usual positive reply.
    pub fn accept(&mut self) {
        self.accept_with(None);
    }

    fn accept_with(&mut self, text: Option<Reply>) {
        match self.pending.take() {
            Some(Pending::Hello { verb, name }) => {
                // The capability list is the reply; a driver's text cannot replace it.
                let caps = self.capabilities(verb);
                self.push(&caps);
                self.hello = Some((verb, name));
            }
            Some(Pending::Mail { from, params }) => {
                self.push(&text.unwrap_or_else(|| Reply::with_status(250, (2, 1, 0), "Ok")));
                self.txn = Some(Txn {
                    from,
                    params,
                    recipients: Vec::new(),
                    chunks: None,
                    chunk_size: 0,
                });
            }
            Some(Pending::Rcpt(r)) => {
                self.push(&text.unwrap_or_else(|| Reply::with_status(250, (2, 1, 5), "Ok")));
                if let Some(t) = self.txn.as_mut() {
                    t.recipients.push(r);
                }
            }
            Some(Pending::Message { recipients }) => {
                let ok = text.unwrap_or_else(|| Reply::with_status(250, (2, 0, 0), "Ok"));
                self.pending = Some(Pending::Message { recipients });
                self.reply_each(vec![ok; recipients.max(1)]);
            }
            Some(Pending::Auth) => match text {
                // A bare "accept" of AUTH carries no identity; it needs auth_success().
                None => self.pending = Some(Pending::Auth),
                Some(r) => {
                    self.push(&r);
                    self.auth = Some(String::new());
                }
            },
            Some(Pending::StartTls) => self.pending = Some(Pending::StartTls),
            None => {}
        }
    }

    /// Answers the outstanding decision with `reply`. A 2xx accepts (with this text instead of
    /// the default; HELO/EHLO/LHLO always answer with the capability list); anything else
    /// refuses. For an LMTP message the reply goes to every recipient. For AUTH, prefer
    /// [`Session::auth_success`], which records the identity.
    pub fn reply(&mut self, reply: Reply) {
        if reply.is_success() || matches!(self.pending, Some(Pending::Message { .. })) {
            return self.accept_with(Some(reply));
        }
        match self.pending.take() {
            Some(Pending::Rcpt(_)) => {
                let counts = self.cfg.count_rejected_recipients;
                self.error(reply, counts);
            }
            // The driver could not start TLS: say so and end the session.
            Some(Pending::StartTls) => self.close_with(reply),
            Some(_) => self.error(reply, true),
            None => {}
        }
    }

    /// LMTP: one reply per accepted recipient, in RCPT order (RFC 2033 §4.2). SMTP: only the
    /// first reply is sent. Missing replies become 451 4.3.0 so the client retries.
    pub fn reply_each(&mut self, replies: Vec<Reply>) {
        let Some(Pending::Message { recipients }) = self.pending.take() else {
            return;
        };
        let want = match self.cfg.protocol {
            Protocol::Lmtp => recipients,
            Protocol::Smtp => 1,
        };
        let mut it = replies.into_iter();
        for _ in 0..want {
            let r = it
                .next()
                .unwrap_or_else(|| Reply::with_status(451, (4, 3, 0), "Temporary internal error"));
            self.push(&r);
        }
    }

    /// Sends a 334 challenge (`text` is base64 or empty) and reads the client's answer.
    pub fn auth_challenge(&mut self, text: &str) {
        if !matches!(self.pending, Some(Pending::Auth)) {
            return;
        }
        self.pending = None;
        self.push(&Reply::new(334, None, text));
        self.flush_now = true;
        self.reader = Reader::AuthLine;
    }

    /// Ends a SASL exchange successfully: 235 2.7.0, the session is authenticated as `identity`.
    pub fn auth_success(&mut self, identity: String) {
        if !matches!(self.pending, Some(Pending::Auth)) {
            return;
        }
        self.pending = None;
        self.push(&Reply::with_status(
            235,
            (2, 7, 0),
            "Authentication successful",
        ));
        self.auth = Some(identity);
    }

    /// TLS is up after STARTTLS. Everything buffered after the STARTTLS line is thrown away
    /// (CVE-2011-0411) and the session starts over without a greeting (RFC 3207 §4.2). Returns
    /// how many bytes were discarded; a driver may treat more than zero as an attack and close.
    pub fn tls_established(&mut self) -> usize {
        if !matches!(self.pending, Some(Pending::StartTls)) {
            return 0;
        }
        let discarded = self.buffered().len();
        self.input.clear();
        self.input_start = 0;
        self.pending = None;
        self.tls = true;
        self.hello = None;
        self.auth = None;
        self.txn = None;
        discarded
    }
}

fn is_http_method(word: &[u8]) -> bool {
    ["GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS"]
        .iter()
        .any(|m| m.as_bytes().eq_ignore_ascii_case(word))
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
