//! Spool behaviour on a real directory: durable enqueue, group commit under concurrency, the
//! lock, crash leftovers, torn records, corrupt files.

use super::*;
use crate::file::RcptStatus;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "pochta-queue-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }
    fn cfg(&self) -> QueueConfig {
        QueueConfig {
            dir: self.0.clone(),
            ..QueueConfig::default()
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn msg(n: usize) -> NewMessage {
    NewMessage {
        sender: format!("s{n}@example.org"),
        recipients: vec![
            NewRecipient {
                address: "a@pochta.test".into(),
                orcpt: None,
                notify: None,
                orig: None,
                agent: Default::default(),
            },
            NewRecipient {
                address: "b@pochta.test".into(),
                orcpt: None,
                notify: None,
                orig: None,
                agent: Default::default(),
            },
        ],
        envid: None,
        ret: None,
        body: None,
        smtputf8: false,
        client: "localhost[127.0.0.1]".into(),
        sasl_username: None,
        content: format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_are_all_durable_and_loadable() {
    let d = Dir::new("enqueue");
    let spool = Spool::open(&d.cfg()).unwrap();
    let mut tasks = Vec::new();
    for n in 0..200 {
        let s = spool.clone();
        tasks.push(tokio::spawn(async move {
            let id = s.new_id();
            s.enqueue(&id, msg(n)).await.map(|()| (id, n))
        }));
    }
    let mut wake = spool.take_wake().unwrap();
    for t in tasks {
        let (id, n) = t.await.unwrap().unwrap();
        let (p, bytes) = load(&d.0, &id).unwrap();
        assert_eq!(p.envelope.sender, format!("s{n}@example.org"));
        assert_eq!(&bytes[p.content.clone()], msg(n).content.as_slice());
        assert!(p.states.iter().all(|s| s.status == RcptStatus::Pending));
    }
    let mut woken = 0;
    while wake.try_recv().is_ok() {
        woken += 1;
    }
    assert_eq!(woken, 200);
    assert_eq!(list_ids(&d.0, QUEUE).unwrap().len(), 200);
    assert!(list_ids(&d.0, TMP).unwrap().is_empty());
}

#[tokio::test]
async fn lock_leftovers_records_and_corruption() {
    let d = Dir::new("recover");
    let spool = Spool::open(&d.cfg()).unwrap();
    assert!(matches!(Spool::open(&d.cfg()), Err(QueueError::Locked(_))));
    let id = spool.new_id();
    spool.enqueue(&id, msg(1)).await.unwrap();
    // A recipient result, then a torn second record.
    let st = RcptState {
        status: RcptStatus::Delivered,
        attempts: 1,
        last_ms: 1,
        next_ms: 0,
        reason: "250 2.0.0 ok".into(),
        ..RcptState::pending()
    };
    append_states(&d.0, &id, &[(0, st.clone())]).unwrap();
    let path = d.0.join(QUEUE).join(id.as_str());
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"r 1 D 5 1 0 torn").unwrap();
    drop(f);
    // Crash leftovers: an unfinished write in queue/ and in tmp/, a corrupt file.
    std::fs::write(d.0.join(TMP).join("0000000001"), b"POCHTA-QUEUE 1\nid").unwrap();
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(
        d.0.join(QUEUE).join("0000000003"),
        &whole[..whole.len() / 2],
    )
    .unwrap();
    std::fs::write(d.0.join(QUEUE).join("0000000002"), b"garbage").unwrap();
    // While the spool is open, an unfinished file is an enqueue in progress: not loadable,
    // never removed.
    let busy = QueueId::parse("0000000003").unwrap();
    assert!(matches!(load(&d.0, &busy), Err(QueueError::NotFound(_))));
    assert!(d.0.join(QUEUE).join("0000000003").exists());
    drop(spool);

    let spool = Spool::open(&d.cfg()).unwrap();
    assert!(
        list_ids(&d.0, TMP).unwrap().is_empty(),
        "tmp/ leftover kept"
    );
    assert!(
        !d.0.join(QUEUE).join("0000000003").exists(),
        "unfinished file kept"
    );
    // The corrupt file was moved aside at open.
    assert!(d.0.join(CORRUPT).join("0000000002").exists());
    let (p, _) = load(&d.0, &id).unwrap();
    assert_eq!(p.states[0], st);
    assert_eq!(p.states[1].status, RcptStatus::Pending);
    // The torn record was cut off, so the next append is readable.
    let mut st2 = st.clone();
    st2.status = RcptStatus::Bounced;
    append_states(&d.0, &id, &[(1, st2.clone())]).unwrap();
    assert_eq!(load(&d.0, &id).unwrap().0.states[1], st2);
    // New ids stay above anything in the spool.
    assert!(spool.new_id() > id);
    remove(&d.0, &id).unwrap();
    assert!(matches!(load(&d.0, &id), Err(QueueError::NotFound(_))));
    assert!(matches!(
        append_states(&d.0, &id, &[(0, st)]),
        Err(QueueError::NotFound(_))
    ));
}
