//! The delivery runner: one task owning the schedule, dispatching due messages to delivery
//! tasks (at most `concurrency` at once), fed by enqueues, delivery results and the `flush`
//! control socket.
//!
//! Flush mechanism (`pochta queue flush [ID]`, `sendmail -q`, `pochta queue release ID`): a
//! UNIX datagram socket `<spool>/flush` bound by the runner (mode 0660). A datagram `flush`
//! makes every queued message due now (and picks up messages put back from `hold/`);
//! `flush <id>` does that for one message. Nobody listening = the mta is not running.

use crate::bounce::{self, Notifier};
use crate::config::DeliveryConfig;
use crate::deliver::{self, Ctx};
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
    let hostname = cfg.hostname.clone().unwrap_or_else(|| helo_name(&cfg));
    let ctx = Arc::new(Ctx {
        dir: dir.clone(),
        cfg,
        pool,
        spool: spool.clone(),
        notifier: Notifier { hostname },
    });

    let mut sched = Schedule::default();
    // The one full scan: at start.
    match initial_scan(ctx.clone()).await {
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
            let Some((at, id)) = sched.pop_due(now) else {
                break;
            };
            if in_flight.contains(&id) {
                reflush.insert(id);
                continue;
            }
            in_flight.insert(id.clone());
            let c = ctx.clone();
            tasks.spawn(async move {
                // Due at 0: new or flushed (deliver now); else a retry or notice time.
                let next = deliver::attempt(c, id.clone(), now, at == 0).await;
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

/// Blocking scan at start: every message in `queue/` with the time it is due — its open
/// recipients' next attempt (each resumes its own backoff; nothing is retried early), a delay
/// notice's time, or now for a notice still owed (a crash came between a result and its
/// notice). Messages whose recipients are all done (the removal was lost) are removed now.
async fn initial_scan(ctx: Arc<Ctx>) -> Result<Vec<(QueueId, u64)>, spool::QueueError> {
    tokio::task::spawn_blocking(move || {
        let dir = &ctx.dir;
        let mut out = Vec::new();
        let now = now_ms();
        for id in spool::list_ids(dir, QUEUE)? {
            let Ok((p, _)) = spool::load(dir, &id) else {
                continue;
            };
            let env = &p.envelope;
            if (0..p.states.len()).all(|i| bounce::done(&ctx.cfg, env, i, &p.states[i])) {
                let _ = spool::remove(dir, &id);
                tracing::info!("{id}: removed");
                continue;
            }
            // `now`, not 0: due at once but not "forced" (0 means new or flushed).
            let owed = now.max(1);
            if let Some(due) = bounce::next_due(&ctx.cfg, &ctx.notifier, env, &p.states, now, owed)
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
