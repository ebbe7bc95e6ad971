//! Row `outbound`: remote delivery from the queue, messages/s to one `smtp-sink` over SMTP
//! with 20 concurrent connections.
//!
//! Each round first fills the queue with `smtp-source -s 20 -m N -l 4096` while nothing can be
//! delivered, then starts a fresh smtp-sink on the next hop's port and lets the queue go; the
//! figure is N / (time from the release until the queue is empty and the log shows every
//! message sent to the sink).
//! - Postfix: `relayhost = [127.0.0.1]:SINK` (smtp transport, connection cache on demand,
//!   default_destination_concurrency_limit = 20, in_flow_delay = 0); while filling, every
//!   message is put on hold (`check_client_access static:HOLD`); release = `postsuper -H ALL`
//!   and `postqueue -f`.
//! - pochta: pochta-mta with `[outbound] relayhost = "[127.0.0.1]:SINK"`, `[delivery]
//!   concurrency = 20`, `[outbound] destination_concurrency = 20` (connection reuse on);
//!   while filling, the sink is down, so each message is deferred once (connection refused,
//!   next try in 5 min); release = a `flush` datagram on the spool's control socket (what
//!   `pochta queue flush` sends).
//!
//! A queue that does not drain or a log that counts fewer sent messages than were queued fails
//! the row.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ctx::{mkdir, output, write, Ctx};
use crate::measure::{run_rounds, LoadResult, Measurement, Side};
use crate::peers::Daemon;
use crate::postfix::Postfix;

const SESSIONS: usize = 20;
const SIZE: usize = 4096;
const DRAIN: Duration = Duration::from_secs(600);

fn free_listen() -> Result<String, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("bind: {e}"))?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

