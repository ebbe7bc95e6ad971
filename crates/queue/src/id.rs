//! Queue ids: a strictly increasing microsecond clock value (since 2024-01-01) written as 10
//! upper-case base-36 digits, so ids are unique within a spool (one mta holds its lock) and
//! across restarts (the clock moved on), sort by arrival as strings, are safe as file names,
//! and fit the 10 columns of Postfix's short queue ids in mailq (good until the year 2140).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A queue id; `Display` is what logs and mailq print.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(String);

impl QueueId {
    /// Accepts 1–32 ASCII letters and digits (what we generate, and Postfix's both forms), so
    /// an id taken from a command line can never name a path outside the spool.
    pub fn parse(s: &str) -> Option<QueueId> {
        if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        Some(QueueId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 2024-01-01T00:00:00Z in unix microseconds.
const EPOCH_US: u64 = 1_704_067_200_000_000;
/// Digits of an id.
const WIDTH: usize = 10;

/// `n` as [`WIDTH`] base-36 digits.
fn encode(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = [b'0'; WIDTH];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    out.iter().map(|&b| b as char).collect()
}

/// The clock value of one of our ids (None for foreign names).
pub(crate) fn decode(id: &str) -> Option<u64> {
    if id.len() != WIDTH {
        return None;
    }
    u64::from_str_radix(id, 36).ok()
}

/// Hands out ids: max(µs since [`EPOCH_US`], last + 1).
#[derive(Debug)]
pub(crate) struct IdSource {
    last: AtomicU64,
}

impl IdSource {
    pub(crate) fn new(floor: u64) -> IdSource {
        IdSource {
            last: AtomicU64::new(floor),
        }
    }

    pub(crate) fn next(&self) -> QueueId {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d.as_micros() as u64).saturating_sub(EPOCH_US))
            .unwrap_or(0);
        let mut cur = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(cur + 1);
            match self
                .last
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return QueueId(encode(next)),
                Err(seen) => cur = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_and_increasing() {
        let s = IdSource::new(0);
        let ids: Vec<QueueId> = (0..1000).map(|_| s.next()).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1]);
            assert!(decode(w[0].as_str()).unwrap() < decode(w[1].as_str()).unwrap());
            assert_eq!(w[0].as_str().len(), 10);
        }
        let far = 36u64.pow(9) * 20;
        let s = IdSource::new(far);
        assert_eq!(decode(s.next().as_str()), Some(far + 1));
    }

    #[test]
    fn parse_rejects_paths() {
        assert!(QueueId::parse("../x").is_none());
        assert!(QueueId::parse("").is_none());
        assert!(QueueId::parse("a/b").is_none());
        assert!(QueueId::parse("4B3C21A0F2").is_some());
    }
}
