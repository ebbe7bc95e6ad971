//! The mta's address book: local domains, myorigin, the alias tables and SRS, loaded from
//! mta.toml and swapped whole on SIGHUP. The sessions ask it what a RCPT TO means (a mailbox
//! to check on the userdb, final recipients after aliases, a relay, a refusal); the queue
//! runner asks it which domains are local and what a notice's recipient expands to
//! ([`pochta_queue::AddressPolicy`]).
//!
//! Order of decisions for one recipient (Postfix's smtpd + cleanup + local(8), in one place):
//! 1. address hacks (`%`, `!`, `@` in the local part) are refused for everybody;
//! 2. an SRS address of ours is reversed (a bounce coming back to forwarded mail);
//! 3. virtual aliases (every domain), then aliases(5) (bare names and `alias_domains`),
//!    recursively: a changed address is accepted with its final targets — the admin decided;
//! 4. `postmaster@` any domain of ours without its own entry is `postmaster@myorigin`;
//! 5. a local domain's address is a mailbox: checked on the userdb;
//! 6. an address in an alias-only or virtual alias domain without an entry is unknown;
//! 7. anything else is relayed, for clients that may relay.
//!
//! aliases(5) `|command` and `/file` targets (with `allow_mail_to_commands` /
//! `allow_mail_to_files`) become finals with a command or file [`Agent`]: the queue runs them
//! as the mta's own user, which cannot change users, so [`AddressBook::load`] refuses an
//! aliases file that names such targets unless its owner is that user (Postfix would run them
//! as the owner).

use crate::config::Config;
use crate::policy::{self, Client};
use pochta_aliases::{domain_key, same_address, Aliases, Target};
use pochta_queue::{Agent, LocalAlias};
use pochta_smtp::{ForwardPath, Reply};
use pochta_srs::Srs;
use std::path::Path;

/// One final recipient of a RCPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Final {
    pub address: String,
    /// The address the client gave when the aliases changed it (Postfix orig_to).
    pub orig: Option<String>,
    /// An alias sent it on to another domain: the sender is rewritten when SRS is on.
    pub forwarded: bool,
    /// The envelope sender for this recipient when an `owner-NAME` alias takes the errors
    /// of list NAME (Postfix local(8)); `None`: the message's sender.
    pub sender: Option<String>,
    /// A mailbox (`address` routed by its domain), or an aliases(5) command or file
    /// (`address` is then the command or the path).
    pub agent: Agent,
}

impl Final {
    /// A mailbox recipient.
    pub fn mailbox(address: String, orig: Option<String>, forwarded: bool) -> Final {
        Final {
            address,
            orig,
            forwarded,
            sender: None,
            agent: Agent::Mailbox,
        }
    }

    /// What makes two finals the same delivery (local(8)'s duplicate filter): a mailbox's
    /// address without case; a command or file as written, with the rights it runs with.
    pub fn dedup_key(&self) -> String {
        match &self.agent {
            Agent::Mailbox => format!("mailbox {}", self.address.to_ascii_lowercase()),
            Agent::Command { uid, .. } => format!("command {uid} {}", self.address),
            Agent::File { uid, .. } => format!("file {uid} {}", self.address),
        }
    }
}

/// What a RCPT TO resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A mailbox in a local domain: look `lookup` up on the userdb (`alice+x@D` → `alice@D`),
    /// queue `address`. `postmaster`: accepted even when the userdb does not know it.
    Mailbox {
        address: String,
        lookup: String,
        orig: Option<String>,
        postmaster: bool,
    },
    /// Decided without the userdb: the aliases' targets, a relay, a reversed SRS address.
    Finals(Vec<Final>),
}

pub struct AddressBook {
    local_domains: Vec<String>,
    myorigin: String,
    /// Domains where aliases(5) apply (lower-case).
    alias_domains: Vec<String>,
    delimiter: String,
    aliases: Aliases,
    srs: Option<Srs>,
    /// `[aliases] allow_mail_to_commands` / `allow_mail_to_files`, asked again by the queue
    /// at delivery time.
    allow_commands: bool,
    allow_files: bool,
}

/// Our host name: `[smtpd] hostname`, else the system's.
pub fn hostname(cfg: &Config) -> String {
    match &cfg.smtpd.hostname {
        Some(h) => h.clone(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into()),
    }
}

