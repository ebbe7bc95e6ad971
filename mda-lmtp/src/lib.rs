//! pochta-mda-lmtp: the local delivery agent. Speaks LMTP (RFC 2033) on a UNIX socket (and
//! optionally TCP), looks recipients up over Dovecot's auth-userdb protocol (pochta-authd or a
//! real Dovecot), and stores each message into the recipient's Maildir the way Dovecot does, so
//! it drops in for Dovecot LMTP behind Postfix (`virtual_transport = lmtp:unix:…`) or pochta-mta.
//!
//! Per message: one reply per accepted recipient after DATA / BDAT LAST, in RCPT order
//! (Dovecot's texts: `250 2.0.0 <rcpt> <session-id> Saved`, `550 5.1.1 … User doesn't exist`,
//! `552 5.2.2 … Quota exceeded`, `451 4.3.0 … Temporary internal error`). A recipient gets 250
//! only after its file and the directory entry are fsynced (pochta-mailstore); any storage error
//! is a 4xx for that recipient. The copies for several recipients are written concurrently on
//! the blocking pool so their fsyncs overlap.
//!
//! Trust: the LMTP client (the local MTA) is trusted to have accepted the mail, not to send
//! well-formed input — the protocol core (pochta-smtp) bounds and checks everything. The userdb
//! is trusted for user names, homes and mail locations; user-derived path parts are checked
//! against traversal. Runs as the vmail user (`[server] user`), which owns the Maildirs; or,
//! with `delivery.per_user_ids`, as root writing each user's files as the userdb's uid/gid
//! (per-thread fsuid/fsgid around each delivery, so sessions never share an identity).
//!
//! RFCs: 2033 (LMTP), 5321, 2920, 3030, 6152, 1870, 6531, 2034 via pochta-smtp; 5322 (trace
//! headers).

#![forbid(unsafe_code)]

pub mod config;
mod deliver;
pub mod headers;
pub mod location;
pub mod recipient;
mod session;

use config::{BareLfSetting, Config, DeliverySection, Service};
use pochta_auth_client::UserdbClient;
use pochta_mailstore::location::Template;
use pochta_server::{Connection, Session as ServerSession, Sessions};
use pochta_smtp::{BareLf, SessionConfig};
use std::sync::{Arc, RwLock};

/// The parsed config as sessions use it; swapped whole on reload.
pub struct Settings {
    pub session: SessionConfig,
    pub mail_location: Template,
    pub delivery: DeliverySection,
    pub userdb: UserdbClient,
    pub userdb_service: String,
    pub quota_full_tempfail: bool,
    pub hostname: String,
}

impl Settings {
    /// Builds settings; reuses `userdb` when it points at the same socket.
    pub fn new(cfg: &Config, userdb: Option<&UserdbClient>) -> Result<Settings, String> {
        let hostname = match &cfg.lmtp.hostname {
            Some(h) => h.clone(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into()),
        };
        let mut session = SessionConfig::lmtp(hostname.clone());
        session.max_message_size = cfg.lmtp.max_message_size.0;
        session.max_recipients = cfg.lmtp.max_recipients;
        session.max_errors = cfg.lmtp.max_errors;
        session.max_line = cfg.lmtp.max_line;
        session.chunking = cfg.lmtp.chunking;
        session.bare_lf = match cfg.lmtp.bare_lf {
            BareLfSetting::Normalize => BareLf::Normalize,
            BareLfSetting::Reject => BareLf::Reject,
        };
        if cfg.delivery.per_user_ids && !nix::unistd::Uid::effective().is_root() {
            return Err("delivery.per_user_ids needs the daemon to keep root: set \
                        server.user = \"root\" (or use the vmail model)"
                .into());
        }
        let mail_location = Template::parse(&cfg.delivery.mail_location)
            .map_err(|e| format!("delivery.mail_location: {e}"))?;
        let userdb = match userdb {
            Some(c) if c.path() == cfg.userdb.socket => c.clone(),
            _ => UserdbClient::new(cfg.userdb.socket.clone()),
        };
        Ok(Settings {
            session,
            mail_location,
            delivery: cfg.delivery.clone(),
            userdb,
            userdb_service: cfg.userdb.service.clone(),
            quota_full_tempfail: cfg.lmtp.quota_full_tempfail,
            hostname,
        })
    }
}

/// The session handler given to the server runtime.
pub struct Lmtp {
    settings: RwLock<Arc<Settings>>,
}

impl Lmtp {
    pub fn new(cfg: &Config) -> Result<Lmtp, String> {
        Ok(Lmtp {
            settings: RwLock::new(Arc::new(Settings::new(cfg, None)?)),
        })
    }

    fn current(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl Sessions for Lmtp {
    type Config = Config;

    async fn serve(self: Arc<Self>, conn: Connection, session: ServerSession<Service>) {
        session::serve(self.current(), conn, session).await;
    }

    fn busy_reply(&self, _service: &Service) -> &'static [u8] {
        b"421 4.3.2 Too many connections\r\n"
    }

    fn reload(&self, config: Arc<Config>) -> Result<(), String> {
        let old = self.current();
        let new = Settings::new(&config, Some(&old.userdb))?;
        match self.settings.write() {
            Ok(mut s) => *s = Arc::new(new),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(new),
        }
        Ok(())
    }
}
