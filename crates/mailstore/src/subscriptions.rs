//! The `subscriptions` file in the Maildir root, as Dovecot's `subscription-file.c` reads and
//! writes it.
//!
//! * Version 1 (no header; also Courier's `courierimapsubscribed`): one full mailbox name per line,
//!   hierarchy levels joined by the separator (`Archive.2024`).
//! * Version 2: starts with the bytes `V\t2\n\n`; each line holds the levels of one name separated
//!   by TAB, each level tab-escaped (`\x01` → `\x011`, TAB → `\x01t`, CR → `\x01r`, LF → `\x01n`).
//!
//! A rewrite keeps the version of the existing file (a new file is version 2, as Dovecot 2.3.19
//! and later write it), goes through `subscriptions.lock` + fsync + rename. Names are storage
//! names (modified UTF-7 unless the Maildir uses UTF-8 names); [`crate::Maildir`] converts.

use std::fs;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::lock::{DotLock, LockSettings};
use crate::names::SEPARATOR;

/// File name in the Maildir root.
pub const SUBSCRIPTIONS_NAME: &str = "subscriptions";
const V2_HEADER: &[u8] = b"V\t2\n\n";
/// Longest line we accept (Dovecot: the mailbox name limit); longer lines are skipped.
const MAX_LINE: usize = 4096;

/// A parsed subscriptions file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriptions {
    /// 1 or 2.
    pub version: u8,
    /// Mailbox names (levels joined with `.`), in file order.
    pub names: Vec<String>,
}

fn tab_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\r' => out.push_str("\x01r"),
            '\n' => out.push_str("\x01n"),
            c => out.push(c),
        }
    }
}

fn tab_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\x01' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('1') => out.push('\x01'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

impl Subscriptions {
    /// Parses the file (invalid UTF-8 is replaced, empty and over-long lines are skipped).
    pub fn parse(data: &[u8]) -> Subscriptions {
        let (version, body) = match data.strip_prefix(V2_HEADER) {
            Some(rest) => (2, rest),
            None => (1, data),
        };
        let text = String::from_utf8_lossy(body);
        let names = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty() && l.len() <= MAX_LINE)
            .map(|l| {
                if version == 2 {
                    l.split('\t')
                        .map(tab_unescape)
                        .collect::<Vec<_>>()
                        .join(&SEPARATOR.to_string())
                } else {
                    l.to_string()
                }
            })
            .filter(|n| !n.is_empty())
            .collect();
        Subscriptions { version, names }
    }

    /// The file content in this version.
    pub fn serialize(&self) -> String {
        let mut out = String::new();
        if self.version >= 2 {
            out.push_str("V\t2\n\n");
        }
        for name in &self.names {
            if self.version >= 2 {
                for (i, level) in name.split(SEPARATOR).enumerate() {
                    if i > 0 {
                        out.push('\t');
                    }
                    tab_escape(level, &mut out);
                }
            } else {
                out.push_str(name);
            }
            out.push('\n');
        }
        out
    }
}

fn normalise(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name.to_string()
    }
}

