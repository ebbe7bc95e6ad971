//! Setting up DIR for `pochta demo`: the directory (reachable by the user the daemons drop to),
//! a lock against a second demo, the password, the certificate, the users file, and ownership of
//! what the daemons write.

use super::{exit, fail, io_fail, DemoArgs, Failure, DAEMONS};
use crate::demo_configs::{self, DemoEnv};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The demo directory (created and made absolute), the password and the user to drop to.
pub(super) fn demo_env(args: &DemoArgs) -> Result<DemoEnv, Failure> {
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
pub(super) fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, Failure> {
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

/// A password a user can type into any client.
pub(super) fn check_password(pw: &str) -> Result<(), String> {
    if pw.is_empty() {
        return Err("--password must not be empty".into());
    }
    if pw.chars().any(char::is_control) {
        return Err("--password must not contain control characters".into());
    }
    Ok(())
}

pub(super) fn random_password() -> Result<String, Failure> {
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

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), Failure> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_fail(path))
}

/// Creates DIR's subdirectories, the certificate and the users file, and, as root, gives the
/// user the daemons drop to what they write or re-read.
pub(super) fn prepare(env: &DemoEnv) -> Result<(), Failure> {
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
    write_aliases(env)?;

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
pub(super) fn write_users(env: &DemoEnv) -> Result<(), Failure> {
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

/// DIR/etc/aliases (aliases(5)): postmaster, abuse and root reach alice, so `sendmail root` and
/// mail to postmaster@pochta.test land in her INBOX. Written once: edits are kept.
pub(super) fn write_aliases(env: &DemoEnv) -> Result<(), Failure> {
    let path = env.aliases_file();
    if path.exists() {
        return Ok(());
    }
    let d = demo_configs::DOMAIN;
    let text = format!(
        "# pochta demo aliases (aliases(5), as Postfix's /etc/aliases). Written once by\n\
         # `pochta demo`; edit it, check it with `sendmail -C DIR/etc/mta.toml -bi`, and restart\n\
         # the demo (or send the mta SIGHUP) to apply.\n\
         postmaster: root\nabuse: postmaster\nMAILER-DAEMON: postmaster\nroot: alice@{d}\n"
    );
    std::fs::write(&path, text).map_err(io_fail(&path))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_must_be_typable() {
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
}
