//! Row `lmtp`: LMTP delivery into Maildir, pochta-mda-lmtp (userdb from pochta-authd) against
//! Dovecot LMTP (its own passwd-file userdb) with mail_fsync = always. Load: smtp-source from
//! the postfix package, 10 parallel workers; worker w delivers to users u<k> with
//! (k-1) % 10 == w, one user after another, `smtp-source -L -s 1 -m <per user> -l 4096` each
//! (one message per LMTP session), 100 users. After each run the harness counts the files that
//! appeared in the users' Maildirs (new/ + cur/): fewer than were sent fails the row.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::ctx::{mkdir, write, Ctx, Fault};
use crate::measure::{run_rounds, LoadResult, Measurement, Side};
use crate::peers::{Daemon, Dovecot};

const USERS: usize = 100;
const WORKERS: usize = 10;
const SIZE: usize = 4096;

pub(crate) fn passwd(ctx: &Ctx, home: &Path) -> Result<String, String> {
    mkdir(home)?;
    ctx.give(home)?;
    let mut s = String::new();
    for k in 1..=USERS {
        let h = home.join(format!("u{k}"));
        mkdir(&h)?;
        ctx.give(&h)?;
        s.push_str(&format!(
            "u{k}@bench.test:{{PLAIN}}pw{k}:{}:{}::{}::\n",
            ctx.uid,
            ctx.gid,
            h.display()
        ));
    }
    Ok(s)
}

/// Delivered files in all users' Maildirs.
pub(crate) fn count(home: &Path) -> usize {
    let mut n = 0;
    for k in 1..=USERS {
        for sub in ["new", "cur"] {
            let d = home.join(format!("u{k}/Maildir/{sub}"));
            if let Ok(rd) = std::fs::read_dir(d) {
                n += rd.flatten().count();
            }
        }
    }
    n
}

/// The injected fault: removes one delivered file.
fn lose_one(home: &Path) -> Result<(), String> {
    let new = home.join("u1/Maildir/new");
    let victim = std::fs::read_dir(&new)
        .map_err(|e| format!("{}: {e}", new.display()))?
        .flatten()
        .next()
        .ok_or("fault injection: no file to remove")?;
    println!("  fault injected: removing {}", victim.path().display());
    std::fs::remove_file(victim.path()).map_err(|e| format!("{e}"))
}

/// Runs the smtp-source workers against `target` (`unix:/path`); `per_user` messages each.
fn load(target: &str, per_user: usize) -> Result<(), String> {
    workers(target, per_user, &["-L"])
}

/// WORKERS parallel workers, each sending `per_user` messages to each of its users with
/// `smtp-source FLAGS -s 1 -m per_user -l SIZE`, one user after another.
pub(crate) fn workers(target: &str, per_user: usize, flags: &[&str]) -> Result<(), String> {
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let threads: Vec<_> = (0..WORKERS)
        .map(|w| {
            let target = target.to_owned();
            let flags = flags.clone();
            std::thread::spawn(move || -> Result<(), String> {
                for k in (w + 1..=USERS).step_by(WORKERS) {
                    let out = Command::new("smtp-source")
                        .args(&flags)
                        .args(["-s", "1", "-m", &per_user.to_string()])
                        .args(["-l", &SIZE.to_string(), "-f", "bench@bench.test"])
                        .args(["-t", &format!("u{k}@bench.test"), &target])
                        .output()
                        .map_err(|e| format!("cannot run smtp-source: {e} (postfix package)"))?;
                    if !out.status.success() {
                        return Err(format!(
                            "smtp-source to u{k} failed ({}): {}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr).trim()
                        ));
                    }
                }
                Ok(())
            })
        })
        .collect();
    let mut first = Ok(());
    for t in threads {
        let r = t
            .join()
            .unwrap_or_else(|_| Err("worker thread panicked".into()));
        if first.is_ok() {
            first = r;
        }
    }
    first
}

