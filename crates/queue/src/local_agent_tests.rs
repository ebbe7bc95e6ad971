//! The local delivery agent: the bytes it writes (mbox and command input), the command
//! environment, pipe_command()'s verdicts, and real commands and files.

use super::*;
use crate::file::{Agent, LocalAlias, StoredRecipient};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

fn alias() -> LocalAlias {
    LocalAlias {
        user: "log".into(),
        address: "log+debug@pochta.test".into(),
    }
}

fn rcpt(address: &str, agent: Agent) -> StoredRecipient {
    StoredRecipient {
        address: address.into(),
        notify: None,
        orcpt: None,
        orig: Some("team@pochta.test".into()),
        agent,
    }
}

fn delivery<'a>(sender: &'a str, r: &'a StoredRecipient, content: &'a [u8]) -> Delivery<'a> {
    Delivery {
        sender,
        rcpt: r,
        envid: Some("E 1"),
        client: "client.test[192.0.2.7]",
        sasl_username: None,
        content,
    }
}

fn file_agent() -> Agent {
    Agent::File {
        uid: 1000,
        gid: 1000,
        alias: alias(),
    }
}

/// 2025-03-04 10:15:02 UTC, a Tuesday.
const WHEN: u64 = 1_741_083_302;

#[test]
fn mbox_copy_has_from_line_headers_quoting_and_blank_line() {
    let r = rcpt("/var/mail/archive", file_agent());
    let content = b"Subject: hi\r\n\r\nFrom the start\r\n>From kept\r\n From not at start\r\nlast";
    let d = delivery("alice@example.net", &r, content);
    let out = mail_copy(&d, &alias(), content, WHEN, true);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "From alice@example.net  Tue Mar  4 10:15:02 2025\n\
         Return-Path: <alice@example.net>\n\
         X-Original-To: team@pochta.test\n\
         Delivered-To: log+debug@pochta.test\n\
         Subject: hi\n\
         \n\
         >From the start\n\
         >From kept\n\
         \x20From not at start\n\
         last\n\
         \n"
    );
}

#[test]
fn command_copy_is_not_quoted_and_null_sender_is_mailer_daemon() {
    let r = rcpt(
        "cat",
        Agent::Command {
            uid: 1,
            gid: 1,
            alias: alias(),
        },
    );
    let content = b"Subject: x\r\n\r\nFrom here\r\n";
    let d = delivery("", &r, content);
    let out = String::from_utf8(mail_copy(&d, &alias(), content, 0, false)).unwrap();
    assert!(
        out.starts_with("From MAILER-DAEMON  Thu Jan  1 00:00:00 1970\nReturn-Path: <>\n"),
        "{out}"
    );
    assert!(out.ends_with("\n\nFrom here\n"), "{out:?}");
    assert!(!out.contains('\r'));
}

#[test]
fn environment_is_local8s_and_censored() {
    let mut r = rcpt(
        "cat",
        Agent::Command {
            uid: 1,
            gid: 1,
            alias: alias(),
        },
    );
    r.orig = Some("Team;rm -rf@pochta.test".into());
    let d = delivery("a b$(x)@example.net", &r, b"");
    let env: std::collections::HashMap<String, String> =
        environment(&d, &alias()).into_iter().collect();
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("HOME"), Some("/"));
    assert_eq!(get("SHELL"), Some("/bin/sh"));
    assert_eq!(get("PATH"), Some("/usr/bin:/bin"));
    assert_eq!(get("USER"), Some("log"));
    assert_eq!(get("LOGNAME"), Some("log"));
    assert_eq!(get("RECIPIENT"), Some("log+debug@pochta.test"));
    assert_eq!(get("LOCAL"), Some("log+debug"));
    assert_eq!(get("DOMAIN"), Some("pochta.test"));
    assert_eq!(get("EXTENSION"), Some("debug"));
    assert_eq!(get("ORIGINAL_RECIPIENT"), Some("Team_rm_-rf@pochta.test"));
    assert_eq!(get("SENDER"), Some("a_b__x_@example.net"));
    assert_eq!(get("ENVID"), Some("E_1"));
    assert_eq!(get("CLIENT_HOSTNAME"), Some("client.test"));
    assert_eq!(get("CLIENT_ADDRESS"), Some("192.0.2.7"));
    // No extension when the recipient is the bare alias.
    let plain = LocalAlias {
        user: "log".into(),
        address: "log@pochta.test".into(),
    };
    let env = environment(&d, &plain);
    assert!(!env.iter().any(|(k, _)| k == "EXTENSION"), "{env:?}");
}

