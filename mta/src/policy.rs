//! Relay and recipient policy, decided without I/O: which recipients are ours (checked on the
//! userdb), which may be relayed, and which address forms are never accepted. The userdb
//! lookup itself is done by the session driver with the [`Route::Local`] name.
//!
//! Open-relay defences (nmap's smtp-open-relay forms): source routes are dropped by the parser
//! (RFC 5321 §4.1.1.3: the route is never followed, the final address is judged); local parts
//! with `%` (percent hack), `!` (bang path) or `@` (quoted `"a@b"@host`) are refused whatever
//! the domain, for every client, so no later rewriting can turn them into a relay; double `@`
//! and domain-less forms fail the parser with 501.

use pochta_smtp::{ForwardPath, Mailbox, Reply, ReversePath};

/// What a client may do, decided once per session (and again after AUTH).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// Authenticated with SASL.
    pub authenticated: bool,
    /// In `trusted_networks`, or the local submission socket.
    pub trusted: bool,
}

impl Client {
    pub fn may_relay(&self) -> bool {
        self.authenticated || self.trusted
    }
}

/// Where an acceptable recipient goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// One of our domains: look `lookup` up on the userdb (`alice+x@D` → `alice@D`); queue
    /// `address`.
    Local { address: String, lookup: String },
    /// Somewhere else; the client may relay.
    Relay { address: String },
}

/// The domain part lower-cased (ASCII only; U-labels are kept as sent).
fn canonical(m: &Mailbox) -> String {
    let domain = m.domain().as_str().to_ascii_lowercase();
    let local = Mailbox::new(
        m.local().to_owned(),
        pochta_smtp::Domain::parse(&domain, true).unwrap_or_else(|_| m.domain().clone()),
    );
    local.to_string()
}

/// Whether `domain` is one of ours.
pub fn is_local_domain(local_domains: &[String], domain: &str) -> bool {
    local_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
}

/// `554 5.7.1 <addr>: Relay access denied` (Postfix's reject_unauth_destination).
pub fn relay_denied(addr: &str) -> Reply {
    Reply::with_status(554, (5, 7, 1), format!("<{addr}>: Relay access denied"))
}

/// Decides RCPT TO without I/O. `Err` is the reply.
pub fn route(
    to: &ForwardPath,
    local_domains: &[String],
    delimiter: &str,
    client: Client,
) -> Result<Route, Reply> {
    let m = match to {
        ForwardPath::Postmaster => {
            // RFC 5321 §4.5.1: <Postmaster> without a domain is ours.
            let Some(first) = local_domains.first() else {
                return Err(Reply::with_status(
                    550,
                    (5, 1, 1),
                    "<Postmaster>: Recipient address rejected: no local domain",
                ));
            };
            let address = format!("postmaster@{}", first.to_ascii_lowercase());
            return Ok(Route::Local {
                lookup: address.clone(),
                address,
            });
        }
        ForwardPath::Mailbox(m) => m,
    };
    let shown = m.to_string();
    if m.local().contains(['%', '!', '@']) {
        return Err(relay_denied(&shown));
    }
    let address = canonical(m);
    if is_local_domain(local_domains, m.domain().as_str()) {
        let base = strip_detail(m.local(), delimiter);
        let lookup = canonical(&Mailbox::new(base.to_owned(), m.domain().clone()));
        return Ok(Route::Local { address, lookup });
    }
    if client.may_relay() {
        Ok(Route::Relay { address })
    } else {
        Err(relay_denied(&shown))
    }
}

/// `alice+news` → `alice` with delimiter `+` (any of several delimiter characters).
pub fn strip_detail<'a>(local: &'a str, delimiters: &str) -> &'a str {
    if delimiters.is_empty() {
        return local;
    }
    match local.find(|c| delimiters.contains(c)) {
        Some(i) if i > 0 => &local[..i],
        _ => local,
    }
}

