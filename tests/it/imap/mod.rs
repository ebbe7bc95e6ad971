//! pochta-imapd against real clients and peers, with pochta-authd (LOGIN, AUTHENTICATE) and
//! pochta-mda-lmtp (deliveries) on one Maildir tree:
//! - [`clients`]: python imaplib (STARTTLS, IMAPS) and imapclient scenarios, IDLE seeing an
//!   LMTP delivery within a second;
//! - [`dovecot`]: a real Dovecot imap and pochta-imapd take turns on one Maildir;
//! - [`mirror`]: mbsync and offlineimap mirror a 1,000-message account both ways;
//! - [`wire`]: bad input over TLS (100 MB APPEND, nesting, 8-bit) and imapd's transcripts
//!   replayed against the binary.

mod clients;
mod dovecot;
mod mirror;
mod wire;

use crate::authd::Authd;
use crate::config::daemon_bin;
use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub(super) const USER: &str = "alice@pochta.test";
const PASS: &str = "wonderland";

/// (uid, gid) the daemons and the mail belong to: nobody when root, else ourselves.
fn mail_owner() -> (u32, u32) {
    if nix::unistd::Uid::effective().is_root() {
        let u = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        (u.uid.as_raw(), u.gid.as_raw())
    } else {
        (
            nix::unistd::Uid::effective().as_raw(),
            nix::unistd::Gid::effective().as_raw(),
        )
    }
}

fn chown(p: &Path) {
    if nix::unistd::Uid::effective().is_root() {
        let (u, g) = mail_owner();
        nix::unistd::chown(
            p,
            Some(nix::unistd::Uid::from_raw(u)),
            Some(nix::unistd::Gid::from_raw(g)),
        )
        .unwrap();
    }
}

/// pochta-authd, pochta-mda-lmtp and pochta-imapd on one Maildir tree.
struct Setup {
    _dir: TempDir,
    imapd_dir: TempDir,
    authd: Authd,
    mda: Daemon,
    imapd: Daemon,
    plain_port: u16,
    tls_port: u16,
    lmtp: PathBuf,
    maildir: PathBuf,
}

impl Setup {
    fn start() -> Self {
        let dir = TempDir::new("imap");
        let (uid, gid) = mail_owner();
        let home = dir.join("home");
        std::fs::create_dir_all(home.join("alice")).unwrap();
        chown(&home);
        chown(&home.join("alice"));
        let passwd = format!(
            "{USER}:{{PLAIN}}{PASS}:{uid}:{gid}::{}::\n",
            home.join("alice").display()
        );
        let authd = Authd::start(
            &passwd,
            "mechanisms = [\"PLAIN\", \"LOGIN\"]\nfailure_delay = \"1s\"",
        );
        chown(&authd.userdb);

        let lmtp = dir.join("lmtp");
        let mda_cfg = format!(
            "[server]\nlog_level = \"debug\"\n\n[[listener]]\nservice = \"lmtp\"\n\
             address = \"{}\"\nmode = \"0666\"\n\n[lmtp]\nhostname = \"lmtp.test\"\n\n\
             [userdb]\nsocket = \"{}\"\n\n[delivery]\nmail_location = \"{}/%n/Maildir\"\n",
            lmtp.display(),
            authd.userdb.display(),
            home.display()
        );
        let mda_path = dir.join("mda-lmtp.toml");
        std::fs::write(&mda_path, as_test_user(&mda_cfg)).unwrap();
        let mut notify = Notify::new(&dir);
        let mut cmd = Command::new(daemon_bin("mda-lmtp"));
        cmd.arg("-c").arg(&mda_path);
        let mut mda = Daemon::spawn(cmd, &dir, &notify);
        notify.wait_for("READY=1", &mut mda);

        let imapd_dir = TempDir::new("imapd");
        let (cert, key) = (imapd_dir.join("cert.pem"), imapd_dir.join("key.pem"));
        write_cert(&cert, &key);
        let (plain_port, tls_port) = (free_port(), free_port());
        let config = format!(
            "[server]\nlog_level = \"debug\"\n\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [[listener]]\nservice = \"imap\"\naddress = \"127.0.0.1:{plain_port}\"\n\
             tls = \"starttls\"\n\n\
             [[listener]]\nservice = \"imaps\"\naddress = \"127.0.0.1:{tls_port}\"\n\
             tls = \"implicit\"\n\n\
             [imap]\nmax_message_size = \"1M\"\n\n\
             [auth]\nclient_socket = \"{}\"\nuserdb_socket = \"{}\"\n\n\
             [mail]\nlocation = \"{}/%n/Maildir\"\n",
            cert.display(),
            key.display(),
            authd.client.display(),
            authd.userdb.display(),
            home.display(),
        );
        let cfg = imapd_dir.join("imapd.toml");
        std::fs::write(&cfg, as_test_user(&config)).unwrap();
        let mut notify = Notify::new(&imapd_dir);
        let mut cmd = Command::new(daemon_bin("imapd"));
        cmd.arg("-c").arg(&cfg);
        let mut imapd = Daemon::spawn(cmd, &imapd_dir, &notify);
        notify.wait_for("READY=1", &mut imapd);
        Setup {
            maildir: home.join("alice/Maildir"),
            _dir: dir,
            imapd_dir,
            authd,
            mda,
            imapd,
            plain_port,
            tls_port,
            lmtp,
        }
    }

    fn logs(&self) -> String {
        format!(
            "imapd:\n{}\nmda-lmtp:\n{}\nauthd:\n{}",
            self.imapd.log(),
            self.mda.log(),
            self.authd.log()
        )
    }
}

/// The `key<TAB>value` lines of a script run.
struct Dump(Vec<(String, String)>);

impl Dump {
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn one(&self, k: &str) -> String {
        self.all(k)
            .pop()
            .unwrap_or_else(|| panic!("no {k} in {:?}", self.0))
    }
}

fn python(script: &str, args: &[&str], logs: &dyn Fn() -> String) -> Dump {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed (run-tests installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {}\nstdout:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    Dump(
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn b64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Gives a whole tree to the mail user (files written by the test as root).
fn chown_tree(p: &Path) {
    chown(p);
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path());
        }
    }
}
