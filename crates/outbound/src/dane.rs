//! DANE for SMTP (RFC 7672, with RFC 6698/7671 for TLSA): which TLSA records are usable, how
//! a server's certificate chain is matched against them, the rustls verifier that does it
//! during the handshake, and the per-MX-host decision of the `dane`/`dane-only` policies.
//!
//! - Usable (RFC 7672 §3.1): DANE-TA(2) and DANE-EE(3) only; PKIX-TA(0)/PKIX-EE(1) are
//!   unusable for SMTP (§3.1.3). Selector Cert(0) or SPKI(1); matching Full(0), SHA2-256(1) or
//!   SHA2-512(2) with the digest's length.
//! - DANE-EE (§3.1.1): the leaf (its DER or its SubjectPublicKeyInfo) matches; no name check,
//!   no expiry check.
//! - DANE-TA (§3.1.2): a certificate of the chain the server sent matches; the leaf must
//!   chain to it (signatures, validity, key usage by rustls-webpki with it as the only trust
//!   anchor) and name the MX host or the next-hop domain (§3.2.2, §3.2.3).
//! - A secure MX RRset, then secure address records of the host (§2.2), then a secure TLSA
//!   RRset at `_port._tcp.<host>` make DANE apply (§2.2.1); an insecure link anywhere means
//!   no DANE (`may`), a secure denial of TLSA too; a failed lookup is no denial: the host is
//!   not used now (deferred, like Postfix's "TLSA lookup error"; never a silent downgrade).
//!
//! The certificate parsing here (`spki`) is a minimal DER walk over untrusted input: bounded,
//! no recursion, never panics; fuzzed with the TLSA matching.

use crate::dns::{MxHost, Resolver};
use crate::dnssec::AnswerStatus;
use hickory_resolver::proto::rr::RecordType;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// Certificate usages (RFC 7218 acronyms).
pub const DANE_TA: u8 = 2;
pub const DANE_EE: u8 = 3;

impl Tlsa {
    /// From TLSA RDATA (usage, selector, matching type, association data); None when it is
    /// shorter than the three fixed octets.
    pub fn from_rdata(rdata: &[u8]) -> Option<Tlsa> {
        match rdata {
            [usage, selector, matching, data @ ..] => Some(Tlsa {
                usage: *usage,
                selector: *selector,
                matching: *matching,
                data: data.to_vec(),
            }),
            _ => None,
        }
    }

    /// Whether an SMTP client may use this record (RFC 7672 §3.1).
    pub fn usable(&self) -> bool {
        let usage = matches!(self.usage, DANE_TA | DANE_EE);
        let selector = matches!(self.selector, 0 | 1);
        let data = match self.matching {
            0 => !self.data.is_empty(),
            1 => self.data.len() == 32,
            2 => self.data.len() == 64,
            _ => false,
        };
        usage && selector && data
    }

    /// Whether `cert` (DER) matches this record's selector, matching type and data. The
    /// usage is not looked at here.
    pub fn matches(&self, cert: &[u8]) -> bool {
        let selected = match self.selector {
            0 => cert,
            1 => match spki(cert) {
                Some(s) => s,
                None => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data.as_slice(),
            1 => ring::digest::digest(&ring::digest::SHA256, selected).as_ref() == self.data,
            2 => ring::digest::digest(&ring::digest::SHA512, selected).as_ref() == self.data,
            _ => false,
        }
    }
}

impl std::fmt::Display for Tlsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        for b in self.data.iter().take(32) {
            write!(f, "{b:02x}")?;
        }
        if self.data.len() > 32 {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// One DER TLV at the start of `b`: (tag, contents, rest). Short or long definite lengths of
/// up to 4 octets; high tag numbers (not used in certificates) are refused.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (octets, rest) = rest.split_at_checked(n)?;
        let len = octets
            .iter()
            .fold(0usize, |acc, &o| (acc << 8) | usize::from(o));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// The DER SubjectPublicKeyInfo (tag and length included) of an X.509 certificate (RFC 5280
/// §4.1: Certificate → tbsCertificate → [0] version, serialNumber, signature, issuer,
/// validity, subject, subjectPublicKeyInfo).
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, certificate, _) = tlv(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    for want in [0x02, 0x30, 0x30, 0x30, 0x30] {
        let (tag, _, r) = tlv(rest)?;
        if tag != want {
            return None;
        }
        rest = r;
    }
    let (0x30, _, after) = tlv(rest)? else {
        return None;
    };
    rest.get(..rest.len() - after.len())
}

/// How a chain was authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaneMatch {
    /// A DANE-EE record matched the leaf.
    EndEntity(String),
    /// A DANE-TA record matched a certificate of the chain, the leaf chains to it and names
    /// `name`.
    TrustAnchor { record: String, name: String },
}