#[test]
fn exit_codes_map_like_pipe_command() {
    let r = command_result("cmd", Exit::Code(0), None, "chatter");
    assert_eq!((r.class, r.dsn.as_str()), (2, "2.0.0"));
    assert_eq!(r.text, "delivered to command: cmd");
    // A command that does not read its input but exits 0 has delivered.
    let epipe = io::Error::from(io::ErrorKind::BrokenPipe);
    assert_eq!(
        command_result("cmd", Exit::Code(0), Some(&epipe), "").class,
        2
    );
    let r = command_result("cmd", Exit::Code(75), None, "try later");
    assert_eq!((r.class, r.dsn.as_str()), (4, "4.3.0"));
    assert_eq!(r.text, "temporary failure. Command output: try later");
    assert_eq!(r.diag, "X-Unix; try later");
    let r = command_result("cmd", Exit::Code(67), None, "");
    assert_eq!((r.class, r.dsn.as_str()), (5, "5.1.1"));
    assert_eq!(r.text, "user unknown");
    assert_eq!(r.diag, "X-Unix; user unknown");
    assert_eq!(command_result("c", Exit::Code(78), None, "").dsn, "5.3.5");
    assert_eq!(command_result("c", Exit::Code(71), None, "").class, 4);
    let r = command_result("cmd", Exit::Code(1), None, "no such file");
    assert_eq!((r.class, r.dsn.as_str()), (5, "5.3.0"));
    assert_eq!(
        r.text,
        "Command died with status 1: \"cmd\". Command output: no such file"
    );
    let r = command_result("cmd", Exit::Signal(9), None, "");
    assert_eq!((r.class, r.dsn.as_str()), (4, "4.3.0"));
    assert_eq!(r.text, "Command died with signal 9: \"cmd\"");
    let r = command_result("cmd", Exit::TimedOut, None, "");
    assert_eq!(r.class, 4);
    assert_eq!(r.text, "Command time limit exceeded: \"cmd\"");
    // "D.S.N text" output takes precedence over the exit status.
    let r = command_result("cmd", Exit::Code(1), None, "4.2.1 mailbox busy");
    assert_eq!(
        (r.class, r.dsn.as_str(), r.text.as_str()),
        (4, "4.2.1", "mailbox busy")
    );
    let r = command_result("cmd", Exit::Code(75), None, "5.1.1 no such list");
    assert_eq!((r.class, r.dsn.as_str()), (5, "5.1.1"));
    // Not a status: the exit code decides.
    assert_eq!(
        command_result("c", Exit::Code(75), None, "4.x bad").class,
        4
    );
    assert_eq!(
        command_result("c", Exit::Code(1), None, "2.0.0 ok").class,
        5
    );
}

