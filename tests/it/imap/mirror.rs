//! mbsync and offlineimap mirror a 1,000-message, 5-folder account both ways.

use super::*;

/// The 1,000-message, 5-folder account the mirroring clients sync.
const MIRROR_FOLDERS: [(&str, usize); 5] = [
    ("INBOX", 400),
    ("Sent", 200),
    ("Archive", 200),
    ("Lists.rust", 100),
    ("Lists.go", 100),
];

/// Fills the account through the store (as deliveries would), with some flags and keywords.
fn fill_account(maildir: &Path) {
    use pochta_mailstore::{DeliverOptions, Flags, Maildir, SystemFlag};
    let m = Maildir::open(maildir);
    m.create_if_missing().unwrap();
    for (folder, n) in MIRROR_FOLDERS {
        if folder != "INBOX" && !m.folder_exists(folder) {
            m.create_mailbox(folder).unwrap();
        }
        for i in 0..n {
            let opts = DeliverOptions {
                flags: if i % 3 == 0 {
                    Flags::empty().with(SystemFlag::Seen)
                } else if i % 7 == 0 {
                    Flags::empty().with(SystemFlag::Flagged)
                } else {
                    Flags::empty()
                },
                keywords: if i % 11 == 0 {
                    vec!["$Important".into()]
                } else {
                    Vec::new()
                },
                ..DeliverOptions::default()
            };
            let body = format!(
                "From: s{i}@example.org\nTo: {USER}\nSubject: {folder} {i}\n\
                 Message-ID: <{i}.{folder}@mirror>\n\nmessage {i} in {folder}\n{}\n",
                "line\n".repeat(i % 13)
            );
            let target = (folder != "INBOX").then_some(folder);
            m.deliver(target, body.as_bytes(), &opts).unwrap();
        }
    }
    chown_tree(maildir);
}

/// Message files per folder of a Maildir tree (`new` + `cur`), found recursively.
fn count_files(root: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, usize>) {
        let mut n = 0;
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
                n += rd.count();
            }
        }
        if dir.join("cur").is_dir() {
            let rel = dir
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel, n);
        }
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() && !["new", "cur", "tmp"].contains(&name.as_str()) {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Server-side view: messages per folder and how many are \Seen / \Flagged, through the store.
fn server_counts(maildir: &Path) -> Vec<(String, usize, usize, usize)> {
    use pochta_mailstore::{Maildir, SyncOptions, SystemFlag};
    let m = Maildir::open(maildir);
    let mut out = Vec::new();
    for name in m.list_mailboxes().unwrap() {
        let st = m
            .mailbox(name.as_str())
            .unwrap()
            .sync(SyncOptions::default())
            .unwrap();
        let seen = st
            .messages
            .iter()
            .filter(|x| x.flags.contains(SystemFlag::Seen))
            .count();
        let flagged = st
            .messages
            .iter()
            .filter(|x| x.flags.contains(SystemFlag::Flagged))
            .count();
        out.push((name.as_str().to_string(), st.messages.len(), seen, flagged));
    }
    out
}

fn mbsync(cfg: &Path, logs: &dyn Fn() -> String) -> String {
    let out = Command::new("mbsync")
        .arg("-c")
        .arg(cfg)
        .arg("-a")
        .output()
        .expect("mbsync is needed: apt install isync (run-tests)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mbsync failed:\n{text}\n{}", logs());
    text
}

#[test]
fn mbsync_mirrors_both_ways_and_then_has_nothing_to_do() {
    let s = Setup::start();
    let logs = || s.logs();
    fill_account(&s.maildir);
    let local = TempDir::new("mbsync-local");
    std::fs::create_dir_all(local.join("mail")).unwrap();
    let cfg = local.join("mbsyncrc");
    std::fs::write(
        &cfg,
        format!(
            "IMAPAccount pochta\nHost localhost\nPort {port}\nUser {USER}\nPass {PASS}\n\
             SSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore far\nAccount pochta\n\n\
             MaildirStore near\nPath {near}/\nInbox {near}/INBOX\nSubFolders Verbatim\n\n\
             Channel mirror\nFar :far:\nNear :near:\nPatterns *\nCreate Both\nExpunge Both\n\
             SyncState *\n",
            port = s.tls_port,
            cert = s.imapd_dir.join("cert.pem").display(),
            near = local.join("mail").display(),
        ),
    )
    .unwrap();
    let near_root = local.join("mail");
    let t = Instant::now();
    mbsync(&cfg, &logs);
    eprintln!("mbsync first run (1,000 messages): {:?}", t.elapsed());
    same_counts(&near_root, &s.maildir, &logs);
    assert_eq!(count_files(&near_root).values().sum::<usize>(), 1000);

    // a second run transfers nothing: neither side changes
    let before = (snapshot(&near_root), snapshot(&s.maildir));
    mbsync(&cfg, &logs);
    assert!(
        before == (snapshot(&near_root), snapshot(&s.maildir)),
        "second mbsync run changed something\n{}",
        logs()
    );

    change_both_sides(&near_root.join("INBOX"), &s.maildir);
    mbsync(&cfg, &logs);
    check_both_ways(&near_root, &s.maildir, &logs);

    let before = (snapshot(&near_root), snapshot(&s.maildir));
    mbsync(&cfg, &logs);
    assert!(
        before == (snapshot(&near_root), snapshot(&s.maildir)),
        "mbsync run after the two-way sync changed something\n{}",
        logs()
    );
}

/// Every message file name (with its flags) under a Maildir tree.
fn snapshot(root: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    fn walk(dir: &Path, out: &mut std::collections::BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d == "new" || d == "cur")
            {
                out.insert(p.to_string_lossy().into_owned());
                let _ = name;
            }
        }
    }
    walk(root, &mut out);
    out
}

