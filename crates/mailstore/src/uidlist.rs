//! `dovecot-uidlist`: the UID ↔ file map Dovecot keeps next to `cur/`.
//!
//! Version 3 (Dovecot ≥ 1.1): header `3 V<uidvalidity> N<nextuid> G<guid>[ <Key><value>…]`, records
//! `<uid>[ <Key><value>…] :<base name>`. Version 1 (Dovecot 1.0, Courier's `courierimapuiddb`):
//! header `1 <uidvalidity> <nextuid>`, records `<uid> <filename>`. Version 2 (a few Dovecot 1.0
//! betas) has a flags field after the UID; current Dovecot refuses it and starts over, we read it
//! so UIDs survive, and rewrite it as version 3. What Dovecot calls a broken file is a
//! [`ParseError`] here.
//!
//! The file is only appended to (new UIDs) or replaced whole (`dovecot-uidlist.tmp` + rename), both
//! under `dovecot-uidlist.lock`; readers take no lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// File name of the UID list.
pub const UIDLIST_NAME: &str = "dovecot-uidlist";
/// Temporary file for full rewrites.
pub const UIDLIST_TMP_NAME: &str = "dovecot-uidlist.tmp";

/// One `<uid> … :<filename>` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidRecord {
    /// The IMAP UID.
    pub uid: u32,
    /// Extension fields `<Key><value>` with Key in `A`–`Z` (`S` size, `W` vsize, `G` GUID, `P` POP3
    /// UIDL, `O` POP3 order), in file order.
    pub ext: Vec<(char, String)>,
    /// The file name as last known (the uidlist stores the base name; older files the full name).
    pub filename: String,
}

impl UidRecord {
    /// The message identity: the file name up to the first `:`.
    pub fn base(&self) -> &str {
        self.filename.split(':').next().unwrap_or("")
    }

    /// The value of extension `key`, if present.
    pub fn ext(&self, key: char) -> Option<&str> {
        self.ext
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or with `None` removes) an extension field.
    pub fn set_ext(&mut self, key: char, value: Option<&str>) {
        self.ext.retain(|(k, _)| *k != key);
        if let Some(v) = value {
            self.ext.push((key, v.to_string()));
        }
    }

    /// The POP3 UIDL Dovecot shows for this message with the default `pop3_uidl_format =
    /// %08Xu%08Xv` unless the record carries a `P` field (migrated UIDLs).
    pub fn pop3_uidl(&self, uid_validity: u32) -> String {
        match self.ext('P') {
            Some(p) => p.to_string(),
            // Dovecot's var_expand prints %X in lowercase (seen against Dovecot 2.3.19 pop3)
            None => format!("{:08x}{:08x}", self.uid, uid_validity),
        }
    }
}

/// A parsed `dovecot-uidlist`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidList {
    /// Format version read (1, 2 or 3); we always write 3.
    pub version: u8,
    /// IMAP UIDVALIDITY.
    pub uid_validity: u32,
    /// Next UID to assign: the header's `N`, or one past the last record if that is higher.
    pub next_uid: u32,
    /// Mailbox GUID (32 hex digits), if the header has one.
    pub guid: Option<String>,
    /// Header keys we don't interpret, kept on rewrite.
    pub header_ext: Vec<(char, String)>,
    /// Records by ascending UID.
    pub records: Vec<UidRecord>,
    /// The file needs a full rewrite (old version, dropped fields or duplicate lines).
    pub needs_rewrite: bool,
}

/// Why a uidlist is broken (Dovecot would delete it and start over).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

fn perr(line: usize, reason: impl Into<String>) -> ParseError {
    ParseError {
        line,
        reason: reason.into(),
    }
}

/// `strtoul(value, NULL, 10)` restricted to u32: leading digits, anything after ignored.
fn c_strtoul(s: &str) -> u32 {
    let digits = s.bytes().take_while(u8::is_ascii_digit);
    let mut v: u64 = 0;
    for d in digits {
        v = (v * 10 + u64::from(d - b'0')).min(u64::from(u32::MAX));
    }
    v as u32
}

