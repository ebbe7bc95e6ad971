//! Row `imap`: pochta-imapd (with pochta-authd) against Dovecot imap (its own passwd-file
//! passdb/userdb), both on loopback with plaintext LOGIN allowed from 127.0.0.0/8 (Dovecot
//! login_trusted_networks, pochta trusted_networks) and on copies of the same Maildirs, written
//! identically for both sides before the servers start. Three parts, each with a discarded
//! warm-up round (full size: it builds the indexes) and alternating A/B rounds:
//! - [`idle`]: RSS per idle IDLE session with 1,000 sessions (run first, on fresh servers);
//! - the mixed load of `pochta-loadgen imap`: the pop3 row's Maildirs (10 users × 1,000 × 4 KiB),
//!   10 concurrent sessions, each LOGIN, SELECT INBOX, 500 commands of the fixed mix (NOOP; UID
//!   FETCH 1:* (FLAGS); FETCH n (BODY.PEEK[]); UID SEARCH SUBJECT; STATUS), LOGOUT;
//! - [`large`]: SELECT, UID FETCH 1:* (FLAGS), UID SEARCH FROM/SUBJECT on a 100,000-message
//!   INBOX.
//!
//! Configured for 1,000 concurrent users the way an admin would: Dovecot `service imap
//! { process_limit }` ≥ sessions + margin and `default_client_limit` ≥ 2 × sessions (log, anvil,
//! config and auth serve every imap process); pochta `max_connections` and
//! `max_connections_per_ip` on the listener (every client is 127.0.0.1). RLIMIT_NOFILE of the
//! harness (inherited by both servers) is raised with prlimit when it is too low. pochta's
//! default special-use mailboxes are switched off (`mailbox = []`) since Dovecot's defaults
//! create none.

mod idle;
mod large;
mod mail;

use std::time::Duration;

use pochta_loadgen::imap;

use crate::ctx::{mkdir, output, write, Ctx, Fault};
use crate::measure::{run_rounds, LoadResult, Measurement, Side};
use crate::peers::{Daemon, Dovecot};
use crate::row_pop3::{free_port, populate, wait_tcp, MESSAGES, USERS};

const COMMANDS: usize = 500;

pub(crate) fn process_limit(sessions: usize) -> usize {
    (sessions + 24).max(1024)
}
pub(crate) fn client_limit(sessions: usize) -> usize {
    (2 * sessions + 48).max(2048)
}
pub(crate) fn max_connections(sessions: usize) -> usize {
    (2 * sessions).max(2048)
}

/// Soft RLIMIT_NOFILE of this process.
fn nofile() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The harness holds the client side of every session and both servers inherit its limit:
/// raise it when it is below what `sessions` need.
fn raise_nofile(sessions: usize) -> Result<(), String> {
    let need = (8 * sessions).max(8192) as u64;
    if nofile() >= need {
        return Ok(());
    }
    let pid = std::process::id().to_string();
    output(
        "prlimit",
        &["--pid", &pid, &format!("--nofile={need}:{need}")],
    )?;
    if nofile() < need {
        return Err(format!(
            "RLIMIT_NOFILE is {} after prlimit, {need} needed",
            nofile()
        ));
    }
    Ok(())
}

/// Both sides' users: the mixed load's 10, the large mailbox's one, the idle sessions' users.
fn write_mail(ctx: &Ctx, dir: &std::path::Path, big: usize, idle: usize) -> Result<(), String> {
    mkdir(dir)?;
    ctx.give(dir)?;
    let home = dir.join("home");
    let (mut passwd, _) = populate(ctx, &home)?;
    passwd.push_str(&mail::maildir(
        ctx,
        &home.join("big"),
        large::USER,
        large::PASS,
        big,
    )?);
    for k in 1..=idle {
        let (user, pass) = idle::user(k);
        passwd.push_str(&mail::maildir(
            ctx,
            &home.join(format!("i{k}")),
            &user,
            &pass,
            idle::MESSAGES,
        )?);
    }
    write(&dir.join("users"), &passwd)
}

