//! pochta-mta: the mail transfer agent's receiving side, a drop-in for Postfix's smtpd +
//! cleanup: SMTP on port 25 (MX, STARTTLS offered), submission on 587 (STARTTLS, AUTH required
//! before MAIL) and 465 (implicit TLS), and a local UNIX socket for `sendmail`. Accepted mail
//! goes into the durable queue of pochta-queue, whose runner delivers it over LMTP
//! (pochta-mda-lmtp or Dovecot LMTP).
//!
//! - [`session`] drives the sans-I/O SMTP session of pochta-smtp on a pochta-server connection
//!   and answers its decisions: AUTH relayed to the auth server's auth-client socket (PLAIN and
//!   LOGIN only over TLS: AUTH is advertised only under TLS), RCPT checked by [`policy`] and,
//!   for local domains, on the auth-userdb socket (unknown user → 550 5.1.1 at RCPT time, so
//!   no backscatter; lookup failure → 451 4.3.0), the message queued with
//!   `Spool::enqueue` — 250 only after it returned Ok (file + directory fsynced), otherwise
//!   451 4.3.0.
//! - [`policy`]: relaying only for authenticated users, `trusted_networks` and the local
//!   socket; percent hacks, bang paths and quoted local parts with `@` are refused for
//!   everybody, source routes are never followed.
//! - [`headers`]: a Postfix-like Received header (TLS protocol and cipher, queue id), and
//!   Message-ID/Date added on submission when missing.
//! - Logs follow Postfix: `connect from unknown[ip]`, `<id>: client=unknown[ip],
//!   sasl_method=PLAIN, sasl_username=alice@…`, `<id>: message-id=<…>`, `NOQUEUE: reject:
//!   RCPT from …`, `disconnect from … ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5`. Never
//!   passwords or AUTH payloads.
//!
//! Trust: SMTP clients are untrusted (pochta-smtp frames and bounds their input; only CRLF.CRLF
//! ends DATA; plaintext pipelined behind STARTTLS closes the connection). The auth server is
//! trusted for its verdicts, the local socket's peers for being local users (SO_PEERCRED).
//! Runs as the configured `[server] user`, which owns the spool directory; binds 25/465/587 as
//! root first.
//!
//! RFCs: 5321, 3207 (STARTTLS), 4954 (AUTH), 6409 (submission), 8314 (implicit TLS), 2920,
//! 3030, 1870, 6152, 6531, 3461, 3848 via pochta-smtp; 5322 (Received, Message-ID, Date).
//!
//! Dependencies: pochta-auth-proto for base64 and `Secret` (the codec crate, no I/O);
//! tokio-util for the runner's CancellationToken.

#![forbid(unsafe_code)]

pub mod addresses;
pub mod config;
pub mod headers;
pub mod policy;
mod session;

use config::{Config, Service};
use pochta_auth_client::{SaslClient, UserdbClient};
use pochta_queue::{spawn_runner, Spool};
use pochta_server::{Connection, Session as ServerSession, Sessions};
use pochta_smtp::{BareLf, SessionConfig};
use std::sync::{Arc, RwLock};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The parsed config as sessions use it; swapped whole on reload.
pub struct Settings {
    pub smtpd: config::SmtpdSection,
    pub hostname: String,
    /// The protocol settings shared by all listeners (per listener: TLS, AUTH).
    pub session: SessionConfig,
    pub sasl: SaslClient,
    pub userdb: UserdbClient,
    pub service: String,
    /// Local domains, aliases, SRS as of this config.
    pub addresses: Arc<addresses::AddressBook>,
}

