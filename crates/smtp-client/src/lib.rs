//! pochta-smtp-client: the SMTP and LMTP client used by pochta-mta's delivery runner (local
//! delivery over LMTP now, remote SMTP delivery with the outbound work) and by `sendmail`.
//!
//! Sans-I/O core ([`ClientSession`]): reply framing with hard limits ([`ReplyParser`]),
//! EHLO/LHLO capabilities, transactions with PIPELINING, SIZE, 8BITMIME/BINARYMIME, SMTPUTF8,
//! DSN parameters, DATA with canonical CRLF and dot-stuffing or BDAT (CHUNKING), per-recipient
//! LMTP replies, RSET/QUIT, STARTTLS (the session side; the driver runs the handshake). The
//! async driver ([`Connection`]) adds sockets (UNIX or TCP), timeouts and connection reuse;
//! its stream is boxed so a TLS layer can wrap it (outbound delivery).
//!
//! Trust: nothing the server sends — replies are parsed with line and line-count limits and a
//! malformed one fails the connection. Runs as its caller's user.
//!
//! RFCs: 5321 (SMTP), 2033 (LMTP), 2920 (PIPELINING), 1870 (SIZE), 6152 (8BITMIME), 3030
//! (CHUNKING), 6531 (SMTPUTF8), 3461 (DSN), 3463 (enhanced status codes), 3207 (STARTTLS).
//!
//! Dependencies: tokio (the driver only), pochta-smtp for the DSN/BODY parameter types.

#![forbid(unsafe_code)]

mod caps;
mod dot;
mod driver;
mod reply;
mod session;

pub use caps::Capabilities;
pub use dot::{canonical_len, encode_content};
pub use driver::{ClientError, Connection, Endpoint, Incomplete, Timeouts};
pub use reply::{Reply, ReplyError, ReplyParser, MAX_LINE, MAX_LINES};
pub use session::{
    notify_value, ClientConfig, ClientSession, Envelope, Protocol, RcptOutcome, Recipient,
    SessionError, Stage, Step,
};
