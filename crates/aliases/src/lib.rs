//! Postfix's address expansion as a library: aliases(5) files, virtual(5) tables,
//! regexp_table(5)/pcre_table(5) tables, and the recursive expansion that cleanup(8) (virtual
//! aliases) and local(8) (aliases, `:include:`, `owner-` lists) do between them. The mta asks
//! it at RCPT time what an address becomes, and its queue asks it for the recipients of
//! bounces and notices.
//!
//! Trust: the tables are the administrator's and are believed; they are read once, as the
//! daemon's user, by [`Aliases::load`] (so are the `:include:` files they name — Postfix opens
//! those at delivery time with the delivery rights). Addresses come from clients and are
//! never trusted: every expansion is bounded and nothing panics on any input.
//!
//! What it follows (Postfix 3.x behaviour, read from its sources and manuals):
//! - virtual(5) lookups in mail_addr_find() order: `user+ext@domain`, `user@domain`, then the
//!   bare `user+ext` and `user` when the domain is myorigin or an alias domain, then
//!   `@domain`; each form is tried in every table before the next form, and only the full
//!   address is given to regexp tables. An extension removed to find a match is added to the
//!   results (propagate_unmatched_extensions, "virtual" class). `@otherdomain` results keep
//!   the user. Results are split like an RFC 822 address list, bare names get `@myorigin`.
//! - cleanup_map1n(): results are expanded again, an address that maps to itself stays,
//!   virtual_alias_recursion_limit bounds the depth of one address's chain and
//!   virtual_alias_expansion_limit the number of addresses; either error defers the address.
//! - local(8) for addresses in myorigin and the alias domains: aliases(5) lookup of the full
//!   local part then of the part before the delimiter (no extension propagation: Postfix's
//!   default propagate_unmatched_extensions has no "alias"), an alias naming itself delivers
//!   to the mailbox, `owner-NAME` takes over the envelope sender and makes local targets go
//!   round again through the virtual tables, `:include:` targets always go round, remote
//!   targets go round, loops end at local(8)'s nesting limit of 100 or at its Delivered-To
//!   check ("mail forwarding loop"), duplicates are dropped as local(8)'s filter drops them.
//! - Tables: postmap's `key value` format and postalias's `name: value` format, with
//!   readllines()' comments and continuation lines; tok822's tokenizer for values.
//!
//! Where pochta differs on purpose (each is documented where it happens): `|command` and
//! `/file` targets that Postfix would refuse or bounce at delivery time are load errors, and
//! so are such targets in root-owned files (Postfix would run them as default_privs);
//! `:include:` files are read at load; domains of the input address are lower-cased; the
//! final list is deduplicated across all the messages Postfix would have made; there are no
//! `.forward` files.

mod aliases_file;
mod config;
mod expand;
mod regexp_table;
mod table_file;
mod tok822;
mod virtual_table;

use aliases_file::{AliasFile, IncludeFile};
pub use config::{domain_key, myorigin, same_address, TableConfig};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use virtual_table::Table;

