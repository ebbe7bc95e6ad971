//! MTA-STS policy discovery (RFC 8461 §3, §5.1): the `_mta-sts.<domain>` TXT record, the
//! policy fetched from `https://mta-sts.<domain>/.well-known/mta-sts.txt` (certificate
//! verified against `tls_ca_file`, no redirects, bounded size and time), cached in memory for
//! its max_age and refreshed when the TXT id changes. A policy that cannot be fetched leaves
//! the cached one in force (or none).

use crate::dns::Resolver;
use crate::mta_sts::{parse_http_response, parse_policy, parse_txt, StsPolicy, MAX_POLICY};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Cached {
    id: String,
    policy: StsPolicy,
    expires: Instant,
}

pub(crate) struct Sts {
    cache: Mutex<HashMap<String, Cached>>,
    /// Verifying TLS configuration; None without trust anchors (no policy can be fetched).
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
    port: u16,
}

impl Sts {
    pub(crate) fn new(tls: Option<Arc<ClientConfig>>, timeout: Duration, port: u16) -> Sts {
        Sts {
            cache: Mutex::new(HashMap::new()),
            tls,
            timeout,
            port,
        }
    }

    /// The policy in force for `domain` (ASCII, lower case), if any.
    pub(crate) async fn policy(&self, resolver: &Resolver, domain: &str) -> Option<StsPolicy> {
        let now = Instant::now();
        let cached = self.cache.lock().ok().and_then(|c| {
            c.get(domain)
                .filter(|e| e.expires > now)
                .map(|e| (e.id.clone(), e.policy.clone()))
        });
        let txt = resolver.txt(&format!("_mta-sts.{domain}")).await;
        let ids: Vec<String> = match &txt {
            Ok(v) => v.iter().filter_map(|t| parse_txt(t)).collect(),
            Err(_) => Vec::new(),
        };
        // §3.1: more than one STS record = none.
        let id = match ids.as_slice() {
            [one] => one.clone(),
            _ => return cached.map(|(_, p)| p),
        };
        if let Some((cid, p)) = &cached {
            if *cid == id {
                return Some(p.clone());
            }
        }
        match self.fetch(resolver, domain).await {
            Ok(p) => {
                tracing::info!(
                    "MTA-STS policy for {domain}: id={id}, mode={:?}, max_age={}",
                    p.mode,
                    p.max_age
                );
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(
                        domain.to_owned(),
                        Cached {
                            id,
                            policy: p.clone(),
                            expires: now + Duration::from_secs(p.max_age),
                        },
                    );
                }
                Some(p)
            }
            Err(e) => {
                tracing::warn!("MTA-STS policy for {domain} not fetched: {e}");
                cached.map(|(_, p)| p)
            }
        }
    }

    async fn fetch(&self, resolver: &Resolver, domain: &str) -> Result<StsPolicy, String> {
        let tls = self
            .tls
            .clone()
            .ok_or("no trust anchors (outbound.tls_ca_file)")?;
        let host = format!("mta-sts.{domain}");
        let addrs = resolver.addresses(&host).await.map_err(|e| e.text)?;
        let addr = *addrs.first().ok_or("no address")?;
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let body = tokio::time::timeout(self.timeout, async {
            let tcp = tokio::net::TcpStream::connect(SocketAddr::new(addr, self.port))
                .await
                .map_err(|e| format!("connect to {host}: {e}"))?;
            let mut s = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            let req = format!(
                "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n\
                 User-Agent: pochta-mta\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("{host}: {e}"))?;
            let mut resp = Vec::new();
            // Header allowance on top of the policy limit; the rest is never read.
            let limit = (MAX_POLICY + 16 * 1024) as u64;
            let mut r = (&mut s).take(limit);
            // A server that closes without close_notify still gave us its response.
            if let Err(e) = r.read_to_end(&mut resp).await {
                if resp.is_empty() {
                    return Err(format!("{host}: {e}"));
                }
            }
            Ok::<Vec<u8>, String>(resp)
        })
        .await
        .map_err(|_| format!("{host}: timed out"))??;
        let policy = parse_http_response(&body)?;
        parse_policy(&policy)
    }
}