fn is_guid(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl UidList {
    /// An empty version-3 list for a new mailbox.
    pub fn new(uid_validity: u32, guid: String) -> Self {
        UidList {
            version: 3,
            uid_validity,
            next_uid: 1,
            guid: Some(guid),
            header_ext: Vec::new(),
            records: Vec::new(),
            needs_rewrite: false,
        }
    }

    /// Parses the whole file. Lines end in LF; a final line without LF is ignored as Dovecot's
    /// line reader does (it is a write in progress).
    pub fn parse(data: &[u8]) -> std::result::Result<UidList, ParseError> {
        // A file name that is not UTF-8 (no Maildir writer we know makes one) must not cost the
        // whole mailbox its UIDs: such a record is read lossily and never matches a file.
        let text = String::from_utf8_lossy(data);
        let mut lines = text
            .split_inclusive('\n')
            .filter_map(|l| l.strip_suffix('\n'));
        let header = lines.next().ok_or_else(|| perr(1, "empty file"))?;
        let mut list = Self::parse_header(header)?;
        let mut last_uid = 0u32;
        let mut records: Vec<Option<UidRecord>> = Vec::new();
        let mut by_base: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        for (i, line) in lines.enumerate() {
            let lineno = i + 2;
            let rec = parse_record(line, list.version, lineno, &mut list.needs_rewrite)?;
            if rec.uid <= last_uid {
                return Err(perr(
                    lineno,
                    format!("UIDs not ordered ({} >= {last_uid})", rec.uid),
                ));
            }
            if list.version == 1 && rec.uid >= list.next_uid {
                return Err(perr(lineno, "UID larger than next_uid"));
            }
            last_uid = rec.uid;
            if let Some(old) = by_base.insert(rec.base().to_string(), records.len()) {
                // an expunged file moved back and appended again: the later UID wins
                records[old] = None;
                list.needs_rewrite = true;
            }
            records.push(Some(rec));
        }
        list.records = records.into_iter().flatten().collect();
        if list.next_uid <= last_uid {
            list.next_uid = last_uid + 1;
        }
        Ok(list)
    }

    pub(crate) fn parse_header(line: &str) -> std::result::Result<UidList, ParseError> {
        let b = line.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_digit() || b[1] != b' ' {
            return Err(perr(1, "Corrupted header (invalid version number)"));
        }
        let version = b[0] - b'0';
        let rest = &line[2..];
        let mut list = UidList {
            version,
            uid_validity: 0,
            next_uid: 0,
            guid: None,
            header_ext: Vec::new(),
            records: Vec::new(),
            needs_rewrite: version != 3,
        };
        match version {
            1 | 2 => {
                let mut it = rest.split_ascii_whitespace();
                let (Some(v), Some(n)) = (it.next(), it.next()) else {
                    return Err(perr(1, format!("Corrupted header (version {version})")));
                };
                let (Ok(v), Ok(n)) = (v.parse::<u32>(), n.parse::<u32>()) else {
                    return Err(perr(1, format!("Corrupted header (version {version})")));
                };
                list.uid_validity = v;
                list.next_uid = n;
            }
            3 => {
                for field in rest.split(' ').filter(|f| !f.is_empty()) {
                    let mut chars = field.chars();
                    let Some(key) = chars.next() else { continue };
                    let value = chars.as_str();
                    match key {
                        'V' => list.uid_validity = c_strtoul(value),
                        'N' => list.next_uid = c_strtoul(value),
                        'G' => {
                            if !is_guid(value) {
                                return Err(perr(1, format!("Invalid mailbox GUID: {value}")));
                            }
                            list.guid = Some(value.to_ascii_lowercase());
                        }
                        _ => list.header_ext.push((key, value.to_string())),
                    }
                }
            }
            v => return Err(perr(1, format!("Unsupported version {v}"))),
        }
        if list.uid_validity == 0 || list.next_uid == 0 {
            return Err(perr(
                1,
                format!(
                    "Broken header (uidvalidity = {}, next_uid={})",
                    list.uid_validity, list.next_uid
                ),
            ));
        }
        if list.guid.is_none() {
            list.needs_rewrite = true;
        }
        Ok(list)
    }

    /// The header line as Dovecot writes it (with LF).
    pub fn header_line(&self) -> String {
        let mut s = format!("3 V{} N{}", self.uid_validity, self.next_uid);
        if let Some(g) = &self.guid {
            s.push_str(" G");
            s.push_str(g);
        }
        for (k, v) in &self.header_ext {
            s.push(' ');
            s.push(*k);
            s.push_str(v);
        }
        s.push('\n');
        s
    }

    /// The whole file in version 3.
    pub fn serialize(&self) -> String {
        let mut s = self.header_line();
        for r in &self.records {
            s.push_str(&record_line(r));
        }
        s
    }

    /// The record for `uid`.
    pub fn get(&self, uid: u32) -> Option<&UidRecord> {
        self.records
            .binary_search_by_key(&uid, |r| r.uid)
            .ok()
            .and_then(|i| self.records.get(i))
    }
}

/// A record line as Dovecot writes it: `<uid>[ <ext>…] :<base>\n`.
pub fn record_line(r: &UidRecord) -> String {
    let mut s = r.uid.to_string();
    for (k, v) in &r.ext {
        s.push(' ');
        s.push(*k);
        s.push_str(v);
    }
    s.push_str(" :");
    s.push_str(r.base());
    s.push('\n');
    s
}

/// Parses one record line (without LF) of a file of `version`. Invalid extension keys are dropped
/// (and `needs_rewrite` set) as Dovecot does; everything else wrong is an error.
pub fn parse_record(
    line: &str,
    version: u8,
    lineno: usize,
    needs_rewrite: &mut bool,
) -> std::result::Result<UidRecord, ParseError> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let mut uid: u64 = 0;
    for d in line[..digits].bytes() {
        uid = (uid * 10 + u64::from(d - b'0')).min(u64::from(u32::MAX));
    }
    let mut rest = &line[digits..];
    if uid == 0 || !rest.starts_with(' ') {
        return Err(perr(lineno, format!("Invalid data: {rest}")));
    }
    if uid >= u64::from(u32::MAX) {
        return Err(perr(lineno, format!("UID too high ({uid})")));
    }
    rest = rest.trim_start_matches(' ');
    let mut ext = Vec::new();
    match version {
        3 => {
            while !rest.is_empty() && !rest.starts_with(':') {
                let end = rest.find(' ').unwrap_or(rest.len());
                let field = &rest[..end];
                let mut chars = field.chars();
                match chars.next() {
                    Some(k) if k.is_ascii_uppercase() => ext.push((k, chars.as_str().to_string())),
                    _ => *needs_rewrite = true,
                }
                rest = rest[end..].trim_start_matches(' ');
            }
            rest = rest.strip_prefix(':').unwrap_or(rest);
        }
        2 => {
            // `<uid> <flags> <filename>`
            let end = rest.find(' ').unwrap_or(rest.len());
            rest = rest[end..].trim_start_matches(' ');
        }
        _ => {}
    }
    if rest.is_empty() || rest.starts_with(':') {
        return Err(perr(lineno, "Invalid extended fields / missing file name"));
    }
    if rest.contains('/') {
        return Err(perr(lineno, format!("Broken filename: {rest}")));
    }
    Ok(UidRecord {
        uid: uid as u32,
        ext,
        filename: rest.to_string(),
    })
}