pub(crate) fn run(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let big = ctx.scaled(large::MESSAGES);
    let idle_n = ctx.scaled(idle::SESSIONS);
    raise_nofile(idle_n)?;
    let dir = ctx.row_dir("imap")?;
    let (dc_dir, pd_dir) = (dir.join("dovecot"), dir.join("pochta"));
    let t0 = std::time::Instant::now();
    write_mail(ctx, &dc_dir, big, idle_n)?;
    write_mail(ctx, &pd_dir, big, idle_n)?;
    println!(
        "  imap: wrote {} Maildir files per side in {:.1} s",
        USERS * MESSAGES + big + idle_n * idle::MESSAGES,
        t0.elapsed().as_secs_f64()
    );

    let dc_users = dc_dir.join("users");
    let dc_port = free_port()?;
    let dovecot = Dovecot::start(
        &dc_dir,
        &format!(
            "protocols = imap\nlisten = 127.0.0.1\nlogin_trusted_networks = 127.0.0.0/8\n\
             mail_location = maildir:~/Maildir\n\
             default_client_limit = {cl}\n\
             passdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             service imap {{\n  process_limit = {pl}\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    \
             port = {dc_port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            u = dc_users.display(),
            cl = client_limit(idle_n),
            pl = process_limit(idle_n),
        ),
        &[],
    )?;
    let dc_addr = format!("127.0.0.1:{dc_port}");
    wait_tcp(&dc_addr, "Dovecot imap")?;

    let pd_users = pd_dir.join("users");
    let (client, userdb) = (pd_dir.join("auth-client"), pd_dir.join("auth-userdb"));
    let authd_cfg = pd_dir.join("authd.toml");
    write(
        &authd_cfg,
        &format!(
            "[server]\nuser = \"{}\"\n\n\
             [[listener]]\nservice = \"auth-client\"\naddress = \"{}\"\nmode = \"0666\"\n\n\
             [[listener]]\nservice = \"auth-userdb\"\naddress = \"{}\"\nmode = \"0666\"\n\n\
             [passdb]\npath = \"{}\"\n",
            ctx.user,
            client.display(),
            userdb.display(),
            pd_users.display()
        ),
    )?;
    let mut authd = Daemon::start(
        &ctx.bin("authd"),
        &authd_cfg,
        &pd_dir,
        &[client.clone(), userdb.clone()],
    )?;
    let pd_addr = format!("127.0.0.1:{}", free_port()?);
    let imapd_cfg = pd_dir.join("imapd.toml");
    write(
        &imapd_cfg,
        &format!(
            "[server]\nuser = \"{}\"\n\n\
             [[listener]]\nservice = \"imap\"\naddress = \"{pd_addr}\"\n\
             max_connections = {mc}\nmax_connections_per_ip = {mc}\n\n\
             [imap]\ntrusted_networks = [\"127.0.0.0/8\"]\nmailbox = []\n\n\
             [auth]\nclient_socket = \"{}\"\nuserdb_socket = \"{}\"\n\n\
             [mail]\nlocation = \"%h/Maildir\"\n",
            ctx.user,
            client.display(),
            userdb.display(),
            mc = max_connections(idle_n),
        ),
    )?;
    let mut imapd = Daemon::start(&ctx.bin("imapd"), &imapd_cfg, &pd_dir, &[])?;
    wait_tcp(&pd_addr, "pochta-imapd")?;

    if ctx.fault == Some(Fault::DeadPeer) {
        println!(
            "  fault injected: stopping Dovecot (pid {}) before the first round",
            dovecot.master
        );
        dovecot.stop();
    }

    let (authd_pid, imapd_pid) = (authd.pid(), imapd.pid());
    let mut sides = [
        Side {
            label: "Dovecot".into(),
            roots: vec![dovecot.master],
            check: Box::new(|| dovecot.check()),
        },
        Side {
            label: "pochta".into(),
            roots: vec![imapd_pid, authd_pid],
            check: Box::new(|| {
                authd.check()?;
                imapd.check()
            }),
        },
    ];
    let addrs = [dc_addr, pd_addr];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;

    let mut out = vec![idle::run(ctx, &rt, &mut sides, &addrs, idle_n)?];
    out.push(mixed(ctx, &rt, &mut sides, &addrs)?);
    out.extend(large::run(ctx, &rt, &mut sides, &addrs, big)?);
    drop(sides);
    Ok(out)
}

/// The mixed command load of `pochta-loadgen imap`.
fn mixed(
    ctx: &Ctx,
    rt: &tokio::runtime::Runtime,
    sides: &mut [Side<'_>; 2],
    addrs: &[String; 2],
) -> Result<Measurement, String> {
    let users: Vec<(String, String)> = (1..=USERS)
        .map(|u| (format!("u{u}@bench.test"), format!("pw{u}")))
        .collect();
    let commands = ctx.scaled(COMMANDS);
    let name = "IMAP mixed commands, 10 concurrent sessions";
    let results = run_rounds(name, ctx.rounds, sides, |s, _warmup| {
        let o = rt.block_on(imap::run(imap::Options {
            addr: addrs[s].clone(),
            users: users.clone(),
            concurrency: USERS,
            sessions: USERS,
            commands,
            expect_messages: MESSAGES,
            timeout: Duration::from_secs(60),
        }))?;
        if o.commands != USERS * commands {
            return Err(format!(
                "{} of {} commands answered: not a result",
                o.commands,
                USERS * commands
            ));
        }
        Ok(LoadResult {
            units: o.commands,
            elapsed: o.elapsed,
            p99_ms: Some(o.latencies.percentile_ms(99.0)),
        })
    })?;
    Ok(Measurement {
        name: name.into(),
        load: format!(
            "pochta-loadgen imap: {USERS} concurrent sessions on {USERS} INBOXes of {MESSAGES} \
             × 4 KiB (the pop3 row's Maildirs), each LOGIN, SELECT INBOX (EXISTS checked), \
             {commands} commands of the mix NOOP / UID FETCH 1:* (FLAGS) (one FETCH per message \
             checked) / FETCH n (BODY.PEEK[]) / UID SEARCH SUBJECT (non-empty) / STATUS INBOX \
             (MESSAGES UNSEEN), LOGOUT; the warm-up round is a full round; p99 per command"
        ),
        unit: "cmd/s",
        per: "1,000 cmds",
        peer: "Dovecot imap".into(),
        sides: results,
    })
}
