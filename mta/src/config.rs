//! The mta config file (`/etc/pochta/mta.toml`): the runtime's `[server]`, `[tls]` and
//! `[[listener]]` tables plus `[smtpd]` (protocol and relay policy), `[auth]` (SASL and userdb
//! sockets), the queue's own `[queue]` and `[delivery]` tables and pochta-outbound's
//! `[outbound]` (remote delivery). Every key has a default; unknown keys are errors.

use pochta_outbound::OutboundConfig;
use pochta_queue::{DeliveryConfig, QueueConfig};
use pochta_server::{
    ByteSize, DaemonConfig, ListenAddress, ListenerConfig, ServerSection, ServiceKind, TlsMode,
    TlsSection,
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
    pub smtpd: SmtpdSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub queue: QueueConfig,
    /// `[delivery]` (pochta-queue's table): LMTP, retries, notices, and `command_time_limit`
    /// — how long an aliases(5) `|command` may run before its process group is killed and
    /// the recipient deferred (Postfix command_time_limit, default 1000s).
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// The address tables (pochta-aliases owns the table: `pochta aliases` reads it too).
    /// `allow_mail_to_commands` / `allow_mail_to_files` (default off, as a config error for
    /// any `|command` or `/file` line) let aliases(5) deliver to commands and mbox files, as
    /// Postfix's local(8) does; they run as the mta's `[server] user`, so an aliases file
    /// naming them must belong to that user (checked at load: `--check-config`, start,
    /// SIGHUP), never root.
    #[serde(default)]
    pub aliases: pochta_aliases::TableConfig,
    #[serde(default)]
    pub srs: SrsSection,
}

/// Listener roles (Postfix master.cf's smtp, submission, submissions services, and the local
/// submission socket `sendmail` talks to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// MX, port 25: STARTTLS offered, no AUTH unless `smtpd.auth_on_smtp`; relaying only for
    /// trusted networks.
    Smtp,
    /// Port 587: STARTTLS, AUTH (over TLS only) required before MAIL.
    Submission,
    /// Port 465: implicit TLS, AUTH required before MAIL.
    Submissions,
    /// UNIX socket for local programs (`sendmail`): no TLS, no AUTH, trusted to relay; the
    /// peer's uid goes into the Received header and the logs.
    Local,
}

impl ServiceKind for Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
            Service::Local => "local",
        }
    }
    fn default_idle_timeout(&self) -> std::time::Duration {
        // Postfix smtpd_timeout = 300s.
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

/// `[smtpd]`: the SMTP side and the relay policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpdSection {
    /// Our name in the greeting, EHLO reply, Received headers and Message-IDs; default: the
    /// system host name.
    pub hostname: Option<String>,
    /// Greeting text after the host name.
    #[serde(default = "default_banner")]
    pub banner: String,
    /// Domains whose mail is delivered here (over LMTP); recipients in them are checked on
    /// the userdb socket at RCPT time. Compared case-insensitively.
    #[serde(default)]
    pub local_domains: Vec<String>,
    /// The domain bare names get (`sendmail root`, `RCPT TO:<Postmaster>`, bare alias
    /// targets, `double_bounce_recipient`); Postfix myorigin. Default: the first of
    /// `local_domains`, else `hostname`.
    pub myorigin: Option<String>,
    /// Clients (CIDR) allowed to relay without AUTH (Postfix mynetworks). Default: none.
    #[serde(default)]
    pub trusted_networks: Vec<Network>,
    /// Largest message in octets (advertised as SIZE; Postfix message_size_limit).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ByteSize,
    /// Most recipients per message (Postfix smtpd_recipient_limit).
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Errors before the session is ended with 421 (Postfix smtpd_hard_error_limit).
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// Longest command line in octets, CRLF included (Postfix line_length_limit).
    #[serde(default = "default_max_line")]
    pub max_line: usize,
    /// Bare LF in commands and DATA: "normalize" (store as CRLF) or "reject" (550 5.5.2).
    /// Either way only CRLF.CRLF ends DATA.
    #[serde(default)]
    pub bare_lf: BareLfSetting,
    /// End the session when an unauthenticated client pipelines where RFC 2920 forbids it
    /// (Postfix smtpd_forbid_unauth_pipelining).
    #[serde(default = "yes")]
    pub forbid_unauth_pipelining: bool,
    /// Separates a user from an address extension for the userdb check (`alice+news@` →
    /// `alice@`). Empty = none.
    #[serde(default = "default_delimiter")]
    pub recipient_delimiter: String,
    /// Offer AUTH on `smtp` listeners too (after STARTTLS). Submission always offers it.
    #[serde(default)]
    pub auth_on_smtp: bool,
    /// An authenticated user may only use a MAIL FROM that is their login (or its
    /// +extension; a bare login name also in every local domain). The null sender is allowed.
    #[serde(default)]
    pub sender_login_match: bool,
    /// Add Message-ID and Date to mail from authenticated or local clients when missing
    /// (Postfix adds them for its own submissions).
    #[serde(default = "yes")]
    pub add_missing_headers: bool,
    /// Received: headers, ours included, at which a message is refused as a mail loop (554
    /// 5.4.6 at the end of DATA; Postfix hopcount_limit, default 50).
    #[serde(default = "default_hopcount_limit")]
    pub hopcount_limit: usize,
}

