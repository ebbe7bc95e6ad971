//! Queue ids: upper-case hex of a strictly increasing microsecond clock value, so ids are unique
//! within a spool (one mta holds its lock) and across restarts (the clock moved on), sort by
//! arrival, and are safe as file names.

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

/// Hands out ids: max(now in µs, last + 1).
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
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let mut cur = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(cur + 1);
            match self
                .last
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return QueueId(format!("{next:X}")),
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
            assert!(
                u64::from_str_radix(w[0].as_str(), 16).unwrap()
                    < u64::from_str_radix(w[1].as_str(), 16).unwrap()
            );
        }
        let s = IdSource::new(u64::MAX / 2);
        assert_eq!(s.next().as_str(), format!("{:X}", u64::MAX / 2 + 1));
    }

    #[test]
    fn parse_rejects_paths() {
        assert!(QueueId::parse("../x").is_none());
        assert!(QueueId::parse("").is_none());
        assert!(QueueId::parse("a/b").is_none());
        assert!(QueueId::parse("4B3C21A0F2").is_some());
    }
}
