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

/// Found by the relay-policy fuzz target: the tables fold non-ASCII case, so an address in
/// a foreign domain with an upper-case non-ASCII letter looked "changed by an alias" and was
/// relayed for a stranger.
#[test]
fn foreign_domains_never_relayed_for_strangers() {
    let b = plain();
    let to = ForwardPath::Mailbox(
        pochta_smtp::Mailbox::parse("\"re334[IPv6:map.sc/anme.org\"@pochta.tÕt", true).unwrap(),
    );
    assert_eq!(b.resolve(&to, STRANGER, 0).unwrap_err().code(), 554);
    let to = ForwardPath::Mailbox(pochta_smtp::Mailbox::parse("a@PÖCHTA.test", true).unwrap());
    assert_eq!(b.resolve(&to, STRANGER, 0).unwrap_err().code(), 554);
    // A virtual entry for a foreign domain is no relay permission (Postfix: the same).
    let dir = std::env::temp_dir().join(format!("pochta-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let virt = dir.join("virtual");
    std::fs::write(
        &virt,
        "x@gmail.example alice@pochta.test\n/^y@/ alice@pochta.test\n",
    )
    .unwrap();
    let re = dir.join("virtual.re");
    std::fs::write(&re, "/^y@/ alice@pochta.test\n").unwrap();
    let b = book(&format!(
        "local_domains = [\"pochta.test\"]\n[aliases]\nvirtual_alias_maps = [\"{}\", \"regexp:{}\"]\n",
        virt.display(),
        re.display()
    ));
    for addr in ["x@gmail.example", "y@elsewhere.example"] {
        let to = rcpt(addr).unwrap();
        assert_eq!(
            b.resolve(&to, STRANGER, 0).unwrap_err().code(),
            554,
            "{addr}"
        );
        assert!(b.resolve(&to, USER, 0).is_ok(), "{addr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
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

/// A scratch directory for alias files, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "pochta-mta-addresses-{tag}-{}-{}",
            std::process::id(),
            now_secs()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    /// Writes `name`, owned by `user` when the tests run as root (else by ourselves).
    fn file(&self, name: &str, text: &str, user: &str) -> std::path::PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        if nix::unistd::Uid::effective().is_root() {
            let u = nix::unistd::User::from_name(user).unwrap().unwrap();
            nix::unistd::chown(&p, Some(u.uid), Some(u.gid)).unwrap();
        }
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `[server] user = "nobody"` when root (the mta then runs as nobody), else nothing (it runs
/// as ourselves).
fn server_user() -> &'static str {
    if nix::unistd::Uid::effective().is_root() {
        "[server]\nuser = \"nobody\"\n"
    } else {
        ""
    }
}

fn book_with_aliases(path: &std::path::Path) -> Result<AddressBook, String> {
    let text = format!(
        "{}[smtpd]\nhostname = \"mx.pochta.test\"\nlocal_domains = [\"pochta.test\"]\n\
         [aliases]\nalias_maps = [\"{}\"]\nallow_mail_to_commands = true\n\
         allow_mail_to_files = true\n",
        server_user(),
        path.display()
    );
    let cfg: Config = toml::from_str(&text).unwrap();
    AddressBook::load(&cfg)
}

/// aliases(5) commands and files become finals with their agent: the command or path as
/// the address, the alias that named them (with the extension when it was addressed
/// directly), the client's address as orig.
#[test]
fn commands_and_files_become_local_agent_finals() {
    let dir = Scratch::new("agents");
    let aliases = dir.file(
        "aliases",
        "log: \"|/bin/sh -c 'cat > /tmp/x'\"\narchive: /var/mail/archive.mbox\n\
         team: log, archive, alice\n",
        "nobody",
    );
    let b = book_with_aliases(&aliases).unwrap();
    let owner = std::fs::metadata(&aliases).unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&owner);
    let Ok(Resolved::Finals(f)) = resolve(&b, "team@pochta.test", STRANGER) else {
        panic!("team@ is an alias");
    };
    assert_eq!(f.len(), 3, "{f:?}");
    assert_eq!(f[0].address, "/bin/sh -c 'cat > /tmp/x'");
    let log = LocalAlias {
        user: "log".into(),
        address: "log@pochta.test".into(),
    };
    match &f[0].agent {
        Agent::Command { uid: u, alias, .. } => {
            assert_eq!(*u, uid);
            assert_eq!(alias, &log);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f[0].orig.as_deref(), Some("team@pochta.test"));
    assert!(!f[0].forwarded);
    assert_eq!(f[1].address, "/var/mail/archive.mbox");
    assert!(matches!(&f[1].agent, Agent::File { alias, .. } if alias.user == "archive"));
    assert_eq!(f[2].address, "alice@pochta.test");
    assert_eq!(f[2].agent, Agent::Mailbox);
    assert_eq!(
        f[0].dedup_key(),
        format!("command {uid} /bin/sh -c 'cat > /tmp/x'")
    );
    assert_eq!(f[2].dedup_key(), "mailbox alice@pochta.test");

    // Addressed directly, with an extension: RECIPIENT keeps it.
    let Ok(Resolved::Finals(f)) = resolve(&b, "Log+Debug@pochta.test", STRANGER) else {
        panic!("log+debug@ is an alias");
    };
    match &f[0].agent {
        Agent::Command { alias, .. } => {
            assert_eq!(alias.user, "log");
            assert_eq!(alias.address, "log+debug@pochta.test");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f[0].orig.as_deref(), Some("Log+Debug@pochta.test"));

    // Notices follow the aliases into the command too; the queue asks whether it may.
    let to = pochta_queue::AddressPolicy::expand(&b, "log@pochta.test").unwrap();
    assert!(matches!(&to[..], [(c, Agent::Command { .. })] if c.starts_with("/bin/sh")));
    assert!(pochta_queue::AddressPolicy::allows(&b, &to[0].1));
    assert!(!pochta_queue::AddressPolicy::allows(&plain(), &to[0].1));

    // A client writing a command as its address gets an ordinary (refused) mailbox.
    assert!(resolve(&b, "\"|/bin/sh\"@pochta.test", STRANGER)
        .map_or(true, |r| matches!(r, Resolved::Mailbox { .. })));
}

/// Targets that would run as another user than the mta's are refused at load, naming the
/// file and both users; the same file without commands or files is fine.
#[test]
fn foreign_owned_command_tables_are_refused() {
    if !nix::unistd::Uid::effective().is_root() {
        return; // needs chown to another user
    }
    let dir = Scratch::new("foreign");
    let aliases = dir.file("aliases", "log: |/usr/bin/logger\n", "daemon");
    let err = book_with_aliases(&aliases).err().unwrap();
    assert_eq!(
        err,
        format!(
            "{} is owned by daemon but pochta-mta runs as nobody: |command and /file targets \
             would not run as their owner; chown the file to nobody",
            aliases.display()
        )
    );
    let plain_aliases = dir.file("plain", "team: alice\n", "daemon");
    assert!(book_with_aliases(&plain_aliases).is_ok());
    // Without the settings the crate's own refusal speaks (file:line).
    let cfg: Config = toml::from_str(&format!(
        "[smtpd]\nhostname = \"mx.pochta.test\"\n[aliases]\nalias_maps = [\"{}\"]\n",
        aliases.display()
    ))
    .unwrap();
    let err = AddressBook::load(&cfg).err().unwrap();
    assert!(err.contains(&format!("{}:1:", aliases.display())), "{err}");
}
