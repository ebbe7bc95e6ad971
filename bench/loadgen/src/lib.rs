//! pochta-loadgen: load generators for the protocols that have no standard load tool
//! (smtp-source/smtp-sink cover SMTP and LMTP).
//!
//! - [`auth`]: Dovecot auth-client protocol, N concurrent connections, AUTH PLAIN with `nologin`
//!   (the way Postfix's smtpd checks a password), closed loop: each connection has one request in
//!   flight.
//! - [`pop3`]: concurrent POP3 sessions, each USER/PASS, STAT, UIDL, RETR of every message
//!   (latency per RETR), QUIT.
//! - [`imap`]: concurrent IMAP sessions, LOGIN, SELECT, a fixed mix (NOOP, UID FETCH 1:* FLAGS,
//!   FETCH BODY.PEEK[], UID SEARCH SUBJECT, STATUS), LOGOUT; latency per command.
//!
//! Trusts: nothing it reads from the server; every reply is checked and a wrong or missing
//! answer is an error, never a sample. Runs as whatever user starts it; connects only to the
//! UNIX sockets or loopback addresses it is given. Used by `pochta-loadgen` (standalone CLI) and
//! `pochta-bench` (the side-by-side harness, bench/run). `base64` encodes SASL responses.

pub mod auth;
pub mod imap;
pub mod pop3;
pub mod stats;
mod wire;
