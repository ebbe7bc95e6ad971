//! The conditions a BENCHMARKS.md states: machine, disk and its fsync latency, versions.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::Instant;

use pochta_loadgen::stats::median;

use crate::ctx::output;

pub(crate) struct Machine {
    pub(crate) cores: String,
    pub(crate) ram: String,
    pub(crate) disk: String,
    pub(crate) fsync: String,
    pub(crate) postfix: String,
    pub(crate) dovecot: String,
    pub(crate) pochta: String,
    pub(crate) rustc: String,
    pub(crate) date: String,
}

fn meminfo_gib() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<f64>().ok())
                })
        })
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "?".into())
}

/// Median latency of (a) write 4 KiB + fsync and (b) a durable commit: create + write +
/// fsync + rename + fsync of the directory, 200 times each, in `dir`.
fn fsync_latency(dir: &Path) -> Result<String, String> {
    let d = dir.join("fsync-probe");
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let block = [b'x'; 4096];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let e = |e: std::io::Error| format!("fsync probe: {e}");
    for i in 0..200 {
        let tmp = d.join(format!("t{i}"));
        let t0 = Instant::now();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(e)?;
        f.write_all(&block).map_err(e)?;
        f.sync_all().map_err(e)?;
        let t1 = Instant::now();
        std::fs::rename(&tmp, d.join(format!("n{i}"))).map_err(e)?;
        std::fs::File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(e)?;
        a.push((t1 - t0).as_secs_f64() * 1000.0);
        b.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = std::fs::remove_dir_all(&d);
    Ok(format!(
        "write 4 KiB + fsync {:.2} ms; create + fsync + rename + directory fsync {:.2} ms \
         (medians of 200, same directory tree as the mail)",
        median(&a),
        median(&b)
    ))
}

pub(crate) fn probe(work: &Path, repo: &Path) -> Result<Machine, String> {
    let repo_s = repo.display().to_string();
    let rev = output("git", &["-C", &repo_s, "rev-parse", "--short", "HEAD"])?;
    let dirty = output(
        "git",
        &[
            "-C",
            &repo_s,
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .map(|s| !s.is_empty())
    .unwrap_or(false);
    let disk = output(
        "findmnt",
        &[
            "-n",
            "-o",
            "SOURCE,FSTYPE,OPTIONS",
            "-T",
            &work.display().to_string(),
        ],
    )
    .unwrap_or_else(|_| "?".into());
    Ok(Machine {
        cores: format!(
            "{} ({})",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu_model()
        ),
        ram: meminfo_gib(),
        disk: format!("{disk} (work dir {})", work.display()),
        fsync: fsync_latency(work)?,
        postfix: output("postconf", &["-h", "-d", "mail_version"])?,
        dovecot: output("dovecot", &["--version"])?,
        pochta: format!(
            "{rev}{}",
            if dirty {
                " (work tree had uncommitted changes)"
            } else {
                ""
            }
        ),
        rustc: output("rustc", &["--version"]).unwrap_or_else(|_| "?".into()),
        date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])?,
    })
}
