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

use crate::config::Config;
use crate::policy::{self, Client};
use pochta_aliases::{domain_key, Aliases, Target};
use pochta_smtp::{ForwardPath, Reply};
use pochta_srs::Srs;

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
        let aliases = Aliases::load(settings).map_err(|errors| {
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
            // The queue has no pipe or file delivery agent yet: refusing here keeps such
            // mail from being accepted and then bounced.
            return Err(
                "aliases.allow_mail_to_commands / allow_mail_to_files: pochta-mta \
                        does not deliver to commands or files yet; leave them off"
                    .into(),
            );
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
                        return Ok(Resolved::Finals(vec![Final {
                            address: original,
                            orig: Some(address),
                            forwarded: true,
                            sender: None,
                        }]))
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
        let finals = self.expand_finals(address, orig)?;
        if let Some(finals) = finals {
            return Ok(Resolved::Finals(finals));
        }
        let (local, domain) = split(address);
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
            Ok(Resolved::Finals(vec![Final {
                address: address.to_owned(),
                orig: orig.map(str::to_owned),
                forwarded: false,
                sender: None,
            }]))
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
                    let forwarded = !self.is_local(split(&a).1);
                    finals.push(Final {
                        address: a,
                        orig: None,
                        forwarded,
                        sender,
                    })
                }
                Target::Command { .. } | Target::File { .. } => {
                    // load() refuses tables that could produce these.
                    return Err(Reply::with_status(
                        451,
                        (4, 3, 0),
                        format!("<{shown}>: Temporary lookup failure"),
                    ));
                }
            }
        }
        if finals.is_empty() && !unknown_targets.is_empty() {
            return Err(unknown(shown, "virtual alias table"));
        }
        let unchanged = finals.len() == 1
            && finals[0].sender.is_none()
            && finals[0].address.eq_ignore_ascii_case(address);
        if unchanged {
            return Ok(None);
        }
        for f in &mut finals {
            f.orig = Some(shown.to_owned());
        }
        Ok(Some(finals))
    }
}

impl pochta_queue::AddressPolicy for AddressBook {
    /// Local domains, and the alias-only ones (host name, localhost): a final address there
    /// that is no alias goes to LMTP, whose userdb answers "unknown" and the sender gets a
    /// bounce — never to DNS (Postfix's local(8) bounces such a user too).
    fn is_local_domain(&self, domain: &str) -> bool {
        self.is_local(domain) || self.alias_domains.contains(&domain_key(domain))
    }

    fn myorigin(&self) -> &str {
        &self.myorigin
    }

    /// A notice's recipient: aliases, then postmaster of any domain of ours to myorigin's.
    fn expand(&self, address: &str) -> Result<Vec<String>, String> {
        let trusted = Client {
            authenticated: false,
            trusted: true,
        };
        let to = match pochta_smtp::Mailbox::parse(address, true) {
            Ok(m) => ForwardPath::Mailbox(m),
            // Not an address we can parse: deliver as given, the delivery will say why.
            Err(_) => return Ok(vec![address.to_owned()]),
        };
        match self.resolve(&to, trusted, now_secs()) {
            Ok(Resolved::Mailbox { address, .. }) => Ok(vec![address]),
            Ok(Resolved::Finals(f)) => Ok(f.into_iter().map(|f| f.address).collect()),
            Err(r) if r.code() >= 500 => Ok(vec![address.to_owned()]),
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
