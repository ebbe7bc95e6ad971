//! The crypt(3) family as glibc/libxcrypt write it: SHA-512/SHA-256-crypt (with `rounds=`),
//! MD5-crypt, bcrypt (`$2a$`/`$2b$`/`$2x$`/`$2y$`), yescrypt (`$y$`, verify only) and
//! traditional DES crypt.
//!
//! Verification works like Dovecot's `crypt_verify`: compute crypt(password, stored) and compare
//! the whole string, so a stored value glibc would never produce (unclamped rounds, salt longer
//! than the algorithm uses) does not verify either.

use crate::des_crypt;
use crate::Error;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// The crypt(3) base64 alphabet (also Dovecot's salt alphabet).
pub(crate) const ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Which crypt(3) algorithm a stored value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sha512,
    Sha256,
    Md5,
    Bcrypt,
    Yescrypt,
    Des,
}

/// Identify a stored crypt string; `None` if this build cannot verify it.
pub(crate) fn kind(data: &str) -> Option<Kind> {
    let b = data.as_bytes();
    if data.starts_with("$6$") {
        Some(Kind::Sha512)
    } else if data.starts_with("$5$") {
        Some(Kind::Sha256)
    } else if data.starts_with("$1$") {
        Some(Kind::Md5)
    } else if b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
    {
        Some(Kind::Bcrypt)
    } else if data.starts_with("$y$") {
        Some(Kind::Yescrypt)
    } else if b.len() == 13 && b.iter().all(|c| ALPHABET.contains(c)) {
        Some(Kind::Des)
    } else {
        None
    }
}

/// Check at parse time that `data` is something [`verify`] can handle.
pub(crate) fn check(data: &str, scheme: &'static str) -> Result<Kind, Error> {
    let k = kind(data).ok_or(Error::Malformed {
        scheme,
        reason: "not a crypt(3) hash this build can verify ($6$, $5$, $1$, $2?$, $y$ or DES)",
    })?;
    if k == Kind::Yescrypt && yescrypt_cost(data).is_none() {
        return Err(Error::Malformed {
            scheme,
            reason: "yescrypt parameters must be libxcrypt's $y$j..$ form with at most 1 GiB",
        });
    }
    if k == Kind::Bcrypt {
        let cost = data.get(4..6).and_then(|c| c.parse::<u32>().ok());
        if !matches!(cost, Some(4..=31)) || data.as_bytes()[6] != b'$' {
            return Err(Error::Malformed {
                scheme,
                reason: "bcrypt cost must be two digits 04-31",
            });
        }
    }
    Ok(k)
}

/// Verify `password` against a stored crypt(3) string.
pub(crate) fn verify(password: &[u8], data: &str) -> Result<bool, Error> {
    let Some(k) = kind(data) else {
        return Ok(false);
    };
    Ok(match k {
        Kind::Sha512 | Kind::Sha256 | Kind::Md5 | Kind::Des => {
            let computed = match k {
                Kind::Sha512 => sha_crypt(password, data, true),
                Kind::Sha256 => sha_crypt(password, data, false),
                Kind::Md5 => md5_crypt(password, data),
                _ => des_crypt::crypt(password, data.as_bytes()),
            };
            match computed {
                Some(c) => c.as_bytes().ct_eq(data.as_bytes()).into(),
                None => false,
            }
        }
        // bcrypt::verify rejects malformed strings and costs outside 4..=31 with an error.
        Kind::Bcrypt => bcrypt::verify(password, data).unwrap_or(false),
        Kind::Yescrypt if yescrypt_cost(data).is_none() => false,
        Kind::Yescrypt => {
            use yescrypt::PasswordVerifier;
            yescrypt::Yescrypt::default()
                .verify_password(password, data)
                .is_ok()
        }
    })
}

/// Rough cost of one verification in hash-block units (for fuzzing and sanity limits).
pub(crate) fn work_factor(data: &str) -> u64 {
    match kind(data) {
        Some(Kind::Sha512) | Some(Kind::Sha256) => parse_sha(data, true).map_or(0, |p| p.rounds),
        Some(Kind::Md5) => 1000,
        Some(Kind::Des) => 25,
        Some(Kind::Bcrypt) => data
            .get(4..6)
            .and_then(|c| c.parse::<u32>().ok())
            .filter(|c| *c < 40)
            .map_or(0, |c| 1u64 << c),
        Some(Kind::Yescrypt) => yescrypt_cost(data).unwrap_or(0),
        None => 0,
    }
}

