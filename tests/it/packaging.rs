//! Debian packages (issue 10, packaging/): every field of each config struct is named in its
//! sample in etc/ (the man page pochta-<daemon>.toml(5) is rendered from that sample), and the
//! packages built by packaging/build-debs install into a throwaway Debian root next to
//! Debian's postfix and dovecot, pass --check-config as installed, start and answer, pass
//! `systemd-analyze verify`, and purge cleanly.
//!
//! The throwaway root is a debootstrap chroot (minbase of the host's release, from
//! `POCHTA_DEBIAN_MIRROR` or deb.debian.org), not the test machine: pochta-mta conflicts with
//! postfix (both are the mail-transport-agent), and the machine's postfix is a test peer of
//! the other modules. The packages are built from the debug binaries of this test run
//! (`build-debs --debug --no-build`), so no release build is needed.

use crate::config::daemon_bin;
use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DAEMONS: [&str; 5] = ["authd", "mda-lmtp", "imapd", "pop3d", "mta"];
const BOGUS: &str = "pochta_bogus_key";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Key names of a sample by table path ("" = top level; "imap.mailbox"), as conf2man reads
/// them: set keys, commented-out `# key = value` lines, and table headers (set or commented),
/// each also naming its last segment as a key of the parent table.
fn named_keys(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    named.insert(String::new(), BTreeSet::new());
    let mut table = String::new();
    for line in text.lines() {
        let line = line.trim_end();
        let (commented, rest) = match line.strip_prefix('#') {
            Some(r) => (true, r.strip_prefix(' ').unwrap_or(r)),
            None => (false, line),
        };
        let ident = |s: &str| {
            !s.is_empty()
                && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        let header = rest
            .strip_prefix("[[")
            .and_then(|r| r.strip_suffix("]]"))
            .or_else(|| rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')));
        // `[outbound.domains."example.com"]`: a map keyed by a quoted name. The map's field
        // (`domains`) is named; the entries' own fields are not checked.
        let header = header.map(|h| h.split_once(".\"").map_or(h, |(map, _)| map));
        if let Some(h) = header.filter(|h| h.split('.').all(ident)) {
            if rest.contains('"') {
                let (parent, last) = h.rsplit_once('.').unwrap_or(("", h));
                named
                    .entry(parent.to_owned())
                    .or_default()
                    .insert(last.to_owned());
                table = String::from("\u{0}map entry");
                continue;
            }
            table = h.to_owned();
            let (parent, last) = h.rsplit_once('.').unwrap_or(("", h));
            named
                .entry(parent.to_owned())
                .or_default()
                .insert(last.to_owned());
            named.entry(table.clone()).or_default();
            continue;
        }
        let Some((key, value)) = rest.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim_start());
        // A commented line is a key only when its value looks like TOML or "(a default)".
        let looks_like_value = value.starts_with(['"', '\'', '[', '{', '(', '-'])
            || value.starts_with(|c: char| c.is_ascii_digit())
            || value.starts_with("true")
            || value.starts_with("false");
        if ident(key) && (!commented || looks_like_value) && !table.starts_with('\u{0}') {
            named
                .entry(table.clone())
                .or_default()
                .insert(key.to_owned());
        }
    }
    named
}

/// The fields of the config struct at `path` in daemon `name`'s config, as its deserializer
/// lists them when an unknown key is put there (`expected one of `a`, `b``).
fn struct_fields(
    name: &str,
    doc: &toml::Table,
    path: &str,
    dir: &TempDir,
) -> Result<BTreeSet<String>, String> {
    let mut doc = doc.clone();
    let mut t = &mut doc;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let v = t
            .entry(seg.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match v {
            toml::Value::Table(inner) => inner,
            toml::Value::Array(a) => a[0].as_table_mut().unwrap(),
            other => panic!("{name}: {path}: {seg} is not a table: {other:?}"),
        };
    }
    t.insert(BOGUS.to_owned(), toml::Value::Integer(1));
    let file = dir.join(&format!("{name}-fields.toml"));
    std::fs::write(&file, toml::to_string(&doc).unwrap()).unwrap();
    let out = Command::new(daemon_bin(name))
        .args(["--check-config", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(78), "{name} [{path}]: {err}");
    let Some((_, list)) = err.split_once(&format!("unknown field `{BOGUS}`")) else {
        // E.g. the table itself is unknown to the built binary (sample ahead of the code).
        return Err(format!("etc/{name}.toml: [{path}]: {}", err.trim()));
    };
    if list.contains("there are no fields") {
        return Ok(BTreeSet::new());
    }
    Ok(list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect())
}

/// Every field of every config struct appears in the sample (set or commented out with its
/// default), so the man page made from the sample documents every key. The reverse (no key in
/// the sample that the structs lack) is config::samples_parse_and_reject_unknown_keys_everywhere.
#[test]
fn samples_name_every_config_field() {
    let dir = TempDir::new("pkg-fields");
    let mut checked = 0;
    let mut missing = Vec::new();
    for name in DAEMONS {
        let sample = repo().join(format!("etc/{name}.toml"));
        let text = std::fs::read_to_string(&sample).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        for (path, keys) in named_keys(&text) {
            let fields = match struct_fields(name, &doc, &path, &dir) {
                Ok(f) => f,
                Err(e) => {
                    missing.push(e);
                    continue;
                }
            };
            assert!(!fields.is_empty(), "{name} [{path}]: no fields listed");
            for field in fields.difference(&keys) {
                missing.push(format!("etc/{name}.toml: [{path}] {field}"));
            }
            checked += fields.len();
        }
    }
    assert!(
        missing.is_empty(),
        "config fields the samples do not name (add each, commented out with its default, under \
         a comment saying what it does; the man pages pochta-<daemon>.toml(5) are made from \
         the samples):\n{}",
        missing.join("\n")
    );
    assert!(checked > 100, "only {checked} fields checked");
}

/// A throwaway Debian root: /proc is mounted while it lives and unmounted before the
/// directory is removed (the TempDir drops after this guard).
struct Chroot {
    root: PathBuf,
    proc_mounted: bool,
}

impl Chroot {
    /// Runs a command inside the root; panics with its output unless it exits 0.
    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "in the chroot: {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn output(&self, args: &[&str]) -> Output {
        Command::new("chroot")
            .arg(&self.root)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .output()
            .unwrap()
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// Status of a package: "ii" installed, "rc" removed with conffiles left, "" unknown.
    fn status(&self, package: &str) -> String {
        let out = self.output(&["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        if self.proc_mounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.root.join("proc"))
                .status();
        }
    }
}

fn host(args: &[&str], envs: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e} (Debian package missing?)"));
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads the first line a server sends, connecting until the deadline.
fn greeting(connect: impl Fn() -> std::io::Result<Box<dyn std::io::Read>>, d: &mut Daemon) {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = connect() {
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).unwrap();
            assert!(
                line.starts_with("220 ") || line.starts_with("* OK") || line.starts_with("+OK"),
                "greeting: {line:?}\n{}",
                d.log()
            );
            return;
        }
        if let Some(status) = d.try_exit() {
            panic!("daemon exited: {status}\n{}", d.log());
        }
        assert!(Instant::now() < end, "no answer\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The installed config with its TCP listeners moved to free loopback ports (the installed
/// ones are 25/143/993/110/995/465/587).
fn override_config(installed: &str, ports: &mut Vec<u16>) -> String {
    let mut out = String::new();
    for line in installed.lines() {
        if line.starts_with("address = \"[::]:") {
            let port = free_port();
            ports.push(port);
            out.push_str(&format!("address = \"127.0.0.1:{port}\"\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A daemon started in the chroot, with the directory of its log (harness::Daemon).
fn start(ch: &Chroot, name: &str, config: &str) -> (Daemon, TempDir) {
    let rel = format!("/tmp/{name}-test.toml");
    std::fs::write(ch.path(&rel), config).unwrap();
    ch.run(&[
        &format!("/usr/sbin/pochta-{name}"),
        "--check-config",
        "-c",
        &rel,
    ]);
    let mut cmd = Command::new("chroot");
    cmd.arg(&ch.root)
        .arg(format!("/usr/sbin/pochta-{name}"))
        .args(["-c", &rel]);
    // No systemd here: NOTIFY_SOCKET points nowhere the daemon can reach; readiness is seen
    // by connecting.
    let dir = TempDir::new(&format!("pkg-{name}"));
    (Daemon::spawn(cmd, &dir, &Notify::new(&dir)), dir)
}

fn tcp(port: u16) -> impl Fn() -> std::io::Result<Box<dyn std::io::Read>> {
    move || Ok(Box::new(TcpStream::connect(("127.0.0.1", port))?) as Box<dyn std::io::Read>)
}

fn unix(path: PathBuf) -> impl Fn() -> std::io::Result<Box<dyn std::io::Read>> {
    move || Ok(Box::new(UnixStream::connect(&path)?) as Box<dyn std::io::Read>)
}

fn mode_owner(ch: &Chroot, p: &str) -> (u32, u32, u32) {
    let m = std::fs::metadata(ch.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

fn id_of(ch: &Chroot, user: &str) -> u32 {
    ch.run(&["id", "-u", user]).trim().parse().unwrap()
}

/// Files (not directories) a set of installed packages own, from dpkg's lists.
fn owned_files(ch: &Chroot, packages: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    for p in packages {
        for f in ch.run(&["dpkg-query", "-L", p]).lines() {
            // Directories (also /lib, a symlink to usr/lib on merged-/usr systems) are shared.
            if std::fs::metadata(ch.path(f)).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if std::fs::symlink_metadata(ch.path(f)).is_ok() {
                files.push(f.to_owned());
            }
        }
    }
    files
}

#[test]
fn debian_packages_install_beside_postfix_and_dovecot_run_and_purge() {
    require_root("installing Debian packages into a chroot");
    let started = Instant::now();
    for name in DAEMONS {
        daemon_bin(name);
    }
    for bin in ["sendmail", "pochta"] {
        assert!(
            bin_dir().join(bin).exists(),
            "{bin} is not built: cargo build --workspace --bins"
        );
    }
    // 1. The packages, from this run's debug binaries, checked by lintian.
    let out = TempDir::new("pkg-debs");
    let target = bin_dir().parent().unwrap().to_path_buf();
    host(
        &[
            repo().join("packaging/build-debs").to_str().unwrap(),
            "--debug",
            "--no-build",
        ],
        &[("CARGO_TARGET_DIR", &target), ("OUT", &out.join(""))],
    );
    let built = started.elapsed();
    let mut debs = BTreeMap::new();
    for e in std::fs::read_dir(out.join("")).unwrap() {
        let p = e.unwrap().path();
        let f = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(pkg) = f
            .strip_suffix("_amd64.deb")
            .and_then(|s| s.split('_').next())
        {
            debs.insert(pkg.to_owned(), p);
        }
    }
    let all = [
        "pochta-authd",
        "pochta-mda-lmtp",
        "pochta-imapd",
        "pochta-pop3d",
        "pochta-mta",
        "pochta",
    ];
    for p in all {
        assert!(debs.contains_key(p), "{p} not built: {debs:?}");
    }

    // 2. The throwaway root: the host's release, with Debian's postfix and dovecot in it.
    let rootdir = TempDir::new("pkg-root");
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let suite = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .expect("VERSION_CODENAME in /etc/os-release")
        .to_owned();
    let mirror = std::env::var("POCHTA_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_owned());
    let root = rootdir.join("root");
    host(
        &[
            "debootstrap",
            "--variant=minbase",
            &suite,
            root.to_str().unwrap(),
            &mirror,
        ],
        &[],
    );
    let mut ch = Chroot {
        root,
        proc_mounted: false,
    };
    host(
        &[
            "mount",
            "-t",
            "proc",
            "proc",
            ch.path("proc").to_str().unwrap(),
        ],
        &[],
    );
    ch.proc_mounted = true;
    let bootstrapped = started.elapsed();
    // Packages must not start services in the chroot (they would take the host's ports).
    let policy = ch.path("/usr/sbin/policy-rc.d");
    std::fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut debconf = Command::new("chroot")
        .arg(&ch.root)
        .arg("debconf-set-selections")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    debconf
        .stdin
        .take()
        .unwrap()
        .write_all(b"postfix postfix/main_mailer_type select No configuration\n")
        .unwrap();
    assert!(debconf.wait().unwrap().success());
    let peers = [
        "postfix",
        "dovecot-core",
        "dovecot-imapd",
        "dovecot-pop3d",
        "dovecot-lmtpd",
    ];
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend(peers);
    ch.run(&install);
    let peers_installed = started.elapsed();

    // 3. Everything but the mta beside postfix and dovecot: dpkg refuses to overwrite another
    //    package's file, so success means no file conflict.
    let debdir = ch.path("/tmp/debs");
    std::fs::create_dir_all(&debdir).unwrap();
    for (p, path) in &debs {
        std::fs::copy(path, debdir.join(format!("{p}.deb"))).unwrap();
    }
    let beside: Vec<String> = all
        .iter()
        .filter(|p| **p != "pochta-mta")
        .map(|p| format!("/tmp/debs/{p}.deb"))
        .collect();
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend(beside.iter().map(String::as_str));
    ch.run(&install);
    for p in peers
        .iter()
        .chain(all.iter().filter(|p| **p != "pochta-mta"))
    {
        assert_eq!(ch.status(p), "ii", "{p} not installed");
    }
    // Nothing enabled or started: no port is taken from Dovecot by default.
    let wants = ch.run(&["find", "/etc/systemd/system", "-name", "pochta*"]);
    assert!(
        wants.trim().is_empty(),
        "units enabled on installation: {wants}"
    );

    // Users, directories, files where they belong.
    let pochta = id_of(&ch, "pochta");
    let vmail = id_of(&ch, "vmail");
    assert_eq!(mode_owner(&ch, "/run/pochta"), (0o755, 0, 0));
    assert!(ch.run(&["id", "-nG", "vmail"]).contains("ssl-cert"));
    for d in ["authd", "mda-lmtp", "imapd", "pop3d"] {
        let p = format!("pochta-{d}");
        let conffiles = ch.run(&["dpkg-query", "-W", "-f=${Conffiles}", &p]);
        assert!(
            conffiles.contains(&format!("/etc/pochta/{d}.toml")),
            "{p}: conffiles: {conffiles}"
        );
        for f in [
            format!("/usr/sbin/pochta-{d}"),
            format!("/lib/systemd/system/pochta-{d}.service"),
            format!("/usr/share/man/man8/pochta-{d}.8.gz"),
            format!("/usr/share/man/man5/pochta-{d}.toml.5.gz"),
        ] {
            assert!(ch.path(&f).exists(), "{p}: {f} missing");
        }
        // 4. --check-config on the installed config, as the unit's ExecStartPre runs it.
        ch.run(&[&format!("/usr/sbin/pochta-{d}"), "--check-config"]);
    }
    assert!(ch.path("/usr/bin/pochta").exists());

    // 5. Start each daemon from the installed files and config (TCP listeners on loopback).
    let hash = ch.run(&["pochta", "pw", "-s", "SHA512-CRYPT", "-p", "secret"]);
    std::fs::write(
        ch.path("/tmp/users"),
        format!("alice@example.org:{}::::::\n", hash.trim()),
    )
    .unwrap();
    let installed = |d: &str| std::fs::read_to_string(ch.path(&format!("/etc/pochta/{d}.toml")));
    let mut ports = Vec::new();
    let authd_cfg = override_config(&installed("authd").unwrap(), &mut ports)
        .replace("path = \"/etc/pochta/users\"", "path = \"/tmp/users\"");
    let (mut authd, _authd_log) = start(&ch, "authd", &authd_cfg);
    let client = ch.path("/run/pochta/auth-client");
    let end = Instant::now() + DEADLINE;
    while !client.exists() {
        assert!(
            Instant::now() < end,
            "no auth-client socket\n{}",
            authd.log()
        );
        assert!(authd.try_exit().is_none(), "authd exited\n{}", authd.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The installed admin tool against the installed authd.
    ch.run(&["pochta", "auth", "test", "alice@example.org", "secret"]);
    let lmtp_cfg = override_config(&installed("mda-lmtp").unwrap(), &mut ports);
    let (mut lmtp, _lmtp_log) = start(&ch, "mda-lmtp", &lmtp_cfg);
    greeting(unix(ch.path("/run/pochta/lmtp")), &mut lmtp);
    for d in ["imapd", "pop3d"] {
        let mut p = Vec::new();
        let cfg = override_config(&installed(d).unwrap(), &mut p);
        let (mut daemon, _log) = start(&ch, d, &cfg);
        greeting(tcp(p[0]), &mut daemon);
        drop(daemon);
    }

    // 6. pochta-mta is the MTA: installing it replaces postfix, like exim4 or postfix would.
    ch.run(&[
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "/tmp/debs/pochta-mta.deb",
    ]);
    assert_eq!(ch.status("pochta-mta"), "ii");
    assert_ne!(
        ch.status("postfix"),
        "ii",
        "postfix still installed beside pochta-mta"
    );
    for p in &peers[1..] {
        assert_eq!(ch.status(p), "ii", "{p} removed with postfix");
    }
    assert!(ch.run(&["sendmail", "--version"]).contains("pochta"));
    assert!(ch.run(&["readlink", "-f", "/usr/bin/mailq"]).trim() == "/usr/sbin/sendmail");
    assert_eq!(
        mode_owner(&ch, "/var/spool/pochta"),
        (0o750, pochta, pochta)
    );
    ch.run(&["/usr/sbin/pochta-mta", "--check-config"]);
    let mut mta_ports = Vec::new();
    let mta_cfg = override_config(&installed("mta").unwrap(), &mut mta_ports);
    let local = "# local_domains = []          # e.g. [\"example.org\"]";
    assert!(
        mta_cfg.contains(local),
        "sample's local_domains line changed"
    );
    let mta_cfg = mta_cfg.replace(local, "local_domains = [\"example.org\"]");
    let (mut mta, _mta_log) = start(&ch, "mta", &mta_cfg);
    greeting(tcp(mta_ports[0]), &mut mta);
    assert!(ch.run(&["mailq"]).contains("Mail queue is empty"));
    // Local mail end to end with the packaged socket owners: the mta (pochta) checks the
    // recipient on authd's userdb socket and delivers over mda-lmtp's socket; mda-lmtp (vmail)
    // looks the user up and writes the Maildir (the domain directory made as docs/mix-1 says).
    ch.run(&[
        "install",
        "-d",
        "-o",
        "vmail",
        "-g",
        "vmail",
        "/var/mail/example.org",
    ]);
    ch.run(&[
        "sh",
        "-c",
        "printf 'Subject: packaged\\n\\nhello\\n' | sendmail -f root@localhost alice@example.org",
    ]);
    let new = ch.path("/var/mail/example.org/alice/Maildir/new");
    let end = Instant::now() + DEADLINE;
    while std::fs::read_dir(&new).map_or(0, |d| d.count()) == 0 {
        assert!(
            Instant::now() < end,
            "no delivery to alice\nmta:\n{}\nmda-lmtp:\n{}\nauthd:\n{}",
            mta.log(),
            lmtp.log(),
            authd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // 7. The installed units, as systemd 252+ reads them.
    let units = ch.run(&["sh", "-c", "ls /lib/systemd/system/pochta-*"]);
    let units: Vec<&str> = units.lines().collect();
    assert_eq!(units.len(), 15, "{units:?}");
    let mut verify = vec!["systemd-analyze", "verify"];
    verify.extend(units.iter().copied());
    let out = ch.output(&verify);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );

    // 8. Remove and purge: nothing dpkg owned is left, the users stay (Debian policy).
    drop((mta, lmtp, authd));
    let files = owned_files(&ch, &all);
    let mut purge = vec!["apt-get", "purge", "-y", "-q"];
    purge.extend(all);
    ch.run(&purge);
    for p in all {
        assert_eq!(ch.status(p), "", "{p} not purged");
    }
    let left: Vec<&String> = files
        .iter()
        .filter(|f| std::fs::symlink_metadata(ch.path(f)).is_ok())
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    for gone in ["/etc/pochta", "/var/spool/pochta"] {
        assert!(!ch.path(gone).exists(), "{gone} left after purge");
    }
    let state = ch.run(&[
        "sh",
        "-c",
        "ls /var/lib/systemd/deb-systemd-helper-*/ 2>/dev/null; true",
    ]);
    assert!(
        !state.contains("pochta"),
        "systemd helper state left: {state}"
    );
    assert_eq!(id_of(&ch, "pochta"), pochta);
    assert_eq!(id_of(&ch, "vmail"), vmail);
    for p in &peers[1..] {
        assert_eq!(ch.status(p), "ii", "{p} touched by the purge");
    }
    eprintln!(
        "packaging: build-debs+lintian {:?}, debootstrap {:?}, postfix+dovecot {:?}, total {:?}",
        built,
        bootstrapped - built,
        peers_installed - bootstrapped,
        started.elapsed()
    );
}
