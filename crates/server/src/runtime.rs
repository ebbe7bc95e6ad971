//! The daemon skeleton every pochta daemon runs (Postfix's `single_server_main`): parse the command
//! line, load and check the config, bind (or take systemd's sockets), load TLS, drop privileges,
//! then accept under connection limits with a tracing span per session; SIGHUP reloads, SIGTERM and
//! SIGINT drain.

use crate::config::{self, DaemonConfig, ListenerConfig, ServiceKind, TlsMode};
use crate::conn::{Connection, Peer};
use crate::limits::{ConnLimits, Slot};
use crate::listen::{bind_all, BoundListener, StdListener, SystemdSockets};
use crate::tls::TlsConfig;
use crate::{logging, notify, privilege};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// sysexits(3) codes used at the process edge.
pub mod exit {
    pub const SOFTWARE: u8 = 70;
    pub const OSERR: u8 = 71;
    pub const CONFIG: u8 = 78;
}

/// The daemon's service kind for a given session handler.
pub type ServiceOf<H> = <<H as Sessions>::Config as DaemonConfig>::Service;

/// What a daemon supplies: how to serve one session, and its protocol's refusals.
pub trait Sessions: Send + Sync + Sized + 'static {
    type Config: DaemonConfig;

    /// Serves one session to its end. The connection's [`Connection::fill`] reports
    /// [`crate::Fill::Shutdown`] when the drain time is over; the session then sends its
    /// protocol's goodbye (421 / `* BYE` / `-ERR`) and returns.
    fn serve(
        self: Arc<Self>,
        conn: Connection,
        session: Session<ServiceOf<Self>>,
    ) -> impl Future<Output = ()> + Send;

    /// Written to a client refused because a connection limit is reached, before closing
    /// (e.g. `421 4.7.0 Too many connections\r\n`). Empty = just close.
    fn busy_reply(&self, service: &ServiceOf<Self>) -> &'static [u8];

    /// Applies a re-read config after SIGHUP (certificates are already swapped). Listener changes
    /// need a restart.
    fn reload(&self, _config: Arc<Self::Config>) -> Result<(), String> {
        Ok(())
    }
}

/// Facts about one session, for the session driver.
#[derive(Clone, Debug)]
pub struct Session<S> {
    pub id: SessionId,
    pub service: S,
    pub peer: Peer,
    /// The listener's address as configured (for logs and Received headers).
    pub listener: Arc<str>,
    pub tls_mode: TlsMode,
}

/// A short unique session id, shown on every log line of the session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(pub String);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

static SESSION_COUNTER: AtomicU64 = AtomicU64::new(1);

impl SessionId {
    fn next(prefix: u32) -> Self {
        let n = SESSION_COUNTER.fetch_add(1, Ordering::Relaxed);
        SessionId(format!("{prefix:06x}{n:06x}"))
    }
}

/// A random-enough prefix so that ids of restarted processes do not repeat.
fn id_prefix() -> u32 {
    let mut b = [0u8; 3];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = (t.subsec_nanos() ^ std::process::id()).to_le_bytes()[..3]
            .try_into()
            .unwrap_or_default();
    }
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

struct Args {
    config: PathBuf,
    check_config: bool,
}

fn parse_args(name: &str, about: &'static str) -> Args {
    let default = format!("/etc/pochta/{name}.toml");
    let m = clap::Command::new(format!("pochta-{name}"))
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .arg(
            clap::Arg::new("config")
                .short('c')
                .long("config")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help(format!("configuration file [default: {default}]")),
        )
        .arg(
            clap::Arg::new("check-config")
                .long("check-config")
                .action(clap::ArgAction::SetTrue)
                .help("check the configuration and exit (0 = valid, 78 = invalid)"),
        )
        .get_matches();
    Args {
        config: m
            .get_one::<PathBuf>("config")
            .cloned()
            .unwrap_or_else(|| default.into()),
        check_config: m.get_flag("check-config"),
    }
}

/// Loads and checks a daemon config: syntax, types, unknown keys, then cross-key rules.
pub fn load_config<C: DaemonConfig>(path: &Path) -> Result<C, String> {
    let cfg: C = config::load(path).map_err(|e| e.to_string())?;
    config::validate_common(&cfg)
        .and_then(|()| cfg.validate())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(cfg)
}

