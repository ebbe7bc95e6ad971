//! The `[queue]` and `[delivery]` tables of mta.toml (serde, unknown keys rejected, every
//! field defaulted). Durations are strings like `"30s"`, `"5m"`, `"4h"`, `"5d"` or plain seconds.

use pochta_smtp_client::Endpoint;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `[queue]`: where the spool lives.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Spool directory (owned by the mta's user); holds tmp/, queue/, hold/, corrupt/ and the
    /// `flush` control socket.
    pub dir: PathBuf,
    /// Most messages in one group commit (one directory fsync acknowledges all of them).
    pub max_commit_batch: usize,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            dir: PathBuf::from("/var/spool/pochta"),
            max_commit_batch: 256,
        }
    }
}

/// `[delivery]`: the local LMTP endpoint, the local delivery agent's command time limit, and
/// the retry policy.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// `unix:/run/pochta/lmtp` or `inet:127.0.0.1:24` (pochta-mda-lmtp or Dovecot LMTP).
    pub lmtp: LmtpEndpoint,
    /// Which domains go to `lmtp` (others to outbound delivery), myorigin and the aliases
    /// notices follow. Not a key of `[delivery]`: the mta shares its own (one list, one
    /// meaning, swapped on SIGHUP). Default: every recipient local, no aliases.
    #[serde(skip)]
    pub addresses: crate::Addresses,
    /// Our name in LHLO (default: the system host name).
    pub helo_name: Option<String>,
    /// Deliveries in flight at once (Postfix: default_destination_concurrency_limit = 20).
    pub concurrency: usize,
    /// Transactions on one LMTP connection before it is closed (0 = no limit).
    pub connection_reuse_limit: usize,
    /// How long an idle LMTP connection is kept for reuse.
    pub connection_idle_time: DurationStr,
    /// First retry after a temporary failure; doubled per attempt up to `maximal_backoff`
    /// (Postfix: minimal_backoff_time 300s, maximal_backoff_time 4000s).
    pub minimal_backoff: DurationStr,
    pub maximal_backoff: DurationStr,
    /// A recipient still failing temporarily after this long is given up (bounced).
    pub maximal_queue_lifetime: DurationStr,
    pub connect_timeout: DurationStr,
    /// Greeting, LHLO and each command reply.
    pub command_timeout: DurationStr,
    /// Content transfer and the final replies (Postfix: lmtp_data_done_timeout 600s).
    pub data_timeout: DurationStr,
    /// Use BDAT when the LMTP server offers CHUNKING.
    pub chunking: bool,
    /// Our name in bounces (`From: MAILER-DAEMON@…`, Reporting-MTA). Not a key of
    /// `[delivery]`: the mta sets it from `[smtpd] hostname`; `None`: `helo_name`, else the
    /// system host name (Postfix: myhostname for both).
    #[serde(skip)]
    pub hostname: Option<String>,
    /// Send the sender a delay notice (RFC 3464 action=delayed, once per recipient) when
    /// mail is still queued after this long; "0" turns it off. Postfix's compiled default is
    /// 0h (off), but its sample main.cf proposes 4h and RFC 3461 makes DELAY part of the
    /// default NOTIFY: a sender should learn within a working day's morning that mail is
    /// stuck, not after 5 days. Hence 4h.
    pub delay_warning_time: DurationStr,
    /// Queue lifetime of bounces and other mail from the null sender `<>` (Postfix
    /// bounce_queue_lifetime).
    pub bounce_queue_lifetime: DurationStr,
    /// A bounce returns the whole original (message/rfc822) only when it is at most this
    /// many bytes, else its headers (text/rfc822-headers) — Postfix's bounce_size_limit.
    pub bounce_size_limit: usize,
    /// Who gets a bounce that could not be delivered (its sender is `<>`): a bare local part
    /// is qualified with myorigin and then follows the aliases like any recipient. A
    /// postmaster notice that fails too is dropped and logged (Postfix
    /// 2bounce_notice_recipient).
    pub double_bounce_recipient: String,
    /// Longest run of an aliases(5) `|command` delivery; then its process group is killed
    /// and the recipient deferred (Postfix command_time_limit, 1000s).
    pub command_time_limit: DurationStr,
    /// Remote delivery (pochta-outbound). Not a key of `[delivery]`: the mta builds it from
    /// its `[outbound]` table.
    #[serde(skip)]
    pub outbound: pochta_outbound::Outbound,
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            lmtp: LmtpEndpoint(Endpoint::Unix(PathBuf::from("/run/pochta/lmtp"))),
            addresses: crate::Addresses::default(),
            helo_name: None,
            concurrency: 20,
            connection_reuse_limit: 100,
            connection_idle_time: DurationStr(Duration::from_secs(5)),
            minimal_backoff: DurationStr(Duration::from_secs(300)),
            maximal_backoff: DurationStr(Duration::from_secs(4 * 3600)),
            maximal_queue_lifetime: DurationStr(Duration::from_secs(5 * 86400)),
            connect_timeout: DurationStr(Duration::from_secs(30)),
            command_timeout: DurationStr(Duration::from_secs(300)),
            data_timeout: DurationStr(Duration::from_secs(600)),
            chunking: false,
            hostname: None,
            delay_warning_time: DurationStr(Duration::from_secs(4 * 3600)),
            bounce_queue_lifetime: DurationStr(Duration::from_secs(5 * 86400)),
            bounce_size_limit: 50_000,
            double_bounce_recipient: "postmaster".to_owned(),
            command_time_limit: DurationStr(Duration::from_secs(1000)),
            outbound: Default::default(),
        }
    }
}

