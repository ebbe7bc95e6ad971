//! Delivery of one message to the recipients of one domain: route, resolve, connect (next MX
//! on failure), adapt the message to what the peer offers, one transaction.

use crate::cache::Cache;
use crate::config::{NextHop, OutboundConfig, TlsPolicy};
use crate::conn::{ConnError, Credentials, SmtpConn, Target, TlsUse};
use crate::dane::{self, HostDane};
use crate::dns::{self, Resolver};
use crate::mime8;
use crate::mta_sts::{StsMode, StsPolicy};
use crate::sts::Sts;
use crate::tls::TlsClient;
use pochta_smtp_client::{
    canonical_len, ClientConfig, Envelope, Incomplete, Protocol, RcptOutcome, Timeouts,
};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// What happened to one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptResult {
    /// The server's answer (2xx delivered, 4xx retry, 5xx bounce).
    Reply(RcptOutcome),
    /// No answer but a reason to retry: connection trouble, DNS trouble, TLS policy.
    Temporary { dsn: String, text: String },
    /// Failed for good without a server's answer: null MX, no such domain, SMTPUTF8 or
    /// 8-bit content the peer cannot take, message too large for the peer.
    Permanent { dsn: String, text: String },
}

/// The results for the recipients of one domain, in envelope order.
#[derive(Clone, Debug)]
pub struct DomainResult {
    /// `mx.example[192.0.2.1]:25`, or `none` when no connection was made.
    pub relay: String,
    pub results: Vec<RcptResult>,
    /// Connection setup (DNS, connect, greeting, EHLO, TLS); zero for a reused connection.
    pub setup: Duration,
    /// The transaction.
    pub xfer: Duration,
}

impl DomainResult {
    pub(crate) fn all(n: usize, relay: String, r: RcptResult) -> DomainResult {
        DomainResult {
            relay,
            results: vec![r; n],
            setup: Duration::ZERO,
            xfer: Duration::ZERO,
        }
    }
}

pub(crate) struct Engine {
    cfg: OutboundConfig,
    resolver: Resolver,
    tls: TlsClient,
    cache: Cache,
    creds: Option<Credentials>,
    helo: String,
    sts: Sts,
}

