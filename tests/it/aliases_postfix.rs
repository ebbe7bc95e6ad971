//! pochta-mta's address expansion side by side with a real Postfix on the same aliases(5),
//! virtual(5) and regexp_table(5) files. Each case is one message with its RCPTs sent to
//! both servers; both logs are read until the message (and, for Postfix, every message its
//! local(8) `forwarded as`) is removed from the queue, and the outcomes must be equal:
//! - the reply class of every RCPT (a refusal after DATA or a message whose every recipient
//!   bounced counts as refused: pochta decides all of it at RCPT time);
//! - the final recipients delivered (`status=sent`), how many times each, and whether each
//!   went to the relayhost or was delivered here; the recipients that bounced, with dsn.
//!
//! Cases where pochta differs from Postfix on purpose carry the reason and pochta's result;
//! the table prints both sides of every case.
//!
//! Postfix (private instance, `-c` everywhere): mydestination pochta.test, mx.pochta.test,
//! localhost with the aliases through local(8) (`mailbox_transport` hands a local user to
//! the LMTP sink, as pochta's `[delivery] lmtp` does), `local_recipient_maps` = the users
//! pochta's authd knows plus the aliases (Postfix's counterpart of the userdb check at RCPT),
//! example.org and catchall.test as virtual mailbox domains, remote mail through a relayhost
//! (smtp-sink). pochta: the same three local domains, the same users in pochta-authd, the
//! same sinks for LMTP and the relayhost.

use crate::config::daemon_bin;
use crate::harness::*;
use crate::outbound::peers::{
    ca_and_cert, chown_test_user, need, test_uid, PfExtra, PfListener, Postfix, Sink,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MYORIGIN: &str = "pochta.test";
const HOST: &str = "mx.pochta.test";

/// Mailboxes (pochta-authd's users; Postfix: local_recipient_maps and virtual mailboxes).
const USERS: &[&str] = &[
    "alice@pochta.test",
    "bob@pochta.test",
    "carol@pochta.test",
    "dave@pochta.test",
    "selfie@pochta.test",
    "self2@pochta.test",
    "erin@example.org",
    "gina@example.org",
    "frank@catchall.test",
    "hank@catchall.test",
];

/// aliases(5); `INCLUDE` is replaced by the :include: file's path.
const ALIASES: &str = "\
# aliases(5) read by Postfix's local(8) and by pochta-mta
postmaster: root
root: alice
MAILER-DAEMON: postmaster
info: bob
team: alice, bob, carol
crew: bob, carol
owner-crew: alice
staff: team, dave, alice
chain1: chain2
chain2: chain3
chain3: carol
loopa: loopb
loopb: loopa, dave
loopc: loopd
loopd: loopc
selfie: selfie, bob
self2: self2
fwd: friend@remote.test
fwdmix: carol, pal@remote.test
incl: :include:INCLUDE
MixedCase: dave
exttarget: bob+tagged
fq: alice@pochta.test
toorg: erin@example.org
tovirt: sales@alias.test
tovmix: vmix@pochta.test
badtarget: nobody@alias.test
tolocalhost: alice@localhost
news+daily: dave
multi: alice,
  carol
";

const INCLUDE: &str = "# :include: list\ncarol\nbuddy@remote.test\n";

/// virtual(5), on every domain.
const VIRTUAL: &str = "\
# virtual alias domain: addresses without an entry are unknown
alias.test                  anything
sales@alias.test            alice@pochta.test, bob
sales+vip@alias.test        dave@pochta.test
support@alias.test          sales@alias.test, carol@pochta.test
bare@alias.test             alice
toalias@alias.test          team@pochta.test
vloop1@alias.test           vloop2@alias.test
vloop2@alias.test           vloop1@alias.test
# a whole domain onto another
mapped.test                 anything
@mapped.test                @pochta.test
# catch-all on a mailbox domain: its real users need self-entries
@catchall.test              hank@catchall.test
frank@catchall.test         frank@catchall.test
known@catchall.test         bob@pochta.test
# entries for addresses of local and remote domains
vfwd@pochta.test            far@remote.test
vmix@pochta.test            vfwd@pochta.test, alice@pochta.test
vself@pochta.test           vself@pochta.test, bob@pochta.test
anyuser@                    carol@pochta.test
redirect@remote.test        dave@pochta.test
";

const REGEXP: &str = "\
# regexp_table(5)
/^re-([a-z]+)@regexp\\.test$/       ${1}@pochta.test
/^list-([a-z]+)@pochta\\.test$/     ${1}@example.org
";

/// One message: its RCPTs, the same on both servers.
struct Case {
    name: &'static str,
    rcpts: &'static [&'static str],
    /// A difference from Postfix that is known and explained: (why, the start of pochta's
    /// result as the table shows it). The table still prints both sides.
    known: Option<(&'static str, &'static str)>,
}