/// What to expand with. Defaults are Postfix's (with myorigin and mydestination `localhost`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// aliases(5) files, searched in order (alias_maps).
    pub alias_maps: Vec<PathBuf>,
    /// virtual(5) tables in order: `PATH` or `texthash:PATH` for a postmap-format text table
    /// (`hash:PATH` and the other indexed types read their source text at PATH),
    /// `regexp:PATH` or `pcre:PATH` for regexp_table(5) / pcre_table(5).
    pub virtual_alias_maps: Vec<String>,
    /// Domain appended to bare names (lower-case).
    pub myorigin: String,
    /// Domains where aliases(5) apply (Postfix's mydestination); lower-case.
    pub alias_domains: Vec<String>,
    /// Set of delimiter characters, "" = none (Postfix 3.x semantics).
    pub recipient_delimiter: String,
    /// propagate_unmatched_extensions for virtual(5) (Postfix default: on, "virtual" is in the
    /// default list). aliases(5) never propagate: "alias" is not in Postfix's default.
    pub propagate_unmatched_extensions: bool,
    /// `|command` targets in aliases(5) files (allow_mail_to_commands "alias").
    pub allow_mail_to_commands: bool,
    /// `/file` targets in aliases(5) files (allow_mail_to_files "alias").
    pub allow_mail_to_files: bool,
    /// virtual_alias_expansion_limit.
    pub expansion_limit: usize,
    /// virtual_alias_recursion_limit.
    pub recursion_limit: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            alias_maps: Vec::new(),
            virtual_alias_maps: Vec::new(),
            myorigin: "localhost".into(),
            alias_domains: vec!["localhost".into()],
            recipient_delimiter: String::new(),
            propagate_unmatched_extensions: true,
            allow_mail_to_commands: false,
            allow_mail_to_files: false,
            expansion_limit: 1000,
            recursion_limit: 1000,
        }
    }
}

impl Settings {
    /// myorigin or an alias domain (one trailing dot ignored, case-insensitive): where the bare
    /// `user` virtual(5) forms and aliases(5) apply.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.strip_suffix('.').unwrap_or(domain).to_lowercase();
        d == self.myorigin.to_lowercase()
            || self.alias_domains.iter().any(|a| a.to_lowercase() == d)
    }
}

/// One final destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// An address in internal (unquoted) form: a mailbox in myorigin or an alias domain that
    /// has no alias, or an address elsewhere.
    Address(String),
    /// `|command`: run as `uid`/`gid` (the owner of the aliases file that named it, from its
    /// passwd entry); `alias` is the local name being expanded (local(8)'s USER).
    Command {
        command: String,
        uid: u32,
        gid: u32,
        alias: String,
    },
    /// `/file` (or `~/file` in the aliases file owner's home): append as `uid`/`gid`.
    File {
        path: PathBuf,
        uid: u32,
        gid: u32,
        alias: String,
    },
}

/// The result of [`Aliases::expand`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    /// Final destinations, first-seen order, duplicates removed (addresses compared without
    /// case). Each comes with the envelope sender to use for it: `Some(owner-NAME@myorigin)`
    /// when an `owner-NAME` alias took over list NAME's errors (local(8)), `None` for the
    /// message's own sender.
    pub targets: Vec<(Option<String>, Target)>,
    /// Branches that Postfix's local(8) bounces while delivering the rest (alias loops,
    /// forwarding loops, unusable `:include:` files): all permanent; the caller bounces them.
    pub failures: Vec<ExpandError>,
}

/// A problem in a table, at `file:line` (line 0: the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for TableError {}

/// Why an address could not be expanded (or one branch of it, in [`Expansion::failures`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpandError {
    /// virtual_alias_recursion_limit reached (cleanup: "unreasonable virtual_alias_maps map
    /// nesting"); temporary.
    RecursionLimit { address: String },
    /// virtual_alias_expansion_limit reached, or the expansion as a whole grew past pochta's
    /// work bound; temporary.
    ExpansionLimit { address: String },
    /// A virtual result longer than virtual_alias_address_length_limit (1000); temporary.
    AddressTooLong { address: String },
    /// A table gave an empty or non-address result; temporary (Postfix defers).
    LookupFailed { address: String, reason: String },
    /// An alias whose value has no address in it; temporary (Postfix defers).
    NoRecipients { alias: String },
    /// The aliases or `:include:` file has no passwd entry for its owner; temporary.
    UnknownOwner { alias: String, file: PathBuf },
    /// local(8)'s alias nesting limit: "alias database loop"; permanent.
    AliasLoop { alias: String },
    /// local(8)'s recipient or `:include:` nesting limit; permanent.
    NestingLimit { address: String },
    /// The address already had this mail delivered on the way here (Delivered-To); permanent.
    ForwardingLoop { address: String },
    /// An `:include:` file local(8) cannot use (missing, not a regular file, world-writable);
    /// permanent ("mail system configuration error").
    BadInclude { path: PathBuf, reason: String },
    /// A local part that is empty once its extension is removed; permanent.
    NullUsername { address: String },
}

