//! Random bytes for nonces, challenges, cookies and the fake-salt key, from the OS.

/// `N` random bytes. getrandom(2) does not fail on Linux ≥ 3.17 once the pool is initialised;
/// if it ever does, the time and a counter keep values unique (they are nonces, and the
/// fake-salt key only has to be unpredictable enough not to tell unknown users apart).
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = (t as u64)
            ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32)
            ^ u64::from(std::process::id());
        for (i, x) in b.iter_mut().enumerate() {
            *x = seed.rotate_left((i as u32 * 8) % 64).to_le_bytes()[0];
        }
    }
    b
}
