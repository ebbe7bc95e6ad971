//! pochta-authd: SASL authentication and user lookups over Dovecot's auth protocol, a drop-in
//! for Dovecot's auth service beside Postfix (`smtpd_sasl_type = dovecot`), Exim, chasquid,
//! Dovecot's own LMTP/LDA/doveadm, and pochta's daemons.
//!
//! Two kinds of UNIX-socket listener: `auth-client` (SASL: PLAIN, LOGIN, CRAM-MD5,
//! SCRAM-SHA-1, SCRAM-SHA-256, each usable for a user only when the stored scheme allows it)
//! and `auth-userdb` (USER, PASS, LIST for delivery agents and doveadm). Users come from a
//! Dovecot passwd-file behind the [`backend::Backend`] trait (SQL and LDAP can follow),
//! re-read when it changes. Failed authentications are answered after a failure delay, and a
//! remote IP that keeps failing is slowed further (Dovecot's auth penalty).
//!
//! Trust: the config and the passwd-file come from the admin. Clients of the sockets are local
//! processes, trusted for what they report about the end user (`rip=`, `secured`) but not for
//! well-formed input: every line goes through pochta-auth-proto's limits, and a client can
//! neither crash the daemon nor learn whether a user exists. Passwords and SASL payloads are
//! never logged.
//!
//! Runs as root only to bind its sockets (owner/group/mode from the config), then as
//! `[server] user` — an account that can read the passwd-file (Dovecot's `dovenull`/`dovecot`
//! split is not needed: there are no login processes).
//!
//! Specs: Dovecot auth protocol 1.2 (docs/formats.md#dovecot-auth-protocol), passwd-file and
//! schemes (docs/formats.md#passwd-file, #password-schemes; through pochta-password),
//! RFC 4616 (PLAIN), draft-murchison-sasl-login (LOGIN), RFC 2195
//! (CRAM-MD5), RFC 5802 / RFC 7677 (SCRAM). Dependencies beyond the workspace's: sha1, sha2,
//! hmac and subtle for the SCRAM exchange's own HMACs and constant-time compares (the stored
//! keys come from pochta-password), getrandom for nonces and cookies.

#![forbid(unsafe_code)]

pub mod backend;
mod client_session;
pub mod config;
mod passwd_file;
mod penalty;
mod random;
mod sasl;
mod template;
mod userdb_session;
mod users;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use config::{Config, Service};
use pochta_auth_proto::Mechanism;
use pochta_password::Scheme;
use pochta_server::{Connection, Session, Sessions};

/// Everything derived from one config; replaced as a whole on reload.
pub(crate) struct State {
    pub(crate) config: Arc<Config>,
    pub(crate) users: Arc<users::Users>,
    /// Advertised in every auth-client handshake, in this order.
    pub(crate) mechanisms: Vec<Mechanism>,
    /// For CRAM-MD5 challenges.
    pub(crate) hostname: String,
    /// Key for the made-up SCRAM salts of unknown users (stable for this process).
    pub(crate) fake_salt_key: [u8; 32],
}

impl State {
    fn build(config: Arc<Config>, fake_salt_key: [u8; 32]) -> Result<State, String> {
        let default_scheme: Scheme = config
            .passdb
            .default_scheme
            .parse()
            .map_err(|e| format!("passdb.default_scheme: {e}"))?;
        let backend = passwd_file::PasswdFile::open(&config.passdb.path)
            .map_err(|e| format!("passdb.path: {e}"))?;
        let mechanisms = config
            .auth
            .mechanisms
            .iter()
            .filter_map(|m| Mechanism::dovecot_default(m.name()))
            .collect();
        let hostname = match &config.auth.hostname {
            Some(h) => h.clone(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".to_owned()),
        };
        let users = users::Users::new(Arc::new(backend), Arc::clone(&config), default_scheme);
        Ok(State {
            config,
            users: Arc::new(users),
            mechanisms,
            hostname,
            fake_salt_key,
        })
    }
}

/// The daemon: its current state, the brute-force penalty table and the connection counter.
pub struct Authd {
    state: RwLock<Arc<State>>,
    pub(crate) penalty: penalty::Penalty,
    connections: AtomicU32,
}

impl Authd {
    /// Builds the daemon from a checked config; opens the passwd-file now so a wrong path
    /// stops the start.
    pub fn new(config: Arc<Config>) -> Result<Authd, String> {
        let penalty = penalty::Penalty::new(
            config.auth.penalty_init.get(),
            config.auth.penalty_max.get(),
        );
        let state = State::build(config, random::bytes::<32>())?;
        Ok(Authd {
            state: RwLock::new(Arc::new(state)),
            penalty,
            connections: AtomicU32::new(0),
        })
    }

    pub(crate) fn state(&self) -> Arc<State> {
        // Writers only swap the Arc: a poisoned lock still holds a complete state.
        Arc::clone(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Sessions for Authd {
    type Config = Config;

    async fn serve(self: Arc<Self>, conn: Connection, session: Session<Service>) {
        match session.service {
            Service::AuthClient => {
                let cuid = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
                client_session::serve(self, conn, cuid).await;
            }
            Service::AuthUserdb => userdb_session::serve(self, conn, session).await,
        }
    }

    fn busy_reply(&self, _service: &Service) -> &'static [u8] {
        // The auth protocol has no "busy" line: clients see the close and retry.
        b""
    }

    fn reload(&self, config: Arc<Config>) -> Result<(), String> {
        let key = self.state().fake_salt_key;
        let state = State::build(config, key)?;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        tracing::info!("configuration reloaded");
        Ok(())
    }
}
