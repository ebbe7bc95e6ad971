//! The mda-lmtp config file (`/etc/pochta/mda-lmtp.toml`): the runtime's `[server]`, `[tls]` and
//! `[[listener]]` tables plus `[lmtp]`, `[userdb]` and `[delivery]`. Every key has a default;
//! unknown keys are errors.

use pochta_server::{
    ByteSize, DaemonConfig, Duration, ListenerConfig, ServerSection, ServiceKind, TlsSection,
};
use serde::Deserialize;
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
    pub lmtp: LmtpSection,
    #[serde(default)]
    pub userdb: UserdbSection,
    #[serde(default)]
    pub delivery: DeliverySection,
}

/// The one kind of listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Lmtp,
}

impl ServiceKind for Service {
    fn name(&self) -> &'static str {
        "lmtp"
    }
    fn default_idle_timeout(&self) -> std::time::Duration {
        // Postfix's lmtp client waits 10 min for the final DATA reply; 5 min idle like smtpd.
        std::time::Duration::from_secs(300)
    }
}

/// What to do with a bare LF in commands and message content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareLfSetting {
    #[default]
    Normalize,
    Reject,
}

/// `[lmtp]`: the protocol side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmtpSection {
    /// Name in the greeting, LHLO reply and Received headers; default: the system host name.
    pub hostname: Option<String>,
    /// Largest message accepted (advertised as SIZE).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ByteSize,
    /// Most recipients per transaction.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Errors before the session is ended with 421.
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// Longest command line in octets, CRLF included.
    #[serde(default = "default_max_line")]
    pub max_line: usize,
    #[serde(default)]
    pub bare_lf: BareLfSetting,
    /// Advertise CHUNKING (BDAT).
    #[serde(default = "yes")]
    pub chunking: bool,
    /// Over quota is a temporary failure (452 4.2.2) instead of 552 5.2.2 (Dovecot's
    /// `quota_full_tempfail`).
    #[serde(default)]
    pub quota_full_tempfail: bool,
}

fn default_max_message_size() -> ByteSize {
    ByteSize(50 << 20)
}
fn default_max_recipients() -> usize {
    1000
}
fn default_max_errors() -> u32 {
    20
}
fn default_max_line() -> usize {
    2048
}
fn yes() -> bool {
    true
}

impl Default for LmtpSection {
    fn default() -> Self {
        LmtpSection {
            hostname: None,
            max_message_size: default_max_message_size(),
            max_recipients: default_max_recipients(),
            max_errors: default_max_errors(),
            max_line: default_max_line(),
            bare_lf: BareLfSetting::default(),
            chunking: true,
            quota_full_tempfail: false,
        }
    }
}

/// `[userdb]`: where recipients are looked up (pochta-authd or Dovecot's auth-userdb socket).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserdbSection {
    #[serde(default = "default_userdb_socket")]
    pub socket: PathBuf,
    /// `service=` sent with each lookup.
    #[serde(default = "default_service")]
    pub service: String,
}

fn default_userdb_socket() -> PathBuf {
    PathBuf::from("/run/pochta/auth-userdb")
}
fn default_service() -> String {
    "lmtp".into()
}

impl Default for UserdbSection {
    fn default() -> Self {
        UserdbSection {
            socket: default_userdb_socket(),
            service: default_service(),
        }
    }
}

/// `[delivery]`: where and how mail is stored.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySection {
    /// Maildir path when the userdb gives no `mail=`: `%u` user, `%n` local part, `%d` domain,
    /// `%h` or `~` home, `%%` a percent sign; `maildir:` prefix optional.
    #[serde(default = "default_mail_location")]
    pub mail_location: String,
    /// Separates the user from an address extension: `alice+news@…` → `alice`. Several
    /// characters = any of them (Postfix `recipient_delimiter`). Empty = no extensions.
    #[serde(default = "default_delimiter")]
    pub recipient_delimiter: String,
    /// Deliver `alice+news@…` into folder `news` when that folder exists (Dovecot's
    /// `lmtp_save_to_detail_mailbox`); INBOX otherwise.
    #[serde(default)]
    pub save_to_detail_folder: bool,
    /// Store messages with CRLF line endings as received (byte for byte); false = LF only, the
    /// way Dovecot stores them by default (`mail_save_crlf = no`).
    #[serde(default = "yes")]
    pub save_crlf: bool,
    /// Add `Delivered-To:`, `Return-Path:` and `Received:` headers.
    #[serde(default = "yes")]
    pub add_headers: bool,
    /// Give up on one recipient's delivery after this long (451 4.3.0 for it).
    #[serde(default = "default_delivery_timeout")]
    pub timeout: Duration,
    /// Write each user's mail as the uid/gid from the userdb (needs `server.user = "root"`);
    /// false = as the daemon's own user, which owns all Maildirs (the vmail model).
    #[serde(default)]
    pub per_user_ids: bool,
    /// With per_user_ids: the lowest uid and gid mail may be written as (Dovecot's
    /// first_valid_uid); users below it get 451 4.3.0.
    #[serde(default = "default_first_valid_uid")]
    pub first_valid_uid: u32,
}

fn default_first_valid_uid() -> u32 {
    500
}

fn default_mail_location() -> String {
    "/var/mail/%d/%n/Maildir".into()
}
fn default_delimiter() -> String {
    "+".into()
}
fn default_delivery_timeout() -> Duration {
    Duration::from_secs(120)
}

impl Default for DeliverySection {
    fn default() -> Self {
        DeliverySection {
            mail_location: default_mail_location(),
            recipient_delimiter: default_delimiter(),
            save_to_detail_folder: false,
            save_crlf: true,
            add_headers: true,
            timeout: default_delivery_timeout(),
            per_user_ids: false,
            first_valid_uid: default_first_valid_uid(),
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
        if self.lmtp.max_line < 512 {
            return Err("lmtp.max_line must be at least 512 (RFC 5321)".into());
        }
        if self.lmtp.max_recipients == 0 {
            return Err("lmtp.max_recipients must be > 0".into());
        }
        if self.lmtp.max_errors == 0 {
            return Err("lmtp.max_errors must be > 0".into());
        }
        pochta_mailstore::location::Template::parse(&self.delivery.mail_location)
            .map(|_| ())
            .map_err(|e| format!("delivery.mail_location: {e}"))
    }
}
