//! pochta-bench: the side-by-side benchmark harness behind `bench/run` (see bench/README.md).
//!
//! For each row it starts pochta's daemon(s) and the peer (Postfix/Dovecot) with private config
//! dirs under the work directory (UNIX sockets and loopback only), applies the same load to both
//! in alternating A/B rounds after a discarded warm-up, and prints per measurement the peer
//! median, pochta median, ratio, range, server CPU seconds per 1,000 units and peak RSS. With
//! --out it writes the report (BENCHMARKS.md). Runs as root (Dovecot and the daemons switch to
//! an unprivileged user). A peer that does not start or dies, a run that delivered fewer messages
//! than it sent or a failed authentication ends it with a message and exit status 1.

mod ctx;
mod machine;
mod measure;
mod peers;
mod pochta_mta;
mod postfix;
mod procs;
mod row_auth;
mod row_e2e;
mod row_imap;
mod row_lmtp;
mod row_outbound;
mod row_pop3;
mod row_smtp;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::ctx::{Ctx, Fault};
use crate::measure::{table, Measurement};

/// Rows in report order: name, daemons it needs, what it measures.
const ROWS: &[(&str, &[&str], &str)] = &[
    (
        "auth",
        &["authd"],
        "AUTH PLAIN/s, {PLAIN} and {SHA512-CRYPT} users",
    ),
    (
        "lmtp",
        &["mda-lmtp", "authd"],
        "LMTP delivery msg/s, 100 users, 4 KiB",
    ),
    (
        "smtp",
        &["mta", "authd"],
        "SMTP acceptance (smtp-source -s 20 -m 20000 -l 4096)",
    ),
    (
        "e2e",
        &["mta", "mda-lmtp", "authd"],
        "SMTP -> queue -> LMTP -> Maildir",
    ),
    ("pop3", &["pop3d", "authd"], "POP3 RETR throughput"),
    (
        "outbound",
        &["mta"],
        "remote delivery from the queue to smtp-sink, 20 connections",
    ),
    (
        "imap",
        &["imapd", "authd"],
        "IMAP large mailbox, mixed load, idle RSS",
    ),
];

#[derive(Parser)]
#[command(
    name = "pochta-bench",
    about = "pochta side by side with Postfix and Dovecot"
)]
struct Cli {
    /// Rows to run (default: all): auth lmtp smtp e2e pop3 outbound imap.
    rows: Vec<String>,
    /// Where the pochta-* release binaries are.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Work directory for the servers' configs, sockets and mail (on the disk being measured).
    #[arg(long, default_value = "/var/tmp/pochta-bench")]
    work: PathBuf,
    /// The repository (for the git revision).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Measured rounds per side (after one discarded warm-up round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Multiplies every load size.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Write the report here (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The command line to print in the report.
    #[arg(long, default_value = "bench/run")]
    command: String,
    /// Inject a fault to see the harness fail: dead-peer (the peer is stopped before the
    /// first round), lose-mail (lmtp: one delivered file is removed before counting).
    #[arg(long)]
    fault: Option<String>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\npochta-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("run as root: Dovecot and the daemons switch to an unprivileged user".into());
    }
    if cli.rounds < 3 {
        return Err("--rounds must be at least 3".into());
    }
    for r in &cli.rows {
        if !ROWS.iter().any(|(n, _, _)| n == r) {
            return Err(format!(
                "unknown row {r:?}; rows: auth lmtp smtp e2e pop3 outbound imap"
            ));
        }
    }
    let fault = match cli.fault.as_deref() {
        None => None,
        Some("dead-peer") => Some(Fault::DeadPeer),
        Some("lose-mail") => Some(Fault::LoseMail),
        Some(f) => return Err(format!("unknown fault {f:?} (dead-peer, lose-mail)")),
    };
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .ok_or("no user `nobody`")?;
    ctx::mkdir(&cli.work)?;
    let ctx = Ctx {
        bin_dir: cli.bin_dir.clone(),
        work: cli.work.clone(),
        rounds: cli.rounds,
        scale: cli.scale,
        fault,
        uid: nobody.uid.as_raw(),
        gid: nobody.gid.as_raw(),
        user: nobody.name.clone(),
    };
    let machine = machine::probe(&cli.work, &cli.repo)?;
    println!(
        "pochta-bench: {} cores, {} RAM; {}",
        machine.cores, machine.ram, machine.fsync
    );
    println!(
        "pochta-bench: Postfix {}, Dovecot {}, pochta {}",
        machine.postfix, machine.dovecot, machine.pochta
    );

    let mut results: Vec<Measurement> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for (row, needs, what) in ROWS {
        if !cli.rows.is_empty() && !cli.rows.iter().any(|r| r == row) {
            continue;
        }
        let missing: Vec<&str> = needs
            .iter()
            .copied()
            .filter(|d| !ctx.bin(d).exists())
            .collect();
        if let Some(d) = missing.first() {
            let msg = format!("{row}: skipped: pochta-{d} not built ({what})");
            println!("{msg}");
            notes.push(msg);
            // Cheap and useful: the peer's figure on this machine, with lost-mail check.
            match *row {
                "smtp" => notes.push(row_smtp::peer_only(&ctx)?),
                "e2e" => notes.push(row_e2e::peer_only(&ctx)?),
                _ => {}
            }
            continue;
        }
        println!("{row}: {what}");
        let ms = match *row {
            "auth" => row_auth::run(&ctx)?,
            "lmtp" => row_lmtp::run(&ctx)?,
            "pop3" => row_pop3::run(&ctx)?,
            "smtp" => row_smtp::run(&ctx)?,
            "e2e" => row_e2e::run(&ctx)?,
            "imap" => row_imap::run(&ctx)?,
            "outbound" => row_outbound::run(&ctx)?,
            _ => {
                let msg = format!(
                    "{row}: skipped: pochta-{} is built but the harness has no {row} row yet",
                    needs[0]
                );
                println!("{msg}");
                notes.push(msg);
                continue;
            }
        };
        println!("\n{}", table(&ms));
        results.extend(ms);
    }
    if results.is_empty() && !notes.iter().any(|n| n.contains("peer only")) {
        return Err("no row ran".into());
    }
    if !results.is_empty() {
        println!("\n{}", table(&results));
    }
    if let Some(out) = &cli.out {
        let text = report(&cli, &machine, &results, &notes);
        std::fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))?;
        println!("pochta-bench: wrote {}", out.display());
    }
    Ok(())
}

