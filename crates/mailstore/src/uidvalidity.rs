//! UIDVALIDITY for new mailboxes, as Dovecot's `mailbox-uidvalidity.c` allocates it: the root's
//! `dovecot-uidvalidity` holds the last value (8 lowercase hex digits, no LF) and an empty marker
//! file `dovecot-uidvalidity.<hex>` names it; the next value is claimed by renaming the marker to
//! `<hex+1>` (a rename is atomic, so two processes never get the same value). Without files the
//! current time starts the sequence. Also mailbox GUIDs.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The file in the Maildir root.
pub const UIDVALIDITY_NAME: &str = "dovecot-uidvalidity";
const RETRY_COUNT: usize = 10;

static FALLBACK: Mutex<u32> = Mutex::new(0);

/// Current time, strictly increasing within this process (Dovecot's fallback).
fn next_fallback() -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
        .max(1);
    let mut last = FALLBACK.lock().unwrap_or_else(|p| p.into_inner());
    *last = if *last < now {
        now
    } else {
        last.wrapping_add(1).max(1)
    };
    *last
}

fn parse_hex(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

fn marker(path: &Path, v: u32) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{v:08x}"));
    s.into()
}

fn write_value(path: &Path, v: u32) {
    if let Ok(f) = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
    {
        let _ = f.write_all_at(format!("{v:08x}").as_bytes(), 0);
    }
}

/// Renames `<path>.<v>` to `<path>.<v+1>`, trying the next values on ENOENT (a racing process got
/// it).
fn claim(path: &Path, v: &mut u32) -> io::Result<()> {
    let mut result = Ok(());
    for _ in 0..RETRY_COUNT {
        let src = marker(path, *v);
        *v = v.wrapping_add(1);
        result = fs::rename(&src, marker(path, *v));
        match &result {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            _ => break,
        }
    }
    result
}

fn rescan(root: &Path, path: &Path) -> u32 {
    let Ok(rd) = fs::read_dir(root) else {
        return next_fallback();
    };
    let prefix = format!("{UIDVALIDITY_NAME}.");
    let (mut min, mut max) = (u32::MAX, 0u32);
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if let Some(v) = parse_hex(hex) {
            min = min.min(v);
            max = max.max(v);
        }
    }
    if max == 0 {
        let mut v = next_fallback();
        for _ in 0..RETRY_COUNT {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(marker(path, v))
            {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => v = next_fallback(),
                Err(_) => return v,
            }
        }
        write_value(path, v);
        return v;
    }
    if min != max {
        let _ = fs::remove_file(marker(path, min));
    }
    let mut v = max;
    if claim(path, &mut v).is_err() {
        return next_fallback();
    }
    write_value(path, v);
    v
}

/// Allocates the UIDVALIDITY of a new mailbox under the Maildir `root` (never fails: like Dovecot
/// it falls back to the clock).
pub fn next_uid_validity(root: &Path) -> u32 {
    let path = root.join(UIDVALIDITY_NAME);
    let mut f = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(_) => return rescan(root, &path),
    };
    let mut buf = [0u8; 8];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return rescan(root, &path),
        }
    }
    let Some(mut v) = std::str::from_utf8(&buf[..n]).ok().and_then(parse_hex) else {
        return rescan(root, &path);
    };
    if claim(&path, &mut v).is_err() {
        return rescan(root, &path);
    }
    let _ = f.write_all_at(format!("{v:08x}").as_bytes(), 0);
    v
}

/// A new random 128-bit GUID as 32 lowercase hex digits (mailbox GUID in the uidlist header).
pub fn new_guid() -> String {
    let mut bytes = [0u8; 16];
    let ok = fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !ok {
        // no urandom (chroot?): time + pid + a counter are unique enough for an identifier
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        bytes[..8].copy_from_slice(&d.as_nanos().to_le_bytes()[..8]);
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
        bytes[12..].copy_from_slice(&next_fallback().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn sequence_like_dovecot() {
        let dir = TempDir::new();
        let a = next_uid_validity(dir.path());
        let b = next_uid_validity(dir.path());
        let c = next_uid_validity(dir.path());
        assert!(a > 1_600_000_000);
        assert_eq!((b, c), (a + 1, a + 2));
        let content = fs::read_to_string(dir.path().join(UIDVALIDITY_NAME)).unwrap();
        assert_eq!(content, format!("{c:08x}"));
        assert!(dir
            .path()
            .join(format!("{UIDVALIDITY_NAME}.{c:08x}"))
            .exists());
        assert!(!dir
            .path()
            .join(format!("{UIDVALIDITY_NAME}.{a:08x}"))
            .exists());
        // a broken main file is recovered from the marker
        fs::write(dir.path().join(UIDVALIDITY_NAME), "zz").unwrap();
        assert_eq!(next_uid_validity(dir.path()), c + 1);
    }

    #[test]
    fn guid_format() {
        let g = new_guid();
        assert_eq!(g.len(), 32);
        assert!(g
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(g, new_guid());
    }
}
