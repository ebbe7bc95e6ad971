//! The mixing guides in docs/ run as written. Each test reads the config blocks of one guide
//! (fenced blocks tagged `file=NAME`), changes only what [`Local`] lists — system paths, listen
//! ports and system users — starts the pochta daemons and the real Postfix or Dovecot with them,
//! sends a message through and reads it back. A guide block the test does not use, or a path
//! the substitutions leave pointing at the real system, fails the test: guide and test cannot
//! drift apart.
//! - [`alone`]: docs/mix-1-pochta-alone.md, the five pochta daemons;
//! - [`postfix`]: docs/mix-2-postfix-front.md, Postfix smtpd + pochta authd, mda-lmtp, imapd, pop3d;
//! - [`dovecot`]: docs/mix-3-mta-with-dovecot.md, pochta-mta on Dovecot's auth and LMTP;
//! - [`maildir`]: docs/mix-4-shared-maildir.md, Dovecot and pochta-imapd/-pop3d on one Maildir.
//!
//! [`peers`] starts the private Postfix and Dovecot, [`client`] holds the python mail clients,
//! [`docs`] checks what needs no daemon (the packaged units' writable paths, config key names).

mod alone;
mod client;
mod docs;
mod dovecot;
mod maildir;
mod peers;
mod postfix;

use client::*;
use docs::assert_unit_allows;
use peers::*;

use crate::config::daemon_bin;
use crate::harness::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The password of every user in the guides' passwd-files.
const PASSWORD: &str = "correct horse battery";

/// A guide's `file=` blocks; [`Guide::done`] checks the test used each one.
struct Guide {
    path: PathBuf,
    files: BTreeMap<String, String>,
    used: RefCell<BTreeSet<String>>,
}

impl Guide {
    fn load(name: &str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let path = root.join("docs").join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut files = BTreeMap::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some(info) = line.strip_prefix("```") else {
                continue;
            };
            let file = info
                .split_whitespace()
                .find_map(|w| w.strip_prefix("file="))
                .map(str::to_owned);
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            if let Some(file) = file {
                let dup = files.insert(file.clone(), body);
                assert!(dup.is_none(), "{}: two blocks file={file}", path.display());
            }
        }
        Guide {
            path,
            files,
            used: RefCell::default(),
        }
    }

    /// The text of block `file=name`, exactly as the guide shows it.
    fn file(&self, name: &str) -> String {
        self.used.borrow_mut().insert(name.to_owned());
        self.files
            .get(name)
            .unwrap_or_else(|| panic!("{}: no block file={name}", self.path.display()))
            .clone()
    }

    /// Every block of the guide was used by the test.
    fn done(&self) {
        let unused: Vec<_> = self
            .files
            .keys()
            .filter(|k| !self.used.borrow().contains(*k))
            .collect();
        assert!(
            unused.is_empty(),
            "{}: blocks {unused:?} are not exercised by the test",
            self.path.display()
        );
    }
}

