//! pochta-server: the runtime every pochta daemon runs on.
//!
//! Purpose: config loading (TOML, `deny_unknown_fields`, `file:line:col` errors), listeners (TCP,
//! UNIX sockets with owner/group/mode, systemd socket activation), TLS (rustls, TLS ≥ 1.2,
//! reloaded on SIGHUP), privilege drop after bind, sd_notify
//! (READY/RELOADING/STOPPING/STATUS/WATCHDOG), graceful shutdown with a drain time, connection
//! limits per listener and per IP, idle timeouts and a tracing span per session.
//!
//! Trust: the config file is trusted (it comes from the admin); everything a client sends is not —
//! this crate only moves bytes and bounds how many it buffers, the protocol crates parse them.
//! Runs as root only until the listeners are bound and the TLS key is read, then as the configured
//! user.
//!
//! Dependencies beyond the usual (tokio, rustls, nix, serde, toml, tracing): `sd-notify` (the
//! notify datagram protocol), `sd-listen-fds` (takes passed fds as `OwnedFd` so this crate needs no
//! `unsafe`), `socket2` (IPV6_V6ONLY and a listen backlog before handing the socket to tokio),
//! `tokio-util` (CancellationToken, TaskTracker for the drain), `clap` (the common command line).
//!
//! Specs: sd_notify(3), sd_listen_fds(3), systemd.service(5) Type=notify-reload.

#![forbid(unsafe_code)]

pub mod config;
mod conn;
mod limits;
pub mod listen;
mod logging;
pub mod net;
pub mod notify;
pub mod privilege;
mod runtime;
mod tls;

pub use config::{
    ByteSize, DaemonConfig, Duration, ListenAddress, ListenerConfig, ServerSection, ServiceKind,
    TlsMode, TlsSection,
};
pub use conn::{Connection, Fill, Peer};
pub use runtime::{daemon_main, exit, load_config, ServiceOf, Session, SessionId, Sessions};
pub use tls::{TlsConfig, TlsInfo};