/// `smtp-source -s 20 -m n -l 4096` to u@remote.bench at `target`.
fn source(target: &str, n: usize) -> Result<(), String> {
    let out = Command::new("smtp-source")
        .args(["-s", &SESSIONS.to_string(), "-m", &n.to_string()])
        .args([
            "-l",
            &SIZE.to_string(),
            "-f",
            "a@bench.test",
            "-t",
            "u@remote.bench",
        ])
        .arg(target)
        .output()
        .map_err(|e| format!("cannot run smtp-source: {e} (postfix package)"))?;
    if !out.status.success() {
        return Err(format!(
            "smtp-source failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// smtp-sink (SMTP: PIPELINING, 8BITMIME…; accepts and discards); stopped when dropped.
struct Sink(Child);

impl Sink {
    fn start(ctx: &Ctx, listen: &str, log: &Path) -> Result<Sink, String> {
        let log = std::fs::File::create(log).map_err(|e| format!("{e}"))?;
        let child = Command::new("smtp-sink")
            .args(["-u", &ctx.user, listen, "256"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run smtp-sink: {e} (postfix package)"))?;
        let t0 = Instant::now();
        while std::net::TcpStream::connect(listen).is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(format!("smtp-sink does not listen on {listen}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Sink(child))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn count_files(d: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(d) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

fn log_count(log: &Path, needles: &[&str]) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// Waits until `cond` holds (at most `limit`).
fn wait(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// pochta-mta relaying everything to `relay` (trusted loopback clients, no local domains).
fn start_mta(
    ctx: &Ctx,
    dir: &Path,
    listen: &str,
    relay: &str,
) -> Result<(Daemon, PathBuf), String> {
    let spool = dir.join("spool");
    mkdir(&spool)?;
    ctx.give(&spool)?;
    let submit = dir.join("mta-submit");
    let cfg = dir.join("mta.toml");
    write(
        &cfg,
        &format!(
            "[server]\nuser = \"{user}\"\n\n\
             [[listener]]\nservice = \"smtp\"\naddress = \"{listen}\"\ntls = \"none\"\n\
             max_connections_per_ip = 1000\n\n\
             [[listener]]\nservice = \"local\"\naddress = \"{submit}\"\nmode = \"0660\"\n\
             owner = \"{user}\"\n\n\
             [smtpd]\nhostname = \"mx.bench.test\"\ntrusted_networks = [\"127.0.0.0/8\"]\n\n\
             [queue]\ndir = \"{spool}\"\n\n\
             [delivery]\nconcurrency = {SESSIONS}\nhelo_name = \"mx.bench.test\"\n\
             delay_warning_time = \"0\"\n\n\
             [outbound]\nrelayhost = \"{relay}\"\ndestination_concurrency = {SESSIONS}\n\
             concurrency = {SESSIONS}\n",
            user = ctx.user,
            submit = submit.display(),
            spool = spool.display(),
        ),
    )?;
    let daemon = Daemon::start(&ctx.bin("mta"), &cfg, dir, &[submit])?;
    Ok((daemon, spool))
}

/// Asks the running mta to retry everything now (`pochta queue flush`).
fn flush(spool: &Path) -> Result<(), String> {
    let s = std::os::unix::net::UnixDatagram::unbound().map_err(|e| format!("socket: {e}"))?;
    s.send_to(b"flush", spool.join("flush"))
        .map_err(|e| format!("flush {}: {e}", spool.display()))?;
    Ok(())
}

pub(crate) fn run(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let dir = ctx.row_dir("outbound")?;
    // One next hop for both sides; a fresh sink listens there during each measured part.
    let sink_listen = free_listen()?;
    let (_, sink_port) = sink_listen
        .rsplit_once(':')
        .ok_or("sink address without port")?;
    let relay = format!("[127.0.0.1]:{sink_port}");

    let pf_listen = free_listen()?;
    let pf = Postfix::start(
        &dir.join("postfix"),
        &pf_listen,
        &format!(
            "relayhost = {relay}\nin_flow_delay = 0\n\
             smtpd_client_restrictions = check_client_access static:HOLD\n"
        ),
    )?;
    let pd = dir.join("pochta");
    mkdir(&pd)?;
    ctx.give(&pd)?;
    let mta_listen = free_listen()?;
    let (mut mta, spool) = start_mta(ctx, &pd, &mta_listen, &relay)?;
    let mta_log = mta.log.clone();
    let mta_pid = mta.pid();

    let messages = ctx.scaled(20_000);
    let name = "Remote delivery from the queue, 20 connections, 4 KiB";
    let pf_ref = &pf;
    let mut sides = [
        Side {
            label: "Postfix".into(),
            roots: vec![pf.master],
            check: Box::new(|| pf_ref.check()),
        },
        Side {
            label: "pochta".into(),
            roots: vec![mta_pid],
            check: Box::new(|| mta.check()),
        },
    ];
    let pf_conf = pf.conf.display().to_string();
    let mut round = 0;
    let results = run_rounds(name, ctx.rounds, &mut sides, |s, warmup| {
        round += 1;
        let n = if warmup { messages / 5 } else { messages };
        // Fill the queue; nothing can leave yet.
        if s == 0 {
            source(&pf_listen, n)?;
            let hold = pf_ref.queue.join("hold");
            if !wait(DRAIN, || count_files(&hold) >= n) {
                return Err(format!(
                    "only {} of {n} messages on hold",
                    count_files(&hold)
                ));
            }
        } else {
            let deferred0 = log_count(&mta_log, &["status=deferred"]);
            source(&mta_listen, n)?;
            if !wait(DRAIN, || {
                log_count(&mta_log, &["status=deferred"]) >= deferred0 + n
            }) {
                return Err("the first delivery attempts did not all end".into());
            }
        }
        let sent0 = if s == 0 {
            pf_ref.log_count(&["postfix/smtp[", "status=sent"])
        } else {
            log_count(&mta_log, &["status=sent"])
        };
        let sink = Sink::start(ctx, &sink_listen, &dir.join(format!("sink-{round}.log")))?;
        let t0 = Instant::now();
        if s == 0 {
            output("postsuper", &["-c", &pf_conf, "-H", "ALL"])?;
            output("postqueue", &["-c", &pf_conf, "-f"])?;
        } else {
            flush(&spool)?;
        }
        let sent = |s: usize| {
            if s == 0 {
                pf_ref.log_count(&["postfix/smtp[", "status=sent"]) - sent0
            } else {
                log_count(&mta_log, &["status=sent"]) - sent0
            }
        };
        let drained = wait(DRAIN, || {
            let empty = if s == 0 {
                pf_ref.queued() == 0
            } else {
                count_files(&spool.join("queue")) == 0
            };
            empty && sent(s) >= n
        });
        let elapsed = t0.elapsed();
        drop(sink);
        if !drained {
            return Err(format!(
                "LOST MAIL or stuck queue: {n} queued, {} sent per the log within {} s",
                sent(s),
                DRAIN.as_secs()
            ));
        }
        if sent(s) != n {
            return Err(format!("{n} queued but the log counts {} sent", sent(s)));
        }
        Ok(LoadResult {
            units: n,
            elapsed,
            p99_ms: None,
        })
    })?;
    drop(sides);
    Ok(vec![Measurement {
        name: name.into(),
        load: format!(
            "queue filled with `smtp-source -s {SESSIONS} -m {messages} -l {SIZE}` (one \
             recipient) while delivery is held back (Postfix: hold queue; pochta: next hop \
             down, each message deferred once), then released to a fresh smtp-sink; figure = \
             messages / time from the release until the queue is empty and every message is \
             logged sent (Postfix relayhost / pochta [outbound] relayhost, 20 connections)"
        ),
        unit: "msg/s",
        per: "1,000 msgs",
        peer: "Postfix".into(),
        sides: results,
    }])
}
