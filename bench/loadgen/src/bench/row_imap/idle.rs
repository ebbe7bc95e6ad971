//! The idle-session part of the imap row: 1,000 users (scaled), each with a 10-message INBOX,
//! one session each: LOGIN, SELECT INBOX (EXISTS checked), IDLE (the continuation must come),
//! 50 logins at a time. With every session idling the harness waits 2 s, then samples the
//! server's processes for 1 s: the highest PSS sum (smaps_rollup) and the largest VmHWM (reset
//! with /proc/PID/clear_refs before the round). Then every IDLE is ended with DONE (each must be
//! answered OK: a dropped session fails the row) and the sessions log out.
//! Figure: idle sessions per GiB of server PSS (KiB per session = 1,048,576 / figure), higher
//! is better like the other rows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pochta_loadgen::imap::{close_idle, open_idle};

use crate::measure::{Measurement, Round, Side, SideResult};
use crate::procs::{cpu_seconds, MemSampler};

pub(super) const SESSIONS: usize = 1000;
pub(super) const MESSAGES: usize = 10;
/// Logins in flight while the sessions are opened.
const OPENING: usize = 50;

pub(super) fn user(k: usize) -> (String, String) {
    (format!("i{k}@bench.test"), format!("pwi{k}"))
}

/// The roots and their descendants (from /proc/*/stat).
fn tree(roots: &[i32]) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = roots.to_vec();
    while let Some(p) = todo.pop() {
        out.push(p);
        if let Some(c) = children.get(&p) {
            todo.extend(c);
        }
    }
    out
}

/// Resets every process's VmHWM to its current RSS (Linux clear_refs, value 5).
fn reset_hwm(roots: &[i32]) {
    for pid in tree(roots) {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// Highest PSS sum and VmHWM over `d` of sampling.
fn sample(roots: &[i32], d: Duration) -> (u64, u64) {
    let s = MemSampler::start(roots.to_vec());
    std::thread::sleep(d);
    s.finish()
}

/// Waits (up to 30 s) until the tree is back to `procs` processes: Dovecot's imap processes of
/// the closed sessions have exited before the next round starts.
fn settle(roots: &[i32], procs: usize) {
    let t0 = Instant::now();
    while tree(roots).len() > procs && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(super) fn run(
    ctx: &crate::ctx::Ctx,
    rt: &tokio::runtime::Runtime,
    sides: &mut [Side<'_>; 2],
    addrs: &[String; 2],
    n: usize,
) -> Result<Measurement, String> {
    let users: Vec<(String, String)> = (1..=n).map(user).collect();
    let mut out: [SideResult; 2] = Default::default();
    // Per side: KiB per session (total PSS), KiB per session above the PSS before the round.
    let mut per_session: [Vec<(f64, f64)>; 2] = Default::default();
    for r in 0..=ctx.rounds {
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            let side = &mut sides[s];
            let label = side.label.clone();
            let fail = |e: String| format!("imap idle: {label} round {r}: {e}");
            (side.check)().map_err(fail)?;
            let procs = tree(&side.roots).len();
            let (base, _) = sample(&side.roots, Duration::from_millis(200));
            reset_hwm(&side.roots);
            let cpu0 = cpu_seconds(&side.roots);
            let t0 = Instant::now();
            let timeout = Duration::from_secs(120);
            let open = rt
                .block_on(open_idle(&addrs[s], &users, MESSAGES, OPENING, timeout))
                .map_err(fail)?;
            let opened = t0.elapsed();
            if open.len() != n {
                return Err(fail(format!("{} of {n} sessions idle", open.len())));
            }
            std::thread::sleep(Duration::from_secs(2));
            let (pss, hwm) = sample(&side.roots, Duration::from_secs(1));
            (side.check)().map_err(fail)?;
            let closed = rt.block_on(close_idle(open, OPENING)).map_err(fail)?;
            if closed != n {
                return Err(fail(format!("{closed} of {n} sessions ended IDLE")));
            }
            let cpu = cpu_seconds(&side.roots) - cpu0;
            settle(&side.roots, procs);
            let total = pss as f64 / n as f64;
            let above = pss.saturating_sub(base) as f64 / n as f64;
            println!(
                "  imap idle {} {:<8} {n} sessions idle after {:.1} s: PSS {:.1} MiB \
                 ({:.1} before) = {total:.1} KiB/session ({above:.1} above the idle server), \
                 max VmHWM {:.1} MiB, server CPU {cpu:.2} s",
                if r == 0 {
                    "warm-up".to_owned()
                } else {
                    format!("round {r}")
                },
                side.label,
                opened.as_secs_f64(),
                pss as f64 / 1024.0,
                base as f64 / 1024.0,
                hwm as f64 / 1024.0,
            );
            out[s].peak_kib = out[s].peak_kib.max(pss);
            out[s].hwm_kib = out[s].hwm_kib.max(hwm);
            if r > 0 {
                out[s].rounds.push(Round {
                    rate: n as f64 * 1024.0 * 1024.0 / pss.max(1) as f64,
                    units: n,
                    cpu_s: cpu,
                    p99_ms: None,
                });
                per_session[s].push((total, above));
            }
        }
    }
    let med = |s: usize, f: fn(&(f64, f64)) -> f64| {
        pochta_loadgen::stats::median(&per_session[s].iter().map(f).collect::<Vec<_>>())
    };
    Ok(Measurement {
        name: format!("IMAP idle sessions (IDLE) per GiB of server PSS, {n} sessions"),
        load: format!(
            "{n} users with 10-message INBOXes, one session each: LOGIN, SELECT INBOX (EXISTS \
             checked), IDLE, {OPENING} logins at a time; with all {n} idling: PSS sum of the \
             server's processes (Dovecot: master, auth, config, log, anvil and one imap process \
             per session; pochta: imapd + authd), sampled for 1 s after 2 s; then DONE (each \
             answered OK) and LOGOUT. Median KiB per session: Dovecot {:.1} (PSS sum / \
             sessions), {:.1} above the idle server; pochta {:.1}, {:.1} above. Max VmHWM: the \
             largest peak RSS of one process, reset before each round. CPU per 1,000 sessions \
             opened and closed. Dovecot configured for 1,000 users: service imap \
             {{ process_limit = {} }}, default_client_limit = {}; pochta: max_connections = \
             max_connections_per_ip = {}",
            med(0, |x| x.0),
            med(0, |x| x.1),
            med(1, |x| x.0),
            med(1, |x| x.1),
            super::process_limit(n),
            super::client_limit(n),
            super::max_connections(n),
        ),
        unit: "sessions/GiB",
        per: "1,000 sessions",
        peer: "Dovecot imap".into(),
        sides: out,
    })
}
