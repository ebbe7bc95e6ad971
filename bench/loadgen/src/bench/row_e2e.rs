//! Row `e2e`: end-to-end local delivery, SMTP → queue → LMTP → Maildir, time until the last
//! file exists.
//! - peer: a private Postfix (in_flow_delay = 0 as in the smtp row, otherwise defaults)
//!   relaying bench.test over `lmtp:unix:` to a private Dovecot LMTP (mail_fsync = always, as in
//!   the lmtp row; its own passwd-file userdb).
//! - pochta: pochta-mta (bench.test local, recipients checked on pochta-authd's userdb at RCPT
//!   time) → `unix:` LMTP → pochta-mda-lmtp (userdb from the same authd).
//!
//! Load: the lmtp row's 10 smtp-source workers over 100 users, here over SMTP. The figure is
//! messages / time from the first connection until all files exist; fewer files than sent
//! (after the queue drained) fails the row. Without pochta-mta the peer is measured alone
//! ([`peer_only`]: one run, no ratio).

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::ctx::{mkdir, write, Ctx};
use crate::measure::{run_rounds, LoadResult, Measurement, Side};
use crate::peers::{Daemon, Dovecot};
use crate::pochta_mta::{Authd, Mta};
use crate::postfix::Postfix;
use crate::procs::{cpu_seconds, MemSampler};
use crate::row_lmtp::{count, passwd, workers};

const USERS: usize = 100;

fn free_listen() -> Result<String, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("bind: {e}"))?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

const DOVECOT_LMTP: &str = "protocols = lmtp\nmail_location = maildir:~/Maildir\n\
     mail_fsync = always\n\
     passdb {\n  driver = passwd-file\n  args = USERS\n}\n\
     userdb {\n  driver = passwd-file\n  args = USERS\n}\n\
     service lmtp {\n  unix_listener lmtp {\n    mode = 0666\n  }\n}\n";

pub(crate) fn run(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let dir = ctx.row_dir("e2e")?;
    // Peer: Postfix → Dovecot LMTP.
    let dc_dir = dir.join("dovecot");
    mkdir(&dc_dir)?;
    let dc_home = dc_dir.join("home");
    let dc_users = dc_dir.join("users");
    write(&dc_users, &passwd(ctx, &dc_home)?)?;
    let conf = DOVECOT_LMTP.replace("USERS", &dc_users.to_string_lossy());
    let dovecot = Dovecot::start(&dc_dir, &conf, &["lmtp"])?;
    let pf_listen = free_listen()?;
    let pf = Postfix::start(
        &dir.join("postfix"),
        &pf_listen,
        &format!(
            "relay_domains = bench.test\n\
             transport_maps = inline:{{ bench.test=lmtp:unix:{} }}\nin_flow_delay = 0\n",
            dovecot.socket("lmtp").display()
        ),
    )?;

    // pochta: mta → mda-lmtp, both with authd's userdb.
    let pd = dir.join("pochta");
    mkdir(&pd)?;
    ctx.give(&pd)?;
    let pd_home = pd.join("home");
    let pd_users = pd.join("users");
    write(&pd_users, &passwd(ctx, &pd_home)?)?;
    let mut authd = Authd::start(ctx, &pd, &pd_users)?;
    let lmtp_sock = pd.join("lmtp");
    let mda_cfg = pd.join("mda-lmtp.toml");
    write(
        &mda_cfg,
        &format!(
            "[server]\nuser = \"{}\"\n\n\
             [[listener]]\nservice = \"lmtp\"\naddress = \"{}\"\nmode = \"0660\"\n\
             owner = \"{}\"\n\n\
             [userdb]\nsocket = \"{}\"\n\n[delivery]\nmail_location = \"%h/Maildir\"\n",
            ctx.user,
            lmtp_sock.display(),
            ctx.user,
            authd.userdb.display()
        ),
    )?;
    let mut mda = Daemon::start(
        &ctx.bin("mda-lmtp"),
        &mda_cfg,
        &pd,
        std::slice::from_ref(&lmtp_sock),
    )?;
    let mta_listen = free_listen()?;
    let lmtp = format!("unix:{}", lmtp_sock.display());
    let mut mta = Mta::start(ctx, &pd, &mta_listen, "bench.test", &lmtp, &authd)?;
    let probe = mta.probe();

    let messages = ctx.scaled(10_000).div_ceil(USERS) * USERS;
    let pochta_roots = vec![mta.daemon.pid(), mda.pid(), authd.daemon.pid()];
    let (pf_ref, dc_ref) = (&pf, &dovecot);
    let mut sides = [
        Side {
            label: "Postfix + Dovecot".into(),
            roots: vec![pf.master, dovecot.master],
            check: Box::new(|| {
                pf_ref.check()?;
                dc_ref.check()
            }),
        },
        Side {
            label: "pochta".into(),
            roots: pochta_roots,
            check: Box::new(|| {
                authd.daemon.check()?;
                mda.check()?;
                mta.daemon.check()
            }),
        },
    ];
    let targets: [(&str, PathBuf); 2] = [(&pf_listen, dc_home), (&mta_listen, pd_home)];
    let name = "SMTP → queue → LMTP → Maildir, 100 users, 4 KiB";
    let results = run_rounds(name, ctx.rounds, &mut sides, |s, warmup| {
        let n = if warmup { messages / 5 } else { messages };
        let (target, home) = &targets[s];
        let before = count(home);
        let t0 = Instant::now();
        workers(target, n / USERS, &[])?;
        while count(home) < before + n {
            if t0.elapsed() > Duration::from_secs(600) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let elapsed = t0.elapsed();
        let got = count(home) - before;
        if got != n {
            return Err(format!(
                "LOST MAIL: sent {n}, {got} files in the Maildirs after {:.0} s: not a result",
                elapsed.as_secs_f64()
            ));
        }
        let drained = if s == 0 {
            pf_ref.drain(Duration::from_secs(60))
        } else {
            probe.drain(Duration::from_secs(60))
        };
        if !drained {
            return Err("the queue did not drain within 60 s after the last file".into());
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
            "{} smtp-source workers over SMTP, `-s 1 -m {} -l 4096` per user, {USERS} users \
             ({messages} messages a round); figure = messages / time until the last file exists \
             in the Maildirs (Dovecot: mail_fsync = always; Postfix: in_flow_delay = 0)",
            10,
            messages / USERS
        ),
        unit: "msg/s",
        per: "1,000 msgs",
        peer: "Postfix → Dovecot LMTP".into(),
        sides: results,
    }])
}

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
