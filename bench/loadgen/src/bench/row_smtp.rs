//! Row `smtp`: SMTP acceptance into a durable queue, `smtp-source -s 20 -m 20000 -l 4096`
//! (the figure is messages / time until smtp-source has its last 250).
//! - Postfix: a private instance with in_flow_delay = 0 (its default 1s would throttle
//!   smtp-source, which pochta does not do) whose every message goes to the `discard`
//!   transport; otherwise defaults (queue files fsynced before 250).
//! - pochta: pochta-mta with defaults (queue file and directory fsynced before 250), sink.test
//!   a local domain whose one recipient is checked on pochta-authd's userdb socket at RCPT time
//!   (work Postfix does not do here), delivered over LMTP to `smtp-sink -L` (Postfix's sink,
//!   which discards).
//!
//! After each run the queue must drain and the log must show as many delivered (discarded)
//! messages as were sent, or the row fails. Without pochta-mta the peer is measured alone
//! ([`peer_only`]: one run, no ratio).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ctx::{mkdir, write, Ctx};
use crate::measure::{run_rounds, LoadResult, Measurement, Side};
use crate::pochta_mta::{Authd, Mta};
use crate::postfix::Postfix;
use crate::procs::{cpu_seconds, MemSampler};

const SESSIONS: usize = 20;
const SIZE: usize = 4096;

const DISCARD: &str = "relay_domains = sink.test\ntransport_maps = inline:{ sink.test=discard: }\n\
     default_transport = discard:\nrelay_transport = discard:\nin_flow_delay = 0\n";

fn free_listen() -> Result<String, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("bind: {e}"))?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