impl ExpandError {
    /// Whether Postfix bounces (true) or defers (false) for this.
    pub fn is_permanent(&self) -> bool {
        !self.status().starts_with('4')
    }

    /// The enhanced status code Postfix uses.
    pub fn status(&self) -> &'static str {
        match self {
            ExpandError::RecursionLimit { .. }
            | ExpandError::ExpansionLimit { .. }
            | ExpandError::AddressTooLong { .. }
            | ExpandError::LookupFailed { .. } => "4.6.0",
            ExpandError::NoRecipients { .. } | ExpandError::UnknownOwner { .. } => "4.3.0",
            ExpandError::AliasLoop { .. }
            | ExpandError::NestingLimit { .. }
            | ExpandError::ForwardingLoop { .. } => "5.4.6",
            ExpandError::BadInclude { .. } => "5.3.5",
            ExpandError::NullUsername { .. } => "5.1.3",
        }
    }
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::RecursionLimit { address } => write!(
                f,
                "alias expansion error: unreasonable virtual alias nesting for {address}"
            ),
            ExpandError::ExpansionLimit { address } => write!(
                f,
                "alias expansion error: unreasonable virtual alias expansion size for {address}"
            ),
            ExpandError::AddressTooLong { address } => write!(
                f,
                "alias expansion error: unreasonable virtual alias result for {address}"
            ),
            ExpandError::LookupFailed { address, reason } => {
                write!(f, "alias expansion error for {address}: {reason}")
            }
            ExpandError::NoRecipients { alias } => {
                write!(f, "no recipient in alias lookup result for {alias}")
            }
            ExpandError::UnknownOwner { alias, file } => write!(
                f,
                "cannot find the owner of {} (alias {alias})",
                file.display()
            ),
            ExpandError::AliasLoop { alias } => write!(f, "alias database loop for {alias}"),
            ExpandError::NestingLimit { address } => {
                write!(f, "recipient nesting limit exceeded for {address}")
            }
            ExpandError::ForwardingLoop { address } => {
                write!(f, "mail forwarding loop for {address}")
            }
            ExpandError::BadInclude { path, reason } => write!(
                f,
                "mail system configuration error: :include: {}: {reason}",
                path.display()
            ),
            ExpandError::NullUsername { address } => {
                write!(f, "null username in \"{address}\"")
            }
        }
    }
}

impl std::error::Error for ExpandError {}

/// The loaded tables; immutable, `Send + Sync`.
pub struct Aliases {
    settings: Settings,
    alias_files: Vec<AliasFile>,
    tables: Vec<Table>,
    includes: HashMap<PathBuf, IncludeFile>,
    /// Lines Postfix would skip with a warning (skipped here too).
    warnings: Vec<TableError>,
}

impl fmt::Debug for Aliases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aliases")
            .field("settings", &self.settings)
            .field("warnings", &self.warnings.len())
            .finish_non_exhaustive()
    }
}

