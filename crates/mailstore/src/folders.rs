//! Maildir++ folders: list, create, delete, rename. A folder `A.B` is the directory `<root>/.A.B`
//! with `new/`, `cur/`, `tmp/` and an empty `maildirfolder` file; its parent `A` need not exist
//! (IMAP then shows it as `\NonExistent`/`\Noselect` with children).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::names::{mutf7_decode, mutf7_encode, MailboxName, SEPARATOR};
use crate::subscriptions;
use crate::Maildir;

/// Marker file of a Maildir++ folder.
pub const MAILDIRFOLDER_NAME: &str = "maildirfolder";
/// Where Dovecot moves a folder before deleting it recursively.
const TRASHED_NAME: &str = ".DOVECOT-TRASHED";

fn mkdir(path: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("mkdir", path, e)),
    }
}

impl Maildir {
    /// Opens a mailbox (IMAP name, `.` separator; `INBOX` = the root) if it exists.
    pub fn mailbox(&self, name: &str) -> Result<Mailbox> {
        let name = MailboxName::new(name)?;
        let dir = self.dir_of(&name);
        if name.is_inbox() {
            // INBOX always exists (created on first use)
            self.create_if_missing()?;
        } else if !dir.join("cur").is_dir() {
            return Err(Error::MailboxNotFound { path: dir });
        }
        Ok(Mailbox::new(self.root().to_path_buf(), dir, name))
    }

    /// INBOX (created if missing).
    pub fn inbox(&self) -> Result<Mailbox> {
        self.mailbox("INBOX")
    }