/// Local (mbsync Maildir, `/` hierarchy) and server folders hold the same number of messages,
/// and the same number of them are \Seen and \Flagged.
fn same_counts(near: &Path, server: &Path, logs: &dyn Fn() -> String) {
    let mut local = Vec::new();
    for (folder, n) in count_files(near) {
        if folder.is_empty() {
            continue;
        }
        let (mut seen, mut flagged) = (0, 0);
        let dirs = [
            near.join(&folder).join("cur"),
            near.join(&folder).join("new"),
        ];
        for e in dirs.iter().flat_map(std::fs::read_dir).flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let flags = name
                .rsplit_once(":2,")
                .map(|x| x.1.to_string())
                .unwrap_or_default();
            seen += usize::from(flags.contains('S'));
            flagged += usize::from(flags.contains('F'));
        }
        local.push((folder.replace('/', "."), n, seen, flagged));
    }
    local.sort();
    let mut remote = server_counts(server);
    remote.sort();
    assert_eq!(
        local,
        remote,
        "local (left) and server (right) differ\n{}",
        logs()
    );
}

/// Changes on both sides of a mirror: in the local INBOX a new message, a \\Seen and a
/// deletion; on the server a delivery to Lists.go and a \\Flagged in Archive.
fn change_both_sides(inbox: &Path, maildir: &Path) {
    // both ways: a local new message, a local \Seen and a local deletion go up; a delivery
    // and a flag change on the server come down
    std::fs::write(
        inbox.join("new/1800000000.local.host"),
        "From: me@example.org\nSubject: written locally\n\nlocal\n",
    )
    .unwrap();
    let mut cur: Vec<PathBuf> = ["cur", "new"]
        .iter()
        .flat_map(|d| std::fs::read_dir(inbox.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("1800000000.local.host"))
        .collect();
    cur.sort();
    let info = |p: &Path| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        n.split_once(":2,").map(|x| x.1.to_string())
    };
    let unseen = cur
        .iter()
        .find(|p| {
            let i = info(p).unwrap_or_default();
            !i.contains('S') && !i.contains('F')
        })
        .unwrap()
        .clone();
    let name = unseen.file_name().unwrap().to_string_lossy().into_owned();
    let seen_name = match info(&unseen) {
        Some(_) => format!("{name}S"),
        None => format!("{name}:2,S"),
    };
    std::fs::rename(&unseen, inbox.join("cur").join(seen_name)).unwrap();
    let doomed = cur
        .iter()
        .find(|p| {
            let i = info(p).unwrap_or_default();
            **p != unseen && !i.contains('S') && !i.contains('F')
        })
        .unwrap();
    std::fs::remove_file(doomed).unwrap();
    {
        use pochta_mailstore::{DeliverOptions, FlagOp, Flags, Maildir, SyncOptions, SystemFlag};
        let m = Maildir::open(maildir);
        m.deliver(
            Some("Lists.go"),
            b"Subject: new on the server\n\nhello\n",
            &DeliverOptions::default(),
        )
        .unwrap();
        let mb = m.mailbox("Archive").unwrap();
        let st = mb.sync(SyncOptions::default()).unwrap();
        let first = st
            .messages
            .iter()
            .find(|x| !x.flags.contains(SystemFlag::Flagged))
            .unwrap();
        mb.store_flags(
            first,
            FlagOp::Add,
            Flags::empty().with(SystemFlag::Flagged),
            &[],
        )
        .unwrap();
        chown_tree(maildir);
    }
}

