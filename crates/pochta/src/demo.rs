//! `pochta demo`: the whole suite on loopback with generated config, certificate and users.
//!
//! Writes everything under DIR (configs in DIR/etc, sockets in DIR/run, mail in DIR/mail, queues
//! in DIR/spool, logs in DIR/log, certificate in DIR/tls), starts each `pochta-*` daemon found
//! next to this binary as its own process (own process group, own NOTIFY_SOCKET), waits until each
//! one said READY=1, prints the endpoints, and stops them all on Ctrl-C/SIGTERM. Fixed ports
//! (design.md §4). A config file in DIR/etc without the first line the demo writes is the user's:
//! the demo runs it as it is and never overwrites it.

use crate::demo_configs::{self, DemoEnv};
use std::future::Future;
use std::io::{Read, Seek};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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

/// The demo directory (created and made absolute), the password and the user to drop to.
fn demo_env(args: &DemoArgs) -> Result<DemoEnv, Failure> {
    let existed = args.dir.exists();
    std::fs::create_dir_all(&args.dir).map_err(io_fail(&args.dir))?;
    let dir = args.dir.canonicalize().map_err(io_fail(&args.dir))?;
    if !existed {
        set_mode(&dir, 0o755)?;
    }
    let run_as = if nix::unistd::Uid::effective().is_root() {
        let user = "nobody";
        let nobody = match nix::unistd::User::from_name(user) {
            Ok(Some(u)) => u,
            _ => return fail(exit::OSERR, "running as root, but there is no user nobody"),
        };
        reachable_by(&dir, &nobody)?;
        Some(user.to_owned())
    } else {
        None
    };
    let (password, password_generated) = match &args.password {
        Some(p) => (p.clone(), false),
        None => (random_password()?, true),
    };
    Ok(DemoEnv {
        dir,
        password,
        password_generated,
        run_as,
    })
}

/// One demo per DIR: a second one would take over the first one's sockets. Held until exit.
fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, Failure> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_fail(&path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).or_else(|_| {
        fail(
            exit::TEMPFAIL,
            format!("another pochta demo is running in {}", dir.display()),
        )
    })
}

