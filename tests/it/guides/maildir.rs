//! docs/mix-4-shared-maildir.md: a private Dovecot (the guide's dovecot.conf lines) and
//! pochta-imapd / pochta-pop3d (the guide's files) on one Maildir, changes made on either side.

use super::*;

/// IMAP/POP3 views and changes, over STARTTLS/STLS. Commands (the password comes last):
/// - `view PORT USER`: per folder of LIST: STATUS, then `UID FLAGS` (without \Recent); LSUB;
/// - `uidl PORT USER`: POP3 UIDL and LIST lines;
/// - `dovecot-turn PORT USER` / `pochta-turn PORT USER`: the changes each side makes;
/// - `lmtp SOCKET RCPT SUBJECT`: one delivery over LMTP.
const TURNS: &str = r#"
import imaplib, poplib, smtplib, ssl, sys, re
ctx = ssl._create_unverified_context()
cmd, args, pw = sys.argv[1], sys.argv[2:], sys.argv[-1]
def out(k, v):
    print(f"{k}\t{v}")
def ok(r):
    assert r[0] == "OK", r
def imap(port, user):
    m = imaplib.IMAP4("127.0.0.1", int(port))
    m.starttls(ssl_context=ctx)
    m.login(user, pw)
    return m
if cmd == "view":
    m = imap(*args[:2])
    names = sorted(re.match(rb'\(.*?\) "." (.*)$', d).group(1).decode().strip('"')
                   for d in m.list('""', "*")[1])
    for n in names:
        typ, data = m.status(f'"{n}"', "(MESSAGES UIDNEXT UIDVALIDITY)")
        # the name as an atom or a quoted string: both are the same mailbox (RFC 3501 astring)
        name, rest = re.match(r'"?(.*?)"? (\(.*)$', data[0].decode()).groups()
        out("status", f"{name} {rest}")
        ok(m.select(f'"{n}"', readonly=True))
        typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
        for d in data:
            if d:
                d = d.decode()
                uid = re.search(r"UID (\d+)", d).group(1)
                flags = re.search(r"FLAGS \(([^)]*)\)", d).group(1).split()
                flags = " ".join(sorted(f for f in flags if f != "\\Recent"))
                out("msg", f"{n} uid={uid} flags=({flags})")
    for d in m.lsub('""', "*")[1]:
        if d:
            out("subscribed", d.decode().rsplit(" ", 1)[1].strip('"'))
    m.logout()
elif cmd == "uidl":
    p = poplib.POP3("127.0.0.1", int(args[0]), timeout=20)
    p.stls(context=ctx)
    p.user(args[1])
    p.pass_(pw)
    for l in p.uidl()[1]:
        out("uidl", l.decode())
    for l in p.list()[1]:
        out("list", l.decode())
    p.quit()
elif cmd == "dovecot-turn":
    m = imap(*args[:2])
    ok(m.select("INBOX"))
    ok(m.store("1", "+FLAGS", r"(\Seen)"))
    ok(m.store("2", "+FLAGS", r"(\Flagged $label1)"))
    ok(m.create("Archive"))
    ok(m.subscribe("Archive"))
    ok(m.copy("3", "Archive"))
    m.logout()
elif cmd == "pochta-turn":
    m = imap(*args[:2])
    ok(m.select("INBOX"))
    ok(m.store("1", "+FLAGS", r"(\Answered $Work)"))
    ok(m.store("2", "-FLAGS", r"(\Flagged)"))
    ok(m.store("3", "+FLAGS", r"($label1 \Seen)"))
    ok(m.create("Projects"))
    ok(m.subscribe("Projects"))
    ok(m.unsubscribe("Archive"))
    ok(m.select("Archive"))
    ok(m.store("1", "+FLAGS", r"(\Flagged)"))
    m.logout()
elif cmd == "lmtp":
    sock, rcpt, subject = args[:3]
    s = smtplib.LMTP(sock)
    msg = f"From: <carol@example.net>\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    s.sendmail("carol@example.net", [rcpt], msg)
    s.quit()
"#;

/// The guide's Dovecot (with `dovecot_extra` appended to its lines) with its sockets up.
struct Setup {
    guide: Guide,
    local: Local,
    dovecot: Dovecot,
    /// Dovecot's LMTP socket
    sock: String,
}

fn setup(tag: &str, dovecot_extra: &str) -> Setup {
    let guide = Guide::load("mix-4-shared-maildir.md");
    let mix1 = Guide::load("mix-1-pochta-alone.md");
    let local = Local::new(
        tag,
        &[
            "/etc/pochta",
            "/etc/dovecot",
            "/run/dovecot",
            "/var/lib/dovecot",
            "/var/log",
            "/var/mail",
        ],
    );
    local.owned_dir("/var/mail/example.org");
    let users = local.install(&mix1, "users", "/etc/dovecot/users");
    let conf =
        dovecot_base(&local, &users) + &local.apply(&guide.file("dovecot.conf")) + dovecot_extra;
    let conf_path = local.path("/etc/dovecot/dovecot.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let dovecot = Dovecot::start(
        &conf_path,
        &local.path("/run/dovecot"),
        &local.path("/var/log/dovecot.log"),
    );
    let logs0 = || dovecot.log();
    let lmtp = local.path("/run/dovecot/lmtp");
    for s in ["auth-pochta-client", "auth-pochta-userdb", "lmtp"] {
        let p = local.path(&format!("/run/dovecot/{s}"));
        wait_for(|| p.exists(), "Dovecot's sockets", &logs0);
    }
    let sock = lmtp.display().to_string();
    Setup {
        guide,
        local,
        dovecot,
        sock,
    }
}

