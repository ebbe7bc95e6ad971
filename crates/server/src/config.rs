//! Configuration loading and the value types every daemon's config shares.
//!
//! One TOML file per daemon, parsed into the daemon's own `serde` structs with
//! `deny_unknown_fields`. Errors carry `file:line:col` of the offending key or value, so an admin
//! can jump straight to it. Sizes and durations are human-readable (`"10M"`, `"5m"`).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration error with its position in the file.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column; `None` when the error has no position (e.g. file unreadable).
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                line,
                col,
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses a config file.
pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        position: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses config text; `path` is only used in error messages.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError {
        file: path.to_owned(),
        position: e.span().map(|span| line_col(text, span.start)),
        message: e.message().trim_end().to_owned(),
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// A duration written as `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"` or a bare number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid duration {s:?}: expected e.g. \"30s\", \"5m\", \"2h\"")
        })?;
        let millis_per = match unit.trim() {
            "ms" => 1,
            "" | "s" | "sec" | "secs" => 1_000,
            "m" | "min" | "mins" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            other => {
                return Err(format!(
                    "invalid duration unit {other:?} in {s:?} (use ms, s, m, h, d)"
                ))
            }
        };
        n.checked_mul(millis_per)
            .map(|ms| Duration(std::time::Duration::from_millis(ms)))
            .ok_or_else(|| format!("duration {s:?} is too large"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

/// A byte size written as `"64k"`, `"10M"`, `"1G"` (powers of 1024, like Postfix and Dovecot;
/// `KiB`/`MB` spellings accepted) or a bare number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size {s:?}: expected e.g. \"64k\", \"10M\", \"1G\""))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "invalid size unit {other:?} in {s:?} (use k, M, G, T)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

/// Deserializes from a string via `FromStr`, or from an integer (seconds / bytes).
macro_rules! string_or_int {
    ($ty:ty, $expect:literal, $from_int:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expect)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        let v = u64::try_from(v).map_err(|_| E::custom("must not be negative"))?;
                        Ok($from_int(v))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}
string_or_int!(
    Duration,
    "a duration such as \"30s\" or \"5m\"",
    Duration::from_secs
);
string_or_int!(ByteSize, "a size such as \"64k\" or \"10M\"", ByteSize);

/// A file mode written as an octal string, `"0660"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s.strip_prefix("0o").unwrap_or(&s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(FileMode(m)),
            _ => Err(de::Error::custom(format!(
                "invalid mode {s:?}: expected an octal string such as \"0660\""
            ))),
        }
    }
}

/// The `[server]` table every daemon has: process-wide settings of the runtime.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// User to switch to after binding when started as root. Required when started as root.
    pub user: Option<String>,
    /// Group to switch to; default: the user's primary group.
    pub group: Option<String>,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing filter directive).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// How long sessions may go on after SIGTERM before they are told goodbye.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Duration,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            user: None,
            group: None,
            log_level: default_log_level(),
            drain_timeout: default_drain_timeout(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The `[tls]` table: certificate chain and key, PEM files, re-read on SIGHUP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Oldest protocol version accepted: "1.2" (default) or "1.3".
    #[serde(default)]
    pub min_version: TlsVersion,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// How a listener uses TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plaintext only.
    #[default]
    None,
    /// Plaintext, upgraded by the protocol's STARTTLS/STLS command.
    Starttls,
    /// TLS from the first byte (ports 465, 993, 995).
    Implicit,
}

/// Where a listener listens: `"127.0.0.1:25"`, `"[::]:993"`, or an absolute path for a UNIX socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddress {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(a) => write!(f, "{a}"),
            ListenAddress::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for ListenAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.starts_with('/') {
            // sockaddr_un holds 108 bytes including the terminating NUL.
            if s.len() > 107 {
                return Err(de::Error::custom(format!(
                    "UNIX socket path {s:?} is longer than 107 bytes"
                )));
            }
            return Ok(ListenAddress::Unix(PathBuf::from(s)));
        }
        s.parse().map(ListenAddress::Tcp).map_err(|_| {
            de::Error::custom(format!(
                "invalid address {s:?}: expected \"IP:port\", \"[IPv6]:port\" or an \
                 absolute socket path"
            ))
        })
    }
}

