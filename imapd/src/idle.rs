//! IDLE wake-ups: one inotify instance for the whole daemon (the kernel allows a user only
//! `fs.inotify.max_user_instances`, 128 by default, so one per session would not scale), one
//! watch per directory however many sessions idle on it, and a `watch` channel per directory
//! whose counter moves on every event. Sessions subscribe to the `new/` and `cur/` of their
//! mailbox and wait for a counter change. A watch is removed when its last subscriber leaves.

use futures_util::StreamExt;
use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::watch;

/// One watched directory.
#[derive(Debug)]
struct Dir {
    wd: WatchDescriptor,
    changes: watch::Sender<u64>,
    watches: Watches,
    hub: Weak<Mutex<Table>>,
    path: PathBuf,
}

impl Drop for Dir {
    fn drop(&mut self) {
        // the directory may be gone already (mailbox deleted): nothing to undo then
        let _ = self.watches.remove(self.wd.clone());
        if let Some(t) = self.hub.upgrade() {
            let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
            t.by_wd.remove(&self.wd.get_watch_descriptor_id());
            if t.by_path
                .get(&self.path)
                .is_some_and(|w| w.strong_count() == 0)
            {
                t.by_path.remove(&self.path);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    by_wd: HashMap<i32, Weak<Dir>>,
    by_path: HashMap<PathBuf, Weak<Dir>>,
}

/// The daemon's inotify.
#[derive(Debug)]
pub struct IdleHub {
    watches: Watches,
    table: Arc<Mutex<Table>>,
}

/// A session's interest in some directories; dropping it ends the watches nobody else uses.
#[derive(Debug)]
pub struct Subscription {
    dirs: Vec<Arc<Dir>>,
    rx: Vec<watch::Receiver<u64>>,
}

impl Subscription {
    /// Waits until one of the directories changes.
    pub async fn changed(&mut self) {
        if self.rx.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.rx.iter_mut().map(|r| Box::pin(r.changed()));
        let (r, _, _) = futures_util::future::select_all(waits).await;
        if r.is_err() {
            // the hub is gone: fall back to the caller's poll timer
            std::future::pending::<()>().await;
        }
    }

    /// The directories, for reuse checks.
    pub fn covers(&self, dirs: &[PathBuf]) -> bool {
        self.dirs.len() == dirs.len() && self.dirs.iter().zip(dirs).all(|(d, p)| d.path == *p)
    }
}

impl IdleHub {
    /// Starts the hub's reader task (needs a tokio runtime). `None` if inotify is unavailable.
    pub fn start() -> Option<IdleHub> {
        let ino = match Inotify::init() {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable: IDLE polls");
                return None;
            }
        };
        let watches = ino.watches();
        let mut stream = match ino.into_event_stream(vec![0u8; 64 * 1024]) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "inotify stream unavailable: IDLE polls");
                return None;
            }
        };
        let table = Arc::new(Mutex::new(Table::default()));
        let weak = Arc::downgrade(&table);
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                let Some(t) = weak.upgrade() else { break };
                let dir = {
                    let t = t.lock().unwrap_or_else(|p| p.into_inner());
                    t.by_wd
                        .get(&ev.wd.get_watch_descriptor_id())
                        .and_then(Weak::upgrade)
                };
                if let Some(d) = dir {
                    d.changes.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        });
        Some(IdleHub { watches, table })
    }

    fn dir(&self, path: &Path) -> Option<Arc<Dir>> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = t.by_path.get(path).and_then(Weak::upgrade) {
            return Some(d);
        }
        let mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::ATTRIB;
        let mut watches = self.watches.clone();
        let wd = match watches.add(path, mask) {
            Ok(wd) => wd,
            Err(e) => {
                tracing::debug!(dir = %path.display(), error = %e, "inotify watch failed");
                return None;
            }
        };
        let d = Arc::new(Dir {
            wd: wd.clone(),
            changes: watch::channel(0).0,
            watches,
            hub: Arc::downgrade(&self.table),
            path: path.to_path_buf(),
        });
        t.by_wd
            .insert(wd.get_watch_descriptor_id(), Arc::downgrade(&d));
        t.by_path.insert(path.to_path_buf(), Arc::downgrade(&d));
        Some(d)
    }

    /// Subscribes to changes of `dirs`.
    pub fn subscribe(&self, dirs: &[PathBuf]) -> Subscription {
        let dirs: Vec<Arc<Dir>> = dirs.iter().filter_map(|p| self.dir(p)).collect();
        let rx = dirs.iter().map(|d| d.changes.subscribe()).collect();
        Subscription { dirs, rx }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_watch_per_directory_and_wakeups() {
        let base = std::env::temp_dir().join(format!("pochta-idle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("new")).unwrap();
        let hub = IdleHub::start().unwrap();
        let dirs = vec![base.join("new")];
        let mut a = hub.subscribe(&dirs);
        let mut b = hub.subscribe(&dirs);
        assert_eq!(hub.table.lock().unwrap().by_path.len(), 1);
        assert!(a.covers(&dirs));
        std::fs::write(base.join("new/x"), b"x").unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.changed())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), b.changed())
            .await
            .unwrap();
        drop(a);
        drop(b);
        assert!(hub.table.lock().unwrap().by_path.is_empty());
        let _ = std::fs::remove_dir_all(&base);
    }
}
