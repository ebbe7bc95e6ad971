//! Transcript tests: `tests/transcripts/*.imap` dialogs replayed in-process against the session
//! with a real Maildir (jobs run inline). `C:` lines are sent (each with CRLF; consecutive ones
//! together), the `S:` lines after them are the whole expected output, where `…` matches any
//! text. `!deliver <user> <mailbox> <subject>` stores a message as another process would;
//! `!expunge <user> <mailbox> <uid>` expunges as another session would; `!changed` tells an
//! idling session its mailbox changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pochta_imapd::replay::Replay;
use pochta_mailstore::DeliverOptions;
use std::path::{Path, PathBuf};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "pochta-imapd-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn line_matches(expected: &str, got: &str) -> bool {
    let parts: Vec<&str> = expected.split('…').collect();
    if parts.len() == 1 {
        return expected == got;
    }
    let mut rest = got;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

fn check(file: &Path, step: usize, expected: &[String], got: &[u8]) {
    let text = String::from_utf8_lossy(got);
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    let ok = lines.len() == expected.len()
        && expected.iter().zip(&lines).all(|(e, g)| line_matches(e, g));
    assert!(
        ok,
        "{}: step {step}: expected\n{}\n--- got\n{}",
        file.display(),
        expected.join("\n"),
        lines.join("\n")
    );
}

fn run(file: &Path) {
    let dir = TempDir::new(file.file_stem().unwrap().to_str().unwrap());
    let mut r = Replay::new(dir.0.clone());
    let text = std::fs::read_to_string(file).unwrap();
    let mut expected: Vec<String> = Vec::new();
    let mut got: Vec<u8> = r.send(b"");
    let mut sending: Vec<u8> = Vec::new();
    let mut step = 0;
    let flush = |r: &mut Replay, sending: &mut Vec<u8>, got: &mut Vec<u8>| {
        if !sending.is_empty() {
            got.extend(r.send(sending));
            sending.clear();
        }
    };
    for line in text.lines() {
        let c_line = if line == "C:" {
            Some("")
        } else {
            line.strip_prefix("C: ")
        };
        if let Some(c) = c_line {
            if !expected.is_empty() {
                step += 1;
                check(file, step, &expected, &got);
                expected.clear();
                got.clear();
            }
            sending.extend_from_slice(c.as_bytes());
            sending.extend_from_slice(b"\r\n");
        } else if let Some(s) = line.strip_prefix("S: ") {
            flush(&mut r, &mut sending, &mut got);
            expected.push(s.to_string());
        } else if let Some(d) = line.strip_prefix("!deliver ") {
            flush(&mut r, &mut sending, &mut got);
            let mut w = d.splitn(3, ' ');
            let (user, mailbox, subject) =
                (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
            let md = r.maildir(user);
            md.create_if_missing().unwrap();
            let msg = format!("From: x@example.org\nSubject: {subject}\n\nbody {subject}\n");
            let target = (mailbox != "INBOX").then_some(mailbox);
            md.deliver(target, msg.as_bytes(), &DeliverOptions::default())
                .unwrap();
        } else if let Some(d) = line.strip_prefix("!expunge ") {
            // another session expunges UID n
            flush(&mut r, &mut sending, &mut got);
            let mut w = d.splitn(3, ' ');
            let (user, mailbox, uid) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
            let mb = r.maildir(user).mailbox(mailbox).unwrap();
            let st = mb.sync(pochta_mailstore::SyncOptions::default()).unwrap();
            let uid: u32 = uid.parse().unwrap();
            let m: Vec<_> = st.messages.into_iter().filter(|m| m.uid == uid).collect();
            assert_eq!(mb.expunge(&m).unwrap(), vec![uid]);
        } else if line == "!changed" {
            flush(&mut r, &mut sending, &mut got);
            got.extend(r.changed());
        } else if line.trim().is_empty() || line.starts_with('#') {
            continue;
        } else {
            panic!("{}: bad transcript line {line:?}", file.display());
        }
    }
    flush(&mut r, &mut sending, &mut got);
    step += 1;
    check(file, step, &expected, &got);
}

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "imap"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        run(&f);
    }
}