/// A daemon's kind of listener (e.g. the mta's `smtp`, `submission`, `submissions`).
pub trait ServiceKind: Clone + fmt::Debug + Send + Sync + 'static {
    /// Name used in logs and, by default, to match systemd's `FileDescriptorName=`.
    fn name(&self) -> &'static str;
    /// Idle timeout when the listener does not set one (protocols differ: SMTP 5 min, IMAP 30 min).
    fn default_idle_timeout(&self) -> std::time::Duration;
}

/// One `[[listener]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig<S> {
    /// Which protocol role this listener serves.
    pub service: S,
    pub address: ListenAddress,
    /// systemd `FileDescriptorName=` to take instead of binding; default: the service name.
    pub fd_name: Option<String>,
    #[serde(default)]
    pub tls: TlsMode,
    /// Most concurrent sessions on this listener; the next one gets the protocol's "too many
    /// connections" reply.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Most concurrent sessions from one client IP (TCP only).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// Close a session that sends nothing for this long; default depends on the protocol.
    pub idle_timeout: Option<Duration>,
    /// UNIX sockets: owner and group of the socket file, and its mode.
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<FileMode>,
}

fn default_max_connections() -> u32 {
    1000
}
fn default_max_connections_per_ip() -> u32 {
    50
}

impl<S: ServiceKind> ListenerConfig<S> {
    pub fn fd_name(&self) -> &str {
        self.fd_name.as_deref().unwrap_or(self.service.name())
    }
    pub fn idle_timeout(&self) -> std::time::Duration {
        self.idle_timeout
            .map(Duration::get)
            .unwrap_or_else(|| self.service.default_idle_timeout())
    }
}

/// What the runtime needs to know of a daemon's config.
pub trait DaemonConfig: serde::de::DeserializeOwned + Send + Sync + 'static {
    type Service: ServiceKind;
    fn server(&self) -> &ServerSection;
    fn tls(&self) -> Option<&TlsSection>;
    fn listeners(&self) -> &[ListenerConfig<Self::Service>];
    /// Checks that go beyond the syntax (e.g. a TLS listener needs `[tls]`). The error text should
    /// name the key.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Checks shared by every daemon; called by the runtime after `DaemonConfig::validate`.
pub(crate) fn validate_common<C: DaemonConfig>(cfg: &C) -> Result<(), String> {
    let listeners = cfg.listeners();
    if listeners.is_empty() {
        return Err("no [[listener]] configured".into());
    }
    for (i, l) in listeners.iter().enumerate() {
        if l.tls != TlsMode::None && cfg.tls().is_none() {
            return Err(format!(
                "listener[{i}] ({}): tls = {:?} needs a [tls] table with cert and key",
                l.address, l.tls
            ));
        }
        let is_unix = matches!(l.address, ListenAddress::Unix(_));
        if !is_unix && (l.owner.is_some() || l.group.is_some() || l.mode.is_some()) {
            return Err(format!(
                "listener[{i}] ({}): owner/group/mode apply only to UNIX socket paths",
                l.address
            ));
        }
        if l.max_connections == 0 {
            return Err(format!(
                "listener[{i}] ({}): max_connections must be > 0",
                l.address
            ));
        }
        for (j, other) in listeners.iter().enumerate().skip(i + 1) {
            if other.address == l.address {
                return Err(format!(
                    "listener[{i}] and listener[{j}] both use {}",
                    l.address
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!("30s".parse::<Duration>().unwrap(), Duration::from_secs(30));
        assert_eq!("5m".parse::<Duration>().unwrap(), Duration::from_secs(300));
        assert_eq!("250ms".parse::<Duration>().unwrap().get().as_millis(), 250);
        assert!("5 parsecs".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
        assert_eq!("10M".parse::<ByteSize>().unwrap(), ByteSize(10 << 20));
        assert_eq!("64KiB".parse::<ByteSize>().unwrap(), ByteSize(64 << 10));
        assert!("99999999999999T".parse::<ByteSize>().is_err());
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct T {
        #[allow(dead_code)]
        server: ServerSection,
    }

    #[test]
    fn unknown_key_names_position() {
        let text = "[server]\nlog_level = \"info\"\n  bogus = 1\n";
        let e = parse::<T>(Path::new("x.toml"), text).unwrap_err();
        assert_eq!(e.position, Some((3, 3)));
        let s = e.to_string();
        assert!(s.starts_with("x.toml:3:3: unknown field `bogus`"), "{s}");
    }

    #[test]
    fn bad_value_names_position() {
        let text = "[server]\ndrain_timeout = \"ten\"\n";
        let e = parse::<T>(Path::new("x.toml"), text).unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
    }
}
