//! pochta-authd's configuration (etc/authd.toml documents every key).

use pochta_server::{
    DaemonConfig, Duration, ListenerConfig, ServerSection, ServiceKind, TlsSection,
};
use serde::Deserialize;
use std::path::PathBuf;

/// The whole `authd.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: user, log level, drain time.
    #[serde(default)]
    pub server: ServerSection,
    /// `[[listener]]`: UNIX sockets only.
    #[serde(rename = "listener", default)]
    pub listeners: Vec<ListenerConfig<Service>>,
    /// `[passdb]`: where credentials come from.
    pub passdb: PassdbSection,
    /// `[userdb]`: defaults for user fields.
    #[serde(default)]
    pub userdb: UserdbSection,
    /// `[auth]`: mechanisms and login policy.
    #[serde(default)]
    pub auth: AuthSection,
}

/// The two protocols authd serves (docs/formats.md#auth-client-handshake and #auth-userdb).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Service {
    /// SASL for Postfix, Exim, Dovecot and pochta's own daemons.
    #[serde(rename = "auth-client")]
    AuthClient,
    /// USER/PASS/LIST lookups for LMTP, LDA and doveadm (Dovecot's auth-userdb / auth-master).
    #[serde(rename = "auth-userdb")]
    AuthUserdb,
}

impl ServiceKind for Service {
    fn name(&self) -> &'static str {
        match self {
            Service::AuthClient => "auth-client",
            Service::AuthUserdb => "auth-userdb",
        }
    }
    fn default_idle_timeout(&self) -> std::time::Duration {
        // Clients (Postfix's smtpd, our daemons) keep one connection open for their lifetime.
        std::time::Duration::from_secs(24 * 3600)
    }
}

/// `[passdb]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassdbSection {
    /// Only "passwd-file" so far; SQL and LDAP follow.
    #[serde(default = "default_driver")]
    pub driver: PassdbDriver,
    /// The passwd-file (Dovecot format).
    pub path: PathBuf,
    /// Scheme of stored passwords without a `{SCHEME}` prefix (Dovecot: CRYPT).
    #[serde(default = "default_scheme")]
    pub default_scheme: String,
}

/// Passdb/userdb backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum PassdbDriver {
    /// Dovecot's passwd-file format.
    #[serde(rename = "passwd-file")]
    PasswdFile,
}

fn default_driver() -> PassdbDriver {
    PassdbDriver::PasswdFile
}
fn default_scheme() -> String {
    "CRYPT".to_owned()
}

/// Defaults for fields a user's entry does not set. Templates take %u, %n, %d.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserdbSection {
    /// uid for users whose entry has none (a number or a user name), e.g. "vmail".
    pub uid: Option<String>,
    /// gid for users whose entry has none (a number or a group name).
    pub gid: Option<String>,
    /// e.g. "/var/mail/%d/%n"
    pub home: Option<String>,
    /// e.g. "maildir:~/Maildir"
    pub mail: Option<String>,
    /// e.g. "*:storage=1G"
    pub quota_rule: Option<String>,
}

/// `[auth]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// SASL mechanisms offered.
    #[serde(default = "default_mechanisms")]
    pub mechanisms: Vec<Mech>,
    /// Every failed authentication is answered after this delay (Dovecot's auth_failure_delay).
    #[serde(default = "default_failure_delay")]
    pub failure_delay: Duration,
    /// How user names are normalised before lookup.
    #[serde(default)]
    pub username_format: UsernameFormat,
    /// Appended as `@domain` to user names without one (Dovecot's auth_default_realm).
    pub default_domain: Option<String>,
    /// Accept weak stored schemes (MD5-CRYPT, PLAIN-MD5, SHA1, DES crypt…) for verification.
    #[serde(default)]
    pub allow_weak_schemes: bool,
    /// Penalty of a remote IP after its first failed login; it doubles with every further
    /// failure (Dovecot: 2 s doubling, i.e. 4 s after one failure).
    #[serde(default = "default_penalty_init")]
    pub penalty_init: Duration,
    /// Longest penalty wait (Dovecot: 15 s).
    #[serde(default = "default_penalty_max")]
    pub penalty_max: Duration,
    /// Host name in CRAM-MD5 challenges; default: the system's host name.
    pub hostname: Option<String>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mechanisms: default_mechanisms(),
            failure_delay: default_failure_delay(),
            username_format: UsernameFormat::default(),
            default_domain: None,
            allow_weak_schemes: false,
            penalty_init: default_penalty_init(),
            penalty_max: default_penalty_max(),
            hostname: None,
        }
    }
}

