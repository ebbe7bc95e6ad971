//! `doveadm pw`-compatible hash generation.

use crate::cram::CramMd5Key;
use crate::encoding::{b64_decode, b64_encode, hex_decode, hex_encode};
use crate::scheme::{Encoding, SchemeName};
use crate::scram::{ScramCredentials, ScramHash, MIN_ITERATIONS};
use crate::stored::digest_md5;
use crate::{argon, crypt, random, Error, Scheme};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// Default PBKDF2 rounds (Dovecot's PBKDF2_ROUNDS_DEFAULT).
const PBKDF2_ROUNDS: u32 = 5000;

/// Hash `password` in `scheme` and return `{SCHEME}data` exactly as `doveadm pw -s SCHEME`
/// prints it. Defaults: BLF-CRYPT/CRYPT cost 5, SHA*-CRYPT 5000 rounds, ARGON2ID t=3 m=64 MiB,
/// ARGON2I t=4 m=32 MiB, SCRAM 4096 iterations, PBKDF2 5000 rounds; `rounds` overrides them.
/// DIGEST-MD5 needs `user` (`user@realm`). Slow schemes: call off the async threads.
///
/// Differences from Dovecot 2.3, on purpose: PLAIN-TRUNC is written as `<len>-<password>`
/// (Dovecot writes the bare password, which its own verifier then rejects); SCRAM honours
/// `rounds` (minimum 4096) where Dovecot 2.3 ignores it.
pub fn generate(
    scheme: Scheme,
    password: &[u8],
    user: &str,
    rounds: Option<u32>,
) -> Result<String, Error> {
    Ok(format!(
        "{{{}}}{}",
        scheme.name(),
        generate_data(scheme, password, user, rounds)?
    ))
}

/// [`generate`] for a scheme name as typed (`doveadm pw -s NAME`): aliases are kept and an
/// encoding suffix (`.b64`, `.base64`, `.hex`) re-encodes the value; the prefix is the name
/// upper-cased, as doveadm prints it (`-s sha1` → `{SHA1}…`, `-s plain.b64` → `{PLAIN.B64}…`).
pub fn generate_named(
    name: &str,
    password: &[u8],
    user: &str,
    rounds: Option<u32>,
) -> Result<String, Error> {
    let parsed = SchemeName::parse(name)?;
    let scheme = parsed.scheme;
    let data = generate_data(scheme, password, user, rounds)?;
    let data = match parsed.encoding {
        Some(forced) if forced != scheme.default_encoding() => {
            let raw = match scheme.default_encoding() {
                Encoding::None => data.into_bytes(),
                // Our own output: it always decodes.
                Encoding::Hex => hex_decode(&data).unwrap_or_default(),
                Encoding::Base64 => b64_decode(&data).unwrap_or_default(),
            };
            match forced {
                Encoding::Hex => hex_encode(&raw),
                Encoding::Base64 => b64_encode(&raw),
                // `forced` is only ever Hex or Base64 (a suffix was given).
                Encoding::None => String::from_utf8_lossy(&raw).into_owned(),
            }
        }
        _ => data,
    };
    Ok(format!("{{{}}}{data}", name.to_ascii_uppercase()))
}

/// The value after `{SCHEME}`, in the scheme's default encoding.
fn generate_data(
    scheme: Scheme,
    password: &[u8],
    user: &str,
    rounds: Option<u32>,
) -> Result<String, Error> {
    let data = match scheme {
        Scheme::Plain => utf8(scheme, password)?.to_owned(),
        Scheme::PlainTrunc => format!("{}-{}", password.len(), utf8(scheme, password)?),
        Scheme::Crypt | Scheme::BlfCrypt => crypt::bcrypt_generate(password, rounds)?,
        Scheme::Sha512Crypt => crypt::sha_crypt_generate(password, true, rounds)?,
        Scheme::Sha256Crypt => crypt::sha_crypt_generate(password, false, rounds)?,
        Scheme::Md5Crypt => crypt::md5_crypt_generate(password)?,
        Scheme::DesCrypt => crypt::des_crypt_generate(password)?,
        Scheme::Argon2i => argon::generate(password, false, rounds)?,
        Scheme::Argon2id | Scheme::Argon2 => argon::generate(password, true, rounds)?,
        Scheme::Sha => b64_encode(&Sha1::digest(password)),
        Scheme::Sha256 => b64_encode(&Sha256::digest(password)),
        Scheme::Sha512 => b64_encode(&Sha512::digest(password)),
        Scheme::Ssha => salted::<Sha1>(password)?,
        Scheme::Ssha256 => salted::<Sha256>(password)?,
        Scheme::Ssha512 => salted::<Sha512>(password)?,
        Scheme::Smd5 => salted::<Md5>(password)?,
        Scheme::PlainMd5 => hex_encode(&Md5::digest(password)),
        Scheme::LdapMd5 => b64_encode(&Md5::digest(password)),
        Scheme::PlainMd4 => hex_encode(&md4::Md4::digest(password)),
        Scheme::Pbkdf2 => {
            let rounds = match rounds {
                None | Some(0) => PBKDF2_ROUNDS,
                Some(r) => r,
            };
            let salt = crypt::salt_chars(16)?;
            let mut out = [0u8; 20];
            pbkdf2::pbkdf2_hmac::<Sha1>(password, salt.as_bytes(), rounds, &mut out);
            format!("$1${salt}${rounds}${}", hex_encode(&out))
        }
        Scheme::CramMd5 => hex_encode(&CramMd5Key::from_password(password).to_context()),
        Scheme::DigestMd5 => {
            if user.is_empty() {
                return Err(Error::NeedsUser(scheme.name()));
            }
            hex_encode(&digest_md5(user, password))
        }
        Scheme::ScramSha1 => scram(ScramHash::Sha1, password, rounds)?,
        Scheme::ScramSha256 => scram(ScramHash::Sha256, password, rounds)?,
        Scheme::Otp => crate::otp::generate(password)?,
    };
    Ok(data)
}

fn utf8(scheme: Scheme, password: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(password).map_err(|_| Error::Malformed {
        scheme: scheme.name(),
        reason: "a cleartext password must be UTF-8 here (store it with {PLAIN.b64})",
    })
}

/// digest(password‖salt)‖salt with Dovecot's 4-byte salt, base64.
fn salted<D: Digest>(password: &[u8]) -> Result<String, Error> {
    let mut salt = [0u8; 4];
    random(&mut salt)?;
    let mut out = D::new()
        .chain_update(password)
        .chain_update(salt)
        .finalize()
        .to_vec();
    out.extend_from_slice(&salt);
    Ok(b64_encode(&out))
}

fn scram(hash: ScramHash, password: &[u8], rounds: Option<u32>) -> Result<String, Error> {
    let iterations = match rounds {
        None | Some(0) => MIN_ITERATIONS,
        Some(r) if r < MIN_ITERATIONS => {
            return Err(Error::InvalidRounds {
                scheme: if hash == ScramHash::Sha1 {
                    "SCRAM-SHA-1"
                } else {
                    "SCRAM-SHA-256"
                },
                rounds: r,
                range: "4096 or more",
            })
        }
        Some(r) => r,
    };
    let mut salt = vec![0u8; 16];
    random(&mut salt)?;
    Ok(ScramCredentials::derive(hash, password, salt, iterations).encode())
}
