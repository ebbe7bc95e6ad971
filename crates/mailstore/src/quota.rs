//! Maildir++ quota: the `maildirsize` file in the Maildir root, as Dovecot's `quota-maildir.c` and
//! Courier's `maildirquota.c` keep it.
//!
//! ```text
//! 2147483648S,10000C     limits: bytes S, message count C ("0S" = none)
//! 52428800 812           "<bytes> <count>" totals or deltas, all summed
//! 2048 1                 appended per delivery
//! -4096 -1               appended per expunge
//! ```
//! Deltas are appended with `O_APPEND`, one `write` per line, so concurrent writers never
//! interleave. The file is rebuilt (every folder's `S=` summed, written through
//! `maildirsize.lock` + rename) when it is missing, unparsable, larger than 5120 bytes, its limits
//! differ from the configured ones, or the user looks over quota while the file has more than one
//! delta line or is older than 15 min.

use std::fs::{self, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::filename::Filename;
use crate::lock::{DotLock, LockSettings};

/// File name in the Maildir root.
pub const MAILDIRSIZE_NAME: &str = "maildirsize";
/// Rebuild when the file grows past this (Maildir++ spec, Dovecot `MAILDIRSIZE_MAX_FILE_SIZE`).
const MAX_FILE_SIZE: u64 = 5120;
/// An over-quota verdict from a file older than this is re-checked by a rebuild.
const STALE_SECS: i64 = 15 * 60;

/// A user's limits; `None` = unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaLimit {
    /// Storage limit in bytes (sum of `S=` sizes).
    pub bytes: Option<u64>,
    /// Message count limit.
    pub messages: Option<u64>,
}

impl QuotaLimit {
    /// No limit at all.
    pub fn is_unlimited(&self) -> bool {
        self.bytes.is_none() && self.messages.is_none()
    }

    /// Applies one Dovecot `quota_rule` value (`*:storage=1G`, `*:messages=1000`,
    /// `*:storage=1G:messages=10`, `*:ignore`, `*:bytes=100M`) to `self`, so several rules can be
    /// folded into one limit. Storage without a unit is in kilobytes, as in Dovecot (`storage=`
    /// is in kB unless suffixed; `bytes=` is in bytes). `0` means unlimited. Per-mailbox rules
    /// (other than `*`) and percentage rules (`+10%`) are refused: we keep one limit per user.
    pub fn apply_rule(&mut self, rule: &str) -> std::result::Result<(), String> {
        let rule = rule.trim();
        let (mailbox, rest) = rule
            .split_once(':')
            .ok_or_else(|| format!("invalid quota rule {rule:?}: expected \"*:key=value\""))?;
        if mailbox != "*" {
            return Err(format!(
                "quota rule {rule:?}: only \"*\" (the whole user) is supported"
            ));
        }
        for part in rest.split(':').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case("ignore") || part.eq_ignore_ascii_case("noenforcing") {
                *self = QuotaLimit::default();
                continue;
            }
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("quota rule {rule:?}: {part:?} is not key=value"))?;
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            if value.starts_with('+') || value.starts_with('-') || value.ends_with('%') {
                return Err(format!(
                    "quota rule {rule:?}: relative limits are not supported"
                ));
            }
            let n = match key.as_str() {
                "storage" => parse_size(value, 1024),
                "bytes" => parse_size(value, 1),
                "messages" => parse_size(value, 1),
                _ => return Err(format!("quota rule {rule:?}: unknown key {key:?}")),
            }
            .ok_or_else(|| format!("quota rule {rule:?}: invalid number {value:?}"))?;
            let limit = (n > 0).then_some(n);
            if key == "messages" {
                self.messages = limit;
            } else {
                self.bytes = limit;
            }
        }
        Ok(())
    }

    /// Applies a Dovecot 2.4 userdb quota field: `quota_storage_size` (bytes unless suffixed)
    /// or `quota_message_count`; `0` means unlimited; other keys are ignored.
    pub fn apply_field(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        let bad = || format!("unreadable {key}={value:?}");
        match key {
            "quota_storage_size" => {
                let n = parse_size(value.trim(), 1).ok_or_else(bad)?;
                self.bytes = (n > 0).then_some(n);
            }
            "quota_message_count" => {
                let n: u64 = value.trim().parse().map_err(|_| bad())?;
                self.messages = (n > 0).then_some(n);
            }
            _ => {}
        }
        Ok(())
    }

    /// One `quota_rule` value as a limit (see [`QuotaLimit::apply_rule`]).
    pub fn from_rule(rule: &str) -> std::result::Result<QuotaLimit, String> {
        let mut q = QuotaLimit::default();
        q.apply_rule(rule)?;
        Ok(q)
    }

    /// The limits line as Dovecot writes it (`<bytes>S`, `<count>C`, both comma-joined, or `0S`).
    pub fn header_line(&self) -> String {
        match (self.bytes, self.messages) {
            (Some(b), Some(c)) => format!("{b}S,{c}C"),
            (Some(b), None) => format!("{b}S"),
            (None, Some(c)) => format!("{c}C"),
            (None, None) => "0S".to_string(),
        }
    }
}

