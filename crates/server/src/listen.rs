//! Binding listeners: TCP (IPv4/IPv6), UNIX sockets with owner/group/mode, or sockets passed by
//! systemd socket activation (`LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES`, sd_listen_fds(3)).
//!
//! Everything here is synchronous and runs before the async runtime and before the privilege drop:
//! binding port 25 or creating a socket in /run needs root.

use crate::config::{ListenAddress, ListenerConfig, ServiceKind};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chown, Group, User};
use socket2::{Domain, Socket, Type};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A bound, listening socket (not yet registered with the async runtime).
#[derive(Debug)]
pub(crate) enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// A listener and the config it came from.
#[derive(Debug)]
pub struct BoundListener<S> {
    pub config: ListenerConfig<S>,
    pub(crate) socket: StdListener,
    /// A UNIX socket file we created ourselves (removed at exit); never one systemd passed.
    pub(crate) unlink_on_exit: Option<PathBuf>,
}

impl<S> BoundListener<S> {
    /// The address actually bound (the port is resolved when the config said `:0`).
    pub fn local_addr(&self) -> String {
        match &self.socket {
            StdListener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            StdListener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_default(),
        }
    }
}

/// Sockets handed over by systemd, by name. Taken once, before any thread exists.
#[derive(Debug, Default)]
pub struct SystemdSockets {
    fds: Vec<(String, OwnedFd)>,
}

impl SystemdSockets {
    /// Takes the passed file descriptors and removes the three variables from the environment so
    /// that nothing we start inherits them. Must run while the process is single-threaded.
    pub fn take() -> Result<Self, String> {
        let passed = sd_listen_fds::get().map_err(|e| format!("LISTEN_FDS: {e}"))?;
        for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(var);
        }
        let mut fds = Vec::with_capacity(passed.len());
        for (name, fd) in passed {
            let fd: OwnedFd = fd.into_std();
            nix::fcntl::fcntl(
                fd.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(|e| format!("passed fd {}: cannot set FD_CLOEXEC: {e}", fd.as_raw_fd()))?;
            // systemd's default name when FileDescriptorName= is unset.
            fds.push((name.unwrap_or_else(|| "unknown".to_owned()), fd));
        }
        Ok(SystemdSockets { fds })
    }

    /// The passed socket for a listener: among those named like it, the one bound to the
    /// listener's address (UNIX path, or TCP port), else the first of that name. Two listeners
    /// of one service (say two `lmtp` sockets) thus each get their own socket even when the
    /// .socket units leave FileDescriptorName= at the same value.
    fn take_for<S: ServiceKind>(&mut self, cfg: &ListenerConfig<S>) -> Option<OwnedFd> {
        let name = cfg.fd_name();
        let named: Vec<usize> = (0..self.fds.len())
            .filter(|&i| self.fds[i].0 == name)
            .collect();
        let i = named
            .iter()
            .copied()
            .find(|&i| bound_to(&self.fds[i].1, &cfg.address))
            .or_else(|| named.first().copied())?;
        Some(self.fds.remove(i).1)
    }

