//! Row `imap`: the pochta side needs pochta-imapd, which does not exist yet; until then the
//! harness measures Dovecot imap alone (no ratio) under the mixed load the row will apply to
//! both: the pop3 row's Maildirs (10 users × 1,000 messages of 4 KiB), pochta-loadgen imap with
//! 10 concurrent sessions (one per user), each LOGIN, SELECT INBOX, 500 commands of the fixed mix
//! (NOOP; UID FETCH 1:* (FLAGS); FETCH n (BODY.PEEK[]); UID SEARCH SUBJECT; STATUS), LOGOUT.
//! One warm-up run (index build), then one measured run. The large-mailbox (100k) and idle-RSS
//! measurements of the issue are not written yet.

use std::time::Duration;

use pochta_loadgen::imap;

use crate::ctx::{mkdir, write, Ctx};
use crate::peers::Dovecot;
use crate::procs::{cpu_seconds, MemSampler};
use crate::row_pop3::{free_port, populate, wait_tcp, MESSAGES, USERS};

const COMMANDS: usize = 500;

pub(crate) fn peer_only(ctx: &Ctx) -> Result<String, String> {
    let dir = ctx.row_dir("imap")?;
    let dc_dir = dir.join("dovecot");
    mkdir(&dc_dir)?;
    let (passwd, _) = populate(ctx, &dc_dir.join("home"))?;
    let users_file = dc_dir.join("users");
    write(&users_file, &passwd)?;
    let port = free_port()?;
    let dovecot = Dovecot::start(
        &dc_dir,
        &format!(
            "protocols = imap\nlisten = 127.0.0.1\nlogin_trusted_networks = 127.0.0.0/8\n\
             mail_location = maildir:~/Maildir\n\
             passdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    \
             port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            u = users_file.display()
        ),
        &[],
    )?;
    let addr = format!("127.0.0.1:{port}");
    wait_tcp(&addr, "Dovecot imap")?;
    let users: Vec<(String, String)> = (1..=USERS)
        .map(|u| (format!("u{u}@bench.test"), format!("pw{u}")))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let commands = ctx.scaled(COMMANDS);
    let opts = imap::Options {
        addr,
        users,
        concurrency: USERS,
        sessions: USERS,
        commands,
        expect_messages: MESSAGES,
        timeout: Duration::from_secs(30),
    };
    rt.block_on(imap::run(opts.clone()))
        .map_err(|e| format!("imap warm-up: {e}"))?;
    dovecot.check()?;
    let roots = vec![dovecot.master];
    let sampler = MemSampler::start(roots.clone());
    let cpu0 = cpu_seconds(&roots);
    let o = rt
        .block_on(imap::run(opts))
        .map_err(|e| format!("imap: {e}"))?;
    let cpu = cpu_seconds(&roots) - cpu0;
    let (pss, hwm) = sampler.finish();
    dovecot.check()?;
    if o.commands != USERS * commands {
        return Err(format!(
            "imap: {} of {} commands answered",
            o.commands,
            USERS * commands
        ));
    }
    let line = format!(
        "imap, peer only (pochta-imapd not built): Dovecot imap {:.0} commands/s, p50 {:.2} ms, \
         p99 {:.2} ms ({USERS} concurrent sessions on {USERS} × {MESSAGES} × 4 KiB INBOXes, \
         {commands} commands each of the mix NOOP / UID FETCH 1:* (FLAGS) / FETCH n \
         (BODY.PEEK[]) / UID SEARCH SUBJECT / STATUS; after a warm-up run; one run); server CPU \
         {:.3} s per 1,000 commands; peak PSS {:.1} MiB, max VmHWM {:.1} MiB",
        o.rate(),
        o.latencies.percentile_ms(50.0),
        o.latencies.percentile_ms(99.0),
        cpu * 1000.0 / o.commands.max(1) as f64,
        pss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("  {line}");
    Ok(line)
}
