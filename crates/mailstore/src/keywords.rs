//! `dovecot-keywords`: names of the keyword letters `a`–`z` of one mailbox, lines `<idx> <name>`.
//! Written only while holding the uidlist lock, through `dovecot-keywords.lock` + rename, and the
//! mtime must grow with every rewrite (readers cache by mtime). Lookups are case-insensitive, as
//! Dovecot's.

use std::fs;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::lock::{lock_path_for, DotLock, LockSettings};

/// File name in the mailbox directory.
pub const KEYWORDS_NAME: &str = "dovecot-keywords";
/// Maildir has 26 keyword letters.
pub const MAX_KEYWORDS: usize = 26;

/// The keyword table of a mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keywords {
    names: Vec<Option<String>>,
    /// mtime (seconds) of the file this was read from; a rewrite must end up later.
    mtime: i64,
}

impl Keywords {
    /// Parses the file content. Lines without a space, with an index out of 0..26 or an empty name
    /// are skipped as Dovecot skips them (its `atoi()`: leading digits, anything else is 0).
    pub fn parse(data: &[u8]) -> Self {
        let mut kw = Keywords::default();
        let text = String::from_utf8_lossy(data);
        for line in text.split('\n') {
            let Some((idx, name)) = line.split_once(' ') else {
                continue;
            };
            let digits: String = idx.chars().take_while(char::is_ascii_digit).collect();
            let idx: usize = if idx.starts_with('-') {
                usize::MAX
            } else {
                digits.parse().unwrap_or(0)
            };
            if idx >= MAX_KEYWORDS || name.is_empty() {
                continue;
            }
            if kw.names.len() <= idx {
                kw.names.resize(idx + 1, None);
            }
            kw.names[idx] = Some(name.to_string());
        }
        kw
    }

    /// The file content Dovecot would write.
    pub fn serialize(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.names.iter().enumerate() {
            if let Some(n) = n {
                s.push_str(&format!("{i} {n}\n"));
            }
        }
        s
    }

    /// The name of letter slot `idx`; `None` if unassigned (Dovecot then shows `unknown-<idx>`).
    pub fn name(&self, idx: u8) -> Option<&str> {
        self.names.get(usize::from(idx)).and_then(|n| n.as_deref())
    }

    /// The name IMAP shows for slot `idx`, with Dovecot's fallback for unmapped letters.
    pub fn display_name(&self, idx: u8) -> String {
        match self.name(idx) {
            Some(n) => n.to_string(),
            None => format!("unknown-{idx}"),
        }
    }

    /// The slot of a keyword name (case-insensitive).
    pub fn index_of(&self, name: &str) -> Option<u8> {
        self.names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .map(|i| i as u8)
    }

    /// Assigned slots and their names.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &str)> {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (i as u8, n)))
    }

    /// The slot of `name`, assigning the first free one if needed. `Ok(true)` in the second element
    /// if the table changed.
    pub fn get_or_assign(&mut self, name: &str) -> Result<(u8, bool)> {
        if !is_valid_keyword(name) {
            return Err(Error::InvalidKeyword {
                name: name.to_string(),
            });
        }
        if let Some(i) = self.index_of(name) {
            return Ok((i, false));
        }
        let free = (0..MAX_KEYWORDS).find(|&i| self.names.get(i).is_none_or(|n| n.is_none()));
        let Some(i) = free else {
            return Err(Error::KeywordsFull);
        };
        if self.names.len() <= i {
            self.names.resize(i + 1, None);
        }
        self.names[i] = Some(name.to_string());
        Ok((i as u8, true))
    }
}

/// True for an IMAP flag keyword (RFC 3501 `atom`: no space, control, `(){%*"\]`, not a
/// `\` system flag) of at most 255 bytes: only such names go into `dovecot-keywords`.
pub fn is_valid_keyword(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| {
            !c.is_control() && !matches!(c, ' ' | '(' | ')' | '{' | '%' | '*' | '"' | '\\' | ']')
        })
}