/// Where appending starts, read from the header and the last line only (a delivery must not parse
/// a 100,000-line file under the lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppendState {
    /// No uidlist yet.
    Missing,
    /// A clean version-3 file: append records from `next_uid` on.
    Append { uid_validity: u32, next_uid: u32 },
    /// Old version, torn last line or anything unusual: parse it whole and rewrite it.
    Rewrite,
}

/// How much of the start and the end of the file [`append_state`] reads.
const PEEK: usize = 8192;

/// Reads the header and the last line of `<dir>/dovecot-uidlist`. Caller holds the lock.
pub(crate) fn append_state(dir: &Path) -> Result<AppendState> {
    use std::os::unix::fs::FileExt;
    let path = dir.join(UIDLIST_NAME);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AppendState::Missing),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let len = f
        .metadata()
        .map_err(|e| Error::io("fstat", &path, e))?
        .len();
    let read_at = |off: u64, n: usize| -> Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match f.read_at(&mut buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", &path, e)),
            }
        }
        buf.truncate(got);
        Ok(buf)
    };
    let head = read_at(0, PEEK.min(len as usize))?;
    let Some(hlen) = head.iter().position(|&b| b == b'\n') else {
        return Ok(AppendState::Rewrite);
    };
    let Ok(header) = std::str::from_utf8(&head[..hlen]) else {
        return Ok(AppendState::Rewrite);
    };
    let Ok(list) = UidList::parse_header(header) else {
        return Ok(AppendState::Rewrite);
    };
    if list.version != 3 || list.guid.is_none() {
        return Ok(AppendState::Rewrite);
    }
    let body_start = hlen as u64 + 1;
    let mut next_uid = list.next_uid;
    if len > body_start {
        let n = PEEK.min((len - body_start) as usize);
        let tail = read_at(len - n as u64, n)?;
        if tail.len() != n || tail.last() != Some(&b'\n') {
            return Ok(AppendState::Rewrite);
        }
        let body = &tail[..n - 1];
        let line = match body.iter().rposition(|&b| b == b'\n') {
            Some(p) => &body[p + 1..],
            // the whole tail is one line: fine only if it starts right after the header
            None if len - n as u64 == body_start => body,
            None => return Ok(AppendState::Rewrite),
        };
        let Ok(line) = std::str::from_utf8(line) else {
            return Ok(AppendState::Rewrite);
        };
        let mut nr = false;
        let Ok(rec) = parse_record(line, 3, 0, &mut nr) else {
            return Ok(AppendState::Rewrite);
        };
        if rec.uid >= next_uid {
            next_uid = rec.uid + 1;
        }
    }
    Ok(AppendState::Append {
        uid_validity: list.uid_validity,
        next_uid,
    })
}

