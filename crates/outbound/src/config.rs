//! The `[outbound]` table of mta.toml (serde, unknown keys rejected, every field defaulted).
//! Names follow Postfix's smtp(8) parameters where one exists.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// `[outbound]`: how mail for other domains leaves.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// DNS servers as `ip:port`; empty = the `nameserver` lines of /etc/resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// One DNS query's timeout (each server is tried twice).
    pub dns_timeout: Duration2,
    /// TCP port of remote MX hosts (25; other values are for tests and private networks).
    pub port: u16,
    /// Which addresses of an MX host are tried first (Postfix smtp_address_preference).
    pub address_preference: AddressPreference,
    /// Most MX host addresses tried per delivery (Postfix smtp_mx_address_limit).
    pub mx_address_limit: usize,
    /// Our name in EHLO/HELO (default: `[delivery] helo_name`, else the host name).
    pub helo_name: Option<String>,
    /// Send all remote mail through this host (Postfix relayhost): `host` (its MX records),
    /// `[host]` (its address records only) or either with `:port`.
    pub relayhost: Option<NextHop>,
    /// File with `username:password` for AUTH at the relayhost; AUTH (PLAIN or LOGIN) is only
    /// ever sent over TLS, so a relayhost with credentials gets TLS policy `encrypt` at least.
    pub relayhost_credentials: Option<PathBuf>,
    /// Default TLS policy for remote hosts (Postfix smtp_tls_security_level): `none`, `may`
    /// (STARTTLS when offered, any certificate), `encrypt` (TLS required, certificate not
    /// checked), `verify` (TLS required, certificate chain and the MX host name checked),
    /// `dane` (RFC 7672: TLSA records from DNSSEC-validated answers of `nameservers` decide
    /// per MX host; `may` where there are none) or `dane-only` (no usable TLSA → defer).
    pub tls: TlsPolicy,
    /// Trust anchors for `verify` and MTA-STS (PEM bundle; Postfix smtp_tls_CAfile).
    pub tls_ca_file: PathBuf,
    /// Honour MTA-STS (RFC 8461) policies of recipient domains whose TLS policy is `may` or
    /// `encrypt` and that have no next-hop override: `enforce` turns the delivery into
    /// `verify` to matching MX hosts only.
    pub mta_sts: bool,
    /// HTTPS port of `mta-sts.<domain>` (443; other values are for tests).
    pub mta_sts_port: u16,
    /// Per-domain overrides (Postfix transport_maps + smtp_tls_policy_maps): the key is the
    /// recipient domain.
    pub domains: BTreeMap<String, DomainPolicy>,
    /// Remote SMTP connections open at once (all destinations).
    pub concurrency: usize,
    /// Connections to one destination at once (Postfix default_destination_concurrency_limit).
    pub destination_concurrency: usize,
    /// Transactions on one connection before it is closed (0 = no limit).
    pub connection_reuse_limit: usize,
    /// How long an idle connection is kept for the next message to the same destination
    /// (Postfix smtp_connection_cache_time_limit).
    pub connection_idle_time: Duration2,
    pub connect_timeout: Duration2,
    /// Greeting, EHLO, STARTTLS and each command reply (Postfix smtp_helo_timeout & co).
    pub command_timeout: Duration2,
    /// Content transfer and the final reply (Postfix smtp_data_done_timeout).
    pub data_timeout: Duration2,
    /// Use BDAT when the server offers CHUNKING (RFC 3030).
    pub chunking: bool,
}

impl Default for OutboundConfig {
    fn default() -> OutboundConfig {
        OutboundConfig {
            nameservers: Vec::new(),
            dns_timeout: Duration2(Duration::from_secs(5)),
            port: 25,
            address_preference: AddressPreference::Any,
            mx_address_limit: 5,
            helo_name: None,
            relayhost: None,
            relayhost_credentials: None,
            tls: TlsPolicy::May,
            tls_ca_file: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            mta_sts: true,
            mta_sts_port: 443,
            domains: BTreeMap::new(),
            concurrency: 100,
            destination_concurrency: 20,
            connection_reuse_limit: 100,
            connection_idle_time: Duration2(Duration::from_secs(2)),
            connect_timeout: Duration2(Duration::from_secs(30)),
            command_timeout: Duration2(Duration::from_secs(300)),
            data_timeout: Duration2(Duration::from_secs(600)),
            chunking: true,
        }
    }
}

