//! The SRS0 timestamp: the day number (Unix seconds / 86400) modulo 1024, written as two
//! base32 characters (RFC 4648 alphabet `A`–`Z`, `2`–`7`), high five bits first.

use crate::SrsError;

const SECONDS_PER_DAY: u64 = 86_400;
/// Two base32 characters hold 10 bits: the stamp repeats every 1024 days (about 2.8 years).
pub(crate) const SLOTS: u64 = 1024;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Days an SRS0 address stays reversible (libsrs2's and postsrsd's `maxage`).
pub const MAX_AGE_DAYS: u32 = 21;

pub(crate) fn create(now: u64) -> String {
    let slot = (now / SECONDS_PER_DAY) % SLOTS;
    // Both indexes are below 32 by the masks.
    [(slot >> 5) & 31, slot & 31]
        .iter()
        .map(|&i| char::from(BASE32[i as usize]))
        .collect()
}

/// Accepts a stamp from today back to [`MAX_AGE_DAYS`] days ago, counted modulo 1024 like
/// libsrs2: a stamp "in the future" reads as nearly 1024 days old, and one exactly 1024 days
/// old reads as new (the format cannot tell them apart).
pub(crate) fn check(stamp: &str, now: u64) -> Result<(), SrsError> {
    let bytes = stamp.as_bytes();
    if bytes.len() != 2 {
        return Err(SrsError::Syntax {
            reason: "timestamp is not 2 characters",
        });
    }
    let mut then = 0u64;
    for &b in bytes {
        let upper = b.to_ascii_uppercase();
        let Some(value) = BASE32.iter().position(|&c| c == upper) else {
            return Err(SrsError::Syntax {
                reason: "bad base32 character in timestamp",
            });
        };
        then = (then << 5) | value as u64;
    }
    let mut today = (now / SECONDS_PER_DAY) % SLOTS;
    if today < then {
        today += SLOTS;
    }
    let age = today - then;
    if age <= u64::from(MAX_AGE_DAYS) {
        Ok(())
    } else {
        Err(SrsError::Expired {
            // Below 1024 by construction.
            age_days: u32::try_from(age).unwrap_or(u32::MAX),
            max_days: MAX_AGE_DAYS,
        })
    }
}