const fn case(name: &'static str, rcpts: &'static [&'static str]) -> Case {
    Case {
        name,
        rcpts,
        known: None,
    }
}

const fn differs(
    name: &'static str,
    rcpts: &'static [&'static str],
    why: &'static str,
    pochta: &'static str,
) -> Case {
    Case {
        name,
        rcpts,
        known: Some((why, pochta)),
    }
}

const CASES: &[Case] = &[
    case("mailbox", &["alice@pochta.test"]),
    case("mailbox + extension", &["alice+news@pochta.test"]),
    case("mailbox, other local domain", &["gina@example.org"]),
    case("alias", &["info@pochta.test"]),
    case("alias + unmatched extension", &["info+x@pochta.test"]),
    case("alias name with extension", &["news+daily@pochta.test"]),
    case("alias list, bare names", &["team@pochta.test"]),
    case("list with owner- alias", &["crew@pochta.test"]),
    case("owner- alias", &["owner-crew@pochta.test"]),
    case("nested list, duplicate inside", &["staff@pochta.test"]),
    case("recursion chain", &["chain1@pochta.test"]),
    differs(
        "alias loop beside a target",
        &["loopa@pochta.test"],
        "Postfix delivers dave and bounces the looping branch (loopb, 5.4.6 alias database \
         loop, a notice to the sender); pochta delivers dave and only logs the lost branch",
        "dave@pochta.test",
    ),
    case("alias loop, nothing else", &["loopc@pochta.test"]),
    case("self-reference + copy", &["selfie@pochta.test"]),
    case("pure self-reference", &["self2@pochta.test"]),
    case("remote forward", &["fwd@pochta.test"]),
    case("local + remote", &["fwdmix@pochta.test"]),
    case(":include:", &["incl@pochta.test"]),
    case("case of alias name", &["MIXEDCASE@pochta.test"]),
    case("case of domain", &["alice@POCHTA.TEST"]),
    case("case of mailbox", &["Alice@pochta.test"]),
    case("alias to extension", &["exttarget@pochta.test"]),
    case("alias to full address", &["fq@pochta.test"]),
    case("alias to other local domain", &["toorg@pochta.test"]),
    case("alias to virtual alias", &["tovirt@pochta.test"]),
    case("alias to local virtual entry", &["tovmix@pochta.test"]),
    case(
        "alias to unknown virtual address",
        &["badtarget@pochta.test"],
    ),
    case(
        "alias to mailbox at alias domain",
        &["tolocalhost@pochta.test"],
    ),
    case("continuation line", &["multi@pochta.test"]),
    case("postmaster", &["postmaster@pochta.test"]),
    case("<Postmaster>", &["Postmaster"]),
    case("MAILER-DAEMON", &["mailer-daemon@pochta.test"]),
    case("postmaster@hostname", &["postmaster@mx.pochta.test"]),
    case("POSTMASTER@localhost", &["POSTMASTER@localhost"]),
    differs(
        "postmaster, mailbox domain",
        &["postmaster@example.org"],
        "pochta gives every domain of its own a postmaster (RFC 5321 4.5.1, \
         postmaster@myorigin); Postfix needs a virtual entry for it",
        "alice@pochta.test",
    ),
    case("alias domain localhost", &["info@localhost"]),
    case("alias domain hostname", &["team@mx.pochta.test"]),
    differs(
        "mailbox at alias domain",
        &["alice@localhost"],
        "Postfix's mydestination domains all reach the unix user alice; pochta's \
         alias_domains hold aliases only, a name without an alias is unknown",
        "550 5.1.1",
    ),
    differs(
        "bare name RCPT",
        &["info"],
        "Postfix appends @myorigin to RCPT TO:<info>; pochta's SMTP parser wants a domain \
         (RFC 5321 4.1.2; only <Postmaster> may go without)",
        "501 5.1.3",
    ),
    case("virtual list", &["sales@alias.test"]),
    case("virtual + unmatched extension", &["sales+promo@alias.test"]),
    case("virtual + matched extension", &["sales+vip@alias.test"]),
    case("virtual nested", &["support@alias.test"]),
    case("virtual bare target", &["bare@alias.test"]),
    case("virtual to alias", &["toalias@alias.test"]),
    case("virtual loop", &["vloop1@alias.test"]),
    case("virtual alias domain, unknown", &["nobody@alias.test"]),
    case("case of virtual key", &["Sales@Alias.Test"]),
    case("domain mapped, alias", &["info@mapped.test"]),
    case("domain mapped + extension", &["alice+x@mapped.test"]),
    case("catch-all", &["zzz@catchall.test"]),
    case("catch-all, explicit entry", &["known@catchall.test"]),
    case("catch-all, self-entry", &["frank@catchall.test"]),
    case(
        "catch-all, self-entry + extension",
        &["frank+tag@catchall.test"],
    ),
    case("catch-all, mailbox without entry", &["hank@catchall.test"]),
    case("virtual to remote", &["vfwd@pochta.test"]),
    case("virtual nested remote + local", &["vmix@pochta.test"]),
    case("virtual self-reference", &["vself@pochta.test"]),
    case("user@ entry, myorigin", &["anyuser@pochta.test"]),
    case("user@ entry, localhost", &["anyuser@localhost"]),
    case("user@ entry, mailbox domain", &["anyuser@example.org"]),
    case("user@ entry, remote domain", &["anyuser@remote.test"]),
    case("virtual entry, remote domain", &["redirect@remote.test"]),
    case("regexp", &["re-bob@regexp.test"]),
    case("regexp, local domain", &["list-gina@pochta.test"]),
    case("unknown local user", &["nosuch@pochta.test"]),
    case("unknown, mailbox domain", &["nosuch@example.org"]),
    case("remote, no alias", &["someone@elsewhere.test"]),
    differs(
        "duplicates over RCPTs",
        &[
            "team@pochta.test",
            "alice@pochta.test",
            "staff@pochta.test",
            "ALICE@pochta.test",
            "sales@alias.test",
        ],
        "same recipients; Postfix delivers once per RCPT that reaches a recipient \
         (one local(8) delivery per recipient, each with its own duplicate filter), pochta \
         once per message",
        "alice@pochta.test, bob@pochta.test, carol@pochta.test, dave@pochta.test",
    ),
];