fn default_mechanisms() -> Vec<Mech> {
    vec![Mech::Plain, Mech::Login]
}
fn default_failure_delay() -> Duration {
    Duration::from_secs(2)
}
fn default_penalty_init() -> Duration {
    Duration::from_secs(2)
}
fn default_penalty_max() -> Duration {
    Duration::from_secs(15)
}

/// A SASL mechanism authd implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum Mech {
    /// RFC 4616.
    #[serde(rename = "PLAIN")]
    Plain,
    /// draft-murchison-sasl-login.
    #[serde(rename = "LOGIN")]
    Login,
    /// RFC 2195; needs `{CRAM-MD5}` or cleartext passwords.
    #[serde(rename = "CRAM-MD5")]
    CramMd5,
    /// RFC 5802; needs `{SCRAM-SHA-1}` or cleartext passwords.
    #[serde(rename = "SCRAM-SHA-1")]
    ScramSha1,
    /// RFC 7677; needs `{SCRAM-SHA-256}` or cleartext passwords.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
}

impl Mech {
    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mech::Plain => "PLAIN",
            Mech::Login => "LOGIN",
            Mech::CramMd5 => "CRAM-MD5",
            Mech::ScramSha1 => "SCRAM-SHA-1",
            Mech::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsernameFormat {
    /// Lowercase the whole name (Dovecot's default `%Lu`): `Alice@Example.ORG` is alice, as
    /// every admin coming from Dovecot and Postfix expects.
    #[default]
    Lowercase,
    /// Lowercase only the domain part (local parts may be case-sensitive, RFC 5321 §2.4).
    LowercaseDomain,
    /// Use names as given.
    AsIs,
}

impl DaemonConfig for Config {
    type Service = Service;
    fn server(&self) -> &ServerSection {
        &self.server
    }
    fn tls(&self) -> Option<&TlsSection> {
        None
    }
    fn listeners(&self) -> &[ListenerConfig<Service>] {
        &self.listeners
    }
    fn validate(&self) -> Result<(), String> {
        for l in &self.listeners {
            if !matches!(l.address, pochta_server::ListenAddress::Unix(_)) {
                return Err(format!(
                    "listener {}: authd serves UNIX sockets only (the protocol is not encrypted)",
                    l.address
                ));
            }
            if l.tls != pochta_server::TlsMode::None {
                return Err(format!(
                    "listener {}: tls is not supported on auth sockets",
                    l.address
                ));
            }
        }
        if self.auth.mechanisms.is_empty() {
            return Err("auth.mechanisms: at least one mechanism is needed".into());
        }
        if let Err(e) = self
            .passdb
            .default_scheme
            .parse::<pochta_password::Scheme>()
        {
            return Err(format!("passdb.default_scheme: {e}"));
        }
        let templates = [
            ("userdb.home", &self.userdb.home),
            ("userdb.mail", &self.userdb.mail),
        ];
        for (key, t) in templates {
            if let Some(t) = t {
                crate::template::expand(t, "user@example.org")
                    .map_err(|e| format!("{key}: {e}"))?;
            }
        }
        if self.auth.penalty_init.get() > self.auth.penalty_max.get() {
            return Err("auth.penalty_init: larger than auth.penalty_max".into());
        }
        Ok(())
    }
}
