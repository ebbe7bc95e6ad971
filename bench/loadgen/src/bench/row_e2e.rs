//! Row `e2e`: end-to-end local delivery, SMTP → queue → LMTP → Maildir, time until the last
//! file exists. The pochta side needs pochta-mta; until it exists the harness measures the peer
//! alone (one run, no ratio): a private Postfix (in_flow_delay = 0 as in the smtp row, otherwise
//! defaults) relaying bench.test over `lmtp:unix:` to a private Dovecot LMTP (mail_fsync =
//! always, as in the lmtp row). Load: the lmtp row's 10 smtp-source workers over 100 users,
//! here over SMTP. The figure is messages / time from the first connection until all files
//! exist; fewer files than sent (after the queue drained) fails the row.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::ctx::{mkdir, write, Ctx};
use crate::peers::Dovecot;
use crate::postfix::Postfix;
use crate::procs::{cpu_seconds, MemSampler};
use crate::row_lmtp::{count, passwd, workers};

const USERS: usize = 100;

pub(crate) fn peer_only(ctx: &Ctx) -> Result<String, String> {
    let dir = ctx.row_dir("e2e")?;
    let dc_dir = dir.join("dovecot");
    mkdir(&dc_dir)?;
    let home = dc_dir.join("home");
    let users = dc_dir.join("users");
    write(&users, &passwd(ctx, &home)?)?;
    let dovecot = Dovecot::start(
        &dc_dir,
        &format!(
            "protocols = lmtp\nmail_location = maildir:~/Maildir\nmail_fsync = always\n\
             passdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n",
            u = users.display()
        ),
        &["lmtp"],
    )?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("bind: {e}"))?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let pf = Postfix::start(
        &dir.join("postfix"),
        &listen,
        &format!(
            "relay_domains = bench.test\n\
             transport_maps = inline:{{ bench.test=lmtp:unix:{} }}\nin_flow_delay = 0\n",
            dovecot.socket("lmtp").display()
        ),
    )?;
    let messages = ctx.scaled(10_000).div_ceil(USERS) * USERS;
    let roots = vec![pf.master, dovecot.master];
    let sampler = MemSampler::start(roots.clone());
    let cpu0 = cpu_seconds(&roots);
    let t0 = Instant::now();
    workers(&listen, messages / USERS, &[])?;
    let injected = t0.elapsed();
    while count(&home) < messages {
        if t0.elapsed() > Duration::from_secs(600) {
            break;
        }
        pf.check()?;
        dovecot.check()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = t0.elapsed();
    let cpu = cpu_seconds(&roots) - cpu0;
    let (pss, hwm) = sampler.finish();
    if !pf.drain(Duration::from_secs(60)) {
        return Err(format!(
            "e2e: Postfix queue still holds {} messages",
            pf.queued()
        ));
    }
    let got = count(&home);
    if got != messages {
        return Err(format!(
            "e2e: LOST MAIL: sent {messages}, {got} files in the Maildirs: not a result"
        ));
    }
    let line = format!(
        "e2e, peer only (pochta-mta not built): Postfix → Dovecot LMTP {:.0} msg/s \
         ({messages} messages, 10 smtp-source workers over {USERS} users, 4 KiB; injected in \
         {:.1} s, last file at {:.1} s; in_flow_delay = 0, mail_fsync = always; one run); \
         server CPU {:.3} s per 1,000 msgs (Postfix + Dovecot); peak PSS {:.1} MiB, max VmHWM \
         {:.1} MiB",
        messages as f64 / last.as_secs_f64(),
        injected.as_secs_f64(),
        last.as_secs_f64(),
        cpu * 1000.0 / messages as f64,
        pss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("  {line}");
    Ok(line)
}