/// Matches a server's chain (leaf first) against usable `records`; `names` are the reference
/// identifiers for DANE-TA (the MX host name, then the next-hop domain). Err says why not.
pub fn verify_chain(
    records: &[Tlsa],
    names: &[String],
    chain: &[CertificateDer<'_>],
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<DaneMatch, String> {
    let Some((leaf, rest)) = chain.split_first() else {
        return Err("no certificate".into());
    };
    let usable = || records.iter().filter(|r| r.usable());
    if let Some(r) = usable().find(|r| r.usage == DANE_EE && r.matches(leaf)) {
        return Ok(DaneMatch::EndEntity(r.to_string()));
    }
    let mut why = "no TLSA record matches the certificate chain".to_owned();
    for r in usable().filter(|r| r.usage == DANE_TA) {
        for ta in rest.iter().filter(|c| r.matches(c)) {
            let mut roots = RootCertStore::empty();
            if let Err(e) = roots.add(ta.clone()) {
                why = format!("the certificate matching TLSA {r} is no trust anchor: {e}");
                continue;
            }
            let v = match WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            {
                Ok(v) => v,
                Err(e) => {
                    why = format!("TLSA {r}: {e}");
                    continue;
                }
            };
            for n in names {
                let Ok(sn) = ServerName::try_from(n.clone()) else {
                    continue;
                };
                match v.verify_server_cert(leaf, rest, &sn, &[], now) {
                    Ok(_) => {
                        return Ok(DaneMatch::TrustAnchor {
                            record: r.to_string(),
                            name: n.clone(),
                        })
                    }
                    Err(e) => {
                        why = format!("TLSA {r} matched a trust anchor, but: {e}");
                    }
                }
            }
        }
    }
    Err(why)
}

/// The usable TLSA records of one host and the names a DANE-TA chain may carry.
#[derive(Clone, Debug)]
pub(crate) struct DaneAuth {
    pub(crate) records: Vec<Tlsa>,
    pub(crate) names: Vec<String>,
    /// `_25._tcp.mx.example`, for messages.
    pub(crate) owner: String,
}

/// The rustls verifier of a DANE-authenticated connection: the chain must match
/// ([`verify_chain`]); handshake signatures are checked as always.
#[derive(Debug)]
pub(crate) struct DaneVerifier {
    pub(crate) auth: DaneAuth,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let mut chain = vec![end_entity.clone()];
        chain.extend(intermediates.iter().cloned());
        match verify_chain(
            &self.auth.records,
            &self.auth.names,
            &chain,
            now,
            &self.provider,
        ) {
            Ok(m) => {
                tracing::debug!("{}: DANE match {m:?}", self.auth.owner);
                Ok(ServerCertVerified::assertion())
            }
            Err(why) => {
                tracing::info!("{}: {why}", self.auth.owner);
                Err(Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a DANE policy makes of one MX host.
#[derive(Debug)]
pub(crate) enum HostDane {
    /// Usable TLSA records from a secure answer: TLS required and authenticated by them.
    Tlsa(DaneAuth),
    /// TLSA records exist but none is usable: TLS required, not authenticated ("encrypt").
    Encrypt,
    /// No DANE for this host (the reason, for the log): the policy falls back to `may`.
    Insecure(String),
    /// The host is not used now: (enhanced status, reason).
    Skip(&'static str, String),
}

/// The `dane` (`only` false) or `dane-only` decision for `host` of next-hop `domain`, reached
/// at `port`; `mx_secure` says whether the MX RRset (or the configured next hop) that named
/// the host was secure.
pub(crate) async fn host_dane(
    resolver: &Resolver,
    host: &MxHost,
    domain: &str,
    port: u16,
    mx_secure: bool,
    only: bool,
) -> HostDane {
    let name = &host.name;
    let insecure = |why: String| {
        if only {
            HostDane::Skip(
                "4.7.5",
                format!("TLS policy dane-only: no DANE for {name}: {why}"),
            )
        } else {
            HostDane::Insecure(why)
        }
    };
    if !mx_secure {
        return insecure(format!("MX records of {domain} are not DNSSEC-validated"));
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return insecure(format!("{name} is an address literal"));
    }
    match resolver.addresses_secure(name).await {
        Ok(true) => {}
        Ok(false) => {
            return insecure(format!(
                "address records of {name} are not DNSSEC-validated"
            ))
        }
        Err(e) => {
            return HostDane::Skip(
                "4.4.3",
                format!("DNSSEC address lookup error for {name}: {}", e.text),
            )
        }
    }
    let owner = format!("_{port}._tcp.{name}");
    let answer = match resolver.secure(&owner, RecordType::TLSA).await {
        Ok(a) => a,
        Err(e) => {
            // Postfix: "TLSA lookup error for host:port" and a deferral.
            return HostDane::Skip(
                "4.7.5",
                format!("TLSA lookup error for {name}:{port}: {}", e.text),
            );
        }
    };
    if !answer.secure {
        return insecure(format!("TLSA records at {owner} are not DNSSEC-validated"));
    }
    if answer.status != AnswerStatus::Records {
        return insecure(format!("no TLSA records at {owner} (secure denial)"));
    }
    let usable: Vec<Tlsa> = answer.tlsa.into_iter().filter(Tlsa::usable).collect();
    if usable.is_empty() {
        if only {
            return HostDane::Skip(
                "4.7.5",
                format!("TLS policy dane-only: all TLSA records at {owner} are unusable"),
            );
        }
        return HostDane::Encrypt;
    }
    let mut names = vec![name.clone()];
    if !domain.eq_ignore_ascii_case(name) {
        names.push(domain.to_owned());
    }
    HostDane::Tlsa(DaneAuth {
        records: usable,
        names,
        owner,
    })
}

#[cfg(test)]
#[path = "dane_tests.rs"]
mod tests;
