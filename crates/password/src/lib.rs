//! pochta-password: Dovecot's password schemes — parse a passdb password (`{SCHEME}data`),
//! verify a password against it, hand out the mechanism-specific keys (CRAM-MD5 contexts, SCRAM
//! credentials) and generate new hashes exactly as `doveadm pw` prints them.
//!
//! Trust: the stored value comes from the admin's passdb, the password from a remote client.
//! Neither can make this crate panic; malformed stored data is an [`Error`], and cost
//! parameters are bounded when parsing (see [`StoredPassword::work_factor`]). Comparisons of
//! secrets are constant-time (`subtle`). No I/O, no logging; runs as whatever user calls it
//! (authd, or the admin running `pochta pw`). Hashing is CPU-heavy: async callers use
//! `spawn_blocking`.
//!
//! Formats: docs/formats.md#password-schemes (Dovecot `password-scheme*.c`); RFC 2195 (CRAM-MD5),
//! RFC 2831 (DIGEST-MD5 secret), RFC 2289 (OTP), RFC 5802 / RFC 7677 (SCRAM-SHA-1/-256),
//! RFC 8018 (PBKDF2).
//!
//! Dependencies: the RustCrypto crates, at their current releases (digest 0.11 generation:
//! sha1/sha2/md-5/md4 0.11, hmac 0.13, pbkdf2 0.13, argon2 0.6, sha-crypt 0.6, yescrypt 0.1;
//! all declare rust-version 1.85, so they build on our 1.95). md-5 exposes its compression
//! function, which Dovecot's precomputed CRAM-MD5 states need. sha-crypt is used for its core
//! function only: its MCF writer always prints `rounds=` and rejects out-of-range rounds, while
//! glibc (and so Dovecot) omits the default and clamps; we format like glibc. bcrypt 0.19 (the
//! widely used crate built on RustCrypto's blowfish) does `$2a/b/x/y$`. yescrypt `$y$` is
//! verify-only (RustCrypto's yescrypt 0.1). MD5-crypt and traditional DES crypt are written
//! here (RustCrypto has no MD5-crypt; its `des` crate cannot salt the E box). getrandom for
//! salts, base64 for Dovecot's base64 fields.

#![forbid(unsafe_code)]

mod argon;
mod cram;
mod crypt;
mod des_crypt;
mod encoding;
mod generate;
mod otp;
mod scheme;
mod scram;
mod stored;

pub use cram::CramMd5Key;
pub use generate::{generate, generate_named};
pub use scheme::Scheme;
pub use scram::{ScramCredentials, ScramHash};
pub use stored::StoredPassword;

use std::fmt;

/// What went wrong with a stored password, a scheme name or a generate request. Never contains
/// password data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The scheme name (or its `.encoding` suffix) is not one Dovecot knows.
    UnknownScheme(String),
    /// The data after `{SCHEME}` is not valid for that scheme.
    Malformed {
        /// Canonical scheme name.
        scheme: &'static str,
        /// What was expected.
        reason: &'static str,
    },
    /// A weak scheme (MD5-CRYPT, DES, PLAIN-MD5, …) while weak schemes are not allowed.
    WeakScheme(&'static str),
    /// A cost parameter outside what the scheme accepts.
    InvalidRounds {
        /// Canonical scheme name.
        scheme: &'static str,
        /// The value given.
        rounds: u32,
        /// The accepted range, for the message.
        range: &'static str,
    },
    /// The scheme needs the user name (DIGEST-MD5).
    NeedsUser(&'static str),
    /// The OS random number generator failed.
    Random,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownScheme(s) => write!(f, "unknown password scheme: {s}"),
            Error::Malformed { scheme, reason } => {
                write!(f, "malformed {scheme} password: {reason}")
            }
            Error::WeakScheme(s) => write!(
                f,
                "weak password scheme {s} not allowed (enable weak schemes to use it)"
            ),
            Error::InvalidRounds {
                scheme,
                rounds,
                range,
            } => write!(f, "invalid rounds {rounds} for {scheme} (allowed: {range})"),
            Error::NeedsUser(s) => write!(f, "{s} needs the user name (user@realm)"),
            Error::Random => f.write_str("the system random number generator failed"),
        }
    }
}

impl std::error::Error for Error {}

/// Fill `buf` with OS randomness.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|_| Error::Random)
}

#[cfg(test)]
mod tests;