impl Engine {
    pub(crate) fn new(cfg: &OutboundConfig) -> Result<Engine, String> {
        let creds = match &cfg.relayhost_credentials {
            None => None,
            Some(p) => Some(read_credentials(p)?),
        };
        let helo = cfg.helo_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "localhost".to_owned())
        });
        let tls = TlsClient::new(&cfg.tls_ca_file)?;
        Ok(Engine {
            resolver: Resolver::new(cfg)?,
            sts: Sts::new(
                tls.config(true).ok(),
                cfg.connect_timeout.0.max(Duration::from_secs(10)),
                cfg.mta_sts_port,
            ),
            tls,
            cache: Cache::new(
                cfg.concurrency,
                cfg.destination_concurrency,
                cfg.connection_idle_time.0,
                cfg.connection_reuse_limit,
            ),
            creds,
            helo,
            cfg: cfg.clone(),
        })
    }

    /// Closes idle connections in the background until the engine is dropped.
    pub(crate) fn spawn_expiry(engine: &Arc<Engine>) {
        let tick = engine
            .cfg
            .connection_idle_time
            .0
            .max(Duration::from_millis(200));
        let weak: Weak<Engine> = Arc::downgrade(engine);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                match weak.upgrade() {
                    Some(e) => e.cache.expire(false),
                    None => return,
                }
            }
        });
    }

    pub(crate) async fn deliver(
        self: &Arc<Self>,
        id: &str,
        domain: &str,
        env: &Envelope,
        content: &[u8],
    ) -> DomainResult {
        self.cache.expire(false);
        let n = env.recipients.len();
        let Some(ascii) = dns::ascii_domain(domain) else {
            return DomainResult::all(
                n,
                "none".into(),
                RcptResult::Permanent {
                    dsn: "5.1.2".into(),
                    text: format!("bad destination domain {domain:?}"),
                },
            );
        };
        let (hop, policy) = self.cfg.route(&ascii);
        let relayhost = hop.is_some() && hop == self.cfg.relayhost.as_ref();
        let auth = if relayhost { self.creds.as_ref() } else { None };
        let mut tls = match policy {
            TlsPolicy::None => TlsUse::Off,
            TlsPolicy::May | TlsPolicy::Dane | TlsPolicy::DaneOnly => TlsUse::May,
            TlsPolicy::Encrypt => TlsUse::Encrypt,
            TlsPolicy::Verify => TlsUse::Verify,
        };
        // DANE decides per MX host (in `connect`); `true` = dane-only.
        let dane = match policy {
            TlsPolicy::Dane => Some(false),
            TlsPolicy::DaneOnly => Some(true),
            _ => None,
        };
        if auth.is_some() && matches!(tls, TlsUse::Off | TlsUse::May) {
            tls = TlsUse::Encrypt;
        }
        // RFC 8461 §2: where DANE applies (usable secure TLSA), it wins over MTA-STS; under
        // `dane` the STS policy still governs hosts without DANE, `dane-only` has none.
        let sts_applies = self.cfg.mta_sts
            && hop.is_none()
            && dane != Some(true)
            && matches!(tls, TlsUse::May | TlsUse::Encrypt)
            && !self.cfg.explicit_tls(&ascii);
        let sts = if sts_applies {
            self.sts.policy(&self.resolver, &ascii).await
        } else {
            None
        };
        let sts = sts.filter(|p| p.mode != StsMode::None);
        if sts.as_ref().is_some_and(|p| p.mode == StsMode::Enforce) {
            tls = TlsUse::Verify;
        }
        let dane_key = match dane {
            Some(true) => "/dane-only",
            Some(false) => "/dane",
            None => "",
        };
        let dest = match hop {
            Some(h) => format!("{h}/{tls:?}{dane_key}"),
            None => format!("{ascii}/{tls:?}{dane_key}"),
        };
        let Some(_permit) = self.cache.permit(&dest).await else {
            return DomainResult::all(n, "none".into(), temp("4.3.0", "outbound is stopping"));
        };
        let mut fresh = false;
        loop {
            let t0 = Instant::now();
            let (mut conn, uses, reused) = match self.cache.take(&dest).filter(|_| !fresh) {
                Some((c, u)) => (c, u, true),
                None => match self
                    .connect(&ascii, hop, tls, dane, auth, sts.as_ref())
                    .await
                {
                    Ok(c) => (c, 0, false),
                    Err((relay, r)) => {
                        let mut d = DomainResult::all(n, relay, r);
                        d.setup = t0.elapsed();
                        return d;
                    }
                },
            };
            let setup = if reused { Duration::ZERO } else { t0.elapsed() };
            let relay = conn.relay().to_owned();
            let (env2, content2) = match adapt(&conn, env, content) {
                Ok(v) => v,
                Err(r) => {
                    self.cache.put(&dest, conn, uses);
                    let mut d = DomainResult::all(n, relay, r);
                    d.setup = setup;
                    return d;
                }
            };
            let t1 = Instant::now();
            match conn.send(&env2, &content2).await {
                Ok(o) => {
                    self.cache.put(&dest, conn, uses + 1);
                    return DomainResult {
                        relay,
                        results: o.into_iter().map(RcptResult::Reply).collect(),
                        setup,
                        xfer: t1.elapsed(),
                    };
                }
                Err(inc) => {
                    let nothing_known = inc.known.iter().all(Option::is_none);
                    if reused && !inc.data_sent && nothing_known {
                        // The server closed the idle connection meanwhile.
                        fresh = true;
                        continue;
                    }
                    tracing::info!("{id}: {}", inc.error.describe(&relay));
                    return DomainResult {
                        results: incomplete(inc, &relay),
                        relay,
                        setup,
                        xfer: t1.elapsed(),
                    };
                }
            }
        }
    }

    /// Resolves the next hop and connects to the first host that greets and takes EHLO.
    async fn connect(
        &self,
        domain: &str,
        hop: Option<&NextHop>,
        tls: TlsUse,
        dane: Option<bool>,
        auth: Option<&Credentials>,
        sts: Option<&StsPolicy>,
    ) -> Result<SmtpConn, (String, RcptResult)> {
        let hosts = match self.resolver.hosts(domain, hop).await {
            Ok(h) => h,
            Err(f) => {
                let r = if f.permanent {
                    RcptResult::Permanent {
                        dsn: f.dsn.into(),
                        text: f.text,
                    }
                } else {
                    temp(f.dsn, &f.text)
                };
                return Err(("none".into(), r));
            }
        };
        let port = hop.and_then(|h| h.port).unwrap_or(self.cfg.port);
        let timeouts = Timeouts {
            connect: self.cfg.connect_timeout.0,
            command: self.cfg.command_timeout.0,
            data: self.cfg.data_timeout.0,
        };
        let client = ClientConfig {
            protocol: Protocol::Smtp,
            helo_name: self.helo.clone(),
            chunking: self.cfg.chunking,
        };
        // The name whose MX records named the hosts (RFC 7672 §2.2.2: the next-hop domain).
        let next = hop.map_or(domain, |h| h.host.as_str());
        let mx_secure = match (dane, hop) {
            (None, _) => false,
            // A configured `[host]` is not from DNS: only its address records matter.
            (Some(_), Some(h)) if h.no_mx => true,
            (Some(_), _) => match self.resolver.mx_secure(next).await {
                Ok(s) => s,
                Err(f) => {
                    let text = format!("DNSSEC MX lookup error for {next}: {}", f.text);
                    return Err(("none".into(), temp("4.4.3", &text)));
                }
            },
        };
        let mut last: Option<(String, RcptResult)> = None;
        for h in &hosts {
            let mut host_tls = tls;
            let mut host_dane = None;
            if let Some(only) = dane {
                match dane::host_dane(&self.resolver, h, next, port, mx_secure, only).await {
                    HostDane::Tlsa(a) => {
                        let recs: Vec<String> = a.records.iter().map(|r| r.to_string()).collect();
                        tracing::info!("{}: DANE TLSA at {}: {}", h.name, a.owner, recs.join(", "));
                        host_tls = TlsUse::Dane;
                        host_dane = Some(a);
                    }
                    HostDane::Encrypt => {
                        tracing::info!(
                            "{}: TLSA records present but none usable: TLS required, \
                             not authenticated",
                            h.name
                        );
                        if host_tls == TlsUse::May {
                            host_tls = TlsUse::Encrypt;
                        }
                    }
                    HostDane::Insecure(why) => tracing::debug!("{}: no DANE: {why}", h.name),
                    HostDane::Skip(dsn, text) => {
                        tracing::info!("{text}; host skipped");
                        last = Some(("none".into(), temp(dsn, &text)));
                        continue;
                    }
                }
            }
            let sts = sts.filter(|_| host_dane.is_none());
            if let Some(p) = sts.filter(|p| !p.mx_matches(&h.name)) {
                let text = format!(
                    "MX host {} does not match the MTA-STS policy of {domain}",
                    h.name
                );
                if p.mode == StsMode::Enforce {
                    tracing::info!("{text}; skipped");
                    last = Some(("none".into(), temp("4.7.5", &text)));
                    continue;
                }
                tracing::info!("{text} (policy in testing mode: delivering anyway)");
            }
            for &ip in &h.addrs {
                let addr = SocketAddr::new(ip, port);
                let relay = SmtpConn::relay_name(&h.name, addr);
                let mut target = Target {
                    host: &h.name,
                    addr,
                    tls: host_tls,
                    auth,
                    dane: host_dane.as_ref(),
                };
                let mut res = SmtpConn::open(&target, client.clone(), timeouts, &self.tls).await;
                if let (Err(ConnError::Handshake(e)), TlsUse::May) = (&res, host_tls) {
                    // Opportunistic TLS that fails is retried in plaintext (Postfix does).
                    tracing::info!("{relay}: TLS handshake failed ({e}); retrying without TLS");
                    target.tls = TlsUse::Off;
                    res = SmtpConn::open(&target, client.clone(), timeouts, &self.tls).await;
                }
                match res {
                    Ok(c) => {
                        if let Some(t) = &c.tls {
                            tracing::info!("{t}");
                        }
                        return Ok(c);
                    }
                    Err(e @ ConnError::Loop(_)) => {
                        // Postfix bounces: a host of this domain is ourselves (a DNS or
                        // local_domains mistake); trying its other hosts cannot help.
                        tracing::warn!("{}", e.describe(&relay));
                        let text = format!("mail for {domain} loops back to myself");
                        return Err((relay, perm(&e.dsn(), &text)));
                    }
                    Err(e) => {
                        let text = e.describe(&relay);
                        tracing::info!("{text}");
                        last = Some((relay, temp(&e.dsn(), &text)));
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            (
                "none".into(),
                temp("4.4.3", &format!("no usable address for {domain}")),
            )
        }))
    }
}

