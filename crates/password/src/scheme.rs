//! Scheme names: Dovecot's canonical names, aliases and the weak list.

use crate::Error;
use std::fmt;
use std::str::FromStr;

/// A Dovecot password scheme (the `SCHEME` in `{SCHEME}data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `PLAIN` (aliases `CLEAR`, `CLEARTEXT`): the password itself.
    Plain,
    /// `PLAIN-TRUNC`: `<len>-<password>`, a possibly truncated cleartext.
    PlainTrunc,
    /// `CRYPT`: anything crypt(3) verifies; generates bcrypt `$2y$05$`.
    Crypt,
    /// `SHA512-CRYPT`: `$6$[rounds=N$]salt$hash`.
    Sha512Crypt,
    /// `SHA256-CRYPT`: `$5$[rounds=N$]salt$hash`.
    Sha256Crypt,
    /// `MD5-CRYPT` (alias `MD5`, which also verifies PLAIN-MD5 data): `$1$salt$hash`. Weak.
    Md5Crypt,
    /// `DES-CRYPT`: traditional 13-character crypt(3). Weak.
    DesCrypt,
    /// `BLF-CRYPT`: bcrypt `$2y$NN$…`; any `$2?$` verifies.
    BlfCrypt,
    /// `ARGON2I`: libsodium `$argon2i$v=19$m=…,t=…,p=1$salt$hash`.
    Argon2i,
    /// `ARGON2ID`: libsodium `$argon2id$v=19$m=…,t=…,p=1$salt$hash`.
    Argon2id,
    /// `ARGON2`: verifies either Argon2 variant; generates argon2id.
    Argon2,
    /// `SHA` (alias `SHA1`): base64(SHA-1).
    Sha,
    /// `SHA256`: base64(SHA-256).
    Sha256,
    /// `SHA512`: base64(SHA-512).
    Sha512,
    /// `SSHA`: base64(SHA-1(pass‖salt)‖salt).
    Ssha,
    /// `SSHA256`: base64(SHA-256(pass‖salt)‖salt).
    Ssha256,
    /// `SSHA512`: base64(SHA-512(pass‖salt)‖salt).
    Ssha512,
    /// `SMD5`: base64(MD5(pass‖salt)‖salt). Weak.
    Smd5,
    /// `PLAIN-MD5`: hex(MD5). Weak.
    PlainMd5,
    /// `LDAP-MD5`: base64(MD5). Weak.
    LdapMd5,
    /// `PLAIN-MD4`: hex(MD4). Weak.
    PlainMd4,
    /// `PBKDF2`: `$1$<salt>$<rounds>$<hex>` (PBKDF2-HMAC-SHA1, 20 bytes).
    Pbkdf2,
    /// `CRAM-MD5` (alias `HMAC-MD5`): precomputed HMAC-MD5 inner/outer states, 64 hex.
    CramMd5,
    /// `DIGEST-MD5`: hex(MD5(user:realm:pass)).
    DigestMd5,
    /// `SCRAM-SHA-1`: `<iter>,<salt>,<StoredKey>,<ServerKey>` (RFC 5802).
    ScramSha1,
    /// `SCRAM-SHA-256`: as SCRAM-SHA-1 with SHA-256 (RFC 7677).
    ScramSha256,
    /// `OTP`: `<md4|md5|sha1> <sequence> <seed> <hex hash>` (RFC 2289 chain).
    Otp,
}

/// Every scheme, in the order `pochta pw -l` lists them.
const ALL: &[Scheme] = &[
    Scheme::Plain,
    Scheme::PlainTrunc,
    Scheme::Crypt,
    Scheme::Sha512Crypt,
    Scheme::Sha256Crypt,
    Scheme::Md5Crypt,
    Scheme::DesCrypt,
    Scheme::BlfCrypt,
    Scheme::Argon2i,
    Scheme::Argon2id,
    Scheme::Argon2,
    Scheme::Sha,
    Scheme::Sha256,
    Scheme::Sha512,
    Scheme::Ssha,
    Scheme::Ssha256,
    Scheme::Ssha512,
    Scheme::Smd5,
    Scheme::PlainMd5,
    Scheme::LdapMd5,
    Scheme::PlainMd4,
    Scheme::Pbkdf2,
    Scheme::CramMd5,
    Scheme::DigestMd5,
    Scheme::ScramSha1,
    Scheme::ScramSha256,
    Scheme::Otp,
];

/// Names Dovecot accepts besides the canonical ones (upper case).
const ALIASES: &[(&str, Scheme)] = &[
    ("CLEAR", Scheme::Plain),
    ("CLEARTEXT", Scheme::Plain),
    ("SHA1", Scheme::Sha),
    ("HMAC-MD5", Scheme::CramMd5),
    ("MD5", Scheme::Md5Crypt),
];