#[test]
fn rights_must_be_the_process_own_and_never_root() {
    assert!(check_rights("command", 1000, 1000, (1000, 1000)).is_ok());
    let r = check_rights("command", 1000, 1000, (998, 998)).unwrap_err();
    assert_eq!((r.class, r.dsn.as_str()), (4, "4.3.5"));
    assert!(r.text.contains("as uid 1000 gid 1000"), "{}", r.text);
    assert!(r.text.contains("runs as uid 998 gid 998"), "{}", r.text);
    assert!(check_rights("file", 1000, 5, (1000, 1000)).is_err());
    assert!(check_rights("file", 0, 0, (0, 0)).is_err());
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_command_gets_the_message_and_its_environment() {
    let dir = TempDir::new("cmd");
    let out = dir.0.join("out");
    let cmd = format!(
        "cat > {o}; echo \"$RECIPIENT $USER $(pwd)\" > {o}.env; echo done",
        o = out.display()
    );
    let env = vec![
        ("RECIPIENT".to_owned(), "log@pochta.test".to_owned()),
        ("USER".to_owned(), "log".to_owned()),
    ];
    let r = run_command(&cmd, &env, b"From x\nbody\n", 10 * SECOND).await;
    assert_eq!(
        (r.class, r.text.clone()),
        (2, format!("delivered to command: {cmd}"))
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"From x\nbody\n");
    let seen = std::fs::read_to_string(dir.0.join("out.env")).unwrap();
    assert_eq!(seen, "log@pochta.test log /\n");
}

#[tokio::test]
async fn command_failures_carry_their_output() {
    let r = run_command("echo 'queue full' >&2; exit 75", &[], b"x\n", 10 * SECOND).await;
    assert_eq!((r.class, r.dsn.as_str()), (4, "4.3.0"));
    assert_eq!(r.text, "temporary failure. Command output: queue full");
    let r = run_command("printf 'no\\tsuch\\nuser'; exit 67", &[], b"", 10 * SECOND).await;
    assert_eq!((r.class, r.dsn.as_str()), (5, "5.1.1"));
    assert_eq!(r.text, "user unknown. Command output: no such user");
    // Much output: kept to the first KiB, and the command is never stuck on a full pipe.
    let r = run_command(
        "head -c 300000 /dev/zero | tr '\\0' x; exit 1",
        &[],
        b"",
        10 * SECOND,
    )
    .await;
    assert_eq!(r.class, 5);
    let output = r.text.split("Command output: ").nth(1).unwrap_or_default();
    assert_eq!(output, "x".repeat(OUTPUT_LIMIT));
    // A command that reads nothing of a large message and exits 0 has delivered.
    let big = vec![b'y'; 1 << 20];
    let r = run_command("exit 0", &[], &big, 10 * SECOND).await;
    assert_eq!(r.class, 2, "{r:?}");
    let r = run_command("kill -TERM $$", &[], b"", 10 * SECOND).await;
    assert_eq!(
        (r.class, r.text.as_str()),
        (4, "Command died with signal 15: \"kill -TERM $$\"")
    );
}

#[tokio::test]
async fn a_command_past_its_time_limit_is_killed_with_its_children() {
    let dir = TempDir::new("cmd-hang");
    let pidfile = dir.0.join("child.pid");
    let cmd = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let started = std::time::Instant::now();
    let r = run_command(&cmd, &[], b"", Duration::from_millis(500)).await;
    assert!(started.elapsed() < 10 * SECOND);
    assert_eq!((r.class, r.dsn.as_str()), (4, "4.3.0"));
    assert!(
        r.text.starts_with("Command time limit exceeded"),
        "{}",
        r.text
    );
    // The background sleep went with the process group.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let end = std::time::Instant::now() + 10 * SECOND;
    let gone = loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its reaper.
        if stat.is_empty() || stat.split(' ').nth(2) == Some("Z") {
            break true;
        }
        if std::time::Instant::now() > end {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(gone, "the command's child {pid} survived");
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "pochta-local-agent-{tag}-{}-{}",
            std::process::id(),
            crate::now_ms()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn files_are_appended_created_0600_and_refused_when_unsafe() {
    let dir = TempDir::new("file");
    let mbox = dir.0.join("archive.mbox");
    let r = append_file(&mbox, b"From a  x\nm1\n\n");
    assert_eq!(
        (r.class, r.text.clone()),
        (2, format!("delivered to file: {}", mbox.display()))
    );
    assert_eq!(
        std::fs::metadata(&mbox).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert_eq!(append_file(&mbox, b"From b  y\nm2\n\n").class, 2);
    assert_eq!(
        std::fs::read(&mbox).unwrap(),
        b"From a  x\nm1\n\nFrom b  y\nm2\n\n"
    );
    // A symbolic link is never followed.
    let link = dir.0.join("link");
    std::os::unix::fs::symlink(&mbox, &link).unwrap();
    let r = append_file(&link, b"z\n");
    assert_eq!(r.class, 4);
    assert!(r.text.ends_with("file is a symbolic link"), "{}", r.text);
    // Nor a second hard link to a file.
    let hard = dir.0.join("hard");
    std::fs::hard_link(&mbox, &hard).unwrap();
    let r = append_file(&hard, b"z\n");
    assert_eq!(r.class, 4);
    assert!(r.text.ends_with("file has 2 hard links"), "{}", r.text);
    std::fs::remove_file(&hard).unwrap();
    // An executable file bounces (Postfix 5.7.1).
    let exe = dir.0.join("exe");
    std::fs::write(&exe, b"").unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o700)).unwrap();
    let r = append_file(&exe, b"z\n");
    assert_eq!((r.class, r.dsn.as_str()), (5, "5.7.1"));
    // A directory, a relative path, a maildir-style path: deferred.
    assert_eq!(append_file(&dir.0, b"z\n").class, 4);
    assert_eq!(append_file(Path::new("rel/file"), b"z\n").class, 4);
    let r = append_file(&dir.0.join("Maildir/"), b"z\n");
    assert!(r.text.contains("maildir"), "{}", r.text);
    // Nothing changed the mailbox meanwhile.
    assert_eq!(
        std::fs::read(&mbox).unwrap(),
        b"From a  x\nm1\n\nFrom b  y\nm2\n\n"
    );
}

#[test]
fn devices_take_mail_and_write_errors_defer() {
    assert_eq!(append_file(Path::new("/dev/null"), b"x\n").class, 2);
    if Path::new("/dev/full").exists() {
        let r = append_file(Path::new("/dev/full"), b"x\n");
        assert_eq!((r.class, r.dsn.as_str()), (4, "4.3.0"), "{}", r.text);
        assert!(r.text.contains("error writing message"), "{}", r.text);
    }
}

#[test]
fn a_locked_file_is_waited_for_then_deferred() {
    let dir = TempDir::new("lock");
    let mbox = dir.0.join("locked.mbox");
    std::fs::write(&mbox, b"old\n").unwrap();
    std::fs::set_permissions(&mbox, std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = std::fs::File::open(&mbox).unwrap();
    let held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let r = append_file(&mbox, b"new\n");
    assert_eq!(r.class, 4);
    assert!(r.text.contains("unable to lock"), "{}", r.text);
    drop(held);
    assert_eq!(std::fs::read(&mbox).unwrap(), b"old\n");
    assert_eq!(append_file(&mbox, b"new\n").class, 2);
    assert_eq!(std::fs::read(&mbox).unwrap(), b"old\nnew\n");
}