/// After a sync of [`change_both_sides`]: both sides agree and the changes went across.
fn check_both_ways(near_root: &Path, maildir: &Path, logs: &dyn Fn() -> String) {
    same_counts(near_root, maildir, logs);
    let server = server_counts(maildir);
    let get = |n: &str| server.iter().find(|x| x.0 == n).unwrap().clone();
    assert_eq!(
        get("INBOX").1,
        400,
        "one up, one deleted: {server:?}\n{}",
        logs()
    );
    assert_eq!(get("INBOX").2, 135, "the local \\Seen went up: {server:?}");
    assert_eq!(get("Lists.go").1, 101, "{server:?}");
    assert_eq!(get("Archive").3, 20, "{server:?}");
}

fn offlineimap(cfg: &Path, logs: &dyn Fn() -> String) -> String {
    let out = Command::new("offlineimap")
        .arg("-c")
        .arg(cfg)
        .args(["-o", "-u", "basic"])
        .output()
        .expect("offlineimap is needed: apt install offlineimap3 (run-tests)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("ERROR"),
        "offlineimap failed:\n{text}\n{}",
        logs()
    );
    text
}

#[test]
fn offlineimap_mirrors_both_ways_and_then_has_nothing_to_do() {
    let s = Setup::start();
    let logs = || s.logs();
    fill_account(&s.maildir);
    let local = TempDir::new("offlineimap-local");
    let near_root = local.join("mail");
    std::fs::create_dir_all(&near_root).unwrap();
    let cfg = local.join("offlineimaprc");
    std::fs::write(
        &cfg,
        format!(
            "[general]\naccounts = pochta\nmetadata = {meta}\n\n\
             [Account pochta]\nlocalrepository = near\nremoterepository = far\n\n\
             [Repository near]\ntype = Maildir\nlocalfolders = {near}\nsep = .\n\n\
             [Repository far]\ntype = IMAP\nremotehost = localhost\nremoteport = {port}\n\
             ssl = yes\nsslcacertfile = {cert}\nremoteuser = {USER}\nremotepass = {PASS}\n",
            meta = local.join("meta").display(),
            near = near_root.display(),
            port = s.tls_port,
            cert = s.imapd_dir.join("cert.pem").display(),
        ),
    )
    .unwrap();
    let t = Instant::now();
    offlineimap(&cfg, &logs);
    eprintln!("offlineimap first run (1,000 messages): {:?}", t.elapsed());
    same_counts(&near_root, &s.maildir, &logs);
    assert_eq!(count_files(&near_root).values().sum::<usize>(), 1000);

    let before = (snapshot(&near_root), snapshot(&s.maildir));
    offlineimap(&cfg, &logs);
    assert!(
        before == (snapshot(&near_root), snapshot(&s.maildir)),
        "second offlineimap run changed something\n{}",
        logs()
    );

    change_both_sides(&near_root.join("INBOX"), &s.maildir);
    offlineimap(&cfg, &logs);
    check_both_ways(&near_root, &s.maildir, &logs);

    let before = (snapshot(&near_root), snapshot(&s.maildir));
    offlineimap(&cfg, &logs);
    assert!(
        before == (snapshot(&near_root), snapshot(&s.maildir)),
        "offlineimap run after the two-way sync changed something\n{}",
        logs()
    );
}