/// `[smtpd] myorigin`, else the first local domain, else the host name (lower-case).
pub fn myorigin(cfg: &Config) -> String {
    pochta_aliases::myorigin(
        cfg.smtpd.myorigin.as_deref(),
        &cfg.smtpd.local_domains,
        &hostname(cfg),
    )
}

fn split(address: &str) -> (&str, &str) {
    address.rsplit_once('@').unwrap_or((address, ""))
}

fn unknown(address: &str, table: &str) -> Reply {
    Reply::with_status(
        550,
        (5, 1, 1),
        format!("<{address}>: Recipient address rejected: User unknown in {table}"),
    )
}

impl AddressBook {
    /// Reads the tables and the SRS secret (blocking file reads: at start, reload and
    /// `--check-config`). Errors name `file:line`.
    pub fn load(cfg: &Config) -> Result<AddressBook, String> {
        let myorigin = myorigin(cfg);
        let a = &cfg.aliases;
        let settings = a.settings(&myorigin, &hostname(cfg), &cfg.smtpd.recipient_delimiter);
        let alias_domains = settings.alias_domains.clone();
        let aliases = Aliases::load(settings.clone()).map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        // Postfix logs these lines and skips them; pochta refuses them like any config error,
        // so a table never means less than the admin wrote.
        if !aliases.warnings().is_empty() {
            let all: Vec<String> = aliases.warnings().iter().map(|w| w.to_string()).collect();
            return Err(all.join("\n"));
        }
        if a.allow_mail_to_commands || a.allow_mail_to_files {
            check_local_rights(cfg, &settings)?;
        }
        let srs = match (&cfg.srs.domain, &cfg.srs.secret_file) {
            (Some(d), Some(f)) => {
                let secrets = pochta_srs::read_secrets(f)
                    .map_err(|e| format!("srs.secret_file {}: {e}", f.display()))?;
                Some(Srs::new(d, secrets).map_err(|e| format!("srs: {e}"))?)
            }
            _ => None,
        };
        Ok(AddressBook {
            local_domains: cfg
                .smtpd
                .local_domains
                .iter()
                .map(|d| domain_key(d))
                .collect(),
            myorigin,
            alias_domains,
            delimiter: cfg.smtpd.recipient_delimiter.clone(),
            aliases,
            srs,
            allow_commands: a.allow_mail_to_commands,
            allow_files: a.allow_mail_to_files,
        })
    }

    pub fn aliases(&self) -> &Aliases {
        &self.aliases
    }

    pub fn srs(&self) -> Option<&Srs> {
        self.srs.as_ref()
    }

    fn is_local(&self, domain: &str) -> bool {
        let d = domain_key(domain);
        self.local_domains.contains(&d)
    }

    /// Mail for `domain` stays on this machine (LMTP): a local domain, or an alias-only one
    /// (host name, localhost), whose addresses that are no alias the userdb then refuses.
    fn delivered_here(&self, domain: &str) -> bool {
        self.is_local(domain) || self.alias_domains.contains(&domain_key(domain))
    }

    /// A domain we answer for: local, alias-only, or a virtual alias domain.
    fn is_ours(&self, domain: &str) -> bool {
        let d = domain_key(domain);
        self.is_local(&d) || self.alias_domains.contains(&d) || self.aliases.is_virtual_domain(&d)
    }

    /// An address in a virtual alias domain of ours (not a local one) that no table entry
    /// takes: nobody receives it.
    fn unknown_in_virtual_domain(&self, address: &str) -> bool {
        let domain = domain_key(split(address).1);
        !self.is_local(&domain)
            && self.aliases.is_virtual_domain(&domain)
            && self.aliases.lookup_one(address).is_none()
    }