/// What one server did with one case.
#[derive(Debug, Default)]
struct Outcome {
    /// First digit of each RCPT's reply, or of the reply to DATA when that refused the
    /// message, or 5 when the message was accepted and every recipient bounced.
    classes: Vec<char>,
    replies: Vec<String>,
    queue_id: Option<String>,
    /// Final recipient → how many deliveries (status=sent) name it.
    delivered: BTreeMap<String, usize>,
    /// Final recipients that bounced → their dsn.
    bounced: BTreeMap<String, String>,
}

impl Outcome {
    /// A message accepted only to bounce every recipient is, for the sender, refused: the
    /// same as a refusal at RCPT (pochta expands at RCPT and refuses there).
    fn settle(&mut self) {
        if self.delivered.is_empty() && !self.bounced.is_empty() {
            let why: Vec<String> = self
                .bounced
                .iter()
                .map(|(a, dsn)| format!("bounced {a} ({dsn})"))
                .collect();
            for (k, r) in self.classes.iter_mut().zip(&mut self.replies) {
                if *k == '2' {
                    *k = '5';
                    *r = why.join(", ");
                }
            }
            self.bounced.clear();
        }
    }

    /// The table's text: delivered recipients (xN when more than once), bounces, refusals.
    fn show(&self) -> String {
        let mut parts: Vec<String> = self
            .delivered
            .iter()
            .map(|(a, n)| {
                if *n > 1 {
                    format!("{a} x{n}")
                } else {
                    a.clone()
                }
            })
            .collect();
        parts.extend(
            self.bounced
                .iter()
                .map(|(a, dsn)| format!("bounced {a} ({dsn})")),
        );
        let mut s = parts.join(", ");
        let refused: Vec<&str> = self
            .replies
            .iter()
            .filter(|r| !r.starts_with('2'))
            .map(String::as_str)
            .collect();
        if !refused.is_empty() {
            if !s.is_empty() {
                s.push_str("; ");
            }
            s.push_str(&refused.join(" | "));
        }
        s
    }
}

