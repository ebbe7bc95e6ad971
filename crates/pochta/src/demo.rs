//! `pochta demo`: the whole suite on loopback with generated config, certificate and users.
//!
//! Writes everything under DIR (configs in DIR/etc, sockets in DIR/run, mail in DIR/mail, queues
//! in DIR/spool, logs in DIR/log, certificate in DIR/tls), starts each `pochta-*` daemon found
//! next to this binary as its own process (own process group, own NOTIFY_SOCKET), waits until each
//! one said READY=1, prints the endpoints, and stops them all on Ctrl-C/SIGTERM. Fixed ports
//! (docs/architecture.md#the-demo). A config file in DIR/etc without the first line the demo
//! writes is the user's: the demo runs it as it is and never overwrites it.

mod setup;

use crate::demo_configs::{self, DemoEnv};
use setup::{check_password, demo_env, lock_dir, prepare, set_mode};
use std::future::Future;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::task::Poll;
use std::time::Duration;
use tokio::net::UnixDatagram;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The daemons in start order: those others depend on first.
pub(crate) const DAEMONS: [&str; 5] = ["authd", "mda-lmtp", "mta", "pop3d", "imapd"];

/// First line of every config the demo writes; a file without it is the user's and is kept.
const GENERATED: &str = "# Written by `pochta demo`, rewritten on every start. \
                         Delete this line to keep your edits.";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longer than the demo configs' drain time (5s), so daemons end their sessions themselves.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// sysexits(3) codes at the process edge.
mod exit {
    pub(super) const UNAVAILABLE: u8 = 69;
    pub(super) const SOFTWARE: u8 = 70;
    pub(super) const OSERR: u8 = 71;
    pub(super) const CANTCREAT: u8 = 73;
    pub(super) const TEMPFAIL: u8 = 75;
    pub(super) const CONFIG: u8 = 78;
    pub(super) const USAGE: u8 = 64;
}

pub(crate) struct DemoArgs {
    pub(crate) dir: PathBuf,
    pub(crate) password: Option<String>,
}

/// Why the demo stopped with an error: the message and the exit code.
struct Failure(u8, String);

fn fail<T>(code: u8, msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(code, msg.into()))
}

/// `path: error` as a `CANTCREAT` failure, for file system errors.
fn io_fail(path: &Path) -> impl FnOnce(std::io::Error) -> Failure + '_ {
    move |e| Failure(exit::CANTCREAT, format!("{}: {e}", path.display()))
}

/// A daemon that will be started: its binary and the config file it runs with.
struct Planned {
    name: &'static str,
    bin: PathBuf,
    config: PathBuf,
    /// The text to write, or `None` when the file is the user's.
    generated: Option<String>,
}

struct Running {
    name: &'static str,
    child: Child,
    config: PathBuf,
    /// Reads (and drops) the daemon's later notify datagrams (RELOADING, STOPPING, …) until
    /// the daemon is stopped, so it never writes to a vanished socket.
    notify: tokio::task::JoinHandle<()>,
    notify_path: PathBuf,
}

pub(crate) fn run(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pochta demo: cannot start the async runtime: {e}");
            return ExitCode::from(exit::OSERR);
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            eprintln!("pochta demo: {msg}");
            ExitCode::from(code)
        }
    }
}