impl Scheme {
    /// Dovecot's canonical upper-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Plain => "PLAIN",
            Scheme::PlainTrunc => "PLAIN-TRUNC",
            Scheme::Crypt => "CRYPT",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::Md5Crypt => "MD5-CRYPT",
            Scheme::DesCrypt => "DES-CRYPT",
            Scheme::BlfCrypt => "BLF-CRYPT",
            Scheme::Argon2i => "ARGON2I",
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Argon2 => "ARGON2",
            Scheme::Sha => "SHA",
            Scheme::Sha256 => "SHA256",
            Scheme::Sha512 => "SHA512",
            Scheme::Ssha => "SSHA",
            Scheme::Ssha256 => "SSHA256",
            Scheme::Ssha512 => "SSHA512",
            Scheme::Smd5 => "SMD5",
            Scheme::PlainMd5 => "PLAIN-MD5",
            Scheme::LdapMd5 => "LDAP-MD5",
            Scheme::PlainMd4 => "PLAIN-MD4",
            Scheme::Pbkdf2 => "PBKDF2",
            Scheme::CramMd5 => "CRAM-MD5",
            Scheme::DigestMd5 => "DIGEST-MD5",
            Scheme::ScramSha1 => "SCRAM-SHA-1",
            Scheme::ScramSha256 => "SCRAM-SHA-256",
            Scheme::Otp => "OTP",
        }
    }

    /// Weak schemes are refused by [`crate::StoredPassword::parse`] unless weak schemes are
    /// allowed (Dovecot's `auth_allow_weak_schemes`). Like Dovecot, the cleartext family,
    /// CRAM-MD5 and DIGEST-MD5 are not counted: they exist for their SASL mechanisms.
    pub fn is_weak(&self) -> bool {
        matches!(
            self,
            Scheme::Md5Crypt
                | Scheme::DesCrypt
                | Scheme::Smd5
                | Scheme::PlainMd5
                | Scheme::LdapMd5
                | Scheme::PlainMd4
        )
    }

    /// Every scheme this crate knows.
    pub fn all() -> &'static [Scheme] {
        ALL
    }

    /// Every name accepted for a scheme: the canonical names, then the aliases (what
    /// `pochta pw -l` prints).
    pub fn names() -> Vec<&'static str> {
        ALL.iter()
            .map(|s| s.name())
            .chain(ALIASES.iter().map(|(n, _)| *n))
            .collect()
    }

    /// Raw length of fixed-size digests: their data is hex when it is twice this long,
    /// base64 otherwise (Dovecot's `password_decode` guess).
    pub(crate) fn raw_len(&self) -> Option<usize> {
        match self {
            Scheme::Sha => Some(20),
            Scheme::Sha256 => Some(32),
            Scheme::Sha512 => Some(64),
            Scheme::PlainMd5 | Scheme::LdapMd5 | Scheme::PlainMd4 | Scheme::DigestMd5 => Some(16),
            Scheme::CramMd5 => Some(32),
            _ => None,
        }
    }

    /// How Dovecot writes the raw value when no `.b64`/`.hex` suffix is given.
    pub(crate) fn default_encoding(&self) -> Encoding {
        match self {
            Scheme::Sha
            | Scheme::Sha256
            | Scheme::Sha512
            | Scheme::Ssha
            | Scheme::Ssha256
            | Scheme::Ssha512
            | Scheme::Smd5
            | Scheme::LdapMd5 => Encoding::Base64,
            Scheme::PlainMd5 | Scheme::PlainMd4 | Scheme::CramMd5 | Scheme::DigestMd5 => {
                Encoding::Hex
            }
            _ => Encoding::None,
        }
    }
}

/// How the raw password value is written after `{SCHEME}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    None,
    Base64,
    Hex,
}

/// A scheme name as written in a passdb or on the command line: the scheme, the encoding
/// forced by a `.b64`/`.base64`/`.hex` suffix, and whether it was the `MD5` alias (which
/// verifies PLAIN-MD5 data as well as MD5-CRYPT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SchemeName {
    pub(crate) scheme: Scheme,
    pub(crate) encoding: Option<Encoding>,
    pub(crate) md5_alias: bool,
}

impl SchemeName {
    pub(crate) fn parse(name: &str) -> Result<SchemeName, Error> {
        let (base, suffix) = match name.split_once('.') {
            Some((b, s)) => (b, Some(s)),
            None => (name, None),
        };
        let encoding = match suffix {
            None => None,
            Some(s) if s.eq_ignore_ascii_case("b64") || s.eq_ignore_ascii_case("base64") => {
                Some(Encoding::Base64)
            }
            Some(s) if s.eq_ignore_ascii_case("hex") => Some(Encoding::Hex),
            Some(_) => return Err(Error::UnknownScheme(printable(name))),
        };
        let scheme = lookup(base).ok_or_else(|| Error::UnknownScheme(printable(name)))?;
        Ok(SchemeName {
            scheme,
            encoding,
            md5_alias: base.eq_ignore_ascii_case("MD5"),
        })
    }
}

fn lookup(base: &str) -> Option<Scheme> {
    ALL.iter()
        .copied()
        .find(|s| s.name().eq_ignore_ascii_case(base))
        .or_else(|| {
            ALIASES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(base))
                .map(|&(_, s)| s)
        })
}

/// A scheme name for an error message: bounded and without control characters.
fn printable(name: &str) -> String {
    name.chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl FromStr for Scheme {
    type Err = Error;

    /// Case-insensitive; accepts Dovecot's aliases (CLEAR, CLEARTEXT, SHA1, HMAC-MD5, MD5).
    /// An encoding suffix (`.b64`, `.hex`) is accepted and ignored here.
    fn from_str(s: &str) -> Result<Scheme, Error> {
        SchemeName::parse(s).map(|n| n.scheme)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
