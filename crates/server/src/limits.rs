//! Connection limits per listener and per client IP. A [`Slot`] holds one connection's place and
//! gives it back when dropped, however the session ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
pub(crate) struct ConnLimits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_total: u32,
    max_per_ip: u32,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
}

impl Inner {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The counters stay consistent even if a holder panicked: every update is a single step.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One admitted connection.
#[derive(Debug)]
pub(crate) struct Slot {
    inner: Arc<Inner>,
    ip: Option<IpAddr>,
}

impl ConnLimits {
    pub(crate) fn new(max_total: u32, max_per_ip: u32) -> Self {
        ConnLimits {
            inner: Arc::new(Inner {
                max_total,
                max_per_ip,
                counts: Mutex::default(),
            }),
        }
    }

    /// Admits a connection, or says which limit refused it.
    pub(crate) fn acquire(&self, ip: Option<IpAddr>) -> Result<Slot, &'static str> {
        let mut c = self.inner.counts();
        if c.total >= self.inner.max_total {
            return Err("max_connections");
        }
        if let Some(ip) = ip {
            let n = c.per_ip.entry(ip).or_insert(0);
            if *n >= self.inner.max_per_ip {
                return Err("max_connections_per_ip");
            }
            *n += 1;
        }
        c.total += 1;
        Ok(Slot {
            inner: Arc::clone(&self.inner),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.inner.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = c.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    c.per_ip.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_release() {
        let l = ConnLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = l.acquire(Some(a)).unwrap();
        let _s2 = l.acquire(Some(a)).unwrap();
        assert_eq!(l.acquire(Some(a)).unwrap_err(), "max_connections_per_ip");
        let _s3 = l.acquire(Some(b)).unwrap();
        assert_eq!(l.acquire(None).unwrap_err(), "max_connections");
        drop(s1);
        let _s4 = l.acquire(Some(a)).unwrap();
        assert_eq!(l.inner.counts().per_ip.len(), 2);
    }
}
