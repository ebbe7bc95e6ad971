//! Tests of the public Maildir API (delivery, reading, folders).

use std::collections::HashSet;
use std::fs;
use std::sync::Arc;

use super::*;
use crate::testutil::TempDir;

fn md(dir: &TempDir) -> Maildir {
    Maildir::open(dir.path().join("Maildir"))
}

#[test]
fn deliver_creates_inbox_and_assigns_uids() {
    let dir = TempDir::new();
    let m = md(&dir);
    let d1 = m
        .deliver(None, b"Subject: a\n\nhello\n", &DeliverOptions::default())
        .unwrap();
    let d2 = m
        .deliver(
            Some("INBOX"),
            b"Subject: b\r\n\r\nx\r\n",
            &DeliverOptions::default(),
        )
        .unwrap();
    assert_eq!((d1.uid, d2.uid), (1, 2));
    assert_eq!(d1.size, 18);
    let f1 = filename::Filename::parse(&d1.file_name).unwrap();
    assert_eq!((f1.size(), f1.vsize()), (Some(18), Some(21)));
    let f2 = filename::Filename::parse(&d2.file_name).unwrap();
    assert_eq!((f2.size(), f2.vsize()), (Some(17), Some(17)));
    let on_disk = fs::read(m.root().join("new").join(&d1.file_name)).unwrap();
    assert_eq!(on_disk, b"Subject: a\n\nhello\n");
    let list = uidlist::read(m.root()).unwrap().unwrap();
    assert_eq!(list.records.len(), 2);
    assert_eq!(list.records[1].filename, d2.file_name);
    assert!(list.uid_validity > 1_600_000_000);
    assert_eq!(list.guid.as_ref().map(String::len), Some(32));
    // created with the first record (N2), then appended to: N stays, the records move next_uid
    let text = fs::read_to_string(m.root().join("dovecot-uidlist")).unwrap();
    assert!(
        text.starts_with(&format!("3 V{} N2 G", list.uid_validity)),
        "{text}"
    );
    assert_eq!(list.next_uid, 3);
    assert!(fs::read_dir(m.root().join("tmp")).unwrap().next().is_none());
    assert!(!m.root().join("dovecot-uidlist.lock").exists());
}

#[test]
fn deliver_with_flags_and_keywords_goes_to_cur() {
    let dir = TempDir::new();
    let m = md(&dir);
    let opts = DeliverOptions {
        flags: Flags::empty().with(SystemFlag::Seen),
        keywords: vec!["$Junk".into(), "Work".into()],
        ..Default::default()
    };
    let d = m.deliver(None, b"x\n", &opts).unwrap();
    assert!(d.file_name.ends_with(":2,Sab"), "{}", d.file_name);
    assert!(m.root().join("cur").join(&d.file_name).exists());
    let kw = keywords::read(m.root()).unwrap();
    assert_eq!(kw.serialize(), "0 $Junk\n1 Work\n");
    let list = uidlist::read(m.root()).unwrap().unwrap();
    assert_eq!(
        list.records[0].filename,
        d.file_name.split(':').next().unwrap()
    );
}

#[test]
fn deliver_to_missing_folder_fails_and_bad_names_are_refused() {
    let dir = TempDir::new();
    let m = md(&dir);
    m.create_if_missing().unwrap();
    let e = m
        .deliver(Some("Nope"), b"x", &DeliverOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::MailboxNotFound { .. }) && e.is_temporary());
    for bad in ["../x", "a/b", ".hidden", ""] {
        let e = m
            .deliver(Some(bad), b"x", &DeliverOptions::default())
            .unwrap_err();
        assert!(matches!(e, Error::InvalidMailboxName { .. }), "{bad}");
    }
    assert!(!m.folder_exists("Nope"));
    assert!(m.folder_exists("INBOX"));
}

#[test]
fn quota_refuses_and_counts() {
    let dir = TempDir::new();
    let m = md(&dir);
    let opts = DeliverOptions {
        quota: Some(QuotaLimit {
            bytes: Some(25),
            messages: Some(10),
        }),
        ..Default::default()
    };
    m.deliver(None, &[b'a'; 10], &opts).unwrap();
    m.deliver(None, &[b'a'; 10], &opts).unwrap();
    let e = m.deliver(None, &[b'a'; 10], &opts).unwrap_err();
    assert!(e.is_over_quota() && !e.is_temporary(), "{e}");
    let ms = fs::read_to_string(m.root().join("maildirsize")).unwrap();
    assert_eq!(ms, "25S,10C\n0 0\n10 1\n10 1\n");
    // without a quota the existing file still gets its delta
    m.deliver(None, &[b'a'; 5], &DeliverOptions::default())
        .unwrap();
    assert!(fs::read_to_string(m.root().join("maildirsize"))
        .unwrap()
        .ends_with("10 1\n5 1\n"));
    let q = QuotaLimit::from_rule("*:messages=2").unwrap();
    let e = m
        .deliver(
            None,
            b"x",
            &DeliverOptions {
                quota: Some(q),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.is_over_quota());
}

#[test]
fn concurrent_deliveries_get_distinct_uids() {
    let dir = TempDir::new();
    let m = Arc::new(md(&dir));
    m.create_if_missing().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| {
                        let body = format!("Subject: {t}-{i}\n\nbody\n");
                        m.deliver(None, body.as_bytes(), &DeliverOptions::default())
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<Delivered> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let uids: HashSet<u32> = all.iter().map(|d| d.uid).collect();
    assert_eq!(uids.len(), 200);
    assert_eq!(uids.iter().max(), Some(&200));
    let list = uidlist::read(m.root()).unwrap().unwrap();
    assert_eq!(list.records.len(), 200);
    for d in &all {
        let r = list.get(d.uid).unwrap();
        assert_eq!(r.filename, d.file_name);
    }
    assert_eq!(fs::read_dir(m.root().join("new")).unwrap().count(), 200);
}

/// Not a benchmark in the test run: prints deliveries/s of 10 threads into one mailbox and into
/// 10 mailboxes. `cargo test -p pochta-mailstore --release -- --ignored --nocapture rate`
#[test]
#[ignore]
fn delivery_rate_10_threads() {
    for per_user in [false, true] {
        let dir = TempDir::new();
        let n = 200;
        let start = std::time::Instant::now();
        let threads: Vec<_> = (0..10)
            .map(|t| {
                let root = dir.path().join(if per_user {
                    format!("u{t}")
                } else {
                    "u".into()
                });
                std::thread::spawn(move || {
                    let m = Maildir::open(root);
                    let body = vec![b'x'; 4096];
                    for _ in 0..n {
                        m.deliver(None, &body, &DeliverOptions::default()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let what = if per_user {
            "10 mailboxes"
        } else {
            "one mailbox"
        };
        println!(
            "10 threads, {what}: {:.0} deliveries/s",
            f64::from(10 * n) / secs
        );
    }
}
