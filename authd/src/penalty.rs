//! Brute-force slowing, like Dovecot's auth penalty (auth-penalty.c): every failed login from a
//! remote IP raises that IP's penalty n; a request from a penalised IP waits until
//! `min(init·2ⁿ, max)` (Dovecot: 2 s·2ⁿ, at most 15 s) has passed since the IP's last failure
//! before it is processed; a success resets it; entries are forgotten after an hour without
//! failures. IPv6 addresses count per /64 (one client has a whole /64). Requests marked
//! `no-penalty` and those without a remote IP skip all of this.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Bound on remembered addresses; the oldest are dropped first when a storm comes from many.
const MAX_ENTRIES: usize = 100_000;

/// Failure counts per remote address (or /64).
#[derive(Debug)]
pub(crate) struct Penalty {
    init: Duration,
    max: Duration,
    entries: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Penalty {
    /// A table with Dovecot's growth rule for the given first step and cap.
    pub(crate) fn new(init: Duration, max: Duration) -> Self {
        Penalty {
            init,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        // Every update is a single insert/remove: a panicking holder leaves a consistent map.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a request from `ip` waits before it is looked at.
    pub(crate) fn delay(&self, ip: IpAddr, now: Instant) -> Duration {
        let map = self.lock();
        match map.get(&key(ip)) {
            Some(&(n, last)) if n > 0 && now.duration_since(last) < FORGET_AFTER => {
                let full = self
                    .init
                    .checked_mul(1u32 << n.min(16))
                    .unwrap_or(self.max)
                    .min(self.max);
                full.saturating_sub(now.duration_since(last))
            }
            _ => Duration::ZERO,
        }
    }

    /// Counts a failed login.
    pub(crate) fn failure(&self, ip: IpAddr, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
            if map.len() >= MAX_ENTRIES {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(k, _)| *k)
                {
                    map.remove(&oldest);
                }
            }
        }
        let e = map.entry(key(ip)).or_insert((0, now));
        if now.duration_since(e.1) >= FORGET_AFTER {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
    }

    /// A success forgives the address.
    pub(crate) fn success(&self, ip: IpAddr) {
        self.lock().remove(&key(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_resets() {
        let p = Penalty::new(Duration::from_secs(2), Duration::from_secs(15));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t = Instant::now();
        assert_eq!(p.delay(ip, t), Duration::ZERO);
        p.failure(ip, t);
        assert_eq!(p.delay(ip, t), Duration::from_secs(4));
        assert_eq!(
            p.delay(ip, t + Duration::from_secs(1)),
            Duration::from_secs(3)
        );
        assert_eq!(p.delay(ip, t + Duration::from_secs(5)), Duration::ZERO);
        p.failure(ip, t);
        assert_eq!(p.delay(ip, t), Duration::from_secs(8));
        for _ in 0..40 {
            p.failure(ip, t);
        }
        assert_eq!(p.delay(ip, t), Duration::from_secs(15));
        assert_eq!(
            p.delay(other, t),
            Duration::ZERO,
            "other clients are not slowed"
        );
        assert_eq!(p.delay(ip, t + FORGET_AFTER), Duration::ZERO);
        p.success(ip);
        assert_eq!(p.delay(ip, t), Duration::ZERO);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let p = Penalty::new(Duration::from_secs(1), Duration::from_secs(15));
        let t = Instant::now();
        p.failure("2001:db8:1:2::1".parse().unwrap(), t);
        assert_eq!(
            p.delay("2001:db8:1:2::ffff".parse().unwrap(), t),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay("2001:db8:1:3::1".parse().unwrap(), t),
            Duration::ZERO
        );
    }
}
