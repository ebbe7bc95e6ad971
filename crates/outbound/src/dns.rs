//! Next-hop resolution (RFC 5321 §5.1): MX records by preference (random order among equal
//! ones), the domain's own address records when it has no MX ("implicit MX"), null MX
//! (RFC 7505) as a permanent refusal, IDN domains looked up as A-labels (RFC 5890).

use crate::config::{AddressPreference, NextHop, OutboundConfig};
use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::error::{ResolveError, ResolveErrorKind};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::{Name, TokioAsyncResolver};
use std::hash::BuildHasher;
use std::net::IpAddr;

/// One host to try, with its addresses in the order they are tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxHost {
    /// The MX exchange (or next-hop) name, without the trailing dot; an address literal for
    /// `[192.0.2.1]`.
    pub name: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
}

/// Why no host could be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsFailure {
    /// Permanent (bounce) or temporary (retry).
    pub permanent: bool,
    /// Enhanced status code: 5.1.10 null MX, 5.1.2 no such domain, 5.4.4 no address,
    /// 4.4.3 DNS trouble.
    pub dsn: &'static str,
    pub text: String,
}

impl DnsFailure {
    fn temp(text: String) -> DnsFailure {
        DnsFailure {
            permanent: false,
            dsn: "4.4.3",
            text,
        }
    }
}

/// The resolver pochta-outbound asks.
pub struct Resolver {
    inner: TokioAsyncResolver,
    preference: AddressPreference,
    limit: usize,
    /// The same servers and timeout for the DNSSEC-status queries of DANE ([`crate::dnssec`]).
    servers: Vec<std::net::SocketAddr>,
    timeout: std::time::Duration,
}

/// `domain` as an ASCII name (A-labels for IDN, lower case), or None when it is not a valid
/// domain.
pub fn ascii_domain(domain: &str) -> Option<String> {
    let d = domain.trim_end_matches('.');
    if d.is_empty() {
        return None;
    }
    let a = idna::domain_to_ascii(d).ok()?;
    if a.is_empty() || a.len() > 253 {
        return None;
    }
    Some(a.to_ascii_lowercase())
}

