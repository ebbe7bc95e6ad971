//! Bad input over TLS and the transcripts replayed against the built binary.

use super::*;

fn imaps(port: u16) -> LineClient<TlsStream> {
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    LineClient::new(tls_wrap(tcp))
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn bad_input_over_the_wire_and_a_100_mb_append() {
    use std::io::Write;
    let mut s = Setup::start();
    let mut c = imaps(s.tls_port);
    assert!(c.line().starts_with("* OK [CAPABILITY IMAP4rev1"));
    let expect = |c: &mut LineClient<TlsStream>, cmd: &str, want: &str| {
        let got = c.cmd(cmd);
        assert_eq!(got, format!("{want}\r\n"), "{cmd}\n{}", s.logs());
    };
    expect(&mut c, "a1 SELECT INBOX", "a1 BAD Please log in first.");
    expect(
        &mut c,
        "a2 XYZZY",
        "a2 BAD Error in IMAP command: Unknown command.",
    );
    c.get_mut().write_all(b"a3 LOGIN \xe4\xf6 x\r\n").unwrap();
    assert_eq!(
        c.line(),
        "a3 BAD Error in IMAP command: 8-bit characters are not allowed in atoms.\r\n"
    );
    expect(&mut c, "a4 LOGIN {5000}", "a4 NO [TOOBIG] Literal too big.");
    let login = c.cmd(&format!("a5 LOGIN {USER} {PASS}"));
    assert!(login.starts_with("a5 OK [CAPABILITY"), "{login}");
    let mut nested = "a6 SEARCH ".to_string();
    nested.push_str(&"(".repeat(10_000));
    nested.push_str("ALL");
    nested.push_str(&")".repeat(10_000));
    expect(
        &mut c,
        &nested,
        "a6 BAD Error in IMAP command: Search keys nested too deeply.",
    );
    c.send("s SELECT INBOX\r\n");
    while !c.line().starts_with("s OK") {}

    // 100 MB with LITERAL+ over the 1 MB limit: drained, answered, not stored, memory flat
    let pid = s.imapd.pid();
    let before = rss_kib(pid);
    c.send("a7 APPEND INBOX {104857600+}\r\n");
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        c.get_mut().write_all(&chunk).unwrap();
    }
    c.send("\r\n");
    assert_eq!(c.line(), "a7 NO [TOOBIG] Literal too big.\r\n");
    let after = rss_kib(pid);
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // synchronizing: refused before the client sends a byte
    expect(
        &mut c,
        "a8 APPEND INBOX {104857600}",
        "a8 NO [TOOBIG] Literal too big.",
    );
    expect(&mut c, "a9 NOOP", "a9 OK NOOP completed.");
    // an unterminated literal, then the connection is cut
    c.send("b1 APPEND INBOX {100}\r\n");
    assert_eq!(c.line(), "+ OK\r\n");
    c.send("only a part");
    drop(c);
    let mut c = imaps(s.tls_port);
    c.line();
    assert!(c
        .cmd(&format!("b2 LOGIN {USER} {PASS}"))
        .starts_with("b2 OK"));
    c.send("b3 STATUS INBOX (MESSAGES)\r\n");
    assert_eq!(c.line(), "* STATUS INBOX (MESSAGES 0)\r\n");
    assert!(s.imapd.try_exit().is_none(), "imapd died\n{}", s.logs());
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

/// imapd's transcripts (imapd/tests/transcripts, replayed in-process by its own tests) replayed
/// over IMAPS against the built binary: the canned user `alice`/`secret` becomes the authd
/// user, `!deliver`/`!expunge` act on the Maildir as another process would, `!changed` is
/// inotify's job here. Transcripts whose greeting is exact (plaintext capabilities) are skipped.
#[test]
fn transcripts_replayed_against_the_binary() {
    let s = Setup::start();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../imapd/tests/transcripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "imap"))
        .collect();
    files.sort();
    let mut replayed = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.contains("\nS: * OK …\n") {
            continue;
        }
        // a fresh account per transcript
        let _ = std::fs::remove_dir_all(&s.maildir);
        let mut c = imaps(s.tls_port);
        let mut expected: Vec<String> = Vec::new();
        let check = |c: &mut LineClient<TlsStream>, expected: &mut Vec<String>| {
            for want in expected.drain(..) {
                let got = c.line();
                let got = got.strip_suffix("\r\n").unwrap_or(&got).to_string();
                assert!(
                    line_matches(&want, &got),
                    "{}: expected {want:?}, got {got:?}\n{}",
                    file.display(),
                    s.logs()
                );
            }
        };
        for line in text.lines() {
            let c_line = if line == "C:" {
                Some("")
            } else {
                line.strip_prefix("C: ")
            };
            if let Some(cmd) = c_line {
                check(&mut c, &mut expected);
                let cmd = cmd.replace("LOGIN alice secret", &format!("LOGIN {USER} {PASS}"));
                c.send(&format!("{cmd}\r\n"));
            } else if let Some(want) = line.strip_prefix("S: ") {
                expected.push(want.to_string());
            } else if let Some(d) = line.strip_prefix("!deliver ") {
                check(&mut c, &mut expected);
                let mut w = d.splitn(3, ' ');
                let (_user, mailbox, subject) =
                    (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
                let md = pochta_mailstore::Maildir::open(&s.maildir);
                let msg = format!("From: x@example.org\nSubject: {subject}\n\nbody {subject}\n");
                let target = (mailbox != "INBOX").then_some(mailbox);
                md.deliver(target, msg.as_bytes(), &Default::default())
                    .unwrap();
                chown_tree(&s.maildir);
            } else if let Some(d) = line.strip_prefix("!expunge ") {
                check(&mut c, &mut expected);
                let mut w = d.splitn(3, ' ');
                let (_user, mailbox, uid) =
                    (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
                let mb = pochta_mailstore::Maildir::open(&s.maildir)
                    .mailbox(mailbox)
                    .unwrap();
                let st = mb.sync(Default::default()).unwrap();
                let uid: u32 = uid.parse().unwrap();
                let m: Vec<_> = st.messages.into_iter().filter(|m| m.uid == uid).collect();
                assert_eq!(mb.expunge(&m).unwrap(), vec![uid]);
                chown_tree(&s.maildir);
            } else if line == "!changed" {
                // the daemon's inotify sees the delivery by itself
            } else if !(line.trim().is_empty() || line.starts_with('#')) {
                panic!("{}: bad transcript line {line:?}", file.display());
            }
        }
        check(&mut c, &mut expected);
        replayed += 1;
    }
    assert!(replayed >= 2, "no transcripts replayed");
}
