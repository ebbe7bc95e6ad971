//! pochta-mta's addresses as a real domain needs them, through the built daemons (mta, authd,
//! mda-lmtp): aliases(5) and virtual tables at RCPT time, postmaster of every domain,
//! `sendmail root` through myorigin and the aliases, a double bounce to the postmaster,
//! duplicate recipients delivered once, case-insensitive users, SIGHUP adding a domain and
//! re-reading the tables (a bad table keeps the running ones), bad tables refused with
//! file:line by `--check-config` and `newaliases`, and forwarding to another domain through a
//! relayhost (smtp-sink) with SRS applied and reversed for the bounce coming back; aliases(5)
//! `|command` and `/file` targets delivered by the queue's local agent (message, environment,
//! mbox format, exit codes, time limit) and refused at `--check-config` when their aliases
//! file belongs to another user than the mta's.

use crate::config::daemon_bin;
use crate::harness::*;
use crate::mta::{chown_test_user, wait_for, Peers, Stack, DOMAIN, HOST};
use crate::outbound::peers::Sink;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One SMTP transaction on port 25: the reply to each RCPT, then DATA's final reply (None when
/// no RCPT was accepted).
fn transaction(
    port: u16,
    from: &str,
    rcpts: &[&str],
    subject: &str,
) -> (Vec<String>, Option<String>) {
    transaction_with_body(port, from, rcpts, subject, &format!("body of {subject}"))
}

/// [`transaction`] with the body's lines given (CRLF-separated, no dot-stuffing needed).
fn transaction_with_body(
    port: u16,
    from: &str,
    rcpts: &[&str],
    subject: &str,
    body: &str,
) -> (Vec<String>, Option<String>) {
    let mut c = connect(port);
    assert!(c.line().starts_with("220"));
    c.send("EHLO client.test\r\n");
    while c.line().starts_with("250-") {}
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    // Pipelined: a thousand RCPTs are one write.
    let mut batch = String::new();
    for r in rcpts {
        batch.push_str(&format!("RCPT TO:<{r}>\r\n"));
    }
    c.send(&batch);
    let replies: Vec<String> = rcpts.iter().map(|_| c.line()).collect();
    let end = if replies.iter().any(|r| r.starts_with("250")) {
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(&format!(
            "From: <{from}>\r\nSubject: {subject}\r\n\r\n{body}\r\n.\r\n"
        ));
        Some(c.line())
    } else {
        None
    };
    c.cmd("QUIT");
    (replies, end)
}