/// Domains compare case-insensitively, local parts as given.
fn normalize(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((l, d)) => format!("{l}@{}", d.to_ascii_lowercase()),
        None => address.to_owned(),
    }
}

/// One SMTP transaction from 127.0.0.1: every RCPT's reply; DATA when one was accepted.
fn send(port: u16, case: &Case) -> Outcome {
    let mut c = connect(port);
    let reply = |c: &mut LineClient<TcpStream>| -> String {
        let mut l = c.line();
        while l.as_bytes().get(3) == Some(&b'-') {
            l = c.line();
        }
        l.trim_end().to_owned()
    };
    let ok = |r: String, code: &str| assert!(r.starts_with(code), "{}: {r}", case.name);
    ok(reply(&mut c), "220");
    c.send("EHLO client.test\r\n");
    ok(reply(&mut c), "250");
    c.send("MAIL FROM:<>\r\n");
    ok(reply(&mut c), "250");
    let mut out = Outcome::default();
    for r in case.rcpts {
        c.send(&format!("RCPT TO:<{r}>\r\n"));
        let rep = reply(&mut c);
        out.classes.push(rep.chars().next().unwrap_or('?'));
        out.replies.push(rep);
    }
    if out.classes.contains(&'2') {
        c.send("DATA\r\n");
        ok(reply(&mut c), "354");
        c.send(&format!(
            "From: <sender@client.test>\r\nTo: <{}>\r\nSubject: {}\r\n\r\nexpansion test\r\n.\r\n",
            case.rcpts[0], case.name
        ));
        let rep = reply(&mut c);
        match rep.rsplit_once("queued as ") {
            Some((_, id)) if rep.starts_with('2') => out.queue_id = Some(id.trim().to_owned()),
            _ => {
                // Refused after DATA (Postfix's cleanup expands virtual aliases only then):
                // every accepted RCPT shares the message's fate.
                let class = rep.chars().next().unwrap_or('?');
                for (k, r) in out.classes.iter_mut().zip(&mut out.replies) {
                    if *k == '2' {
                        *k = class;
                        *r = format!("DATA: {rep}");
                    }
                }
            }
        }
    }
    c.send("QUIT\r\n");
    out
}

/// One `ID: to=<…>, …, dsn=…, status=…` line.
struct Delivery {
    to: String,
    /// `host[addr]:port` of the next hop (Postfix: `virtual`, `local`, `none` too).
    relay: String,
    dsn: String,
    status: String,
    /// Postfix local(8): `status=sent (forwarded as NEWID)`.
    forwarded_as: Option<String>,
}

fn deliveries(log: &str, id: &str) -> Vec<Delivery> {
    let needle = format!("{id}: to=<");
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&needle)? + needle.len()..];
            let to = rest[..rest.find('>')?].to_owned();
            let field = |name: &str| -> Option<String> {
                let v = rest.split(&format!(" {name}=")).nth(1)?;
                Some(v.split([',', ' ']).next()?.to_owned())
            };
            let forwarded_as = rest
                .split("forwarded as ")
                .nth(1)
                .map(|s| s.trim_end_matches(')').trim().to_owned());
            Some(Delivery {
                to,
                relay: field("relay").unwrap_or_default(),
                dsn: field("dsn").unwrap_or_default(),
                status: field("status")?,
                forwarded_as,
            })
        })
        .collect()
}

