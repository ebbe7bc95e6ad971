//! pochta-imapd: an IMAP server (IMAP4rev1 and IMAP4rev2) on the shared Maildir store, a
//! drop-in for Dovecot's imap on the same Maildir (same UIDs, flags, keywords, folders,
//! subscriptions).
//!
//! - [`session`]: the sans-I/O session (RFC 9051/3501 states, STARTTLS, LOGIN, AUTHENTICATE
//!   with SASL-IR, ENABLE, ID, NAMESPACE, IDLE). Commands are framed and parsed by
//!   pochta-imap-proto under hard limits (pre-auth: 8 KiB lines, 4 KiB literals).
//! - [`exec`]: mailbox commands as jobs run on blocking threads (SELECT/EXAMINE, LIST/LSUB,
//!   CREATE/DELETE/RENAME, SUBSCRIBE, STATUS, APPEND, FETCH, STORE, COPY/MOVE, SEARCH,
//!   EXPUNGE, CLOSE/UNSELECT) on pochta-mailstore; message parsing (ENVELOPE, BODYSTRUCTURE,
//!   sections, BINARY, SEARCH text) through pochta-imap-message.
//! - [`driver`]: runs a session on a pochta-server connection: SASL and LOGIN relayed to the
//!   auth server, the Maildir found through auth-userdb, IDLE woken by [`idle`] (one inotify
//!   for the daemon, one watch per directory).
//! - Mailbox changes by other sessions, deliveries and Dovecot are reported at the end of each
//!   command and during IDLE; EXPUNGE never while a command uses sequence numbers
//!   (RFC 9051 §7.5.1).
//!
//! RFCs: 3501, 9051, 2177 IDLE, 2342 NAMESPACE, 2971 ID, 3516 BINARY, 3691 UNSELECT, 4315
//! UIDPLUS, 4731 ESEARCH, 4959 SASL-IR, 5161 ENABLE, 5258 LIST-EXTENDED, 5819 LIST-STATUS,
//! 6154 SPECIAL-USE, 6851 MOVE, 6855 UTF8=ACCEPT, 7888 LITERAL+, 8438 STATUS=SIZE.
//!
//! Trust: clients are untrusted; the auth server is trusted for its verdicts; Maildir contents
//! are parsed by pochta-mailstore and pochta-imap-message (both bounded).
//! Runs as: the configured `[server] user` (the vmail user owning the Maildirs).
//!
//! Dependencies: inotify (IDLE wake-ups without polling; futures-util for its stream).

#![forbid(unsafe_code)]

pub mod config;
pub mod driver;
pub mod exec;
pub mod idle;
pub mod replay;
pub mod session;

pub use config::{Config, Service};
pub use driver::Imap;

use pochta_server::{Connection, ServiceOf, Session as ServerSession, Sessions};
use std::sync::Arc;

impl Sessions for Imap {
    type Config = Config;

    async fn serve(self: Arc<Self>, conn: Connection, session: ServerSession<ServiceOf<Self>>) {
        self.run(conn, session.tls_mode, session.id.0, session.service)
            .await;
    }

    fn busy_reply(&self, _service: &Service) -> &'static [u8] {
        b"* BYE [UNAVAILABLE] Too many connections.\r\n"
    }
}