/// Reads the subscribed names (empty if there is no file).
pub fn read(root: &Path) -> Result<Subscriptions> {
    let path = root.join(SUBSCRIPTIONS_NAME);
    match fs::read(&path) {
        Ok(data) => Ok(Subscriptions::parse(&data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Subscriptions {
            version: 2,
            names: Vec::new(),
        }),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// Subscribes (`on`) or unsubscribes `name`. Returns true if the file changed.
pub fn set(root: &Path, name: &str, on: bool) -> Result<bool> {
    if name.is_empty() || name.chars().any(|c| c.is_control()) {
        return Err(Error::InvalidMailboxName {
            name: name.to_string(),
            reason: "empty or control character",
        });
    }
    let name = normalise(name);
    let path = root.join(SUBSCRIPTIONS_NAME);
    let mut lock = DotLock::acquire(&path, LockSettings::SUBSCRIPTIONS)?;
    let mut subs = read(root)?;
    let present = subs.names.contains(&name);
    if present == on {
        return Ok(false);
    }
    if on {
        subs.names.push(name);
    } else {
        subs.names.retain(|n| *n != name);
    }
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
    f.write_all(subs.serialize().as_bytes())
        .map_err(|e| Error::io("write", &lock_path, e))?;
    lock.replace()?;
    Ok(true)
}

/// Renames subscriptions of `from` and its children to `to` (after a mailbox rename).
pub(crate) fn rename(root: &Path, from: &str, to: &str) -> Result<()> {
    let subs = read(root)?;
    let prefix = format!("{from}{SEPARATOR}");
    for n in subs.names {
        if n == from {
            set(root, &n, false)?;
            set(root, to, true)?;
        } else if let Some(rest) = n.strip_prefix(&prefix) {
            set(root, &n, false)?;
            set(root, &format!("{to}{SEPARATOR}{rest}"), true)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use proptest::prelude::*;

    #[test]
    fn versions() {
        let v1 = Subscriptions::parse(b"INBOX\nArchive.2024\n\nSent\n");
        assert_eq!(v1.version, 1);
        assert_eq!(v1.names, ["INBOX", "Archive.2024", "Sent"]);
        assert_eq!(v1.serialize(), "INBOX\nArchive.2024\nSent\n");
        let v2 = Subscriptions::parse(b"V\t2\n\nArchive\t2024\nTab\x01tbed\nINBOX\n");
        assert_eq!(v2.version, 2);
        assert_eq!(v2.names, ["Archive.2024", "Tab\tbed", "INBOX"]);
        assert_eq!(
            v2.serialize(),
            "V\t2\n\nArchive\t2024\nTab\x01tbed\nINBOX\n"
        );
        // as Dovecot 2.3.19 wrote it here (IMAP CREATE/SUBSCRIBE "Entw&APw-rfe.Sub", "INBOX")
        let dc = Subscriptions::parse(b"V\t2\n\nEntw&APw-rfe\tSub\nINBOX\n");
        assert_eq!(dc.names, ["Entw&APw-rfe.Sub", "INBOX"]);
        // Courier: INBOX.-prefixed names, CRLF tolerated
        let c = Subscriptions::parse(b"INBOX.Sent\r\nINBOX.Drafts\r\n");
        assert_eq!(c.names, ["INBOX.Sent", "INBOX.Drafts"]);
    }

    #[test]
    fn set_keeps_version_and_order() {
        let dir = TempDir::new();
        assert!(set(dir.path(), "Sent", true).unwrap());
        assert!(!set(dir.path(), "Sent", true).unwrap());
        assert!(set(dir.path(), "inbox", true).unwrap());
        let p = dir.path().join(SUBSCRIPTIONS_NAME);
        assert_eq!(fs::read_to_string(&p).unwrap(), "V\t2\n\nSent\nINBOX\n");
        // a version 1 file stays version 1
        fs::write(&p, "Sent\n").unwrap();
        assert!(set(dir.path(), "A.B", true).unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), "Sent\nA.B\n");
        fs::write(&p, "V\t2\n\nA\tB\n").unwrap();
        assert!(set(dir.path(), "C.D", true).unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), "V\t2\n\nA\tB\nC\tD\n");
        assert!(set(dir.path(), "A.B", false).unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), "V\t2\n\nC\tD\n");
        rename(dir.path(), "C", "X").unwrap();
        assert_eq!(read(dir.path()).unwrap().names, ["X.D"]);
        assert!(!dir.path().join("subscriptions.lock").exists());
    }

    proptest! {
        #[test]
        fn round_trip(v2 in any::<bool>(),
                      names in proptest::collection::vec(
                          "[^.\\n\\r\\x00]{1,8}(\\.[^.\\n\\r\\x00]{1,8}){0,2}", 0..6)) {
            let names: Vec<String> = if v2 {
                names
            } else {
                names.into_iter().filter(|n| !n.contains('\t') && !n.contains('\x01')).collect()
            };
            let s = Subscriptions { version: if v2 { 2 } else { 1 }, names };
            let back = Subscriptions::parse(s.serialize().as_bytes());
            prop_assert_eq!(back, s);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = Subscriptions::parse(&data);
            let _ = s.serialize();
        }
    }
}