pub(crate) fn run(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let dir = ctx.row_dir("lmtp")?;

    // Dovecot: LMTP + its own auth (userdb) in one instance, as it is deployed.
    let dc_dir = dir.join("dovecot");
    mkdir(&dc_dir)?;
    let dc_home = dc_dir.join("home");
    let dc_users = dc_dir.join("users");
    write(&dc_users, &passwd(ctx, &dc_home)?)?;
    let dovecot = Dovecot::start(
        &dc_dir,
        &format!(
            "protocols = lmtp\nmail_location = maildir:~/Maildir\nmail_fsync = always\n\
             passdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n",
            u = dc_users.display()
        ),
        &["lmtp"],
    )?;

    // pochta: pochta-authd (userdb) + pochta-mda-lmtp.
    let pd_dir = dir.join("pochta");
    mkdir(&pd_dir)?;
    ctx.give(&pd_dir)?;
    let pd_home = pd_dir.join("home");
    let pd_users = pd_dir.join("users");
    write(&pd_users, &passwd(ctx, &pd_home)?)?;
    let (client, userdb) = (pd_dir.join("auth-client"), pd_dir.join("auth-userdb"));
    let authd_cfg = pd_dir.join("authd.toml");
    write(
        &authd_cfg,
        &format!(
            "[server]\nuser = \"{}\"\n\n\
             [[listener]]\nservice = \"auth-client\"\naddress = \"{}\"\nmode = \"0660\"\n\n\
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
        std::slice::from_ref(&userdb),
    )?;
    let lmtp_sock = pd_dir.join("lmtp");
    let mda_cfg = pd_dir.join("mda-lmtp.toml");
    write(
        &mda_cfg,
        &format!(
            "[server]\nuser = \"{}\"\n\n\
             [[listener]]\nservice = \"lmtp\"\naddress = \"{}\"\nmode = \"0666\"\n\n\
             [userdb]\nsocket = \"{}\"\n\n[delivery]\nmail_location = \"%h/Maildir\"\n",
            ctx.user,
            lmtp_sock.display(),
            userdb.display()
        ),
    )?;
    let mut mda = Daemon::start(
        &ctx.bin("mda-lmtp"),
        &mda_cfg,
        &pd_dir,
        std::slice::from_ref(&lmtp_sock),
    )?;

    if ctx.fault == Some(Fault::DeadPeer) {
        println!(
            "  fault injected: stopping Dovecot (pid {}) before the first round",
            dovecot.master
        );
        dovecot.stop();
    }

    let messages = ctx.scaled(10_000).div_ceil(USERS) * USERS;
    let (authd_pid, mda_pid) = (authd.pid(), mda.pid());
    let mut sides = [
        Side {
            label: "Dovecot".into(),
            roots: vec![dovecot.master],
            check: Box::new(|| dovecot.check()),
        },
        Side {
            label: "pochta".into(),
            roots: vec![mda_pid, authd_pid],
            check: Box::new(|| {
                authd.check()?;
                mda.check()
            }),
        },
    ];
    let targets: [(String, PathBuf); 2] = [
        (
            format!("unix:{}", dovecot.socket("lmtp").display()),
            dc_home,
        ),
        (format!("unix:{}", lmtp_sock.display()), pd_home),
    ];
    let name = "LMTP delivery, 100 users, 4 KiB";
    let results = run_rounds(name, ctx.rounds, &mut sides, |s, warmup| {
        let n = if warmup { messages / 5 } else { messages };
        let (target, home) = &targets[s];
        let before = count(home);
        let t0 = Instant::now();
        load(target, n / USERS)?;
        let elapsed = t0.elapsed();
        if ctx.fault == Some(Fault::LoseMail) {
            lose_one(home)?;
        }
        let got = count(home) - before;
        if got != n {
            return Err(format!(
                "LOST MAIL: sent {n} messages, {got} files appeared in the Maildirs: not a result"
            ));
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
            "smtp-source -L -s 1 -m {} -l {SIZE}, {WORKERS} parallel workers over {USERS} users \
             ({messages} messages a round), one message per LMTP session; files counted after",
            messages / USERS
        ),
        unit: "msg/s",
        per: "1,000 msgs",
        peer: "Dovecot LMTP".into(),
        sides: results,
    }])
}
