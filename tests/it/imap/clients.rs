//! python imaplib and imapclient scenarios.

use super::*;

/// The imaplib scenario: every step prints `key<TAB>value`.
const IMAPLIB: &str = r#"
import imaplib, ssl, sys, time, smtplib, base64
host, port, tls_port, user, pw, lmtp = sys.argv[1:7]
ctx = ssl._create_unverified_context()
imaplib.Commands.setdefault("MOVE", ("SELECTED",))
def out(k, v):
    print(f"{k}\t{v}", flush=True)
def enc(x):
    return x.decode() if isinstance(x, bytes) else str(x)
def parts(data):
    for d in data:
        if isinstance(d, tuple):
            out("part", enc(d[0]) + "\t" + base64.b64encode(d[1]).decode())
        else:
            out("rest", enc(d))

m = imaplib.IMAP4(host, int(port))
out("caps_plain", " ".join(m.capabilities))
try:
    m.login(user, pw)
    out("plain_login", "accepted")
except imaplib.IMAP4.error as e:
    out("plain_login", enc(e.args[0]))
m.starttls(ssl_context=ctx)
out("caps_tls", " ".join(m.capabilities))
typ, data = m.login(user, pw)
out("login", typ + " " + enc(data[0]))
for f in ["Projects", "Projects.2024", "Projects.2024.Q1", "Lists.rust"]:
    out("create", f + " " + m.create(f)[0])
for d in m.list()[1]:
    out("list", enc(d))
for d in m.list("\"\"", "Projects.%")[1]:
    out("list_pct", enc(d))
msg1 = (b"From: Alice <alice@pochta.test>\r\nTo: Bob <bob@example.org>\r\n"
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Wed, 17 Jul 1996 02:44:25 -0700\r\n"
        b"Message-ID: <m1@pochta.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello world\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b1--\r\n")
typ, data = m.append("Projects.2024", r"(\Seen $Important)",
                     imaplib.Time2Internaldate(837596665), msg1)
out("append1", typ + " " + enc(data[0]))
msg2 = b"From: bob@example.org\r\nSubject: second\r\n\r\nplain body\r\nline two\r\n"
typ, data = m.append("Projects.2024", None, None, msg2)
out("append2", typ + " " + enc(data[0]))
typ, data = m.select("Projects.2024")
out("select", typ + " " + enc(data[0]))
out("uidvalidity", enc(m.response("UIDVALIDITY")[1][0]))
typ, data = m.fetch("1", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
out("fetch_meta", enc(data[0]))
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[1] BODY.PEEK[]<0.10> "
                         "BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[1.MIME])")
parts(data)
typ, data = m.fetch("2", "(FLAGS)")
out("flags2_before", enc(data[0]))
typ, data = m.fetch("2", "(BODY[TEXT])")
parts(data)
typ, data = m.fetch("2", "(FLAGS)")
out("flags2_after", enc(data[0]))
out("search_all", enc(m.search(None, "ALL")[1][0]))
m.literal = "Grüße".encode()
out("search_subject_utf8", enc(m.search("UTF-8", "SUBJECT")[1][0]))
out("search_text", enc(m.search(None, 'TEXT "hello WORLD"')[1][0]))
out("search_header", enc(m.search(None, 'HEADER Message-ID "<m1@pochta.test>"')[1][0]))
out("search_sent", enc(m.search(None, "SENTBEFORE 1-Jan-2000")[1][0]))
out("search_keyword", enc(m.search(None, "KEYWORD $Important")[1][0]))
out("uid_search_unflagged", enc(m.uid("SEARCH", "UNFLAGGED")[1][0]))
typ, data = m.store("1", "+FLAGS", r"(\Flagged)")
out("store", enc(data[0]))
typ, data = m.uid("STORE", "2", "+FLAGS", r"(\Answered $Label1)")
out("uid_store", enc(data[0]))
typ, data = m.store("1", "-FLAGS.SILENT", r"(\Seen)")
out("store_silent", typ + " " + repr(data))
typ, data = m.copy("1:2", "Lists.rust")
out("copy", typ + " " + enc(data[0]))
typ, data = m.uid("MOVE", "1", "Projects")
out("move", typ + " " + enc(data[0]))
out("move_untagged", repr(m.untagged_responses.get("EXPUNGE")))
typ, data = m.status("Lists.rust", "(MESSAGES UNSEEN SIZE UIDNEXT)")
out("status", enc(data[0]))
typ, data = m.store("1", "+FLAGS", r"(\Deleted)")
typ, data = m.expunge()
out("expunge", typ + " " + repr(data))
typ, data = m.select("Projects.2024", readonly=True)
out("examine", typ + " " + enc(data[0]))
typ, data = m.rename("Projects", "Work")
out("rename", typ)
for d in m.list("\"\"", "*")[1]:
    out("list_after", enc(d))
