//! The pop3d config file (`/etc/pochta/pop3d.toml`): the runtime's `[server]`, `[tls]` and
//! `[[listener]]` tables plus `[pop3]`, `[auth]` and `[mail]`. Every key has a default; unknown
//! keys are errors.

use crate::session::SessionConfig;
use pochta_mailstore::location::Template;
use pochta_server::{DaemonConfig, ListenerConfig, ServerSection, ServiceKind, TlsSection};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerSection,
    pub tls: Option<TlsSection>,
    #[serde(rename = "listener", default)]
    pub listeners: Vec<ListenerConfig<Service>>,
    #[serde(default)]
    pub pop3: Pop3Section,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub mail: MailSection,
}

/// Listener roles: `pop3` (110, STLS) and `pop3s` (995, implicit TLS). Both speak the same
/// protocol; the name is for logs and systemd's `FileDescriptorName=`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Pop3,
    Pop3s,
}

impl ServiceKind for Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Pop3 => "pop3",
            Service::Pop3s => "pop3s",
        }
    }
    fn default_idle_timeout(&self) -> std::time::Duration {
        // RFC 1939 §3: an inactivity autologout timer of at least 10 minutes.
        std::time::Duration::from_secs(600)
    }
}

/// `[pop3]`: the protocol side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pop3Section {
    /// Text of the greeting after `+OK `.
    #[serde(default = "default_greeting")]
    pub greeting: String,
    /// CAPA IMPLEMENTATION value; "" = not shown.
    #[serde(default = "default_implementation")]
    pub implementation: String,
    /// Longest command line in octets, CRLF included (SASL responses may be up to 16 KiB).
    #[serde(default = "default_max_line")]
    pub max_line: usize,
    /// Unknown or malformed commands before the session is closed.
    #[serde(default = "default_max_bad_commands")]
    pub max_bad_commands: u32,
    /// Failed logins before the session is closed (the auth server delays each failure).
    #[serde(default = "default_max_auth_failures")]
    pub max_auth_failures: u32,
    /// Networks (CIDR) whose clients may log in with plaintext credentials without TLS
    /// (Dovecot's login_trusted_networks with disable_plaintext_auth).
    #[serde(default)]
    pub trusted_networks: Vec<Network>,
    /// Set \Seen on messages retrieved with RETR, at QUIT (Dovecot's default
    /// `pop3_no_flag_updates = no`).
    #[serde(default = "yes")]
    pub mark_seen: bool,
}

fn default_greeting() -> String {
    "pochta ready.".into()
}
fn default_implementation() -> String {
    "pochta".into()
}
fn default_max_line() -> usize {
    1024
}
fn default_max_bad_commands() -> u32 {
    10
}
fn default_max_auth_failures() -> u32 {
    3
}
fn yes() -> bool {
    true
}

impl Default for Pop3Section {
    fn default() -> Self {
        Pop3Section {
            greeting: default_greeting(),
            implementation: default_implementation(),
            max_line: default_max_line(),
            max_bad_commands: default_max_bad_commands(),
            max_auth_failures: default_max_auth_failures(),
            trusted_networks: Vec::new(),
            mark_seen: true,
        }
    }
}

impl Pop3Section {
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            greeting: self.greeting.clone(),
            implementation: self.implementation.clone(),
            max_line: self.max_line,
            max_bad_commands: self.max_bad_commands,
            max_auth_failures: self.max_auth_failures,
        }
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_networks.iter().any(|n| n.contains(ip))
    }
}

/// `[auth]`: pochta-authd's (or Dovecot's) sockets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// auth-client socket (SASL, USER/PASS).
    #[serde(default = "default_client_socket")]
    pub client_socket: PathBuf,
    /// auth-userdb socket (home, mail location after login).
    #[serde(default = "default_userdb_socket")]
    pub userdb_socket: PathBuf,
    /// `service=` sent with each request.
    #[serde(default = "default_service")]
    pub service: String,
}

fn default_client_socket() -> PathBuf {
    "/run/pochta/auth-client".into()
}
fn default_userdb_socket() -> PathBuf {
    "/run/pochta/auth-userdb".into()
}
fn default_service() -> String {
    "pop3".into()
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            client_socket: default_client_socket(),
            userdb_socket: default_userdb_socket(),
            service: default_service(),
        }
    }
}

/// `[mail]`: where INBOX is when the userdb does not say (`mail=` field).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    /// Mail location template: `%u` user, `%n` local part, `%d` domain, `%h`/`~` home;
    /// an optional `maildir:` prefix.
    #[serde(default = "default_location")]
    pub location: String,
}

fn default_location() -> String {
    "/var/mail/%d/%n/Maildir".into()
}

impl Default for MailSection {
    fn default() -> Self {
        MailSection {
            location: default_location(),
        }
    }
}

impl DaemonConfig for Config {
    type Service = Service;
    fn server(&self) -> &ServerSection {
        &self.server
    }
    fn tls(&self) -> Option<&TlsSection> {
        self.tls.as_ref()
    }
    fn listeners(&self) -> &[ListenerConfig<Service>] {
        &self.listeners
    }
    fn validate(&self) -> Result<(), String> {
        Template::parse(&self.mail.location).map_err(|e| format!("mail.location: {e}"))?;
        if !(64..=65536).contains(&self.pop3.max_line) {
            return Err("pop3.max_line must be between 64 and 65536".into());
        }
        if self.pop3.max_bad_commands == 0 || self.pop3.max_auth_failures == 0 {
            return Err("pop3.max_bad_commands and pop3.max_auth_failures must be > 0".into());
        }
        if self.pop3.greeting.contains(['\r', '\n']) {
            return Err("pop3.greeting must be one line".into());
        }
        Ok(())
    }
}

pub use pochta_server::net::Network;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let n: Network = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let one: Network = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("nonsense".parse::<Network>().is_err());
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c: Config =
            toml::from_str("[[listener]]\nservice = \"pop3\"\naddress = \"127.0.0.1:110\"\n")
                .unwrap();
        assert_eq!(c.pop3.max_line, 1024);
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<Config>("[pop3]\nbogus = 1\n").is_err());
    }
}
