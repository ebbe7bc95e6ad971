//! pochta-outbound: remote SMTP delivery for pochta-mta's queue runner — the part of Postfix's
//! smtp(8) client that gets mail to other domains.
//!
//! - [`dns`]: next hops from DNS (MX by preference, random among equals; the domain's A/AAAA
//!   when it has no MX; null MX → permanent 5.1.10; NXDOMAIN → permanent 5.1.2; SERVFAIL and
//!   timeouts → temporary), IDN domains as A-labels, IPv4/IPv6 preference.
//! - [`Outbound::deliver`]: one transaction per destination for the recipients of one domain:
//!   the next MX (or address) on connection failure or a 4xx/5xx greeting or EHLO; EHLO with
//!   HELO fallback, PIPELINING, SIZE, CHUNKING, DSN parameters passed through, STARTTLS per
//!   policy (none/may/encrypt/verify), AUTH PLAIN/LOGIN to a relayhost only over TLS, 8BITMIME
//!   downgrade to quoted-printable ([`mime8`]) or a permanent 5.6.3, SMTPUTF8 required but
//!   not offered → permanent 5.6.7; connection reuse per destination and global and
//!   per-destination concurrency limits. Logs `Verified|Trusted|Untrusted TLS connection
//!   established to …` like Postfix; the queue logs the per-recipient lines.
//!
//! Trust: remote servers and DNS answers are untrusted (replies parsed by pochta-smtp-client
//! with limits; DNS by hickory). The message content is ours (the queue's) but came from
//! anyone: the MIME downgrade treats it as hostile input. Runs as the mta's user.
//!
//! RFCs: 5321 (SMTP, §5 MX), 7505 (null MX), 5890/5891 (IDNA), 3207 (STARTTLS), 4954 (AUTH),
//! 6152 (8BITMIME), 2045 (quoted-printable), 6531 (SMTPUTF8), 3030 (CHUNKING), 1870 (SIZE),
//! 2920 (PIPELINING), 3461 (DSN), 7435 (opportunistic TLS).
//! MTA-STS (RFC 8461): [`mta_sts`] parses the TXT record, the HTTP response and the policy;
//! policies are fetched over HTTPS and cached in memory; `enforce` means TLS verify to
//! matching MX hosts only.
//! DANE (RFC 7672; TLSA per RFC 6698/7671): TLS policies `dane` and `dane-only`; [`dnssec`]
//! asks the configured resolver with AD=1 and trusts its AD bit (Postfix's
//! `smtp_dns_support_level = dnssec`: the resolver must be a local validating one); [`dane`]
//! decides per MX host and authenticates the server's chain by its TLSA records. DANE wins
//! over MTA-STS for a host with usable TLSA records (RFC 8461 §2). Not implemented: TLSRPT
//! (RFC 8460), TLSA owner names through CNAMEs (RFC 7672 §2.2.3).
//!
//! Dependencies: hickory-resolver (async DNS with MX/TLSA; its hickory-proto builds and parses
//! the DNSSEC-status queries, whose AD bit the high-level lookups hide), idna (UTS #46
//! A-labels), ring (SHA2-256/512 of TLSA matching, query ids; already rustls' provider),
//! rustls/tokio-rustls (TLS; the workspace's TLS stack). For the `verify` policy the trust
//! anchors are read from a PEM bundle (`tls_ca_file`, default the
//! system store's /etc/ssl/certs/ca-certificates.crt, like Postfix smtp_tls_CAfile) rather
//! than compiled-in webpki roots: the admin's CA updates and private CAs apply, and tests can
//! point it at their own CA.

#![forbid(unsafe_code)]

mod cache;
pub mod config;
mod conn;
pub mod dane;
mod deliver;
pub mod dns;
pub mod dnssec;
pub mod mime8;
pub mod mta_sts;
mod sts;
mod tls;

pub use config::{AddressPreference, DomainPolicy, NextHop, OutboundConfig, TlsPolicy};
pub use deliver::{DomainResult, RcptResult};

use std::fmt;
use std::sync::{Arc, OnceLock};

/// The outbound delivery agent: cheap to clone; the resolver, TLS settings and connection
/// cache are built at the first delivery (inside the runner's tokio runtime).
#[derive(Clone, Default)]
pub struct Outbound(Arc<Inner>);

#[derive(Default)]
struct Inner {
    cfg: OutboundConfig,
    engine: OnceLock<Result<Arc<deliver::Engine>, String>>,
}

impl Outbound {
    pub fn new(cfg: OutboundConfig) -> Outbound {
        Outbound(Arc::new(Inner {
            cfg,
            engine: OnceLock::new(),
        }))
    }

    pub fn config(&self) -> &OutboundConfig {
        &self.0.cfg
    }

    fn engine(&self) -> Result<Arc<deliver::Engine>, String> {
        self.0
            .engine
            .get_or_init(|| {
                let e = deliver::Engine::new(&self.0.cfg).map(Arc::new)?;
                deliver::Engine::spawn_expiry(&e);
                Ok(e)
            })
            .clone()
    }

    /// Delivers `content` to the recipients of `envelope`, which all belong to `domain`
    /// (as written in the addresses; IDN allowed). `id` prefixes log lines. One result per
    /// recipient, in order.
    pub async fn deliver(
        &self,
        id: &str,
        domain: &str,
        envelope: &pochta_smtp_client::Envelope,
        content: &[u8],
    ) -> DomainResult {
        match self.engine() {
            Ok(e) => e.deliver(id, domain, envelope, content).await,
            Err(text) => DomainResult::all(
                envelope.recipients.len(),
                "none".into(),
                RcptResult::Temporary {
                    dsn: "4.3.5".into(),
                    text: format!("outbound delivery is misconfigured: {text}"),
                },
            ),
        }
    }
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Outbound").field(&self.0.cfg).finish()
    }
}

impl PartialEq for Outbound {
    fn eq(&self, other: &Outbound) -> bool {
        self.0.cfg == other.0.cfg
    }
}

impl Eq for Outbound {}
