//! Dovecot-compatible dot-locks (`src/lib/file-dotlock.c`): `<file>.lock` containing
//! `<pid>:<hostname>`, created atomically with its content (temporary file + link(2), Dovecot's
//! method without `dotlock_use_excl`; it excludes Dovecot's `O_EXCL` method and vice versa). A lock
//! is taken over when its holder is a dead local process (checked once the lock is older than 2 s),
//! or when neither the lock nor the file it protects has changed for the stale timeout. Holders
//! touch the lock to keep it fresh.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::filename::raw_hostname;

/// Don't check the pid of a lock younger than this (it most likely lives).
const STALE_PID_CHECK_SECS: i64 = 2;
/// Longest pause between two attempts.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// How long to wait and when to override.
#[derive(Clone, Copy, Debug)]
pub struct LockSettings {
    /// Give up after this long (zero = one attempt only).
    pub timeout: Duration,
    /// Override a lock that nobody changed for this long.
    pub stale_timeout: Duration,
}

impl LockSettings {
    /// `dovecot-uidlist.lock`: stale after 2 min, wait 2 min + 2 s
    /// (MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT).
    pub const UIDLIST: LockSettings = LockSettings {
        timeout: Duration::from_secs(122),
        stale_timeout: Duration::from_secs(120),
    };
    /// `subscriptions.lock`: wait 120 s, stale after 30 s.
    pub const SUBSCRIPTIONS: LockSettings = LockSettings {
        timeout: Duration::from_secs(120),
        stale_timeout: Duration::from_secs(30),
    };
    /// `maildirsize.lock`: never wait (someone else is rewriting it), stale after 30 s.
    pub const MAILDIRSIZE: LockSettings = LockSettings {
        timeout: Duration::ZERO,
        stale_timeout: Duration::from_secs(30),
    };
}

/// A held dot-lock. Dropping it removes the lock file.
#[derive(Debug)]
pub struct DotLock {
    target: PathBuf,
    lock_path: PathBuf,
    file: Option<File>,
    dev: u64,
    ino: u64,
}

/// Change tracking of one file, as `update_change_info()` does it.
#[derive(Default)]
struct ChangeInfo {
    ino: u64,
    dev: u64,
    ctime: i64,
    mtime: i64,
    size: u64,
}

