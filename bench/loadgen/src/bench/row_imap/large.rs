//! The large-mailbox part of the imap row: one user whose INBOX holds 100,000 messages
//! (scaled), written identically for both sides; each server builds its own index/uidlist in
//! the warm-up round. Per round and side, three fresh sessions each LOGIN, then time
//! SELECT INBOX (EXISTS must be the message count), UID FETCH 1:* (FLAGS) (one FETCH per
//! message), UID SEARCH FROM and UID SEARCH SUBJECT on substrings that match 1% (the counts must
//! be exact), LOGOUT. Figure: messages per second of command time (100,000 / seconds).

use std::time::{Duration, Instant};

use pochta_loadgen::imap::Session;

use super::mail::{expected_matches, FROM_QUERY, SUBJECT_QUERY};
use crate::measure::{Measurement, Round, Side, SideResult};
use crate::procs::{cpu_seconds, MemSampler};

pub(super) const MESSAGES: usize = 100_000;
pub(super) const USER: &str = "big@bench.test";
pub(super) const PASS: &str = "pwbig";
/// Fresh sessions per round and side.
const REPS: usize = 3;

enum Check {
    Exists,
    Fetches,
    Search(usize),
}

struct Op {
    name: String,
    what: &'static str,
    cmd: String,
    check: Check,
}

fn ops(n: usize) -> Vec<Op> {
    let (from, subject) = expected_matches(n);
    let inbox = format!("{n}-message INBOX");
    vec![
        Op {
            name: format!("IMAP SELECT, {inbox}"),
            what: "SELECT",
            cmd: "SELECT INBOX".into(),
            check: Check::Exists,
        },
        Op {
            name: format!("IMAP UID FETCH 1:* (FLAGS), {inbox}"),
            what: "UID FETCH 1:* (FLAGS)",
            cmd: "UID FETCH 1:* (FLAGS)".into(),
            check: Check::Fetches,
        },
        Op {
            name: format!("IMAP UID SEARCH FROM (1% match), {inbox}"),
            what: "UID SEARCH FROM",
            cmd: format!("UID SEARCH FROM \"{FROM_QUERY}\""),
            check: Check::Search(from),
        },
        Op {
            name: format!("IMAP UID SEARCH SUBJECT (1% match), {inbox}"),
            what: "UID SEARCH SUBJECT",
            cmd: format!("UID SEARCH SUBJECT \"{SUBJECT_QUERY}\""),
            check: Check::Search(subject),
        },
    ]
}

/// Runs `op` and checks its answer; a wrong count is an error.
async fn run_op(s: &mut Session, op: &Op, n: usize) -> Result<(), String> {
    let (got, want) = match op.check {
        Check::Exists => (s.select("INBOX").await?, n),
        Check::Fetches => (s.count_untagged(&op.cmd, " FETCH ").await?, n),
        Check::Search(want) => {
            let mut uids = s.search(&op.cmd).await?;
            let got = uids.len();
            uids.sort_unstable();
            uids.dedup();
            if uids.len() != got {
                return Err(format!("{}: duplicate UIDs in the answer", op.cmd));
            }
            (got, want)
        }
    };
    if got != want {
        return Err(format!(
            "{}: {got} results, {want} expected: not a result",
            op.cmd
        ));
    }
    Ok(())
}

pub(super) fn run(
    ctx: &crate::ctx::Ctx,
    rt: &tokio::runtime::Runtime,
    sides: &mut [Side<'_>; 2],
    addrs: &[String; 2],
    n: usize,
) -> Result<Vec<Measurement>, String> {
    let ops = ops(n);
    let mut results: Vec<[SideResult; 2]> = (0..ops.len()).map(|_| Default::default()).collect();
    for r in 0..=ctx.rounds {
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            let side = &mut sides[s];
            (side.check)().map_err(|e| format!("imap large: before round {r}: {e}"))?;
            // The warm-up builds the index (Dovecot) or uidlist (pochta) of 100,000 files.
            let timeout = Duration::from_secs(if r == 0 { 900 } else { 120 });
            let sampler = MemSampler::start(side.roots.clone());
            let mut secs = vec![0.0; ops.len()];
            let mut cpu = vec![0.0; ops.len()];
            for _ in 0..REPS {
                let mut sess = rt.block_on(Session::login(&addrs[s], USER, PASS, timeout))?;
                for (k, op) in ops.iter().enumerate() {
                    let c0 = cpu_seconds(&side.roots);
                    let t0 = Instant::now();
                    let res = rt.block_on(run_op(&mut sess, op, n));
                    let dt = t0.elapsed().as_secs_f64();
                    cpu[k] += cpu_seconds(&side.roots) - c0;
                    res.map_err(|e| format!("imap large: {} round {r}: {e}", side.label))?;
                    secs[k] += dt;
                }
                rt.block_on(sess.logout())?;
            }
            let (peak, hwm) = sampler.finish();
            (side.check)().map_err(|e| format!("imap large: after round {r}: {e}"))?;
            let per_op: Vec<String> = ops
                .iter()
                .zip(&secs)
                .map(|(op, t)| format!("{} {:.3} s", op.what, t / REPS as f64))
                .collect();
            println!(
                "  imap large {} {:<8} {}",
                if r == 0 {
                    "warm-up".to_owned()
                } else {
                    format!("round {r}")
                },
                side.label,
                per_op.join(", ")
            );
            for (k, res) in results.iter_mut().enumerate() {
                res[s].peak_kib = res[s].peak_kib.max(peak);
                res[s].hwm_kib = res[s].hwm_kib.max(hwm);
                if r > 0 {
                    res[s].rounds.push(Round {
                        rate: (REPS * n) as f64 / secs[k].max(1e-9),
                        units: REPS,
                        cpu_s: cpu[k],
                        p99_ms: None,
                    });
                }
            }
        }
    }
    let (from, subject) = expected_matches(n);
    Ok(ops
        .into_iter()
        .zip(results)
        .map(|(op, sides)| {
            let secs = |i: usize| n as f64 / sides[i].median_rate().max(1e-9);
            let matches = match op.check {
                Check::Search(_) => format!(
                    " (FROM \"{FROM_QUERY}\" matches {from}, SUBJECT \"{SUBJECT_QUERY}\" \
                     matches {subject}; the counts are checked)"
                ),
                _ => " (EXISTS and the FETCH count are checked)".into(),
            };
            Measurement {
                load: format!(
                    "one INBOX of {n} messages of 2–4 KiB (Maildir cur/, Dovecot-style names \
                     with S= and W=, 3/4 \\Seen), written identically for both sides; per round \
                     {REPS} fresh sessions each LOGIN, SELECT INBOX, UID FETCH 1:* (FLAGS), UID \
                     SEARCH FROM, UID SEARCH SUBJECT, LOGOUT, each command timed alone{matches}; \
                     figure = messages / seconds of `{}`: median {:.3} s Dovecot, {:.3} s \
                     pochta; the warm-up round builds both sides' indexes; CPU per 1,000 \
                     commands",
                    op.cmd,
                    secs(0),
                    secs(1)
                ),
                name: op.name,
                unit: "msg/s",
                per: "1,000 commands",
                peer: "Dovecot imap".into(),
                sides,
            }
        })
        .collect())
}
