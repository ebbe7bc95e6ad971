//! Auth-client load: AUTH PLAIN over Dovecot's auth protocol (what Postfix's smtpd and
//! Dovecot's login processes send), concurrent connections, one request in flight each.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::net::UnixStream;

use crate::stats::Latencies;
use crate::wire::Wire;

/// One auth load run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's auth-client socket.
    pub socket: PathBuf,
    /// (user, password) pairs, used round-robin.
    pub users: Vec<(String, String)>,
    pub connections: usize,
    pub requests: usize,
    /// Give up on a reply after this long.
    pub timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    pub latencies: Latencies,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Connects and does the handshake (VERSION/CPID, then MECH…DONE); PLAIN must be offered.
async fn handshake(opts: &Options, cpid: usize) -> Result<Wire<UnixStream>, String> {
    let stream = UnixStream::connect(&opts.socket)
        .await
        .map_err(|e| format!("connect {}: {e}", opts.socket.display()))?;
    let mut c = Wire::new(stream, opts.timeout);
    c.send(&format!("VERSION\t1\t2\nCPID\t{cpid}\n")).await?;
    let mut plain = false;
    loop {
        let line = c.text().await?;
        let mut f = line.split('\t');
        match f.next() {
            Some("VERSION") if f.next() != Some("1") => {
                return Err(format!("unexpected handshake line {line:?}"))
            }
            Some("MECH") if f.next() == Some("PLAIN") => plain = true,
            Some("DONE") => break,
            _ => {}
        }
    }
    if !plain {
        return Err("server does not offer PLAIN".into());
    }
    Ok(c)
}

fn plain_response(user: &str, pass: &str) -> String {
    let mut raw = Vec::with_capacity(user.len() + pass.len() + 2);
    raw.push(0);
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(pass.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

async fn worker(
    opts: Arc<Options>,
    next: Arc<AtomicUsize>,
    cpid: usize,
) -> Result<Outcome, String> {
    let mut c = handshake(&opts, cpid).await?;
    let mut out = Outcome::default();
    let mut id: u32 = 0;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= opts.requests {
            return Ok(out);
        }
        let (user, pass) = &opts.users[i % opts.users.len()];
        id += 1;
        let req = format!(
            "AUTH\t{id}\tPLAIN\tservice=smtp\tnologin\tsecured\tlip=127.0.0.1\trip=127.0.0.1\t\
             resp={}\n",
            plain_response(user, pass)
        );
        let t0 = Instant::now();
        c.send(&req).await?;
        let line = c.text().await?;
        out.latencies.push(t0.elapsed());
        let mut f = line.split('\t');
        let (verb, rid) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        if rid != id.to_string() {
            return Err(format!("reply for another request: {line:?}"));
        }
        match verb {
            "OK" => out.ok += 1,
            "FAIL" => out.failed += 1,
            _ => return Err(format!("unexpected reply to AUTH PLAIN: {line:?}")),
        }
    }
}

/// Runs the load; an error means the run is not a result (connection lost, bad reply).
pub async fn run(opts: Options) -> Result<Outcome, String> {
    if opts.users.is_empty() || opts.connections == 0 {
        return Err("no users or no connections".into());
    }
    let opts = Arc::new(opts);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..opts.connections)
        .map(|k| {
            tokio::spawn(worker(
                opts.clone(),
                next.clone(),
                std::process::id() as usize + k,
            ))
        })
        .collect();
    let mut total = Outcome::default();
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(o)) => {
                total.ok += o.ok;
                total.failed += o.failed;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response_is_nul_separated_base64() {
        // "\0u\0p"
        assert_eq!(plain_response("u", "p"), "AHUAcA==");
    }
}
