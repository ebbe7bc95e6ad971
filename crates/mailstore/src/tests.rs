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

#[test]
fn sync_assigns_uids_keeps_known_and_reads_foreign_names() {
    let dir = TempDir::new();
    let m = md(&dir);
    let d1 = m
        .deliver(None, b"one\n", &DeliverOptions::default())
        .unwrap();
    // Postfix local(8): no sizes in the name; Courier: S= only, with flags; Dovecot: full
    let root = m.root();
    fs::write(
        root.join("new/1700000000.V801I1a2bM123456.mx.example.org"),
        b"a\nb\n",
    )
    .unwrap();
    fs::write(root.join("cur/1600000000.M1P2.courier,S=3:2,RS"), b"x\r\n").unwrap();
    fs::write(root.join("cur/1650000000.M5P6.dc,S=2,W=3:2,FPa"), b"y\n").unwrap();
    fs::write(root.join("cur/.hidden"), b"").unwrap();
    fs::write(root.join("dovecot-keywords"), b"0 $Forwarded\n").unwrap();
    let mb = m.inbox().unwrap();
    let st = mb.sync(SyncOptions::default()).unwrap();
    assert_eq!(st.messages.len(), 4);
    assert_eq!(st.messages[0].uid, d1.uid);
    // new files get UIDs in Dovecot's order (seconds first)
    let names: Vec<&str> = st.messages[1..].iter().map(|m| m.base()).collect();
    assert_eq!(
        names,
        [
            "1600000000.M1P2.courier,S=3",
            "1650000000.M5P6.dc,S=2,W=3",
            "1700000000.V801I1a2bM123456.mx.example.org"
        ]
    );
    assert_eq!(
        st.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let courier = &st.messages[1];
    assert_eq!((courier.size, courier.vsize), (3, 3));
    assert!(
        courier.flags.contains(SystemFlag::Answered) && courier.flags.contains(SystemFlag::Seen)
    );
    let dc = &st.messages[2];
    assert_eq!(dc.keywords, ["$Forwarded"]);
    assert!(dc.flags.contains(SystemFlag::Flagged));
    let postfix = &st.messages[3];
    assert_eq!((postfix.size, postfix.vsize, postfix.recent), (4, 6, true));
    assert_eq!(
        postfix.pop3_uidl,
        format!("{:08x}{:08x}", 4, st.uid_validity)
    );
    // the computed vsize went into the uidlist as W, Dovecot's way
    let list = mb.uidlist().unwrap().unwrap();
    assert_eq!(list.get(4).unwrap().ext('W'), Some("6"));
    assert_eq!(list.get(2).unwrap().ext('W'), Some("3"));
    // second sync: same UIDs, no rewrite needed
    let st2 = mb
        .sync(SyncOptions {
            move_new_to_cur: true,
        })
        .unwrap();
    assert_eq!(
        st2.messages
            .iter()
            .map(|m| (m.uid, m.base().to_string()))
            .collect::<Vec<_>>(),
        st.messages
            .iter()
            .map(|m| (m.uid, m.base().to_string()))
            .collect::<Vec<_>>()
    );
    assert!(fs::read_dir(root.join("new")).unwrap().next().is_none());
    assert!(root
        .join("cur/1700000000.V801I1a2bM123456.mx.example.org:2,")
        .exists());
    let st3 = mb.sync(SyncOptions::default()).unwrap();
    assert!(st3
        .messages
        .iter()
        .all(|m| !m.recent && m.subdir == Subdir::Cur));
    assert_eq!(mb.read_message(&st.messages[3]).unwrap(), b"a\nb\n");
}

#[test]
fn flags_keywords_and_expunge() {
    let dir = TempDir::new();
    let m = md(&dir);
    let opts = DeliverOptions {
        quota: Some(QuotaLimit {
            bytes: Some(1000),
            messages: None,
        }),
        ..Default::default()
    };
    m.deliver(None, b"hello\n", &opts).unwrap();
    m.deliver(None, b"world!\n", &opts).unwrap();
    let mb = m.inbox().unwrap();
    let st = mb.sync(SyncOptions::default()).unwrap();
    let seen = Flags::empty().with(SystemFlag::Seen);
    let a = mb
        .store_flags(&st.messages[0], FlagOp::Add, seen, &["$Junk".to_string()])
        .unwrap();
    assert!(a.file_name.ends_with(":2,Sa"), "{}", a.file_name);
    assert_eq!(a.keywords, ["$Junk"]);
    // applied to the name on disk even when the caller's copy is stale
    let b = mb
        .store_flags(
            &st.messages[0],
            FlagOp::Add,
            Flags::empty().with(SystemFlag::Flagged),
            &[],
        )
        .unwrap();
    assert!(b.file_name.ends_with(":2,FSa"), "{}", b.file_name);
    let c = mb
        .store_flags(&b, FlagOp::Remove, seen, &["$junk".to_string()])
        .unwrap();
    assert!(c.file_name.ends_with(":2,F"), "{}", c.file_name);
    let d = mb
        .store_flags(&c, FlagOp::Replace, seen, &["Work".to_string()])
        .unwrap();
    assert!(d.file_name.ends_with(":2,Sb"), "{}", d.file_name);
    assert_eq!(
        keywords::read(m.root()).unwrap().serialize(),
        "0 $Junk\n1 Work\n"
    );
    let st = mb.sync(SyncOptions::default()).unwrap();
    assert_eq!(st.messages[0].keywords, ["Work"]);
    assert_eq!(mb.expunge(&st.messages[..1]).unwrap(), [1]);
    assert_eq!(mb.expunge(&st.messages[..1]).unwrap(), Vec::<u32>::new());
    let st = mb.sync(SyncOptions::default()).unwrap();
    assert_eq!(st.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [2]);
    assert_eq!(st.next_uid, 3);
    let ms = fs::read_to_string(m.root().join("maildirsize")).unwrap();
    assert_eq!(ms, "1000S\n0 0\n6 1\n7 1\n-6 -1\n");
    let list = mb.uidlist().unwrap().unwrap();
    assert_eq!(list.records.len(), 1);
    // a new delivery after the rewrite continues from N
    assert_eq!(
        m.deliver(None, b"x", &DeliverOptions::default())
            .unwrap()
            .uid,
        3
    );
}

#[test]
fn tmp_sweep_and_old_uidlists() {
    let dir = TempDir::new();
    let m = md(&dir);
    m.create_if_missing().unwrap();
    let old = m.root().join("tmp/1.M1P1.h");
    fs::write(&old, b"partial").unwrap();
    let fresh = m.root().join("tmp/2.M1P1.h");
    fs::write(&fresh, b"partial").unwrap();
    testutil::set_mtime(&old, 1_000_000_000);
    let mb = m.inbox().unwrap();
    // ctime is now: not garbage yet, as in Dovecot
    assert_eq!(mb.sweep_tmp().unwrap(), 0);
    // a v1 (Courier/Dovecot 1.0) uidlist keeps its UIDs and is rewritten as v3
    fs::write(m.root().join("cur/1100000000.123.host:2,S"), b"a\n").unwrap();
    fs::write(m.root().join("cur/1100000001.9.host"), b"b\n").unwrap();
    fs::write(
        m.root().join("dovecot-uidlist"),
        "1 1100000000 9\n3 1100000000.123.host:2,S\n7 1100000001.9.host\n",
    )
    .unwrap();
    let st = mb.sync(SyncOptions::default()).unwrap();
    assert_eq!(st.uid_validity, 1100000000);
    assert_eq!(
        st.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [3, 7]
    );
    let text = fs::read_to_string(m.root().join("dovecot-uidlist")).unwrap();
    assert!(text.starts_with("3 V1100000000 N9 G"), "{text}");
    assert!(
        text.ends_with("\n3 :1100000000.123.host\n7 :1100000001.9.host\n"),
        "{text}"
    );
    let d = m.deliver(None, b"c\n", &DeliverOptions::default()).unwrap();
    assert_eq!(d.uid, 9);
    // a broken uidlist: new UIDVALIDITY, every file gets a UID again
    fs::write(m.root().join("dovecot-uidlist"), "garbage\n").unwrap();
    let st2 = mb.sync(SyncOptions::default()).unwrap();
    assert_ne!(st2.uid_validity, st.uid_validity);
    assert_eq!(
        st2.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

/// Control files and names exactly as Dovecot 2.3.19 left them on this machine after IMAP
/// STORE/EXPUNGE/CREATE/SUBSCRIBE on a Maildir we had delivered to (plus a Postfix local(8) file
/// Dovecot gave UID 6): Dovecot appends without updating `N`, keeps the record of an expunged
/// file (UID 2), and maps keyword letters through `dovecot-keywords`.
#[test]
fn reads_what_dovecot_wrote() {
    let dir = TempDir::new();
    let m = md(&dir);
    m.create_if_missing().unwrap();
    let root = m.root();
    fs::write(
        root.join("dovecot-uidlist"),
        "3 V1795421232 N2 Gb1b7d155d46b98c8408e72118c626979\n\
         1 :1795421232.M67568P26319Q1.vm,S=87,W=94\n\
         2 :1795421232.M76142P26319Q2.vm,S=92,W=100\n\
         3 :1795421232.M77420P26319Q3.vm,S=97,W=106\n\
         4 :1795421232.M90865P26319Q4.vm,S=102,W=112\n\
         5 :1795421232.M101871P26319Q5.vm,S=94,W=100\n\
         6 :1700000000.V801I1a2bM123456.mx.example.org\n",
    )
    .unwrap();
    fs::write(
        root.join("dovecot-keywords"),
        "0 $Junk\n1 $Forwarded\n2 Work\n",
    )
    .unwrap();
    for name in [
        "1700000000.V801I1a2bM123456.mx.example.org:2,",
        "1795421232.M101871P26319Q5.vm,S=94,W=100:2,Sa",
        "1795421232.M67568P26319Q1.vm,S=87,W=94:2,Sbc",
        "1795421232.M77420P26319Q3.vm,S=97,W=106:2,",
        "1795421232.M90865P26319Q4.vm,S=102,W=112:2,",
    ] {
        fs::write(root.join("cur").join(name), b"x\n").unwrap();
    }
    let before = fs::read(root.join("dovecot-uidlist")).unwrap();
    let st = m
        .inbox()
        .unwrap()
        .sync(SyncOptions {
            move_new_to_cur: true,
        })
        .unwrap();
    // nothing to assign: no lock taken, nothing rewritten
    assert_eq!(fs::read(root.join("dovecot-uidlist")).unwrap(), before);
    assert_eq!((st.uid_validity, st.next_uid), (1795421232, 7));
    let got: Vec<(u32, Vec<String>, bool)> = st
        .messages
        .iter()
        .map(|m| {
            (
                m.uid,
                m.keywords.clone(),
                m.flags.contains(SystemFlag::Seen),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, vec!["$Forwarded".to_string(), "Work".to_string()], true),
            (3, vec![], false),
            (4, vec![], false),
            (5, vec!["$Junk".to_string()], true),
            (6, vec![], false),
        ]
    );
    assert_eq!(st.messages[0].vsize, 94);
    // the Postfix file has no sizes in its name: counted from the file
    assert_eq!((st.messages[4].size, st.messages[4].vsize), (2, 3));
    assert_eq!(
        m.deliver(None, b"y\n", &DeliverOptions::default())
            .unwrap()
            .uid,
        7
    );
}

/// Not a benchmark in the test run: times the first sync (UIDs for every file) and a clean sync
/// of a mailbox of 20,000 files. `cargo test -p pochta-mailstore -- --ignored --nocapture sync_big`
#[test]
#[ignore]
fn sync_big_mailbox() {
    let dir = TempDir::new();
    let m = md(&dir);
    m.create_if_missing().unwrap();
    let n = 20_000;
    for i in 0..n {
        let name = format!("{}.M{i}P1Q{i}.bench,S=2,W=3:2,S", 1_700_000_000 + i);
        fs::write(m.root().join("cur").join(name), b"x\n").unwrap();
    }
    let mb = m.inbox().unwrap();
    for what in ["first sync", "clean sync", "clean sync"] {
        let t = std::time::Instant::now();
        let st = mb.sync(SyncOptions::default()).unwrap();
        assert_eq!(st.messages.len(), n);
        println!(
            "{what} of {n} messages: {:.0} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}

#[derive(Clone, Debug)]
enum Op {
    Deliver {
        seen: bool,
        kw: Option<u8>,
    },
    Store {
        pick: usize,
        op: u8,
        flagged: bool,
        kw: Option<u8>,
    },
    Expunge {
        pick: usize,
    },
    Sync {
        move_new: bool,
    },
}

fn arb_op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let kw = proptest::option::of(0u8..4);
    prop_oneof![
        (any::<bool>(), kw.clone()).prop_map(|(seen, kw)| Op::Deliver { seen, kw }),
        (any::<usize>(), 0u8..3, any::<bool>(), kw).prop_map(|(pick, op, flagged, kw)| Op::Store {
            pick,
            op,
            flagged,
            kw
        }),
        any::<usize>().prop_map(|pick| Op::Expunge { pick }),
        any::<bool>().prop_map(|move_new| Op::Sync { move_new }),
    ]
}

/// Model check: after any sequence of deliveries, flag changes, expunges and syncs, a sync lists
/// exactly the model's UIDs, flags and keywords, and UIDs never repeat.
fn run_model(ops: Vec<Op>) -> std::result::Result<(), proptest::test_runner::TestCaseError> {
    use std::collections::{BTreeMap, BTreeSet};
    let dir = TempDir::new();
    let m = md(&dir);
    let names = ["$Junk", "$NonJunk", "Work", "Later"];
    // uid -> (seen, flagged, keywords)
    let mut model: BTreeMap<u32, (bool, bool, BTreeSet<String>)> = BTreeMap::new();
    let mut last_uid = 0;
    for op in ops {
        match op {
            Op::Deliver { seen, kw } => {
                let opts = DeliverOptions {
                    flags: if seen {
                        Flags::empty().with(SystemFlag::Seen)
                    } else {
                        Flags::empty()
                    },
                    keywords: kw
                        .map(|k| names[usize::from(k)].to_string())
                        .into_iter()
                        .collect(),
                    ..Default::default()
                };
                let d = m.deliver(None, b"m\n", &opts).unwrap();
                proptest::prop_assert!(d.uid > last_uid);
                last_uid = d.uid;
                let kws = kw
                    .map(|k| names[usize::from(k)].to_string())
                    .into_iter()
                    .collect();
                model.insert(d.uid, (seen, false, kws));
            }
            Op::Store {
                pick,
                op,
                flagged,
                kw,
            } => {
                if model.is_empty() {
                    continue;
                }
                let mb = m.inbox().unwrap();
                let st = mb.sync(SyncOptions::default()).unwrap();
                let msg = &st.messages[pick % st.messages.len()];
                let flags = if flagged {
                    Flags::empty().with(SystemFlag::Flagged)
                } else {
                    Flags::empty()
                };
                let kws: Vec<String> = kw
                    .map(|k| names[usize::from(k)].to_string())
                    .into_iter()
                    .collect();
                let (fop, e) = match op {
                    0 => (FlagOp::Add, 0),
                    1 => (FlagOp::Remove, 1),
                    _ => (FlagOp::Replace, 2),
                };
                mb.store_flags(msg, fop, flags, &kws).unwrap();
                let entry = model.get_mut(&msg.uid).unwrap();
                match e {
                    0 => {
                        entry.1 |= flagged;
                        entry.2.extend(kws);
                    }
                    1 => {
                        if flagged {
                            entry.1 = false;
                        }
                        for k in &kws {
                            entry.2.remove(k);
                        }
                    }
                    _ => {
                        entry.0 = false;
                        entry.1 = flagged;
                        entry.2 = kws.into_iter().collect();
                    }
                }
            }
            Op::Expunge { pick } => {
                if model.is_empty() {
                    continue;
                }
                let mb = m.inbox().unwrap();
                let st = mb.sync(SyncOptions::default()).unwrap();
                let msg = st.messages[pick % st.messages.len()].clone();
                proptest::prop_assert_eq!(
                    mb.expunge(std::slice::from_ref(&msg)).unwrap(),
                    vec![msg.uid]
                );
                model.remove(&msg.uid);
            }
            Op::Sync { move_new } => {
                let mb = m.inbox().unwrap();
                mb.sync(SyncOptions {
                    move_new_to_cur: move_new,
                })
                .unwrap();
            }
        }
        let st = m.inbox().unwrap().sync(SyncOptions::default()).unwrap();
        let got: BTreeMap<u32, (bool, bool, BTreeSet<String>)> = st
            .messages
            .iter()
            .map(|x| {
                let f = (
                    x.flags.contains(SystemFlag::Seen),
                    x.flags.contains(SystemFlag::Flagged),
                );
                (x.uid, (f.0, f.1, x.keywords.iter().cloned().collect()))
            })
            .collect();
        proptest::prop_assert_eq!(&got, &model);
        proptest::prop_assert!(st.next_uid > last_uid);
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
    #[test]
    fn store_matches_model(ops in proptest::collection::vec(arb_op(), 1..25)) {
        run_model(ops)?;
    }
}

#[test]
fn deliver_dated_sets_internal_date() {
    use std::time::{Duration, UNIX_EPOCH};
    let dir = crate::testutil::TempDir::new();
    let m = crate::Maildir::open(dir.path().join("M"));
    let when = UNIX_EPOCH + Duration::from_secs(837_596_665);
    let d = m
        .deliver_dated(
            None,
            b"Subject: x\n\nbody\n",
            &DeliverOptions::default(),
            Some(when),
        )
        .unwrap();
    let st = m
        .inbox()
        .unwrap()
        .sync(crate::SyncOptions::default())
        .unwrap();
    let msg = st.messages.iter().find(|x| x.uid == d.uid).unwrap();
    assert_eq!(msg.internal_date, when);
}
