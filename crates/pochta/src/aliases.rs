//! `pochta aliases [-c mta.toml] [-1] ADDRESS…`: what pochta-mta's alias tables make of an
//! address — the final recipients with the sender an `owner-` list gives them, the branches
//! that would bounce (loops), or "no alias" — like Postfix's `postmap -q` / `postalias -q`
//! (`-1`: one lookup level, the first table that matches) and `sendmail -bv`. Reads the
//! `[smtpd]` and `[aliases]` tables of the mta's config and the tables they name, with the
//! mta's own rules (pochta-aliases); never the userdb, so "no alias" says nothing about
//! whether a mailbox exists (`pochta user ADDRESS` does).

use clap::Args;
use pochta_aliases::{Aliases, TableConfig, Target};
use serde::Deserialize;
use std::path::PathBuf;
use std::process::ExitCode;

const EX_CONFIG: u8 = 78;
const EX_TEMPFAIL: u8 = 75;

#[derive(Args)]
pub(crate) struct AliasesArgs {
    /// The mta's config file.
    #[arg(short = 'c', long = "config", default_value = "/etc/pochta/mta.toml")]
    config: PathBuf,
    /// One level only: the first table entry that matches (postmap -q / postalias -q).
    #[arg(short = '1', long = "one")]
    one: bool,
    /// Addresses (`user@domain`, or a bare name: it gets myorigin).
    #[arg(required = true)]
    addresses: Vec<String>,
}

/// The parts of mta.toml the expansion depends on; the rest is the mta's.
#[derive(Deserialize, Default)]
struct MtaView {
    #[serde(default)]
    smtpd: SmtpdView,
    #[serde(default)]
    aliases: TableConfig,
}

#[derive(Deserialize)]
struct SmtpdView {
    hostname: Option<String>,
    myorigin: Option<String>,
    #[serde(default)]
    local_domains: Vec<String>,
    #[serde(default = "default_delimiter")]
    recipient_delimiter: String,
}

impl Default for SmtpdView {
    fn default() -> Self {
        SmtpdView {
            hostname: None,
            myorigin: None,
            local_domains: Vec::new(),
            recipient_delimiter: default_delimiter(),
        }
    }
}

fn default_delimiter() -> String {
    "+".into()
}

pub(crate) fn run(args: AliasesArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("pochta aliases: {}: {e}", args.config.display());
            return ExitCode::from(EX_CONFIG);
        }
    };
    let view: MtaView = match toml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("pochta aliases: {}: {e}", args.config.display());
            return ExitCode::from(EX_CONFIG);
        }
    };
    let s = &view.smtpd;
    let hostname = s.hostname.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    });
    let origin = pochta_aliases::myorigin(s.myorigin.as_deref(), &s.local_domains, &hostname);
    let settings = view
        .aliases
        .settings(&origin, &hostname, &s.recipient_delimiter);
    let aliases = match Aliases::load(settings) {
        Ok(a) => a,
        Err(errors) => {
            for e in errors {
                eprintln!("pochta aliases: {e}");
            }
            return ExitCode::from(EX_CONFIG);
        }
    };
    let mut status = ExitCode::SUCCESS;
    for address in &args.addresses {
        if args.one {
            match aliases.lookup_one(address) {
                Some(v) => println!("{address}: {}", v.join(", ")),
                None => println!("{address}: no alias"),
            }
            continue;
        }
        match aliases.expand(address) {
            Err(e) => {
                println!("{address}: deferred: {e}");
                status = ExitCode::from(EX_TEMPFAIL);
            }
            Ok(x) => {
                let finals: Vec<String> = x
                    .targets
                    .iter()
                    .map(|(sender, t)| {
                        let t = match t {
                            Target::Address(a) => a.clone(),
                            Target::Command { command, .. } => format!("\"|{command}\""),
                            Target::File { path, .. } => path.display().to_string(),
                        };
                        match sender {
                            Some(s) => format!("{t} (sender {s})"),
                            None => t,
                        }
                    })
                    .collect();
                let same = matches!(x.targets.as_slice(),
                    [(None, Target::Address(a))] if pochta_aliases::same_address(a, &qualified(address, &origin)));
                if same && x.failures.is_empty() {
                    println!("{address}: no alias");
                } else {
                    println!("{address} -> {}", finals.join(", "));
                }
                for f in &x.failures {
                    println!("{address}: bounced branch: {f}");
                }
            }
        }
    }
    status
}

/// A bare name as the tables see it.
fn qualified(address: &str, myorigin: &str) -> String {
    if address.contains('@') {
        let (l, d) = address.rsplit_once('@').unwrap_or((address, ""));
        format!("{l}@{}", pochta_aliases::domain_key(d))
    } else {
        format!("{address}@{myorigin}")
    }
}
