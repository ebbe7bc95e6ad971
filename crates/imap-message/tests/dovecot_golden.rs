//! Byte-for-byte comparison with Dovecot 2.3: every corpus message in tests/corpus/ was
//! fetched from a real Dovecot imap by tests/dovecot-golden.py (see its header for how to
//! regenerate), which saved each FETCH item's value in tests/golden/<name>.golden. Here the
//! same items are computed by pochta-imap-message and must be identical:
//! ENVELOPE/BODY/BODYSTRUCTURE as raw response bytes, RFC822.SIZE and BINARY.SIZE as numbers,
//! BODY[section] and BINARY[section] as the string's content (how imapd frames it, literal or
//! quoted, is imapd's business; Dovecot answers a section that does not exist with an empty
//! literal, and so must imapd when we return `None`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pochta_imap_message::{internal_date, BinaryError, Message, Section, SectionKind};
use std::path::Path;

struct Record {
    item: String,
    value: Vec<u8>,
}

fn records(b: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        assert_eq!(&b[i..i + 3], b"@@ ", "golden file framing at {i}");
        let nl = i + b[i..]
            .iter()
            .position(|&c| c == b'\n')
            .expect("header line");
        let hdr = std::str::from_utf8(&b[i + 3..nl]).expect("utf-8 header");
        let (n, item) = hdr.split_once(' ').expect("length and item");
        let n: usize = n.parse().expect("length");
        out.push(Record {
            item: item.to_string(),
            value: b[nl + 1..nl + 1 + n].to_vec(),
        });
        i = nl + 1 + n + 1;
    }
    out
}

/// An IMAP string / literal / literal8 / NIL value → its content.
fn imap_content(v: &[u8]) -> Option<Vec<u8>> {
    if v == b"NIL" {
        return None;
    }
    if v.first() == Some(&b'"') {
        let mut out = Vec::new();
        let mut esc = false;
        for &c in &v[1..v.len() - 1] {
            if !esc && c == b'\\' {
                esc = true;
                continue;
            }
            esc = false;
            out.push(c);
        }
        return Some(out);
    }
    let v = v.strip_prefix(b"~").unwrap_or(v);
    if v.first() != Some(&b'{') {
        // Not a string (an error record): compared as is, so it shows up as a difference.
        return Some(v.to_vec());
    }
    let close = v.iter().position(|&c| c == b'}').expect("literal");
    Some(v[close + 3..].to_vec())
}

/// `1.2.HEADER.FIELDS (A B)` → Section.
fn parse_section(spec: &str) -> Section {
    let mut part = Vec::new();
    let mut rest = spec;
    loop {
        let end = rest.find('.').unwrap_or(rest.len());
        match rest[..end].parse::<u32>() {
            Ok(n) if !rest[..end].is_empty() => {
                part.push(n);
                rest = rest.get(end + 1..).unwrap_or("");
            }
            _ => break,
        }
    }
    let fields = |s: &str| -> Vec<String> {
        let open = s.find('(').expect("field list");
        s[open + 1..s.len() - 1]
            .split(' ')
            .map(str::to_string)
            .collect()
    };
    let kind = if rest.is_empty() {
        SectionKind::Full
    } else if rest == "MIME" {
        SectionKind::Mime
    } else if rest == "HEADER" {
        SectionKind::Header
    } else if rest == "TEXT" {
        SectionKind::Text
    } else if rest.starts_with("HEADER.FIELDS.NOT ") {
        SectionKind::HeaderFieldsNot(fields(rest))
    } else if rest.starts_with("HEADER.FIELDS ") {
        SectionKind::HeaderFields(fields(rest))
    } else {
        panic!("unknown section {spec}")
    };
    Section { part, kind }
}