    /// All selectable mailboxes: INBOX first, then the folders sorted by name. Directories whose
    /// names don't decode (bad modified UTF-7) or lack `cur/` are skipped.
    pub fn list_mailboxes(&self) -> Result<Vec<MailboxName>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(self.root()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![MailboxName::inbox()]),
            Err(e) => return Err(Error::io("opendir", self.root(), e)),
        };
        for entry in rd.flatten() {
            let os = entry.file_name();
            let Some(dir_name) = os.to_str() else {
                continue;
            };
            if !dir_name.starts_with('.') || dir_name == TRASHED_NAME {
                continue;
            }
            let Ok(name) = MailboxName::from_dir_name(dir_name, self.utf8_names()) else {
                continue;
            };
            if entry.path().join("cur").is_dir() {
                out.push(name);
            }
        }
        out.sort();
        out.insert(0, MailboxName::inbox());
        Ok(out)
    }

    /// Creates a folder (directory, `new/cur/tmp`, `maildirfolder`).
    pub fn create_mailbox(&self, name: &str) -> Result<()> {
        let name = MailboxName::new(name)?;
        let dir = self.dir_of(&name);
        if name.is_inbox() || dir.join("cur").is_dir() {
            return Err(Error::MailboxExists { path: dir });
        }
        self.create_if_missing()?;
        mkdir(&dir)?;
        for sub in ["cur", "new", "tmp"] {
            mkdir(&dir.join(sub))?;
        }
        let marker = dir.join(MAILDIRFOLDER_NAME);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&marker)
            .map_err(|e| Error::io("open", &marker, e))?;
        Ok(())
    }

    /// Deletes a folder and its messages (children stay: they are folders of their own). INBOX
    /// cannot be deleted. The directory is first renamed away, so a half-finished delete never
    /// leaves a half-empty mailbox visible.
    pub fn delete_mailbox(&self, name: &str) -> Result<()> {
        let name = MailboxName::new(name)?;
        if name.is_inbox() {
            return Err(Error::NotAllowed {
                reason: "INBOX cannot be deleted",
            });
        }
        let dir = self.dir_of(&name);
        if !dir.join("cur").is_dir() {
            return Err(Error::MailboxNotFound { path: dir });
        }
        let trash = self.root().join(TRASHED_NAME);
        if trash.exists() {
            fs::remove_dir_all(&trash).map_err(|e| Error::io("rmdir", &trash, e))?;
        }
        fs::rename(&dir, &trash).map_err(|e| Error::io("rename", &dir, e))?;
        fs::remove_dir_all(&trash).map_err(|e| Error::io("rmdir", &trash, e))?;
        Ok(())
    }

    /// Renames a folder and its children (`A` → `B` moves `.A` and `.A.*`), and their
    /// subscriptions. Renaming INBOX moves its messages into a new folder `to` and leaves INBOX
    /// empty (RFC 3501 §6.3.5); they get new UIDs there.
    pub fn rename_mailbox(&self, from: &str, to: &str) -> Result<()> {
        let from = MailboxName::new(from)?;
        let to = MailboxName::new(to)?;
        if to.is_inbox() {
            return Err(Error::NotAllowed {
                reason: "cannot rename a mailbox to INBOX",
            });
        }
        if from.is_inbox() {
            return self.rename_inbox(&to);
        }
        let src = self.dir_of(&from);
        let dst = self.dir_of(&to);
        if !src.join("cur").is_dir() {
            return Err(Error::MailboxNotFound { path: src });
        }
        if dst.exists() {
            return Err(Error::MailboxExists { path: dst });
        }
        let child_prefix = format!("{}{SEPARATOR}", from.as_str());
        if to.as_str().starts_with(&child_prefix) {
            return Err(Error::NotAllowed {
                reason: "cannot rename a mailbox into its own child",
            });
        }
        // children first (they are listed from the names, before the parent moves)
        let children: Vec<MailboxName> = self
            .list_mailboxes()?
            .into_iter()
            .filter(|n| n.as_str().starts_with(&child_prefix))
            .collect();
        fs::rename(&src, &dst).map_err(|e| Error::io("rename", &src, e))?;
        for child in children {
            let rest = &child.as_str()[child_prefix.len()..];
            let new = MailboxName::new(&format!("{}{SEPARATOR}{rest}", to.as_str()))?;
            let (a, b) = (self.dir_of(&child), self.dir_of(&new));
            fs::rename(&a, &b).map_err(|e| Error::io("rename", &a, e))?;
        }
        let (old, new) = (
            self.storage_name(from.as_str()),
            self.storage_name(to.as_str()),
        );
        subscriptions::rename(self.root(), &old, &new)?;
        Ok(())
    }

    /// INBOX's messages into a new folder `to`, under INBOX's uidlist lock (so no delivery lands
    /// half-way); INBOX's uidlist is emptied but keeps its UIDVALIDITY and next UID.
    fn rename_inbox(&self, to: &MailboxName) -> Result<()> {
        use crate::lock::{DotLock, LockSettings};
        use crate::{keywords, uidlist};
        self.create_mailbox(to.as_str())?;
        let dst = self.dir_of(to);
        let root = self.root();
        let _lock = DotLock::acquire(&root.join(uidlist::UIDLIST_NAME), LockSettings::UIDLIST)?;
        // keyword letters keep their meaning in the new folder
        let kw_src = root.join(keywords::KEYWORDS_NAME);
        if kw_src.exists() {
            let kw_dst = dst.join(keywords::KEYWORDS_NAME);
            fs::copy(&kw_src, &kw_dst).map_err(|e| Error::io("copy", &kw_src, e))?;
        }
        for sub in ["new", "cur"] {
            let from_dir = root.join(sub);
            let rd = match fs::read_dir(&from_dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("opendir", &from_dir, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| Error::io("readdir", &from_dir, e))?;
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let target = dst.join(sub).join(entry.file_name());
                match fs::rename(entry.path(), &target) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("rename", &entry.path(), e)),
                }
            }
            for dir in [&from_dir, &dst.join(sub)] {
                fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io("fsync", dir, e))?;
            }
        }
        if let Ok(Some(mut list)) = uidlist::read(root) {
            list.records.clear();
            list.needs_rewrite = false;
            uidlist::rewrite(root, &list)?;
        }
        Ok(())
    }

    /// Subscribed mailbox names (UTF-8), in file order. The file holds storage names, as
    /// Dovecot writes them: modified UTF-7 unless the Maildir uses UTF-8 names; a name that does
    /// not decode is returned as it is.
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        let names = subscriptions::read(self.root())?.names;
        if self.utf8_names() {
            return Ok(names);
        }
        Ok(names
            .into_iter()
            .map(|n| mutf7_decode(&n).unwrap_or(n))
            .collect())
    }

    fn storage_name(&self, name: &str) -> String {
        if self.utf8_names() {
            name.to_string()
        } else {
            mutf7_encode(name)
        }
    }

    /// Subscribes to a mailbox name (it need not exist, as IMAP allows). True if it changed.
    pub fn subscribe(&self, name: &str) -> Result<bool> {
        let name = MailboxName::new(name)?;
        self.create_if_missing()?;
        subscriptions::set(self.root(), &self.storage_name(name.as_str()), true)
    }

    /// Removes a subscription. True if it changed.
    pub fn unsubscribe(&self, name: &str) -> Result<bool> {
        subscriptions::set(self.root(), &self.storage_name(name), false)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::TempDir;
    use crate::{Error, Maildir};
    use std::fs;

    #[test]
    fn create_list_rename_delete() {
        let dir = TempDir::new();
        let m = Maildir::open(dir.path().join("M"));
        m.create_mailbox("Lists.rust").unwrap();
        m.create_mailbox("Entwürfe").unwrap();
        m.create_mailbox("Lists.rust.wg").unwrap();
        assert!(matches!(
            m.create_mailbox("Lists.rust"),
            Err(Error::MailboxExists { .. })
        ));
        assert!(m.root().join(".Lists.rust/maildirfolder").is_file());
        assert!(m.root().join(".Entw&APw-rfe/cur").is_dir());
        let names: Vec<String> = m
            .list_mailboxes()
            .unwrap()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["INBOX", "Entwürfe", "Lists.rust", "Lists.rust.wg"]);
        m.subscribe("Lists.rust").unwrap();
        m.subscribe("Lists.rust.wg").unwrap();
        m.rename_mailbox("Lists.rust", "Rust").unwrap();
        let names: Vec<String> = m
            .list_mailboxes()
            .unwrap()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["INBOX", "Entwürfe", "Rust", "Rust.wg"]);
        assert_eq!(m.subscriptions().unwrap(), ["Rust", "Rust.wg"]);
        m.delete_mailbox("Rust").unwrap();
        assert!(!m.folder_exists("Rust") && m.folder_exists("Rust.wg"));
        assert!(m.delete_mailbox("INBOX").is_err());
        // renaming INBOX moves its messages into a new folder
        let d = m.deliver(None, b"x\n", &Default::default()).unwrap();
        let old_uidv = m.inbox().unwrap().uidlist().unwrap().unwrap().uid_validity;
        m.rename_mailbox("INBOX", "Old").unwrap();
        let st = m.inbox().unwrap().sync(Default::default()).unwrap();
        assert!(st.messages.is_empty());
        assert_eq!((st.uid_validity, st.next_uid), (old_uidv, d.uid + 1));
        let old = m.mailbox("Old").unwrap().sync(Default::default()).unwrap();
        assert_eq!(old.messages.len(), 1);
        assert_ne!(old.uid_validity, old_uidv);
        assert!(m.rename_mailbox("Old", "INBOX").is_err());
        assert!(m.delete_mailbox("Rust").is_err());
        assert!(!m.root().join(".DOVECOT-TRASHED").exists());
        let u = Maildir::open(dir.path().join("U")).with_utf8_names(true);
        u.create_mailbox("Entwürfe").unwrap();
        assert!(u.root().join(".Entwürfe/cur").is_dir());
        assert_eq!(u.list_mailboxes().unwrap()[1].as_str(), "Entwürfe");
        fs::create_dir_all(u.root().join(".junk-without-cur")).unwrap();
        assert_eq!(u.list_mailboxes().unwrap().len(), 2);
    }
}