typ, data = m.delete("Work.2024.Q1")
out("delete", typ)
m.logout()

s = imaplib.IMAP4_SSL(host, int(tls_port), ssl_context=ctx)
typ, data = s.authenticate("PLAIN", lambda _: f"\0{user}\0{pw}".encode())
out("auth_plain", typ)
typ, data = s.select("INBOX")
out("inbox", enc(data[0]))
tag = s._new_tag()
s.send(tag + b" IDLE\r\n")
out("idle_cont", enc(s.readline().strip()))
l = smtplib.LMTP(lmtp)
t = time.monotonic()
l.sendmail("sender@example.org", [user], b"Subject: idle test\r\n\r\nhi\r\n")
l.quit()
s.sock.settimeout(5)
line = s.readline()
out("idle_delay", time.monotonic() - t)
out("idle_event", enc(line.strip()))
s.send(b"DONE\r\n")
while True:
    line = s.readline()
    if line.startswith(tag):
        break
out("idle_done", enc(line.strip()))
typ, data = s.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
parts(data)
s.logout()
"#;

#[test]
fn imaplib_scenario_with_lmtp_delivery_and_idle() {
    let s = Setup::start();
    let logs = || s.logs();
    let d = python(
        IMAPLIB,
        &[
            "127.0.0.1",
            &s.plain_port.to_string(),
            &s.tls_port.to_string(),
            USER,
            PASS,
            s.lmtp.to_str().unwrap(),
        ],
        &logs,
    );
    let ctx = || format!("{:#?}\n{}", d.0, s.logs());
    let check = |cond: bool, what: &str| assert!(cond, "{what}\n{}", ctx());
    // LOGINDISABLED and no plaintext mechanisms until STARTTLS
    let caps = d.one("caps_plain");
    check(caps.contains("STARTTLS LOGINDISABLED"), "caps before TLS");
    check(!caps.contains("AUTH=PLAIN"), "no AUTH=PLAIN before TLS");
    check(
        d.one("plain_login").starts_with("[PRIVACYREQUIRED]"),
        "LOGIN refused",
    );
    let caps = d.one("caps_tls");
    check(
        caps.contains("AUTH=PLAIN") && !caps.contains("LOGINDISABLED"),
        "caps after TLS",
    );
    check(
        d.one("login").starts_with("OK [CAPABILITY IMAP4rev1"),
        "login",
    );
    // Commands pipelined behind STARTTLS in the clear are never run; the session ends after
    // the handshake (CVE-2011-0411), as the mta's and pop3d's do.
    let mut c = connect(s.plain_port);
    assert!(c.line().starts_with("* OK"));
    c.send(&format!("a STARTTLS\r\nb LOGIN {USER} {PASS}\r\n"));
    assert!(c.line().starts_with("a OK"), "{}", ctx());
    let tcp = c.get_mut().try_clone().unwrap();
    let mut t = LineClient::new(tls_wrap(tcp));
    check(t.closed(), "session closed after injected plaintext");
    crate::outbound::peers::wait_until(DEADLINE, "the injection logged", || {
        s.logs()
            .contains("plaintext pipelined after STARTTLS; closing")
    });
    check(
        d.all("create").iter().all(|c| c.ends_with(" OK")),
        "creates",
    );
    let list = d.all("list");
    for want in [
        "(\\HasNoChildren) \".\" INBOX",
        "(\\HasNoChildren \\Sent) \".\" \"Sent\"",
        "(\\HasNoChildren \\Trash) \".\" \"Trash\"",
        "(\\Noselect \\HasChildren) \".\" \"Lists\"",
        "(\\HasChildren) \".\" \"Projects.2024\"",
        "(\\HasNoChildren) \".\" \"Projects.2024.Q1\"",
    ] {
        check(list.iter().any(|l| l == want), want);
    }
    check(list[0].ends_with("INBOX"), "INBOX first");
    check(
        d.all("list_pct") == vec!["(\\HasChildren) \".\" \"Projects.2024\"".to_string()],
        "LIST %",
    );
    let v = d.one("uidvalidity");
    check(
        d.one("append1") == format!("OK [APPENDUID {v} 1] Append completed."),
        "append1",
    );
    check(
        d.one("append2") == format!("OK [APPENDUID {v} 2] Append completed."),
        "append2",
    );
    check(d.one("select") == "OK 2", "select");
    // INTERNALDATE is the APPEND date; RFC822.SIZE and BODYSTRUCTURE from the stored bytes
    let meta = d.one("fetch_meta");
    for want in [
        "UID 1 FLAGS (\\Seen $Important) INTERNALDATE \"17-Jul-1996 09:44:25 +0000\" \
         RFC822.SIZE 395 ENVELOPE (\"Wed, 17 Jul 1996 02:44:25 -0700\" \
         \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" ((\"Alice\" NIL \"alice\" \"pochta.test\"))",
        "((\"Bob\" NIL \"bob\" \"example.org\")) NIL NIL NIL \"<m1@pochta.test>\")",
        "BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 11 0 \
         NIL NIL NIL NIL)(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 8 NIL NIL \
         NIL NIL) \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)",
    ] {
        check(meta.contains(want), want);
    }
    let parts = d.all("part");
    let part = |prefix: &str| -> Vec<u8> {
        let p = parts
            .iter()
            .find(|p| p.contains(prefix))
            .unwrap_or_else(|| panic!("no {prefix}\n{}", ctx()));
        b64(p.rsplit('\t').next().unwrap())
    };
    check(
        part("BODY[HEADER.FIELDS (SUBJECT)] {40}")
            == b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n",
        "HEADER.FIELDS",
    );
    check(part("BODY[1] {11}") == b"hello world", "BODY[1]");
    check(part("BODY[]<0> {10}") == b"From: Alic", "partial");
    check(
        part("BINARY[2] ~{5}") == [0, 1, 2, 3, 4],
        "BINARY (literal8 for NUL)",
    );
    check(
        parts.iter().any(|p| p.contains("BINARY.SIZE[2] 5")),
        "BINARY.SIZE",
    );
    check(
        part("BODY[1.MIME]") == b"Content-Type: text/plain; charset=utf-8\r\n\r\n",
        "MIME",
    );
    check(
        part("BODY[TEXT] {22}") == b"plain body\r\nline two\r\n",
        "TEXT",
    );
    // BODY[] without PEEK sets \Seen and says so
    check(
        d.one("flags2_before") == "2 (FLAGS (\\Recent))",
        "flags before",
    );
    check(
        d.one("flags2_after") == "2 (FLAGS (\\Seen \\Recent))",
        "flags after",
    );
    for (k, want) in [
        ("search_all", "1 2"),
        ("search_subject_utf8", "1"),
        ("search_text", "1"),
        ("search_header", "1"),
        // Message 2 has no Date: header: it compares as 1-Jan-1970, as in Dovecot.
        ("search_sent", "1 2"),
        ("search_keyword", "1"),
        ("uid_search_unflagged", "1 2"),
        ("store", "1 (FLAGS (\\Flagged \\Seen $Important))"),
        (
            "uid_store",
            "2 (UID 2 FLAGS (\\Answered \\Seen $Label1 \\Recent))",
        ),
        ("store_silent", "OK [None]"),
        (
            "status",
            "\"Lists.rust\" (MESSAGES 2 UNSEEN 1 SIZE 459 UIDNEXT 3)",
        ),
        ("examine", "OK 0"),
        ("rename", "OK"),
        ("delete", "OK"),
        ("auth_plain", "OK"),
        ("idle_cont", "+ idling"),
        ("idle_event", "* 1 EXISTS"),
    ] {
        check(d.one(k) == want, k);
    }
    check(d.one("copy").starts_with("OK [COPYUID "), "COPYUID");
    check(
        d.one("copy").ends_with(" 1:2 1:2] Copy completed."),
        "COPYUID sets",
    );
    check(d.one("move_untagged") == "[b'1']", "MOVE expunges");
    let after = d.all("list_after");
    check(
        after.iter().any(|l| l.ends_with("\"Work.2024.Q1\"")),
        "RENAME moves children",
    );
    check(
        !after.iter().any(|l| l.contains("Projects")),
        "old names gone",
    );
    // IDLE sees the LMTP delivery within a second
    let delay: f64 = d.one("idle_delay").parse().unwrap();
    check(delay < 1.0, "IDLE within a second");
    check(
        part("BODY[HEADER.FIELDS (SUBJECT)] {22}") == b"Subject: idle test\r\n\r\n",
        "IDLE",
    );
    check(d.one("idle_done").ends_with(" OK Idle completed."), "DONE");
    // on disk: Dovecot's formats (keywords file, uidlist)
    let kw = std::fs::read_to_string(s.maildir.join(".Lists.rust/dovecot-keywords")).unwrap();
    check(
        kw.contains("$Important") && kw.contains("$Label1"),
        "dovecot-keywords",
    );
    let _ = (&s.imapd_dir, Instant::now(), Duration::ZERO);
}

/// The imapclient (PyPI) scenario: its response parser is strict, so every FETCH item, LIST,
/// STATUS and SEARCH reply goes through a second, independent IMAP parser.
const IMAPCLIENT: &str = r#"
import ssl, sys, time, smtplib, datetime
from imapclient import IMAPClient
host, tls_port, user, pw, lmtp = sys.argv[1:6]
ctx = ssl._create_unverified_context()
def out(k, v):
    print(f"{k}\t{v}", flush=True)
c = IMAPClient(host, port=int(tls_port), ssl=True, ssl_context=ctx, timeout=30)
c.login(user, pw)
out("caps", " ".join(sorted(x.decode() for x in c.capabilities())))
for f in ["Clients", "Clients.imapclient", "Clients.imapclient.deep"]:
    c.create_folder(f)
out("folders", "|".join(f"{sorted(x.decode() for x in fl)}:{n}" for fl, d, n in c.list_folders("Clients")))
out("exists", c.folder_exists("Clients.imapclient.deep"))
out("special", sorted((n, [x.decode() for x in fl if x.decode() in ("\\Sent", "\\Trash")]) for fl, d, n in c.list_folders() if n in ("Sent", "Trash")))
msg = (b"From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nTo: a@pochta.test, b@pochta.test\r\n"
       b"Cc: c@example.org\r\nSubject: imapclient test\r\nDate: Mon, 2 Jan 2023 10:00:00 +0100\r\n"
       b"In-Reply-To: <x@y>\r\nMessage-ID: <ic1@t>\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/alternative; boundary=zz\r\n\r\npreamble\r\n"
       b"--zz\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=E4se\r\n"
       b"--zz\r\nContent-Type: text/html\r\nContent-Disposition: inline\r\n\r\n<p>hi</p>\r\n--zz--\r\n")
when = datetime.datetime(2023, 1, 2, 9, 0, 0, tzinfo=datetime.timezone.utc)
r = c.append("Clients.imapclient", msg, flags=[b"\\Flagged", b"$Custom"], msg_time=when)
out("append", r.decode())
c.append("Clients.imapclient", b"Subject: small\r\n\r\nx\r\n")
sel = c.select_folder("Clients.imapclient")
out("select", f"{sel[b'EXISTS']} {sel[b'UIDNEXT']} {sorted(x.decode() for x in sel[b'FLAGS'])}")
data = c.fetch([1], ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[1]", "BINARY.PEEK[1]", "BODY.PEEK[HEADER.FIELDS (SUBJECT CC)]"])
d = data[1]
out("flags", sorted(x.decode() for x in d[b"FLAGS"]))
out("internaldate", d[b"INTERNALDATE"].isoformat())
out("size", d[b"RFC822.SIZE"])
e = d[b"ENVELOPE"]
out("env_subject", e.subject.decode())
out("env_from", f"{e.from_[0].name.decode()} {e.from_[0].mailbox.decode()}@{e.from_[0].host.decode()}")
out("env_to", len(e.to))
out("env_cc", e.cc[0].mailbox.decode())
out("env_reply", e.in_reply_to.decode())
out("env_date", e.date.isoformat() if e.date else None)
bs = d[b"BODYSTRUCTURE"]
out("bs_multipart", bs.is_multipart)
out("bs_sub", bs[1].decode())
out("bs_part1", f"{bs[0][0][0].decode()}/{bs[0][0][1].decode()} {bs[0][0][5].decode()}")
out("body1", d[b"BODY[1]"].decode("latin-1"))
out("binary1", d[b"BINARY[1]"].decode("latin-1"))
out("hdr", d[b"BODY[HEADER.FIELDS (SUBJECT CC)]"].decode())
out("search_subject", c.search(["SUBJECT", "imapclient"]))
out("search_flagged", c.search(["FLAGGED"]))
out("search_body", c.search(["BODY", "hi"]))
out("search_since", c.search(["SINCE", datetime.date(2023, 1, 1)]))
out("search_or", c.search(["OR", "FLAGGED", "SMALLER", 100]))
out("add_flags", c.add_flags([2], [b"\\Seen", b"$Other"]))
out("remove_flags", c.remove_flags([1], [b"$Custom"]))
out("set_flags", c.set_flags([2], [b"\\Answered"]))
out("copy", c.copy([1, 2], "Clients"))
out("move", c.move([2], "Clients.imapclient.deep"))
out("status", c.folder_status("Clients", ["MESSAGES", "UNSEEN", "UIDNEXT"]))
c.delete_messages([1])
out("expunge", c.expunge())
out("left", c.search(["ALL"]))
c.select_folder("INBOX")
c.idle()
l = smtplib.LMTP(lmtp)
t = time.monotonic()
l.sendmail("sender@example.org", [user], b"Subject: idle imapclient\r\n\r\nhi\r\n")
l.quit()
responses = c.idle_check(timeout=5)
out("idle_delay", time.monotonic() - t)
out("idle_responses", responses)
c.idle_done()
c.logout()
"#;

#[test]
fn imapclient_scenario() {
    let s = Setup::start();
    let logs = || s.logs();
    let d = python(
        IMAPCLIENT,
        &[
            "127.0.0.1",
            &s.tls_port.to_string(),
            USER,
            PASS,
            s.lmtp.to_str().unwrap(),
        ],
        &logs,
    );
    let ctx = || format!("{:#?}\n{}", d.0, s.logs());
    for (k, want) in [
        (
            "folders",
            "['\\\\HasChildren']:Clients|['\\\\HasChildren']:Clients.imapclient|\
             ['\\\\HasNoChildren']:Clients.imapclient.deep",
        ),
        ("exists", "True"),
        (
            "special",
            "[('Sent', ['\\\\Sent']), ('Trash', ['\\\\Trash'])]",
        ),
        ("flags", "['$Custom', '\\\\Flagged']"),
        ("size", "472"),
        ("env_subject", "imapclient test"),
        ("env_from", "=?utf-8?q?J=C3=B6rg?= j@example.org"),
        ("env_to", "2"),
        ("env_cc", "c"),
        ("env_reply", "<x@y>"),
        ("bs_multipart", "True"),
        ("bs_sub", "alternative"),
        ("bs_part1", "text/plain quoted-printable"),
        ("body1", "K=E4se"),
        ("binary1", "K\u{e4}se"),
        ("hdr", "Cc: c@example.org"),
        ("search_subject", "[1]"),
        ("search_flagged", "[1]"),
        ("search_body", "[1]"),
        ("search_since", "[1, 2]"),
        ("search_or", "[1, 2]"),
        ("add_flags", "{2: (b'\\\\Seen', b'$Other', b'\\\\Recent')}"),
        ("remove_flags", "{1: (b'\\\\Flagged',)}"),
        ("set_flags", "{2: (b'\\\\Answered', b'\\\\Recent')}"),
        ("status", "{b'MESSAGES': 2, b'UNSEEN': 2, b'UIDNEXT': 3}"),
        ("expunge", "(b'Expunge completed.', [(1, b'EXPUNGE')])"),
        ("left", "[]"),
        ("idle_responses", "[(1, b'EXISTS'), (1, b'RECENT')]"),
    ] {
        assert_eq!(d.one(k), want, "{k}\n{}", ctx());
    }
    assert!(d.one("append").starts_with("[APPENDUID "), "{}", ctx());
    assert!(d.one("select").starts_with("2 3 "), "{}", ctx());
    let delay: f64 = d.one("idle_delay").parse().unwrap();
    assert!(delay < 1.0, "IDLE took {delay} s\n{}", ctx());
}