#[test]
fn dovecot_and_pochta_share_a_maildir_as_the_guide_shows() {
    require_root("the mixing guides' tests (Dovecot; daemons drop to nobody)");
    let Setup {
        guide,
        local,
        dovecot,
        sock,
    } = setup("guide-maildir", "");
    let logs0 = || dovecot.log();
    let alice = "alice@example.org";
    for n in 1..=3 {
        python(TURNS, &["lmtp", &sock, alice, &format!("g4-{n}")], &logs0);
    }
    let theirs = (local.port(143).to_string(), local.port(110).to_string());
    python(TURNS, &["dovecot-turn", &theirs.0, alice], &logs0);

    local.cert("/etc/pochta/tls/cert.pem", "/etc/pochta/tls/key.pem");
    assert_unit_allows("imapd", &guide.file("imapd.toml"), "");
    assert_unit_allows("pop3d", &guide.file("pop3d.toml"), "");
    let imapd_cfg = local.install(&guide, "imapd.toml", "/etc/pochta/imapd.toml");
    let imapd = Pochta::start("imapd", &imapd_cfg);
    let pop3d_cfg = local.install(&guide, "pop3d.toml", "/etc/pochta/pop3d.toml");
    let pop3d = Pochta::start("pop3d", &pop3d_cfg);
    guide.done();
    let logs = || all_logs(&[&imapd, &pop3d], &[("dovecot", dovecot.log())]);
    let ours = (local.port(1143).to_string(), local.port(1110).to_string());

    let same = |after: &str, want: &[&str]| {
        let view = |imap: &str, pop3: &str| {
            let mut v = python(TURNS, &["view", imap, alice], &logs);
            v.extend(python(TURNS, &["uidl", pop3, alice], &logs));
            v
        };
        let (a, b) = (view(&theirs.0, &theirs.1), view(&ours.0, &ours.1));
        assert_eq!(
            a,
            b,
            "after {after}: Dovecot (left) and pochta differ\n{}",
            logs()
        );
        let text = format!("{a:?}");
        for w in want {
            assert!(text.contains(w), "after {after}: no {w:?} in {text}");
        }
    };
    same(
        "Dovecot's changes",
        &[
            "INBOX uid=2 flags=($label1 \\\\Flagged)",
            "\"subscribed\", \"Archive\"",
        ],
    );
    python(TURNS, &["pochta-turn", &ours.0, alice], &logs);
    python(TURNS, &["lmtp", &sock, alice, "g4-4"], &logs);
    same(
        "pochta's changes and a Dovecot delivery",
        &[
            "INBOX uid=1 flags=($Work \\\\Answered \\\\Seen)",
            "INBOX uid=4 flags=()",
            "\"subscribed\", \"Projects\"",
        ],
    );
}

/// The guide's advice for a Dovecot whose `pop3_uidl_format` is not the default: with
/// `pop3_save_uidl = yes` and one POP3 login through Dovecot, the UIDLs are kept in
/// dovecot-uidlist and pochta-pop3d answers them unchanged.
#[test]
fn saved_uidls_of_another_format_survive_the_switch() {
    require_root("the mixing guides' tests (Dovecot; daemons drop to nobody)");
    let extra = "pop3_uidl_format = %08Xv-%08Xu-%g\npop3_save_uidl = yes\n";
    let Setup {
        guide,
        local,
        dovecot,
        sock,
    } = setup("guide-uidl", extra);
    let logs0 = || dovecot.log();
    let alice = "alice@example.org";
    for n in 1..=3 {
        python(
            TURNS,
            &["lmtp", &sock, alice, &format!("g4-uidl-{n}")],
            &logs0,
        );
    }
    let theirs = python(
        TURNS,
        &["uidl", &local.port(110).to_string(), alice],
        &logs0,
    );
    assert!(
        theirs.iter().any(|(k, v)| k == "uidl" && v.contains('-')),
        "Dovecot did not use the configured format: {theirs:?}"
    );
    local.cert("/etc/pochta/tls/cert.pem", "/etc/pochta/tls/key.pem");
    let pop3d_cfg = local.install(&guide, "pop3d.toml", "/etc/pochta/pop3d.toml");
    let pop3d = Pochta::start("pop3d", &pop3d_cfg);
    let logs = || all_logs(&[&pop3d], &[("dovecot", dovecot.log())]);
    let ours = python(
        TURNS,
        &["uidl", &local.port(1110).to_string(), alice],
        &logs,
    );
    assert_eq!(
        theirs, ours,
        "Dovecot's saved UIDLs (left) differ from pochta-pop3d's"
    );
}