/// Which daemons start (binary present, and a demo config or the user's own), and why the others
/// do not.
fn plan(env: &DemoEnv, bin_dir: &Path) -> (Vec<Planned>, Vec<(&'static str, String)>) {
    let mut planned = Vec::new();
    let mut missing = Vec::new();
    for name in DAEMONS {
        let bin = bin_dir.join(format!("pochta-{name}"));
        let config = env.dir.join("etc").join(format!("{name}.toml"));
        if !bin.is_file() {
            missing.push((name, format!("not built (no {})", bin.display())));
            continue;
        }
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

/// True when `config` exists and does not start with the line the demo writes.
fn is_users_own(config: &Path) -> bool {
    match std::fs::read_to_string(config) {
        Ok(text) => text.lines().next() != Some(GENERATED),
        Err(_) => false,
    }
}

/// A password a user can type into any client.
fn check_password(pw: &str) -> Result<(), String> {
    if pw.is_empty() {
        return Err("--password must not be empty".into());
    }
    if pw.chars().any(char::is_control) {
        return Err("--password must not contain control characters".into());
    }
    Ok(())
}

fn random_password() -> Result<String, Failure> {
    // Letters and digits only, no look-alikes, so the password survives any shell and client.
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    // Bytes at or above this would make some letters likelier than others.
    let fair = 256 - 256 % ALPHABET.len();
    let mut urandom = std::fs::File::open("/dev/urandom")
        .or_else(|e| fail(exit::OSERR, format!("/dev/urandom: {e}")))?;
    let mut out = String::new();
    let mut buf = [0u8; 32];
    while out.len() < 16 {
        urandom
            .read_exact(&mut buf)
            .or_else(|e| fail(exit::OSERR, format!("/dev/urandom: {e}")))?;
        for b in buf.iter().map(|b| usize::from(*b)).filter(|b| *b < fair) {
            if out.len() < 16 {
                out.push(char::from(ALPHABET[b % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// As root, the daemons must reach DIR after dropping to `user`: every directory on the way needs
/// search permission for it.
fn reachable_by(dir: &Path, user: &nix::unistd::User) -> Result<(), Failure> {
    for d in dir.ancestors() {
        let m = std::fs::metadata(d).map_err(io_fail(d))?;
        let bit = if m.uid() == user.uid.as_raw() {
            0o100
        } else if m.gid() == user.gid.as_raw() {
            0o010
        } else {
            0o001
        };
        if m.mode() & bit == 0 {
            return fail(
                exit::CANTCREAT,
                format!(
                    "started as root, the daemons drop to user {} after binding, but {} \
                     (mode {:o}) does not let it reach {}: use --dir with a directory it can \
                     reach (e.g. --dir /var/tmp/pochta-demo), or run the demo as a normal user",
                    user.name,
                    d.display(),
                    m.mode() & 0o7777,
                    dir.display()
                ),
            );
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Failure> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_fail(path))
}

/// Creates DIR's subdirectories, the certificate and the users file, and, as root, gives the
/// user the daemons drop to what they write or re-read.
fn prepare(env: &DemoEnv) -> Result<(), Failure> {
    let dir = &env.dir;
    for sub in [
        "etc",
        "run",
        "mail",
        "mail/pochta.test",
        "spool",
        "log",
        "tls",
    ] {
        let p = dir.join(sub);
        if !p.is_dir() {
            std::fs::create_dir_all(&p).map_err(io_fail(&p))?;
            set_mode(&p, if sub == "tls" { 0o700 } else { 0o755 })?;
        }
    }
    for daemon in DAEMONS {
        let p = env.spool().join(daemon);
        if !p.is_dir() {
            std::fs::create_dir(&p).map_err(io_fail(&p))?;
            set_mode(&p, 0o755)?;
        }
    }
    let cert = dir.join("tls/cert.pem");
    let key = dir.join("tls/key.pem");
    if !cert.exists() || !key.exists() {
        let names = ["localhost", "pochta.test", "mail.pochta.test", "127.0.0.1"];
        let ck = rcgen::generate_simple_self_signed(names.map(str::to_owned).to_vec())
            .or_else(|e| fail(exit::SOFTWARE, format!("cannot make a certificate: {e}")))?;
        std::fs::write(&key, ck.key_pair.serialize_pem()).map_err(io_fail(&key))?;
        set_mode(&key, 0o600)?;
        std::fs::write(&cert, ck.cert.pem()).map_err(io_fail(&cert))?;
    }
    write_users(env)?;

    if let Some(user) = &env.run_as {
        let u = match nix::unistd::User::from_name(user) {
            Ok(Some(u)) => u,
            _ => return fail(exit::OSERR, format!("no user {user}")),
        };
        for p in ["run", "mail", "spool", "tls", "etc/users"] {
            chown_tree(&dir.join(p), u.uid.as_raw(), u.gid.as_raw())?;
        }
    }
    Ok(())
}

/// DIR/etc/users in Dovecot's passwd-file format: `user:{SCHEME}password:uid:gid:gecos:home:
/// shell:extra`, hashed as `doveadm pw -s SHA512-CRYPT` does. Empty uid/gid/home: the daemons'
/// own config supplies them.
fn write_users(env: &DemoEnv) -> Result<(), Failure> {
    let users = env.users_file();
    let mut text = String::from("# pochta demo users (Dovecot passwd-file format)\n");
    for user in ["alice", "bob"] {
        let email = format!("{user}@{}", demo_configs::DOMAIN);
        let hash = pochta_password::generate(
            pochta_password::Scheme::Sha512Crypt,
            env.password.as_bytes(),
            &email,
            None,
        )
        .or_else(|e| fail(exit::SOFTWARE, format!("cannot hash the password: {e}")))?;
        text.push_str(&format!("{email}:{hash}::::::\n"));
    }
    let tmp = users.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&tmp)
        .map_err(io_fail(&tmp))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io_fail(&tmp))?;
    std::fs::rename(&tmp, &users).map_err(io_fail(&users))
}

/// chown -R without following symlinks.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), Failure> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_fail(path))?;
    let meta = std::fs::symlink_metadata(path).map_err(io_fail(path))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io_fail(path))? {
            chown_tree(&entry.map_err(io_fail(path))?.path(), uid, gid)?;
        }
    }
    Ok(())
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
    let names: Vec<&str> = running.iter().map(|r| r.name).collect();
    if let Some(example) = demo_configs::example(&names, env) {
        println!("try:   {example}");
    }
    println!("logs:  {}/log/<daemon>.log", env.dir.display());
    println!("Ctrl-C stops everything.");
}

/// SIGTERM and SIGINT, taken over before anything starts.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> Result<Self, Failure> {
        let take =
            |kind| signal(kind).or_else(|e| fail(exit::OSERR, format!("signal handler: {e}")));
        Ok(Signals {
            term: take(SignalKind::terminate())?,
            int: take(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
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
    fn passwords_that_would_break_the_users_file_are_refused() {
        assert!(check_password("s3cret pass:x").is_ok());
        assert!(check_password("").is_err());
        assert!(check_password("a\nb").is_err());
    }

    #[test]
    fn random_passwords_are_long_and_plain() {
        let a = random_password().ok().unwrap();
        let b = random_password().ok().unwrap();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn users_file_is_a_passwd_file() {
        let dir = std::env::temp_dir().join(format!("pochta-demo-unit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        let env = DemoEnv {
            dir: dir.clone(),
            password: "pw".into(),
            password_generated: false,
            run_as: None,
        };
        write_users(&env).unwrap_or_else(|Failure(_, m)| panic!("{m}"));
        let text = std::fs::read_to_string(dir.join("etc/users")).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines.len(), 2, "{text}");
        for (line, user) in lines.iter().zip(["alice", "bob"]) {
            let fields: Vec<&str> = line.split(':').collect();
            assert_eq!(fields.len(), 8, "{line}");
            assert_eq!(fields[0], format!("{user}@pochta.test"));
            assert!(fields[1].starts_with("{SHA512-CRYPT}$6$"), "{line}");
            let stored = pochta_password::StoredPassword::parse(
                fields[1],
                pochta_password::Scheme::Plain,
                false,
            )
            .unwrap();
            assert!(stored.verify(b"pw", fields[0]).unwrap());
            assert!(fields[2..].iter().all(|f| f.is_empty()), "{line}");
        }
        let mode = std::fs::metadata(dir.join("etc/users")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o640);
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
}