/// An LMTP endpoint as written in config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LmtpEndpoint(pub Endpoint);

impl TryFrom<String> for LmtpEndpoint {
    type Error = String;
    fn try_from(s: String) -> Result<LmtpEndpoint, String> {
        s.parse().map(LmtpEndpoint)
    }
}

impl fmt::Display for LmtpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A duration written `"90s"`, `"5m"`, `"4h"`, `"5d"`, `"250ms"` or as integer seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DurationValue")]
pub struct DurationStr(pub Duration);

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Secs(u64),
    Text(String),
}

impl TryFrom<DurationValue> for DurationStr {
    type Error = String;
    fn try_from(v: DurationValue) -> Result<DurationStr, String> {
        match v {
            DurationValue::Secs(s) => Ok(DurationStr(Duration::from_secs(s))),
            DurationValue::Text(t) => parse_duration(&t).map(DurationStr),
        }
    }
}

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"4h"`, `"5d"`, `"1w"` or bare seconds.
pub fn parse_duration(t: &str) -> Result<Duration, String> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{t}`: expected a duration like 30s, 5m, 4h, 5d"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(format!("`{t}`: unknown unit `{unit}` (ms, s, m, h, d, w)")),
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{t}`: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        queue: Option<QueueConfig>,
        delivery: Option<DeliveryConfig>,
    }

    #[test]
    fn parses_and_defaults() {
        let d: Doc = toml::from_str(
            "[queue]\ndir = \"/tmp/q\"\n[delivery]\nlmtp = \"inet:127.0.0.1:24\"\n\
             minimal_backoff = \"1m\"\nmaximal_backoff = 3600\ncommand_time_limit = \"2s\"\n",
        )
        .unwrap();
        let q = d.queue.unwrap();
        assert_eq!(q.dir, PathBuf::from("/tmp/q"));
        let dl = d.delivery.unwrap();
        assert_eq!(
            dl.lmtp.0,
            Endpoint::Inet {
                host: "127.0.0.1".into(),
                port: 24
            }
        );
        assert_eq!(dl.minimal_backoff.0, Duration::from_secs(60));
        assert_eq!(dl.maximal_backoff.0, Duration::from_secs(3600));
        assert_eq!(dl.concurrency, 20);
        assert_eq!(dl.command_time_limit.0, Duration::from_secs(2));
        assert_eq!(
            DeliveryConfig::default().command_time_limit.0,
            Duration::from_secs(1000)
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<Doc>("[queue]\nbogus = 1\n").is_err());
        assert!(toml::from_str::<Doc>("[delivery]\nbogus = 1\n").is_err());
        assert!(toml::from_str::<Doc>("[delivery]\nlmtp = \"inet:x\"\n").is_err());
        assert!(toml::from_str::<Doc>("[delivery]\ndata_timeout = \"5 parsecs\"\n").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5d").unwrap(), Duration::from_secs(432_000));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
