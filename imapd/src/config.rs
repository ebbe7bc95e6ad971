//! The imapd config file (`/etc/pochta/imapd.toml`): the runtime's `[server]`, `[tls]` and
//! `[[listener]]` tables plus `[imap]`, `[[imap.mailbox]]`, `[auth]` and `[mail]`. Every key
//! has a default; unknown keys are errors.

use crate::session::SessionConfig;
use pochta_imap_proto::Limits;
use pochta_mailstore::location::Template;
use pochta_server::config::ByteSize;
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
    pub imap: ImapSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub mail: MailSection,
}

/// Listener roles: `imap` (143, STARTTLS) and `imaps` (993, implicit TLS).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Imap,
    Imaps,
}

impl ServiceKind for Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Imap => "imap",
            Service::Imaps => "imaps",
        }
    }
    fn default_idle_timeout(&self) -> std::time::Duration {
        // RFC 9051 §5.4: an autologout timer of at least 30 minutes (IDLE clients re-issue
        // IDLE every 29 minutes).
        std::time::Duration::from_secs(30 * 60)
    }
}

/// A mailbox with a special use (RFC 6154), created (and subscribed) at login when missing,
/// like Dovecot's `mailbox NAME { special_use = …; auto = subscribe }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialMailbox {
    pub name: String,
    /// `\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`, `\All`, `\Flagged`.
    pub special_use: String,
    /// `create`, `subscribe` (create and subscribe) or `no`.
    #[serde(default = "default_auto")]
    pub auto: String,
}

fn default_auto() -> String {
    "subscribe".into()
}

fn default_mailboxes() -> Vec<SpecialMailbox> {
    [
        ("Drafts", "\\Drafts"),
        ("Sent", "\\Sent"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
        ("Archive", "\\Archive"),
    ]
    .into_iter()
    .map(|(n, u)| SpecialMailbox {
        name: n.into(),
        special_use: u.into(),
        auto: default_auto(),
    })
    .collect()
}

/// `[imap]`: the protocol side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSection {
    /// Greeting text after `* OK [CAPABILITY …] `.
    #[serde(default = "default_greeting")]
    pub greeting: String,
    /// Longest command line after login (between literals), CRLF included.
    #[serde(default = "default_max_line")]
    pub max_line: usize,
    /// Largest APPEND message (and literal) after login.
    #[serde(default = "default_max_message")]
    pub max_message_size: ByteSize,
    /// Malformed or unknown commands before the session is closed.
    #[serde(default = "default_max_bad_commands")]
    pub max_bad_commands: u32,
    /// Failed logins before the session is closed.
    #[serde(default = "default_max_auth_failures")]
    pub max_auth_failures: u32,
    /// Networks (CIDR) whose clients may log in with plaintext credentials without TLS.
    #[serde(default)]
    pub trusted_networks: Vec<Network>,
    /// Special-use mailboxes.
    #[serde(rename = "mailbox", default = "default_mailboxes")]
    pub mailboxes: Vec<SpecialMailbox>,
}

fn default_greeting() -> String {
    "pochta ready.".into()
}
fn default_max_line() -> usize {
    64 * 1024
}
fn default_max_message() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_max_bad_commands() -> u32 {
    20
}
fn default_max_auth_failures() -> u32 {
    3
}

impl Default for ImapSection {
    fn default() -> Self {
        ImapSection {
            greeting: default_greeting(),
            max_line: default_max_line(),
            max_message_size: default_max_message(),
            max_bad_commands: default_max_bad_commands(),
            max_auth_failures: default_max_auth_failures(),
            trusted_networks: Vec::new(),
            mailboxes: default_mailboxes(),
        }
    }
}

impl ImapSection {
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            greeting: self.greeting.clone(),
            max_bad_commands: self.max_bad_commands,
            max_auth_failures: self.max_auth_failures,
            limits: Limits {
                max_line: self.max_line,
                max_literal: self.max_message_size.0,
                max_command: usize::try_from(self.max_message_size.0)
                    .unwrap_or(usize::MAX)
                    .saturating_add(self.max_line * 4),
                max_nonsync: None,
            },
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
    #[serde(default = "default_client_socket")]
    pub client_socket: PathBuf,
    #[serde(default = "default_userdb_socket")]
    pub userdb_socket: PathBuf,
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
    "imap".into()
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

/// `[mail]`: where INBOX is when the userdb does not say.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
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

const SPECIAL_USES: [&str; 7] = [
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
];

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
        if !(1024..=16 * 1024 * 1024).contains(&self.imap.max_line) {
            return Err("imap.max_line must be between 1024 and 16777216".into());
        }
        if self.imap.max_bad_commands == 0 || self.imap.max_auth_failures == 0 {
            return Err("imap.max_bad_commands and imap.max_auth_failures must be > 0".into());
        }
        if self.imap.greeting.contains(['\r', '\n']) {
            return Err("imap.greeting must be one line".into());
        }
        for m in &self.imap.mailboxes {
            if !SPECIAL_USES
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&m.special_use))
            {
                return Err(format!(
                    "imap.mailbox {:?}: special_use {:?} is not one of {}",
                    m.name,
                    m.special_use,
                    SPECIAL_USES.join(" ")
                ));
            }
            if !["create", "subscribe", "no"].contains(&m.auto.as_str()) {
                return Err(format!(
                    "imap.mailbox {:?}: auto must be create, subscribe or no",
                    m.name
                ));
            }
            pochta_mailstore::MailboxName::new(&m.name)
                .map_err(|e| format!("imap.mailbox {:?}: {e}", m.name))?;
        }
        Ok(())
    }
}

pub use pochta_server::net::Network;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let c: Config =
            toml::from_str("[[listener]]\nservice = \"imap\"\naddress = \"127.0.0.1:143\"\n")
                .unwrap();
        assert_eq!(c.imap.max_line, 65536);
        assert_eq!(c.imap.mailboxes.len(), 5);
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<Config>("[imap]\nbogus = 1\n").is_err());
        assert!(toml::from_str::<Config>(
            "[[imap.mailbox]]\nname = \"S\"\nspecial_use = \"\\\\Sent\"\nx = 1\n"
        )
        .is_err());
    }

    #[test]
    fn sample_config_parses() {
        let text = include_str!("../../etc/imapd.toml");
        let c: Config = toml::from_str(text).unwrap();
        assert!(c.validate().is_ok());
    }
}