    /// Decides RCPT TO without I/O (the userdb check of a [`Resolved::Mailbox`] is the
    /// caller's). `Err` is the reply.
    pub fn resolve(&self, to: &ForwardPath, client: Client, now: u64) -> Result<Resolved, Reply> {
        let address = match to {
            // RFC 5321 §4.5.1: <Postmaster> without a domain is ours.
            ForwardPath::Postmaster => format!("postmaster@{}", self.myorigin),
            ForwardPath::Mailbox(m) => {
                if m.local().contains(['%', '!', '@']) {
                    return Err(policy::relay_denied(&m.to_string()));
                }
                // Display quotes the local part again when it needs it.
                let d = domain_key(m.domain().as_str());
                let domain =
                    pochta_smtp::Domain::parse(&d, true).unwrap_or_else(|_| m.domain().clone());
                pochta_smtp::Mailbox::new(m.local().to_owned(), domain).to_string()
            }
        };
        if let Some(srs) = &self.srs {
            if split(&address).1 == srs.domain() {
                match srs.reverse(&address, now) {
                    Ok(Some(original)) => {
                        return Ok(Resolved::Finals(vec![Final::mailbox(
                            original,
                            Some(address),
                            true,
                        )]))
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(Reply::with_status(
                            550,
                            (5, 1, 1),
                            format!("<{address}>: Recipient address rejected: {e}"),
                        ))
                    }
                }
            }
        }
        self.resolve_address(&address, None, client)
    }

    fn resolve_address(
        &self,
        address: &str,
        orig: Option<&str>,
        client: Client,
    ) -> Result<Resolved, Reply> {
        let shown = orig.unwrap_or(address);
        let (local, domain) = split(address);
        // Relay permission is decided on the address the client named, before any table is
        // consulted (Postfix's reject_unauth_destination runs before cleanup's virtual
        // expansion): a table entry for a foreign domain never opens a relay.
        if !client.may_relay() && !self.is_ours(domain) {
            return Err(policy::relay_denied(shown));
        }
        let finals = self.expand_finals(address, orig)?;
        if let Some(finals) = finals {
            return Ok(Resolved::Finals(finals));
        }
        let postmaster = local.eq_ignore_ascii_case("postmaster");
        if postmaster && domain != self.myorigin && self.is_ours(domain) {
            // Every domain's postmaster reaches myorigin's (RFC 5321 §4.5.1).
            let pm = format!("postmaster@{}", self.myorigin);
            return self.resolve_address(&pm, Some(shown), client);
        }
        if self.is_local(domain) {
            let base = policy::strip_detail(local, &self.delimiter);
            return Ok(Resolved::Mailbox {
                address: address.to_owned(),
                lookup: format!("{base}@{domain}"),
                orig: orig.map(str::to_owned),
                postmaster,
            });
        }
        if self.alias_domains.iter().any(|d| d == domain) {
            return Err(unknown(shown, "local recipient table"));
        }
        if self.aliases.is_virtual_domain(domain) {
            return Err(unknown(shown, "virtual alias table"));
        }
        if client.may_relay() {
            Ok(Resolved::Finals(vec![Final::mailbox(
                address.to_owned(),
                orig.map(str::to_owned),
                false,
            )]))
        } else {
            Err(policy::relay_denied(shown))
        }
    }

