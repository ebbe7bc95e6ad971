//! The recursive expansion: what Postfix's cleanup(8) and local(8) do to one recipient,
//! message by message.
//!
//! A "message" is what Postfix would have in one queue file: an envelope sender (changed by
//! `owner-` aliases), the Delivered-To addresses it carries (local(8) adds one each time it
//! forwards), and recipients. cleanup expands the recipients through the virtual tables
//! (cleanup_map1n.c); each result in myorigin or an alias domain goes to local(8), whose
//! alias expansion (local/alias.c, token.c, include.c, resolve.c, recipient.c) either ends in
//! targets or forwards addresses, which make a new message that goes through cleanup again.
//! Everything else is a final address.

use crate::aliases_file::{classify, TokenKind};
use crate::table_file::Owner;
use crate::tok822::{self, Tok};
use crate::virtual_table::{self, split_local};
use crate::{Aliases, ExpandError, Expansion, Target};
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;

/// local(8)'s hard-wired nesting limit (state.level > 100).
const LEVEL_LIMIT: u32 = 100;
/// virtual_alias_address_length_limit.
const ADDRESS_LENGTH_LIMIT: usize = 1000;
/// pochta's own bound on the work of one expansion (table lookups and local(8) steps).
const WORK_LIMIT: usize = 1_000_000;
/// pochta's own bound on how many times mail is forwarded in one expansion.
const FORWARD_DEPTH_LIMIT: usize = 100;

fn fold(s: &str) -> String {
    s.to_lowercase()
}

fn domain_of(addr: &str) -> Option<&str> {
    addr.rfind('@').map(|at| &addr[at + 1..])
}

struct Message {
    sender: Option<String>,
    /// Delivered-To addresses, folded.
    delivered_to: Vec<String>,
    rcpts: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpType {
    None,
    Alias,
    Include,
}

/// Delivery rights (local(8)'s usr_attr): the default (root-owned file) or a user's.
#[derive(Clone)]
enum Rights {
    Default,
    User { uid: u32, gid: u32, home: PathBuf },
}

impl Rights {
    fn uid(&self) -> u32 {
        match self {
            Rights::Default => 0,
            Rights::User { uid, .. } => *uid,
        }
    }
}

/// local(8)'s per-call state, passed by value as local(8) passes it.
#[derive(Clone)]
struct State {
    level: u32,
    rcpt: String,
    /// The Delivered-To address for forwarded mail: the first recipient (frozen_delivered_to).
    delivered: Option<String>,
    exp_from: Option<String>,
    exp_type: ExpType,
    /// The "owner" (forwarder): set by an owner- alias or by `:include:`.
    owner: Option<String>,
    sender: Option<String>,
    /// Folded local part (with extension) and user (without).
    local: String,
    user: String,
    extension: Option<String>,
    delim: Option<char>,
    unmatched: Option<String>,
    rights: Rights,
}

/// One local(8) delivery request: its duplicate filter and the mail it forwards.
#[derive(Default)]
struct LocalDelivery {
    dup: HashSet<String>,
    /// (Delivered-To, sender, recipients), as forward.c groups them.
    forwards: Vec<(String, Option<String>, Vec<String>)>,
}

struct Engine<'a> {
    a: &'a Aliases,
    address: String,
    out: Vec<(Option<String>, Target)>,
    seen: HashSet<String>,
    failures: Vec<ExpandError>,
    queue: VecDeque<Message>,
    work: usize,
}

pub(crate) fn expand(a: &Aliases, address: &str) -> Result<Expansion, ExpandError> {
    let s = &a.settings;
    let mut addr = tok822::canon_internal(address, &s.myorigin);
    if let Some(at) = addr.rfind('@') {
        let domain = addr[at..].to_lowercase();
        addr.truncate(at);
        addr.push_str(&domain);
    }
    let mut e = Engine {
        a,
        address: addr.clone(),
        out: Vec::new(),
        seen: HashSet::new(),
        failures: Vec::new(),
        queue: VecDeque::new(),
        work: 0,
    };
    e.queue.push_back(Message {
        sender: None,
        delivered_to: Vec::new(),
        rcpts: vec![addr],
    });
    while let Some(m) = e.queue.pop_front() {
        if m.delivered_to.len() > FORWARD_DEPTH_LIMIT {
            return Err(ExpandError::RecursionLimit { address: e.address });
        }
        e.message(m)?;
    }
    Ok(Expansion {
        targets: e.out,
        failures: e.failures,
    })
}