/// Reads `<dir>/dovecot-keywords` (empty table if missing).
pub fn read(dir: &Path) -> Result<Keywords> {
    let path = dir.join(KEYWORDS_NAME);
    match fs::read(&path) {
        Ok(data) => {
            let mut kw = Keywords::parse(&data);
            kw.mtime = fs::metadata(&path).map(|m| m.mtime()).unwrap_or(0);
            Ok(kw)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Keywords::default()),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// Writes the table. The caller must hold the mailbox's uidlist lock (that is what serialises
/// keyword changes, as in Dovecot).
pub(crate) fn write(dir: &Path, kw: &mut Keywords) -> Result<()> {
    let path = dir.join(KEYWORDS_NAME);
    // under the uidlist lock any keywords lock is a leftover
    let _ = fs::remove_file(lock_path_for(&path));
    let settings = LockSettings {
        timeout: std::time::Duration::ZERO,
        stale_timeout: std::time::Duration::from_secs(120),
    };
    let mut lock = DotLock::acquire(&path, settings)?;
    let lock_path = lock.path().to_path_buf();
    let Some(f) = lock.file() else {
        return Err(Error::io(
            "open",
            &lock_path,
            io::Error::other("lock file closed"),
        ));
    };
    f.set_len(0)
        .map_err(|e| Error::io("ftruncate", &lock_path, e))?;
    f.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("lseek", &lock_path, e))?;
    f.write_all(kw.serialize().as_bytes())
        .map_err(|e| Error::io("write", &lock_path, e))?;
    let st = f
        .metadata()
        .map_err(|e| Error::io("fstat", &lock_path, e))?;
    if st.mtime() <= kw.mtime {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let new = if now <= kw.mtime { kw.mtime + 1 } else { now };
        let secs = |s: i64| UNIX_EPOCH + std::time::Duration::from_secs(s.max(0) as u64);
        let times = std::fs::FileTimes::new()
            .set_accessed(secs(now))
            .set_modified(secs(new));
        f.set_times(times)
            .map_err(|e| Error::io("futimens", &lock_path, e))?;
        kw.mtime = new;
    } else {
        kw.mtime = st.mtime();
    }
    lock.replace()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use proptest::prelude::*;

    #[test]
    fn parse_like_dovecot() {
        let kw = Keywords::parse(b"0 $Junk\n1 $NonJunk\nbogus\n30 toohigh\n3 \n2 Work Stuff\n");
        assert_eq!(kw.name(0), Some("$Junk"));
        assert_eq!(kw.name(1), Some("$NonJunk"));
        assert_eq!(kw.name(2), Some("Work Stuff"));
        assert_eq!(kw.name(3), None);
        assert_eq!(kw.display_name(5), "unknown-5");
        assert_eq!(kw.index_of("$nonjunk"), Some(1));
        assert_eq!(kw.serialize(), "0 $Junk\n1 $NonJunk\n2 Work Stuff\n");
    }

    #[test]
    fn assign_until_full() {
        let mut kw = Keywords::parse(b"1 b\n");
        assert_eq!(kw.get_or_assign("x").unwrap(), (0, true));
        assert_eq!(kw.get_or_assign("B").unwrap(), (1, false));
        for i in 2..26 {
            assert_eq!(kw.get_or_assign(&format!("k{i}")).unwrap(), (i as u8, true));
        }
        assert!(matches!(kw.get_or_assign("more"), Err(Error::KeywordsFull)));
        for bad in ["", "a b", "x\ny", "\\Seen", "a]", "(x"] {
            assert!(
                matches!(kw.get_or_assign(bad), Err(Error::InvalidKeyword { .. })),
                "{bad}"
            );
        }
        assert!(is_valid_keyword("$Junk") && is_valid_keyword("Ärger"));
    }

    #[test]
    fn write_grows_mtime() {
        let dir = TempDir::new();
        let mut kw = read(dir.path()).unwrap();
        kw.get_or_assign("$Junk").unwrap();
        write(dir.path(), &mut kw).unwrap();
        let m1 = fs::metadata(dir.path().join(KEYWORDS_NAME))
            .unwrap()
            .mtime();
        kw.get_or_assign("$Forwarded").unwrap();
        write(dir.path(), &mut kw).unwrap();
        let m2 = fs::metadata(dir.path().join(KEYWORDS_NAME))
            .unwrap()
            .mtime();
        assert!(m2 > m1);
        let back = read(dir.path()).unwrap();
        assert_eq!(back.serialize(), "0 $Junk\n1 $Forwarded\n");
        assert!(!dir.path().join("dovecot-keywords.lock").exists());
    }

    proptest! {
        #[test]
        fn round_trip(names in proptest::collection::vec(
                          proptest::option::of("[!-~][ -~]{0,12}"), 0..26)) {
            let mut kw = Keywords::default();
            let mut seen = std::collections::HashSet::new();
            for (i, n) in names.iter().enumerate() {
                if let Some(n) = n {
                    if seen.insert(n.to_ascii_lowercase()) {
                        if kw.names.len() <= i { kw.names.resize(i + 1, None); }
                        kw.names[i] = Some(n.clone());
                    }
                }
            }
            let back = Keywords::parse(kw.serialize().as_bytes());
            prop_assert_eq!(back.serialize(), kw.serialize());
            for (i, n) in kw.iter() { prop_assert_eq!(back.name(i), Some(n)); }
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Keywords::parse(&data);
        }
    }
}
