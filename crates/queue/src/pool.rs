//! Reusable LMTP connections: idle ones are kept for `connection_idle_time` and up to
//! `connection_reuse_limit` transactions, at most `concurrency` of them.

use pochta_smtp_client::{ClientConfig, ClientError, Connection, Endpoint, Timeouts};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Pooled {
    pub(crate) conn: Connection,
    /// Transactions done on it.
    pub(crate) uses: usize,
    /// Taken from the idle list (its server may have closed it meanwhile).
    pub(crate) reused: bool,
}

pub(crate) struct Pool {
    endpoint: Endpoint,
    client: ClientConfig,
    timeouts: Timeouts,
    idle_time: Duration,
    reuse_limit: usize,
    max_idle: usize,
    idle: Mutex<Vec<(Connection, usize, Instant)>>,
}

impl Pool {
    pub(crate) fn new(
        endpoint: Endpoint,
        client: ClientConfig,
        timeouts: Timeouts,
        idle_time: Duration,
        reuse_limit: usize,
        max_idle: usize,
    ) -> Pool {
        Pool {
            endpoint,
            client,
            timeouts,
            idle_time,
            reuse_limit,
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// `relay=` name before a connection exists (for connect errors).
    pub(crate) fn relay_name(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix(p) => format!("local[{}]", p.display()),
            Endpoint::Inet { host, port } => format!("{host}[{host}]:{port}"),
        }
    }

    /// An idle connection, or a new one.
    pub(crate) async fn get(&self, fresh: bool) -> Result<Pooled, ClientError> {
        if !fresh {
            if let Some((conn, uses)) = self.take_idle() {
                return Ok(Pooled {
                    conn,
                    uses,
                    reused: true,
                });
            }
        }
        let conn = Connection::connect(&self.endpoint, self.client.clone(), self.timeouts).await?;
        Ok(Pooled {
            conn,
            uses: 0,
            reused: false,
        })
    }

    fn take_idle(&self) -> Option<(Connection, usize)> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        while let Some((conn, uses, since)) = idle.pop() {
            if now.duration_since(since) < self.idle_time {
                return Some((conn, uses));
            }
            tokio::spawn(conn.quit());
        }
        None
    }

    /// Returns a connection after a transaction.
    pub(crate) fn put(&self, mut p: Pooled) {
        p.uses += 1;
        let keep = p.conn.is_usable() && (self.reuse_limit == 0 || p.uses < self.reuse_limit);
        if keep {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < self.max_idle {
                    idle.push((p.conn, p.uses, Instant::now()));
                    return;
                }
            }
        }
        tokio::spawn(p.conn.quit());
    }

    /// Closes idle connections past their idle time (all of them with `all`).
    pub(crate) fn expire(&self, all: bool) -> Vec<Connection> {
        let Ok(mut idle) = self.idle.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        let (old, keep): (Vec<_>, Vec<_>) = idle
            .drain(..)
            .partition(|(_, _, since)| all || now.duration_since(*since) >= self.idle_time);
        *idle = keep;
        old.into_iter().map(|(c, _, _)| c).collect()
    }
}