fn default_banner() -> String {
    "ESMTP pochta".into()
}
fn default_max_message_size() -> ByteSize {
    ByteSize(10_240_000)
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
fn default_hopcount_limit() -> usize {
    50
}
fn default_delimiter() -> String {
    "+".into()
}
fn yes() -> bool {
    true
}

impl Default for SmtpdSection {
    fn default() -> Self {
        SmtpdSection {
            hostname: None,
            banner: default_banner(),
            local_domains: Vec::new(),
            myorigin: None,
            trusted_networks: Vec::new(),
            max_message_size: default_max_message_size(),
            max_recipients: default_max_recipients(),
            max_errors: default_max_errors(),
            max_line: default_max_line(),
            bare_lf: BareLfSetting::default(),
            forbid_unauth_pipelining: true,
            recipient_delimiter: default_delimiter(),
            auth_on_smtp: false,
            sender_login_match: false,
            add_missing_headers: true,
            hopcount_limit: default_hopcount_limit(),
        }
    }
}

/// `[srs]`: the Sender Rewriting Scheme for forwarded mail (as postsrsd does it): mail that
/// an alias sends on to another domain leaves with `SRS0=…@domain` as its sender, so SPF
/// passes at the receiver, and bounces to that address are turned back into the original.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrsSection {
    /// Our SRS domain (its SPF must allow this server). Unset: SRS off.
    pub domain: Option<String>,
    /// One secret per line, the first signs, all verify (postsrsd's file; readable only by
    /// the mta's user).
    pub secret_file: Option<PathBuf>,
}

/// `[auth]`: pochta-authd's (or Dovecot's) sockets.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// auth-client socket: SASL for AUTH (Dovecot: /run/dovecot/auth-client).
    #[serde(default = "default_client_socket")]
    pub client_socket: PathBuf,
    /// auth-userdb socket: recipient checks for local domains (Dovecot:
    /// /run/dovecot/auth-userdb).
    #[serde(default = "default_userdb_socket")]
    pub userdb_socket: PathBuf,
    /// `service=` sent with SASL requests and userdb lookups.
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
    "smtp".into()
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
        self.outbound.validate()?;
        let s = &self.smtpd;
        if s.max_line < 512 {
            return Err("smtpd.max_line must be at least 512 (RFC 5321)".into());
        }
        if s.hopcount_limit < 2 {
            // Our own Received: counts: below 2 every message would be refused as a loop.
            return Err("smtpd.hopcount_limit must be at least 2".into());
        }
        if s.max_recipients == 0 {
            return Err("smtpd.max_recipients must be > 0".into());
        }
        if s.max_errors == 0 {
            return Err("smtpd.max_errors must be > 0".into());
        }
        if s.banner.contains(['\r', '\n']) {
            return Err("smtpd.banner must be one line".into());
        }
        if let Some(h) = &s.hostname {
            if pochta_smtp::Domain::parse(h, false).is_err() {
                return Err(format!("smtpd.hostname {h:?} is not a domain name"));
            }
        }
        for d in &s.local_domains {
            if pochta_smtp::Domain::parse(d, true).is_err() {
                return Err(format!("smtpd.local_domains: {d:?} is not a domain name"));
            }
        }
        if let Some(o) = &s.myorigin {
            if pochta_smtp::Domain::parse(o, true).is_err() {
                return Err(format!("smtpd.myorigin {o:?} is not a domain name"));
            }
        }
        if self.aliases.expansion_limit == 0 || self.aliases.recursion_limit == 0 {
            return Err("aliases.expansion_limit and recursion_limit must be > 0".into());
        }
        if self.srs.domain.is_some() != self.srs.secret_file.is_some() {
            return Err("srs.domain and srs.secret_file go together".into());
        }
        // The tables themselves: syntax, pipes without permission, loops, with file:line.
        crate::addresses::AddressBook::load(self)?;
        for (i, l) in self.listeners.iter().enumerate() {
            let unix = matches!(l.address, ListenAddress::Unix(_));
            match l.service {
                Service::Local if !unix || l.tls != TlsMode::None => {
                    return Err(format!(
                        "listener[{i}]: service \"local\" needs a UNIX socket path and \
                         tls = \"none\""
                    ))
                }
                Service::Submissions if l.tls != TlsMode::Implicit => {
                    return Err(format!(
                        "listener[{i}]: service \"submissions\" needs tls = \"implicit\""
                    ))
                }
                Service::Submission if l.tls != TlsMode::Starttls => {
                    return Err(format!(
                        "listener[{i}]: service \"submission\" needs tls = \"starttls\" \
                         (AUTH is only offered over TLS)"
                    ))
                }
                Service::Smtp if l.tls == TlsMode::Implicit => {
                    return Err(format!(
                        "listener[{i}]: service \"smtp\" takes tls = \"starttls\" or \"none\""
                    ))
                }
                _ => {}
            }
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
        let one: Network = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c: Config =
            toml::from_str("[[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:25\"\n")
                .unwrap();
        assert_eq!(c.smtpd.max_message_size, ByteSize(10_240_000));
        assert!(c.smtpd.forbid_unauth_pipelining);
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<Config>("[smtpd]\nbogus = 1\n").is_err());
        assert!(toml::from_str::<Config>("[auth]\nbogus = 1\n").is_err());
        let bad: Config =
            toml::from_str("[[listener]]\nservice = \"local\"\naddress = \"127.0.0.1:25\"\n")
                .unwrap();
        assert!(bad.validate().is_err());
        assert_eq!(c.smtpd.hopcount_limit, 50);
        let loop_all: Config = toml::from_str(
            "[smtpd]\nhopcount_limit = 1\n[[listener]]\nservice = \"smtp\"\n\
             address = \"127.0.0.1:25\"\n",
        )
        .unwrap();
        assert_eq!(
            loop_all.validate(),
            Err("smtpd.hopcount_limit must be at least 2".into())
        );
    }
}
