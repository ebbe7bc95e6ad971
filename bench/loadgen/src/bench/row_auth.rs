//! Row `auth`: AUTH PLAIN per second against pochta-authd and Dovecot's auth service, one
//! measurement for {PLAIN} users and one for {SHA512-CRYPT} users (doveadm pw hashes, default
//! 5,000 rounds). Both read the same kind of passwd-file; both run with their defaults (Dovecot:
//! no auth cache, passwd-file verified in its one auth process; pochta-authd: hashing on its
//! blocking pool).

use std::time::Duration;

use pochta_loadgen::auth;

use crate::ctx::{mkdir, output, write, Ctx, Fault};
use crate::measure::{run_rounds, LoadResult, Measurement, Side};
use crate::peers::{Daemon, Dovecot};

const USERS: usize = 100;
const CONNECTIONS: usize = 16;

pub(crate) fn run(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let dir = ctx.row_dir("auth")?;
    let (plain, crypt, passwd) = users(ctx, &dir)?;

    let dc_dir = dir.join("dovecot");
    mkdir(&dc_dir)?;
    let dc_users = dc_dir.join("users");
    write(&dc_users, &passwd)?;
    let dovecot = Dovecot::start(
        &dc_dir,
        &format!(
            "protocols = none\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\n\
             passdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {u}\n}}\n\
             service auth {{\n  unix_listener auth-client {{\n    mode = 0666\n  }}\n}}\n",
            u = dc_users.display()
        ),
        &["auth-client"],
    )?;

    let pd_dir = dir.join("pochta");
    mkdir(&pd_dir)?;
    let pd_users = pd_dir.join("users");
    write(&pd_users, &passwd)?;
    let (client, userdb) = (pd_dir.join("auth-client"), pd_dir.join("auth-userdb"));
    let cfg = pd_dir.join("authd.toml");
    write(
        &cfg,
        &format!(
            "[server]\nuser = \"{}\"\n\n\
             [[listener]]\nservice = \"auth-client\"\naddress = \"{}\"\nmode = \"0666\"\n\n\
             [[listener]]\nservice = \"auth-userdb\"\naddress = \"{}\"\nmode = \"0660\"\n\n\
             [passdb]\npath = \"{}\"\n",
            ctx.user,
            client.display(),
            userdb.display(),
            pd_users.display()
        ),
    )?;
    ctx.give(&pd_dir)?;
    let mut authd = Daemon::start(
        &ctx.bin("authd"),
        &cfg,
        &pd_dir,
        std::slice::from_ref(&client),
    )?;

    if ctx.fault == Some(Fault::DeadPeer) {
        println!(
            "  fault injected: stopping Dovecot (pid {}) before the first round",
            dovecot.master
        );
        dovecot.stop();
    }

    let dc_client = dovecot.socket("auth-client");
    let mut out = Vec::new();
    for (name, users, requests) in [
        ("auth PLAIN, {PLAIN} users", &plain, ctx.scaled(50_000)),
        (
            "auth PLAIN, {SHA512-CRYPT} users",
            &crypt,
            ctx.scaled(2_000),
        ),
    ] {
        let authd_pid = authd.pid();
        let mut sides = [
            Side {
                label: "Dovecot".into(),
                roots: vec![dovecot.master],
                check: Box::new(|| dovecot.check()),
            },
            Side {
                label: "pochta".into(),
                roots: vec![authd_pid],
                check: Box::new(|| authd.check()),
            },
        ];
        let sockets = [dc_client.clone(), client.clone()];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio: {e}"))?;
        let results = run_rounds(name, ctx.rounds, &mut sides, |s, warmup| {
            let n = if warmup {
                (requests / 5).max(1)
            } else {
                requests
            };
            let o = rt.block_on(auth::run(auth::Options {
                socket: sockets[s].clone(),
                users: users.clone(),
                connections: CONNECTIONS,
                requests: n,
                timeout: Duration::from_secs(30),
            }))?;
            if o.ok != n {
                return Err(format!(
                    "{} of {n} authentications succeeded ({} failed): not a result",
                    o.ok, o.failed
                ));
            }
            Ok(LoadResult {
                units: o.ok,
                elapsed: o.elapsed,
                p99_ms: Some(o.latencies.percentile_ms(99.0)),
            })
        })?;
        out.push(Measurement {
            name: name.into(),
            load: format!(
                "pochta-loadgen auth: {CONNECTIONS} connections, one request in flight each, \
                 {requests} AUTH PLAIN (nologin, like Postfix smtpd) round-robin over {USERS} users"
            ),
            unit: "auth/s",
            per: "1,000 auths",
            peer: "Dovecot auth".into(),
            sides: results,
        });
    }
    Ok(out)
}

/// 100 {PLAIN} users p1..p100 and 100 {SHA512-CRYPT} users c1..c100 in one passwd-file.
type Users = Vec<(String, String)>;
fn users(ctx: &Ctx, dir: &std::path::Path) -> Result<(Users, Users, String), String> {
    let (mut plain, mut crypt, mut passwd) = (Vec::new(), Vec::new(), String::new());
    let home = dir.join("home");
    for k in 1..=USERS {
        let (u, pw) = (format!("p{k}@bench.test"), format!("plain-pw-{k}"));
        passwd.push_str(&format!(
            "{u}:{{PLAIN}}{pw}:{}:{}::{}/p{k}::\n",
            ctx.uid,
            ctx.gid,
            home.display()
        ));
        plain.push((u, pw));
    }
    for k in 1..=USERS {
        let (u, pw) = (format!("c{k}@bench.test"), format!("crypt-pw-{k}"));
        let hash = output("doveadm", &["-O", "pw", "-s", "SHA512-CRYPT", "-p", &pw])?;
        passwd.push_str(&format!(
            "{u}:{hash}:{}:{}::{}/c{k}::\n",
            ctx.uid,
            ctx.gid,
            home.display()
        ));
        crypt.push((u, pw));
    }
    Ok((plain, crypt, passwd))
}
