//! virtual(5) tables: postmap-format text tables and regexp tables, and one address lookup
//! the way cleanup(8) does it (global/mail_addr_find.c, mail_addr_map.c, mail_addr_crunch.c).

use crate::regexp_table::RegexpTable;
use crate::table_file::{self, error, LogicalLine};
use crate::tok822;
use crate::{Settings, TableError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A postmap(1)-format table read as text (Postfix's texthash, or the source of a hash file).
pub(crate) struct TextTable {
    pub(crate) path: PathBuf,
    /// Key folded to lower case (DICT_FLAG_FOLD_FIX) → (line, value).
    pub(crate) entries: HashMap<String, (usize, String)>,
    /// Keys in file order, as written, for the audit.
    pub(crate) keys: Vec<(usize, String)>,
}

pub(crate) enum Table {
    Text(TextTable),
    Regexp(RegexpTable),
}

impl Table {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Table::Text(t) => &t.path,
            Table::Regexp(r) => &r.path,
        }
    }

    /// One dict_get(). Text tables fold the key; regexp tables see it as is.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        match self {
            Table::Text(t) => t.entries.get(&key.to_lowercase()).map(|(_, v)| v.clone()),
            Table::Regexp(r) => r.lookup(key),
        }
    }
}

/// Opens one `virtual_alias_maps` entry: `PATH` or `texthash:PATH` (also `hash:`, `btree:`,
/// `lmdb:`, `cdb:`, `dbm:`, `sdbm:`: their postmap source text at PATH), `regexp:PATH`,
/// `pcre:PATH`.
pub(crate) fn open(
    spec: &str,
    warnings: &mut Vec<TableError>,
    errors: &mut Vec<TableError>,
) -> Option<Table> {
    let (kind, path) = match spec.split_once(':') {
        Some((k, p)) if !spec.starts_with('/') => (k, p),
        _ => ("texthash", spec),
    };
    let path = Path::new(path);
    match kind {
        "texthash" | "hash" | "btree" | "lmdb" | "cdb" | "dbm" | "sdbm" => {
            parse_text(path, warnings, errors).map(Table::Text)
        }
        "regexp" => RegexpTable::load(path, false, warnings, errors).map(Table::Regexp),
        "pcre" => RegexpTable::load(path, true, warnings, errors).map(Table::Regexp),
        _ => {
            errors.push(error(
                path,
                0,
                format!("unsupported table type {kind}: use texthash:, regexp: or pcre:"),
            ));
            None
        }
    }
}

/// postmap's parser: the key ends at the first unquoted white space (`\` escapes), the value
/// is the rest, trimmed. Postfix skips bad lines with a warning; so do we.
fn parse_text(
    path: &Path,
    warnings: &mut Vec<TableError>,
    errors: &mut Vec<TableError>,
) -> Option<TextTable> {
    let text = match table_file::read(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let mut table = TextTable {
        path: path.to_owned(),
        entries: HashMap::new(),
        keys: Vec::new(),
    };
    for LogicalLine { line, text } in table_file::logical_lines(path, &text.bytes, warnings, errors)
    {
        let bytes = text.as_bytes();
        let mut in_quotes = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    i += 1;
                    if i >= bytes.len() {
                        break;
                    }
                }
                b'"' => in_quotes = !in_quotes,
                b if b.is_ascii_whitespace() && !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        if in_quotes {
            warnings.push(error(path, line, "unbalanced '\"': ignoring this line"));
            continue;
        }
        let key = &text[..i.min(text.len())];
        let value = text[i.min(text.len())..].trim_matches(|c: char| c.is_ascii_whitespace());
        if key.is_empty() || value.is_empty() {
            warnings.push(error(
                path,
                line,
                "expected format: key whitespace value: ignoring this line",
            ));
            continue;
        }
        if key.ends_with(':') {
            warnings.push(error(
                path,
                line,
                "record is in \"key: value\" format; is this an alias file?",
            ));
        }
        let folded = key.to_lowercase();
        if table.entries.contains_key(&folded) {
            warnings.push(error(
                path,
                line,
                format!("duplicate entry {key}: the first one is used"),
            ));
            continue;
        }
        table.keys.push((line, key.to_owned()));
        table.entries.insert(folded, (line, value.to_owned()));
    }
    Some(table)
}

/// A lookup that Postfix treats as a table failure (the mail is deferred).
#[derive(Debug)]
pub(crate) struct LookupFailure(pub(crate) String);

