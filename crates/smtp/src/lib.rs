//! pochta-smtp: the SMTP and LMTP server protocol core shared by pochta-mta and
//! pochta-mda-lmtp. Sans-I/O: a [`Session`] takes bytes with [`Session::feed`] and hands out
//! [`Event`]s from [`Session::next`] — bytes to write, or decisions that need I/O (HELO policy,
//! MAIL/RCPT checks such as a userdb lookup, SASL steps, STARTTLS, committing a message) which
//! the async driver answers. No sockets, no tokio, no files here.
//!
//! Trust: nothing the client sends. Input is framed before it is parsed, with hard limits: command
//! lines (2048 octets by default, like Postfix), SASL lines, DATA (only CRLF.CRLF ends it;
//! dot-unstuffing; bare LF normalized or rejected; size cap enforced by draining then 552) and
//! BDAT chunks (length-delimited, never scanned). Every error becomes a reply; too many errors
//! end the session with 421. The crate runs as whatever user its daemon runs as.
//!
//! RFCs: 5321 (SMTP), 2033 (LMTP), 1870 (SIZE), 6152 (8BITMIME), 3030 (CHUNKING/BINARYMIME),
//! 3207 (STARTTLS), 2920 (PIPELINING), 2034 + 3463 (enhanced status codes), 3461 (DSN
//! parameters), 6531 (SMTPUTF8), 4954 (AUTH), 3848 (Received "with" keywords).
//!
//! Dependencies: none.

#![forbid(unsafe_code)]

mod address;
mod command;
mod config;
mod data;
mod event;
mod params;
mod reply;
mod session;
mod stats;

pub use address::{AddressError, Domain, ForwardPath, Mailbox, ReversePath};
pub use command::{parse_command, parse_command_with, Command, CommandError, Verb};
pub use config::{BareLf, Protocol, SessionConfig};
pub use event::{AuthData, Event, Message, Recipient};
pub use params::{
    xtext_decode, xtext_encode, Body, MailParams, Notify, Orcpt, ParamError, RcptParams, Ret,
};
pub use reply::{EnhancedStatus, Reply};
pub use session::Session;
pub use stats::CommandStats;