    /// Names of passed sockets that no listener claimed.
    pub fn unclaimed(&self) -> Vec<String> {
        self.fds.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// Binds every configured listener, taking systemd's socket of the same name when there is one.
pub fn bind_all<S: ServiceKind>(
    configs: &[ListenerConfig<S>],
    systemd: &mut SystemdSockets,
) -> Result<Vec<BoundListener<S>>, String> {
    let mut out = Vec::with_capacity(configs.len());
    for cfg in configs {
        let bound = match systemd.take_for(cfg) {
            Some(fd) => adopt(cfg, fd)?,
            None => bind(cfg)?,
        };
        out.push(bound);
    }
    Ok(out)
}

/// Whether a passed socket is bound to `want` (same UNIX path, or same TCP port).
fn bound_to(fd: &OwnedFd, want: &ListenAddress) -> bool {
    let Ok(local) = socket2::SockRef::from(fd).local_addr() else {
        return false;
    };
    match want {
        ListenAddress::Tcp(want) => local
            .as_socket()
            .is_some_and(|got| got.port() == want.port()),
        ListenAddress::Unix(want) => local.as_pathname().is_some_and(|got| got == want.as_path()),
    }
}

/// Uses a socket systemd passed, after checking it is the kind of socket the config describes.
fn adopt<S: ServiceKind>(cfg: &ListenerConfig<S>, fd: OwnedFd) -> Result<BoundListener<S>, String> {
    let name = cfg.fd_name();
    let sock = Socket::from(fd);
    let ty = sock
        .r#type()
        .map_err(|e| format!("systemd socket {name:?}: {e}"))?;
    if ty != Type::STREAM {
        return Err(format!("systemd socket {name:?} is not a stream socket"));
    }
    let local = sock
        .local_addr()
        .map_err(|e| format!("systemd socket {name:?}: {e}"))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("systemd socket {name:?}: {e}"))?;
    let socket = match (&cfg.address, local.as_socket()) {
        (ListenAddress::Tcp(want), Some(got)) => {
            if want.port() != got.port() {
                tracing::warn!(fd_name = name, config = %want, passed = %got,
                    "systemd socket address differs from the config; using the passed socket");
            }
            StdListener::Tcp(sock.into())
        }
        (ListenAddress::Unix(want), None) if local.is_unix() => {
            if local.as_pathname() != Some(want.as_path()) {
                tracing::warn!(fd_name = name, config = %want.display(),
                    passed = ?local.as_pathname(),
                    "systemd socket path differs from the config; using the passed socket");
            }
            StdListener::Unix(sock.into())
        }
        (want, _) => {
            return Err(format!(
                "systemd socket {name:?} is not of the kind configured ({want}); \
                 check the .socket unit"
            ))
        }
    };
    Ok(BoundListener {
        config: cfg.clone(),
        socket,
        unlink_on_exit: None,
    })
}

fn bind<S: ServiceKind>(cfg: &ListenerConfig<S>) -> Result<BoundListener<S>, String> {
    match &cfg.address {
        ListenAddress::Tcp(addr) => {
            let err = |e: std::io::Error| format!("cannot listen on {addr}: {e}");
            let sock = Socket::new(Domain::for_address(*addr), Type::STREAM, None).map_err(err)?;
            sock.set_reuse_address(true).map_err(err)?;
            if addr.is_ipv6() {
                // "[::]:25" means IPv6 only; list "0.0.0.0:25" too for IPv4 (as Dovecot does).
                sock.set_only_v6(true).map_err(err)?;
            }
            sock.set_nonblocking(true).map_err(err)?;
            sock.bind(&(*addr).into()).map_err(err)?;
            sock.listen(1024).map_err(err)?;
            Ok(BoundListener {
                config: cfg.clone(),
                socket: StdListener::Tcp(sock.into()),
                unlink_on_exit: None,
            })
        }
        ListenAddress::Unix(path) => {
            let listener = bind_unix(path, cfg)?;
            Ok(BoundListener {
                config: cfg.clone(),
                socket: StdListener::Unix(listener),
                unlink_on_exit: Some(path.clone()),
            })
        }
    }
}

fn bind_unix<S>(
    path: &Path,
    cfg: &ListenerConfig<S>,
) -> Result<std::os::unix::net::UnixListener, String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A live socket means another daemon serves it: never steal it.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "{shown}: another process is listening on this socket"
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("{shown}: cannot remove stale socket: {e}"))?;
        }
        Ok(_) => return Err(format!("{shown}: exists and is not a socket")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    let mode = cfg.mode.map_or(0o660, |m| m.0);
    // The socket file is created with the umask applied: no window where it is wider than `mode`.
    // Safe to change here: we are still single-threaded.
    let old = umask(Mode::from_bits_truncate(0o777 & !mode));
    let bound = std::os::unix::net::UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(|e| format!("cannot listen on {shown}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{shown}: {e}"))?;
    let uid = match &cfg.owner {
        Some(name) => Some(lookup_user(name)?.uid),
        None => None,
    };
    let gid = match &cfg.group {
        Some(name) => Some(lookup_group(name)?),
        None => None,
    };
    if uid.is_some() || gid.is_some() {
        chown(path, uid, gid).map_err(|e| format!("{shown}: cannot chown: {e}"))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{shown}: cannot chmod: {e}"))?;
    Ok(listener)
}

pub(crate) fn lookup_user(name: &str) -> Result<User, String> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(format!("user {name:?} does not exist")),
        Err(e) => Err(format!("cannot look up user {name:?}: {e}")),
    }
}

pub(crate) fn lookup_group(name: &str) -> Result<nix::unistd::Gid, String> {
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(format!("group {name:?} does not exist")),
        Err(e) => Err(format!("cannot look up group {name:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Clone, Debug, serde::Deserialize)]
    struct Lmtp;

    impl ServiceKind for Lmtp {
        fn name(&self) -> &'static str {
            "lmtp"
        }
        fn default_idle_timeout(&self) -> std::time::Duration {
            std::time::Duration::from_secs(60)
        }
    }

    fn listener(path: &Path) -> ListenerConfig<Lmtp> {
        ListenerConfig {
            service: Lmtp,
            address: ListenAddress::Unix(path.to_path_buf()),
            fd_name: None,
            tls: Default::default(),
            max_connections: 1,
            max_connections_per_ip: 1,
            idle_timeout: None,
            owner: None,
            group: None,
            mode: None,
        }
    }

    #[test]
    fn passed_sockets_of_one_name_go_to_the_listener_of_their_path() {
        let dir = std::env::temp_dir().join(format!("pochta-listen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, c) = (dir.join("a.sock"), dir.join("b.sock"), dir.join("c.sock"));
        let fd = |p: &Path| OwnedFd::from(std::os::unix::net::UnixListener::bind(p).unwrap());
        // systemd passes b before a, both named "lmtp" (FileDescriptorName= left unset alike)
        let mut passed = SystemdSockets {
            fds: vec![("lmtp".into(), fd(&b)), ("lmtp".into(), fd(&a))],
        };
        let path_of = |fd: &OwnedFd| {
            let addr = socket2::SockRef::from(fd).local_addr().unwrap();
            addr.as_pathname().unwrap().to_path_buf()
        };
        assert_eq!(path_of(&passed.take_for(&listener(&a)).unwrap()), a);
        // no passed socket has c's path: the remaining one of the name is used (with a warning)
        assert_eq!(path_of(&passed.take_for(&listener(&c)).unwrap()), b);
        assert!(passed.take_for(&listener(&a)).is_none());
        assert!(passed.unclaimed().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
