//! What the session asks of its driver.

use crate::address::{ForwardPath, ReversePath};
use crate::command::Verb;
use crate::params::{MailParams, RcptParams};
use std::fmt;

/// The next thing the driver must do, from [`crate::Session::next`].
#[derive(Debug)]
pub enum Event {
    /// Write these bytes to the client, then call `next` again.
    Write(Vec<u8>),
    /// Read more input and [`crate::Session::feed`] it.
    NeedInput,
    /// Decision: HELO/EHLO/LHLO. Answer with `accept()` (sends the capability list) or `reply()`.
    Hello { verb: Verb, name: String },
    /// Decision: MAIL FROM. Answer with `accept()` or a refusal via `reply()`.
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    /// Decision: RCPT TO (e.g. a userdb lookup). Answer with `accept()` or `reply()`.
    Rcpt { to: ForwardPath, params: RcptParams },
    /// Decision: the message is complete; commit it. SMTP: one `reply()`. LMTP: `reply_each()`
    /// with one reply per recipient, in order.
    Message(Message),
    /// The 220 for STARTTLS has been written (it came in the preceding `Write`): do the TLS
    /// handshake, then call `tls_established()` (or drop the session if it failed).
    StartTls,
    /// Decision: AUTH. Answer with `auth_challenge()`, `auth_success()` or a refusal `reply()`.
    Auth {
        mechanism: String,
        initial: Option<AuthData>,
    },
    /// Decision: the client's answer to our last 334 challenge. Answer as for `Auth`.
    AuthResponse(AuthData),
    /// The SASL exchange is over without a result: the client cancelled it with `*` (501
    /// 5.7.0 is queued) or sent an over-long response (500 5.5.0 follows).
    AuthAborted,
    /// Close the connection (after writing everything returned before).
    Close,
    /// A decision is outstanding; `next` makes no progress until it is answered.
    Pending,
}

/// SASL payload from the client (base64 text as sent). `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthData(pub(crate) String);

impl AuthData {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthData(***)")
    }
}

/// An accepted recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub path: ForwardPath,
    pub params: RcptParams,
}

/// A complete message with its envelope.
#[derive(Debug)]
pub struct Message {
    pub reverse_path: ReversePath,
    pub mail_params: MailParams,
    /// The accepted recipients, in RCPT order.
    pub recipients: Vec<Recipient>,
    /// The content, dot-unstuffed (DATA) or as sent (BDAT); bare LFs in DATA became CRLF.
    pub body: Vec<u8>,
    /// The HELO/EHLO/LHLO name.
    pub hello: String,
    /// RFC 3848 / RFC 6531 "with" keyword for the Received header (`ESMTPS`, `LMTP`, …).
    pub with_protocol: &'static str,
    /// A bare LF was normalized to CRLF.
    pub bare_lf: bool,
    /// Received with BDAT rather than DATA.
    pub chunked: bool,
    /// The authenticated identity, if any.
    pub auth: Option<String>,
}
