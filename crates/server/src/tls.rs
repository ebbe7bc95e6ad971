//! TLS server configuration: certificate chain and key from PEM files, TLS ≥ 1.2 (rustls),
//! swapped atomically on SIGHUP. A session keeps the configuration it started with, so a reload
//! never disturbs open sessions; the next handshake sees the new certificate.

use crate::config::{TlsSection, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::{Arc, RwLock};

/// The current TLS server configuration, replaceable at run time.
#[derive(Debug)]
pub struct TlsConfig {
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsConfig {
    pub fn load(section: &TlsSection) -> Result<Self, String> {
        Ok(TlsConfig {
            current: RwLock::new(Arc::new(build(section)?)),
        })
    }

    /// Re-reads the files; on error the old configuration stays in use.
    pub fn reload(&self, section: &TlsSection) -> Result<(), String> {
        let new = Arc::new(build(section)?);
        match self.current.write() {
            Ok(mut cur) => *cur = new,
            // A panic while holding this lock cannot leave the Arc half-written: replace it.
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        Ok(())
    }

    /// The configuration for a new handshake.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let cfg = match self.current.read() {
            Ok(cur) => Arc::clone(&cur),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        tokio_rustls::TlsAcceptor::from(cfg)
    }
}

fn build(section: &TlsSection) -> Result<rustls::ServerConfig, String> {
    let cert_path = &section.cert;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| format!("tls.cert {}: {e}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert {}: no certificate in file",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&section.key)
        .map_err(|e| format!("tls.key {}: {e}", section.key.display()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match section.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: certificate and key do not fit together: {e}"))?;
    // Mail clients resume often (phones reconnecting); keep a modest in-memory session cache.
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(1024);
    Ok(cfg)
}

/// Facts about an established TLS session, for logs and Received headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// e.g. "TLSv1.3"
    pub protocol: String,
    /// e.g. "TLS13_AES_256_GCM_SHA384"
    pub cipher: String,
    /// Server name the client asked for (SNI).
    pub sni: Option<String>,
}

impl TlsInfo {
    pub(crate) fn from_conn(conn: &rustls::ServerConnection) -> Self {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_owned(),
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_else(|| "unknown".to_owned());
        TlsInfo {
            protocol,
            cipher,
            sni: conn.server_name().map(str::to_owned),
        }
    }
}