/// N·r of a `$y$` hash whose parameters are the 3-character form libxcrypt writes
/// (`j` = yescrypt read-write flavour, N, r; p = 1) and need at most 1 GiB (128·r·N bytes);
/// `None` for anything else. The yescrypt crate is only ever handed these: other parameter
/// encodings can make it divide by zero (p = 0) or allocate without bound.
fn yescrypt_cost(data: &str) -> Option<u64> {
    let params = data.strip_prefix("$y$")?.split('$').next()?;
    if params.len() != 3 || !params.starts_with('j') {
        return None;
    }
    let p: yescrypt::Params = params.parse().ok()?;
    let (n, r) = (p.n(), u64::from(p.r()));
    let bytes = 128u64.checked_mul(r)?.checked_mul(n)?;
    (p.p() == 1 && n >= 2 && r >= 1 && bytes <= 1 << 30).then_some(n * r)
}

/// Encode bytes the way crypt(3) does: 3-byte groups taken little-endian, 6 bits per
/// character, low bits first; a short last group yields 2 or 3 characters.
pub(crate) fn b64_encode(bytes: &[u8], out: &mut String) {
    for chunk in bytes.chunks(3) {
        let mut w: u32 = 0;
        for (i, b) in chunk.iter().enumerate() {
            w |= u32::from(*b) << (8 * i);
        }
        for _ in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(w & 0x3f) as usize]));
            w >>= 6;
        }
    }
}

/// Random salt characters from the crypt alphabet (256 is a multiple of 64: no bias).
pub(crate) fn salt_chars(len: usize) -> Result<String, Error> {
    let mut raw = vec![0u8; len];
    crate::random(&mut raw)?;
    Ok(raw
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 0x3f)]))
        .collect())
}

struct ShaSetting<'a> {
    /// Whether `rounds=` was written (glibc then writes it back, clamped).
    explicit: bool,
    rounds: u64,
    salt: &'a str,
}

const SHA_ROUNDS_DEFAULT: u64 = 5000;
const SHA_ROUNDS_MIN: u64 = 1000;
const SHA_ROUNDS_MAX: u64 = 999_999_999;

fn parse_sha(data: &str, sha512: bool) -> Option<ShaSetting<'_>> {
    let rest = data.strip_prefix(if sha512 { "$6$" } else { "$5$" })?;
    let (explicit, rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let (num, after) = r.split_once('$')?;
            if num.is_empty() || num.len() > 19 || !num.bytes().all(|c| c.is_ascii_digit()) {
                // glibc then treats "rounds=…" as the salt; such strings never round-trip.
                return None;
            }
            let n: u64 = num.parse().ok()?;
            (true, n.clamp(SHA_ROUNDS_MIN, SHA_ROUNDS_MAX), after)
        }
        None => (false, SHA_ROUNDS_DEFAULT, rest),
    };
    let salt_end = rest.find('$').unwrap_or(rest.len());
    let salt = rest.get(..salt_end.min(16))?;
    Some(ShaSetting {
        explicit,
        rounds,
        salt,
    })
}

/// SHA-crypt output transposition (the order glibc encodes the final digest in).
const SHA512_ORDER: [usize; 64] = [
    42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8,
    50, 51, 30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58,
    37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
];
const SHA256_ORDER: [usize; 32] = [
    20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27, 8, 28,
    18, 29, 19, 9, 30, 31,
];

/// crypt(3) for `$6$`/`$5$` settings; `None` if the setting is malformed.
pub(crate) fn sha_crypt(password: &[u8], setting: &str, sha512: bool) -> Option<String> {
    let s = parse_sha(setting, sha512)?;
    // Rounds are clamped to 1000..=999_999_999 above, so they fit and Params accepts them.
    let params = sha_crypt::Params::new(u32::try_from(s.rounds).ok()?).ok()?;
    let mut out = String::with_capacity(128);
    out.push_str(if sha512 { "$6$" } else { "$5$" });
    if s.explicit {
        out.push_str(&format!("rounds={}$", s.rounds));
    }
    out.push_str(s.salt);
    out.push('$');
    let mut ordered = Vec::with_capacity(64);
    if sha512 {
        let raw = sha_crypt::sha512_crypt(password, s.salt.as_bytes(), params);
        ordered.extend(SHA512_ORDER.iter().map(|&i| raw[i]));
    } else {
        let raw = sha_crypt::sha256_crypt(password, s.salt.as_bytes(), params);
        ordered.extend(SHA256_ORDER.iter().map(|&i| raw[i]));
    }
    b64_encode(&ordered, &mut out);
    Some(out)
}