    /// The aliases' final targets of `address`, or `None` when no alias applies.
    fn expand_finals(
        &self,
        address: &str,
        orig: Option<&str>,
    ) -> Result<Option<Vec<Final>>, Reply> {
        let shown = orig.unwrap_or(address);
        let expansion = self.aliases.expand(address).map_err(|e| {
            tracing::warn!("alias expansion of <{address}> failed: {e}");
            Reply::with_status(
                451,
                (4, 3, 0),
                format!("<{shown}>: Temporary lookup failure"),
            )
        })?;
        // Branches Postfix's local(8) bounces (an alias loop, a bad :include:): with other
        // targets left they are logged for the admin; with none, the RCPT gets their status.
        if let Some(f) = expansion.failures.first() {
            if expansion.targets.is_empty() {
                tracing::warn!("<{shown}>: {f}");
                let status = f.status();
                let digits: Vec<u16> = status.split('.').filter_map(|d| d.parse().ok()).collect();
                let (code, enh) = match digits.as_slice() {
                    [5, b, c] => (550, (5, *b, *c)),
                    [_, b, c] => (451, (4, *b, *c)),
                    _ => (451, (4, 3, 0)),
                };
                return Err(Reply::with_status(
                    code,
                    enh,
                    format!("<{shown}>: Recipient address rejected: {f}"),
                ));
            }
            for f in &expansion.failures {
                tracing::warn!("<{shown}>: part of the alias expansion is not delivered: {f}");
            }
        }
        let mut finals = Vec::new();
        let mut unknown_targets = Vec::new();
        for (sender, target) in expansion.targets {
            match target {
                Target::Address(a) if self.unknown_in_virtual_domain(&a) => {
                    // A target in one of our virtual alias domains that no entry takes: Postfix
                    // bounces it ("User unknown in virtual alias table"); it must never be
                    // sent on to the domain's MX (that is us, or a stranger).
                    tracing::warn!(
                        "<{shown}>: alias target <{a}> is unknown in virtual alias table; \
                         not delivered"
                    );
                    unknown_targets.push(a);
                }
                Target::Address(a) => {
                    let forwarded = !self.delivered_here(split(&a).1);
                    finals.push(Final {
                        address: a,
                        orig: None,
                        forwarded,
                        sender,
                        agent: Agent::Mailbox,
                    })
                }
                // Only the settings' permission and an aliases file of the mta's own user
                // (load) lead here.
                Target::Command {
                    command,
                    uid,
                    gid,
                    alias,
                } => {
                    let alias = self.local_alias(address, alias);
                    finals.push(Final {
                        address: command,
                        orig: None,
                        forwarded: false,
                        sender,
                        agent: Agent::Command { uid, gid, alias },
                    })
                }
                Target::File {
                    path,
                    uid,
                    gid,
                    alias,
                } => {
                    let Some(path) = path.to_str() else {
                        tracing::warn!("<{shown}>: file target {} is not UTF-8", path.display());
                        return Err(Reply::with_status(
                            451,
                            (4, 3, 5),
                            format!("<{shown}>: mail system configuration error"),
                        ));
                    };
                    let alias = self.local_alias(address, alias);
                    finals.push(Final {
                        address: path.to_owned(),
                        orig: None,
                        forwarded: false,
                        sender,
                        agent: Agent::File { uid, gid, alias },
                    })
                }
            }
        }
        if finals.is_empty() && !unknown_targets.is_empty() {
            return Err(unknown(shown, "virtual alias table"));
        }
        let unchanged = finals.len() == 1
            && finals[0].sender.is_none()
            && finals[0].agent == Agent::Mailbox
            && same_address(&finals[0].address, address);
        if unchanged {
            return Ok(None);
        }
        for f in &mut finals {
            f.orig = Some(shown.to_owned());
        }
        Ok(Some(finals))
    }
}

impl AddressBook {
    /// The alias entry that named a command or file, as local(8) knows it: `name` is the
    /// alias (without extension); the address is `address` itself when `address` is that
    /// alias in an alias domain (extension kept: RECIPIENT, EXTENSION), else `name@myorigin`
    /// (an alias reached through others, whose bare names get myorigin).
    fn local_alias(&self, address: &str, name: String) -> LocalAlias {
        let (local, domain) = split(address);
        let base = policy::strip_detail(local, &self.delimiter);
        let domain = domain_key(domain);
        let here = domain == self.myorigin || self.alias_domains.contains(&domain);
        let address = if here && base.eq_ignore_ascii_case(&name) {
            format!("{}@{domain}", local.to_lowercase())
        } else {
            format!("{name}@{}", self.myorigin)
        };
        LocalAlias {
            user: name,
            address,
        }
    }
}

/// Who pochta-mta runs as: `[server] user` (and `group`, else the user's primary group), else
/// the process's effective ids. (name, uid, group name, gid).
fn runs_as(cfg: &Config) -> Result<(String, u32, String, u32), String> {
    use nix::unistd::{Gid, Group, Uid, User};
    let group_name = |gid: u32| -> String {
        Group::from_gid(Gid::from_raw(gid))
            .ok()
            .flatten()
            .map_or_else(|| gid.to_string(), |g| g.name)
    };
    let (name, uid, primary) = match &cfg.server.user {
        Some(u) => match User::from_name(u) {
            Ok(Some(p)) => (p.name, p.uid.as_raw(), p.gid.as_raw()),
            _ => return Err(format!("server.user {u:?}: no such user")),
        },
        None => {
            let uid = Uid::effective().as_raw();
            let name = User::from_uid(Uid::from_raw(uid))
                .ok()
                .flatten()
                .map_or_else(|| uid.to_string(), |p| p.name);
            (name, uid, Gid::effective().as_raw())
        }
    };
    let gid = match &cfg.server.group {
        Some(g) => match Group::from_name(g) {
            Ok(Some(g)) => g.gid.as_raw(),
            _ => return Err(format!("server.group {g:?}: no such group")),
        },
        None => primary,
    };
    Ok((name, uid, group_name(gid), gid))
}