fn temp(dsn: &str, text: &str) -> RcptResult {
    RcptResult::Temporary {
        dsn: dsn.into(),
        text: text.into(),
    }
}

fn perm(dsn: &str, text: &str) -> RcptResult {
    RcptResult::Permanent {
        dsn: dsn.into(),
        text: text.into(),
    }
}

/// The envelope and content as this peer can take them, or a permanent failure.
fn adapt<'a>(
    conn: &SmtpConn,
    env: &Envelope,
    content: &'a [u8],
) -> Result<(Envelope, Cow<'a, [u8]>), RcptResult> {
    let caps = conn.session().capabilities();
    let relay = conn.relay();
    if let Some(max) = caps.size.filter(|&m| m > 0) {
        if canonical_len(content) > max {
            return Err(perm(
                "5.3.4",
                &format!(
                    "message size {} exceeds size limit {max} of server {relay}",
                    canonical_len(content)
                ),
            ));
        }
    }
    let mut env = env.clone();
    if !caps.smtputf8 {
        let headers_8bit = mime8::has_8bit(mime8::header_section(content));
        let local_utf8 = std::iter::once(&env.sender)
            .chain(env.recipients.iter().map(|r| &r.address))
            .any(|a| !a.rsplit_once('@').map_or(a.as_str(), |(l, _)| l).is_ascii());
        if env.smtputf8 && (local_utf8 || headers_8bit) {
            return Err(perm(
                "5.6.7",
                &format!("SMTPUTF8 is required, but was not offered by host {relay}"),
            ));
        }
        env.sender = ascii_address(&env.sender);
        for r in &mut env.recipients {
            r.address = ascii_address(&r.address);
        }
    }
    if caps.eightbitmime || !mime8::has_8bit(content) {
        return Ok((env, Cow::Borrowed(content)));
    }
    match mime8::downgrade(content) {
        Ok(c) => {
            env.body = None;
            Ok((env, Cow::Owned(c)))
        }
        Err(e) => Err(perm(
            "5.6.3",
            &format!(
                "host {relay} does not offer 8BITMIME and the message cannot be converted: {}",
                e.0
            ),
        )),
    }
}