impl ChangeInfo {
    /// Returns true if something changed, and moves `last_change` forward.
    fn update(&mut self, md: &fs::Metadata, now: i64, last_change: &mut i64) -> bool {
        let same = self.ino == md.ino()
            && self.dev == md.dev()
            && self.ctime == md.ctime()
            && self.mtime == md.mtime()
            && self.size == md.size();
        if same {
            return false;
        }
        let change_time = if self.ctime == 0 {
            if md.mtime() <= now && md.mtime() > md.ctime() {
                md.mtime()
            } else {
                md.ctime()
            }
        } else {
            now
        };
        *last_change = (*last_change).max(change_time);
        *self = ChangeInfo {
            ino: md.ino(),
            dev: md.dev(),
            ctime: md.ctime(),
            mtime: md.mtime(),
            size: md.size(),
        };
        true
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `<target>.lock`
pub fn lock_path_for(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// The pid in a `<pid>:<host>` lock if `host` is ours.
fn read_local_pid(lock_path: &Path) -> Option<i32> {
    let mut buf = [0u8; 512];
    let mut f = File::open(lock_path).ok()?;
    let n = f.read(&mut buf).ok()?;
    let s = std::str::from_utf8(&buf[..n]).ok()?;
    let s = s.strip_suffix('\n').unwrap_or(s);
    let (pid, host) = s.split_once(':')?;
    if host != raw_hostname() {
        return None;
    }
    pid.parse::<i32>().ok().filter(|&p| p > 0)
}

/// Small pseudo-random jitter (no RNG dependency needed for lock backoff).
fn jitter_ms() -> u64 {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(n % 100)
}

impl DotLock {
    /// Takes `<target>.lock`, waiting and overriding stale locks as Dovecot does.
    pub fn acquire(target: &Path, settings: LockSettings) -> Result<DotLock> {
        let lock_path = lock_path_for(target);
        let start = std::time::Instant::now();
        let mut lock_info = ChangeInfo::default();
        let mut file_info = ChangeInfo::default();
        let mut last_change: i64 = 0;
        // Short first waits: uidlist locks are held for a few fsyncs (milliseconds), and a
        // delivery waiting 100 ms (Dovecot's fixed random wait) would cap throughput.
        let mut wait = Duration::from_millis(2 + jitter_ms() % 8);
        let stale = settings.stale_timeout.as_secs() as i64;
        loop {
            if let Some(file) = try_create(&lock_path)? {
                let md = file
                    .metadata()
                    .map_err(|e| Error::io("fstat", &lock_path, e))?;
                return Ok(DotLock {
                    target: target.to_path_buf(),
                    lock_path,
                    file: Some(file),
                    dev: md.dev(),
                    ino: md.ino(),
                });
            }
            let now = now_secs();
            let md = match fs::symlink_metadata(&lock_path) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("lstat", &lock_path, e)),
            };
            lock_info.update(&md, now, &mut last_change);
            if md.mtime() < now - STALE_PID_CHECK_SECS {
                if let Some(pid) = read_local_pid(&lock_path) {
                    let dead = kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH);
                    // Unlike Dovecot (one process per session) we never override our own pid: other
                    // threads of this daemon hold locks too.
                    if dead {
                        let still_same = fs::symlink_metadata(&lock_path)
                            .map(|m2| m2.ino() == md.ino() && m2.mtime() == md.mtime())
                            .unwrap_or(false);
                        if still_same {
                            override_lock(&lock_path)?;
                        }
                        continue;
                    }
                }
            }
            if stale > 0 && now > last_change + stale {
                if let Ok(tmd) = fs::metadata(target) {
                    file_info.update(&tmd, now, &mut last_change);
                }
                if now > last_change + stale {
                    override_lock(&lock_path)?;
                    continue;
                }
            }
            let elapsed = start.elapsed();
            if elapsed >= settings.timeout {
                return Err(Error::LockTimeout { path: lock_path });
            }
            thread::sleep(wait.min(settings.timeout - elapsed));
            wait = (wait + wait / 2).min(MAX_WAIT);
        }
    }

    /// The path of the lock file.
    pub fn path(&self) -> &Path {
        &self.lock_path
    }

    /// The open lock file: Dovecot writes replacement content into it before [`DotLock::replace`].
    pub fn file(&mut self) -> Option<&mut File> {
        self.file.as_mut()
    }

    /// Refreshes the lock's mtime so that waiters don't consider it stale.
    pub fn touch(&self) -> Result<()> {
        let now = nix::sys::time::TimeSpec::UTIME_NOW;
        nix::sys::stat::utimensat(
            None,
            &self.lock_path,
            &now,
            &now,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| Error::io("utimensat", &self.lock_path, io::Error::from(e)))
    }

    /// Replaces the protected file with the lock file's content (truncating what `pid:host` wrote
    /// is the caller's job: it writes the whole new content after `set_len(0)`).
    pub fn replace(mut self) -> Result<()> {
        let file = self.file.take();
        if let Some(f) = &file {
            f.sync_all()
                .map_err(|e| Error::io("fsync", &self.lock_path, e))?;
        }
        self.verify_owner()?;
        fs::rename(&self.lock_path, &self.target)
            .map_err(|e| Error::io("rename", &self.lock_path, e))?;
        // consumed: nothing left to unlink on drop
        self.ino = 0;
        Ok(())
    }

    fn verify_owner(&self) -> Result<()> {
        match fs::symlink_metadata(&self.lock_path) {
            Ok(md) if md.ino() == self.ino && md.dev() == self.dev => Ok(()),
            Ok(_) => Err(Error::LockTimeout {
                path: self.lock_path.clone(),
            }),
            Err(e) => Err(Error::io("lstat", &self.lock_path, e)),
        }
    }
}

