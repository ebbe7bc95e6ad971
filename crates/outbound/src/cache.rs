//! Connection reuse per destination (Postfix's scache) and the concurrency limits: a global
//! semaphore for all remote connections and one per destination.

use crate::conn::SmtpConn;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An idle connection with its transaction count.
struct Idle {
    conn: SmtpConn,
    uses: usize,
    since: Instant,
}

pub(crate) struct Cache {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    global: Arc<Semaphore>,
    per_destination: usize,
    idle_time: Duration,
    reuse_limit: usize,
}

/// Both permits, held for the whole delivery to one destination.
pub(crate) struct Permit {
    _global: OwnedSemaphorePermit,
    _dest: OwnedSemaphorePermit,
}

impl Cache {
    pub(crate) fn new(
        global: usize,
        per_destination: usize,
        idle_time: Duration,
        reuse_limit: usize,
    ) -> Cache {
        Cache {
            idle: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            global: Arc::new(Semaphore::new(global.max(1))),
            per_destination: per_destination.max(1),
            idle_time,
            reuse_limit,
        }
    }

    /// Waits for a slot for `dest` (destination first, so one busy destination cannot hold
    /// global slots while it waits for its own).
    pub(crate) async fn permit(&self, dest: &str) -> Option<Permit> {
        let sem = {
            let mut slots = self.slots.lock().ok()?;
            slots
                .entry(dest.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_destination)))
                .clone()
        };
        let d = sem.acquire_owned().await.ok()?;
        let g = self.global.clone().acquire_owned().await.ok()?;
        Some(Permit {
            _global: g,
            _dest: d,
        })
    }

    /// An idle connection to `dest`, with the number of transactions it has done.
    pub(crate) fn take(&self, dest: &str) -> Option<(SmtpConn, usize)> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(dest)?;
        let now = Instant::now();
        while let Some(i) = list.pop() {
            if now.duration_since(i.since) < self.idle_time && i.conn.is_usable() {
                return Some((i.conn, i.uses));
            }
            tokio::spawn(i.conn.quit());
        }
        None
    }

    /// Returns a connection after a transaction.
    pub(crate) fn put(&self, dest: &str, conn: SmtpConn, uses: usize) {
        let keep = conn.is_usable() && (self.reuse_limit == 0 || uses < self.reuse_limit);
        if keep {
            if let Ok(mut idle) = self.idle.lock() {
                let list = idle.entry(dest.to_owned()).or_default();
                if list.len() < self.per_destination {
                    list.push(Idle {
                        conn,
                        uses,
                        since: Instant::now(),
                    });
                    return;
                }
            }
        }
        tokio::spawn(conn.quit());
    }

    /// Closes connections idle for longer than the idle time (all with `all`).
    pub(crate) fn expire(&self, all: bool) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        for list in idle.values_mut() {
            let (old, keep): (Vec<Idle>, Vec<Idle>) = list
                .drain(..)
                .partition(|i| all || now.duration_since(i.since) >= self.idle_time);
            *list = keep;
            for i in old {
                tokio::spawn(i.conn.quit());
            }
        }
        idle.retain(|_, l| !l.is_empty());
    }
}