impl Resolver {
    /// From `[outbound] nameservers`, or /etc/resolv.conf when none are set.
    pub fn new(cfg: &OutboundConfig) -> Result<Resolver, String> {
        let (rc, mut opts) = if cfg.nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("/etc/resolv.conf: {e}"))?
        } else {
            let mut rc = ResolverConfig::new();
            for ns in &cfg.nameservers {
                rc.add_name_server(NameServerConfig::new(*ns, Protocol::Udp));
                rc.add_name_server(NameServerConfig::new(*ns, Protocol::Tcp));
            }
            (rc, ResolverOpts::default())
        };
        opts.timeout = cfg.dns_timeout.0;
        opts.attempts = 2;
        opts.ndots = 0;
        opts.use_hosts_file = false;
        opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
        let mut servers = Vec::new();
        for ns in rc.name_servers() {
            if !servers.contains(&ns.socket_addr) {
                servers.push(ns.socket_addr);
            }
        }
        Ok(Resolver {
            inner: TokioAsyncResolver::tokio(rc, opts),
            preference: cfg.address_preference,
            limit: cfg.mx_address_limit,
            servers,
            timeout: cfg.dns_timeout.0,
        })
    }

    /// `name`/`qtype` asked with AD=1: the answer and whether the resolver validated it.
    pub(crate) async fn secure(
        &self,
        name: &str,
        qtype: RecordType,
    ) -> Result<crate::dnssec::SecureAnswer, DnsFailure> {
        let n = fqdn(name)?;
        crate::dnssec::query(&self.servers, self.timeout, &n, qtype)
            .await
            .map_err(|e| DnsFailure::temp(format!("name={name} type={qtype}: {e}")))
    }

    /// Whether the address records of `host` (A and AAAA as the address preference uses
    /// them, or their denial) are DNSSEC-validated.
    pub(crate) async fn addresses_secure(&self, host: &str) -> Result<bool, DnsFailure> {
        let mut secure = true;
        if self.preference != AddressPreference::Ipv6Only {
            secure &= self.secure(host, RecordType::A).await?.secure;
        }
        if self.preference != AddressPreference::Ipv4Only {
            secure &= self.secure(host, RecordType::AAAA).await?.secure;
        }
        Ok(secure)
    }

    /// Whether the MX RRset of `domain` (or its denial) is DNSSEC-validated.
    pub(crate) async fn mx_secure(&self, domain: &str) -> Result<bool, DnsFailure> {
        Ok(self.secure(domain, RecordType::MX).await?.secure)
    }

    /// The hosts for a recipient domain (ASCII) or an explicit next hop.
    pub async fn hosts(
        &self,
        domain: &str,
        hop: Option<&NextHop>,
    ) -> Result<Vec<MxHost>, DnsFailure> {
        let (name, no_mx) = match hop {
            Some(h) => (h.host.as_str(), h.no_mx),
            None => (domain, false),
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![MxHost {
                name: ip.to_string(),
                preference: 0,
                addrs: vec![ip],
            }]);
        }
        let mut hosts = if no_mx {
            vec![(name.to_owned(), 0)]
        } else {
            self.mx(name).await?
        };
        order_equal_preferences(&mut hosts);
        let mut out = Vec::new();
        let mut temp: Option<String> = None;
        let mut total = 0;
        for (host, pref) in hosts {
            if total >= self.limit {
                break;
            }
            match self.addresses(&host).await {
                Ok(mut addrs) => {
                    addrs.truncate(self.limit - total);
                    total += addrs.len();
                    if !addrs.is_empty() {
                        out.push(MxHost {
                            name: host,
                            preference: pref,
                            addrs,
                        });
                    }
                }
                Err(e) if !e.permanent => temp = Some(e.text),
                Err(_) => {}
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        if let Some(t) = temp {
            return Err(DnsFailure::temp(t));
        }
        Err(DnsFailure {
            permanent: true,
            dsn: "5.4.4",
            text: format!("Host or domain name not found. No address records for {name}"),
        })
    }

    /// MX records sorted by preference; the domain itself when it has none.
    async fn mx(&self, domain: &str) -> Result<Vec<(String, u16)>, DnsFailure> {
        let name = fqdn(domain)?;
        match self.inner.mx_lookup(name).await {
            Ok(l) => {
                let mut v: Vec<(String, u16)> = l
                    .iter()
                    .map(|mx| {
                        let n = mx.exchange().to_ascii();
                        (
                            n.trim_end_matches('.').to_ascii_lowercase(),
                            mx.preference(),
                        )
                    })
                    .collect();
                if v.iter().any(|(n, _)| n.is_empty()) {
                    // RFC 7505: a single MX with exchange "." says the domain takes no mail.
                    return Err(DnsFailure {
                        permanent: true,
                        dsn: "5.1.10",
                        text: format!("Domain {domain} does not accept mail (nullMX)"),
                    });
                }
                if v.is_empty() {
                    return Ok(vec![(domain.to_owned(), 0)]);
                }
                v.sort_by_key(|(_, p)| *p);
                Ok(v)
            }
            Err(e) => match classify(&e) {
                Lookup::NoData => Ok(vec![(domain.to_owned(), 0)]),
                Lookup::NxDomain => Err(DnsFailure {
                    permanent: true,
                    dsn: "5.1.2",
                    text: format!(
                        "Host or domain name not found. Name service error for name={domain} \
                         type=MX: Host not found"
                    ),
                }),
                Lookup::Temporary => Err(DnsFailure::temp(format!(
                    "Host or domain name not found. Name service error for name={domain} \
                     type=MX: Host not found, try again ({e})"
                ))),
            },
        }
    }

    /// The TXT strings at `name` (each record's character-strings joined); empty when there
    /// are none; Err for DNS trouble.
    pub(crate) async fn txt(&self, name: &str) -> Result<Vec<String>, DnsFailure> {
        let n = fqdn(name)?;
        match self.inner.txt_lookup(n).await {
            Ok(l) => Ok(l
                .iter()
                .map(|t| {
                    t.txt_data()
                        .iter()
                        .map(|d| String::from_utf8_lossy(d).into_owned())
                        .collect::<String>()
                })
                .collect()),
            Err(e) => match classify(&e) {
                Lookup::NoData | Lookup::NxDomain => Ok(Vec::new()),
                Lookup::Temporary => Err(DnsFailure::temp(format!("TXT {name}: {e}"))),
            },
        }
    }

    /// A and AAAA records of a host, ordered by the address preference.
    pub(crate) async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        let name = fqdn(host)?;
        let want4 = self.preference != AddressPreference::Ipv6Only;
        let want6 = self.preference != AddressPreference::Ipv4Only;
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut temp = None;
        let mut nx = true;
        if want4 {
            match self.inner.lookup(name.clone(), RecordType::A).await {
                Ok(l) => {
                    nx = false;
                    v4.extend(l.iter().filter_map(|r| r.as_a()).map(|a| IpAddr::V4(a.0)));
                }
                Err(e) => match classify(&e) {
                    Lookup::Temporary => temp = Some(e.to_string()),
                    Lookup::NoData => nx = false,
                    Lookup::NxDomain => {}
                },
            }
        }
        if want6 {
            match self.inner.lookup(name, RecordType::AAAA).await {
                Ok(l) => {
                    nx = false;
                    v6.extend(
                        l.iter()
                            .filter_map(|r| r.as_aaaa())
                            .map(|a| IpAddr::V6(a.0)),
                    );
                }
                Err(e) => match classify(&e) {
                    Lookup::Temporary => temp = Some(e.to_string()),
                    Lookup::NoData => nx = false,
                    Lookup::NxDomain => {}
                },
            }
        }
        let addrs = match self.preference {
            AddressPreference::Ipv6 | AddressPreference::Ipv6Only => [v6, v4].concat(),
            _ => [v4, v6].concat(),
        };
        if addrs.is_empty() {
            if let Some(t) = temp {
                return Err(DnsFailure::temp(format!(
                    "Name service error for name={host}: {t}"
                )));
            }
            let why = if nx { "Host not found" } else { "No address" };
            return Err(DnsFailure {
                permanent: true,
                dsn: "5.4.4",
                text: format!("Name service error for name={host} type=A: {why}"),
            });
        }
        Ok(addrs)
    }
}