/// Runs a daemon to completion. `start` runs after the privilege drop, inside the async runtime,
/// and builds the session handler (it may connect to other daemons' sockets).
pub fn daemon_main<H, F, Fut>(name: &'static str, about: &'static str, start: F) -> ExitCode
where
    H: Sessions,
    F: FnOnce(Arc<H::Config>) -> Fut,
    Fut: Future<Output = Result<Arc<H>, String>>,
{
    let args = parse_args(name, about);
    let cfg: H::Config = match load_config(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pochta-{name}: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let tls = match cfg.tls().map(TlsConfig::load).transpose() {
        Ok(t) => t.map(Arc::new),
        Err(e) => {
            eprintln!("pochta-{name}: {}: {e}", args.config.display());
            return ExitCode::from(exit::CONFIG);
        }
    };
    if args.check_config {
        return ExitCode::SUCCESS;
    }
    logging::init(&cfg.server().log_level);

    let mut systemd = match SystemdSockets::take() {
        Ok(s) => s,
        Err(e) => return fatal(name, exit::OSERR, &e),
    };
    let listeners = match bind_all(cfg.listeners(), &mut systemd) {
        Ok(l) => l,
        Err(e) => return fatal(name, exit::OSERR, &e),
    };
    for unclaimed in systemd.unclaimed() {
        tracing::warn!(
            fd_name = %unclaimed,
            "systemd passed a socket no listener is configured for; closing it"
        );
    }
    drop(systemd);
    let identity = match privilege::drop_privileges(cfg.server()) {
        Ok(id) => id,
        Err(e) => return fatal(name, exit::OSERR, &e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return fatal(
                name,
                exit::OSERR,
                &format!("cannot start the async runtime: {e}"),
            )
        }
    };
    let cfg = Arc::new(cfg);
    let result = runtime.block_on(async move {
        let handler = start(Arc::clone(&cfg)).await?;
        tracing::info!(
            uid = identity.uid,
            gid = identity.gid,
            "pochta-{name} starting"
        );
        serve(name, &args.config, cfg, listeners, tls, handler).await
    });
    // Sessions that ignored the goodbye are not waited for any longer.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fatal(name, exit::SOFTWARE, &e),
    }
}

fn fatal(name: &str, code: u8, msg: &str) -> ExitCode {
    tracing::error!("{msg}");
    eprintln!("pochta-{name}: {msg}");
    ExitCode::from(code)
}

/// Shared by the accept loop of one listener.
struct ListenerState<H: Sessions> {
    config: ListenerConfig<ServiceOf<H>>,
    shown: Arc<str>,
    limits: ConnLimits,
    tls: Option<Arc<TlsConfig>>,
    handler: Arc<H>,
    /// Cancelled when the drain time is over: sessions say goodbye.
    sessions_stop: CancellationToken,
    tracker: TaskTracker,
    id_prefix: u32,
}

async fn serve<H: Sessions>(
    name: &str,
    config_path: &Path,
    mut cfg: Arc<H::Config>,
    listeners: Vec<BoundListener<ServiceOf<H>>>,
    tls: Option<Arc<TlsConfig>>,
    handler: Arc<H>,
) -> Result<(), String> {
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;

    let stop_accepting = CancellationToken::new();
    let sessions_stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let prefix = id_prefix();
    let mut accept_loops = Vec::new();
    let mut unlink = Vec::new();
    for bound in listeners {
        let shown: Arc<str> = Arc::from(bound.config.address.to_string());
        unlink.extend(bound.unlink_on_exit.clone());
        let state = Arc::new(ListenerState::<H> {
            limits: ConnLimits::new(
                bound.config.max_connections,
                bound.config.max_connections_per_ip,
            ),
            tls: if bound.config.tls == TlsMode::None {
                None
            } else {
                tls.clone()
            },
            config: bound.config,
            shown,
            handler: Arc::clone(&handler),
            sessions_stop: sessions_stop.clone(),
            tracker: tracker.clone(),
            id_prefix: prefix,
        });
        tracing::info!(listener = %state.shown, service = state.config.service.name(),
            tls = ?state.config.tls, "listening");
        accept_loops.push(tokio::spawn(accept_loop(
            state,
            bound.socket,
            stop_accepting.clone(),
        )));
    }

    let watchdog = notify::watchdog_interval().map(|every| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notify::watchdog();
            }
        })
    });
    notify::ready(&format!("pochta-{name} ready"));

    loop {
        tokio::select! {
            _ = hup.recv() => {
                notify::reloading();
                let status = match reload::<H>(config_path, &cfg, tls.as_deref(), &handler) {
                    Ok(new) => {
                        cfg = new;
                        tracing::info!("configuration reloaded");
                        format!("pochta-{name} ready (reloaded)")
                    }
                    Err(e) => {
                        tracing::error!("reload failed, keeping the running configuration: {e}");
                        format!("pochta-{name} ready (reload failed: {e})")
                    }
                };
                notify::ready(&status);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }

    let open = tracker.len();
    tracing::info!(
        sessions = open,
        "stopping: no new connections, draining sessions"
    );
    notify::stopping(&format!("pochta-{name} stopping, {open} sessions open"));
    stop_accepting.cancel();
    for l in accept_loops {
        let _ = l.await;
    }
    tracker.close();
    let drain = cfg.server().drain_timeout.get();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::info!(sessions = tracker.len(), "drain time over: ending sessions");
        sessions_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = tracker.len(),
                "sessions did not end after goodbye; cutting them off"
            );
        }
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    for path in unlink {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    Ok(())
}

