//! What every row gets: where the binaries are, a work directory, rounds, load scale, faults.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A deliberate fault, to show that the harness fails loudly instead of reporting a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Stop the peer right after it started.
    DeadPeer,
    /// lmtp: remove one delivered file before the count, as if a delivery had been lost.
    LoseMail,
}

pub(crate) struct Ctx {
    pub(crate) bin_dir: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) rounds: usize,
    /// Multiplies every load size (1.0 = the documented loads).
    pub(crate) scale: f64,
    pub(crate) fault: Option<Fault>,
    /// The unprivileged user the servers' mail and daemons run as.
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) user: String,
}

impl Ctx {
    pub(crate) fn bin(&self, daemon: &str) -> PathBuf {
        self.bin_dir.join(format!("pochta-{daemon}"))
    }

    pub(crate) fn scaled(&self, n: usize) -> usize {
        ((n as f64 * self.scale).round() as usize).max(1)
    }

    /// A fresh directory for one row, readable by the servers' user.
    pub(crate) fn row_dir(&self, row: &str) -> Result<PathBuf, String> {
        let d = self.work.join(row);
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        mkdir(&d)?;
        Ok(d)
    }

    pub(crate) fn give(&self, p: &Path) -> Result<(), String> {
        nix::unistd::chown(
            p,
            Some(nix::unistd::Uid::from_raw(self.uid)),
            Some(nix::unistd::Gid::from_raw(self.gid)),
        )
        .map_err(|e| format!("chown {}: {e}", p.display()))
    }
}

pub(crate) fn mkdir(d: &Path) -> Result<(), String> {
    std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))
}

pub(crate) fn write(p: &Path, text: &str) -> Result<(), String> {
    std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Runs a command and returns its trimmed stdout; a failure is an error with its stderr.
pub(crate) fn output(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
