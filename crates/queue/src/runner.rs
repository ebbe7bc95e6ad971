//! The delivery runner: one task owning the schedule, dispatching due messages to delivery
//! tasks (at most `concurrency` at once), fed by enqueues, delivery results and the `flush`
//! control socket.
//!
//! Flush mechanism (`pochta queue flush [ID]`, `sendmail -q`, `pochta queue release ID`): a
//! UNIX datagram socket `<spool>/flush` bound by the runner (mode 0660). A datagram `flush`
//! makes every queued message due now (and picks up messages put back from `hold/`);
//! `flush <id>` does that for one message. Nobody listening = the mta is not running.

use crate::config::DeliveryConfig;
use crate::deliver::{self, Ctx};
use crate::file::RcptStatus;
use crate::pool::Pool;
use crate::schedule::Schedule;
use crate::spool::{self, Spool, QUEUE};
use crate::{now_ms, QueueId};
use pochta_smtp_client::{ClientConfig, Protocol, Timeouts};
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Name of the control socket in the spool directory.
pub const FLUSH_SOCKET: &str = "flush";

/// Starts the delivery runner on the current tokio runtime. It picks up everything in the spool
/// (restart resumes exactly where it was) and every enqueue, delivers over LMTP, retries with
/// backoff, and stops at `shutdown`: in-flight deliveries get a short grace period to end
/// cleanly; one cut short is retried after the restart (its recorded results stand).
pub fn spawn_runner(
    spool: Spool,
    cfg: DeliveryConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run(spool, cfg, shutdown))
}

fn helo_name(cfg: &DeliveryConfig) -> String {
    if let Some(n) = &cfg.helo_name {
        return n.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

async fn run(spool: Spool, cfg: DeliveryConfig, shutdown: CancellationToken) {
    let Some(mut wake) = spool.take_wake() else {
        tracing::error!("a delivery runner is already running for this spool");
        return;
    };
    let dir = spool.dir().to_path_buf();
    let ctl = match bind_control(&dir) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(
                "{}/{FLUSH_SOCKET}: {e}; queue flush requests unavailable",
                dir.display()
            );
            None
        }
    };
    let limit = cfg.concurrency.max(1);
    let pool = Pool::new(
        cfg.lmtp.0.clone(),
        ClientConfig {
            protocol: Protocol::Lmtp,
            helo_name: helo_name(&cfg),
            chunking: cfg.chunking,
        },
        Timeouts {
            connect: cfg.connect_timeout.0,
            command: cfg.command_timeout.0,
            data: cfg.data_timeout.0,
        },
        cfg.connection_idle_time.0,
        cfg.connection_reuse_limit,
        limit,
    );
    let idle_tick = cfg.connection_idle_time.0.max(Duration::from_millis(100));
    let ctx = Arc::new(Ctx {
        dir: dir.clone(),
        cfg,
        pool,
    });

    let mut sched = Schedule::default();
    // The one full scan: at start.
    match initial_scan(&dir).await {
        Ok(found) => {
            let n = found.len();
            for (id, due) in found {
                sched.insert(id, due);
            }
            tracing::info!(messages = n, "queue runner started");
        }
        Err(e) => tracing::error!("queue scan failed: {e}"),
    }

    let mut in_flight: HashSet<QueueId> = HashSet::new();
    // Flushed while in flight: due again as soon as the attempt ends.
    let mut reflush: HashSet<QueueId> = HashSet::new();
    let mut tasks: JoinSet<(QueueId, Option<u64>)> = JoinSet::new();
    let (rescan_tx, mut rescan_rx) = mpsc::unbounded_channel::<Vec<QueueId>>();
    let mut buf = vec![0u8; 512];
    let mut tick = tokio::time::interval(idle_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let now = now_ms();
        while in_flight.len() < limit {
            let Some(id) = sched.pop_due(now) else { break };
            if in_flight.contains(&id) {
                reflush.insert(id);
                continue;
            }
            in_flight.insert(id.clone());
            let c = ctx.clone();
            tasks.spawn(async move {
                let next = deliver::attempt(c, id.clone(), now).await;
                (id, next)
            });
        }
        let sleep = match sched.next_due() {
            Some(t) if in_flight.len() < limit => Duration::from_millis(t.saturating_sub(now)),
            _ => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(id) = wake.recv() => {
                if in_flight.contains(&id) { reflush.insert(id); } else { sched.insert(id, 0); }
            }
            Some(res) = tasks.join_next(), if !tasks.is_empty() => {
                match res {
                    Ok((id, next)) => {
                        in_flight.remove(&id);
                        if reflush.remove(&id) {
                            sched.insert(id, 0);
                        } else if let Some(t) = next {
                            sched.insert(id, t);
                        }
                    }
                    Err(e) => tracing::error!("delivery task failed: {e}"),
                }
            }
            r = recv_ctl(ctl.as_ref(), &mut buf) => {
                if let Some(req) = r {
                    handle_ctl(&req, &dir, &mut sched, &in_flight, &mut reflush, &rescan_tx);
                }
            }
            Some(ids) = rescan_rx.recv() => {
                for id in ids {
                    if in_flight.contains(&id) { reflush.insert(id); } else { sched.insert(id, 0); }
                }
            }
            _ = tick.tick() => {
                for c in ctx.pool.expire(false) {
                    tokio::spawn(c.quit());
                }
            }
            _ = tokio::time::sleep(sleep) => {}
        }
    }

    // Shutdown: let in-flight attempts finish briefly; the rest are retried after restart.
    let grace = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(grace);
    while !tasks.is_empty() {
        tokio::select! {
            _ = &mut grace => { tasks.abort_all(); break; }
            _ = tasks.join_next() => {}
        }
    }
    for c in ctx.pool.expire(true) {
        c.quit().await;
    }
    let _ = std::fs::remove_file(dir.join(FLUSH_SOCKET));
    tracing::info!(queued = sched.len(), "queue runner stopped");
}

