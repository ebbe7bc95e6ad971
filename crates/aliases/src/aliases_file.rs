//! aliases(5) files and the `:include:` files they name, parsed the way postalias(1) and
//! local(8) parse them.

use crate::table_file::{self, error, LogicalLine, Owner};
use crate::tok822::{self, Tok};
use crate::{Settings, TableError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Most `:include:` files loaded for one set of tables.
pub(crate) const MAX_INCLUDE_FILES: usize = 1000;
/// local(8) reads `:include:` files in pieces of `line_length_limit` (2048) bytes.
const INCLUDE_LINE_LIMIT: usize = 2048;

/// One alias: its value's addresses (tok822-parsed) and where it was written.
pub(crate) struct Alias {
    pub(crate) line: usize,
    pub(crate) addresses: Vec<Vec<Tok>>,
}

pub(crate) struct AliasFile {
    pub(crate) path: PathBuf,
    pub(crate) owner: Owner,
    /// Keys as postalias stores them: external (quoted) form, folded to lower case.
    pub(crate) entries: HashMap<String, Alias>,
    /// Keys in file order, for the audit.
    pub(crate) keys: Vec<String>,
}

/// What a value token is, by local(8)'s deliver_token().
pub(crate) enum TokenKind<'a> {
    File(&'a str),
    Home(&'a str),
    Command(&'a str),
    Include(&'a str),
    Address,
}

pub(crate) fn classify(token: &str) -> TokenKind<'_> {
    const INCLUDE: &str = ":include:";
    if token.starts_with('/') {
        TokenKind::File(token)
    } else if token.starts_with('~') {
        TokenKind::Home(token)
    } else if let Some(cmd) = token.strip_prefix('|') {
        TokenKind::Command(cmd)
    } else if token.len() >= INCLUDE.len()
        && token.is_char_boundary(INCLUDE.len())
        && token[..INCLUDE.len()].eq_ignore_ascii_case(INCLUDE)
    {
        TokenKind::Include(&token[INCLUDE.len()..])
    } else {
        TokenKind::Address
    }
}

impl AliasFile {
    pub(crate) fn get(&self, key: &str) -> Option<&Alias> {
        self.entries.get(&key.to_lowercase())
    }

    /// local(8)'s get_alias(): the quoted form of the local part first, then the name as is.
    pub(crate) fn lookup(&self, name: &str) -> Option<&Alias> {
        let quoted = tok822::quote_local(name, true);
        self.get(&quoted)
            .or_else(|| if quoted != name { self.get(name) } else { None })
    }
}

/// Where a value list came from: the checks differ (local(8)'s expansion types).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Aliases,
    Include,
}

/// Checks the targets of one value list; returns the `:include:` paths it names.
fn check_targets(
    settings: &Settings,
    path: &Path,
    line: usize,
    owner: &Owner,
    source: Source,
    addresses: &[Vec<Tok>],
    errors: &mut Vec<TableError>,
) -> Vec<PathBuf> {
    let mut includes = Vec::new();
    for a in addresses {
        let token = tok822::internalize(a);
        let (what, allowed, setting) = match classify(&token) {
            TokenKind::Command(_) => (
                "commands",
                settings.allow_mail_to_commands,
                "allow_mail_to_commands",
            ),
            TokenKind::File(_) => ("files", settings.allow_mail_to_files, "allow_mail_to_files"),
            TokenKind::Home(t) => {
                if !t.starts_with("~/") {
                    errors.push(error(
                        path,
                        line,
                        format!("bad home directory syntax for {t}: only ~/path is allowed"),
                    ));
                    continue;
                }
                ("files", settings.allow_mail_to_files, "allow_mail_to_files")
            }
            TokenKind::Include(p) => {
                if p.starts_with('/') {
                    includes.push(PathBuf::from(p));
                } else {
                    errors.push(error(
                        path,
                        line,
                        format!(":include:{p} uses a relative path"),
                    ));
                }
                continue;
            }
            TokenKind::Address => continue,
        };
        if source == Source::Include {
            // Postfix's allow_mail_to_commands/files default to "alias, forward": the
            // "include" class is off, so local(8) would bounce these with 5.7.1.
            errors.push(error(
                path,
                line,
                format!("mail to {what} is restricted in :include: files"),
            ));
        } else if !allowed {
            errors.push(error(
                path,
                line,
                format!("mail to {what} is not enabled: set {setting}"),
            ));
        } else if *owner == Owner::Root {
            // Postfix would run these with default_privs; pochta refuses instead of
            // guessing an account.
            errors.push(error(
                path,
                line,
                "pipe/file targets in a root-owned file would run as root: refused",
            ));
        }
    }
    includes
}

/// Parses one aliases(5) file (postalias's rules). Lines postalias skips with a warning are
/// skipped with a warning here too. Returns the `:include:` paths named in it.
pub(crate) fn parse(
    settings: &Settings,
    path: &Path,
    warnings: &mut Vec<TableError>,
    errors: &mut Vec<TableError>,
) -> (Option<AliasFile>, Vec<PathBuf>) {
    let text = match table_file::read(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return (None, Vec::new());
        }
    };
    let owner = Owner::of_uid(text.uid);
    if let Owner::Unknown { uid } = owner {
        warnings.push(error(
            path,
            0,
            format!("no passwd entry for owner uid {uid}: its aliases will defer (Postfix)"),
        ));
    }
    let mut file = AliasFile {
        path: path.to_owned(),
        owner,
        entries: HashMap::new(),
        keys: Vec::new(),
    };
    let mut includes = Vec::new();
    for LogicalLine { line, text } in table_file::logical_lines(path, &text.bytes, warnings, errors)
    {
        let toks = tok822::scan(&text);
        if toks.is_empty() {
            continue;
        }
        let colon = toks.iter().position(|t| *t == Tok::Op(':'));
        let colon = match colon {
            Some(c) if c > 0 && c + 1 < toks.len() && !toks[..c].contains(&Tok::Op(',')) => c,
            _ => {
                warnings.push(error(path, line, "need name:value pair: ignored"));
                continue;
            }
        };
        if toks[..colon]
            .iter()
            .any(|t| *t == Tok::Op('@') || *t == Tok::Op('%'))
        {
            warnings.push(error(
                path,
                line,
                "name must be local and have no domain: ignored",
            ));
            continue;
        }
        let key = tok822::externalize(&toks[..colon]).to_lowercase();
        let addresses = tok822::parse_addresses(&toks[colon + 1..]);
        if addresses.is_empty() {
            warnings.push(error(
                path,
                line,
                format!("no recipient in the value of {key}: mail to it will defer (Postfix)"),
            ));
        }
        includes.extend(check_targets(
            settings,
            path,
            line,
            &file.owner,
            Source::Aliases,
            &addresses,
            errors,
        ));
        if file.entries.contains_key(&key) {
            warnings.push(error(
                path,
                line,
                format!("duplicate entry {key}: the first one is used"),
            ));
            continue;
        }
        file.keys.push(key.clone());
        file.entries.insert(key, Alias { line, addresses });
    }
    (Some(file), includes)
}

/// An `:include:` file: one value list per physical line (local(8)'s deliver_token_stream).
pub(crate) struct IncludeFile {
    /// `Err`: why local(8) would bounce it (missing, not a regular file, world-writable).
    pub(crate) body: Result<IncludeBody, String>,
}

pub(crate) struct IncludeBody {
    pub(crate) owner: Owner,
    pub(crate) lines: Vec<Vec<Vec<Tok>>>,
}

/// Loads `:include:` files named by `pending` and by the files they include in turn.
pub(crate) fn load_includes(
    settings: &Settings,
    mut pending: Vec<PathBuf>,
    warnings: &mut Vec<TableError>,
    errors: &mut Vec<TableError>,
) -> HashMap<PathBuf, IncludeFile> {
    let mut files: HashMap<PathBuf, IncludeFile> = HashMap::new();
    while let Some(path) = pending.pop() {
        if files.contains_key(&path) {
            continue;
        }
        if files.len() >= MAX_INCLUDE_FILES {
            errors.push(error(
                &path,
                0,
                format!("more than {MAX_INCLUDE_FILES} :include: files"),
            ));
            break;
        }
        let body = match table_file::read(&path) {
            Err(e) if e.message.starts_with("file is larger") => {
                errors.push(e);
                Err("file too large".to_owned())
            }
            Err(e) => Err(e.message),
            Ok(t) if t.mode & 0o002 != 0 => Err("file is world writable".to_owned()),
            Ok(t) => {
                let owner = Owner::of_uid(t.uid);
                let mut lines = Vec::new();
                let mut lineno = 0;
                for physical in t.bytes.split(|&b| b == b'\n') {
                    lineno += 1;
                    for piece in physical.chunks(INCLUDE_LINE_LIMIT) {
                        if piece.first() == Some(&b'#') {
                            continue;
                        }
                        let text = String::from_utf8_lossy(piece);
                        let text = text.split('\0').next().unwrap_or("");
                        let addresses = tok822::parse_addresses(&tok822::scan(text));
                        pending.extend(check_targets(
                            settings,
                            &path,
                            lineno,
                            &owner,
                            Source::Include,
                            &addresses,
                            errors,
                        ));
                        if !addresses.is_empty() {
                            lines.push(addresses);
                        }
                    }
                }
                Ok(IncludeBody { owner, lines })
            }
        };
        if let Err(why) = &body {
            warnings.push(error(
                &path,
                0,
                format!(":include: file unusable ({why}): mail to it will bounce (Postfix)"),
            ));
        }
        files.insert(path, IncludeFile { body });
    }
    files
}