async fn demo(args: DemoArgs) -> Result<(), Failure> {
    if let Some(pw) = &args.password {
        check_password(pw).or_else(|e| fail(exit::USAGE, e))?;
    }
    let me = std::env::current_exe()
        .or_else(|e| fail(exit::OSERR, format!("cannot locate my own binary: {e}")))?;
    let bin_dir = me.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut signals = Signals::new()?;
    let env = demo_env(&args)?;
    let _lock = lock_dir(&env.dir)?;

    let (planned, missing) = plan(&env, &bin_dir);
    for (name, why) in &missing {
        println!("not starting pochta-{name}: {why}");
    }
    if planned.is_empty() {
        return fail(
            exit::UNAVAILABLE,
            format!(
                "no daemon can start: none of pochta-{} is built next to {} with a demo config \
                 (`cargo build --release` builds them next to target/release/pochta)",
                DAEMONS.join(", pochta-"),
                bin_dir.display()
            ),
        );
    }

    let env = std::sync::Arc::new(env);
    // Hashing the demo password is CPU work: off the async thread.
    let prep = std::sync::Arc::clone(&env);
    tokio::task::spawn_blocking(move || prepare(&prep))
        .await
        .or_else(|e| {
            fail(
                exit::SOFTWARE,
                format!("preparing {}: {e}", env.dir.display()),
            )
        })??;
    for p in &planned {
        if let Some(text) = &p.generated {
            std::fs::write(&p.config, format!("{GENERATED}\n{text}"))
                .map_err(io_fail(&p.config))?;
        }
    }
    for p in &planned {
        check_config(p).await?;
    }

    let mut running: Vec<Running> = Vec::new();
    for p in &planned {
        let started = tokio::select! {
            r = start(&env, p) => r,
            () = signals.recv() => fail(exit::SOFTWARE, "interrupted while starting"),
        };
        match started {
            Ok(r) => running.push(r),
            Err(e) => {
                stop_all(&mut running).await;
                return Err(e);
            }
        }
    }

    print_summary(&env, &running, &missing);
    let result = supervise(&env, &mut running, &mut signals).await;
    stop_all(&mut running).await;
    result
}

/// Which daemons start (binary present, and a demo config or the user's own), and why the others
/// do not.
fn plan(env: &DemoEnv, bin_dir: &Path) -> (Vec<Planned>, Vec<(&'static str, String)>) {
    let mut planned = Vec::new();
    let mut missing = Vec::new();
    for name in DAEMONS {
        let Some(bin) = daemon_bin(bin_dir, name) else {
            let bin = bin_dir.join(format!("pochta-{name}"));
            missing.push((name, format!("not built (no {})", bin.display())));
            continue;
        };
        let config = env.dir.join("etc").join(format!("{name}.toml"));
        let generated = if is_users_own(&config) {
            None
        } else if let Some(text) = demo_configs::config(name, env) {
            Some(text)
        } else {
            missing.push((
                name,
                format!(
                    "the demo has no config for it yet (write {})",
                    config.display()
                ),
            ));
            continue;
        };
        planned.push(Planned {
            name,
            bin,
            config,
            generated,
        });
    }
    (planned, missing)
}

/// The daemon's binary: next to `pochta` (a cargo build), else in the sibling `sbin` of a `bin`
/// directory (the packages install pochta in /usr/bin and the daemons in /usr/sbin).
fn daemon_bin(bin_dir: &Path, name: &str) -> Option<PathBuf> {
    let file = format!("pochta-{name}");
    let mut candidates = vec![bin_dir.join(&file)];
    if bin_dir.file_name().is_some_and(|n| n == "bin") {
        if let Some(parent) = bin_dir.parent() {
            candidates.push(parent.join("sbin").join(&file));
        }
    }
    candidates.into_iter().find(|c| c.is_file())
}

/// True when `config` exists and does not start with the line the demo writes.
fn is_users_own(config: &Path) -> bool {
    match std::fs::read_to_string(config) {
        Ok(text) => text.lines().next() != Some(GENERATED),
        Err(_) => false,
    }
}

/// Runs `pochta-<name> --check-config` on the config: its own error if it rejects it.
async fn check_config(p: &Planned) -> Result<(), Failure> {
    let out = Command::new(&p.bin)
        .arg("--check-config")
        .arg("-c")
        .arg(&p.config)
        .stdin(Stdio::null())
        .output()
        .await
        .or_else(|e| fail(exit::OSERR, format!("cannot run {}: {e}", p.bin.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let whose = if p.generated.is_some() {
        "the demo's config"
    } else {
        "your config"
    };
    fail(
        exit::CONFIG,
        format!(
            "pochta-{} rejects {whose} {} ({}):\n{}",
            p.name,
            p.config.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ),
    )
}

/// Starts one daemon and waits for its READY=1; its own error if it dies first.
async fn start(env: &DemoEnv, p: &Planned) -> Result<Running, Failure> {
    let notify_path = env.socket(&format!("notify-{}", p.name));
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).map_err(io_fail(&notify_path))?;
    // The daemon has dropped privileges by the time it reports.
    set_mode(&notify_path, 0o666)?;
    let log = env.dir.join("log").join(format!("{}.log", p.name));
    let mut log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io_fail(&log))?;
    let log_start = log_file.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
    let log_err = log_file.try_clone().map_err(io_fail(&log))?;
    let mut child = Command::new(&p.bin)
        .arg("-c")
        .arg(&p.config)
        .env("NOTIFY_SOCKET", &notify_path)
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        // Its own process group: Ctrl-C reaches only the demo, which then stops the daemons in
        // order.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .or_else(|e| {
            fail(
                exit::OSERR,
                format!("cannot start {}: {e}", p.bin.display()),
            )
        })?;

    let mut buf = vec![0u8; 4096];
    let ready = async {
        loop {
            let n = notify.recv(&mut buf).await?;
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let name = p.name;
    let outcome = tokio::select! {
        r = tokio::time::timeout(READY_TIMEOUT, ready) => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => fail(exit::OSERR, format!("{}: {e}", notify_path.display())),
            Err(_) => fail(exit::SOFTWARE, format!(
                "pochta-{name} did not say READY=1 within {READY_TIMEOUT:?}; its log:\n{}",
                log_since(&log, log_start)
            )),
        },
        status = child.wait() => fail(exit::SOFTWARE, format!(
            "pochta-{name} failed to start ({}); its log ({}):\n{}",
            status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            log.display(),
            log_since(&log, log_start)
        )),
    };
    match outcome {
        Ok(()) => Ok(Running {
            name,
            child,
            config: p.config.clone(),
            notify: tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while notify.recv(&mut buf).await.is_ok() {}
            }),
            notify_path,
        }),
        Err(e) => {
            let _ = child.kill().await;
            let _ = std::fs::remove_file(&notify_path);
            Err(e)
        }
    }
}

