//! Starting and stopping the servers under test: a private Dovecot (`dovecot -c FILE` with its
//! own base_dir, state_dir and log) and pochta daemons (`pochta-X -c FILE`), each in its own
//! directory. A server that does not come up is an error with its log attached.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::alive;

/// Waits until every path exists and, for sockets, accepts a connection.
fn wait_for_sockets(
    paths: &[PathBuf],
    limit: Duration,
    log: &dyn Fn() -> String,
) -> Result<(), String> {
    let t0 = Instant::now();
    for p in paths {
        loop {
            if std::os::unix::net::UnixStream::connect(p).is_ok() {
                break;
            }
            if t0.elapsed() > limit {
                return Err(format!(
                    "{} did not appear within {limit:?}\n{}",
                    p.display(),
                    log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    format!(
        "--- last lines of {}:\n{}",
        path.display(),
        lines[from..].join("\n")
    )
}

/// A private Dovecot instance.
pub(crate) struct Dovecot {
    pub(crate) base: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) master: i32,
}

impl Dovecot {
    /// Writes `dir/dovecot.conf` (common settings + `body`) and starts Dovecot; waits for
    /// the named sockets under base_dir.
    pub(crate) fn start(dir: &Path, body: &str, sockets: &[&str]) -> Result<Self, String> {
        let base = dir.join("run");
        let state = dir.join("state");
        std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
        let log = dir.join("dovecot.log");
        let conf = format!(
            "base_dir = {}\nstate_dir = {}\ninstance_name = pochta-bench-{}-{}\nlog_path = {}\n\
             ssl = no\n{body}",
            base.display(),
            state.display(),
            std::process::id(),
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
            log.display()
        );
        let conf_path = dir.join("dovecot.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("{}: {e}", conf_path.display()))?;
        let err_path = dir.join("dovecot.stderr");
        let err = std::fs::File::create(&err_path).map_err(|e| format!("{e}"))?;
        // Dovecot daemonizes; its children would keep a pipe open, so output goes to a file.
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .map_err(|e| {
                format!("cannot run dovecot: {e} (is the dovecot-core package installed?)")
            })?;
        let show = || format!("{}\n{}", tail(&err_path), tail(&log));
        if !status.success() {
            return Err(format!("dovecot did not start ({status})\n{}", show()));
        }
        let t0 = Instant::now();
        let master = loop {
            let pid = std::fs::read_to_string(base.join("master.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            match pid {
                Some(pid) => break pid,
                None if t0.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                None => return Err(format!("dovecot wrote no master.pid\n{}", show())),
            }
        };
        // From here on, dropping `d` stops this Dovecot.
        let d = Dovecot {
            base,
            log: log.clone(),
            master,
        };
        let paths: Vec<PathBuf> = sockets.iter().map(|s| d.base.join(s)).collect();
        wait_for_sockets(&paths, Duration::from_secs(10), &show)?;
        Ok(d)
    }

    pub(crate) fn socket(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if alive(self.master) {
            Ok(())
        } else {
            Err(format!(
                "Dovecot (master pid {}) is not running\n{}",
                self.master,
                tail(&self.log)
            ))
        }
    }
}

impl Dovecot {
    /// Stops Dovecot (SIGTERM to the master) and waits until the master is gone.
    pub(crate) fn stop(&self) {
        let pid = nix::unistd::Pid::from_raw(self.master);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while alive(self.master) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A pochta daemon started by the harness.
pub(crate) struct Daemon {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Daemon {
    /// Starts `bin -c config` with stdout/stderr in `dir/NAME.log` and waits for `sockets`.
    pub(crate) fn start(
        bin: &Path,
        config: &Path,
        dir: &Path,
        sockets: &[PathBuf],
    ) -> Result<Self, String> {
        let name = bin
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("daemon")
            .to_owned();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{e}"))?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut d = Daemon { name, child, log };
        let pid = d.pid();
        let log_path = d.log.clone();
        let show = move || {
            let state = if alive(pid) { "running" } else { "exited" };
            format!("(process {state})\n{}", tail(&log_path))
        };
        if let Err(e) = wait_for_sockets(sockets, Duration::from_secs(10), &show) {
            let _ = d.child.kill();
            return Err(format!("{} did not start: {e}", d.name));
        }
        Ok(d)
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }

    pub(crate) fn check(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => Err(format!("{} exited ({st})\n{}", self.name, tail(&self.log))),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