fn fqdn(domain: &str) -> Result<Name, DnsFailure> {
    Name::from_ascii(format!("{}.", domain.trim_end_matches('.'))).map_err(|e| DnsFailure {
        permanent: true,
        dsn: "5.1.2",
        text: format!("bad domain name {domain:?}: {e}"),
    })
}

enum Lookup {
    /// The name exists without records of that type.
    NoData,
    NxDomain,
    /// SERVFAIL, timeouts, refused: try later.
    Temporary,
}

fn classify(e: &ResolveError) -> Lookup {
    match e.kind() {
        ResolveErrorKind::NoRecordsFound { response_code, .. } => match *response_code {
            ResponseCode::NXDomain => Lookup::NxDomain,
            ResponseCode::NoError => Lookup::NoData,
            _ => Lookup::Temporary,
        },
        _ => Lookup::Temporary,
    }
}

/// Sorted by preference already; hosts of equal preference get a random order (RFC 5321
/// §5.1: spread the load).
fn order_equal_preferences(hosts: &mut [(String, u16)]) {
    let rs = std::collections::hash_map::RandomState::new();
    hosts.sort_by_cached_key(|(n, p)| (*p, rs.hash_one(n)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idn_to_a_labels() {
        assert_eq!(
            ascii_domain("Bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(ascii_domain("EXAMPLE.org.").unwrap(), "example.org");
        assert!(ascii_domain("").is_none());
    }

    #[test]
    fn equal_preferences_keep_their_rank() {
        let mut h: Vec<(String, u16)> = vec![
            ("a".into(), 10),
            ("b".into(), 10),
            ("c".into(), 20),
            ("d".into(), 5),
        ];
        order_equal_preferences(&mut h);
        assert_eq!(h[0].0, "d");
        assert_eq!(h[3].0, "c");
    }
}
