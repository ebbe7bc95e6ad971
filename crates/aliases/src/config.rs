//! The `[aliases]` table of mta.toml and the rules that turn it into [`Settings`], shared by
//! pochta-mta and the admin tool (`pochta aliases`), so both expand an address the same way.

use crate::Settings;
use serde::Deserialize;
use std::path::PathBuf;

/// `[aliases]`: Postfix's alias_maps and virtual_alias_maps with their limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TableConfig {
    /// aliases(5) files (`name: target, target…`), e.g. `/etc/pochta/aliases`. They apply to
    /// bare names and to addresses in `alias_domains`.
    pub alias_maps: Vec<PathBuf>,
    /// virtual(5) tables for every address: `PATH` (or `texthash:PATH`) for
    /// `user@domain targets…` / `@domain target` / `user target` (myorigin and the alias
    /// domains) lines, `regexp:PATH` (or `pcre:PATH`) for regexp_table(5) patterns. A line
    /// `domain.example anything` makes a virtual alias domain: its addresses without an entry
    /// are refused.
    pub virtual_alias_maps: Vec<String>,
    /// Domains where aliases(5) apply (Postfix mydestination). Default: myorigin, the host
    /// name and `localhost`.
    pub alias_domains: Option<Vec<String>>,
    /// `|command` targets in aliases(5) (Postfix allow_mail_to_commands). Off: such a line
    /// is a config error.
    pub allow_mail_to_commands: bool,
    /// `/file` targets in aliases(5) (Postfix allow_mail_to_files). Off: a config error.
    pub allow_mail_to_files: bool,
    /// Most final recipients one address may expand to (Postfix
    /// virtual_alias_expansion_limit).
    pub expansion_limit: usize,
    /// Deepest nesting of aliases (Postfix virtual_alias_recursion_limit).
    pub recursion_limit: usize,
    /// `alice+news@` matched by an entry for `alice@` keeps `+news` in its targets (Postfix
    /// propagate_unmatched_extensions).
    pub propagate_unmatched_extensions: bool,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            alias_maps: Vec::new(),
            virtual_alias_maps: Vec::new(),
            alias_domains: None,
            allow_mail_to_commands: false,
            allow_mail_to_files: false,
            expansion_limit: 1000,
            recursion_limit: 1000,
            propagate_unmatched_extensions: true,
        }
    }
}

/// `example.org.` → `example.org`, lower-case.
pub fn domain_key(d: &str) -> String {
    d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase()
}

/// The same address whatever the case, non-ASCII letters included: expansion folds case with
/// Unicode rules (`a@PÖCHTA.test` comes back as `a@pöchta.test`), and that is no alias.
pub fn same_address(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// The domain bare names get (Postfix myorigin): the configured one, else the first local
/// domain, else the host name; lower-case.
pub fn myorigin(explicit: Option<&str>, local_domains: &[String], hostname: &str) -> String {
    domain_key(
        explicit
            .or(local_domains.first().map(String::as_str))
            .unwrap_or(hostname),
    )
}

impl TableConfig {
    /// The expansion settings for an mta with this `myorigin`, host name and
    /// recipient_delimiter.
    pub fn settings(&self, myorigin: &str, hostname: &str, delimiter: &str) -> Settings {
        let alias_domains = match &self.alias_domains {
            Some(d) => d.iter().map(|d| domain_key(d)).collect(),
            None => vec![
                domain_key(myorigin),
                domain_key(hostname),
                "localhost".to_owned(),
            ],
        };
        Settings {
            alias_maps: self.alias_maps.clone(),
            virtual_alias_maps: self.virtual_alias_maps.clone(),
            myorigin: domain_key(myorigin),
            alias_domains,
            recipient_delimiter: delimiter.to_owned(),
            propagate_unmatched_extensions: self.propagate_unmatched_extensions,
            allow_mail_to_commands: self.allow_mail_to_commands,
            allow_mail_to_files: self.allow_mail_to_files,
            expansion_limit: self.expansion_limit,
            recursion_limit: self.recursion_limit,
        }
    }
}
