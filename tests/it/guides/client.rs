//! The mail clients of the guides' tests: python smtplib, imaplib and poplib.

use super::*;

/// The mail clients of the guides' tests (python smtplib, imaplib, poplib); TLS certificates
/// are not verified (the test made them). Each command prints `key<TAB>value` lines.
/// - `send PORT MODE USER FROM TO SUBJECT`: MODE plain|starttls|ssl; USER empty = no AUTH;
///   prints `queued` with the final reply to DATA;
/// - `rcpt PORT FROM TO`: prints `rcpt` with the reply code and text to RCPT;
/// - `badauth PORT USER`: STARTTLS, AUTH with a wrong password; prints `auth` with the reply;
/// - `imap PORT USER SUBJECT` / `pop3 PORT USER SUBJECT`: STARTTLS/STLS, login, wait (20 s)
///   until a message with that subject is there; prints `found` with its Subject line.
pub(super) const CLIENT: &str = r#"
import smtplib, imaplib, poplib, ssl, sys, time
ctx = ssl._create_unverified_context()
cmd, args, pw = sys.argv[1], sys.argv[2:], sys.argv[-1]
def out(k, v):
    print(f"{k}\t{v}", flush=True)
def until(f):
    end = time.time() + 20
    while True:
        r = f()
        if r or time.time() > end:
            return r
        time.sleep(0.1)
if cmd == "send":
    port, mode, user, sender, rcpt, subject = args[:6]
    if mode == "ssl":
        s = smtplib.SMTP_SSL("127.0.0.1", int(port), context=ctx, timeout=20)
    else:
        s = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
    s.ehlo("client.example.net")
    if mode == "starttls":
        s.starttls(context=ctx)
        s.ehlo("client.example.net")
    if user:
        s.login(user, pw)
    msg = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject}@client.example.net>\r\n\r\nHello.\r\n")
    code, text = s.mail(sender)
    assert code == 250, (code, text)
    code, text = s.rcpt(rcpt)
    assert code == 250, (code, text)
    code, text = s.data(msg.encode())
    assert code == 250, (code, text)
    out("queued", text.decode())
    s.quit()
elif cmd == "rcpt":
    port, sender, rcpt = args[:3]
    s = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
    s.ehlo("client.example.net")
    s.mail(sender)
    code, text = s.rcpt(rcpt)
    out("rcpt", f"{code} {text.decode()}")
    s.quit()
elif cmd == "badauth":
    port, user = args[:2]
    s = smtplib.SMTP("127.0.0.1", int(port), timeout=30)
    s.starttls(context=ctx)
    s.ehlo("client.example.net")
    try:
        s.login(user, "not the password")
        out("auth", "succeeded")
    except smtplib.SMTPAuthenticationError as e:
        out("auth", f"{e.smtp_code} {e.smtp_error.decode()}")
elif cmd == "imap":
    port, user, subject = args[:3]
    m = imaplib.IMAP4("127.0.0.1", int(port))
    m.starttls(ssl_context=ctx)
    m.login(user, pw)
    def look():
        m.select("INBOX", readonly=True)
        typ, data = m.search(None, "SUBJECT", f'"{subject}"')
        return data[0].split()
    found = until(look)
    assert found, f"no {subject} in INBOX"
    typ, data = m.fetch(found[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out("found", data[0][1].decode().strip())
    m.logout()
elif cmd == "pop3":
    port, user, subject = args[:3]
    def look():
        p = poplib.POP3("127.0.0.1", int(port), timeout=20)
        p.stls(context=ctx)
        p.user(user)
        p.pass_(pw)
        for n in range(1, len(p.list()[1]) + 1):
            lines = p.retr(n)[1]
            for l in lines:
                if l.decode() == f"Subject: {subject}":
                    p.quit()
                    return l.decode()
        p.quit()
    found = until(look)
    assert found, f"no {subject} over POP3"
    out("found", found)
"#;

/// Runs [`CLIENT`] (or another script) with `args`; the password is always the last
/// argument. Returns the `key<TAB>value` lines; panics with the logs unless it exits 0.
pub(super) fn python(
    script: &str,
    args: &[&str],
    logs: &dyn Fn() -> String,
) -> Vec<(String, String)> {
    let out = Command::new(need("python3"))
        .arg("-c")
        .arg(script)
        .args(args)
        .arg(PASSWORD)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python {args:?} failed: {}\nstdout:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The value of the one `key` line.
pub(super) fn value(lines: &[(String, String)], key: &str) -> String {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
}

/// Sends with [`CLIENT`]; returns the queue id from `250 … queued as ID`.
pub(super) fn send(
    port: u16,
    mode: &str,
    login: &str,
    (from, to): (&str, &str),
    subject: &str,
    logs: &dyn Fn() -> String,
) -> String {
    let p = port.to_string();
    let lines = python(CLIENT, &["send", &p, mode, login, from, to, subject], logs);
    let reply = value(&lines, "queued");
    reply
        .rsplit_once("queued as ")
        .map(|(_, id)| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no queue id in {reply:?}"))
}

/// Reads the message with `subject` back over IMAP (STARTTLS) and POP3 (STLS).
pub(super) fn read_back(
    imap: u16,
    pop3: u16,
    user: &str,
    subject: &str,
    logs: &dyn Fn() -> String,
) {
    let want = format!("Subject: {subject}");
    let got = python(CLIENT, &["imap", &imap.to_string(), user, subject], logs);
    assert_eq!(value(&got, "found"), want);
    let got = python(CLIENT, &["pop3", &pop3.to_string(), user, subject], logs);
    assert_eq!(value(&got, "found"), want);
}