/// Fills in the final recipients of message `id` and of the messages it led to (Postfix's
/// `forwarded as` chains); false while one of them is not removed from the queue yet.
/// Recipients sent to `relayhost` (`host[addr]:port`) are marked, so a recipient routed
/// out instead of delivered here (or the reverse) differs.
fn finals(log: &str, id: &str, relayhost: &str, out: &mut Outcome) -> bool {
    let (mut delivered, mut bounced) = (BTreeMap::new(), BTreeMap::new());
    let mut ids = vec![id.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(id) = ids.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if !log.contains(&format!("{id}: removed")) {
            return false;
        }
        for d in deliveries(log, &id) {
            match (d.status.as_str(), d.forwarded_as) {
                (_, Some(next)) => ids.push(next),
                ("sent", None) => {
                    let mut to = normalize(&d.to);
                    if d.relay == relayhost {
                        to.push_str(" (relayhost)");
                    }
                    *delivered.entry(to).or_insert(0) += 1
                }
                ("bounced" | "expired", None) => {
                    bounced.insert(normalize(&d.to), d.dsn);
                }
                _ => {}
            }
        }
    }
    out.delivered = delivered;
    out.bounced = bounced;
    true
}

/// Waits (with a deadline) until every accepted message is complete in `log`, then fills in
/// its final recipients.
fn collect(outcomes: &mut [Outcome], log: impl Fn() -> String, relayhost: &str, who: &str) {
    let end = Instant::now() + DEADLINE;
    loop {
        let text = log();
        let mut pending = Vec::new();
        for o in outcomes.iter_mut() {
            if let Some(id) = o.queue_id.clone() {
                if !finals(&text, &id, relayhost, o) {
                    pending.push(id);
                }
            }
        }
        if pending.is_empty() {
            outcomes.iter_mut().for_each(Outcome::settle);
            return;
        }
        if Instant::now() > end {
            panic!("{who}: messages {pending:?} not complete within {DEADLINE:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pochta daemon with its own notify socket; killed on drop.
struct Pochta {
    daemon: Daemon,
    _dir: TempDir,
}

fn start_pochta(name: &str, config: &str) -> Pochta {
    let dir = TempDir::new(&format!("aliases-{name}"));
    let path = dir.join(&format!("{name}.toml"));
    std::fs::write(&path, as_test_user(config)).unwrap();
    let mut notify = Notify::new(&dir);
    let mut cmd = Command::new(daemon_bin(name));
    cmd.arg("-c").arg(&path);
    let mut daemon = Daemon::spawn(cmd, &dir, &notify);
    notify.wait_for("READY=1", &mut daemon);
    Pochta { daemon, _dir: dir }
}

/// The tables in `dir`: aliases, virtual, virtual.regexp and the :include: list.
fn write_tables(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let include = dir.join("list.txt");
    std::fs::write(&include, INCLUDE).unwrap();
    let aliases = ALIASES.replace("INCLUDE", include.to_str().unwrap());
    std::fs::write(dir.join("aliases"), aliases).unwrap();
    std::fs::write(dir.join("virtual"), VIRTUAL).unwrap();
    std::fs::write(dir.join("virtual.regexp"), REGEXP).unwrap();
    dir.to_path_buf()
}

fn run(tool: &str, args: &[&std::ffi::OsStr]) -> String {
    let mut cmd = Command::new(need(tool));
    cmd.args(args);
    run_ok(cmd)
}

/// Builds Postfix's copies of the tables with postalias/postmap in an indexed type this
/// Postfix has; returns that type.
fn build_postfix_maps(conf: &Path, maps: &Path) -> &'static str {
    std::fs::create_dir_all(conf).unwrap();
    // Replaced by Postfix::start_with's own; the tools only need a main.cf to read.
    std::fs::write(conf.join("main.cf"), "compatibility_level = 3.6\n").unwrap();
    let c = conf.as_os_str();
    let types = run("postconf", &["-c".as_ref(), c, "-m".as_ref()]);
    let kind = ["lmdb", "cdb", "hash"]
        .into_iter()
        .find(|t| types.lines().any(|l| l.trim() == *t))
        .unwrap_or_else(|| panic!("postconf -m lists no lmdb, cdb or hash:\n{types}"));
    let aliases = format!("{kind}:{}", maps.join("aliases").display());
    let virtual_ = format!("{kind}:{}", maps.join("virtual").display());
    run("postalias", &["-c".as_ref(), c, aliases.as_ref()]);
    run("postmap", &["-c".as_ref(), c, virtual_.as_ref()]);
    // One-level lookups as Postfix sees them (keys folded to lower case).
    let q = |tool: &str, key: &str, map: &str| -> String {
        run(
            tool,
            &["-c".as_ref(), c, "-q".as_ref(), key.as_ref(), map.as_ref()],
        )
        .trim()
        .to_owned()
    };
    assert_eq!(q("postalias", "MixedCase", &aliases), "dave");
    assert_eq!(q("postalias", "multi", &aliases), "alice, carol");
    assert_eq!(
        q("postmap", "sales@alias.test", &virtual_),
        "alice@pochta.test, bob"
    );
    let regexp = format!("regexp:{}", maps.join("virtual.regexp").display());
    assert_eq!(
        q("postmap", "list-gina@pochta.test", &regexp),
        "gina@example.org"
    );
    kind
}

#[test]
fn expansion_matches_postfix() {
    for tool in ["postfix", "postalias", "postmap", "postconf", "smtp-sink"] {
        need(tool);
    }
    let started = Instant::now();
    let dir = TempDir::new("aliases-pf");

    // Both servers deliver locally to one LMTP sink and relay remote mail to one SMTP sink.
    let (lmtp_port, relay_port) = (free_port(), free_port());
    let _lmtp = Sink::start(&dir, "lmtp.sink.test", "127.0.0.1", lmtp_port, &["-L"]);
    let _relay = Sink::start(&dir, "relay.sink.test", "127.0.0.1", relay_port, &[]);

    // Postfix, with its own copies of the tables (postalias/postmap write next to them).
    let pf_maps = write_tables(&dir.join("postfix-maps"));
    let kind = build_postfix_maps(&Postfix::conf_dir(&dir), &pf_maps);
    let local_users: Vec<String> = USERS
        .iter()
        .filter_map(|u| u.strip_suffix(&format!("@{MYORIGIN}")))
        .map(|l| format!("{l}=ok"))
        .collect();
    let boxes: Vec<&str> = USERS
        .iter()
        .copied()
        .filter(|u| !u.ends_with(&format!("@{MYORIGIN}")))
        .collect();
    let main_cf = [
        format!("myhostname = {HOST}"),
        format!("mydomain = {MYORIGIN}"),
        format!("myorigin = {MYORIGIN}"),
        format!("mydestination = {MYORIGIN}, {HOST}, localhost"),
        format!("alias_maps = {kind}:{}", pf_maps.join("aliases").display()),
        format!(
            "alias_database = {kind}:{}",
            pf_maps.join("aliases").display()
        ),
        format!(
            "local_recipient_maps = inline:{{ {} }} $alias_maps",
            local_users.join(", ")
        ),
        format!(
            "virtual_alias_maps = {kind}:{}, regexp:{}",
            pf_maps.join("virtual").display(),
            pf_maps.join("virtual.regexp").display()
        ),
        format!("mailbox_transport = lmtp:inet:127.0.0.1:{lmtp_port}"),
        format!("relayhost = [127.0.0.1]:{relay_port}"),
        "recipient_delimiter = +".to_owned(),
    ];
    let (_, cert, key) = ca_and_cert(&[HOST]);
    let pf_port = free_port();
    let pf = Postfix::start_with(
        &dir,
        pf_port,
        &[PfListener {
            ip: "127.0.0.1",
            opts: &[],
        }],
        &boxes,
        &cert,
        &key,
        &PfExtra {
            main_cf: &main_cf,
            master_cf: &["local unix - n n - - local", "lmtp unix - - n - - lmtp"],
        },
    );

    // Postfix first: its table is printed even when the pochta side cannot start.
    let mut postfix: Vec<Outcome> = CASES.iter().map(|c| send(pf_port, c)).collect();
    let relayhost = format!("127.0.0.1[127.0.0.1]:{relay_port}");
    collect(&mut postfix, || pf.log(), &relayhost, "postfix");

    // pochta: authd with every mailbox, the mta reading the text tables directly.
    let tables = write_tables(&dir.join("tables"));
    let uid = test_uid();
    let users: String = USERS
        .iter()
        .map(|u| format!("{u}:{{PLAIN}}pw:{uid}:{uid}::/nonexistent::\n"))
        .collect();
    let users_file = dir.join("users");
    std::fs::write(&users_file, users).unwrap();
    give_to_test_user(&users_file);
    let userdb = dir.join("auth-userdb");
    let _authd = start_pochta(
        "authd",
        &format!(
            "[server]\nlog_level = \"info\"\n\n[[listener]]\nservice = \"auth-client\"\n\
             address = \"{client}\"\nmode = \"0666\"\n\n[[listener]]\nservice = \"auth-userdb\"\n\
             address = \"{userdb}\"\nmode = \"0666\"\n\n[passdb]\npath = \"{users}\"\n\n\
             [userdb]\n\n[auth]\n",
            client = dir.join("auth-client").display(),
            userdb = userdb.display(),
            users = users_file.display(),
        ),
    );
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    chown_test_user(&spool);
    let smtp = free_port();
    let mta = start_pochta(
        "mta",
        &format!(
            "[server]\nlog_level = \"info\"\n\n\
             [[listener]]\nservice = \"smtp\"\naddress = \"127.0.0.1:{smtp}\"\n\n\
             [smtpd]\nhostname = \"{HOST}\"\nmyorigin = \"{MYORIGIN}\"\n\
             local_domains = [\"{MYORIGIN}\", \"example.org\", \"catchall.test\"]\n\
             trusted_networks = [\"127.0.0.1/32\"]\nrecipient_delimiter = \"+\"\n\n\
             [aliases]\nalias_maps = [\"{aliases}\"]\n\
             virtual_alias_maps = [\"{virtual}\", \"regexp:{regexp}\"]\n\n\
             [auth]\nuserdb_socket = \"{userdb}\"\n\n\
             [queue]\ndir = \"{spool}\"\n\n\
             [delivery]\nlmtp = \"inet:127.0.0.1:{lmtp_port}\"\n\n\
             [outbound]\nrelayhost = \"[127.0.0.1]:{relay_port}\"\ntls = \"none\"\n\
             mta_sts = false\n",
            aliases = tables.join("aliases").display(),
            virtual = tables.join("virtual").display(),
            regexp = tables.join("virtual.regexp").display(),
            userdb = userdb.display(),
            spool = spool.display(),
        ),
    );

    let mut pochta: Vec<Outcome> = CASES.iter().map(|c| send(smtp, c)).collect();
    collect(&mut pochta, || mta.daemon.log(), &relayhost, "pochta-mta");

    let mut table = String::new();
    let (mut mismatches, mut stale) = (Vec::new(), Vec::new());
    for (i, c) in CASES.iter().enumerate() {
        let (p, q) = (&postfix[i], &pochta[i]);
        let same = p.classes == q.classes && p.delivered == q.delivered && p.bounced == q.bounced;
        let mark = match (same, c.known) {
            (true, None) => " ",
            (false, None) => "!",
            (_, Some(_)) => "~",
        };
        let mut line = format!(
            "{mark} {n:>2} {name:<34} {rcpts}\n      postfix: {pf}\n      pochta:  {po}\n",
            n = i + 1,
            name = c.name,
            rcpts = c.rcpts.join(" "),
            pf = p.show(),
            po = q.show(),
        );
        if let Some((why, expected)) = c.known {
            line.push_str(&format!("      known difference: {why}\n"));
            if same || !q.show().starts_with(expected) {
                stale.push(format!(
                    "{line}      (recorded pochta result: {expected:?}; update the case)\n"
                ));
            }
        } else if !same {
            mismatches.push(line.clone());
        }
        table.push_str(&line);
    }
    println!(
        "{} cases ({} known differences), {:.1}s\n{table}",
        CASES.len(),
        CASES.iter().filter(|c| c.known.is_some()).count(),
        started.elapsed().as_secs_f64()
    );
    // The Postfix side must be doing real work: most cases accepted and expanded.
    let accepted = postfix.iter().filter(|o| !o.delivered.is_empty()).count();
    assert!(
        accepted >= 30,
        "only {accepted} cases reached Postfix's deliveries"
    );
    // pochta deduplicates a message's final recipients.
    for (c, o) in CASES.iter().zip(&pochta) {
        assert!(
            o.delivered.values().all(|n| *n == 1),
            "{}: pochta delivered a recipient twice: {}",
            c.name,
            o.show()
        );
    }
    assert!(
        mismatches.is_empty() && stale.is_empty(),
        "{} of {} cases differ from Postfix:\n{}\n{} known differences changed:\n{}",
        mismatches.len(),
        CASES.len(),
        mismatches.concat(),
        stale.len(),
        stale.concat()
    );
}