impl Engine<'_> {
    fn step(&mut self) -> Result<(), ExpandError> {
        self.work += 1;
        if self.work > WORK_LIMIT {
            return Err(ExpandError::ExpansionLimit {
                address: self.address.clone(),
            });
        }
        Ok(())
    }

    fn emit(&mut self, sender: Option<String>, target: Target) {
        let key = match &target {
            Target::Address(a) => format!("a {}", fold(a)),
            Target::Command {
                command,
                uid,
                alias,
                ..
            } => format!("c {}:{uid} {command}", fold(alias)),
            Target::File { path, uid, .. } => format!("f {uid} {}", path.display()),
        };
        if self.seen.insert(key) {
            self.out.push((sender, target));
        }
    }

    fn fail(&mut self, e: ExpandError) {
        if !self.failures.contains(&e) {
            self.failures.push(e);
        }
    }

    /// cleanup(8) then the queue manager: virtual aliases for every recipient, duplicates
    /// removed (cleanup's dup filter), local(8) for local domains.
    fn message(&mut self, m: Message) -> Result<(), ExpandError> {
        let mut dups = HashSet::new();
        let mut rcpts = Vec::new();
        for r in &m.rcpts {
            for x in self.map1n(r)? {
                if dups.insert(fold(&x)) {
                    rcpts.push(x);
                }
            }
        }
        let s = &self.a.settings;
        for r in rcpts {
            // trivial-rewrite's resolver: the null address is empty_address_recipient
            // (MAILER-DAEMON), a name without domain is local.
            let r = if r.is_empty() {
                format!("MAILER-DAEMON@{}", s.myorigin)
            } else if !r.contains('@') {
                format!("{r}@{}", s.myorigin)
            } else {
                r
            };
            if domain_of(&r).is_some_and(|d| s.is_local_domain(d)) {
                self.local(&r, &m)?;
            } else {
                self.emit(m.sender.clone(), Target::Address(r));
            }
        }
        Ok(())
    }

    /// cleanup_map1n_internal(): expand one recipient through the virtual tables.
    fn map1n(&mut self, addr: &str) -> Result<Vec<String>, ExpandError> {
        let s = &self.a.settings;
        let mut argv = vec![addr.to_owned()];
        if self.a.tables.is_empty() {
            return Ok(argv);
        }
        let mut been_here: HashSet<String> = HashSet::new();
        let mut arg = 0;
        while arg < argv.len() {
            if argv.len() > s.expansion_limit {
                return Err(ExpandError::ExpansionLimit {
                    address: addr.to_owned(),
                });
            }
            let mut count = 0;
            loop {
                if been_here.contains(&fold(&argv[arg])) {
                    break;
                }
                if count >= s.recursion_limit {
                    return Err(ExpandError::RecursionLimit {
                        address: addr.to_owned(),
                    });
                }
                self.step()?;
                let found = virtual_table::map(&self.a.tables, s, &argv[arg]).map_err(|f| {
                    ExpandError::LookupFailed {
                        address: addr.to_owned(),
                        reason: f.0,
                    }
                })?;
                let Some(list) = found else {
                    break;
                };
                let lhs = argv[arg].clone();
                for (i, x) in list.into_iter().enumerate() {
                    if x.len() > ADDRESS_LENGTH_LIMIT {
                        return Err(ExpandError::AddressTooLong {
                            address: addr.to_owned(),
                        });
                    }
                    // An address may expand into itself once: it stays as it is.
                    if fold(&x) == fold(&lhs) {
                        been_here.insert(fold(&lhs));
                    }
                    if i == 0 {
                        argv[arg] = x;
                    } else {
                        argv.push(x);
                    }
                }
                count += 1;
            }
            arg += 1;
        }
        Ok(argv)
    }

    /// local_deliver() for one recipient: a fresh duplicate filter; what it forwards becomes
    /// new messages with this recipient added to their Delivered-To.
    fn local(&mut self, rcpt: &str, m: &Message) -> Result<(), ExpandError> {
        let mut ld = LocalDelivery::default();
        let st = State {
            level: 0,
            rcpt: rcpt.to_owned(),
            delivered: None,
            exp_from: None,
            exp_type: ExpType::None,
            owner: None,
            sender: m.sender.clone(),
            local: String::new(),
            user: String::new(),
            extension: None,
            delim: None,
            unmatched: None,
            rights: Rights::Default,
        };
        self.recipient(&mut ld, st, m)?;
        for (delivered, sender, rcpts) in ld.forwards {
            let mut delivered_to = m.delivered_to.clone();
            delivered_to.push(fold(&delivered));
            self.queue.push_back(Message {
                sender,
                delivered_to,
                rcpts,
            });
        }
        Ok(())
    }

    /// deliver_recipient().
    fn recipient(
        &mut self,
        ld: &mut LocalDelivery,
        mut st: State,
        m: &Message,
    ) -> Result<(), ExpandError> {
        self.step()?;
        st.level += 1;
        if st.level > LEVEL_LIMIT {
            self.fail(ExpandError::NestingLimit { address: st.rcpt });
            return Ok(());
        }
        if !ld
            .dup
            .insert(format!("recipient {} {}", st.level, fold(&st.rcpt)))
        {
            return Ok(());
        }
        if m.delivered_to.contains(&fold(&st.rcpt)) {
            self.fail(ExpandError::ForwardingLoop { address: st.rcpt });
            return Ok(());
        }
        if st.delivered.is_none() {
            st.delivered = Some(st.rcpt.clone());
        }
        let folded = fold(&st.rcpt);
        let local = folded
            .rfind('@')
            .map_or(folded.as_str(), |at| &folded[..at]);
        st.local = local.to_owned();
        st.user = local.to_owned();
        st.extension = None;
        st.delim = None;
        if let Some((user, ext)) = split_local(local, &self.a.settings.recipient_delimiter) {
            let mut chars = ext.chars();
            let delim = chars.next();
            let ext = chars.as_str();
            if ext.contains('/') {
                // "address with illegal extension": the extension is dropped.
                st.local = user.to_owned();
            } else {
                st.extension = Some(ext.to_owned());
                st.delim = delim;
            }
            st.user = user.to_owned();
        }
        st.unmatched = st.extension.clone();
        if st.user.is_empty() {
            self.fail(ExpandError::NullUsername { address: st.rcpt });
            return Ok(());
        }
        self.switch(ld, st, m)
    }

    /// deliver_switch(): aliases (full local part, then without extension), forwarding when
    /// an owner is set or inside `:include:`, else the mailbox.
    fn switch(
        &mut self,
        ld: &mut LocalDelivery,
        mut st: State,
        m: &Message,
    ) -> Result<(), ExpandError> {
        st.level += 1;
        st.unmatched = None;
        let local = st.local.clone();
        if self.alias(ld, st.clone(), &local, m)? {
            return Ok(());
        }
        if let Some(ext) = st.extension.clone() {
            // EXT_PROP_ALIAS is not in Postfix's default propagate_unmatched_extensions.
            let user = st.user.clone();
            if self.alias(ld, st.clone(), &user, m)? {
                return Ok(());
            }
            st.unmatched = Some(ext);
        }
        if st.owner.as_ref().is_some_and(|o| fold(o) != fold(&st.user))
            || st.exp_type == ExpType::Include
        {
            return self.indirect(ld, &st);
        }
        if ld.dup.insert(format!("mailbox {}", st.local)) {
            self.emit(st.sender.clone(), Target::Address(st.rcpt.clone()));
        }
        Ok(())
    }

    /// deliver_alias(): `Ok(true)` when `name` is an alias (expanded or failed).
    fn alias(
        &mut self,
        ld: &mut LocalDelivery,
        mut st: State,
        name: &str,
        m: &Message,
    ) -> Result<bool, ExpandError> {
        st.level += 1;
        if st
            .exp_from
            .as_deref()
            .is_some_and(|f| fold(f) == fold(name))
        {
            return Ok(false);
        }
        if st.level > LEVEL_LIMIT {
            self.fail(ExpandError::AliasLoop {
                alias: name.to_owned(),
            });
            return Ok(true);
        }
        st.exp_from = Some(name.to_owned());
        let a = self.a;
        for file in &a.alias_files {
            let Some(alias) = file.lookup(name) else {
                continue;
            };
            st.rights = match &file.owner {
                Owner::Root => Rights::Default,
                Owner::User { uid, gid, home } => Rights::User {
                    uid: *uid,
                    gid: *gid,
                    home: home.clone(),
                },
                Owner::Unknown { .. } => {
                    return Err(ExpandError::UnknownOwner {
                        alias: name.to_owned(),
                        file: file.path.clone(),
                    })
                }
            };
            st.exp_type = ExpType::Alias;
            let owner = format!("owner-{name}");
            if a.alias_files.iter().any(|f| f.get(&owner).is_some()) {
                let owner = tok822::canon_internal(&owner, &a.settings.myorigin);
                st.owner = Some(owner.clone());
                st.sender = Some(owner);
            }
            if alias.addresses.is_empty() {
                return Err(ExpandError::NoRecipients {
                    alias: name.to_owned(),
                });
            }
            for addr in &alias.addresses {
                self.token(ld, st.clone(), addr, m)?;
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// deliver_token(): a file, `~/file`, `|command`, `:include:` or an address.
    fn token(
        &mut self,
        ld: &mut LocalDelivery,
        st: State,
        addr: &[Tok],
        m: &Message,
    ) -> Result<(), ExpandError> {
        self.step()?;
        let text = tok822::internalize(addr);
        match classify(&text) {
            TokenKind::File(p) => {
                self.file(ld, st, PathBuf::from(p));
                Ok(())
            }
            TokenKind::Home(t) => {
                if let (Rights::User { home, .. }, Some(rest)) = (&st.rights, t.strip_prefix('~')) {
                    let path = if home.as_os_str() == "/" {
                        PathBuf::from(rest)
                    } else {
                        PathBuf::from(format!("{}{rest}", home.display()))
                    };
                    self.file(ld, st, path);
                }
                Ok(())
            }
            TokenKind::Command(c) => {
                let c = c.to_owned();
                self.command(ld, st, c);
                Ok(())
            }
            TokenKind::Include(p) => {
                let p = PathBuf::from(p);
                self.include(ld, st, p, m)
            }
            TokenKind::Address => self.resolve(ld, st, addr, m),
        }
    }

    /// deliver_file(); load() refused file targets that would have default rights.
    fn file(&mut self, ld: &mut LocalDelivery, mut st: State, path: PathBuf) {
        st.level += 1;
        let Rights::User { uid, gid, .. } = st.rights else {
            return;
        };
        if ld.dup.insert(format!("file {uid} {}", path.display())) {
            let alias = st.user.clone();
            self.emit(
                st.sender,
                Target::File {
                    path,
                    uid,
                    gid,
                    alias,
                },
            );
        }
    }

    /// deliver_command(); load() refused commands that would have default rights.
    fn command(&mut self, ld: &mut LocalDelivery, mut st: State, command: String) {
        st.level += 1;
        let Rights::User { uid, gid, .. } = st.rights else {
            return;
        };
        if ld
            .dup
            .insert(format!("command {}:{uid} {command}", st.user))
        {
            let alias = st.user.clone();
            self.emit(
                st.sender,
                Target::Command {
                    command,
                    uid,
                    gid,
                    alias,
                },
            );
        }
    }

    /// deliver_include().
    fn include(
        &mut self,
        ld: &mut LocalDelivery,
        mut st: State,
        path: PathBuf,
        m: &Message,
    ) -> Result<(), ExpandError> {
        st.level += 1;
        if st.level > LEVEL_LIMIT {
            self.fail(ExpandError::NestingLimit { address: st.rcpt });
            return Ok(());
        }
        if !ld
            .dup
            .insert(format!("include {} {}", st.rights.uid(), path.display()))
        {
            return Ok(());
        }
        st.exp_from = Some(st.local.clone());
        let a = self.a;
        let body = match a.includes.get(&path).map(|i| &i.body) {
            Some(Ok(body)) => body,
            Some(Err(why)) => {
                self.fail(ExpandError::BadInclude {
                    path,
                    reason: why.clone(),
                });
                return Ok(());
            }
            None => {
                self.fail(ExpandError::BadInclude {
                    path,
                    reason: "not loaded".into(),
                });
                return Ok(());
            }
        };
        st.exp_type = ExpType::Include;
        if let Rights::Default = st.rights {
            match &body.owner {
                Owner::Root => {}
                Owner::User { uid, gid, home } => {
                    st.rights = Rights::User {
                        uid: *uid,
                        gid: *gid,
                        home: home.clone(),
                    }
                }
                Owner::Unknown { .. } => {
                    return Err(ExpandError::UnknownOwner {
                        alias: st.user.clone(),
                        file: path,
                    })
                }
            }
        }
        if st.owner.is_none() {
            st.owner = Some(st.rcpt.clone());
        }
        // EXT_PROP_INCLUDE is not in Postfix's default propagate_unmatched_extensions.
        st.unmatched = None;
        for line in &body.lines {
            for addr in line {
                self.token(ld, st.clone(), addr, m)?;
            }
        }
        Ok(())
    }

    /// deliver_resolve_tree(): canonicalize, add the unmatched extension, then local delivery
    /// for local domains and forwarding for the rest.
    fn resolve(
        &mut self,
        ld: &mut LocalDelivery,
        mut st: State,
        addr: &[Tok],
        m: &Message,
    ) -> Result<(), ExpandError> {
        st.level += 1;
        let s = &self.a.settings;
        let mut toks = addr.to_vec();
        tok822::rewrite(&mut toks, &s.myorigin);
        let mut rcpt = tok822::internalize(&toks);
        if rcpt.is_empty() {
            rcpt = format!("MAILER-DAEMON@{}", s.myorigin);
        } else if !rcpt.contains('@') {
            rcpt = format!("{rcpt}@{}", s.myorigin);
        }
        if let (Some(u), Some(d)) = (&st.unmatched, st.delim) {
            rcpt = virtual_table::add_extension(&rcpt, &format!("{d}{u}"));
        }
        let local = domain_of(&rcpt).is_some_and(|d| s.is_local_domain(d));
        st.rcpt = rcpt;
        if local {
            self.recipient(ld, st, m)
        } else {
            self.indirect(ld, &st)
        }
    }

    /// deliver_indirect(): forward (resubmit through cleanup), once per address.
    fn indirect(&mut self, ld: &mut LocalDelivery, st: &State) -> Result<(), ExpandError> {
        if !ld.dup.insert(format!("indirect {}", fold(&st.rcpt))) {
            return Ok(());
        }
        let delivered = st.delivered.clone().unwrap_or_else(|| st.rcpt.clone());
        let group = ld
            .forwards
            .iter_mut()
            .find(|(d, s, _)| fold(d) == fold(&delivered) && *s == st.sender);
        match group {
            Some((_, _, rcpts)) => rcpts.push(st.rcpt.clone()),
            None => ld
                .forwards
                .push((delivered, st.sender.clone(), vec![st.rcpt.clone()])),
        }
        Ok(())
    }
}