/// `[outbound.domains."example.org"]`: how one recipient domain is reached.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DomainPolicy {
    /// Next hop instead of the domain's MX (same syntax as `relayhost`).
    pub relay: Option<NextHop>,
    /// TLS policy for this domain (default: `[outbound] tls`).
    pub tls: Option<TlsPolicy>,
}

impl OutboundConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.port == 0 {
            return Err("outbound.port must not be 0".into());
        }
        if self.concurrency == 0 || self.destination_concurrency == 0 {
            return Err("outbound.concurrency and destination_concurrency must be > 0".into());
        }
        if self.mx_address_limit == 0 {
            return Err("outbound.mx_address_limit must be > 0".into());
        }
        if self.relayhost_credentials.is_some() && self.relayhost.is_none() {
            return Err("outbound.relayhost_credentials needs outbound.relayhost".into());
        }
        if let Some(h) = &self.helo_name {
            if pochta_smtp::Domain::parse(h, false).is_err() {
                return Err(format!("outbound.helo_name {h:?} is not a domain name"));
            }
        }
        for d in self.domains.keys() {
            if pochta_smtp::Domain::parse(d, true).is_err() {
                return Err(format!("outbound.domains: {d:?} is not a domain name"));
            }
        }
        Ok(())
    }

    /// Whether the admin set a TLS policy for this domain (MTA-STS then does not apply).
    pub fn explicit_tls(&self, domain: &str) -> bool {
        self.domains
            .iter()
            .any(|(d, p)| d.eq_ignore_ascii_case(domain) && p.tls.is_some())
    }

    /// Policy and next hop for a recipient domain (lower-case ASCII).
    pub fn route(&self, domain: &str) -> (Option<&NextHop>, TlsPolicy) {
        let over = self
            .domains
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map(|(_, p)| p);
        let relay = over
            .and_then(|p| p.relay.as_ref())
            .or(self.relayhost.as_ref());
        let tls = over.and_then(|p| p.tls).unwrap_or(self.tls);
        (relay, tls)
    }
}

/// Postfix smtp_tls_security_level values we implement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    None,
    #[default]
    May,
    Encrypt,
    Verify,
    /// Opportunistic DANE (RFC 7672): per MX host, usable TLSA records from a secure answer →
    /// TLS authenticated by them; TLSA records that are all unusable → `encrypt`; otherwise
    /// `may`. Needs a validating resolver the mta trusts (`nameservers`, loopback).
    Dane,
    /// Mandatory DANE: an MX host without usable, DNSSEC-validated TLSA records is not used.
    #[serde(rename = "dane-only")]
    DaneOnly,
}

/// Which address family of a host is tried first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressPreference {
    /// As DNS returned them: IPv6 and IPv4 both used.
    #[default]
    Any,
    Ipv4,
    Ipv6,
    /// Only IPv4 addresses (Postfix inet_protocols = ipv4).
    Ipv4Only,
    Ipv6Only,
}

/// A next hop: Postfix's `host`, `[host]`, `host:port`, `[host]:port`; `[192.0.2.1]` literal.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct NextHop {
    pub host: String,
    /// Brackets: no MX lookup, the host's address records (or the literal) only.
    pub no_mx: bool,
    pub port: Option<u16>,
}

impl TryFrom<String> for NextHop {
    type Error = String;
    fn try_from(s: String) -> Result<NextHop, String> {
        s.parse()
    }
}

impl FromStr for NextHop {
    type Err = String;
    fn from_str(s: &str) -> Result<NextHop, String> {
        let bad = || format!("`{s}`: expected host, [host], host:port or [host]:port");
        let s = s.trim();
        let (host, no_mx, rest) = if let Some(r) = s.strip_prefix('[') {
            let (h, rest) = r.split_once(']').ok_or_else(bad)?;
            (h, true, rest)
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h, false, &s[s.len() - p.len() - 1..]),
                None => (s, false, ""),
            }
        };
        let port = match rest {
            "" => None,
            r => Some(
                r.strip_prefix(':')
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|&p| p != 0)
                    .ok_or_else(bad)?,
            ),
        };
        let literal = host.parse::<std::net::IpAddr>().is_ok();
        if host.is_empty() || (!literal && pochta_smtp::Domain::parse(host, false).is_err()) {
            return Err(bad());
        }
        Ok(NextHop {
            host: host.to_owned(),
            no_mx: no_mx || literal,
            port,
        })
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.no_mx {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// A duration written `"90s"`, `"5m"`, `"250ms"` or as integer seconds (the same notation as
/// `[delivery]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DurationValue")]
pub struct Duration2(pub Duration);

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Secs(u64),
    Text(String),
}

