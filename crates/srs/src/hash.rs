//! The keyed hash that makes an SRS address unforgeable: HMAC-SHA1 over the address fields, each
//! lowercased (ASCII only, as C's `tolower` in the C locale) and simply concatenated, the first
//! 18 bits of the MAC written as 4 base64 characters.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::SrsError;

/// Characters of hash written and compared (postsrsd's `hash-length`/`hash-minimum`, both 4 by
/// default). Longer hashes in incoming addresses are accepted on their first 4 characters, as
/// libsrs2 does, so a postsrsd configured with `-n 8` still interoperates.
pub(crate) const HASH_LEN: usize = 4;

/// The longest secret postsrsd can read back from its secrets file: it reads lines with a
/// 1024-byte `fgets` buffer, so a longer line becomes several secrets.
pub(crate) const MAX_SECRET_LEN: usize = 1022;

/// Which two characters complete the 62 letters and digits in hashes we write. Verification
/// accepts both spellings whatever is chosen here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlphabet {
    /// `+` and `/`: libsrs2, postsrsd 1.x and postsrsd 2.x before 2.2.6. Every postsrsd version
    /// verifies these, so this is the default.
    #[default]
    Standard,
    /// `-` and `_` (base64url): postsrsd 2.2.6 and later write these, for sites whose
    /// recipient delimiter is `+`. postsrsd 1.x and older 2.x reject such hashes.
    UrlSafe,
}

/// The MAC keys, first one signs; the raw secrets are not kept.
pub(crate) struct Keys {
    macs: Vec<Hmac<Sha1>>,
}

impl Keys {
    pub(crate) fn new(secrets: Vec<Vec<u8>>) -> Result<Keys, SrsError> {
        if secrets.is_empty() {
            return Err(SrsError::NoSecrets);
        }
        let mut macs = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            // postsrsd keeps secrets as C strings read line by line: a secret it cannot hold
            // would make our hashes differ from its hashes for the same file.
            let reason = if secret.is_empty() {
                Some("empty")
            } else if secret.contains(&0) {
                Some("contains a NUL byte (postsrsd would cut it there)")
            } else if secret.iter().any(|&b| b == b'\n' || b == b'\r') {
                Some("contains a line break (a secrets file holds one secret per line)")
            } else if secret.len() > MAX_SECRET_LEN {
                Some("longer than 1022 bytes (postsrsd would split it into several secrets)")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(SrsError::Secret { index, reason });
            }
            let mac =
                <Hmac<Sha1> as KeyInit>::new_from_slice(secret).map_err(|_| SrsError::Secret {
                    index,
                    reason: "rejected as HMAC key",
                })?;
            macs.push(mac);
        }
        Ok(Keys { macs })
    }

    pub(crate) fn len(&self) -> usize {
        self.macs.len()
    }

    /// The hash of `parts` under the signing (first) secret.
    pub(crate) fn sign(&self, parts: &[&str], alphabet: HashAlphabet) -> String {
        let Some(first) = self.macs.first() else {
            // Keys::new refuses an empty list.
            return String::new();
        };
        let digest = mac_prefix(first, parts);
        let engine = match alphabet {
            HashAlphabet::Standard => &STANDARD_NO_PAD,
            HashAlphabet::UrlSafe => &URL_SAFE_NO_PAD,
        };
        engine.encode(digest)
    }

    /// Whether `given` is the hash of `parts` under any secret: case-insensitive, `+`≡`-` and
    /// `/`≡`_`, only the first [`HASH_LEN`] characters count.
    pub(crate) fn verify(&self, given: &str, parts: &[&str]) -> Result<(), SrsError> {
        let given = given.as_bytes();
        let Some(given) = given.get(..HASH_LEN) else {
            return Err(SrsError::Syntax {
                reason: "hash too short",
            });
        };
        let mut want = [0u8; HASH_LEN];
        for (w, &g) in want.iter_mut().zip(given) {
            *w = CANONICAL[usize::from(g)];
        }
        let mut found = subtle::Choice::from(0);
        // Every secret is tried, matched or not: the time taken does not say which one matched.
        for mac in &self.macs {
            let ours = STANDARD_NO_PAD.encode(mac_prefix(mac, parts));
            let mut have = [0u8; HASH_LEN];
            for (h, &o) in have.iter_mut().zip(ours.as_bytes()) {
                *h = CANONICAL[usize::from(o)];
            }
            found |= have.ct_eq(&want);
        }
        // A character outside the alphabet maps to 0, which our own hash never contains.
        if bool::from(found) {
            Ok(())
        } else {
            Err(SrsError::BadHash)
        }
    }
}

/// The first 3 bytes (= 4 base64 characters) of HMAC-SHA1 over the lowercased parts.
fn mac_prefix(key: &Hmac<Sha1>, parts: &[&str]) -> [u8; 3] {
    let mut mac = key.clone();
    for part in parts {
        mac.update(&part.as_bytes().to_ascii_lowercase());
    }
    let full = mac.finalize().into_bytes();
    let mut prefix = [0u8; 3];
    for (p, f) in prefix.iter_mut().zip(full.iter()) {
        *p = *f;
    }
    prefix
}

/// Hash characters folded to one spelling: letters to lowercase, `+` to `-`, `/` to `_`,
/// anything that is no base64 character to 0. A table rather than branches, so the comparison
/// does not branch on our hash.
const CANONICAL: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        table[c] = match b {
            b'A'..=b'Z' => b + (b'a' - b'A'),
            b'a'..=b'z' | b'0'..=b'9' => b,
            b'+' | b'-' => b'-',
            b'/' | b'_' => b'_',
            _ => 0,
        };
        c += 1;
    }
    table
};
