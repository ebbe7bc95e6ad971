//! Dovecot's passwd-file backend: `user:password:uid:gid:gecos:home:shell:extra_fields`, one user
//! per line, `#` comments. Extra fields are space-separated `key=value` or bare flags; `userdb_`
//! fields go to the userdb, the others (`nopassword`, `nologin`, `allow_nets=`, `reason=`, …) to
//! the passdb. The file is re-read when it changes (inode, size or mtime), checked on each lookup.

use crate::backend::{Backend, BackendError, PassdbEntry, UserdbEntry};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Line {
    passdb: PassdbEntry,
    userdb: UserdbEntry,
}

#[derive(Debug, Default)]
struct Parsed {
    users: HashMap<String, Line>,
    order: Vec<String>,
}

/// Identity of the file content we parsed last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

#[derive(Debug)]
pub(crate) struct PasswdFile {
    path: PathBuf,
    state: Mutex<(Option<Stamp>, Arc<Parsed>)>,
}

impl PasswdFile {
    /// Opens and parses the file now, so a broken path fails at startup.
    pub(crate) fn open(path: &Path) -> Result<Self, BackendError> {
        let f = PasswdFile {
            path: path.to_owned(),
            state: Mutex::new((None, Arc::default())),
        };
        f.current()?;
        Ok(f)
    }

    fn stamp(&self) -> Result<Stamp, BackendError> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| BackendError(format!("{}: {e}", self.path.display())))?;
        Ok(Stamp {
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        })
    }

    /// The parsed content if the file is unchanged since it was parsed (one `stat`, no read);
    /// `None` when it must be re-read (or the `stat` failed: [`Self::current`] reports that).
    fn unchanged(&self) -> Option<Arc<Parsed>> {
        let stamp = self.stamp().ok()?;
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (state.0 == Some(stamp)).then(|| Arc::clone(&state.1))
    }

    fn current(&self) -> Result<Arc<Parsed>, BackendError> {
        let shown = self.path.display();
        let stamp = self.stamp()?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 == Some(stamp) {
            return Ok(Arc::clone(&state.1));
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| BackendError(format!("{shown}: {e}")))?;
        let parsed = Arc::new(parse(&text, &shown.to_string()));
        if state.0.is_some() {
            let users = parsed.users.len();
            tracing::info!(file = %shown, users, "passwd-file changed, re-read");
        }
        *state = (Some(stamp), Arc::clone(&parsed));
        Ok(parsed)
    }
}

fn parse(text: &str, shown: &str) -> Parsed {
    let mut out = Parsed::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut cols = line.splitn(8, ':');
        let user = cols.next().unwrap_or_default().to_owned();
        if user.is_empty() {
            tracing::warn!(file = shown, line = n + 1, "empty user name, line ignored");
            continue;
        }
        let password = cols.next().filter(|p| !p.is_empty()).map(str::to_owned);
        let nonempty = |s: Option<&str>| s.filter(|v| !v.is_empty()).map(str::to_owned);
        let uid = nonempty(cols.next());
        let gid = nonempty(cols.next());
        let _gecos = cols.next();
        let home = nonempty(cols.next());
        let _shell = cols.next();
        let extra = cols.next().unwrap_or_default();

        let mut passdb = PassdbEntry {
            user: user.clone(),
            password,
            ..Default::default()
        };
        let mut userdb = UserdbEntry {
            user: user.clone(),
            uid,
            gid,
            home,
            fields: Vec::new(),
        };
        for field in extra.split_whitespace() {
            let (k, v) = match field.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (field, None),
            };
            if let Some(uk) = k.strip_prefix("userdb_") {
                let v = v.unwrap_or_default().to_owned();
                match uk {
                    "uid" => userdb.uid = Some(v),
                    "gid" => userdb.gid = Some(v),
                    "home" => userdb.home = Some(v),
                    _ => userdb.fields.push((uk.to_owned(), v)),
                }
                continue;
            }
            match (k, v) {
                ("nopassword", _) => passdb.nopassword = true,
                ("nologin", _) => passdb.nologin = true,
                ("allow_nets", Some(nets)) => {
                    let parsed: Result<Vec<_>, _> = nets.split(',').map(str::parse).collect();
                    match parsed {
                        Ok(n) => passdb.allow_nets = Some(n),
                        Err(e) => {
                            // Fail closed: an unreadable allow_nets allows no network.
                            tracing::warn!(file = shown, line = n + 1, "{e}; user locked out");
                            passdb.allow_nets = Some(Vec::new());
                        }
                    }
                }
                _ => passdb.extra.push((k.to_owned(), v.map(str::to_owned))),
            }
        }
        if out.users.contains_key(&user) {
            let line = n + 1;
            tracing::warn!(file = shown, line, user = %user, "duplicate user, first one wins");
            continue;
        }
        out.order.push(user.clone());
        out.users.insert(user, Line { passdb, userdb });
    }
    out
}