fn report(cli: &Cli, m: &machine::Machine, results: &[Measurement], notes: &[String]) -> String {
    let mut s = format!(
        "# Benchmarks: pochta side by side with Postfix and Dovecot\n\n\
         Written by the harness (bench/, see bench/README.md); do not edit by hand.\n\n\
         - Command: `{}` ({} measured rounds per side after one discarded warm-up round at 1/5 \
         of the load; the side that goes first alternates every round; load scale {})\n\
         - Date: {}\n\
         - Machine: {} cores, {} RAM; disk: {}\n\
         - fsync latency: {}\n\
         - Versions: Postfix {}, Dovecot {}, pochta git {} (release profile: \
         `cargo build --release`), {}\n\n",
        cli.command,
        cli.rounds,
        cli.scale,
        m.date,
        m.cores,
        m.ram,
        m.disk,
        m.fsync,
        m.postfix,
        m.dovecot,
        m.pochta,
        m.rustc,
    );
    s.push_str(
        "## Conditions\n\n\
         - The load generator, the harness and the servers share the machine's 2 cores; other \
         work on the machine (builds) can add noise, which the range column shows.\n\
         - Both sides run with their defaults, each in a private config dir with its own sockets \
         under the work dir, on the same disk; nothing is tuned on one side only.\n\
         - fsync policy: Dovecot `mail_fsync = always` (file fsync before the reply); \
         pochta-mda-lmtp fsyncs the file and the directory before 250 (always, not \
         configurable). Postfix: defaults (its queue files are fsynced) where Postfix is used.\n\
         - auth: Dovecot with defaults: no auth cache (`auth_cache_size = 0`), passwd-file \
         passdb verified in its single auth process; pochta-authd with defaults (one-hash \
         schemes such as {PLAIN} checked on the connection task, crypt-family hashing on its \
         blocking pool, so on 2 cores at most 2 hashes run at once). Same passwd-file content \
         on both sides. pochta-mta (smtp, e2e rows) fsyncs each queue file and the queue \
         directory before 250.\n\
         - Server CPU: utime+stime of the server's processes (with reaped children) from /proc, \
         before and after each run; Dovecot counts all its processes (master, auth, lmtp, log, \
         config, anvil), pochta all its daemons in the row (mda-lmtp + authd for lmtp). Peak PSS: \
         the highest sum of Pss (/proc/PID/smaps_rollup) over those processes, sampled every \
         50 ms (a sum of RSS would count Dovecot's shared pages once per process); max VmHWM: \
         the largest peak RSS of any one of them.\n\
         - Ratio = pochta median / peer median (above 1: pochta is faster).\n\n\
         ## Results\n\n",
    );
    s.push_str(&table(results));
    s.push_str("\nLoads:\n\n");
    for r in results {
        s.push_str(&format!("- {}: {}\n", r.name, r.load));
    }
    s.push_str("\nPer-round figures (units/s):\n\n");
    for r in results {
        let f = |i: usize| {
            r.sides[i]
                .rounds
                .iter()
                .map(|x| format!("{:.0}", x.rate))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            "- {}: {} {}; pochta {}\n",
            r.name,
            r.peer,
            f(0),
            f(1)
        ));
    }
    if !notes.is_empty() {
        s.push_str("\n## Not measured\n\n");
        for n in notes {
            s.push_str(&format!("- {n}\n"));
        }
        s.push_str(
            "\nA peer-only line has no ratio: it is the Postfix/Dovecot figure on this machine, \
             measured the way the row will measure both sides once the pochta daemon exists.\n",
        );
    }
    s
}