/// Generate a SHA-crypt hash the way Dovecot does: 16 salt characters, `rounds=` only when not
/// the default 5000, rounds clamped to glibc's range.
pub(crate) fn sha_crypt_generate(
    password: &[u8],
    sha512: bool,
    rounds: Option<u32>,
) -> Result<String, Error> {
    let salt = salt_chars(16)?;
    let prefix = if sha512 { "$6$" } else { "$5$" };
    let setting = match rounds.map(u64::from) {
        None | Some(SHA_ROUNDS_DEFAULT) | Some(0) => format!("{prefix}{salt}"),
        Some(r) => format!(
            "{prefix}rounds={}${salt}",
            r.clamp(SHA_ROUNDS_MIN, SHA_ROUNDS_MAX)
        ),
    };
    let scheme = if sha512 {
        "SHA512-CRYPT"
    } else {
        "SHA256-CRYPT"
    };
    sha_crypt(password, &setting, sha512).ok_or(Error::Malformed {
        scheme,
        reason: "internal: generated setting did not parse",
    })
}

/// MD5-crypt (`$1$`), as in FreeBSD/glibc and Dovecot's `password_generate_md5_crypt`.
/// The salt is what follows `$1$` up to the next `$`, at most 8 characters.
pub(crate) fn md5_crypt(password: &[u8], setting: &str) -> Option<String> {
    let rest = setting.strip_prefix("$1$")?;
    let end = rest.find('$').unwrap_or(rest.len()).min(8);
    let salt = rest.get(..end)?.as_bytes();

    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(b"$1$");
    ctx.update(salt);
    let alt = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin: [u8; 16] = ctx.finalize().into();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(password);
        }
        if i & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize().into();
    }
    const ORDER: [usize; 16] = [12, 6, 0, 13, 7, 1, 14, 8, 2, 15, 9, 3, 5, 10, 4, 11];
    let ordered: Vec<u8> = ORDER.iter().map(|&i| fin[i]).collect();
    let mut out = String::with_capacity(34);
    out.push_str("$1$");
    out.push_str(std::str::from_utf8(salt).ok()?);
    out.push('$');
    b64_encode(&ordered, &mut out);
    Some(out)
}

/// A new MD5-crypt hash with Dovecot's 8-character salt.
pub(crate) fn md5_crypt_generate(password: &[u8]) -> Result<String, Error> {
    let salt = salt_chars(8)?;
    md5_crypt(password, &format!("$1${salt}")).ok_or(Error::Malformed {
        scheme: "MD5-CRYPT",
        reason: "internal: generated setting did not parse",
    })
}

/// A new bcrypt hash, `$2y$` like Dovecot's BLF-CRYPT (cost 4..=31, default 5).
pub(crate) fn bcrypt_generate(password: &[u8], rounds: Option<u32>) -> Result<String, Error> {
    // Like crypt_gensalt (and so doveadm): out-of-range costs are clamped, 0 is the default.
    let cost = match rounds {
        None | Some(0) => 5,
        Some(r) => r.clamp(4, 31),
    };
    let mut salt = [0u8; 16];
    crate::random(&mut salt)?;
    let parts = bcrypt::hash_with_salt(password, cost, salt).map_err(|_| Error::Malformed {
        scheme: "BLF-CRYPT",
        reason: "bcrypt refused the parameters",
    })?;
    Ok(parts.format_for_version(bcrypt::Version::TwoY))
}

/// A new traditional DES crypt hash with a random 2-character salt.
pub(crate) fn des_crypt_generate(password: &[u8]) -> Result<String, Error> {
    let salt = salt_chars(2)?;
    des_crypt::crypt(password, salt.as_bytes()).ok_or(Error::Malformed {
        scheme: "DES-CRYPT",
        reason: "internal: generated salt did not parse",
    })
}