/// Where a guide's system paths, ports and users go in a test: the only changes made to the
/// guides' config lines.
struct Local {
    /// removed with the test's files when the test ends
    _dir: TempDir,
    /// (system path prefix as the guide writes it, private directory)
    paths: Vec<(&'static str, PathBuf)>,
    /// guide port → free loopback port, filled as listen addresses are met
    ports: RefCell<BTreeMap<u16, u16>>,
}

impl Local {
    /// `prefixes`: the system directories the guide uses (e.g. "/run/pochta"); each becomes
    /// a directory of the same name under the test's temporary directory.
    fn new(tag: &str, prefixes: &[&'static str]) -> Self {
        let dir = TempDir::new(tag);
        let paths = prefixes
            .iter()
            .map(|p| {
                let local = dir.join(p.trim_start_matches('/'));
                std::fs::create_dir_all(&local).unwrap();
                (*p, local)
            })
            .collect();
        Local {
            _dir: dir,
            paths,
            ports: RefCell::default(),
        }
    }

    /// The private path for a system path the guide names.
    fn path(&self, system: &str) -> PathBuf {
        for (prefix, local) in &self.paths {
            if let Some(rest) = system.strip_prefix(prefix) {
                return PathBuf::from(format!("{}{rest}", local.display()));
            }
        }
        panic!(
            "{system} is not under a substituted prefix {:?}",
            self.paths
        );
    }

    /// The loopback port standing for the guide's port `n`.
    fn port(&self, n: u16) -> u16 {
        *self.ports.borrow_mut().entry(n).or_insert_with(free_port)
    }

    /// The guide's text with the substitutions applied:
    /// - path prefixes from [`Local::new`];
    /// - `"[::]:N"` / `"0.0.0.0:N"` listen addresses → `"127.0.0.1:<free port>"`;
    /// - system users `pochta` and `vmail` (owner/user keys, TOML or dovecot.conf) → the test
    ///   user, groups → its group (the tests run as root; these users need not exist here).
    fn apply(&self, text: &str) -> String {
        let mut out = String::new();
        for line in text.lines() {
            let mut l = line.to_owned();
            for (prefix, local) in &self.paths {
                l = l.replace(prefix, &local.display().to_string());
            }
            for any in ["[::]:", "0.0.0.0:"] {
                if let Some(at) = l.find(&format!("\"{any}")) {
                    let start = at + 1 + any.len();
                    let end = start + l[start..].find('"').unwrap();
                    let n: u16 = l[start..end].parse().unwrap();
                    l = format!("{}127.0.0.1:{}{}", &l[..at + 1], self.port(n), &l[end..]);
                }
            }
            let key = l.split('=').next().unwrap_or("").trim().to_owned();
            for user in ["pochta", "vmail"] {
                let (quoted, bare) = (format!("\"{user}\""), format!("= {user}"));
                let to = match key.as_str() {
                    "group" | "gid" => test_group(),
                    _ => test_user().to_owned(),
                };
                if l.contains(&quoted) {
                    l = l.replace(&quoted, &format!("\"{to}\""));
                } else if l.trim_end().ends_with(&bare) {
                    l = l.replace(&bare, &format!("= {to}"));
                }
            }
            let mut outside = l.clone();
            for (_, local) in &self.paths {
                outside = outside.replace(&local.display().to_string(), "");
            }
            for system in ["/run/", "/var/", "/etc/", "[::]"] {
                assert!(
                    !outside.contains(system),
                    "{line:?}: {system} left after substitution; add it to Local"
                );
            }
            out.push_str(&l);
            out.push('\n');
        }
        out
    }

    /// Writes the guide's block `file` (substituted) to `path` (a system path of the guide).
    fn install(&self, guide: &Guide, file: &str, system_path: &str) -> PathBuf {
        let path = self.path(system_path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, self.apply(&guide.file(file))).unwrap();
        path
    }

    /// A directory owned by the user the daemons run as (the guide's `install -d -o …`).
    fn owned_dir(&self, system_path: &str) -> PathBuf {
        let p = self.path(system_path);
        std::fs::create_dir_all(&p).unwrap();
        chown_test_user(&p);
        p
    }

    /// A fresh self-signed certificate and key at the guide's paths.
    fn cert(&self, cert: &str, key: &str) {
        let (c, k) = (self.path(cert), self.path(key));
        std::fs::create_dir_all(c.parent().unwrap()).unwrap();
        write_cert(&c, &k);
    }
}

fn test_user() -> &'static str {
    "nobody"
}

fn test_group() -> String {
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::Group::from_gid(nobody.gid)
        .unwrap()
        .unwrap()
        .name
}

fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name(test_user()).unwrap().unwrap()
}

fn chown_test_user(p: &Path) {
    let u = nobody();
    nix::unistd::chown(p, Some(u.uid), Some(u.gid)).unwrap();
}

fn need(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("{program} is not installed: install the packages listed at the top of run-tests");
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str, logs: &dyn Fn() -> String) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}\n{}", logs());
}

/// A pochta daemon started from a guide's config (its own notify socket and log file).
struct Pochta {
    name: &'static str,
    daemon: Daemon,
    _dir: TempDir,
}

impl Pochta {
    /// `--check-config`, then start and wait for READY=1.
    fn start(name: &'static str, config: &Path) -> Self {
        let bin = daemon_bin(name);
        let check = Command::new(&bin)
            .arg("--check-config")
            .arg("-c")
            .arg(config)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "pochta-{name} --check-config rejects the guide's config: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let dir = TempDir::new(&format!("guide-{name}"));
        let mut notify = Notify::new(&dir);
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(config);
        let mut daemon = Daemon::spawn(cmd, &dir, &notify);
        notify.wait_for("READY=1", &mut daemon);
        Pochta {
            name,
            daemon,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.daemon.log()
    }
}

/// Logs of several daemons, for failure messages.
fn all_logs(daemons: &[&Pochta], others: &[(&str, String)]) -> String {
    let mut s = String::new();
    for d in daemons {
        s.push_str(&format!("--- pochta-{} ---\n{}", d.name, d.log()));
    }
    for (name, log) in others {
        s.push_str(&format!("--- {name} ---\n{log}"));
    }
    s
}