impl TryFrom<DurationValue> for Duration2 {
    type Error = String;
    fn try_from(v: DurationValue) -> Result<Duration2, String> {
        match v {
            DurationValue::Secs(s) => Ok(Duration2(Duration::from_secs(s))),
            DurationValue::Text(t) => parse_duration(&t).map(Duration2),
        }
    }
}

fn parse_duration(t: &str) -> Result<Duration, String> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{t}`: expected a duration like 30s, 5m, 250ms"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{t}`: unknown unit `{unit}` (ms, s, m, h)")),
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
        outbound: OutboundConfig,
    }

    #[test]
    fn parses_defaults_and_overrides() {
        let d: Doc = toml::from_str(
            "[outbound]\nnameservers = [\"127.0.0.53:5353\"]\nport = 2525\n\
             relayhost = \"[smarthost.example]:587\"\ntls = \"encrypt\"\n\
             [outbound.domains.\"Example.ORG\"]\nrelay = \"mx.example.net\"\ntls = \"verify\"\n",
        )
        .unwrap();
        let o = d.outbound;
        assert!(o.validate().is_ok());
        assert_eq!(o.nameservers, ["127.0.0.53:5353".parse().unwrap()]);
        assert_eq!(o.port, 2525);
        let rh = o.relayhost.clone().unwrap();
        assert_eq!(
            (rh.host.as_str(), rh.no_mx, rh.port),
            ("smarthost.example", true, Some(587))
        );
        let (hop, tls) = o.route("example.org");
        assert_eq!(hop.unwrap().to_string(), "mx.example.net");
        assert_eq!(tls, TlsPolicy::Verify);
        let (hop, tls) = o.route("other.example");
        assert_eq!(hop.unwrap().to_string(), "[smarthost.example]:587");
        assert_eq!(tls, TlsPolicy::Encrypt);
        assert_eq!(OutboundConfig::default().tls, TlsPolicy::May);
    }

    #[test]
    fn dane_policies_globally_and_per_domain() {
        let d: Doc = toml::from_str(
            "[outbound]\ntls = \"dane\"\n\
             [outbound.domains.\"strict.example\"]\ntls = \"dane-only\"\n",
        )
        .unwrap();
        assert_eq!(d.outbound.route("strict.example").1, TlsPolicy::DaneOnly);
        assert_eq!(d.outbound.route("other.example").1, TlsPolicy::Dane);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<Doc>("[outbound]\nbogus = 1\n").is_err());
        assert!(toml::from_str::<Doc>("[outbound.domains.x]\nbogus = 1\n").is_err());
        assert!(toml::from_str::<Doc>("[outbound]\ntls = \"daneonly\"\n").is_err());
        assert!(toml::from_str::<Doc>("[outbound]\ntls = \"secure\"\n").is_err());
        assert!(toml::from_str::<Doc>("[outbound]\nrelayhost = \"[x\"\n").is_err());
        assert!(toml::from_str::<Doc>("[outbound]\nrelayhost = \"x:0\"\n").is_err());
        assert!(toml::from_str::<Doc>("[outbound]\nnameservers = [\"x\"]\n").is_err());
        let d: Doc = toml::from_str("[outbound]\nrelayhost_credentials = \"/etc/pw\"\n").unwrap();
        assert!(d.outbound.validate().is_err());
    }

    #[test]
    fn next_hops() {
        let h: NextHop = "[192.0.2.1]".parse().unwrap();
        assert!(h.no_mx && h.port.is_none());
        let h: NextHop = "192.0.2.1:2525".parse().unwrap();
        assert!(h.no_mx && h.port == Some(2525) && h.host == "192.0.2.1");
        let h: NextHop = "relay.example".parse().unwrap();
        assert!(!h.no_mx && h.port.is_none());
        assert!("a b".parse::<NextHop>().is_err());
    }
}