impl Settings {
    /// Builds settings (reading the alias tables); reuses the auth clients when their sockets
    /// did not change.
    pub fn new(cfg: &Config, old: Option<&Settings>) -> Result<Settings, String> {
        let hostname = addresses::hostname(cfg);
        let book = Arc::new(addresses::AddressBook::load(cfg)?);
        let mut session = SessionConfig::smtp(hostname.clone());
        session.banner = cfg.smtpd.banner.clone();
        session.max_message_size = cfg.smtpd.max_message_size.0;
        session.max_recipients = cfg.smtpd.max_recipients;
        session.max_errors = cfg.smtpd.max_errors;
        session.max_line = cfg.smtpd.max_line;
        session.forbid_unauth_pipelining = cfg.smtpd.forbid_unauth_pipelining;
        session.bare_lf = match cfg.smtpd.bare_lf {
            config::BareLfSetting::Normalize => BareLf::Normalize,
            config::BareLfSetting::Reject => BareLf::Reject,
        };
        let sasl = match old {
            Some(o) if o.sasl.path() == cfg.auth.client_socket => o.sasl.clone(),
            _ => SaslClient::new(cfg.auth.client_socket.clone()),
        };
        let userdb = match old {
            Some(o) if o.userdb.path() == cfg.auth.userdb_socket => o.userdb.clone(),
            _ => UserdbClient::new(cfg.auth.userdb_socket.clone()),
        };
        Ok(Settings {
            smtpd: cfg.smtpd.clone(),
            hostname,
            session,
            sasl,
            userdb,
            service: cfg.auth.service.clone(),
            addresses: book,
        })
    }
}

/// The session handler given to the server runtime.
pub struct Mta {
    settings: RwLock<Arc<Settings>>,
    /// The address book the queue runner routes and notifies with; replaced with the
    /// settings on reload.
    addresses: pochta_queue::Addresses,
    spool: Spool,
    /// Stops the delivery runner when the daemon ends.
    _runner: DropGuard,
}

impl Mta {
    /// Opens the spool (recovering after a crash), starts the delivery runner.
    pub async fn start(cfg: Arc<Config>) -> Result<Mta, String> {
        let queue = cfg.queue.clone();
        let spool = tokio::task::spawn_blocking(move || Spool::open(&queue))
            .await
            .map_err(|e| format!("opening the spool: {e}"))?
            .map_err(|e| format!("queue.dir {}: {e}", cfg.queue.dir.display()))?;
        let stop = CancellationToken::new();
        let c = Arc::clone(&cfg);
        let settings = tokio::task::spawn_blocking(move || Settings::new(&c, None))
            .await
            .map_err(|e| format!("loading the address tables: {e}"))??;
        // The runner lives as long as the daemon; its handle is not needed.
        // Local domains go to LMTP; the rest to outbound delivery (never LMTP).
        let addresses = pochta_queue::Addresses::new(settings.addresses.clone());
        let mut delivery = cfg.delivery.clone();
        delivery.addresses = addresses.clone();
        delivery.hostname = cfg.smtpd.hostname.clone(); // MAILER-DAEMON@… in bounces

        // Other domains: pochta-outbound; EHLO with [outbound] helo_name, else our hostname.
        let mut outbound = cfg.outbound.clone();
        outbound.helo_name = outbound.helo_name.or_else(|| cfg.smtpd.hostname.clone());
        delivery.outbound = pochta_outbound::Outbound::new(outbound);
        drop(spawn_runner(spool.clone(), delivery, stop.clone()));
        Ok(Mta {
            settings: RwLock::new(Arc::new(settings)),
            addresses,
            spool,
            _runner: stop.drop_guard(),
        })
    }

    fn current(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl Sessions for Mta {
    type Config = Config;

    async fn serve(self: Arc<Self>, conn: Connection, session: ServerSession<Service>) {
        session::serve(self.current(), self.spool.clone(), conn, session).await;
    }

    fn busy_reply(&self, _service: &Service) -> &'static [u8] {
        b"421 4.7.0 Error: too many connections\r\n"
    }

    fn reload(&self, config: Arc<Config>) -> Result<(), String> {
        // [queue], [delivery] and listener changes take effect at the next restart; local
        // domains, aliases and SRS at once, for new RCPTs and for the queue runner.
        let old = self.current();
        let new = Settings::new(&config, Some(&old))?;
        self.addresses.replace(new.addresses.clone());
        match self.settings.write() {
            Ok(mut s) => *s = Arc::new(new),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(new),
        }
        Ok(())
    }
}