/// maps_find(): the first table with a result. `partial` keys skip regexp tables (they are
/// searched with whole addresses only); an empty key finds nothing; an empty result is a
/// configuration error.
fn maps_find(tables: &[Table], key: &str, partial: bool) -> Result<Option<String>, LookupFailure> {
    if key.is_empty() {
        return Ok(None);
    }
    for t in tables {
        if partial && matches!(t, Table::Regexp(_)) {
            continue;
        }
        if let Some(v) = t.get(key) {
            if v.is_empty() {
                return Err(LookupFailure(format!(
                    "{}: lookup of {key} returns an empty string result",
                    t.path().display()
                )));
            }
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// split_addr(): the local part before the first delimiter and the extension (with its
/// delimiter). postmaster, MAILER-DAEMON and double-bounce are never split, nor owner-X and
/// X-request when `-` is a delimiter (owner_request_special); nor when the extension would
/// leave an empty local part.
pub(crate) fn split_local<'a>(local: &'a str, delims: &str) -> Option<(&'a str, &'a str)> {
    if delims.is_empty() {
        return None;
    }
    let lower = local.to_lowercase();
    if lower == "postmaster" || lower == "mailer-daemon" || lower == "double-bounce" {
        return None;
    }
    if delims.contains('-')
        && (lower.starts_with("owner-") || (lower.len() > 8 && lower.ends_with("-request")))
    {
        return None;
    }
    let at = local.find(|c| delims.contains(c))?;
    if at == 0 {
        return None;
    }
    Some((&local[..at], &local[at..]))
}

/// strip_addr_internal(): the address without its extension, and the extension.
pub(crate) fn strip_extension(addr: &str, delims: &str) -> Option<(String, String)> {
    let (local, domain) = match addr.rfind('@') {
        Some(at) => (&addr[..at], &addr[at..]),
        None => (addr, ""),
    };
    let (bare, ext) = split_local(local, delims)?;
    Some((format!("{bare}{domain}"), ext.to_owned()))
}

/// mail_addr_find() with cleanup's defaults (MA_FIND_DEFAULT, queries in external form):
/// `user+ext@domain`, `user@domain`, then `user+ext` and `user` when the domain is local, then
/// `@domain`. Returns the raw result and the extension that had to be removed to match.
fn find(
    tables: &[Table],
    settings: &Settings,
    addr: &str,
) -> Result<Option<(String, Option<String>)>, LookupFailure> {
    let delims = &settings.recipient_delimiter;
    let stripped = strip_extension(addr, delims);
    if let Some(r) = maps_find(tables, &tok822::quote_local(addr, false), false)? {
        return Ok(Some((r, None)));
    }
    if let Some((bare, ext)) = &stripped {
        if let Some(r) = maps_find(tables, &tok822::quote_local(bare, false), true)? {
            return Ok(Some((r, Some(ext.clone()))));
        }
    }
    let Some(at) = addr.rfind('@') else {
        return Ok(None);
    };
    if settings.is_local_domain(&addr[at + 1..]) {
        let local = &addr[..at];
        if let Some(r) = maps_find(tables, &tok822::quote_local(local, true), true)? {
            return Ok(Some((r, None)));
        }
        if let Some((bare, ext)) = &stripped {
            let bare_local = bare.rfind('@').map_or(bare.as_str(), |p| &bare[..p]);
            if let Some(r) = maps_find(tables, &tok822::quote_local(bare_local, true), true)? {
                return Ok(Some((r, Some(ext.clone()))));
            }
        }
    }
    Ok(maps_find(tables, &addr[at..], true)?.map(|r| (r, None)))
}

/// Inserts an extension before the last `@` (or appends it).
pub(crate) fn add_extension(addr: &str, ext: &str) -> String {
    match addr.rfind('@') {
        Some(at) => format!("{}{ext}{}", &addr[..at], &addr[at..]),
        None => format!("{addr}{ext}"),
    }
}

/// mail_addr_crunch(): split a result into addresses, canonicalize each (myorigin for bare
/// names), convert to internal form, add the extension.
pub(crate) fn crunch(result: &str, ext: Option<&str>, myorigin: &str) -> Vec<String> {
    let text = if result.is_empty() || result == "<>" {
        "\"\""
    } else {
        result
    };
    tok822::parse_addresses(&tok822::scan(text))
        .into_iter()
        .map(|mut a| {
            tok822::rewrite(&mut a, myorigin);
            let internal = tok822::internalize(&a);
            match ext {
                Some(e) => add_extension(&internal, e),
                None => internal,
            }
        })
        .collect()
}

/// mail_addr_map_internal(): one level of virtual aliasing for an internal-form address.
/// `@otherdomain` results keep the user; with `propagate`, an extension removed to match is
/// added to every result.
pub(crate) fn map(
    tables: &[Table],
    settings: &Settings,
    addr: &str,
) -> Result<Option<Vec<String>>, LookupFailure> {
    let Some((mut result, ext)) = find(tables, settings, addr)? else {
        return Ok(None);
    };
    if result.starts_with('@') {
        let mut user = addr.rfind('@').map_or(addr, |at| &addr[..at]).to_owned();
        if let Some(e) = &ext {
            user.truncate(user.len().saturating_sub(e.len()));
        }
        result = tok822::quote_local(&format!("{user}{result}"), false);
    }
    let ext = ext.filter(|_| settings.propagate_unmatched_extensions);
    let list = crunch(&result, ext.as_deref(), &settings.myorigin);
    if list.is_empty() {
        return Err(LookupFailure(format!(
            "lookup of {addr} returns non-address result \"{result}\""
        )));
    }
    Ok(Some(list))
}