/// `<number>[bkmgtBKMGT]` → bytes; a bare number is multiplied by `unit`.
fn parse_size(s: &str, unit: u64) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let mult: u64 = match s[digits..].trim().to_ascii_lowercase().as_str() {
        "" => unit,
        "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A parsed `maildirsize`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirSize {
    /// The limits line.
    pub limit: QuotaLimit,
    /// Sum of all byte lines (may be negative in a broken file).
    pub bytes: i64,
    /// Sum of all count lines.
    pub messages: i64,
    /// Number of lines after the limits line.
    pub lines: usize,
}

/// Why a maildirsize is unusable (it gets rebuilt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirSizeError(pub String);

impl MaildirSize {
    /// Parses the file. The last line must end in LF (otherwise it is a write in progress or a
    /// torn write and the file is treated as broken, as Dovecot does).
    pub fn parse(data: &[u8]) -> std::result::Result<MaildirSize, MaildirSizeError> {
        let err = |s: &str| Err(MaildirSizeError(s.to_string()));
        if data.is_empty() {
            return err("empty file");
        }
        if data.last() != Some(&b'\n') {
            return err("last line does not end in LF");
        }
        let Ok(text) = std::str::from_utf8(&data[..data.len() - 1]) else {
            return err("not ASCII");
        };
        let mut lines = text.split('\n');
        let header = lines.next().unwrap_or("");
        let mut limit = QuotaLimit::default();
        for tok in header.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let kind = tok.chars().last().unwrap_or('S');
            let Ok(n) = tok[..tok.len() - kind.len_utf8()].parse::<u64>() else {
                return err("invalid limits line");
            };
            match kind {
                'S' => limit.bytes = (n > 0).then_some(n),
                'C' => limit.messages = (n > 0).then_some(n),
                // Courier/Dovecot ignore unknown limit kinds
                _ => {}
            }
        }
        let (mut bytes, mut messages, mut count) = (0i64, 0i64, 0usize);
        for line in lines {
            let mut it = line.split_ascii_whitespace();
            let (Some(b), Some(c), None) = (it.next(), it.next(), it.next()) else {
                return err("invalid size line");
            };
            let (Ok(b), Ok(c)) = (b.parse::<i64>(), c.parse::<i64>()) else {
                return err("invalid size line");
            };
            bytes = bytes.saturating_add(b);
            messages = messages.saturating_add(c);
            count += 1;
        }
        Ok(MaildirSize {
            limit,
            bytes,
            messages,
            lines: count,
        })
    }

    /// True if adding `size` bytes and `count` messages exceeds the limits.
    pub fn would_exceed(&self, size: u64, count: u64) -> bool {
        let over = |used: i64, add: u64, limit: Option<u64>| match limit {
            Some(l) => (used.max(0) as u64).saturating_add(add) > l,
            None => false,
        };
        over(self.bytes, size, self.limit.bytes) || over(self.messages, count, self.limit.messages)
    }

    /// True if usage is already at or past a limit.
    fn is_over(&self) -> bool {
        let over = |used: i64, limit: Option<u64>| limit.is_some_and(|l| used.max(0) as u64 >= l);
        over(self.bytes, self.limit.bytes) || over(self.messages, self.limit.messages)
    }
}

/// A delta line `<bytes> <count>\n`.
pub fn delta_line(bytes: i64, count: i64) -> String {
    format!("{bytes} {count}\n")
}

