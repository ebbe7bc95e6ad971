//! Relay and sender policy, decided without I/O: who may relay, which address forms are never
//! accepted, which MAIL FROM a login may use. What a recipient resolves to (aliases, local
//! mailbox, relay) is [`crate::addresses`]'s, which applies these rules.
//!
//! Open-relay defences (nmap's smtp-open-relay forms): source routes are dropped by the parser
//! (RFC 5321 §4.1.1.3: the route is never followed, the final address is judged); local parts
//! with `%` (percent hack), `!` (bang path) or `@` (quoted `"a@b"@host`) are refused whatever
//! the domain, for every client, so no later rewriting can turn them into a relay; double `@`
//! and domain-less forms fail the parser with 501.

use pochta_smtp::{Reply, ReversePath};

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

/// Whether `domain` is one of ours.
pub fn is_local_domain(local_domains: &[String], domain: &str) -> bool {
    local_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
}

/// `554 5.7.1 <addr>: Relay access denied` (Postfix's reject_unauth_destination).
pub fn relay_denied(addr: &str) -> Reply {
    Reply::with_status(554, (5, 7, 1), format!("<{addr}>: Relay access denied"))
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
    use pochta_smtp::Mailbox;

    fn domains() -> Vec<String> {
        vec!["pochta.test".into()]
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
