//! pochta-srs: the Sender Rewriting Scheme, byte-compatible with postsrsd (1.x and 2.x) and
//! libsrs2. When pochta-mta forwards a message to a remote address it replaces the envelope
//! sender by one in our own domain, so the receiver's SPF check looks at us and passes; when a
//! bounce comes back to that address, it is turned back into the original sender.
//!
//! The scheme in short. A sender `user@example.net` becomes
//! `SRS0=HHHH=TT=example.net=user@srs.example.org`: `TT` is the day the rewrite happened (days
//! since 1970 modulo 1024, two base32 characters), `HHHH` four base64 characters of an
//! HMAC-SHA1, keyed with our secret, over the lowercased timestamp, domain and local part
//! concatenated without separators. A bounce to it is accepted for 21 days, only if the hash
//! verifies (case-insensitively: some MTAs change the case of local parts). A sender that is
//! already an SRS0 address of another forwarder, `SRS0=xxxx=TT=example.net=user@fwd1.example`,
//! is not wrapped a second time: it becomes `SRS1=HHHH=fwd1.example==xxxx=TT=example.net=user`
//! `@srs.example.org`, a hash over the first forwarder's host and the rest of the SRS0 local
//! part (including its leading separator, hence the `==`). An SRS1 sender is rewritten the same
//! way, keeping the first forwarder's host, so chains never grow. Reversing an SRS1 address
//! yields the SRS0 address at that first forwarder, which reverses it in turn. The character
//! after `SRS0`/`SRS1` may be `=`, `+` or `-` (postsrsd's `-a` option); all later separators are
//! `=`. The hash's two non-alphanumeric characters are `+` and `/` (libsrs2, postsrsd 1.x and
//! 2.x up to 2.2.5, reversible by every version) unless [`HashAlphabet::UrlSafe`] asks for
//! postsrsd 2.2.6's `-` and `_`; reading accepts both, as postsrsd 2.2.6 does. Everything here
//! was written from a reading of postsrsd's `srs2.c` (its copy of libsrs2), `srs.c` (2.x) and
//! `postsrsd.c` (1.x); no code was copied. The known answers in the unit tests come from
//! postsrsd's own test suite, and `tests/postsrsd.rs` checks both directions against the real
//! daemon.
//!
//! Which addresses are not rewritten: those in our SRS domain ([`Srs::forward`] returns them
//! unchanged, as libsrs2 does) and those in domains we deliver locally — that decision is the
//! caller's, it simply does not call `forward` (postsrsd's `domains`/`-X` list).
//!
//! Trust: senders and bounce recipients come from remote SMTP clients; no input makes this crate
//! panic, malformed input is an [`SrsError`]. The secrets are sensitive — anyone holding one can
//! make us relay "bounces" to any address — so they are never logged, never part of an error,
//! and `Debug` of [`Srs`] prints only their number. [`read_secrets`] refuses a secrets file that
//! other users can read. No I/O besides that file, no logging, no clock (callers pass `now`);
//! the crate runs as whatever user calls it, which must be able to read the secrets file (root
//! before dropping privileges, or the daemon's group on a `0640` file).
//!
//! Dependencies: RustCrypto's hmac 0.13 + sha1 0.11, base64 0.22 and subtle 2.6 — the
//! versions already in the workspace.

#![forbid(unsafe_code)]

mod error;
mod hash;
mod secrets;
mod timestamp;

#[cfg(test)]
mod tests;

use std::fmt;

pub use error::SrsError;
pub use hash::HashAlphabet;
pub use secrets::read_secrets;
pub use timestamp::MAX_AGE_DAYS;

/// Longest address taken in or given out, in bytes. postsrsd 2.x reverses into a 513-byte
/// buffer; anything longer would not survive a round trip through it.
pub const MAX_ADDRESS_LEN: usize = 512;

/// Separator written after `SRS0`/`SRS1` (postsrsd's default `=`); reading accepts `+` and `-`.
const FIRST_SEPARATOR: char = '=';
/// Separator between all other fields, fixed by the scheme.
const FIELD_SEPARATOR: char = '=';
const TAG_SEPARATORS: &[u8] = b"=+-";

/// An SRS signer/verifier for one domain. Cheap to share: `Send + Sync`, no interior state.
pub struct Srs {
    domain: String,
    keys: hash::Keys,
    alphabet: HashAlphabet,
}