/// Appends one delta line if `maildirsize` exists (one `write`, `O_APPEND`). No file = nothing to
/// keep up to date (it is built when a quota is first checked).
pub fn append_delta(root: &Path, bytes: i64, count: i64) -> Result<()> {
    let path = root.join(MAILDIRSIZE_NAME);
    let mut f = match OpenOptions::new().append(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    f.write_all(delta_line(bytes, count).as_bytes())
        .map_err(|e| Error::io("write", &path, e))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Current usage under `limit`, rebuilding `maildirsize` when the Maildir++ rules say so.
pub fn current(root: &Path, limit: &QuotaLimit) -> Result<MaildirSize> {
    let path = root.join(MAILDIRSIZE_NAME);
    let parsed = match fs::metadata(&path) {
        Ok(md) if md.len() <= MAX_FILE_SIZE => {
            let data = match fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Error::io("read", &path, e)),
            };
            MaildirSize::parse(&data).ok().map(|m| (m, md.mtime()))
        }
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("stat", &path, e)),
    };
    if let Some((m, mtime)) = parsed {
        let fresh = !m.is_over() || (m.lines <= 1 && now_secs() - mtime <= STALE_SECS);
        if m.limit == *limit && fresh {
            return Ok(m);
        }
    }
    rebuild(root, limit)
}

/// Sums every message of every folder and rewrites `maildirsize`. If another process is rebuilding
/// it right now (its lock exists), the computed totals are returned without writing.
pub fn rebuild(root: &Path, limit: &QuotaLimit) -> Result<MaildirSize> {
    let (bytes, messages) = scan_usage(root)?;
    let m = MaildirSize {
        limit: *limit,
        bytes: bytes as i64,
        messages: messages as i64,
        lines: 1,
    };
    let path = root.join(MAILDIRSIZE_NAME);
    let settings = LockSettings::MAILDIRSIZE;
    let mut lock = match DotLock::acquire(&path, settings) {
        Ok(l) => l,
        Err(Error::LockTimeout { .. }) => return Ok(m),
        Err(e) => return Err(e),
    };
    let content = format!(
        "{}\n{}",
        limit.header_line(),
        delta_line(m.bytes, m.messages)
    );
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
    f.write_all(content.as_bytes())
        .map_err(|e| Error::io("write", &lock_path, e))?;
    lock.replace()?;
    Ok(m)
}

/// Bytes (`S=` of the name, else the file size) and messages in new/ and cur/ of INBOX and every
/// Maildir++ folder.
pub fn scan_usage(root: &Path) -> Result<(u64, u64)> {
    let mut total = (0u64, 0u64);
    let mut dirs = vec![root.to_path_buf()];
    let rd = fs::read_dir(root).map_err(|e| Error::io("opendir", root, e))?;
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') && name != "." && name != ".." {
            let p = entry.path();
            if p.join("cur").is_dir() {
                dirs.push(p);
            }
        }
    }
    for dir in dirs {
        for sub in ["new", "cur"] {
            let d = dir.join(sub);
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("opendir", &d, e)),
            };
            for entry in rd.flatten() {
                let name = entry.file_name();
                let Some(fname) = name.to_str().and_then(|n| Filename::parse(n).ok()) else {
                    continue;
                };
                let size = match fname.size() {
                    Some(s) => s,
                    None => match entry.metadata() {
                        Ok(md) => md.len(),
                        // expunged while we looked
                        Err(_) => continue,
                    },
                };
                total.0 += size;
                total.1 += 1;
            }
        }
    }
    Ok(total)
}

