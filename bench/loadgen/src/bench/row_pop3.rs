//! Row `pop3`: POP3 download throughput, pochta-pop3d (with pochta-authd) against Dovecot
//! pop3 (its own passwd-file passdb/userdb). Both read copies of the same Maildirs: 10 users with
//! 1,000 messages of 4 KiB each, written straight into Maildir/cur (LF line ends, as Dovecot
//! stores mail). Load: pochta-loadgen pop3, 30 sessions (each mailbox three times), 10 at a
//! time, each USER/PASS,
//! STAT (must say 1,000), UIDL, RETR 1..1000 (each must be the exact CRLF size), QUIT. Plaintext
//! USER/PASS from 127.0.0.0/8 is allowed the same way on both sides (Dovecot
//! login_trusted_networks, pochta trusted_networks). The warm-up round (discarded) is a full
//! round so that both build their indexes/uidlists before the measured rounds.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use pochta_loadgen::pop3;

use crate::ctx::{mkdir, write, Ctx, Fault};
use crate::measure::{run_rounds, LoadResult, Measurement, Side};
use crate::peers::{Daemon, Dovecot};

pub(crate) const USERS: usize = 10;
pub(crate) const MESSAGES: usize = 1000;
/// Sessions a round: every mailbox is downloaded three times, 10 sessions at a time.
const SESSIONS: usize = 30;
/// Body lines of 76 characters + LF: 53 lines ≈ 4 KiB with the header.
const BODY_LINES: usize = 53;

pub(crate) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("{e}"))
}