impl fmt::Debug for Srs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Srs")
            .field("domain", &self.domain)
            .field("secrets", &format_args!("{} (not shown)", self.keys.len()))
            .field("alphabet", &self.alphabet)
            .finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Srs0,
    Srs1,
}

impl Srs {
    /// `domain`: the host part of rewritten addresses (a leading `.` is dropped, as postsrsd
    /// does). `secrets`: the first signs; all verify (key rotation, as postsrsd's secrets file
    /// with several lines). Each secret must be storable as one line of that file.
    pub fn new(domain: &str, secrets: Vec<Vec<u8>>) -> Result<Srs, SrsError> {
        let domain = check_domain(domain)?;
        let keys = hash::Keys::new(secrets)?;
        Ok(Srs {
            domain,
            keys,
            alphabet: HashAlphabet::Standard,
        })
    }

    /// Chooses the two non-alphanumeric hash characters written by [`Srs::forward`]; see
    /// [`HashAlphabet`]. The default, `+/`, is reversible by every postsrsd version.
    pub fn with_hash_alphabet(mut self, alphabet: HashAlphabet) -> Srs {
        self.alphabet = alphabet;
        self
    }

    /// The SRS domain, without a leading `.`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// `sender@example.net` → `SRS0=HHHH=TT=example.net=sender@<domain>`; SRS0 and SRS1
    /// senders → SRS1 as libsrs2 does; a sender already in our domain is returned unchanged.
    /// `now` is Unix seconds.
    pub fn forward(&self, sender: &str, now: u64) -> Result<String, SrsError> {
        if sender.len() > MAX_ADDRESS_LEN {
            return Err(SrsError::TooLong {
                len: sender.len(),
                max: MAX_ADDRESS_LEN,
            });
        }
        let (local, host) = split_sender(sender)?;
        if host.eq_ignore_ascii_case(&self.domain) {
            return Ok(sender.to_owned());
        }
        let rewritten = match srs_tag(local) {
            Some(Tag::Srs1) => {
                // The first forwarder's host and what follows it are kept; the hash is redone
                // with our secret (the old one cannot be checked: it is not ours).
                let (_, first_host, rest) = srs1_fields(local)?;
                self.compile_srs1(first_host, rest)
            }
            // The whole SRS0 local part after the tag, its separator included, rides along.
            Some(Tag::Srs0) => self.compile_srs1(host, local.get(4..).unwrap_or_default()),
            None => {
                let stamp = timestamp::create(now);
                let hash = self.keys.sign(&[&stamp, host, local], self.alphabet);
                format!(
                    "SRS0{FIRST_SEPARATOR}{hash}{FIELD_SEPARATOR}{stamp}{FIELD_SEPARATOR}{host}\
                     {FIELD_SEPARATOR}{local}@{}",
                    self.domain
                )
            }
        };
        if rewritten.len() > MAX_ADDRESS_LEN {
            return Err(SrsError::TooLong {
                len: rewritten.len(),
                max: MAX_ADDRESS_LEN,
            });
        }
        Ok(rewritten)
    }

    /// An SRS0/SRS1 address at our domain → the address it stands for (SRS1 → the SRS0 address
    /// at the first forwarder, as libsrs2). `Ok(None)` when the address is not an SRS address
    /// of ours (other domain, or no `SRS0`/`SRS1` tag); `Err` when it is one but malformed,
    /// forged ([`SrsError::BadHash`]) or older than [`MAX_AGE_DAYS`] ([`SrsError::Expired`]).
    /// `now` is Unix seconds.
    pub fn reverse(&self, address: &str, now: u64) -> Result<Option<String>, SrsError> {
        let Some((local, host)) = address.rsplit_once('@') else {
            return Ok(None);
        };
        if !host.eq_ignore_ascii_case(&self.domain) {
            return Ok(None);
        }
        let Some(tag) = srs_tag(local) else {
            return Ok(None);
        };
        if address.len() > MAX_ADDRESS_LEN {
            return Err(SrsError::TooLong {
                len: address.len(),
                max: MAX_ADDRESS_LEN,
            });
        }
        match tag {
            Tag::Srs0 => {
                let (hash, stamp, orig_host, orig_local) = srs0_fields(local)?;
                timestamp::check(stamp, now)?;
                self.keys.verify(hash, &[stamp, orig_host, orig_local])?;
                Ok(Some(format!("{orig_local}@{orig_host}")))
            }
            Tag::Srs1 => {
                let (hash, first_host, rest) = srs1_fields(local)?;
                self.keys.verify(hash, &[first_host, rest])?;
                Ok(Some(format!("SRS0{rest}@{first_host}")))
            }
        }
    }

