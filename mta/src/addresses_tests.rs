//! RCPT decisions without I/O: relay refusals, local mailboxes, aliases, postmaster.

use super::*;
use pochta_smtp::{parse_command, Command};

fn rcpt(arg: &str) -> Result<ForwardPath, u16> {
    match parse_command(format!("RCPT TO:<{arg}>").as_bytes(), false) {
        Ok(Command::Rcpt { to, .. }) => Ok(to),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.reply().code()),
    }
}

const STRANGER: Client = Client {
    authenticated: false,
    trusted: false,
};
const USER: Client = Client {
    authenticated: true,
    trusted: false,
};

/// An address book from an mta.toml fragment (plus hostname mx.pochta.test).
fn book(extra: &str) -> AddressBook {
    let text = format!("[smtpd]\nhostname = \"mx.pochta.test\"\n{extra}");
    let cfg: Config = toml::from_str(&text).unwrap();
    AddressBook::load(&cfg).unwrap()
}

fn plain() -> AddressBook {
    book("local_domains = [\"pochta.test\"]\n")
}

fn resolve(b: &AddressBook, arg: &str, client: Client) -> Result<Resolved, Reply> {
    b.resolve(&rcpt(arg).unwrap(), client, 0)
}

/// nmap smtp-open-relay's 16 RCPT forms with domain nmap.scanme.org, our name
/// mx.pochta.test and our address 127.0.0.1: every one is refused for a stranger, by the
/// parser (501) or by the policy (554).
#[test]
fn nmap_open_relay_forms_refused() {
    let forms = [
        "relaytest@nmap.scanme.org",
        "relaytest%nmap.scanme.org@[127.0.0.1]",
        "relaytest%nmap.scanme.org@mx.pochta.test",
        "\"relaytest@nmap.scanme.org\"",
        "\"relaytest%nmap.scanme.org\"",
        "relaytest@nmap.scanme.org@[127.0.0.1]",
        "\"relaytest@nmap.scanme.org\"@[127.0.0.1]",
        "relaytest@nmap.scanme.org@mx.pochta.test",
        "@[127.0.0.1]:relaytest@nmap.scanme.org",
        "@mx.pochta.test:relaytest@nmap.scanme.org",
        "nmap.scanme.org!relaytest",
        "nmap.scanme.org!relaytest@[127.0.0.1]",
        "nmap.scanme.org!relaytest@mx.pochta.test",
        // With our own domain as the final destination the hacks are refused too.
        "relaytest%nmap.scanme.org@pochta.test",
        "nmap.scanme.org!relaytest@pochta.test",
        "\"relaytest@nmap.scanme.org\"@pochta.test",
    ];
    let b = plain();
    // Even if our host name and [ip] were local domains.
    let wide = book("local_domains = [\"pochta.test\", \"mx.pochta.test\", \"[127.0.0.1]\"]\n");
    for f in forms {
        match rcpt(f) {
            Err(code) => assert_eq!(code, 501, "{f}"),
            Ok(to) => {
                let r = b.resolve(&to, STRANGER, 0).unwrap_err();
                assert!([550, 554].contains(&r.code()), "{f}: {r:?}");
                if f.contains(['%', '!', '"']) {
                    let r = wide.resolve(&to, USER, 0).unwrap_err();
                    assert_eq!(r.code(), 554, "{f} for a user");
                }
            }
        }
    }
}

#[test]
fn local_and_relay() {
    let b = plain();
    assert_eq!(
        resolve(&b, "Alice+news@Pochta.TEST", STRANGER).unwrap(),
        Resolved::Mailbox {
            address: "Alice+news@pochta.test".into(),
            lookup: "Alice@pochta.test".into(),
            orig: None,
            postmaster: false,
        }
    );
    // A trailing dot names the same domain (Postfix accepts it).
    assert!(matches!(
        resolve(&b, "alice@pochta.test.", STRANGER),
        Ok(Resolved::Mailbox { ref address, .. }) if address == "alice@pochta.test"
    ));
    let relay = resolve(&b, "bob@example.net", USER).unwrap();
    assert!(matches!(relay, Resolved::Finals(ref f) if f[0].address == "bob@example.net"));
    let trusted = Client {
        authenticated: false,
        trusted: true,
    };
    assert!(resolve(&b, "bob@example.net", trusted).is_ok());
    assert_eq!(
        resolve(&b, "bob@example.net", STRANGER).unwrap_err().code(),
        554
    );
    // The host name is an alias-only domain: no aliases there → unknown.
    assert_eq!(
        resolve(&b, "nobody@mx.pochta.test", STRANGER)
            .unwrap_err()
            .code(),
        550
    );
}

#[test]
fn postmaster_always_ours() {
    let b = book("local_domains = [\"pochta.test\", \"other.test\"]\n");
    for arg in [
        "postmaster",
        "Postmaster",
        "POSTMASTER@other.test",
        "postmaster@mx.pochta.test",
    ] {
        match resolve(&b, arg, STRANGER) {
            Ok(Resolved::Mailbox {
                address,
                postmaster,
                ..
            }) => {
                assert_eq!(
                    address.to_ascii_lowercase(),
                    "postmaster@pochta.test",
                    "{arg}"
                );
                assert!(postmaster, "{arg}");
            }
            other => panic!("{arg}: {other:?}"),
        }
    }
}

proptest::proptest! {
    /// Whatever RCPT the parser accepts: no panic, and nothing with a percent hack, bang
    /// path or `@` in its local part is routed, for any client.
    #[test]
    fn no_address_hack_is_ever_routed(arg in "[a-z%!@\".:\\[\\]0-9]{0,40}") {
        let Ok(to) = rcpt(&arg) else { return Ok(()); };
        let b = plain();
        for client in [STRANGER, USER] {
            if b.resolve(&to, client, 0).is_ok() {
                if let Some(m) = to.mailbox() {
                    proptest::prop_assert!(!m.local().contains(['%', '!', '@']));
                }
            }
        }
    }
}
