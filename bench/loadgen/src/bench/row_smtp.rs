//! Row `smtp`: SMTP acceptance into a durable queue. The pochta side needs pochta-mta, which
//! does not exist yet; until then the harness measures the peer alone (one run, no ratio), so the
//! figure and the Postfix set-up are ready: a private Postfix with in_flow_delay = 0 (its
//! default 1s would throttle smtp-source, which pochta does not do) whose every message goes to
//! the `discard` transport; otherwise Postfix defaults (queue files fsynced before 250). Load:
//! `smtp-source -s 20 -m 20000 -l 4096 -N`. After the run the queue must drain and the maillog
//! must show as many discarded messages as were sent.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ctx::Ctx;
use crate::postfix::Postfix;
use crate::procs::{cpu_seconds, MemSampler};

const SESSIONS: usize = 20;
const SIZE: usize = 4096;

/// Measures Postfix alone; returns a line for the report.
pub(crate) fn peer_only(ctx: &Ctx) -> Result<String, String> {
    let dir = ctx.row_dir("smtp")?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("bind: {e}"))?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let pf = Postfix::start(
        &dir.join("postfix"),
        &listen,
        "relay_domains = sink.test\ntransport_maps = inline:{ sink.test=discard: }\n\
         default_transport = discard:\nrelay_transport = discard:\nin_flow_delay = 0\n",
    )?;
    let messages = ctx.scaled(20_000);
    pf.check()?;
    let roots = vec![pf.master];
    let sampler = MemSampler::start(roots.clone());
    let cpu0 = cpu_seconds(&roots);
    let t0 = Instant::now();
    let out = Command::new("smtp-source")
        .args(["-s", &SESSIONS.to_string(), "-m", &messages.to_string()])
        .args([
            "-l",
            &SIZE.to_string(),
            "-N",
            "-f",
            "a@bench.test",
            "-t",
            "u@sink.test",
        ])
        .arg(&listen)
        .output()
        .map_err(|e| format!("cannot run smtp-source: {e}"))?;
    let accept = t0.elapsed();
    if !out.status.success() {
        return Err(format!(
            "smtp: smtp-source failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
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
         (`smtp-source -s {SESSIONS} -m {messages} -l {SIZE} -N` → discard, in_flow_delay = 0; \
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