/// `local@domain` with the domain as A-labels (for a peer without SMTPUTF8).
fn ascii_address(a: &str) -> String {
    match a.rsplit_once('@') {
        Some((l, d)) if !d.is_ascii() => match dns::ascii_domain(d) {
            Some(ad) => format!("{l}@{ad}"),
            None => a.to_owned(),
        },
        _ => a.to_owned(),
    }
}

fn incomplete(inc: Incomplete, relay: &str) -> Vec<RcptResult> {
    let text = inc.error.describe(relay);
    inc.known
        .into_iter()
        .map(|k| match k {
            Some(o) => RcptResult::Reply(o),
            None => temp("4.4.2", &text),
        })
        .collect()
}

/// `username:password` on the file's first line (the password may contain `:`).
fn read_credentials(p: &std::path::Path) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end();
    let (user, pass) = line
        .split_once(':')
        .ok_or_else(|| format!("{}: expected username:password", p.display()))?;
    if user.is_empty() {
        return Err(format!("{}: empty username", p.display()));
    }
    Ok(Credentials {
        user: user.to_owned(),
        pass: pass.to_owned().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idn_addresses_for_ascii_peers() {
        assert_eq!(ascii_address("a@bücher.example"), "a@xn--bcher-kva.example");
        assert_eq!(ascii_address("a@x.example"), "a@x.example");
        assert_eq!(ascii_address(""), "");
    }
}