fn bind_control(dir: &Path) -> std::io::Result<tokio::net::UnixDatagram> {
    let path = dir.join(FLUSH_SOCKET);
    let _ = std::fs::remove_file(&path);
    let s = tokio::net::UnixDatagram::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    Ok(s)
}

async fn recv_ctl(s: Option<&tokio::net::UnixDatagram>, buf: &mut [u8]) -> Option<String> {
    match s {
        Some(s) => match s.recv(buf).await {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).trim().to_owned()),
            Err(e) => {
                // Never spin on a broken socket.
                tracing::warn!("flush socket: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                None
            }
        },
        None => std::future::pending().await,
    }
}

fn handle_ctl(
    req: &str,
    dir: &Path,
    sched: &mut Schedule,
    in_flight: &HashSet<QueueId>,
    reflush: &mut HashSet<QueueId>,
    rescan: &mpsc::UnboundedSender<Vec<QueueId>>,
) {
    let mut words = req.split_ascii_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("flush"), None, None) => {
            tracing::info!("flush requested: all queued messages");
            sched.flush_all();
            reflush.extend(in_flight.iter().cloned());
            // Messages released from hold/ are not scheduled yet: list queue/ off-thread.
            let dir = dir.to_path_buf();
            let tx = rescan.clone();
            tokio::task::spawn_blocking(move || {
                if let Ok(ids) = spool::list_ids(&dir, QUEUE) {
                    let _ = tx.send(ids);
                }
            });
        }
        (Some("flush"), Some(id), None) => match QueueId::parse(id) {
            Some(id) => {
                tracing::info!("{id}: flush requested");
                if in_flight.contains(&id) {
                    reflush.insert(id);
                } else {
                    sched.insert(id, 0);
                }
            }
            None => tracing::warn!("flush request with a bad queue id ignored"),
        },
        _ => tracing::warn!("unknown control request ignored"),
    }
}

/// Blocking scan at start: every message in `queue/` with the time its next open recipient is
/// due. Messages whose recipients are all delivered (the removal was lost) are removed now;
/// bounced-pending ones stay in the queue unscheduled.
async fn initial_scan(dir: &Path) -> Result<Vec<(QueueId, u64)>, spool::QueueError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for id in spool::list_ids(&dir, QUEUE)? {
            let Ok((p, _)) = spool::load(&dir, &id) else {
                continue;
            };
            if p.states.iter().all(|s| s.status == RcptStatus::Delivered) {
                let _ = spool::remove(&dir, &id);
                tracing::info!("{id}: removed");
                continue;
            }
            if let Some(due) = p
                .states
                .iter()
                .filter(|s| s.status.is_open())
                .map(|s| s.next_ms)
                .min()
            {
                out.push((id, due));
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| spool::QueueError::Io {
        what: "queue scan task".into(),
        source: std::io::Error::other(e.to_string()),
    })?
}
