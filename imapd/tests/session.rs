//! Session tests without sockets: SASL (SASL-IR, LOGIN challenges, cancel), LOGINDISABLED
//! before STARTTLS, bad input (unknown commands, wrong state, 8-bit atoms, 10,000 nested
//! parentheses, oversized and unterminated literals, a 65 MB APPEND over the limit) and a
//! proptest that no command sequence panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pochta_imapd::replay::Replay;
use pochta_imapd::session::ConnFacts;
use proptest::prelude::*;
use std::path::PathBuf;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("pochta-imapd-s-{tag}-{}-{n}", std::process::id()));
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

fn s(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

fn logged_in(dir: &TempDir) -> Replay {
    let mut r = Replay::new(dir.0.clone());
    r.send(b"");
    let out = s(r.send(b"l LOGIN alice secret\r\n"));
    assert!(out.starts_with("l OK [CAPABILITY"), "{out}");
    r
}

#[test]
fn sasl_ir_login_challenges_and_cancel() {
    let dir = TempDir::new("sasl");
    let mut r = Replay::new(dir.0.clone());
    r.send(b"");
    // "\0alice\0secret"
    let out = s(r.send(b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"));
    assert!(out.starts_with("a OK [CAPABILITY"), "{out}");

    let mut r = Replay::new(dir.0.clone());
    r.send(b"");
    assert_eq!(s(r.send(b"b AUTHENTICATE LOGIN\r\n")), "+ VXNlcm5hbWU6\r\n");
    assert_eq!(s(r.send(b"Ym9i\r\n")), "+ UGFzc3dvcmQ6\r\n");
    let out = s(r.send(b"c2VjcmV0\r\n"));
    assert!(out.starts_with("b OK [CAPABILITY"), "{out}");

    let mut r = Replay::new(dir.0.clone());
    r.send(b"");
    assert_eq!(s(r.send(b"c AUTHENTICATE PLAIN\r\n")), "+ \r\n");
    assert_eq!(
        s(r.send(b"*\r\n")),
        "c BAD Authentication aborted by client.\r\n"
    );
    assert_eq!(
        s(r.send(b"d AUTHENTICATE PLAIN AGFsaWNlAHdyb25n\r\n")),
        "d NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    );
    assert_eq!(
        s(r.send(b"e AUTHENTICATE PLAIN !!!\r\n")),
        "e BAD Error in IMAP command: Invalid initial response.\r\n"
    );
    assert_eq!(
        s(r.send(b"f AUTHENTICATE CRAM-MD5\r\n")),
        "f NO Unsupported authentication mechanism.\r\n"
    );
}

#[test]
fn logindisabled_until_starttls() {
    let dir = TempDir::new("tls");
    let facts = ConnFacts {
        tls: false,
        starttls: true,
        trusted: false,
    };
    let mut r = Replay::with_facts(dir.0.clone(), facts);
    let greeting = s(r.send(b""));
    assert!(greeting.contains("STARTTLS LOGINDISABLED]"), "{greeting}");
    assert!(!greeting.contains("AUTH=PLAIN"));
    let out = s(r.send(b"a LOGIN alice secret\r\n"));
    assert!(out.starts_with("a NO [PRIVACYREQUIRED]"), "{out}");
    let out = s(r.send(b"b AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"));
    assert!(out.starts_with("b NO [PRIVACYREQUIRED]"), "{out}");
    assert_eq!(
        s(r.send(b"c STARTTLS\r\n")),
        "c OK Begin TLS negotiation now.\r\n"
    );
    let caps = s(r.send(b"d CAPABILITY\r\n"));
    assert!(caps.contains("AUTH=PLAIN") && !caps.contains("LOGINDISABLED"));
    assert!(!caps.contains("STARTTLS"));
    let out = s(r.send(b"e LOGIN alice secret\r\n"));
    assert!(out.starts_with("e OK"), "{out}");
}

#[test]
fn wrong_state_and_unknown_commands() {
    let dir = TempDir::new("state");
    let mut r = Replay::new(dir.0.clone());
    r.send(b"");
    assert_eq!(
        s(r.send(b"a SELECT INBOX\r\n")),
        "a BAD Please log in first.\r\n"
    );
    assert_eq!(
        s(r.send(b"b FROBNICATE\r\n")),
        "b BAD Error in IMAP command: Unknown command.\r\n"
    );
    assert_eq!(
        s(r.send(b"\r\n")),
        "* BAD Error in IMAP command: Invalid tag.\r\n"
    );
    let mut r = logged_in(&dir);
    assert_eq!(
        s(r.send(b"c FETCH 1 FLAGS\r\n")),
        "c BAD No mailbox selected.\r\n"
    );
    assert_eq!(
        s(r.send(b"d LOGIN alice secret\r\n")),
        "d BAD Already logged in.\r\n"
    );
    assert_eq!(
        s(r.send(b"e SELECT \xc3\xa4\r\n")),
        "e BAD Error in IMAP command: 8-bit characters are not allowed in atoms.\r\n"
    );
    let out = s(r.send(b"f SELECT \"\xc3\xa4\"\r\n"));
    assert_eq!(out, "f NO [CANNOT] Invalid mailbox name.\r\n");
}

#[test]
fn nested_parentheses_and_long_lines() {
    let dir = TempDir::new("nest");
    let mut r = logged_in(&dir);
    r.send(b"s SELECT INBOX\r\n");
    let mut cmd = b"a SEARCH ".to_vec();
    cmd.extend(std::iter::repeat_n(b'(', 10_000));
    cmd.extend_from_slice(b"ALL");
    cmd.extend(std::iter::repeat_n(b')', 10_000));
    cmd.extend_from_slice(b"\r\n");
    assert_eq!(
        s(r.send(&cmd)),
        "a BAD Error in IMAP command: Search keys nested too deeply.\r\n"
    );
    let mut long = b"b NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 100_000));
    long.extend_from_slice(b"\r\nc NOOP\r\n");
    assert_eq!(
        s(r.send(&long)),
        "b BAD [TOOBIG] Command line too long.\r\nc OK NOOP completed.\r\n"
    );
    // before login: 8 KiB lines, 4 KiB literals
    let mut r = Replay::new(dir.0.clone());
    r.send(b"");
    let mut long = b"d LOGIN ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 9000));
    long.extend_from_slice(b" y\r\n");
    assert_eq!(
        s(r.send(&long)),
        "d BAD [TOOBIG] Command line too long.\r\n"
    );
    assert_eq!(
        s(r.send(b"e LOGIN {5000}\r\n")),
        "e NO [TOOBIG] Literal too big.\r\n"
    );
    assert_eq!(s(r.send(b"f LOGIN {5000+}\r\n")), "");
    let out = s(r.send(&vec![b'z'; 5000]));
    assert_eq!(out, "");
    assert_eq!(
        s(r.send(b" x\r\ng NOOP\r\n")),
        "f NO [TOOBIG] Literal too big.\r\ng OK NOOP completed.\r\n"
    );
}

#[test]
fn append_over_the_limit_is_drained_not_stored() {
    let dir = TempDir::new("big");
    let mut r = logged_in(&dir);
    // synchronizing: refused before the client sends anything
    assert_eq!(
        s(r.send(b"a APPEND INBOX {104857600}\r\n")),
        "a NO [TOOBIG] Literal too big.\r\n"
    );
    // LITERAL+: 100 MB arrive anyway; drained in chunks, never held
    let total = 100usize << 20;
    assert_eq!(
        s(r.send(format!("b APPEND INBOX {{{total}+}}\r\n").as_bytes())),
        ""
    );
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..total / chunk.len() {
        assert_eq!(r.send(&chunk), b"");
    }
    assert_eq!(
        s(r.send(b"\r\nc NOOP\r\n")),
        "b NO [TOOBIG] Literal too big.\r\nc OK NOOP completed.\r\n"
    );
    let st = r
        .maildir("alice")
        .inbox()
        .unwrap()
        .sync(Default::default())
        .unwrap();
    assert!(st.messages.is_empty());
}

#[test]
fn too_many_bad_commands_end_the_session() {
    let dir = TempDir::new("bye");
    let mut r = Replay::new(dir.0.clone());
    r.send(b"");
    let mut out = String::new();
    for i in 0..30 {
        out.push_str(&s(r.send(format!("x{i} BOGUS\r\n").as_bytes())));
        if r.closed {
            break;
        }
    }
    assert!(r.closed);
    assert!(
        out.ends_with("* BYE Too many invalid IMAP commands.\r\n"),
        "{out}"
    );
}

fn command() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a NOOP".to_string()),
        Just("a LOGIN alice secret".to_string()),
        Just("a SELECT INBOX".to_string()),
        Just("a EXAMINE Trash".to_string()),
        Just("a FETCH 1:* (FLAGS UID RFC822.SIZE BODY.PEEK[HEADER])".to_string()),
        Just("a STORE 1 +FLAGS (\\Deleted $X)".to_string()),
        Just("a UID STORE 1:* -FLAGS.SILENT (\\Seen)".to_string()),
        Just("a EXPUNGE".to_string()),
        Just("a APPEND INBOX {5+}\r\nhello".to_string()),
        Just("a COPY 1:* Trash".to_string()),
        Just("a UID MOVE 1 Archive".to_string()),
        Just("a SEARCH OR SEEN NOT DELETED".to_string()),
        Just("a CLOSE".to_string()),
        Just("a UNSELECT".to_string()),
        Just("a CREATE X.Y".to_string()),
        Just("a RENAME X Z".to_string()),
        Just("a DELETE X.Y".to_string()),
        Just("a LIST \"\" *".to_string()),
        Just("a IDLE\r\nDONE".to_string()),
        Just("a STATUS INBOX (MESSAGES SIZE)".to_string()),
        "[ -~]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn no_command_sequence_panics(cmds in proptest::collection::vec(command(), 1..12)) {
        let dir = TempDir::new("prop");
        let mut r = Replay::new(dir.0.clone());
        r.send(b"");
        for c in cmds {
            let out = r.send(format!("{c}\r\n").as_bytes());
            prop_assert!(out.is_empty() || out.ends_with(b"\r\n"));
            if r.closed {
                break;
            }
        }
    }
}

#[test]
fn big_fetch_comes_in_parts_and_completes_once() {
    let dir = TempDir::new("parts");
    let mut r = logged_in(&dir);
    let body = "x".repeat(600 * 1024);
    let msg = format!("Subject: big\r\n\r\n{body}\r\n");
    for _ in 0..3 {
        let out = s(r.send(format!("a APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()).as_bytes()));
        assert!(out.starts_with("a OK [APPENDUID"), "{out}");
    }
    r.send(b"s SELECT INBOX\r\n");
    let out = r.send(b"f FETCH 1:* (UID BODY.PEEK[])\r\n");
    let text = s(out);
    assert_eq!(text.matches(" FETCH (UID ").count(), 3);
    assert_eq!(text.matches(&body).count(), 3);
    assert!(text.ends_with("f OK Fetch completed.\r\n"));
    assert_eq!(text.matches("f OK").count(), 1);
}

#[test]
fn append_and_copy_over_quota() {
    let dir = TempDir::new("quota");
    let mut r = Replay::new(dir.0.clone());
    r.quota = Some(pochta_mailstore::QuotaLimit::from_rule("*:storage=1k").unwrap());
    r.send(b"");
    assert!(s(r.send(b"l LOGIN alice secret\r\n")).starts_with("l OK"));
    let msg = format!("Subject: q\r\n\r\n{}\r\n", "x".repeat(600));
    let out = s(r.send(format!("a APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()).as_bytes()));
    assert!(out.starts_with("a OK [APPENDUID"), "{out}");
    let out = s(r.send(format!("b APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()).as_bytes()));
    assert_eq!(out, "b NO [OVERQUOTA] Quota exceeded.\r\n");
    r.send(b"s SELECT INBOX\r\n");
    assert_eq!(
        s(r.send(b"c COPY 1 Trash\r\n")),
        "c NO [OVERQUOTA] Quota exceeded.\r\n"
    );
}
