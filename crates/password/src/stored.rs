//! A passdb password: `{SCHEME}data` parsed once, verified many times.

use crate::argon::Argon2Hash;
use crate::cram::CramMd5Key;
use crate::crypt;
use crate::encoding::{b64_decode, hex_decode};
use crate::otp::OtpEntry;
use crate::scheme::{Encoding, SchemeName};
use crate::scram::{ScramCredentials, ScramHash};
use crate::{Error, Scheme};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::fmt;
use std::sync::OnceLock;
use subtle::ConstantTimeEq;

/// A parsed passdb password. `Debug` never shows the data.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPassword {
    scheme: Scheme,
    data: Data,
}

#[derive(Clone, PartialEq, Eq)]
enum Data {
    /// The decoded value: cleartext for PLAIN, the digest for SHA*/MD5/MD4/DIGEST-MD5,
    /// digest‖salt for SSHA*/SMD5, `<len>-<text>` for PLAIN-TRUNC.
    Bytes(Vec<u8>),
    /// A crypt(3) string (any of the crypt family).
    Crypt(String),
    Argon2(Argon2Hash),
    Pbkdf2 {
        salt: Vec<u8>,
        rounds: u32,
        hash: Vec<u8>,
    },
    Scram(ScramCredentials),
    Cram(CramMd5Key),
    Otp(OtpEntry),
}

/// libpam-pwdfile's `data[NN]` suffix (Dovecot's passwd-file honours it).
fn pam_suffix(stored: &str) -> Option<(&str, Scheme)> {
    let b = stored.as_bytes();
    let n = b.len();
    if n <= 4 || b[0] == b'{' || b[n - 4] != b'[' || b[n - 1] != b']' {
        return None;
    }
    let (d1, d2) = (b[n - 3], b[n - 2]);
    if !d1.is_ascii_digit() || !d2.is_ascii_digit() {
        return None;
    }
    let scheme = match (d1 - b'0') * 10 + (d2 - b'0') {
        34 => Scheme::PlainMd5,
        56 => Scheme::DigestMd5,
        _ => Scheme::Crypt,
    };
    Some((stored.get(..n - 4)?, scheme))
}

fn malformed(scheme: Scheme, reason: &'static str) -> Error {
    Error::Malformed {
        scheme: scheme.name(),
        reason,
    }
}

impl StoredPassword {
    /// Parse a passdb password: `{SCHEME}data`, `{SCHEME.b64}data`/`.hex`, bare data (taken as
    /// `default_scheme`, normally [`Scheme::Crypt`]), libpam-pwdfile `data[13]`/`[34]`/`[56]`,
    /// or a bare `$1$…` (auto-detected as MD5-CRYPT). Weak schemes are an error unless
    /// `allow_weak`.
    pub fn parse(
        stored: &str,
        default_scheme: Scheme,
        allow_weak: bool,
    ) -> Result<StoredPassword, Error> {
        let (name, text) = if let Some((data, scheme)) = pam_suffix(stored) {
            if scheme == Scheme::DigestMd5 && data.len() != 32 {
                return Err(malformed(scheme, "[56] entries must be 32 hex digits"));
            }
            (plain_name(scheme), data)
        } else if let Some(rest) = stored.strip_prefix("$1$") {
            // Dovecot keeps "$1$salt$hash" and drops anything after a further '$'.
            let end = rest
                .find('$')
                .and_then(|s| rest[s + 1..].find('$').map(|h| s + 1 + h))
                .unwrap_or(rest.len());
            (plain_name(Scheme::Md5Crypt), &stored[..3 + end])
        } else if let Some((name, data)) = stored.strip_prefix('{').and_then(|r| r.split_once('}'))
        {
            (SchemeName::parse(name)?, data)
        } else {
            (plain_name(default_scheme), stored)
        };

        // "{MD5}" generates MD5-CRYPT but verifies PLAIN-MD5 data too.
        let name = if name.md5_alias && !text.starts_with("$1$") {
            SchemeName {
                scheme: Scheme::PlainMd5,
                ..name
            }
        } else {
            name
        };
        let scheme = name.scheme;
        let raw = decode(scheme, name.encoding, text)?;
        let data = build(scheme, raw)?;
        let weak = scheme.is_weak()
            || name.md5_alias
            || matches!(&data, Data::Crypt(c)
                if matches!(crypt::kind(c), Some(crypt::Kind::Md5 | crypt::Kind::Des)));
        if weak && !allow_weak {
            return Err(Error::WeakScheme(if name.md5_alias {
                "MD5"
            } else {
                scheme.name()
            }));
        }
        Ok(StoredPassword { scheme, data })
    }

