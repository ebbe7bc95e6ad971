//! One rule for a user's mailbox: a userdb reply carrying both Dovecot 2.3's `mail` and 2.4's
//! `mail_path` is read the same way by pochta-mda-lmtp (delivery) and pochta-imapd (reading) —
//! and as the real Dovecot reads it. All three take the reply from one private Dovecot's
//! auth-userdb socket, so the reply is exactly the same.

use crate::harness::*;
use crate::mta::{python, start_daemon};
use crate::outbound::peers::{wait_until, Dovecot};
use std::path::Path;

const LMTP_SEND: &str = r#"
import smtplib, sys
socket, rcpt, subject = sys.argv[1:4]
c = smtplib.LMTP(socket)
c.sendmail("s@example.net", [rcpt], "Subject: %s\r\n\r\nbody\r\n" % subject)
c.quit()
"#;

const IMAP_COUNT: &str = r#"
import imaplib, sys
port, user, pw = sys.argv[1:4]
m = imaplib.IMAP4("127.0.0.1", int(port))
m.login(user, pw)
typ, data = m.select("INBOX", readonly=True)
print("exists", data[0].decode())
m.logout()
"#;

fn count(md: &Path) -> usize {
    std::fs::read_dir(md.join("new")).map_or(0, |d| d.count())
}

#[test]
fn mail_and_mail_path_read_alike_by_delivery_reading_and_dovecot() {
    let dir = TempDir::new("user-mailbox");
    let dovecot = Dovecot::start(&dir, "pochta.test", &["both"]);
    // The same user, now with both location fields (Dovecot re-reads a changed passwd-file).
    let home = dovecot.homes.join("both");
    let users = dir.join("dovecot/users");
    let line = std::fs::read_to_string(&users).unwrap();
    let line = line.trim_end().trim_end_matches(':');
    std::fs::write(
        &users,
        format!("{line}::userdb_mail=maildir:~/Mail23 userdb_mail_path=~/Mail24\n"),
    )
    .unwrap();
    let rcpt = "both@pochta.test";
    python(
        LMTP_SEND,
        &[dovecot.lmtp().to_str().unwrap(), rcpt, "via dovecot"],
    );
    let (m23, m24) = (home.join("Mail23"), home.join("Mail24"));
    wait_until(DEADLINE, "Dovecot's delivery", || {
        count(&m23) + count(&m24) == 1
    });
    // Debian's Dovecot (2.3) takes `mail`; this is the choice pochta must make too.
    assert_eq!((count(&m23), count(&m24)), (1, 0), "Dovecot chose Mail24");

    let lmtp = dir.join("mda-lmtp.sock");
    let _mda = start_daemon(
        "mda-lmtp",
        &format!(
            "[[listener]]\nservice = \"lmtp\"\naddress = \"{}\"\nmode = \"0666\"\n\n\
             [userdb]\nsocket = \"{}\"\n\n[delivery]\nmail_location = \"/nonexistent/%n\"\n",
            lmtp.display(),
            dovecot.userdb().display()
        ),
    );
    python(LMTP_SEND, &[lmtp.to_str().unwrap(), rcpt, "via pochta"]);
    wait_until(DEADLINE, "mda-lmtp's delivery", || count(&m23) == 2);
    assert_eq!(count(&m24), 0);

    let port = free_port();
    let _imapd = start_daemon(
        "imapd",
        &format!(
            "[[listener]]\nservice = \"imap\"\naddress = \"127.0.0.1:{port}\"\n\
             tls = \"none\"\n\n[imap]\ntrusted_networks = [\"127.0.0.0/8\"]\n\n\
             [auth]\nclient_socket = \"{}\"\nuserdb_socket = \"{}\"\n\n\
             [mail]\nlocation = \"/nonexistent/%n\"\n",
            dovecot.auth_client().display(),
            dovecot.userdb().display()
        ),
    );
    let out = python(IMAP_COUNT, &[&port.to_string(), rcpt, "pw"]);
    assert!(
        out.contains("exists 2"),
        "imapd reads another folder: {out}"
    );
}