/// Creates the lock with its `<pid>:<host>` content already in it: the content goes into a
/// temporary file (`.temp.<host>.<pid>.<n>`, Dovecot's temp prefix) that is then hard-linked to
/// the lock name, which fails if the lock exists (Dovecot's non-`O_EXCL` dotlock method; both
/// methods exclude each other). So a crash never leaves an empty lock, which waiters could only
/// override after the full stale timeout. `None`: the lock exists.
fn try_create(lock_path: &Path) -> Result<Option<File>> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = lock_path.parent().unwrap_or(Path::new("."));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let host = raw_hostname().replace('/', "_");
    let tmp = dir.join(format!(".temp.{host}.{}.{n}", std::process::id()));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io("open", &tmp, e))?;
    let content = format!("{}:{}", std::process::id(), raw_hostname());
    let linked = f
        .write_all(content.as_bytes())
        .map_err(|e| Error::io("write", &tmp, e))
        .and_then(|()| match fs::hard_link(&tmp, lock_path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("link", lock_path, e)),
        });
    let _ = fs::remove_file(&tmp);
    Ok(linked?.then_some(f))
}

fn override_lock(lock_path: &Path) -> Result<()> {
    match fs::remove_file(lock_path) {
        Ok(()) => {
            // give a concurrent overrider time to notice, as Dovecot does
            thread::sleep(Duration::from_millis(100 + jitter_ms()));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("unlink", lock_path, e)),
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if self.ino == 0 {
            return;
        }
        // only remove the lock if it is still ours (it may have been overridden as stale)
        if self.verify_owner().is_ok() {
            let _ = fs::remove_file(&self.lock_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    const QUICK: LockSettings = LockSettings {
        timeout: Duration::from_millis(300),
        stale_timeout: Duration::from_secs(120),
    };

    #[test]
    fn exclusive_then_released() {
        let dir = TempDir::new();
        let target = dir.path().join("dovecot-uidlist");
        let lock = DotLock::acquire(&target, QUICK).unwrap();
        let content = fs::read_to_string(lock.path()).unwrap();
        assert_eq!(
            content,
            format!("{}:{}", std::process::id(), raw_hostname())
        );
        assert!(matches!(
            DotLock::acquire(&target, QUICK),
            Err(Error::LockTimeout { .. })
        ));
        drop(lock);
        assert!(!lock_path_for(&target).exists());
        DotLock::acquire(&target, QUICK).unwrap();
    }

    #[test]
    fn dead_holder_is_overridden() {
        let dir = TempDir::new();
        let target = dir.path().join("x");
        // a pid that cannot exist (above pid_max) on our host, written 10 s ago
        let lp = lock_path_for(&target);
        fs::write(&lp, format!("2147483000:{}", raw_hostname())).unwrap();
        crate::testutil::set_mtime(&lp, now_secs() - 10);
        let _lock = DotLock::acquire(&target, QUICK).unwrap();
    }

    #[test]
    fn old_foreign_lock_is_stale() {
        let dir = TempDir::new();
        let target = dir.path().join("x");
        let lp = lock_path_for(&target);
        fs::write(&lp, "1:some-other-host").unwrap();
        crate::testutil::set_mtime(&lp, now_secs() - 1000);
        let settings = LockSettings {
            timeout: Duration::from_millis(300),
            stale_timeout: Duration::from_secs(60),
        };
        // ctime is "now", so Dovecot's rule (max of mtime/ctime at first sight) keeps it fresh…
        assert!(DotLock::acquire(&target, settings).is_err());
        // …while a live foreign lock with a fresh mtime is respected even with a tiny stale timeout
        let fresh = fs::read_to_string(&lp).unwrap();
        assert_eq!(fresh, "1:some-other-host");
    }

    #[test]
    fn replace_renames_over_target() {
        let dir = TempDir::new();
        let target = dir.path().join("dovecot-keywords");
        fs::write(&target, "old").unwrap();
        let mut lock = DotLock::acquire(&target, QUICK).unwrap();
        let f = lock.file().unwrap();
        f.set_len(0).unwrap();
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(b"0 $Junk\n").unwrap();
        lock.replace().unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "0 $Junk\n");
        assert!(!lock_path_for(&target).exists());
    }
}