/// `smtpd.sender_login_match`: may `login` use `from`? `Err` is the reply (553 5.7.1, as
/// Postfix's reject_sender_login_mismatch).
pub fn check_sender(
    from: &ReversePath,
    login: &str,
    local_domains: &[String],
    delimiter: &str,
) -> Result<(), Reply> {
    let Some(m) = from.mailbox() else {
        return Ok(());
    };
    let base = strip_detail(m.local(), delimiter);
    let domain = m.domain().as_str();
    let owned = match login.rsplit_once('@') {
        Some((user, d)) => base == user && d.eq_ignore_ascii_case(domain),
        None => base == login && is_local_domain(local_domains, domain),
    };
    if owned {
        Ok(())
    } else {
        Err(Reply::with_status(
            553,
            (5, 7, 1),
            format!("<{m}>: Sender address rejected: not owned by user {login}"),
        ))
    }
}

#[cfg(test)]
mod tests {
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

    fn domains() -> Vec<String> {
        vec!["pochta.test".into()]
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
        let mut local_names = domains();
        // Even if our host name and [ip] were local domains.
        local_names.push("mx.pochta.test".into());
        local_names.push("[127.0.0.1]".into());
        for f in forms {
            match rcpt(f) {
                Err(code) => assert_eq!(code, 501, "{f}"),
                Ok(to) => {
                    let r = route(&to, &domains(), "+", STRANGER).unwrap_err();
                    assert_eq!(r.code(), 554, "{f}");
                    if f.contains(['%', '!', '"']) {
                        let r = route(&to, &local_names, "+", USER).unwrap_err();
                        assert_eq!(r.code(), 554, "{f} for a user");
                    }
                }
            }
        }
    }

    #[test]
    fn local_and_relay() {
        let to = rcpt("Alice+news@Pochta.TEST").unwrap();
        assert_eq!(
            route(&to, &domains(), "+", STRANGER).unwrap(),
            Route::Local {
                address: "Alice+news@pochta.test".into(),
                lookup: "Alice@pochta.test".into()
            }
        );
        let to = rcpt("bob@example.net").unwrap();
        assert_eq!(
            route(&to, &domains(), "+", USER).unwrap(),
            Route::Relay {
                address: "bob@example.net".into()
            }
        );
        let trusted = Client {
            authenticated: false,
            trusted: true,
        };
        assert!(route(&to, &domains(), "+", trusted).is_ok());
        assert!(route(&to, &domains(), "+", STRANGER).is_err());
        let pm = rcpt("postmaster").unwrap();
        assert!(matches!(
            route(&pm, &domains(), "+", STRANGER),
            Ok(Route::Local { .. })
        ));
    }

    proptest::proptest! {
        /// Whatever RCPT the parser accepts: no panic, and nothing with a percent hack, bang
        /// path or `@` in its local part is routed, for any client.
        #[test]
        fn no_address_hack_is_ever_routed(arg in "[a-z%!@\".:\\[\\]0-9]{0,40}") {
            let Ok(to) = rcpt(&arg) else { return Ok(()); };
            for client in [STRANGER, USER] {
                if route(&to, &domains(), "+", client).is_ok() {
                    if let Some(m) = to.mailbox() {
                        proptest::prop_assert!(!m.local().contains(['%', '!', '@']));
                    }
                }
            }
        }
    }

    #[test]
    fn sender_login() {
        let from = |s: &str| ReversePath::Mailbox(Mailbox::parse(s, false).unwrap());
        let d = domains();
        assert!(check_sender(&from("alice@pochta.test"), "alice@pochta.test", &d, "+").is_ok());
        assert!(check_sender(&from("alice+x@POCHTA.test"), "alice@pochta.test", &d, "+").is_ok());
        assert!(check_sender(&from("alice@pochta.test"), "alice", &d, "+").is_ok());
        assert!(check_sender(&from("bob@pochta.test"), "alice@pochta.test", &d, "+").is_err());
        assert!(check_sender(&from("alice@evil.test"), "alice", &d, "+").is_err());
        assert!(check_sender(&ReversePath::Null, "alice", &d, "+").is_ok());
    }
}