/// Reads `<dir>/dovecot-uidlist`. `Ok(None)` if it does not exist.
pub fn read(dir: &Path) -> Result<Option<UidList>> {
    let path = dir.join(UIDLIST_NAME);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    UidList::parse(&data).map(Some).map_err(|e| Error::Corrupt {
        path,
        line: e.line,
        reason: e.reason,
    })
}

/// Appends records to the existing file (one write, then fdatasync). Caller holds the lock.
pub(crate) fn append(dir: &Path, records: &[UidRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let path = dir.join(UIDLIST_NAME);
    let buf: String = records.iter().map(record_line).collect();
    let mut f = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    f.write_all(buf.as_bytes())
        .map_err(|e| Error::io("write", &path, e))?;
    f.sync_data().map_err(|e| Error::io("fdatasync", &path, e))
}

/// Replaces the file with `list` via `dovecot-uidlist.tmp` + fdatasync + rename. Caller holds the
/// lock.
pub(crate) fn rewrite(dir: &Path, list: &UidList) -> Result<()> {
    let tmp = dir.join(UIDLIST_TMP_NAME);
    let path = dir.join(UIDLIST_NAME);
    let result = (|| {
        let mut f: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("open", &tmp, e))?;
        f.write_all(list.serialize().as_bytes())
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_data().map_err(|e| Error::io("fdatasync", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync", dir, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "3 V1700000000 N26 G3085f01b7f11094c501100008c4a11c1\n\
        24 :1700000100.M123456P4242.mx1,S=2048,W=2101\n\
        25 W5012 :1700000200.M5P4243.mx1\n";

    #[test]
    fn parses_compat_sample() {
        let l = UidList::parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!((l.version, l.uid_validity, l.next_uid), (3, 1700000000, 26));
        assert_eq!(l.guid.as_deref(), Some("3085f01b7f11094c501100008c4a11c1"));
        assert_eq!(l.records.len(), 2);
        assert_eq!(l.records[1].ext('W'), Some("5012"));
        assert_eq!(
            l.get(24).unwrap().base(),
            "1700000100.M123456P4242.mx1,S=2048,W=2101"
        );
        assert!(!l.needs_rewrite);
        assert_eq!(l.serialize(), SAMPLE);
    }

    #[test]
    fn header_keys_any_order_and_unknown_kept() {
        let l = UidList::parse(b"3 N5 X9 V7 Gabcdefabcdefabcdefabcdefabcdefab\n").unwrap();
        assert_eq!((l.uid_validity, l.next_uid), (7, 5));
        assert_eq!(
            l.header_line(),
            "3 V7 N5 Gabcdefabcdefabcdefabcdefabcdefab X9\n"
        );
    }

    #[test]
    fn next_uid_follows_appended_records() {
        let l =
            UidList::parse(b"3 V1 N3 G00000000000000000000000000000000\n3 :a\n7 :b:2,S\n").unwrap();
        assert_eq!(l.next_uid, 8);
        assert_eq!(l.records[1].base(), "b");
        assert_eq!(record_line(&l.records[1]), "7 :b\n");
    }

    #[test]
    fn old_versions() {
        let l = UidList::parse(b"1 1100000000 5\n1 1100000000.123.host:2,S\n4 1100000001.9.host\n")
            .unwrap();
        assert_eq!((l.version, l.uid_validity, l.next_uid), (1, 1100000000, 5));
        assert_eq!(l.records[0].base(), "1100000000.123.host");
        assert!(l.needs_rewrite && l.guid.is_none());
        assert!(
            UidList::parse(b"1 1 5\n5 x\n").is_err(),
            "v1 uid >= next_uid"
        );
        let l = UidList::parse(b"2 33 10\n1 S 1100000000.1.host:2,S\n").unwrap();
        assert_eq!(l.records[0].filename, "1100000000.1.host:2,S");
        assert!(UidList::parse(b"4 V1 N1\n").is_err());
    }

    #[test]
    fn broken_files() {
        for bad in [
            &b""[..],
            b"x V1 N1\n",
            b"3 V0 N1 G00000000000000000000000000000000\n",
            b"3 V1 N0\n",
            b"3 V1 N1 Gzz\n",
            b"3 V1 N1\n0 :a\n",
            b"3 V1 N1\n5 :a\n5 :b\n",
            b"3 V1 N1\n5 :\n",
            b"3 V1 N1\n5:a\n",
            b"3 V1 N1\n5 :a/b\n",
            b"3 V1 N1\n5 ::2,S\n",
            b"3 V1 N1\n4294967295 :a\n",
        ] {
            assert!(
                UidList::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn tolerated_oddities() {
        // invalid extension dropped, partial last line ignored, duplicate base: later wins
        let l = UidList::parse(
            b"3 V1 N1 G00000000000000000000000000000000\n1 x5 W9 :a\n2 :a:2,S\n3 :partial",
        )
        .unwrap();
        assert!(l.needs_rewrite);
        assert_eq!(l.records.len(), 1);
        assert_eq!(l.records[0].uid, 2);
        assert_eq!(l.next_uid, 3);
        // a record that is not UTF-8 does not break the list
        let l =
            UidList::parse(b"3 V1 N1 G00000000000000000000000000000000\n1 :\xff\n2 :b\n").unwrap();
        assert_eq!((l.records.len(), l.records[1].filename.as_str()), (2, "b"));
        // file names may contain spaces
        let l = UidList::parse(b"3 V1 N1 G00000000000000000000000000000000\n1 :a b\n").unwrap();
        assert_eq!(l.records[0].filename, "a b");
    }

    #[test]
    fn uidl() {
        let r = UidRecord {
            uid: 0x2a,
            ext: vec![],
            filename: "x".into(),
        };
        assert_eq!(r.pop3_uidl(0x5f000001), "0000002a5f000001");
    }

    fn arb_record() -> impl Strategy<Value = (Vec<(char, String)>, String)> {
        (
            proptest::collection::vec(("[A-Z]", "[0-9a-zA-Z,=.]{0,8}"), 0..3),
            "[0-9A-Za-z][0-9A-Za-z.,=_ -]{0,30}",
        )
            .prop_map(|(ext, name)| {
                (
                    ext.into_iter()
                        .map(|(k, v)| (k.chars().next().unwrap(), v))
                        .collect(),
                    name,
                )
            })
    }

    proptest! {
        #[test]
        fn round_trip(v in 1u32.., n in 1u32..1000,
                      recs in proptest::collection::vec(arb_record(), 0..8)) {
            let mut l = UidList::new(v, "0123456789abcdef0123456789abcdef".into());
            l.next_uid = n;
            let mut uid = 0;
            let mut seen = std::collections::HashSet::new();
            for (i, (ext, name)) in recs.into_iter().enumerate() {
                if !seen.insert(name.clone()) { continue; }
                uid += 1 + i as u32;
                l.records.push(UidRecord { uid, ext, filename: name });
            }
            l.next_uid = l.next_uid.max(uid + 1);
            let text = l.serialize();
            let back = UidList::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(back, l);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = UidList::parse(&data);
        }

        #[test]
        fn record_line_round_trip(uid in 1u32..u32::MAX, (ext, name) in arb_record()) {
            let r = UidRecord { uid, ext, filename: name };
            let line = record_line(&r);
            let mut nr = false;
            let back = parse_record(line.trim_end_matches('\n'), 3, 1, &mut nr).unwrap();
            prop_assert_eq!(back, r);
            prop_assert!(!nr);
        }
    }
}