    fn compile_srs1(&self, first_host: &str, rest: &str) -> String {
        let hash = self.keys.sign(&[first_host, rest], self.alphabet);
        format!(
            "SRS1{FIRST_SEPARATOR}{hash}{FIELD_SEPARATOR}{first_host}{FIELD_SEPARATOR}{rest}@{}",
            self.domain
        )
    }
}

/// Our SRS domain: postsrsd 2.x's rule (letters, digits, `-`, `.`; no empty label at the end
/// or inside), a leading `.` dropped.
fn check_domain(domain: &str) -> Result<String, SrsError> {
    let bad = |reason| {
        Err(SrsError::Domain {
            domain: domain.to_owned(),
            reason,
        })
    };
    let name = domain.strip_prefix('.').unwrap_or(domain);
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 253 {
        return bad("longer than 253 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return bad("only letters, digits, '-' and '.' are allowed");
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return bad("empty label");
    }
    Ok(name.to_owned())
}

/// `local@host` of a sender to rewrite, refusing what would not come back unchanged.
fn split_sender(sender: &str) -> Result<(&str, &str), SrsError> {
    let bad = |reason| Err(SrsError::Sender { reason });
    let Some((local, host)) = sender.rsplit_once('@') else {
        return bad("no '@'");
    };
    if local.is_empty() {
        return bad("empty local part");
    }
    if host.is_empty() {
        return bad("empty domain");
    }
    if local.contains('@') {
        // Only a quoted local part holds an '@'; libsrs2 splits at the first '@' and would
        // reverse such an address into something else.
        return bad("'@' in the local part");
    }
    if host.contains(FIELD_SEPARATOR) {
        return bad("'=' in the domain");
    }
    if sender.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return bad("space or control character");
    }
    Ok((local, host))
}

/// `SRS0` or `SRS1` (any case) followed by one of `=`, `+`, `-`.
fn srs_tag(local: &str) -> Option<Tag> {
    let b = local.as_bytes();
    let head = b.get(..5)?;
    if !head[..3].eq_ignore_ascii_case(b"SRS") || !TAG_SEPARATORS.contains(&head[4]) {
        return None;
    }
    match head[3] {
        b'0' => Some(Tag::Srs0),
        b'1' => Some(Tag::Srs1),
        _ => None,
    }
}

/// `SRS0?HASH=TT=HOST=LOCAL` → (hash, stamp, host, local); LOCAL may contain `=`.
fn srs0_fields(local: &str) -> Result<(&str, &str, &str, &str), SrsError> {
    let body = local.get(5..).unwrap_or_default();
    let mut fields = body.splitn(4, FIELD_SEPARATOR);
    let hash = fields.next().unwrap_or_default();
    let (Some(stamp), Some(host), Some(user)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(SrsError::Syntax {
            reason: "SRS0 address needs hash, timestamp, host and local part",
        });
    };
    non_empty(hash, "no hash in SRS0 address")?;
    non_empty(host, "no host in SRS0 address")?;
    non_empty(user, "no local part in SRS0 address")?;
    Ok((hash, stamp, host, user))
}

/// `SRS1?HASH=HOST=REST` → (hash, host, rest); REST is the first forwarder's SRS0 local part
/// after its `SRS0` tag, usually starting with its separator. REST may be empty: libsrs2 takes
/// a sender whose local part is just `SRS0` for an SRS0 address and writes
/// `SRS1=HHHH=host=@domain`, which reverses to `SRS0@host`.
fn srs1_fields(local: &str) -> Result<(&str, &str, &str), SrsError> {
    let body = local.get(5..).unwrap_or_default();
    let mut fields = body.splitn(3, FIELD_SEPARATOR);
    let hash = fields.next().unwrap_or_default();
    let (Some(host), Some(rest)) = (fields.next(), fields.next()) else {
        return Err(SrsError::Syntax {
            reason: "SRS1 address needs hash, host and SRS0 part",
        });
    };
    non_empty(hash, "no hash in SRS1 address")?;
    non_empty(host, "no host in SRS1 address")?;
    Ok((hash, host, rest))
}

fn non_empty(field: &str, reason: &'static str) -> Result<(), SrsError> {
    if field.is_empty() {
        Err(SrsError::Syntax { reason })
    } else {
        Ok(())
    }
}
