//! SCRAM credentials (RFC 5802, RFC 7677) in Dovecot's stored form
//! `<iterations>,<base64 salt>,<base64 StoredKey>,<base64 ServerKey>`.

use crate::encoding::{b64_decode, b64_encode};
use crate::Error;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The hash a SCRAM mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SCRAM-SHA-1.
    Sha1,
    /// SCRAM-SHA-256.
    Sha256,
}

/// What a SCRAM server needs for one user (RFC 5802 §3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    /// PBKDF2 iteration count sent to the client.
    pub iterations: u32,
    /// Salt sent to the client (raw bytes).
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("iterations", &self.iterations)
            .field("salt", &"***")
            .field("stored_key", &"***")
            .field("server_key", &"***")
            .finish()
    }
}

/// Dovecot refuses fewer iterations than this (SCRAM_MIN_ITERATE_COUNT), as RFC 7677 asks.
pub(crate) const MIN_ITERATIONS: u32 = 4096;
/// Dovecot's upper bound (INT_MAX).
const MAX_ITERATIONS: u32 = i32::MAX as u32;

impl ScramHash {
    fn len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }

    fn hmac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable_hmac());
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable_hmac());
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.len()];
        match self {
            ScramHash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail.
fn unreachable_hmac() -> ! {
    unreachable!("HMAC accepts keys of any length")
}

impl ScramCredentials {
    /// Derive credentials from a cleartext password.
    pub(crate) fn derive(
        hash: ScramHash,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredentials {
        let salted = hash.salted_password(password, &salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        ScramCredentials {
            iterations,
            salt,
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
        }
    }

    /// Parse Dovecot's stored form.
    pub(crate) fn parse(
        hash: ScramHash,
        data: &[u8],
        scheme: &'static str,
    ) -> Result<ScramCredentials, Error> {
        let bad = |reason| Error::Malformed { scheme, reason };
        let text = std::str::from_utf8(data).map_err(|_| bad("not ASCII"))?;
        let mut fields = text.split(',');
        let (Some(iter), Some(salt), Some(stored), Some(server), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(bad("expected <iterations>,<salt>,<StoredKey>,<ServerKey>"));
        };
        let iterations: u32 = iter
            .parse()
            .ok()
            .filter(|n| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(n))
            .ok_or(bad("iteration count must be 4096..2147483647"))?;
        let salt = b64_decode(salt).ok_or(bad("salt is not base64"))?;
        let stored_key = b64_decode(stored).ok_or(bad("StoredKey is not base64"))?;
        let server_key = b64_decode(server).ok_or(bad("ServerKey is not base64"))?;
        if stored_key.len() != hash.len() || server_key.len() != hash.len() {
            return Err(bad("StoredKey/ServerKey have the wrong length"));
        }
        Ok(ScramCredentials {
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }

    /// Dovecot's stored form.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            b64_encode(&self.salt),
            b64_encode(&self.stored_key),
            b64_encode(&self.server_key)
        )
    }

    /// Check a cleartext password against these credentials (what Dovecot's scram_verify does:
    /// recompute StoredKey).
    pub(crate) fn verify(&self, hash: ScramHash, password: &[u8]) -> bool {
        let salted = hash.salted_password(password, &self.salt, self.iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        hash.hash(&client_key).ct_eq(&self.stored_key).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5802_example() {
        // RFC 5802 §5: user "user", password "pencil", salt QSXCR+Q6sek8bf92, i=4096.
        let salt = b64_decode("QSXCR+Q6sek8bf92").unwrap();
        let c = ScramCredentials::derive(ScramHash::Sha1, b"pencil", salt, 4096);
        // ServerSignature v=rmF9pqV8S7suAoZWja4dJRkFsKQ= is HMAC(ServerKey, AuthMessage).
        let auth =
            "n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,\
                    s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let sig = ScramHash::Sha1.hmac(&c.server_key, auth.as_bytes());
        assert_eq!(b64_encode(&sig), "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
        assert!(c.verify(ScramHash::Sha1, b"pencil"));
        assert!(!c.verify(ScramHash::Sha1, b"pencil2"));
    }

    #[test]
    fn rfc7677_example() {
        // RFC 7677 §3: SCRAM-SHA-256, password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==.
        let salt = b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = ScramCredentials::derive(ScramHash::Sha256, b"pencil", salt, 4096);
        let auth =
            "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                    s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,\
                    r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = ScramHash::Sha256.hmac(&c.server_key, auth.as_bytes());
        assert_eq!(
            b64_encode(&sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }
}