    /// The scheme the password is stored in.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Check a password. Slow for the crypt/Argon2/PBKDF2/SCRAM schemes: async callers run it
    /// in `spawn_blocking`. Compares in constant time. `user` matters only for DIGEST-MD5
    /// (`user@realm`, split at the last `@`).
    pub fn verify(&self, password: &[u8], user: &str) -> Result<bool, Error> {
        let ok = match &self.data {
            Data::Crypt(c) => crypt::verify(password, c)?,
            Data::Argon2(a) => a.verify(password)?,
            Data::Pbkdf2 { salt, rounds, hash } => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, *rounds, &mut out);
                out.ct_eq(hash.as_slice()).into()
            }
            Data::Scram(c) => c.verify(scram_hash(self.scheme), password),
            Data::Cram(k) => CramMd5Key::from_password(password)
                .to_context()
                .ct_eq(&k.to_context())
                .into(),
            Data::Otp(o) => o.verify(password),
            Data::Bytes(raw) => verify_bytes(self.scheme, raw, password, user),
        };
        Ok(ok)
    }

    /// The cleartext, for `{PLAIN}`/`{CLEAR}`/`{CLEARTEXT}` passwords only.
    pub fn cleartext(&self) -> Option<&[u8]> {
        match (&self.scheme, &self.data) {
            (Scheme::Plain, Data::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    /// The CRAM-MD5 key, from `{CRAM-MD5}`/`{HMAC-MD5}` or a cleartext password.
    pub fn cram_md5(&self) -> Option<CramMd5Key> {
        match &self.data {
            Data::Cram(k) => Some(k.clone()),
            _ => self.cleartext().map(CramMd5Key::from_password),
        }
    }

    /// SCRAM credentials, from the matching `{SCRAM-SHA-*}` or a cleartext password. From
    /// cleartext the salt is derived from the password with a per-process key, so it is stable
    /// for one stored value (a client sees the same salt on every attempt) and 4096 iterations
    /// are used. This runs PBKDF2: call it off the async threads.
    pub fn scram(&self, hash: ScramHash) -> Option<ScramCredentials> {
        match (&self.data, hash, self.scheme) {
            (Data::Scram(c), ScramHash::Sha1, Scheme::ScramSha1)
            | (Data::Scram(c), ScramHash::Sha256, Scheme::ScramSha256) => Some(c.clone()),
            _ => {
                let clear = self.cleartext()?;
                let salt = cleartext_salt(hash, clear);
                Some(ScramCredentials::derive(
                    hash,
                    clear,
                    salt,
                    crate::scram::MIN_ITERATIONS,
                ))
            }
        }
    }

    /// Rough cost of one [`verify`](Self::verify) in hash-block units: lets callers (and the
    /// fuzz target) skip or flag entries whose stored cost parameters are extreme.
    pub fn work_factor(&self) -> u64 {
        match &self.data {
            Data::Crypt(c) => crypt::work_factor(c),
            Data::Argon2(a) => a.work_factor(),
            Data::Pbkdf2 { rounds, .. } => u64::from(*rounds),
            Data::Scram(c) => u64::from(c.iterations),
            Data::Otp(o) => o.work_factor(),
            Data::Cram(_) | Data::Bytes(_) => 1,
        }
    }
}

fn plain_name(scheme: Scheme) -> SchemeName {
    SchemeName {
        scheme,
        encoding: None,
        md5_alias: false,
    }
}

fn scram_hash(scheme: Scheme) -> ScramHash {
    if scheme == Scheme::ScramSha1 {
        ScramHash::Sha1
    } else {
        ScramHash::Sha256
    }
}

/// Undo the `{SCHEME}` encoding (Dovecot's `password_decode`).
fn decode(scheme: Scheme, forced: Option<Encoding>, text: &str) -> Result<Vec<u8>, Error> {
    let raw = match (forced, scheme.raw_len()) {
        (None, Some(n)) => {
            // Guess: hex when twice the raw length (falling back to base64), else base64.
            let hex = if text.len() == 2 * n {
                hex_decode(text)
            } else {
                None
            };
            match hex {
                Some(h) => h,
                None => {
                    b64_decode(text).ok_or_else(|| malformed(scheme, "not valid hex or base64"))?
                }
            }
        }
        (enc, _) => match enc.unwrap_or(scheme.default_encoding()) {
            Encoding::None => text.as_bytes().to_vec(),
            Encoding::Hex => hex_decode(text).ok_or_else(|| malformed(scheme, "not valid hex"))?,
            Encoding::Base64 => {
                b64_decode(text).ok_or_else(|| malformed(scheme, "not valid base64"))?
            }
        },
    };
    if let Some(n) = scheme.raw_len() {
        if raw.len() != n {
            return Err(malformed(scheme, "decoded value has the wrong length"));
        }
    }
    Ok(raw)
}

/// Validate the decoded value for its scheme and keep it in the form `verify` needs.
fn build(scheme: Scheme, raw: Vec<u8>) -> Result<Data, Error> {
    let text = || String::from_utf8(raw.clone()).map_err(|_| malformed(scheme, "not ASCII"));
    Ok(match scheme {
        Scheme::Crypt
        | Scheme::Sha512Crypt
        | Scheme::Sha256Crypt
        | Scheme::Md5Crypt
        | Scheme::DesCrypt
        | Scheme::BlfCrypt => {
            let t = text()?;
            crypt::check(&t, scheme.name())?;
            Data::Crypt(t)
        }
        Scheme::Argon2 | Scheme::Argon2i | Scheme::Argon2id => {
            Data::Argon2(Argon2Hash::parse(&text()?)?)
        }
        Scheme::Pbkdf2 => parse_pbkdf2(&text()?)?,
        Scheme::Otp => Data::Otp(OtpEntry::parse(&text()?)?),
        Scheme::ScramSha1 => Data::Scram(ScramCredentials::parse(
            ScramHash::Sha1,
            &raw,
            scheme.name(),
        )?),
        Scheme::ScramSha256 => Data::Scram(ScramCredentials::parse(
            ScramHash::Sha256,
            &raw,
            scheme.name(),
        )?),
        Scheme::CramMd5 => Data::Cram(
            CramMd5Key::from_context(&raw)
                .ok_or_else(|| malformed(scheme, "must be 32 bytes (64 hex digits)"))?,
        ),
        Scheme::Ssha | Scheme::Ssha256 | Scheme::Ssha512 | Scheme::Smd5 => {
            let dlen = match scheme {
                Scheme::Ssha => 20,
                Scheme::Ssha256 => 32,
                Scheme::Ssha512 => 64,
                _ => 16,
            };
            if raw.len() <= dlen {
                return Err(malformed(
                    scheme,
                    "too short: digest followed by salt expected",
                ));
            }
            Data::Bytes(raw)
        }
        Scheme::PlainTrunc => {
            if plain_trunc_split(&raw).is_none() {
                return Err(malformed(scheme, "missing <length>- prefix"));
            }
            Data::Bytes(raw)
        }
        Scheme::Plain
        | Scheme::Sha
        | Scheme::Sha256
        | Scheme::Sha512
        | Scheme::PlainMd5
        | Scheme::LdapMd5
        | Scheme::PlainMd4
        | Scheme::DigestMd5 => Data::Bytes(raw),
    })
}

/// Dovecot's PBKDF2: `$1$<salt>$<rounds>$<hex>` (or `$1$<salt>$<hex>` with 5000 rounds).
fn parse_pbkdf2(text: &str) -> Result<Data, Error> {
    let bad = |r| malformed(Scheme::Pbkdf2, r);
    let fields: Vec<&str> = text.split('$').collect();
    let (salt, rounds, hash) = match fields.as_slice() {
        ["", "1", salt, rounds, hash] => (*salt, *rounds, *hash),
        ["", "1", salt, hash] => (*salt, "5000", *hash),
        _ => return Err(bad("expected $1$<salt>$<rounds>$<hex>")),
    };
    let rounds: u32 = rounds
        .parse()
        .ok()
        .filter(|r| *r > 0)
        .ok_or(bad("rounds must be a positive number"))?;
    let hash = hex_decode(hash)
        .filter(|h| h.len() == 20)
        .ok_or(bad("hash must be 40 hex digits"))?;
    Ok(Data::Pbkdf2 {
        salt: salt.as_bytes().to_vec(),
        rounds,
        hash,
    })
}

/// `<len>-<text>` → (len, text).
fn plain_trunc_split(raw: &[u8]) -> Option<(usize, &[u8])> {
    let dash = raw.iter().position(|&c| c == b'-')?;
    let digits = &raw[..dash];
    if digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = digits
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    Some((len, &raw[dash + 1..]))
}

fn verify_bytes(scheme: Scheme, raw: &[u8], password: &[u8], user: &str) -> bool {
    let eq = |computed: &[u8]| -> bool { computed.ct_eq(raw).into() };
    let salted = |digest_len: usize, compute: &dyn Fn(&[u8]) -> Vec<u8>| -> bool {
        let (digest, salt) = raw.split_at(digest_len.min(raw.len()));
        compute(salt).ct_eq(digest).into()
    };
    match scheme {
        Scheme::Plain => eq(password),
        Scheme::PlainTrunc => match plain_trunc_split(raw) {
            // A possibly truncated password: the given one may be longer if the prefix matches.
            Some((len, stored)) if stored.len() == len && password.len() >= len => {
                password[..len].ct_eq(stored).into()
            }
            Some((_, stored)) => password.ct_eq(stored).into(),
            None => false,
        },
        Scheme::Sha => eq(&Sha1::digest(password)),
        Scheme::Sha256 => eq(&Sha256::digest(password)),
        Scheme::Sha512 => eq(&Sha512::digest(password)),
        Scheme::PlainMd5 | Scheme::LdapMd5 => eq(&Md5::digest(password)),
        Scheme::PlainMd4 => eq(&md4::Md4::digest(password)),
        Scheme::DigestMd5 => eq(&digest_md5(user, password)),
        Scheme::Ssha => salted(20, &|s| {
            Sha1::new()
                .chain_update(password)
                .chain_update(s)
                .finalize()
                .to_vec()
        }),
        Scheme::Ssha256 => salted(32, &|s| {
            Sha256::new()
                .chain_update(password)
                .chain_update(s)
                .finalize()
                .to_vec()
        }),
        Scheme::Ssha512 => salted(64, &|s| {
            Sha512::new()
                .chain_update(password)
                .chain_update(s)
                .finalize()
                .to_vec()
        }),
        Scheme::Smd5 => salted(16, &|s| {
            Md5::new()
                .chain_update(password)
                .chain_update(s)
                .finalize()
                .to_vec()
        }),
        _ => false,
    }
}

/// MD5(`user:realm:password`) with `user@realm` split at the last `@` (Dovecot).
pub(crate) fn digest_md5(user: &str, password: &[u8]) -> [u8; 16] {
    let (name, realm) = user.rsplit_once('@').unwrap_or((user, ""));
    Md5::new()
        .chain_update(name.as_bytes())
        .chain_update(b":")
        .chain_update(realm.as_bytes())
        .chain_update(b":")
        .chain_update(password)
        .finalize()
        .into()
}

/// A salt for SCRAM credentials derived from a cleartext password: stable within this process
/// for one password, unpredictable to anyone without the per-process key.
fn cleartext_salt(hash: ScramHash, clear: &[u8]) -> Vec<u8> {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        // Without OS randomness the salt is still stable and per-password, only guessable.
        let _ = getrandom::fill(&mut k);
        k
    });
    let label: &[u8] = match hash {
        ScramHash::Sha1 => b"pochta scram-sha-1 salt",
        ScramHash::Sha256 => b"pochta scram-sha-256 salt",
    };
    let mut h = Sha256::new();
    h.update(key);
    h.update(label);
    h.update(clear);
    h.finalize()[..16].to_vec()
}

impl fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredPassword")
            .field("scheme", &self.scheme)
            .field("data", &"***")
            .finish()
    }
}