fn reload<H: Sessions>(
    path: &Path,
    old: &Arc<H::Config>,
    tls: Option<&TlsConfig>,
    handler: &H,
) -> Result<Arc<H::Config>, String> {
    let new: H::Config = load_config(path)?;
    let addrs = |c: &H::Config| {
        c.listeners()
            .iter()
            .map(|l| l.address.to_string())
            .collect::<Vec<_>>()
    };
    if addrs(&new) != addrs(old) {
        tracing::warn!("listener changes take effect only after a restart");
    }
    match (tls, new.tls()) {
        (Some(t), Some(section)) => t.reload(section)?,
        (None, Some(_)) => tracing::warn!("[tls] added: takes effect only after a restart"),
        (Some(_), None) => tracing::warn!("[tls] removed: takes effect only after a restart"),
        (None, None) => {}
    }
    let new = Arc::new(new);
    handler.reload(Arc::clone(&new))?;
    Ok(new)
}

async fn accept_loop<H: Sessions>(
    state: Arc<ListenerState<H>>,
    socket: StdListener,
    stop: CancellationToken,
) {
    enum L {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }
    let listener = match socket {
        StdListener::Tcp(s) => tokio::net::TcpListener::from_std(s).map(L::Tcp),
        StdListener::Unix(s) => tokio::net::UnixListener::from_std(s).map(L::Unix),
    };
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listener = %state.shown, error = %e, "cannot register listener");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = async {
                match &listener {
                    L::Tcp(l) => l.accept().await.map(|(s, a)| Connection::tcp(s, a)),
                    L::Unix(l) => l.accept().await.map(|(s, _)| Connection::unix(s)),
                }
            } => r,
        };
        match accepted {
            Ok(conn) => start_session(&state, conn),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(listener = %state.shown, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn start_session<H: Sessions>(state: &Arc<ListenerState<H>>, mut conn: Connection) {
    let peer = conn.peer().clone();
    let slot = match state.limits.acquire(peer.ip()) {
        Ok(slot) => slot,
        Err(which) => {
            tracing::warn!(
                listener = %state.shown, %peer, limit = which,
                "connection refused: too many connections"
            );
            let reply = state.handler.busy_reply(&state.config.service);
            let tls = state
                .tls
                .clone()
                .filter(|_| state.config.tls == TlsMode::Implicit);
            conn.configure(Duration::from_secs(10), CancellationToken::new(), None);
            state.tracker.spawn(async move {
                if let Some(tls) = tls {
                    if conn.handshake(&tls).await.is_err() {
                        return;
                    }
                }
                if !reply.is_empty() {
                    let _ = conn.write_all(reply).await;
                }
                conn.close().await;
            });
            return;
        }
    };
    let id = SessionId::next(state.id_prefix);
    let span = tracing::info_span!("session", id = %id, listener = %state.shown, peer = %peer);
    let session = Session {
        id,
        service: state.config.service.clone(),
        peer,
        listener: Arc::clone(&state.shown),
        tls_mode: state.config.tls,
    };
    conn.configure(
        state.config.idle_timeout(),
        state.sessions_stop.child_token(),
        state.tls.clone(),
    );
    let implicit = state.config.tls == TlsMode::Implicit;
    let handler = Arc::clone(&state.handler);
    state.tracker.spawn(
        async move {
            let _slot: Slot = slot;
            tracing::info!("connect");
            if implicit {
                let Some(tls) = conn_tls(&conn) else { return };
                if let Err(e) = conn.handshake(&tls).await {
                    tracing::info!(error = %e, "TLS handshake failed");
                    return;
                }
            }
            handler.serve(conn, session).await;
            tracing::info!("disconnect");
        }
        .instrument(span),
    );
}

fn conn_tls(conn: &Connection) -> Option<Arc<TlsConfig>> {
    conn.tls_config()
}