fn maildir_count(md: &Path, needle: &str) -> usize {
    ["new", "cur"]
        .iter()
        .flat_map(|sub| {
            std::fs::read_dir(md.join(sub))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|e| {
            std::fs::read(e.path())
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        })
        .count()
}

/// `pochta-mta --check-config` on `cfg`: must refuse it (78); its message.
fn refused_config(cfg: &Path) -> String {
    let out = Command::new(daemon_bin("mta"))
        .args(["--check-config", "-c", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(78), "{err}");
    err
}

/// Writes `name` in the stack's directory (readable by the daemons' user).
fn table(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const ALIASES: &str = "# system aliases\npostmaster: root\nabuse: postmaster\n\
                       root: alice@pochta.test\nteam: alice,\n  bob@pochta.test\n";

/// The stack most tests use: pochta.test (myorigin) and other.test local, aliases + virtual.
fn stack(dir: &TempDir, virtual_table: &str, more: &str) -> Stack {
    stack_with_aliases(dir, ALIASES, virtual_table, more)
}

/// [`stack`] with other aliases(5) lines; the file belongs to the daemons' user.
fn stack_with_aliases(dir: &TempDir, aliases: &str, virtual_table: &str, more: &str) -> Stack {
    let aliases = table(dir, "aliases", aliases);
    chown_test_user(&aliases);
    let virt = table(dir, "virtual", virtual_table);
    Stack::start_full(
        Peers::Pochta,
        &format!(
            "local_domains = [\"{DOMAIN}\", \"other.test\"]\n\n[aliases]\n\
             alias_maps = [\"{}\"]\nvirtual_alias_maps = [\"{}\"]\n{more}",
            aliases.display(),
            virt.display()
        ),
        "",
        &["carol@other.test"],
    )
}

#[test]
fn postmaster_aliases_case_and_duplicates() {
    let dir = TempDir::new("aliases-basic");
    let st = stack(
        &dir,
        "info@other.test carol@other.test, bob@pochta.test\n@catch.test alice@pochta.test\n\
         catch.test anything\n",
        "",
    );
    let alice = st.maildir("alice");
    // RFC 5321 §4.5.1: the postmaster, however written, of every domain of ours.
    for (i, rcpt) in [
        "Postmaster",
        "POSTMASTER@pochta.test",
        "postmaster@other.test",
        &format!("postmaster@{HOST}"),
        "abuse@pochta.test",
    ]
    .iter()
    .enumerate()
    {
        let subject = format!("pm-{i}");
        let (r, end) = transaction(st.smtp, "someone@example.net", &[rcpt], &subject);
        assert!(r[0].starts_with("250"), "{rcpt}: {r:?}\n{}", st.log());
        assert!(end.unwrap().starts_with("250"));
        st.wait_delivered("alice", &format!("body of {subject}"));
    }
    st.wait_log("to=<alice@pochta.test>, orig_to=<postmaster@pochta.test>,");
    st.wait_log("to=<alice@pochta.test>, orig_to=<POSTMASTER@pochta.test>,");
    st.wait_log("to=<alice@pochta.test>, orig_to=<postmaster@other.test>,");

    // The admin's view of the same tables.
    let out = Command::new(bin_dir().join("pochta"))
        .args(["aliases", "-c", st.mta.config.to_str().unwrap()])
        .args([
            "root",
            "team@pochta.test",
            "info@other.test",
            "alice@pochta.test",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "root -> alice@pochta.test\n",
        "team@pochta.test -> alice@pochta.test, bob@pochta.test\n",
        "info@other.test -> carol@other.test, bob@pochta.test\n",
        "alice@pochta.test: no alias\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let out = Command::new(bin_dir().join("pochta"))
        .args([
            "aliases",
            "-1",
            "-c",
            st.mta.config.to_str().unwrap(),
            "postmaster",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "postmaster: root\n");

    // Users are case-insensitive (Dovecot's %Lu); a trailing dot names the same domain.
    for (i, rcpt) in [
        "Alice@Pochta.TEST",
        "ALICE@POCHTA.TEST",
        "alice@pochta.test.",
    ]
    .iter()
    .enumerate()
    {
        let subject = format!("case-{i}");
        let (r, _) = transaction(st.smtp, "someone@example.net", &[rcpt], &subject);
        assert!(r[0].starts_with("250"), "{rcpt}: {r:?}\n{}", st.log());
        st.wait_delivered("alice", &format!("body of {subject}"));
    }

    // Unknown users stay refused at RCPT, in every kind of domain.
    for rcpt in [
        "nobody@pochta.test",
        "nobody@other.test",
        &format!("nobody@{HOST}"),
    ] {
        let (r, _) = transaction(st.smtp, "someone@example.net", &[rcpt], "unknown");
        assert!(r[0].starts_with("550 5.1.1"), "{rcpt}: {r:?}");
    }
    // A virtual alias domain with a catch-all takes anything; the virtual entry fans out.
    let (r, _) = transaction(st.smtp, "s@example.net", &["anyone@catch.test"], "catchall");
    assert!(r[0].starts_with("250"), "{r:?}");
    st.wait_delivered("alice", "body of catchall");
    let (r, _) = transaction(st.smtp, "s@example.net", &["info@other.test"], "fanout");
    assert!(r[0].starts_with("250"), "{r:?}");
    st.wait_delivered("bob", "body of fanout");
    let carol = st.dir.join("mail/other.test/carol/Maildir");
    wait_for(
        || maildir_count(&carol, "body of fanout") == 1,
        "carol's copy",
    );

    // 1,000 RCPTs for one mailbox, in all spellings and through aliases: one copy.
    let mut rcpts = vec!["alice@pochta.test"; 996];
    rcpts.extend([
        "ALICE@pochta.test",
        "root@pochta.test",
        "team@pochta.test",
        "root",
    ]);
    let rcpts: Vec<&str> = rcpts.into_iter().filter(|r| r.contains('@')).collect();
    let (r, end) = transaction(st.smtp, "s@example.net", &rcpts, "dup-1000");
    assert!(r.iter().all(|l| l.starts_with("250")), "{:?}", &r[..3]);
    assert!(end.unwrap().starts_with("250"));
    st.wait_delivered("bob", "body of dup-1000");
    st.wait_delivered("alice", "body of dup-1000");
    st.wait_log("to=<bob@pochta.test>, orig_to=<team@pochta.test>,");
    assert_eq!(
        maildir_count(&alice, "body of dup-1000"),
        1,
        "{}",
        st.all_logs()
    );
}

#[test]
fn sendmail_root_and_double_bounce_reach_the_admin() {
    let dir = TempDir::new("aliases-sendmail");
    let st = stack(&dir, "ghost@pochta.test nobody-here@pochta.test\n", "");
    // cron's way: a bare name, no -f; myorigin is the first local domain.
    let mut child = Command::new(bin_dir().join("sendmail"))
        .args(["-C", st.mta.config.to_str().unwrap(), "root"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Subject: cron output\n\nbody of cron\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = st.wait_delivered("alice", "body of cron");
    assert!(text.contains("@pochta.test"), "{text}");
    st.wait_log("to=<alice@pochta.test>, orig_to=<root@pochta.test>,");

    // Other local programs speak SMTP on the local socket with bare names too (Postfix
    // appends myorigin); from the Internet a bare name stays a syntax error.
    let mut c = LineClient::new(std::os::unix::net::UnixStream::connect(&st.local).unwrap());
    assert!(c.line().starts_with("220"));
    c.send("EHLO localhost\r\n");
    while c.line().starts_with("250-") {}
    assert!(c.cmd("MAIL FROM:<cron>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<root>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let end = c.cmd("Subject: bare names\r\n\r\nbody of bare names\r\n.");
    assert!(end.starts_with("250"), "{end}");
    st.wait_delivered("alice", "body of bare names");
    st.wait_log("from=<cron@pochta.test>");
    let (r, _) = transaction(
        st.smtp,
        "someone@example.net",
        &["root"],
        "bare from outside",
    );
    assert!(r[0].starts_with("501"), "{r:?}");

    // A bounce (from <>) that cannot be delivered goes to the postmaster, through the aliases:
    // ghost@ is an alias for a user nobody has, so the LMTP delivery fails for good.
    let (r, end) = transaction(st.smtp, "", &["ghost@pochta.test"], "lost bounce");
    assert!(r[0].starts_with("250"), "{r:?}");
    assert!(end.unwrap().starts_with("250"));
    let notice = st.wait_delivered("alice", "nobody-here@pochta.test");
    assert!(
        notice.contains("expanded from <ghost@pochta.test>"),
        "{notice}"
    );
    assert!(
        notice.contains("Original-Recipient: rfc822;ghost@pochta.test"),
        "{notice}"
    );
}

#[test]
fn sighup_adds_a_domain_and_rereads_tables() {
    let dir = TempDir::new("aliases-reload");
    let st = stack(&dir, "", "");
    // new.test is not ours yet: a stranger may not relay there.
    let (r, _) = transaction(st.smtp, "s@example.net", &["dave@new.test"], "before");
    assert!(r[0].starts_with("554"), "{r:?}");
    let cfg = std::fs::read_to_string(&st.mta.config).unwrap().replace(
        "local_domains = [\"pochta.test\", \"other.test\"]",
        "local_domains = [\"pochta.test\", \"other.test\", \"new.test\"]",
    );
    std::fs::write(&st.mta.config, &cfg).unwrap();
    // And an alias in the new domain's virtual table.
    table(&dir, "virtual", "dave@new.test carol@other.test\n");
    st.mta.daemon.signal(nix::sys::signal::Signal::SIGHUP);
    st.wait_log("configuration reloaded");
    let (r, _) = transaction(st.smtp, "s@example.net", &["dave@new.test"], "after-hup");
    assert!(r[0].starts_with("250"), "{r:?}\n{}", st.log());
    let carol = st.dir.join("mail/other.test/carol/Maildir");
    wait_for(
        || maildir_count(&carol, "body of after-hup") == 1,
        "delivery after SIGHUP",
    );
    // postmaster@new.test is ours now too, and its mail is delivered here, not sent to DNS.
    let (r, _) = transaction(st.smtp, "s@example.net", &["postmaster@new.test"], "pm-new");
    assert!(r[0].starts_with("250"), "{r:?}");
    st.wait_delivered("alice", "body of pm-new");

    // A broken table: the reload fails, says why with file:line, the running tables stay.
    table(&dir, "aliases", "postmaster: root\nroot: |/bin/true\n");
    st.mta.daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let log = st.wait_log("reload failed, keeping the running configuration");
    assert!(log.contains("aliases:2"), "{log}");
    let (r, _) = transaction(st.smtp, "s@example.net", &["root@pochta.test"], "still");
    assert!(r[0].starts_with("250"), "{r:?}");
    st.wait_delivered("alice", "body of still");
}

#[test]
fn bad_tables_are_refused_with_file_and_line() {
    let dir = TempDir::new("aliases-bad");
    let aliases = table(
        &dir,
        "aliases",
        "postmaster: root\n# fine\nroot: |/usr/bin/logger\nabuse: /var/log/abuse\n",
    );
    let cfg = table(
        &dir,
        "mta.toml",
        &format!(
            "[[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:25\"\n\n\
             [smtpd]\nhostname = \"{HOST}\"\nlocal_domains = [\"{DOMAIN}\"]\n\n[aliases]\n\
             alias_maps = [\"{}\"]\n",
            aliases.display()
        ),
    );
    let err = refused_config(&cfg);
    let at = |line: usize| format!("{}:{line}:", aliases.display());
    assert!(err.contains(&at(3)) && err.contains("command"), "{err}");
    assert!(err.contains(&at(4)), "{err}");
    let out = Command::new(bin_dir().join("sendmail"))
        .args(["-bi", "-C", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains(&at(3)), "{err}");

    // Syntax: a line without a colon; a virtual line without a target; a bad regexp.
    table(&dir, "aliases", "postmaster root\n");
    let virt = table(
        &dir,
        "virtual",
        "ok@pochta.test alice@pochta.test\nlonely@pochta.test\n",
    );
    let re = table(&dir, "virtual.regexp", "/^(unclosed@/ alice@pochta.test\n");
    std::fs::write(
        &cfg,
        format!(
            "[[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:25\"\n\n\
             [smtpd]\nhostname = \"{HOST}\"\nlocal_domains = [\"{DOMAIN}\"]\n\n[aliases]\n\
             alias_maps = [\"{}\"]\nvirtual_alias_maps = [\"{}\", \"regexp:{}\"]\n",
            aliases.display(),
            virt.display(),
            re.display()
        ),
    )
    .unwrap();
    let err = refused_config(&cfg);
    for want in [
        format!("{}:1:", aliases.display()),
        format!("{}:2:", virt.display()),
        format!("{}:1:", re.display()),
    ] {
        assert!(err.contains(&want), "missing {want} in {err}");
    }

    // A loop is reported by newaliases and never loses mail: the RCPT is deferred (4xx).
    table(
        &dir,
        "aliases",
        "postmaster: root\nroot: alice@pochta.test\na: b\nb: a\n",
    );
    std::fs::write(
        &cfg,
        format!(
            "[[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:25\"\n\n\
             [smtpd]\nhostname = \"{HOST}\"\nlocal_domains = [\"{DOMAIN}\"]\n\n[aliases]\n\
             alias_maps = [\"{}\"]\n",
            aliases.display()
        ),
    )
    .unwrap();
    let out = Command::new(bin_dir().join("sendmail"))
        .args(["-bi", "-C", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning") && err.contains(&format!("{}:3:", aliases.display())),
        "{err}"
    );
}

/// SRS: an alias forwards to another domain through the relayhost (smtp-sink); the envelope
/// sender becomes SRS0=…@pochta.test; a bounce sent back to that address is reversed and
/// relayed to the original sender; a forged SRS address is refused.
#[test]
fn forwarding_with_srs_and_the_bounce_back() {
    let dir = TempDir::new("aliases-srs");
    let port = free_port();
    let sink = Sink::start(&dir, "relay.test", "127.0.0.1", port, &[]);
    let secret = table(&dir, "srs.secret", "test-secret-one\n");
    give_to_test_user(&secret);
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let st = stack(
        &dir,
        "fwd@pochta.test friend@example.net\n",
        &format!(
            "\n[srs]\ndomain = \"{DOMAIN}\"\nsecret_file = \"{}\"\n\n[outbound]\n\
             relayhost = \"[127.0.0.1]:{port}\"\n",
            secret.display()
        ),
    );
    let (r, end) = transaction(st.smtp, "sender@external.test", &["fwd@pochta.test"], "fwd");
    assert!(r[0].starts_with("250"), "{r:?}\n{}", st.log());
    assert!(end.unwrap().starts_with("250"));
    let mut srs = String::new();
    wait_for(
        || {
            sink.messages().iter().any(|m| {
                let hit = m.contains("body of fwd") && m.contains("friend@example.net");
                if hit {
                    srs = m
                        .lines()
                        .find(|l| l.starts_with("X-Mail-Args:"))
                        .unwrap_or_default()
                        .to_owned();
                }
                hit
            })
        },
        "the forwarded copy at the relayhost",
    );
    assert!(srs.contains("SRS0="), "{srs}");
    assert!(srs.contains("=external.test=sender@pochta.test"), "{srs}");
    st.wait_log("to=<friend@example.net>, orig_to=<fwd@pochta.test>,");
    let srs_addr = srs
        .split('<')
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap()
        .to_owned();

    // The bounce comes back to the SRS address: reversed, relayed to the original sender.
    let (r, _) = transaction(st.smtp, "", &[&srs_addr], "bounce-back");
    assert!(r[0].starts_with("250"), "{r:?}\n{}", st.log());
    wait_for(
        || {
            sink.messages()
                .iter()
                .any(|m| m.contains("body of bounce-back") && m.contains("sender@external.test"))
        },
        "the bounce relayed to the original sender",
    );
    // A forged one (wrong hash) is refused.
    let hash = srs_addr[5..].split('=').next().unwrap();
    let other = if hash.eq_ignore_ascii_case("AAAA") {
        "BBBB"
    } else {
        "AAAA"
    };
    let forged = srs_addr.replacen(&format!("SRS0={hash}="), &format!("SRS0={other}="), 1);
    let (r, _) = transaction(st.smtp, "", &[&forged], "forged");
    assert!(r[0].starts_with("550"), "{forged}: {r:?}");
}

/// Restarts the stack's mta with `extra` lines added to `[delivery]` (the last table of its
/// config): keys the running daemon only reads at start.
fn restart_mta_with_delivery(st: &mut Stack, run: &TempDir, extra: &str) {
    st.mta.daemon.signal(nix::sys::signal::Signal::SIGTERM);
    st.mta.daemon.wait_exit(std::time::Duration::from_secs(30));
    let mut cfg = std::fs::read_to_string(&st.mta.config).unwrap();
    let last = cfg.rfind("\n[").unwrap();
    assert!(cfg[last..].starts_with("\n[delivery]\n"), "{cfg}");
    cfg.push_str(extra);
    std::fs::write(&st.mta.config, cfg).unwrap();
    let mut notify = Notify::new(run);
    let mut cmd = Command::new(daemon_bin("mta"));
    cmd.arg("-c").arg(&st.mta.config);
    let mut daemon = Daemon::spawn(cmd, run, &notify);
    notify.wait_for("READY=1", &mut daemon);
    st.mta.daemon = daemon;
}

/// `250 2.0.0 Ok: queued as ID` → ID.
fn queued_as(reply: &str) -> String {
    reply
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// aliases(5) `|command` and `/file` targets (allow_mail_to_commands, allow_mail_to_files),
/// delivered by the queue's local agent as Postfix's local(8) does: the command gets the
/// message after a From_ line, Return-Path, X-Original-To and Delivered-To, with local(8)'s
/// environment; the file gets it in mbox format (`>From ` quoting, blank line after), created
/// 0600; exit 75 defers (mailq lists it with the command's output), exit 67 bounces (5.1.1 to
/// the sender), a command past command_time_limit is killed and deferred. A table with such
/// targets owned by another user than the mta's is refused by --check-config.
#[test]
fn commands_and_files_in_aliases() {
    let dir = TempDir::new("aliases-local");
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    chown_test_user(&out);
    let o = out.display();
    let aliases = format!(
        "{ALIASES}\
         log: \"|/bin/sh -c 'cat > {o}/log.msg; \
         echo $RECIPIENT $ORIGINAL_RECIPIENT $USER $SENDER $EXTENSION > {o}/log.env'\"\n\
         archive: {o}/archive.mbox\n\
         crew: log, archive, alice\n\
         busy: \"|/bin/sh -c 'echo mailbox busy; exit 75'\"\n\
         nolist: \"|/bin/sh -c 'echo no such list; exit 67'\"\n\
         hang: \"|/bin/sh -c 'echo $$ > {o}/hang.pid; sleep 600'\"\n"
    );
    let mut st = stack_with_aliases(
        &dir,
        &aliases,
        "",
        "allow_mail_to_commands = true\nallow_mail_to_files = true\n",
    );
    let run = TempDir::new("aliases-local-run");
    restart_mta_with_delivery(&mut st, &run, "command_time_limit = \"3s\"\n");

    // crew@ → the command, the mbox file and alice's mailbox, one message.
    let body = "From the start of a line\r\nbody of local-1";
    let (r, end) = transaction_with_body(
        st.smtp,
        "someone@example.net",
        &["crew@pochta.test"],
        "local-1",
        body,
    );
    assert!(r[0].starts_with("250"), "{r:?}\n{}", st.log());
    assert!(end.unwrap().starts_with("250"));
    st.wait_delivered("alice", "body of local-1");
    let log_msg = out.join("log.msg");
    wait_for(
        || std::fs::read_to_string(&log_msg).is_ok_and(|t| t.contains("body of local-1")),
        "the command's copy",
    );
    let got = std::fs::read_to_string(&log_msg).unwrap();
    assert!(got.starts_with("From someone@example.net  "), "{got}");
    let head = "\nReturn-Path: <someone@example.net>\nX-Original-To: crew@pochta.test\n\
                Delivered-To: log@pochta.test\n";
    assert!(got.contains(head), "{got}");
    // Commands get the body as it is (no quoting), LF line ends.
    assert!(got.contains("\nFrom the start of a line\n"), "{got}");
    assert!(!got.contains('\r'), "{got:?}");
    let env = std::fs::read_to_string(out.join("log.env")).unwrap();
    assert_eq!(
        env,
        "log@pochta.test crew@pochta.test log someone@example.net\n"
    );
    let mbox_path = out.join("archive.mbox");
    wait_for(
        || std::fs::read_to_string(&mbox_path).is_ok_and(|t| t.contains("body of local-1")),
        "the mbox copy",
    );
    let mbox = std::fs::read_to_string(&mbox_path).unwrap();
    assert!(mbox.starts_with("From someone@example.net  "), "{mbox}");
    // Delivered-To names the alias whose value held the target.
    let mbox_head = head.replace("Delivered-To: log@", "Delivered-To: archive@");
    assert!(mbox.contains(&mbox_head), "{mbox}");
    assert!(mbox.contains("\n>From the start of a line\n"), "{mbox}");
    assert!(mbox.ends_with("body of local-1\n\n"), "{mbox:?}");
    let meta = std::fs::metadata(&mbox_path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        0o600
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        crate::mta::test_uid()
    );
    let cmd_text = format!(
        "/bin/sh -c 'cat > {o}/log.msg; echo $RECIPIENT $ORIGINAL_RECIPIENT $USER $SENDER \
         $EXTENSION > {o}/log.env'"
    );
    st.wait_log(&format!(
        "to=<|{cmd_text}>, orig_to=<crew@pochta.test>, relay=local,"
    ));
    st.wait_log(&format!("status=sent (delivered to command: {cmd_text})"));
    st.wait_log(&format!(
        "to=<{o}/archive.mbox>, orig_to=<crew@pochta.test>, relay=local,"
    ));
    st.wait_log(&format!(
        "status=sent (delivered to file: {o}/archive.mbox)"
    ));

    // Addressed directly with an extension: RECIPIENT and EXTENSION say so; a second mbox
    // message follows the first.
    let (r, _) = transaction(
        st.smtp,
        "someone@example.net",
        &["log+news@pochta.test", "archive@pochta.test"],
        "local-2",
    );
    assert!(r.iter().all(|l| l.starts_with("250")), "{r:?}");
    wait_for(
        || std::fs::read_to_string(out.join("log.env")).is_ok_and(|t| t.ends_with(" news\n")),
        "the second command run",
    );
    assert_eq!(
        std::fs::read_to_string(out.join("log.env")).unwrap(),
        "log+news@pochta.test log+news@pochta.test log someone@example.net news\n"
    );
    wait_for(
        || std::fs::read_to_string(&mbox_path).is_ok_and(|t| t.contains("body of local-2")),
        "the second mbox message",
    );
    let mbox = std::fs::read_to_string(&mbox_path).unwrap();
    assert_eq!(
        mbox.matches("\nFrom someone@example.net  ").count(),
        1,
        "{mbox}"
    );
    assert!(
        mbox.contains("body of local-1\n\nFrom someone@example.net  "),
        "{mbox}"
    );

    // Exit 75 (EX_TEMPFAIL): deferred with the command's output, listed by mailq.
    let (r, end) = transaction(st.smtp, "alice@pochta.test", &["busy@pochta.test"], "busy");
    assert!(r[0].starts_with("250"), "{r:?}");
    let id = queued_as(&end.unwrap());
    st.wait_log(&format!(
        "{id}: to=<|/bin/sh -c 'echo mailbox busy; exit 75'>, orig_to=<busy@pochta.test>, \
         relay=local,"
    ));
    st.wait_log("status=deferred (temporary failure. Command output: mailbox busy)");
    st.assert_queued(&id, "|/bin/sh -c 'echo mailbox busy; exit 75'");

    // Exit 67 (EX_NOUSER): bounced as 5.1.1, the sender hears of it.
    let (r, _) = transaction(
        st.smtp,
        "alice@pochta.test",
        &["nolist@pochta.test"],
        "nolist",
    );
    assert!(r[0].starts_with("250"), "{r:?}");
    st.wait_log("dsn=5.1.1, status=bounced (user unknown. Command output: no such list)");
    let notice = st.wait_delivered("alice", "user unknown. Command output: no such list");
    assert!(
        notice.contains("<nolist@pochta.test>: user unknown"),
        "{notice}"
    );
    assert!(notice.contains("Status: 5.1.1"), "{notice}");

    // A command that hangs: killed after command_time_limit (3s here) and deferred.
    let (r, end) = transaction(st.smtp, "alice@pochta.test", &["hang@pochta.test"], "hang");
    assert!(r[0].starts_with("250"), "{r:?}");
    let id = queued_as(&end.unwrap());
    let log = st.wait_log("status=deferred (Command time limit exceeded:");
    assert!(
        log.contains(&format!("{id}: to=<|/bin/sh -c 'echo $$")),
        "{log}"
    );
    st.assert_queued(&id, "|/bin/sh -c 'echo $$");
    let pid: i32 = std::fs::read_to_string(out.join("hang.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(
        || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.is_empty() || stat.split(' ').nth(2) == Some("Z")
        },
        "the hung command killed",
    );

    // A table with a command, owned by somebody else than the mta's user: refused.
    if nix::unistd::Uid::effective().is_root() {
        let foreign = table(&dir, "foreign-aliases", "log: |/usr/bin/logger\n");
        let daemon = nix::unistd::User::from_name("daemon").unwrap().unwrap();
        nix::unistd::chown(&foreign, Some(daemon.uid), Some(daemon.gid)).unwrap();
        let cfg = table(
            &dir,
            "foreign.toml",
            &as_test_user(&format!(
                "[[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:25\"\n\n\
                 [smtpd]\nhostname = \"{HOST}\"\nlocal_domains = [\"{DOMAIN}\"]\n\n\
                 [aliases]\nalias_maps = [\"{}\"]\nallow_mail_to_commands = true\n",
                foreign.display()
            )),
        );
        let err = refused_config(&cfg);
        assert!(
            err.contains(&format!(
                "{} is owned by daemon but pochta-mta runs as nobody: |command and /file \
                 targets would not run as their owner; chown the file to nobody",
                foreign.display()
            )),
            "{err}"
        );
    }
}
