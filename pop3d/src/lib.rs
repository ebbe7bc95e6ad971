//! pochta-pop3d: a POP3 server on the shared Maildir store, a drop-in for Dovecot's pop3.
//!
//! - [`session`]: the sans-I/O session (RFC 1939 states and commands, RFC 2449 CAPA,
//!   RFC 2595 STLS, RFC 5034 SASL AUTH, RFC 3206/2449 response codes). Logins, maildrop work and
//!   the TLS upgrade come out as actions.
//! - [`driver`]: runs a session on a pochta-server connection; SASL and USER/PASS are relayed to
//!   the auth server (pochta-authd or Dovecot's auth-client socket), the user's Maildir is found
//!   through the auth-userdb socket, store work runs in `spawn_blocking`.
//! - Maildrop rules as Dovecot: a snapshot of INBOX at login (mail arriving later is not
//!   shown), UIDLs as Dovecot's default `%08Xu%08Xv` renders them (lowercase hex, from the
//!   uidlist UID and UIDVALIDITY; or the uidlist's `P` field), LIST/STAT sizes are RFC 822
//!   sizes (CRLF) equal to what RETR sends, DELE only marks and QUIT (UPDATE) expunges and
//!   fsyncs, a dropped connection changes nothing; RETR'd messages get \Seen at QUIT
//!   (`pop3_no_flag_updates = no`). Concurrent sessions of one user are allowed (Dovecot's
//!   `pop3_lock_session = no`): see [`store`].
//! - RETR/TOP stream the file in 256 KiB chunks through [`message::Encoder`] (LF → CRLF,
//!   dot-stuffing), so a big message never sits in memory whole. A sequential download
//!   (RETR n after RETR n − 1) gets the next small messages read in the same blocking call,
//!   at most 32 messages / 64 KiB per session, sent only within 100 ms of the read.
//! - Plaintext logins (USER/PASS, PLAIN, LOGIN) only over TLS or from `trusted_networks`; CAPA
//!   then omits USER and the plaintext SASL mechanisms (Dovecot's `disable_plaintext_auth`).
//!   APOP is not offered (it needs plaintext passwords on the server side).
//!
//! Trust: clients are untrusted (bounded lines, typed parsing, error limits); the auth server
//! is trusted for its verdicts; Maildir contents are parsed by pochta-mailstore.
//! Runs as: the configured `[server] user` (the vmail user owning the Maildirs) after binding;
//! every user's mail is read as that one user (no per-user setuid).
//!
//! Dependencies: pochta-auth-proto for base64 and `Secret` (the codec crate, no I/O).

#![forbid(unsafe_code)]

pub mod command;
pub mod config;
pub mod driver;
pub mod message;
pub mod replay;
pub mod session;
pub mod store;

pub use config::{Config, Service};
pub use driver::Pop3;

use pochta_server::{Connection, ServiceOf, Session as ServerSession, Sessions};
use std::sync::Arc;

impl Sessions for Pop3 {
    type Config = Config;

    async fn serve(self: Arc<Self>, conn: Connection, session: ServerSession<ServiceOf<Self>>) {
        self.run(conn, session.tls_mode, session.id.0, session.service)
            .await;
    }

    fn busy_reply(&self, _service: &Service) -> &'static [u8] {
        b"-ERR [SYS/TEMP] Too many connections.\r\n"
    }
}
