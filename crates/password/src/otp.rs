//! Dovecot's OTP scheme (RFC 2289 one-time passwords, the S/KEY successor): stored as
//! `<algo> <sequence> <seed> <hex hash>`, where the hash is the passphrase's OTP chain after
//! `sequence` steps. Verifying recomputes the chain from the cleartext, as Dovecot's
//! `otp_verify` does; the OTP SASL mechanism itself is not implemented in pochta.

use crate::encoding::{hex_decode, hex_encode};
use crate::Error;
use md4::Md4;
use md5::Md5;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Dovecot generates `sha1 1024 <16 hex seed> <hash>`.
const DEFAULT_SEQ: u32 = 1024;
/// Dovecot's OTP_MAX_SEQUENCE bound on what it accepts.
const MAX_SEQ: u32 = 9999;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algo {
    Md4,
    Md5,
    Sha1,
}

impl Algo {
    fn name(self) -> &'static str {
        match self {
            Algo::Md4 => "md4",
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
        }
    }

    /// One digest folded to 64 bits the way Dovecot's lib-otp does (MD4/MD5: halves XORed;
    /// SHA-1: words 0^2^4 and 1^3 with each 32-bit word byte-reversed, RFC 2289 appendix A).
    fn fold(self, parts: &[&[u8]]) -> [u8; 8] {
        let mut out = [0u8; 8];
        match self {
            Algo::Md4 | Algo::Md5 => {
                let d: [u8; 16] = if self == Algo::Md4 {
                    let mut h = Md4::new();
                    parts.iter().for_each(|p| h.update(p));
                    h.finalize().into()
                } else {
                    let mut h = Md5::new();
                    parts.iter().for_each(|p| h.update(p));
                    h.finalize().into()
                };
                for i in 0..8 {
                    out[i] = d[i] ^ d[i + 8];
                }
            }
            Algo::Sha1 => {
                let mut h = Sha1::new();
                parts.iter().for_each(|p| h.update(p));
                let d: [u8; 20] = h.finalize().into();
                for i in 0..4 {
                    out[3 - i] = d[i] ^ d[i + 8] ^ d[i + 16];
                    out[7 - i] = d[i + 4] ^ d[i + 12];
                }
            }
        }
        out
    }

    fn chain(self, seed: &str, passphrase: &[u8], steps: u32) -> [u8; 8] {
        let mut r = self.fold(&[seed.as_bytes(), passphrase]);
        for _ in 0..steps {
            r = self.fold(&[&r]);
        }
        r
    }
}

/// A parsed OTP entry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct OtpEntry {
    algo: Algo,
    seq: u32,
    seed: String,
    hash: [u8; 8],
}

fn bad(reason: &'static str) -> Error {
    Error::Malformed {
        scheme: "OTP",
        reason,
    }
}

impl OtpEntry {
    pub(crate) fn parse(data: &str) -> Result<OtpEntry, Error> {
        let mut f = data.split(' ');
        let (Some(algo), Some(seq), Some(seed), Some(hash), None) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad("expected <algo> <sequence> <seed> <hash>"));
        };
        let algo = match algo {
            "md4" => Algo::Md4,
            "md5" => Algo::Md5,
            "sha1" => Algo::Sha1,
            _ => return Err(bad("algorithm must be md4, md5 or sha1")),
        };
        let seq: u32 = seq
            .parse()
            .ok()
            .filter(|s| *s <= MAX_SEQ)
            .ok_or(bad("sequence must be 0..9999"))?;
        if seed.is_empty() || seed.len() > 16 || !seed.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad("seed must be 1-16 alphanumeric characters"));
        }
        let hash = hex_decode(hash)
            .and_then(|h| <[u8; 8]>::try_from(h).ok())
            .ok_or(bad("hash must be 16 hex digits"))?;
        Ok(OtpEntry {
            algo,
            seq,
            seed: seed.to_ascii_lowercase(),
            hash,
        })
    }

    pub(crate) fn verify(&self, passphrase: &[u8]) -> bool {
        self.algo
            .chain(&self.seed, passphrase, self.seq)
            .ct_eq(&self.hash)
            .into()
    }

    pub(crate) fn work_factor(&self) -> u64 {
        u64::from(self.seq)
    }
}

/// A new entry like Dovecot's: SHA-1, sequence 1024, 16 hex digits of random seed.
pub(crate) fn generate(passphrase: &[u8]) -> Result<String, Error> {
    let mut raw = [0u8; 8];
    crate::random(&mut raw)?;
    let seed = hex_encode(&raw);
    let algo = Algo::Sha1;
    let hash = algo.chain(&seed, passphrase, DEFAULT_SEQ);
    Ok(format!(
        "{} {DEFAULT_SEQ} {seed} {}",
        algo.name(),
        hex_encode(&hash)
    ))
}
