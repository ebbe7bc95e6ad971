//! What can go wrong when configuring, forwarding or reversing. No variant carries a secret.

use std::fmt;

/// Why [`crate::Srs`] could not be built, an address could not be rewritten, or an SRS address
/// of ours could not be reversed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrsError {
    /// The SRS domain given to [`crate::Srs::new`] is not a plain host name.
    Domain {
        domain: String,
        reason: &'static str,
    },
    /// [`crate::Srs::new`] got an empty list of secrets.
    NoSecrets,
    /// Secret number `index` (0 = the signing one) cannot be used; the secret itself is never
    /// part of the error.
    Secret { index: usize, reason: &'static str },
    /// The sender handed to [`crate::Srs::forward`] cannot be rewritten (no `@`, empty parts,
    /// characters that would not survive the round trip).
    Sender { reason: &'static str },
    /// An SRS0/SRS1 address (forward input, or reverse input at our domain) lacks one of its
    /// `=`-separated fields, or a field is malformed.
    Syntax { reason: &'static str },
    /// The address (input or result) is longer than [`crate::MAX_ADDRESS_LEN`] bytes.
    TooLong { len: usize, max: usize },
    /// The SRS0 timestamp is older than the maximum age; `age_days` as counted modulo 1024.
    Expired { age_days: u32, max_days: u32 },
    /// No secret produces the hash in the address: forged, damaged, or signed with a secret
    /// that has been removed.
    BadHash,
}

impl fmt::Display for SrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SrsError::Domain { domain, reason } => {
                write!(f, "invalid SRS domain {domain:?}: {reason}")
            }
            SrsError::NoSecrets => f.write_str("no SRS secrets: at least one is needed"),
            SrsError::Secret { index, reason } => {
                write!(f, "SRS secret #{} unusable: {reason}", index + 1)
            }
            SrsError::Sender { reason } => write!(f, "sender not rewritable: {reason}"),
            SrsError::Syntax { reason } => write!(f, "malformed SRS address: {reason}"),
            SrsError::TooLong { len, max } => {
                write!(f, "address too long for SRS: {len} bytes (at most {max})")
            }
            SrsError::Expired { age_days, max_days } => write!(
                f,
                "SRS timestamp out of date: {age_days} days old (at most {max_days})"
            ),
            SrsError::BadHash => f.write_str("SRS hash invalid"),
        }
    }
}

impl std::error::Error for SrsError {}