/// What the daemon logged since `offset`, at most the last 30 lines.
fn log_since(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.seek(std::io::SeekFrom::Start(offset));
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    if tail.is_empty() {
        "(nothing)".to_owned()
    } else {
        tail
    }
}

/// `(service, address, tls)` of every `[[listener]]` in a config file.
fn listeners(config: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(config).unwrap_or_default();
    let doc: toml::Table = toml::from_str(&text).unwrap_or_default();
    let field = |t: &toml::Table, k: &str, default: &str| {
        t.get(k)
            .and_then(toml::Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    doc.get("listener")
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(toml::Value::as_table)
                .map(|t| {
                    (
                        field(t, "service", "?"),
                        field(t, "address", "?"),
                        field(t, "tls", "none"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn print_summary(env: &DemoEnv, running: &[Running], missing: &[(&str, String)]) {
    println!();
    println!("pochta demo is running (data in {}):", env.dir.display());
    for r in running {
        for (service, address, tls) in listeners(&r.config) {
            let tls = match tls.as_str() {
                "none" => String::new(),
                other => format!(" ({other} TLS)"),
            };
            println!("  pochta-{:<9} {service:<12} {address}{tls}", r.name);
        }
    }
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|(n, _)| format!("pochta-{n}")).collect();
        println!("  not started: {}", names.join(", "));
    }
    let how = if env.password_generated {
        "generated"
    } else {
        "given"
    };
    println!(
        "users: alice@{d} and bob@{d}, password ({how}): {}",
        env.password,
        d = demo_configs::DOMAIN
    );
    println!(
        "aliases: {} (postmaster, abuse, root -> alice@{})",
        env.aliases_file().display(),
        demo_configs::DOMAIN
    );
    let names: Vec<&str> = running.iter().map(|r| r.name).collect();
    if let Some(example) = demo_configs::example(&names, env) {
        println!("try:   {example}");
    }
    println!("logs:  {}/log/<daemon>.log", env.dir.display());
    println!("Ctrl-C stops everything.");
}

/// SIGTERM, SIGINT and SIGHUP (the terminal went away), taken over before anything starts:
/// the daemons run in their own process group, so only the demo can stop them.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> Result<Self, Failure> {
        let take =
            |kind| signal(kind).or_else(|e| fail(exit::OSERR, format!("signal handler: {e}")));
        Ok(Signals {
            term: take(SignalKind::terminate())?,
            int: take(SignalKind::interrupt())?,
            hup: take(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// Waits for Ctrl-C/SIGTERM (Ok), or for a daemon to die (an error with its log).
async fn supervise(
    env: &DemoEnv,
    running: &mut [Running],
    signals: &mut Signals,
) -> Result<(), Failure> {
    type Exit<'a> = Pin<Box<dyn Future<Output = (&'static str, String)> + 'a>>;
    let mut exits: Vec<Exit<'_>> = running
        .iter_mut()
        .map(|r| {
            let name = r.name;
            Box::pin(async move {
                let status = r.child.wait().await;
                (
                    name,
                    status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                )
            }) as Exit<'_>
        })
        .collect();
    let first_exit = std::future::poll_fn(|cx| {
        for f in exits.iter_mut() {
            if let Poll::Ready(v) = f.as_mut().poll(cx) {
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    });
    tokio::select! {
        () = signals.recv() => Ok(()),
        (name, status) = first_exit => {
            let log = env.dir.join("log").join(format!("{name}.log"));
            fail(exit::SOFTWARE, format!(
                "pochta-{name} exited ({status}); the end of its log ({}):\n{}",
                log.display(),
                log_since(&log, 0)
            ))
        }
    }
}

/// SIGTERM to every daemon (last started first), then SIGKILL to whatever outlives the stop time.
async fn stop_all(running: &mut Vec<Running>) {
    if running.is_empty() {
        return;
    }
    println!("stopping…");
    for r in running.iter().rev() {
        if let Some(pid) = r.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for r in running.iter_mut().rev() {
        match tokio::time::timeout(STOP_TIMEOUT, r.child.wait()).await {
            Ok(Ok(status)) if !status.success() && !killed_by_term(status) => {
                eprintln!("pochta-{} stopped with {status}", r.name);
            }
            Ok(_) => {}
            Err(_) => {
                eprintln!(
                    "pochta-{} did not stop within {STOP_TIMEOUT:?}; killing it",
                    r.name
                );
                let _ = r.child.kill().await;
            }
        }
        r.notify.abort();
        let _ = std::fs::remove_file(&r.notify_path);
    }
    running.clear();
    println!("stopped.");
}

fn killed_by_term(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(nix::sys::signal::Signal::SIGTERM as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_configs_are_recognised_by_the_missing_first_line() {
        let dir = std::env::temp_dir().join(format!("pochta-demo-own-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x.toml");
        assert!(!is_users_own(&f));
        std::fs::write(&f, format!("{GENERATED}\n[server]\n")).unwrap();
        assert!(!is_users_own(&f));
        std::fs::write(&f, "[server]\n").unwrap();
        assert!(is_users_own(&f));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn daemons_next_to_pochta_or_in_the_sibling_sbin() {
        let dir = std::env::temp_dir().join(format!("pochta-demo-bin-{}", std::process::id()));
        let (bin, sbin) = (dir.join("usr/bin"), dir.join("usr/sbin"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&sbin).unwrap();
        assert_eq!(daemon_bin(&bin, "imapd"), None);
        std::fs::write(sbin.join("pochta-imapd"), "").unwrap();
        assert_eq!(daemon_bin(&bin, "imapd"), Some(sbin.join("pochta-imapd")));
        std::fs::write(bin.join("pochta-imapd"), "").unwrap();
        assert_eq!(daemon_bin(&bin, "imapd"), Some(bin.join("pochta-imapd")));
        // Only a directory named bin has a sibling sbin (target/release has none).
        assert_eq!(daemon_bin(&sbin, "authd"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
