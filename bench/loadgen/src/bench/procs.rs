//! Server resource accounting from /proc: CPU seconds of a process tree and its peak RSS.
//!
//! CPU: utime+stime+cutime+cstime of every process in the tree (cutime/cstime carry the time of
//! children the tree already reaped, e.g. Dovecot's short-lived lmtp processes), before and after
//! a round. Memory: a sampler adds up Pss (from smaps_rollup) over the tree every 50 ms and keeps
//! the maximum (a sum of RSS would count Dovecot's shared pages once per process); it also keeps
//! the largest single VmHWM, the true peak of a one-process daemon between samples.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Clock ticks per second of /proc/PID/stat times (USER_HZ; 100 on Linux for all ABIs we run).
const USER_HZ: f64 = 100.0;

struct Stat {
    ppid: i32,
    ticks: u64,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid = field 4, utime..cstime = fields 14..17.
    let num = |i: usize| f.get(i - 3).and_then(|s| s.parse::<u64>().ok());
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        ticks: num(14)? + num(15)? + num(16)? + num(17)?,
    })
}

fn all_stats() -> HashMap<i32, Stat> {
    let mut out = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                if let Some(s) = read_stat(pid) {
                    out.insert(pid, s);
                }
            }
        }
    }
    out
}

/// The roots and all their descendants that are alive now.
fn tree(roots: &[i32], stats: &HashMap<i32, Stat>) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, s) in stats {
        children.entry(s.ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut todo: Vec<i32> = roots
        .iter()
        .copied()
        .filter(|p| stats.contains_key(p))
        .collect();
    while let Some(p) = todo.pop() {
        out.push(p);
        if let Some(c) = children.get(&p) {
            todo.extend(c);
        }
    }
    out
}

/// CPU seconds used so far by this process alone (the load generator runs in it), without
/// its children (the pochta daemons the harness started).
pub(crate) fn own_cpu_seconds() -> f64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = text.rfind(')').map(|i| &text[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| {
        f.get(i - 3)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (num(14) + num(15)) as f64 / USER_HZ
}

/// CPU seconds used so far by the tree under `roots` (including reaped children).
pub(crate) fn cpu_seconds(roots: &[i32]) -> f64 {
    let stats = all_stats();
    let ticks: u64 = tree(roots, &stats)
        .iter()
        .filter_map(|p| stats.get(p))
        .map(|s| s.ticks)
        .sum();
    ticks as f64 / USER_HZ
}

fn status_kib(pid: i32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn mem_now(roots: &[i32]) -> (u64, u64) {
    let stats = all_stats();
    let pids = tree(roots, &stats);
    let pss = pids.iter().map(|&p| pss_kib(p)).sum();
    let hwm = pids
        .iter()
        .map(|&p| status_kib(p, "VmHWM:"))
        .max()
        .unwrap_or(0);
    (pss, hwm)
}

fn pss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Samples the tree's memory in a thread until finished: the highest Pss sum and VmHWM seen.
pub(crate) struct MemSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    hwm: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MemSampler {
    pub(crate) fn start(roots: Vec<i32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let hwm = Arc::new(AtomicU64::new(0));
        let (s, p, h) = (stop.clone(), peak.clone(), hwm.clone());
        let thread = std::thread::spawn(move || loop {
            let done = s.load(Ordering::Relaxed);
            let (pss, max_hwm) = mem_now(&roots);
            p.fetch_max(pss, Ordering::Relaxed);
            h.fetch_max(max_hwm, Ordering::Relaxed);
            if done {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        });
        MemSampler {
            stop,
            peak,
            hwm,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns (peak Pss sum, largest VmHWM) in KiB.
    pub(crate) fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.peak.load(Ordering::Relaxed),
            self.hwm.load(Ordering::Relaxed),
        )
    }
}

impl Drop for MemSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether a process exists (and is not a zombie).
pub(crate) fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| t.rfind(')').map(|i| t[i + 2..].starts_with('Z')))
        == Some(false)
}