impl Backend for PasswdFile {
    fn passdb(&self, user: &str) -> Result<Option<PassdbEntry>, BackendError> {
        Ok(self.current()?.users.get(user).map(|l| l.passdb.clone()))
    }
    fn passdb_now(&self, user: &str) -> Option<Result<Option<PassdbEntry>, BackendError>> {
        // A `stat` of the file is as cheap as a lookup; a changed file is re-read by `passdb`.
        let parsed = self.unchanged()?;
        Some(Ok(parsed.users.get(user).map(|l| l.passdb.clone())))
    }
    fn userdb(&self, user: &str) -> Result<Option<UserdbEntry>, BackendError> {
        Ok(self.current()?.users.get(user).map(|l| l.userdb.clone()))
    }
    fn list(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.current()?.order.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dovecot_lines() {
        let text = "# comment\n\
            alice@example.org:{SHA512-CRYPT}$6$abc$def:5000:5000::/home/alice::\
            userdb_mail=maildir:~/Mail userdb_quota_rule=*:storage=1G\n\
            bob@example.org:{PLAIN}pw\n\
            carol@example.org::::::: nopassword allow_nets=127.0.0.0/8,::1 reason=hi\n\
            \n\
            bob@example.org:{PLAIN}second\n";
        let p = parse(text, "t");
        assert_eq!(
            p.order,
            ["alice@example.org", "bob@example.org", "carol@example.org"]
        );
        let a = &p.users["alice@example.org"];
        assert_eq!(
            a.passdb.password.as_deref(),
            Some("{SHA512-CRYPT}$6$abc$def")
        );
        assert_eq!(a.userdb.uid.as_deref(), Some("5000"));
        assert_eq!(a.userdb.home.as_deref(), Some("/home/alice"));
        assert_eq!(
            a.userdb.fields,
            vec![
                ("mail".into(), "maildir:~/Mail".into()),
                ("quota_rule".into(), "*:storage=1G".into())
            ]
        );
        assert_eq!(
            p.users["bob@example.org"].passdb.password.as_deref(),
            Some("{PLAIN}pw")
        );
        let c = &p.users["carol@example.org"].passdb;
        assert!(c.nopassword && c.password.is_none());
        assert_eq!(c.allow_nets.as_ref().map(Vec::len), Some(2));
        assert_eq!(c.extra, vec![("reason".into(), Some("hi".into()))]);
    }

    #[test]
    fn rereads_on_change() {
        let dir = std::env::temp_dir().join(format!("pochta-passwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users");
        std::fs::write(&path, "a@x:{PLAIN}1\n").unwrap();
        let f = PasswdFile::open(&path).unwrap();
        assert!(f.passdb("b@x").unwrap().is_none());
        assert!(f.passdb_now("a@x").unwrap().unwrap().is_some());
        // Same second, different size: still noticed.
        std::fs::write(&path, "a@x:{PLAIN}1\nb@x:{PLAIN}2\n").unwrap();
        // Without blocking: the changed file is not read here but left to `passdb`.
        assert!(f.passdb_now("b@x").is_none());
        assert!(f.passdb("b@x").unwrap().is_some());
        assert!(f.passdb_now("b@x").unwrap().unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