fn bracket(item: &str) -> &str {
    let open = item.find('[').expect("[");
    &item[open + 1..item.rfind(']').expect("]")]
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Compares one record; returns a description of the difference.
/// Days since 1970-01-01 of `d-Mon-yyyy`.
fn day_number(s: &str) -> i64 {
    let mut it = s.split('-');
    let d: i64 = it.next().unwrap().parse().unwrap();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let name = it.next().unwrap();
    let mon = months.iter().position(|m| *m == name).unwrap() as i64 + 1;
    let y: i64 = it.next().unwrap().parse().unwrap();
    let (y, m) = if mon <= 2 {
        (y - 1, mon + 9)
    } else {
        (y, mon - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * m + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// A SEARCH key evaluated the way imapd does with this crate's helpers.
fn search(m: &Message<'_>, spec: &str) -> bool {
    let (key, arg) = spec.split_once(' ').unwrap();
    match key {
        "BODY" => m.body_contains(arg),
        "TEXT" => m.text_contains(arg),
        "SENTON" | "SENTSINCE" | "SENTBEFORE" => {
            // No (valid) Date: header → Dovecot compares 1-Jan-1970.
            let (secs, tz) = m.sent_date().unwrap_or((0, 0));
            // RFC 3501: the date of the Date: header, disregarding time and timezone.
            let day = (secs + i64::from(tz)).div_euclid(86_400);
            let want = day_number(arg);
            match key {
                "SENTON" => day == want,
                "SENTSINCE" => day >= want,
                _ => day < want,
            }
        }
        _ => {
            let (field, needle) = if key == "HEADER" {
                arg.split_once(' ').unwrap()
            } else {
                (key, arg)
            };
            m.header_contains(field, needle)
        }
    }
}

/// The value Dovecot gave for BINARY[...] matching a BINARY.SIZE[...] item.
fn binary_of(all: &[Record], size_item: &str) -> Option<Vec<u8>> {
    let want = size_item.replacen("BINARY.SIZE[", "BINARY.PEEK[", 1);
    all.iter().find(|r| r.item == want).map(|r| r.value.clone())
}

fn check(m: &Message<'_>, r: &Record, records_all: &[Record]) -> Option<String> {
    let item = r.item.as_str();
    let (ours, theirs): (Vec<u8>, Vec<u8>) = match item {
        "RFC822.SIZE" => (m.size().to_string().into_bytes(), r.value.clone()),
        _ if item.starts_with("INTERNALDATE ") => {
            let mtime: i64 = item["INTERNALDATE ".len()..].parse().unwrap();
            (
                format!("\"{}\"", internal_date(mtime, 0)).into_bytes(),
                r.value.clone(),
            )
        }
        "ENVELOPE" => (m.envelope(), r.value.clone()),
        "BODY" => (m.body_structure(false), r.value.clone()),
        "BODYSTRUCTURE" => (m.body_structure(true), r.value.clone()),
        _ if item.starts_with("BODY.PEEK[") => {
            let s = parse_section(bracket(item));
            let expected = imap_content(&r.value).unwrap_or_default();
            (m.section(&s).unwrap_or_default(), expected)
        }
        _ if item.starts_with("BINARY.PEEK[") || item.starts_with("BINARY.SIZE[") => {
            let s = parse_section(bracket(item));
            let size = item.starts_with("BINARY.SIZE");
            let ours = if size {
                m.binary_size(&s.part)
                    .map(|o| o.unwrap_or(0).to_string().into_bytes())
            } else {
                m.binary(&s.part).map(Option::unwrap_or_default)
            };
            let ours = match ours {
                Ok(v) => v,
                Err(BinaryError::UnknownCte) => b"!ERR NO [UNKNOWN-CTE]".to_vec(),
            };
            let theirs = if size && !r.value.starts_with(b"!ERR") {
                // RFC 3516: BINARY.SIZE is the size of the BINARY answer. Dovecot's
                // BINARY.SIZE disagrees with its own BINARY for some multipart and
                // message/rfc822 parts and for CTE "binary"; we compare with the length of
                // its BINARY answer, which must match Dovecot's size wherever Dovecot is
                // self-consistent.
                let bin = binary_of(records_all, item);
                match bin.as_deref().map(imap_content) {
                    Some(Some(b)) => b.len().to_string().into_bytes(),
                    _ => r.value.clone(),
                }
            } else if r.value.starts_with(b"!ERR NO [UNKNOWN-CTE]") && size {
                let bin = binary_of(records_all, item);
                match bin.as_deref() {
                    Some(b) if b.starts_with(b"!ERR NO [PARSE]") || b == b"!ERR disconnected" => {
                        return None
                    }
                    Some(b) if !b.starts_with(b"!ERR") => imap_content(b)
                        .unwrap_or_default()
                        .len()
                        .to_string()
                        .into_bytes(),
                    _ => b"!ERR NO [UNKNOWN-CTE]".to_vec(),
                }
            } else if r.value.starts_with(b"!ERR NO [PARSE]") || r.value == b"!ERR disconnected" {
                // Dovecot refuses quoted-printable with invalid escapes and truncated base64
                // (NO [PARSE], or it drops the connection); we decode leniently (an invalid
                // `=XY` stays as written, a base64 tail is decoded as far as it goes), as RFC
                // 2045 §6.7 suggests. Known and deliberate difference: not compared.
                return None;
            } else if r.value.starts_with(b"!ERR NO [UNKNOWN-CTE]") {
                b"!ERR NO [UNKNOWN-CTE]".to_vec()
            } else if r.value.starts_with(b"!ERR") || size {
                r.value.clone()
            } else {
                imap_content(&r.value).unwrap_or_default()
            };
            (ours, theirs)
        }
        _ if item.starts_with("SEARCH ") => {
            let ours = if search(m, &item["SEARCH ".len()..]) {
                b"1"
            } else {
                b"0"
            };
            (ours.to_vec(), r.value.clone())
        }
        _ => panic!("unknown golden item {item}"),
    };
    (ours != theirs).then(|| {
        format!(
            "{item}\n   ours: {:?}\n dovecot: {:?}",
            show(&ours),
            show(&theirs)
        )
    })
}

/// Messages where Dovecot 2.3.19's BINARY rebuild of a multipart (or the whole message) is
/// itself broken: around a part that has a base64/quoted-printable encoding but an empty
/// body, Dovecot leaves that part's header unrewritten yet sizes its output as if rewritten,
/// so the answer is cut short (r069, r083, r141) or runs on into the following parts (r031,
/// r104); for r146 its BINARY[] dropped the connection and its BINARY.SIZE[] says 17. The
/// BINARY/BINARY.SIZE items of these six messages are not compared (all their other items
/// are, and BINARY of every other message is).
const DOVECOT_BINARY_DEFECTS: &[&str] = &["r031", "r069", "r083", "r104", "r141", "r146"];

fn dovecot_defect(name: &str, item: &str) -> bool {
    DOVECOT_BINARY_DEFECTS.contains(&name) && item.starts_with("BINARY")
}

#[test]
fn identical_to_dovecot() {
    // POCHTA_GOLDEN_DIR: another directory with corpus/ and golden/ (a hold-out set made
    // with gen-random-corpus.py and dovecot-golden.py); default: the committed one.
    let dir = std::env::var_os("POCHTA_GOLDEN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"));
    let mut names: Vec<_> = std::fs::read_dir(dir.join("corpus"))
        .expect("corpus dir")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".eml")
                .map(String::from)
        })
        .collect();
    names.sort();
    let minimum = if std::env::var_os("POCHTA_GOLDEN_DIR").is_some() {
        1
    } else {
        200
    };
    assert!(
        names.len() >= minimum,
        "corpus incomplete: {}",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut skipped = 0;
    for name in &names {
        let raw = std::fs::read(dir.join("corpus").join(format!("{name}.eml"))).expect("eml");
        let golden = std::fs::read(dir.join("golden").join(format!("{name}.golden")))
            .unwrap_or_else(|_| panic!("no golden file for {name}: run tests/dovecot-golden.py"));
        let m = Message::parse(&raw);
        let all = records(&golden);
        for r in &all {
            if dovecot_defect(name, &r.item) {
                skipped += 1;
                continue;
            }
            compared += 1;
            if let Some(d) = check(&m, r, &all) {
                failures.push(format!("{name}: {d}"));
            }
        }
    }
    eprintln!(
        "{} messages, {compared} items compared with Dovecot, {skipped} skipped (known Dovecot \
         BINARY defects)",
        names.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {compared} items differ from Dovecot:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