pub(crate) fn wait_tcp(addr: &str, what: &str) -> Result<(), String> {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(format!("{what} does not listen on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One message with fixed-width numbers, so every message has the same size. Returns the text
/// (LF line ends) and its size on the wire (CRLF).
fn message(user: usize, n: usize) -> (String, u64) {
    let mut m = format!(
        "From: sender{user:04}@bench.test\nTo: u{user:02}@bench.test\n\
         Subject: bench message {n:06}\nMessage-ID: <{user:04}.{n:06}@bench.test>\n\
         Date: Mon, 23 Nov 2026 08:00:00 +0000\n\n"
    );
    for l in 0..BODY_LINES {
        m.push_str(&format!("{l:04} {}\n", "x".repeat(71)));
    }
    let lines = m.matches('\n').count() as u64;
    let size = m.len() as u64 + lines;
    (m, size)
}

/// Writes USERS Maildirs with MESSAGES messages under `home`, passwd lines for them.
pub(crate) fn populate(ctx: &Ctx, home: &Path) -> Result<(String, u64), String> {
    mkdir(home)?;
    ctx.give(home)?;
    let mut passwd = String::new();
    let mut wire_size = 0;
    for u in 1..=USERS {
        let h = home.join(format!("u{u}"));
        let md = h.join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            mkdir(&md.join(sub))?;
        }
        for n in 0..MESSAGES {
            let (text, size) = message(u, n);
            wire_size = size;
            let name = format!(
                "{}.M{n:06}P1Q{n}.bench,S={},W={size}:2,",
                1_763_884_800 + n,
                text.len()
            );
            write(&md.join("cur").join(name), &text)?;
        }
        for p in [
            h.clone(),
            md.clone(),
            md.join("cur"),
            md.join("new"),
            md.join("tmp"),
        ] {
            ctx.give(&p)?;
        }
        for e in std::fs::read_dir(md.join("cur"))
            .map_err(|e| format!("{e}"))?
            .flatten()
        {
            ctx.give(&e.path())?;
        }
        passwd.push_str(&format!(
            "u{u}@bench.test:{{PLAIN}}pw{u}:{}:{}::{}::\n",
            ctx.uid,
            ctx.gid,
            h.display()
        ));
    }
    Ok((passwd, wire_size))
}

pub(crate) fn run(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let dir = ctx.row_dir("pop3")?;

    let dc_dir = dir.join("dovecot");
    mkdir(&dc_dir)?;
    let (passwd, wire_size) = populate(ctx, &dc_dir.join("home"))?;
    let dc_users = dc_dir.join("users");
    write(&dc_users, &passwd)?;
    let dc_port = free_port()?;
    let dovecot = Dovecot::start(
        &dc_dir,
        &format!(
            "protocols = pop3\nlisten = 127.0.0.1\nlogin_trusted_networks = 127.0.0.0/8\n\
             mail_location = maildir:~/Maildir\n\
             passdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    \
             port = {dc_port}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n",
            u = dc_users.display()
        ),
        &[],
    )?;
    let dc_addr = format!("127.0.0.1:{dc_port}");
    wait_tcp(&dc_addr, "Dovecot pop3")?;

    let pd_dir = dir.join("pochta");
    mkdir(&pd_dir)?;
    ctx.give(&pd_dir)?;
    let (passwd, _) = populate(ctx, &pd_dir.join("home"))?;
    let pd_users = pd_dir.join("users");
    write(&pd_users, &passwd)?;
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
    let pd_port = free_port()?;
    let pd_addr = format!("127.0.0.1:{pd_port}");
    let pop3_cfg = pd_dir.join("pop3d.toml");
    write(
        &pop3_cfg,
        &format!(
            "[server]\nuser = \"{}\"\n\n\
             [[listener]]\nservice = \"pop3\"\naddress = \"{pd_addr}\"\n\n\
             [pop3]\ntrusted_networks = [\"127.0.0.0/8\"]\n\n\
             [auth]\nclient_socket = \"{}\"\nuserdb_socket = \"{}\"\n\n\
             [mail]\nlocation = \"%h/Maildir\"\n",
            ctx.user,
            client.display(),
            userdb.display()
        ),
    )?;
    let mut pop3d = Daemon::start(&ctx.bin("pop3d"), &pop3_cfg, &pd_dir, &[])?;
    wait_tcp(&pd_addr, "pochta-pop3d")?;

    if ctx.fault == Some(Fault::DeadPeer) {
        println!(
            "  fault injected: stopping Dovecot (pid {}) before the first round",
            dovecot.master
        );
        dovecot.stop();
    }

    let users: Vec<(String, String)> = (1..=USERS)
        .map(|u| (format!("u{u}@bench.test"), format!("pw{u}")))
        .collect();
    let (authd_pid, pop3d_pid) = (authd.pid(), pop3d.pid());
    let mut sides = [
        Side {
            label: "Dovecot".into(),
            roots: vec![dovecot.master],
            check: Box::new(|| dovecot.check()),
        },
        Side {
            label: "pochta".into(),
            roots: vec![pop3d_pid, authd_pid],
            check: Box::new(|| {
                authd.check()?;
                pop3d.check()
            }),
        },
    ];
    let addrs = [dc_addr, pd_addr];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let sessions = ctx.scaled(SESSIONS);
    let name = "POP3 RETR, 10 concurrent sessions, 1,000 × 4 KiB each";
    let results = run_rounds(name, ctx.rounds, &mut sides, |s, _warmup| {
        let o = rt.block_on(pop3::run(pop3::Options {
            addr: addrs[s].clone(),
            users: users.clone(),
            concurrency: USERS.min(sessions),
            sessions,
            expect_messages: MESSAGES,
            expect_size: Some(wire_size),
            timeout: Duration::from_secs(30),
        }))?;
        if o.messages != sessions * MESSAGES {
            return Err(format!(
                "retrieved {} of {} messages: not a result",
                o.messages,
                sessions * MESSAGES
            ));
        }
        Ok(LoadResult {
            units: o.messages,
            elapsed: o.elapsed,
            p99_ms: Some(o.latencies.percentile_ms(99.0)),
        })
    })?;
    drop(sides);
    Ok(vec![Measurement {
        name: name.into(),
        load: format!(
            "pochta-loadgen pop3: {sessions} sessions over {USERS} users, {USERS} at a time, each \
             USER/PASS, STAT, \
             UIDL, RETR 1..{MESSAGES} ({wire_size} octets each, checked), QUIT; the warm-up \
             round is a full round (builds both sides' indexes); p99 is per RETR"
        ),
        unit: "msg/s",
        per: "1,000 msgs",
        peer: "Dovecot pop3".into(),
        sides: results,
    }])
}