/// With commands or files allowed: every aliases(5) file that names such targets must belong
/// to the user (and primary group) pochta-mta runs as, since their rights are the file
/// owner's (Postfix local(8)) and the mta cannot take on anybody else's. Root-owned files are
/// pochta-aliases' business (it refuses such targets there).
fn check_local_rights(cfg: &Config, settings: &pochta_aliases::Settings) -> Result<(), String> {
    let (user, uid, group, gid) = runs_as(cfg)?;
    let mut errors = Vec::new();
    for path in &settings.alias_maps {
        let Ok(meta) = std::fs::metadata(path) else {
            continue; // Aliases::load already said why
        };
        let owner = std::os::unix::fs::MetadataExt::uid(&meta);
        if owner == 0 {
            continue;
        }
        let passwd = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(owner))
            .ok()
            .flatten();
        let owner_gid = passwd.as_ref().map(|p| p.gid.as_raw());
        if owner == uid && owner_gid == Some(gid) {
            continue;
        }
        if !names_commands_or_files(settings, path) {
            continue;
        }
        let owner_name = passwd.map_or_else(|| format!("uid {owner}"), |p| p.name);
        errors.push(if owner != uid {
            format!(
                "{} is owned by {owner_name} but pochta-mta runs as {user}: |command and /file \
                 targets would not run as their owner; chown the file to {user}",
                path.display()
            )
        } else {
            format!(
                "{} is owned by {owner_name}, whose group is not {group}, the group pochta-mta \
                 runs with: |command and /file targets would not run with their owner's \
                 group; set [server] group to {owner_name}'s primary group",
                path.display()
            )
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// Whether the aliases file `path` names a `|command` or `/file`: it loads with them allowed
/// (the whole set just did) but not without. No second parser to keep in step.
fn names_commands_or_files(settings: &pochta_aliases::Settings, path: &Path) -> bool {
    let alone = pochta_aliases::Settings {
        alias_maps: vec![path.to_owned()],
        virtual_alias_maps: Vec::new(),
        allow_mail_to_commands: false,
        allow_mail_to_files: false,
        ..settings.clone()
    };
    Aliases::load(alone).is_err()
}

impl pochta_queue::AddressPolicy for AddressBook {
    /// Local domains, and the alias-only ones (host name, localhost): a final address there
    /// that is no alias goes to LMTP, whose userdb answers "unknown" and the sender gets a
    /// bounce — never to DNS (Postfix's local(8) bounces such a user too).
    fn is_local_domain(&self, domain: &str) -> bool {
        self.delivered_here(domain)
    }

    fn myorigin(&self) -> &str {
        &self.myorigin
    }

    fn allows(&self, agent: &Agent) -> bool {
        match agent {
            Agent::Mailbox => true,
            Agent::Command { .. } => self.allow_commands,
            Agent::File { .. } => self.allow_files,
        }
    }

    /// A notice's recipient: aliases, then postmaster of any domain of ours to myorigin's.
    fn expand(&self, address: &str) -> Result<Vec<(String, Agent)>, String> {
        let trusted = Client {
            authenticated: false,
            trusted: true,
        };
        let to = match pochta_smtp::Mailbox::parse(address, true) {
            Ok(m) => ForwardPath::Mailbox(m),
            // Not an address we can parse: deliver as given, the delivery will say why.
            Err(_) => return Ok(vec![(address.to_owned(), Agent::Mailbox)]),
        };
        match self.resolve(&to, trusted, now_secs()) {
            Ok(Resolved::Mailbox { address, .. }) => Ok(vec![(address, Agent::Mailbox)]),
            Ok(Resolved::Finals(f)) => Ok(f.into_iter().map(|f| (f.address, f.agent)).collect()),
            Err(r) if r.code() >= 500 => Ok(vec![(address.to_owned(), Agent::Mailbox)]),
            Err(r) => Err(r.to_wire(true).trim_end().to_owned()),
        }
    }
}

/// Unix seconds (SRS timestamps).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "addresses_tests.rs"]
mod tests;
