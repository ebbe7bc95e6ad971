//! Argon2 in libsodium's string form, as Dovecot's ARGON2I/ARGON2ID schemes store it:
//! `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<b64 salt>$<b64 hash>` (base64 unpadded).

use crate::Error;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

/// Memory above this (KiB, = 4 GiB, libsodium's practical ceiling on 64-bit) is refused when
/// parsing so a bad entry cannot make verification allocate without bound.
const MAX_M_KIB: u32 = 4 * 1024 * 1024;
const MAX_T: u32 = 1 << 16;
const MAX_P: u32 = 255;

/// A parsed Argon2 hash string.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Argon2Hash {
    algorithm: Algorithm,
    version: Version,
    m: u32,
    t: u32,
    p: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn bad(reason: &'static str) -> Error {
    Error::Malformed {
        scheme: "ARGON2",
        reason,
    }
}

impl Argon2Hash {
    pub(crate) fn parse(data: &str) -> Result<Argon2Hash, Error> {
        let mut f = data.split('$');
        if f.next() != Some("") {
            return Err(bad("must start with $argon2i$ or $argon2id$"));
        }
        let algorithm = match f.next() {
            Some("argon2i") => Algorithm::Argon2i,
            Some("argon2id") => Algorithm::Argon2id,
            _ => return Err(bad("must start with $argon2i$ or $argon2id$")),
        };
        let mut field = f.next().ok_or(bad("missing parameters"))?;
        let version = match field.strip_prefix("v=") {
            Some("19") => {
                field = f.next().ok_or(bad("missing parameters"))?;
                Version::V0x13
            }
            Some("16") => {
                field = f.next().ok_or(bad("missing parameters"))?;
                Version::V0x10
            }
            Some(_) => return Err(bad("unsupported version (v=19 or v=16)")),
            None => Version::V0x10,
        };
        let (mut m, mut t, mut p) = (None, None, None);
        for kv in field.split(',') {
            let (k, v) = kv
                .split_once('=')
                .ok_or(bad("parameters must be m=,t=,p="))?;
            let n: u32 = v.parse().map_err(|_| bad("parameter is not a number"))?;
            let slot = match k {
                "m" => &mut m,
                "t" => &mut t,
                "p" => &mut p,
                _ => return Err(bad("unknown parameter")),
            };
            if slot.replace(n).is_some() {
                return Err(bad("duplicate parameter"));
            }
        }
        let (Some(m), Some(t), Some(p)) = (m, t, p) else {
            return Err(bad("parameters must be m=,t=,p="));
        };
        if m > MAX_M_KIB || t > MAX_T || p == 0 || p > MAX_P || t == 0 || m < 8 * p {
            return Err(bad("parameters out of range"));
        }
        let salt = STANDARD_NO_PAD
            .decode(f.next().ok_or(bad("missing salt"))?)
            .map_err(|_| bad("salt is not unpadded base64"))?;
        let hash = STANDARD_NO_PAD
            .decode(f.next().ok_or(bad("missing hash"))?)
            .map_err(|_| bad("hash is not unpadded base64"))?;
        if f.next().is_some() {
            return Err(bad("trailing fields"));
        }
        if !(8..=64).contains(&salt.len()) || !(16..=64).contains(&hash.len()) {
            return Err(bad("salt or hash length out of range"));
        }
        // Let the argon2 crate check the combination too, so verify cannot fail later.
        Params::new(m, t, p, Some(hash.len())).map_err(|_| bad("parameters out of range"))?;
        Ok(Argon2Hash {
            algorithm,
            version,
            m,
            t,
            p,
            salt,
            hash,
        })
    }

    pub(crate) fn verify(&self, password: &[u8]) -> Result<bool, Error> {
        let params = Params::new(self.m, self.t, self.p, Some(self.hash.len()))
            .map_err(|_| bad("parameters out of range"))?;
        let mut out = vec![0u8; self.hash.len()];
        Argon2::new(self.algorithm, self.version, params)
            .hash_password_into(password, &self.salt, &mut out)
            .map_err(|_| bad("argon2 refused the parameters"))?;
        Ok(out.ct_eq(&self.hash).into())
    }

    pub(crate) fn work_factor(&self) -> u64 {
        u64::from(self.m) * u64::from(self.t)
    }
}

/// Dovecot's cost choice (password-scheme-sodium.c): `rounds` is libsodium's opslimit; memory
/// follows the opslimit tier (interactive/moderate/sensitive); argon2id needs at least 3 passes.
pub(crate) fn generate(password: &[u8], id: bool, rounds: Option<u32>) -> Result<String, Error> {
    // libsodium's OPSLIMIT_{INTERACTIVE,MODERATE,SENSITIVE} and MEMLIMIT_* (KiB).
    let (ops, mem): ([u32; 3], [u32; 3]) = if id {
        ([2, 3, 4], [65536, 262_144, 1_048_576])
    } else {
        ([4, 6, 8], [32768, 131_072, 524_288])
    };
    let mut t = match rounds {
        None | Some(0) => ops[0],
        Some(r) => r,
    };
    let m = if t >= ops[2] {
        mem[2]
    } else if t >= ops[1] {
        mem[1]
    } else {
        mem[0]
    };
    let scheme = if id { "ARGON2ID" } else { "ARGON2I" };
    if id {
        // Dovecot: "the argon2id implementation in libsodium needs at least 3 rounds".
        t = t.max(3);
    } else if t < 3 {
        return Err(Error::InvalidRounds {
            scheme,
            rounds: t,
            range: "3 or more",
        });
    }
    let mut salt = [0u8; 16];
    crate::random(&mut salt)?;
    let params = Params::new(m, t, 1, Some(32)).map_err(|_| Error::InvalidRounds {
        scheme,
        rounds: t,
        range: "3 or more",
    })?;
    let algorithm = if id {
        Algorithm::Argon2id
    } else {
        Algorithm::Argon2i
    };
    let mut out = [0u8; 32];
    Argon2::new(algorithm, Version::V0x13, params)
        .hash_password_into(password, &salt, &mut out)
        .map_err(|_| Error::InvalidRounds {
            scheme,
            rounds: t,
            range: "3 or more",
        })?;
    Ok(format!(
        "${}$v=19$m={m},t={t},p=1${}${}",
        if id { "argon2id" } else { "argon2i" },
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}
