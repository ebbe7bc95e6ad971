//! POP3 load: concurrent sessions, each logs in (USER/PASS), then STAT, UIDL, RETR of every
//! message one after another (latency per RETR), QUIT — a client downloading a mailbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::stats::Latencies;
use crate::wire::Wire;

#[derive(Debug, Clone)]
pub struct Options {
    /// host:port of the POP3 server (plaintext; loopback).
    pub addr: String,
    /// (user, password); sessions take users round-robin.
    pub users: Vec<(String, String)>,
    /// Sessions in flight.
    pub concurrency: usize,
    /// Sessions in all.
    pub sessions: usize,
    /// Messages every mailbox must hold (STAT is checked).
    pub expect_messages: usize,
    /// Octets every RETR must return (dot-unstuffed, CRLF line ends), when all are equal.
    pub expect_size: Option<u64>,
    pub timeout: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub sessions: usize,
    pub messages: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Per RETR.
    pub latencies: Latencies,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

async fn ok(w: &mut Wire<TcpStream>, what: &str) -> Result<String, String> {
    let l = w.text().await?;
    if l.starts_with("+OK") {
        Ok(l)
    } else {
        Err(format!("{what}: {l:?}"))
    }
}

/// Reads a multi-line body up to ".", returns its size in octets (dot-unstuffed, CRLF kept).
async fn multiline(w: &mut Wire<TcpStream>) -> Result<u64, String> {
    let mut n = 0u64;
    w.each_line(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l == b"." {
            return Some(n);
        }
        let unstuffed = if l.starts_with(b"..") { &l[1..] } else { l };
        n += unstuffed.len() as u64 + 2;
        None
    })
    .await
}

async fn session(opts: &Options, user: &str, pass: &str, out: &mut Outcome) -> Result<(), String> {
    let stream = TcpStream::connect(&opts.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", opts.addr))?;
    let _ = stream.set_nodelay(true);
    let mut w = Wire::new(stream, opts.timeout);
    ok(&mut w, "greeting").await?;
    w.send(&format!("USER {user}\r\n")).await?;
    ok(&mut w, "USER").await?;
    w.send(&format!("PASS {pass}\r\n")).await?;
    ok(&mut w, "PASS").await?;
    w.send("STAT\r\n").await?;
    let stat = ok(&mut w, "STAT").await?;
    let count: usize = stat
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("STAT: {stat:?}"))?;
    if count != opts.expect_messages {
        return Err(format!(
            "{user}: STAT says {count} messages, {} expected",
            opts.expect_messages
        ));
    }
    w.send("UIDL\r\n").await?;
    ok(&mut w, "UIDL").await?;
    multiline(&mut w).await?;
    for i in 1..=count {
        let t0 = Instant::now();
        w.send(&format!("RETR {i}\r\n")).await?;
        ok(&mut w, "RETR").await?;
        let n = multiline(&mut w).await?;
        out.latencies.push(t0.elapsed());
        if n == 0 || opts.expect_size.is_some_and(|e| e != n) {
            return Err(format!(
                "{user}: RETR {i} returned {n} octets, {:?} expected",
                opts.expect_size
            ));
        }
        out.bytes += n;
        out.messages += 1;
    }
    w.send("QUIT\r\n").await?;
    ok(&mut w, "QUIT").await?;
    out.sessions += 1;
    Ok(())
}

/// Worker `k` runs sessions k, k + concurrency, …; session i logs in as users[i % users]. With
/// as many users as workers every mailbox has one session at a time (the usual client load;
/// concurrent sessions on one mailbox are a different test).
async fn worker(opts: Arc<Options>, k: usize) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    for i in (k..opts.sessions).step_by(opts.concurrency) {
        let (user, pass) = &opts.users[i % opts.users.len()];
        session(&opts, user, pass, &mut out).await?;
    }
    Ok(out)
}

/// Runs the load; an error means the run is not a result.
pub async fn run(opts: Options) -> Result<Outcome, String> {
    if opts.users.is_empty() || opts.concurrency == 0 {
        return Err("no users or no concurrency".into());
    }
    let opts = Arc::new(opts);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..opts.concurrency)
        .map(|k| tokio::spawn(worker(opts.clone(), k)))
        .collect();
    let mut total = Outcome::default();
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(o)) => {
                total.sessions += o.sessions;
                total.messages += o.messages;
                total.bytes += o.bytes;
                total.latencies.extend(o.latencies);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("worker task: {e}"));
            }
        }
    }
    total.elapsed = t0.elapsed();
    match first_err {
        Some(e) => Err(e),
        None => Ok(total),
    }
}