/// `smtp-source -s 20 -m n -l 4096` to u@sink.test at `target`.
fn source(target: &str, n: usize) -> Result<(), String> {
    let out = Command::new("smtp-source")
        .args(["-s", &SESSIONS.to_string(), "-m", &n.to_string()])
        .args([
            "-l",
            &SIZE.to_string(),
            "-f",
            "a@bench.test",
            "-t",
            "u@sink.test",
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

/// `smtp-sink -L`: an LMTP server that accepts and discards; stopped when dropped.
struct Sink(Child);

impl Sink {
    fn start(ctx: &Ctx, listen: &str, dir: &Path) -> Result<Sink, String> {
        let log = std::fs::File::create(dir.join("smtp-sink.log")).map_err(|e| format!("{e}"))?;
        let child = Command::new("smtp-sink")
            .args(["-L", "-u", &ctx.user, listen, "256"])
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

pub(crate) fn run(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let dir = ctx.row_dir("smtp")?;
    let pf_listen = free_listen()?;
    let pf = Postfix::start(&dir.join("postfix"), &pf_listen, DISCARD)?;

    let pd = dir.join("pochta");
    mkdir(&pd)?;
    ctx.give(&pd)?;
    let home = pd.join("home");
    mkdir(&home)?;
    ctx.give(&home)?;
    let users = pd.join("users");
    write(
        &users,
        &format!(
            "u@sink.test:{{PLAIN}}pw:{}:{}::{}::\n",
            ctx.uid,
            ctx.gid,
            home.display()
        ),
    )?;
    let sink_listen = free_listen()?;
    let sink = Sink::start(ctx, &sink_listen, &pd)?;
    let mut authd = Authd::start(ctx, &pd, &users)?;
    let mta_listen = free_listen()?;
    let lmtp = format!("inet:{sink_listen}");
    let mut mta = Mta::start(ctx, &pd, &mta_listen, "sink.test", &lmtp, &authd)?;

    let messages = ctx.scaled(20_000);
    let probe = mta.probe();
    let (mta_pid, authd_pid) = (mta.daemon.pid(), authd.daemon.pid());
    let name = "SMTP acceptance, 20 sessions, 4 KiB";
    let pf_ref = &pf;
    let mut sides = [
        Side {
            label: "Postfix".into(),
            roots: vec![pf.master],
            check: Box::new(|| pf_ref.check()),
        },
        Side {
            label: "pochta".into(),
            roots: vec![mta_pid, authd_pid],
            check: Box::new(|| {
                authd.daemon.check()?;
                mta.daemon.check()
            }),
        },
    ];
    let targets = [pf_listen.as_str(), mta_listen.as_str()];
    let delivered = |s: usize| {
        if s == 0 {
            pf_ref.log_count(&["postfix/discard", "status=sent"])
        } else {
            probe.sent()
        }
    };
    let results = run_rounds(name, ctx.rounds, &mut sides, |s, warmup| {
        let n = if warmup { messages / 5 } else { messages };
        let before = delivered(s);
        let t0 = Instant::now();
        source(targets[s], n)?;
        let elapsed = t0.elapsed();
        let drained = if s == 0 {
            pf_ref.drain(Duration::from_secs(300))
        } else {
            probe.drain(Duration::from_secs(300))
        };
        if !drained {
            return Err("the queue did not drain within 300 s".into());
        }
        // Logs may trail the queue by a moment.
        let t1 = Instant::now();
        let mut got = delivered(s) - before;
        while got < n && t1.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            got = delivered(s) - before;
        }
        if got != n {
            return Err(format!(
                "LOST MAIL: sent {n}, {got} delivered (discarded) per the log: not a result"
            ));
        }
        Ok(LoadResult {
            units: n,
            elapsed,
            p99_ms: None,
        })
    })?;
    drop(sides);
    drop(sink);
    Ok(vec![Measurement {
        name: name.into(),
        load: format!(
            "smtp-source -s {SESSIONS} -m {messages} -l {SIZE} to one recipient; figure = \
             messages / time to the last 250; then the queue must drain (Postfix: discard \
             transport; pochta: recipient checked on authd's userdb, LMTP to smtp-sink -L) and \
             the log must count every message"
        ),
        unit: "msg/s",
        per: "1,000 msgs",
        peer: "Postfix".into(),
        sides: results,
    }])
}

/// Measures Postfix alone; returns a line for the report.
pub(crate) fn peer_only(ctx: &Ctx) -> Result<String, String> {
    let dir = ctx.row_dir("smtp")?;
    let listen = free_listen()?;
    let pf = Postfix::start(&dir.join("postfix"), &listen, DISCARD)?;
    let messages = ctx.scaled(20_000);
    pf.check()?;
    let roots = vec![pf.master];
    let sampler = MemSampler::start(roots.clone());
    let cpu0 = cpu_seconds(&roots);
    let t0 = Instant::now();
    source(&listen, messages).map_err(|e| format!("smtp: {e}"))?;
    let accept = t0.elapsed();
    if !pf.drain(Duration::from_secs(120)) {
        return Err(format!(
            "smtp: Postfix queue still holds {} messages",
            pf.queued()
        ));
    }
    let drained = t0.elapsed();
    let cpu = cpu_seconds(&roots) - cpu0;
    let (pss, hwm) = sampler.finish();
    pf.check()?;
    // postlogd may write the last lines a moment after the queue emptied.
    let t1 = Instant::now();
    let mut got = 0;
    while t1.elapsed() < Duration::from_secs(10) {
        got = pf.log_count(&["postfix/discard", "status=sent"]);
        if got >= messages {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if got != messages {
        return Err(format!(
            "smtp: LOST MAIL: sent {messages}, Postfix discarded {got} (maillog): not a result"
        ));
    }
    let rate = messages as f64 / accept.as_secs_f64();
    let line = format!(
        "smtp, peer only (pochta-mta not built): Postfix accepted {rate:.0} msg/s \
         (`smtp-source -s {SESSIONS} -m {messages} -l {SIZE}` → discard, in_flow_delay = 0; \
         one run, {:.1} s; queue empty {:.1} s after the start; all {got} discarded); server \
         CPU {:.3} s per 1,000 msgs (accept + queue + discard); peak PSS {:.1} MiB, max VmHWM \
         {:.1} MiB",
        accept.as_secs_f64(),
        drained.as_secs_f64(),
        cpu * 1000.0 / messages as f64,
        pss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("  {line}");
    Ok(line)
}