/// Opens `maildirsize` for appending with mode 0600 if it must be created by a caller (tests).
#[cfg(test)]
pub(crate) fn create_for_test(root: &Path, content: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(root.join(MAILDIRSIZE_NAME))
        .unwrap();
    f.write_all(content.as_bytes()).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use proptest::prelude::*;

    #[test]
    fn parse_spec_sample() {
        let m =
            MaildirSize::parse(b"2147483648S,10000C\n52428800 812\n2048 1\n-4096 -1\n").unwrap();
        assert_eq!(m.limit.bytes, Some(2147483648));
        assert_eq!(m.limit.messages, Some(10000));
        assert_eq!(
            (m.bytes, m.messages, m.lines),
            (52428800 + 2048 - 4096, 812, 3)
        );
        // Courier writes the count line padded with spaces
        let m = MaildirSize::parse(b"1000S\n       100        2\n").unwrap();
        assert_eq!((m.bytes, m.messages), (100, 2));
        assert_eq!(
            MaildirSize::parse(b"0S\n0 0\n").unwrap().limit,
            QuotaLimit::default()
        );
        assert_eq!(
            MaildirSize::parse(b"10C\n").unwrap().limit.messages,
            Some(10)
        );
    }

    #[test]
    fn broken_files() {
        for bad in [
            &b""[..],
            b"1000S",
            b"1000S\n12",
            b"xS\n",
            b"1000S\n1 2 3\n",
            b"1000S\nx 1\n",
        ] {
            assert!(
                MaildirSize::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rules() {
        let q = QuotaLimit::from_rule("*:storage=1G").unwrap();
        assert_eq!(
            q,
            QuotaLimit {
                bytes: Some(1 << 30),
                messages: None
            }
        );
        let q = QuotaLimit::from_rule("*:messages=1000").unwrap();
        assert_eq!(q.messages, Some(1000));
        let q = QuotaLimit::from_rule("*:storage=100:messages=5").unwrap();
        assert_eq!(
            q,
            QuotaLimit {
                bytes: Some(102400),
                messages: Some(5)
            }
        );
        assert_eq!(
            QuotaLimit::from_rule("*:bytes=1000").unwrap().bytes,
            Some(1000)
        );
        assert_eq!(
            QuotaLimit::from_rule("*:storage=0").unwrap(),
            QuotaLimit::default()
        );
        let mut q = QuotaLimit::from_rule("*:storage=1M").unwrap();
        q.apply_rule("*:messages=3").unwrap();
        assert_eq!(
            q,
            QuotaLimit {
                bytes: Some(1 << 20),
                messages: Some(3)
            }
        );
        q.apply_rule("*:ignore").unwrap();
        assert!(q.is_unlimited());
        for bad in [
            "storage=1G",
            "Trash:storage=1G",
            "*:storage=+10%",
            "*:storage=1Q",
            "*:x=1",
        ] {
            assert!(QuotaLimit::from_rule(bad).is_err(), "{bad}");
        }
        assert_eq!(q.header_line(), "0S");
        let q = QuotaLimit {
            bytes: Some(5),
            messages: Some(7),
        };
        assert_eq!(q.header_line(), "5S,7C");
    }

    #[test]
    fn rebuild_and_rules_for_rebuilding() {
        let dir = TempDir::new();
        let root = dir.path();
        for d in ["new", "cur", "tmp", ".A/cur", ".A/new"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("new/1.M1P1.h,S=100,W=104"), b"x").unwrap();
        fs::write(root.join("cur/2.M1P1.h:2,S"), b"12345").unwrap();
        fs::write(root.join(".A/cur/3.M1P1.h,S=1000:2,"), b"").unwrap();
        fs::write(root.join("tmp/4.M1P1.h,S=77"), b"").unwrap();
        let limit = QuotaLimit {
            bytes: Some(2000),
            messages: None,
        };
        let m = current(root, &limit).unwrap();
        assert_eq!((m.bytes, m.messages), (1105, 3));
        assert_eq!(
            fs::read_to_string(root.join(MAILDIRSIZE_NAME)).unwrap(),
            "2000S\n1105 3\n"
        );
        append_delta(root, 500, 1).unwrap();
        let m = current(root, &limit).unwrap();
        assert_eq!((m.bytes, m.messages, m.lines), (1605, 4, 2));
        assert!(m.would_exceed(396, 1) && !m.would_exceed(395, 1));
        // a different limit forces a rebuild from the real files
        let limit2 = QuotaLimit {
            bytes: Some(3000),
            messages: Some(10),
        };
        let m = current(root, &limit2).unwrap();
        assert_eq!((m.bytes, m.messages), (1105, 3));
        // over quota with several delta lines: rebuilt (the deltas lied)
        create_for_test(root, "3000S,10C\n5000 3\n1 1\n");
        let m = current(root, &limit2).unwrap();
        assert_eq!((m.bytes, m.messages), (1105, 3));
        // broken: rebuilt
        create_for_test(root, "3000S,10C\n12");
        assert_eq!(current(root, &limit2).unwrap().bytes, 1105);
    }

    proptest! {
        #[test]
        fn round_trip(b in proptest::option::of(1u64..u64::MAX / 2),
                      c in proptest::option::of(1u64..1 << 40),
                      deltas in proptest::collection::vec(
                          (-100_000i64..100_000, -10i64..10), 0..20)) {
            let limit = QuotaLimit { bytes: b, messages: c };
            let mut s = format!("{}\n", limit.header_line());
            for (x, y) in &deltas { s.push_str(&delta_line(*x, *y)); }
            let m = MaildirSize::parse(s.as_bytes()).unwrap();
            prop_assert_eq!(m.limit, limit);
            prop_assert_eq!(m.bytes, deltas.iter().map(|d| d.0).sum::<i64>());
            prop_assert_eq!(m.messages, deltas.iter().map(|d| d.1).sum::<i64>());
            prop_assert_eq!(m.lines, deltas.len());
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = MaildirSize::parse(&data);
        }

        #[test]
        fn rule_never_panics(s in "\\PC{0,30}") {
            let _ = QuotaLimit::from_rule(&s);
        }
    }
}