impl Aliases {
    /// Reads every table and every `:include:` file they name. `Err` has every error found
    /// (a missing table, a regexp that does not compile, a target the settings refuse, …).
    pub fn load(settings: Settings) -> Result<Aliases, Vec<TableError>> {
        let mut warnings = Vec::new();
        let mut errors = Vec::new();
        let mut alias_files = Vec::new();
        let mut pending = Vec::new();
        for path in &settings.alias_maps {
            let (file, includes) = aliases_file::parse(&settings, path, &mut warnings, &mut errors);
            alias_files.extend(file);
            pending.extend(includes);
        }
        let includes = aliases_file::load_includes(&settings, pending, &mut warnings, &mut errors);
        let tables = settings
            .virtual_alias_maps
            .iter()
            .filter_map(|spec| virtual_table::open(spec, &mut warnings, &mut errors))
            .collect();
        if !errors.is_empty() {
            // The skipped lines too: a caller that refuses them sees every problem at once.
            errors.extend(warnings);
            return Err(errors);
        }
        Ok(Aliases {
            settings,
            alias_files,
            tables,
            includes,
            warnings,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Lines skipped at load with Postfix's warning (bad syntax, duplicates, …).
    pub fn warnings(&self) -> &[TableError] {
        &self.warnings
    }

    /// Everything `address` (`local@domain` or a bare name) expands to. `Err`: the address
    /// must be deferred (Postfix's 4.x: limits, table problems).
    pub fn expand(&self, address: &str) -> Result<Expansion, ExpandError> {
        expand::expand(self, address)
    }

    /// The newaliases-style audit: the load warnings, then every aliases(5) key and every
    /// `user@domain` virtual key expanded, reporting errors and bounced branches at the
    /// key's `file:line`.
    pub fn check(&self) -> Vec<TableError> {
        let mut out = self.warnings.clone();
        let mut report = |file: &std::path::Path, line: usize, name: &str, address: &str| {
            let problems = match self.expand(address) {
                Err(e) => vec![e],
                Ok(x) => x.failures,
            };
            for p in problems {
                out.push(TableError {
                    file: file.to_owned(),
                    line,
                    message: format!("{name}: {p}"),
                });
            }
        };
        for f in &self.alias_files {
            for key in &f.keys {
                if let Some(alias) = f.entries.get(key) {
                    let local = tok822::internalize(&tok822::scan(key));
                    let address = format!("{local}@{}", self.settings.myorigin);
                    report(&f.path, alias.line, key, &address);
                }
            }
        }
        for t in &self.tables {
            if let Table::Text(t) = t {
                for (line, key) in &t.keys {
                    if key.contains('@') && !key.starts_with('@') {
                        let address = tok822::internalize(&tok822::scan(key));
                        report(&t.path, *line, key, &address);
                    }
                }
            }
        }
        out
    }

    /// One level, like `postalias -q` / `postmap -q`: a name without `@` is looked up in the
    /// aliases(5) files first; then the key as given in each virtual table. The first table
    /// with an entry answers, its value split into addresses (internal form, not qualified).
    pub fn lookup_one(&self, address: &str) -> Option<Vec<String>> {
        let split = |value: &str| -> Vec<String> {
            tok822::parse_addresses(&tok822::scan(value))
                .iter()
                .map(|a| tok822::internalize(a))
                .collect()
        };
        if !address.contains('@') {
            let name = address.to_lowercase();
            for f in &self.alias_files {
                if let Some(a) = f.lookup(&name) {
                    return Some(a.addresses.iter().map(|t| tok822::internalize(t)).collect());
                }
            }
        }
        self.tables
            .iter()
            .find_map(|t| t.get(address))
            .map(|v| split(&v))
    }

    /// Whether `domain` is a virtual alias domain: Postfix's default virtual_alias_domains
    /// ($virtual_alias_maps) looks the domain up as a key (`example.com anything`), and in
    /// text tables also `.parent` keys for its parent domains.
    pub fn is_virtual_domain(&self, domain: &str) -> bool {
        let d = domain.strip_suffix('.').unwrap_or(domain).to_lowercase();
        if d.is_empty() {
            return false;
        }
        for t in &self.tables {
            if t.get(&d).is_some() {
                return true;
            }
            if let Table::Text(_) = t {
                let mut rest = d.as_str();
                loop {
                    let skip = rest.chars().next().map_or(0, char::len_utf8);
                    let Some(dot) = rest[skip..].find('.') else {
                        break;
                    };
                    rest = &rest[skip + dot..];
                    if t.get(rest).is_some() {
                        return true;
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
#[path = "tests_tables.rs"]
mod tests_tables;

#[cfg(test)]
#[path = "tests_expand.rs"]
mod tests_expand;
