#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! Crash safety: a child process delivers in a loop from several threads and is killed with
//! SIGKILL mid-delivery. Afterwards no partial file may be in new/ or cur/, the uidlist must parse,
//! every delivery the child saw acknowledged must be there under its UID, and the Maildir must be
//! usable (the dead child's lock is taken over, a sync and a delivery succeed).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pochta_mailstore::{
    filename::Filename, DeliverOptions, Flags, Maildir, SyncOptions, SystemFlag,
};

const CHILD_ENV: &str = "POCHTA_MAILSTORE_CRASH_CHILD";
const COUNT_ENV: &str = "POCHTA_MAILSTORE_CHILD_COUNT";
const BODY_LEN: usize = 48 * 1024;

fn message(id: &str) -> Vec<u8> {
    let mut m = format!("Message-ID: <{id}@crash.test>\nSubject: crash {id}\n\n").into_bytes();
    m.extend(std::iter::repeat_n(b'x', BODY_LEN));
    m.extend_from_slice(b"\nEND\n");
    m
}

/// The child: run only when the parent starts this test binary with CHILD_ENV set.
#[test]
#[ignore]
fn crash_child() {
    let Ok(root) = std::env::var(CHILD_ENV) else {
        return;
    };
    // with a count: deliver that many per thread and exit (concurrency test); without: forever
    let count: u64 = std::env::var(COUNT_ENV)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(u64::MAX);
    let tag = std::process::id();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let m = Maildir::open(PathBuf::from(&root));
            std::thread::spawn(move || {
                for i in 0..count {
                    let opts = DeliverOptions {
                        flags: if i % 3 == 0 {
                            Flags::empty().with(SystemFlag::Seen)
                        } else {
                            Flags::empty()
                        },
                        ..Default::default()
                    };
                    let id = format!("{tag}-{t}-{i}");
                    let d = m.deliver(None, &message(&id), &opts).unwrap();
                    // libtest may have printed "test crash_child ... " on the same line: find the tag
                    println!("DELIVERED {} {}", d.uid, d.file_name);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn check_files(root: &Path) -> HashMap<String, (String, String)> {
    let mut found = HashMap::new();
    for sub in ["new", "cur"] {
        for entry in fs::read_dir(root.join(sub)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let f = Filename::parse(&name).unwrap();
            let data = fs::read(entry.path()).unwrap();
            assert_eq!(
                Some(data.len() as u64),
                f.size(),
                "partial file {sub}/{name}"
            );
            assert!(data.ends_with(b"\nEND\n"), "partial file {sub}/{name}");
            found.insert(f.base().to_string(), (sub.to_string(), name));
        }
    }
    found
}

#[test]
fn sigkill_mid_delivery_leaves_no_partial_file() {
    let base = std::env::temp_dir().join(format!("pochta-crash-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let root = base.join("Maildir");
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<(u32, String)> = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let want = 40 + round * 25;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut n = 0;
        while n < want {
            assert!(Instant::now() < deadline, "child too slow");
            let line = lines.next().expect("child exited").unwrap();
            if let Some(rest) = line.split_once("DELIVERED ").map(|x| x.1) {
                let (uid, name) = rest.split_once(' ').unwrap();
                acked.push((uid.parse().unwrap(), name.to_string()));
                n += 1;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // lines the child printed before it died are acknowledged deliveries too
        for line in lines.map_while(Result::ok) {
            if let Some(rest) = line.split_once("DELIVERED ").map(|x| x.1) {
                if let Some((uid, name)) = rest.split_once(' ') {
                    acked.push((uid.parse().unwrap(), name.to_string()));
                }
            }
        }

        let found = check_files(&root);
        let list = pochta_mailstore::uidlist::read(&root)
            .expect("uidlist parses")
            .expect("uidlist exists");
        for (uid, name) in &acked {
            let f = Filename::parse(name).unwrap();
            assert!(found.contains_key(f.base()), "acknowledged {name} lost");
            assert_eq!(
                list.get(*uid).map(|r| r.base()),
                Some(f.base()),
                "uid {uid}"
            );
        }
        // usable afterwards: the dead child's lock is overridden, new mail gets new UIDs
        let m = Maildir::open(&root);
        let st = m.inbox().unwrap().sync(SyncOptions::default()).unwrap();
        assert!(st.messages.len() >= acked.len());
        let d = m
            .deliver(
                None,
                &message(&format!("after-{round}")),
                &Default::default(),
            )
            .unwrap();
        assert!(d.uid >= st.next_uid);
        acked.push((d.uid, d.file_name));
        let st2 = m.inbox().unwrap().sync(SyncOptions::default()).unwrap();
        for old in &st.messages {
            let now = st2
                .messages
                .iter()
                .find(|x| x.base() == old.base())
                .unwrap();
            assert_eq!(now.uid, old.uid, "UID of {} changed", old.base());
        }
    }
    let _ = fs::remove_dir_all(&base);
}

/// Three processes with four threads each deliver into one Maildir while this process syncs and
/// changes flags: every delivery gets its own UID, the uidlist matches the files, nothing is lost.
#[test]
fn concurrent_processes_get_distinct_uids() {
    let base = std::env::temp_dir().join(format!("pochta-conc-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let root = base.join("Maildir");
    let exe = std::env::current_exe().unwrap();
    let per_thread = 30;
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "crash_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &root)
                .env(COUNT_ENV, per_thread.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // meanwhile: sync (moving new to cur) and flag changes, as an IMAP session would
    let m = Maildir::open(&root);
    let end = Instant::now() + Duration::from_secs(60);
    let mut syncs = 0;
    while syncs < 20 && Instant::now() < end {
        if let Ok(mb) = m.inbox() {
            let st = mb
                .sync(SyncOptions {
                    move_new_to_cur: true,
                })
                .unwrap();
            if let Some(last) = st.messages.last() {
                let flagged = Flags::empty().with(SystemFlag::Flagged);
                match mb.store_flags(last, pochta_mailstore::FlagOp::Add, flagged, &[]) {
                    Ok(_) | Err(pochta_mailstore::Error::MessageNotFound { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
        syncs += 1;
    }
    let mut acked: Vec<(u32, String)> = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            if let Some(rest) = line.split_once("DELIVERED ").map(|x| x.1) {
                let (uid, name) = rest.split_once(' ').unwrap();
                acked.push((uid.parse().unwrap(), name.to_string()));
            }
        }
    }
    assert_eq!(acked.len(), 3 * 4 * per_thread);
    let mut uids: Vec<u32> = acked.iter().map(|a| a.0).collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), acked.len(), "duplicate UIDs");
    let found = check_files(&root);
    let st = m.inbox().unwrap().sync(SyncOptions::default()).unwrap();
    assert_eq!(st.messages.len(), acked.len());
    for (uid, name) in &acked {
        let base = Filename::parse(name).unwrap().base().to_string();
        assert!(found.contains_key(&base), "{name} lost");
        let msg = st
            .messages
            .iter()
            .find(|x| x.uid == *uid)
            .expect("uid listed");
        assert_eq!(msg.base(), base);
    }
    let _ = fs::remove_dir_all(&base);
}
