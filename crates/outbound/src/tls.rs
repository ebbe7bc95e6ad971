//! TLS client settings for STARTTLS (RFC 3207) per policy: `may`/`encrypt` accept any
//! certificate (opportunistic TLS: an unverified channel beats plaintext, RFC 7435), `verify`
//! checks the chain against `tls_ca_file` and the MX host name. After every handshake the
//! chain is also checked for the log line: `Verified` (chain and name), `Trusted` (chain only)
//! or `Untrusted`, as Postfix logs them. Under DANE ([`crate::dane`]) the TLSA records of the
//! host are the only trust anchors: a connection that completes is `Verified`.

use crate::dane::{DaneAuth, DaneVerifier};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::Arc;

/// The client configurations, built once.
pub(crate) struct TlsClient {
    /// Any certificate accepted (`may`, `encrypt`).
    any: Arc<ClientConfig>,
    /// Chain and name checked (`verify`); None without trust anchors.
    verify: Option<Arc<ClientConfig>>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl TlsClient {
    /// Loads the trust anchors from `ca_file` (a missing or empty file leaves `verify`
    /// unusable: such deliveries are deferred, and this is logged once here).
    pub(crate) fn new(ca_file: &Path) -> Result<TlsClient, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match CertificateDer::pem_file_iter(ca_file) {
            Ok(it) => {
                for c in it.flatten() {
                    let _ = roots.add(c);
                }
            }
            Err(e) => tracing::warn!(
                "outbound.tls_ca_file {}: {e}; TLS policy \"verify\" cannot succeed",
                ca_file.display()
            ),
        }
        let webpki = if roots.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok()
        };
        let any = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider.clone())))
            .with_no_client_auth();
        let verify = match &webpki {
            Some(v) => Some(Arc::new(
                ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS setup: {e}"))?
                    .with_webpki_verifier(v.clone())
                    .with_no_client_auth(),
            )),
            None => None,
        };
        Ok(TlsClient {
            any: Arc::new(any),
            verify,
            webpki,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// The configuration for a policy that wants TLS; Err when `verify` has no anchors.
    pub(crate) fn config(&self, verify: bool) -> Result<Arc<ClientConfig>, String> {
        if !verify {
            return Ok(self.any.clone());
        }
        self.verify
            .clone()
            .ok_or_else(|| "no trust anchors for TLS policy verify (outbound.tls_ca_file)".into())
    }

    /// The configuration of one DANE-authenticated connection (its host's TLSA records).
    pub(crate) fn dane_config(&self, auth: &DaneAuth) -> Result<Arc<ClientConfig>, String> {
        let verifier = DaneVerifier {
            auth: auth.clone(),
            provider: self.provider.clone(),
        };
        Ok(Arc::new(
            ClientConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth(),
        ))
    }

    /// Postfix's word for the peer's certificate: Verified, Trusted or Untrusted.
    pub(crate) fn trust(&self, conn: &rustls::ClientConnection, name: &ServerName<'_>) -> &str {
        let (Some(v), Some(certs)) = (&self.webpki, conn.peer_certificates()) else {
            return "Untrusted";
        };
        let Some((end, rest)) = certs.split_first() else {
            return "Untrusted";
        };
        match v.verify_server_cert(end, rest, name, &[], UnixTime::now()) {
            Ok(_) => "Verified",
            Err(Error::InvalidCertificate(rustls::CertificateError::NotValidForName)) => "Trusted",
            Err(Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                ..
            })) => "Trusted",
            Err(_) => "Untrusted",
        }
    }
}

/// `TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384`, as Postfix describes a session.
pub(crate) fn describe(conn: &rustls::ClientConnection) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_owned(),
    };
    match conn.negotiated_cipher_suite() {
        Some(s) => format!("{version} with cipher {:?}", s.suite()),
        None => version,
    }
}

/// Accepts any certificate but still checks the handshake signatures (so the channel is
/// encrypted to whoever holds the presented key).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
