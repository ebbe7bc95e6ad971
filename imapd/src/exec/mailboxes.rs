//! Mailbox-level commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE,
//! LIST (LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CHILDREN), LSUB, STATUS (incl. SIZE).

use super::selected::Selected;
use super::{bad, decode_mailbox, encode_mailbox, no, ok, Ctx, Done};
use pochta_imap_proto::{ListReturn, ListSelect, StatusItem};
use pochta_mailstore::names::mutf7_decode;
use pochta_mailstore::{MailboxName, SyncOptions, SystemFlag};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) fn select(ctx: &mut Ctx, raw: &[u8], read_only: bool, out: &mut Vec<u8>) -> Done {
    if ctx.selected.take().is_some() {
        out.extend_from_slice(b"* OK [CLOSED] Previous mailbox closed.\r\n");
    }
    let name = decode_mailbox(raw, ctx.utf8)?;
    let mailbox = ctx.store.maildir.mailbox(name.as_str())?;
    let sel = Selected::open(mailbox, name.as_str().to_string(), read_only, ctx.rev2, out)?;
    ctx.selected = Some(sel);
    if read_only {
        ok("[READ-ONLY] Examine completed.")
    } else {
        ok("[READ-WRITE] Select completed.")
    }
}

/// A trailing separator only says "will have children" (RFC 9051 §6.3.4).
fn strip_trailing_separator(raw: &[u8]) -> &[u8] {
    match raw.strip_suffix(b".") {
        Some(r) if !r.is_empty() => r,
        _ => raw,
    }
}

pub(crate) fn create(ctx: &mut Ctx, raw: &[u8], special_use: &[String]) -> Done {
    let name = decode_mailbox(strip_trailing_separator(raw), ctx.utf8)?;
    if name.is_inbox() {
        return Err(no("[ALREADYEXISTS] Mailbox already exists."));
    }
    for u in special_use {
        let configured = ctx.store.special_use(name.as_str());
        if !configured.is_some_and(|c| c.eq_ignore_ascii_case(u)) {
            return Err(no(
                "[USEATTR] Special-use attributes are set in the server's config.",
            ));
        }
    }
    ctx.store.maildir.create_mailbox(name.as_str())?;
    ok("Create completed.")
}

pub(crate) fn delete(ctx: &mut Ctx, raw: &[u8]) -> Done {
    let name = decode_mailbox(raw, ctx.utf8)?;
    if name.is_inbox() {
        return Err(no("[CANNOT] INBOX can't be deleted."));
    }
    if ctx
        .selected
        .as_ref()
        .is_some_and(|s| s.name == name.as_str())
    {
        ctx.selected = None;
    }
    ctx.store.maildir.delete_mailbox(name.as_str())?;
    ok("Delete completed.")
}

pub(crate) fn rename(ctx: &mut Ctx, from: &[u8], to: &[u8]) -> Done {
    let from = decode_mailbox(from, ctx.utf8)?;
    let to = decode_mailbox(strip_trailing_separator(to), ctx.utf8)?;
    if ctx.store.maildir.folder_exists(to.as_str()) || to.is_inbox() {
        return Err(no("[ALREADYEXISTS] Target mailbox already exists."));
    }
    ctx.store
        .maildir
        .rename_mailbox(from.as_str(), to.as_str())?;
    // the selected mailbox moved with its parent: follow it (same UIDs, the uidlist moved too)
    if let Some(sel) = ctx.selected.as_mut() {
        let (f, t) = (from.as_str(), to.as_str());
        let moved = if from.is_inbox() {
            None
        } else if sel.name == f {
            Some(t.to_string())
        } else {
            sel.name
                .strip_prefix(f)
                .filter(|rest| rest.starts_with('.'))
                .map(|rest| format!("{t}{rest}"))
        };
        if let Some(new) = moved {
            sel.mailbox = ctx.store.maildir.mailbox(&new)?;
            sel.name = new;
        }
    }
    ok("Rename completed.")
}

pub(crate) fn subscribe(ctx: &mut Ctx, raw: &[u8], on: bool) -> Done {
    let name = decode_mailbox(raw, ctx.utf8)?;
    if on {
        ctx.store.maildir.subscribe(name.as_str())?;
        ok("Subscribe completed.")
    } else {
        ctx.store.maildir.unsubscribe(name.as_str())?;
        ok("Unsubscribe completed.")
    }
}

/// `*` matches anything, `%` anything but the separator. Case-sensitive except INBOX.
/// Dynamic programming, O(pattern × name): no backtracking blow-up on `*%*%…`.
fn matches(pattern: &[char], name: &[char]) -> bool {
    let (p, n) = (pattern.len(), name.len());
    // row[j]: pattern[i..] matches name[j..], computed from i = p down to 0
    let mut row = vec![false; n + 1];
    row[n] = true;
    for i in (0..p).rev() {
        let mut next = vec![false; n + 1];
        for j in (0..=n).rev() {
            next[j] = match pattern[i] {
                '*' => row[j] || (j < n && next[j + 1]),
                '%' => row[j] || (j < n && name[j] != '.' && next[j + 1]),
                c => j < n && name[j] == c && row[j + 1],
            };
        }
        row = next;
    }
    row[0]
}

/// Matcher for one LIST pattern; wildcards are limited so matching stays cheap.
struct Pattern(Vec<char>);

impl Pattern {
    fn new(reference: &str, pattern: &str) -> Result<Pattern, super::Reply> {
        let mut full = format!("{reference}{pattern}");
        // INBOX is case-insensitive, also as the first level of a pattern
        if full.len() >= 5
            && full.is_char_boundary(5)
            && full[..5].eq_ignore_ascii_case("INBOX")
            && (full.len() == 5 || full[5..].starts_with('.'))
        {
            full.replace_range(..5, "INBOX");
        }
        let chars: Vec<char> = full.chars().collect();
        if chars.iter().filter(|c| **c == '*' || **c == '%').count() > 10 {
            return Err(bad("Too many wildcards in the pattern."));
        }
        Ok(Pattern(chars))
    }
    fn matches(&self, name: &str) -> bool {
        let n: Vec<char> = name.chars().collect();
        matches(&self.0, &n)
    }
}

fn wire_text(raw: &[u8], utf8: bool) -> Result<String, super::Reply> {
    let s = std::str::from_utf8(raw).map_err(|_| bad("Invalid pattern."))?;
    if utf8 {
        Ok(s.to_string())
    } else {
        mutf7_decode(s).ok_or_else(|| bad("Invalid modified UTF-7 in the pattern."))
    }
}

#[derive(Default)]
struct Entry {
    exists: bool,
    subscribed: bool,
    has_children: bool,
    /// A child is subscribed (RECURSIVEMATCH's CHILDINFO).
    child_subscribed: bool,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn list(
    ctx: &mut Ctx,
    reference: &[u8],
    patterns: &[Vec<u8>],
    select: ListSelect,
    ret: &ListReturn,
    extended: bool,
    out: &mut Vec<u8>,
) -> Done {
    let utf8 = ctx.utf8;
    let reference = wire_text(reference, utf8)?;
    if patterns.len() == 1 && patterns[0].is_empty() {
        out.extend_from_slice(b"* LIST (\\Noselect) \".\" \"\"\r\n");
        return ok("List completed.");
    }
    let pats: Vec<Pattern> = patterns
        .iter()
        .map(|p| wire_text(p, utf8).and_then(|p| Pattern::new(&reference, &p)))
        .collect::<Result<_, _>>()?;
    let maildir = &ctx.store.maildir;
    let mut all: BTreeMap<String, Entry> = BTreeMap::new();
    for n in maildir.list_mailboxes()? {
        all.entry(n.as_str().to_string()).or_default().exists = true;
    }
    let subs: BTreeSet<String> = maildir
        .subscriptions()?
        .into_iter()
        .filter_map(|s| MailboxName::new(&s).ok())
        .map(|n| n.as_str().to_string())
        .collect();
    for s in &subs {
        all.entry(s.clone()).or_default().subscribed = true;
    }
    // parents: virtual ones for names whose parent does not exist
    let names: Vec<(String, bool)> = all.iter().map(|(k, e)| (k.clone(), e.subscribed)).collect();
    for (name, sub) in names {
        let mut n = name.as_str();
        while let Some((parent, _)) = n.rsplit_once('.') {
            let e = all.entry(parent.to_string()).or_default();
            e.has_children = true;
            e.child_subscribed |= sub;
            n = parent;
        }
    }
    let want_sub = ret.subscribed || select.subscribed;
    // INBOX first, as Dovecot lists it
    let order = all
        .iter()
        .filter(|(n, _)| *n == "INBOX")
        .chain(all.iter().filter(|(n, _)| *n != "INBOX"));
    for (name, e) in order {
        if !pats.iter().any(|p| p.matches(name)) {
            continue;
        }
        let special = ctx.store.special_use(name);
        let include = if select.subscribed {
            e.subscribed || (select.recursive_match && e.child_subscribed)
        } else {
            e.exists || e.has_children
        } && (!select.special_use || special.is_some());
        if !include {
            continue;
        }
        let mut attrs: Vec<&str> = Vec::new();
        if !e.exists {
            attrs.push(if extended || ctx.rev2 {
                "\\NonExistent"
            } else {
                "\\Noselect"
            });
        }
        if e.has_children && (e.exists || !select.subscribed || extended) {
            attrs.push("\\HasChildren");
        } else if !e.has_children {
            attrs.push("\\HasNoChildren");
        }
        if want_sub && e.subscribed {
            attrs.push("\\Subscribed");
        }
        if let Some(s) = special {
            attrs.push(s);
        }
        out.extend_from_slice(b"* LIST (");
        out.extend_from_slice(attrs.join(" ").as_bytes());
        out.extend_from_slice(b") \".\" ");
        encode_mailbox(out, name, utf8);
        if select.recursive_match && e.child_subscribed && !e.subscribed {
            out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        out.extend_from_slice(b"\r\n");
        if let (Some(items), true) = (&ret.status, e.exists) {
            if let Err(e) = write_status(ctx, name, items, out) {
                tracing::warn!(mailbox = %name, error = ?e, "LIST-STATUS failed");
            }
        }
    }
    ok("List completed.")
}

pub(crate) fn lsub(ctx: &mut Ctx, reference: &[u8], pattern: &[u8], out: &mut Vec<u8>) -> Done {
    let utf8 = ctx.utf8;
    let reference = wire_text(reference, utf8)?;
    let pat = Pattern::new(&reference, &wire_text(pattern, utf8)?)?;
    let maildir = &ctx.store.maildir;
    let mut subs: Vec<String> = maildir
        .subscriptions()?
        .into_iter()
        .filter_map(|s| MailboxName::new(&s).ok())
        .map(|n| n.as_str().to_string())
        .collect();
    subs.sort();
    subs.dedup();
    // RFC 3501 §6.3.9: a level that `%` stops at, above a subscribed mailbox the pattern does
    // not reach, is listed \Noselect (unless subscribed itself)
    let mut lines: BTreeMap<String, bool> = BTreeMap::new();
    for s in &subs {
        if pat.matches(s) {
            let exists = s == "INBOX" || maildir.folder_exists(s);
            lines.insert(s.clone(), exists);
            continue;
        }
        let mut n = s.as_str();
        while let Some((parent, _)) = n.rsplit_once('.') {
            if pat.matches(parent) && subs.binary_search_by(|x| x.as_str().cmp(parent)).is_err() {
                lines.entry(parent.to_string()).or_insert(false);
            }
            n = parent;
        }
    }
    for (s, exists) in &lines {
        out.extend_from_slice(if *exists {
            b"* LSUB () \".\" ".as_slice()
        } else {
            b"* LSUB (\\Noselect) \".\" ".as_slice()
        });
        encode_mailbox(out, s, utf8);
        out.extend_from_slice(b"\r\n");
    }
    ok("Lsub completed.")
}

fn write_status(
    ctx: &Ctx,
    name: &str,
    items: &[StatusItem],
    out: &mut Vec<u8>,
) -> Result<(), super::Reply> {
    let mailbox = ctx.store.maildir.mailbox(name)?;
    let st = mailbox.sync(SyncOptions::default())?;
    let mut parts = Vec::new();
    for it in items {
        let (k, v) = match it {
            StatusItem::Messages => ("MESSAGES", st.messages.len() as u64),
            StatusItem::Recent => (
                "RECENT",
                st.messages.iter().filter(|m| m.recent).count() as u64,
            ),
            StatusItem::UidNext => ("UIDNEXT", u64::from(st.next_uid)),
            StatusItem::UidValidity => ("UIDVALIDITY", u64::from(st.uid_validity)),
            StatusItem::Unseen => (
                "UNSEEN",
                st.messages
                    .iter()
                    .filter(|m| !m.flags.contains(SystemFlag::Seen))
                    .count() as u64,
            ),
            StatusItem::Deleted => (
                "DELETED",
                st.messages
                    .iter()
                    .filter(|m| m.flags.contains(SystemFlag::Deleted))
                    .count() as u64,
            ),
            StatusItem::Size => ("SIZE", st.messages.iter().map(|m| m.vsize).sum()),
        };
        parts.push(format!("{k} {v}"));
    }
    out.extend_from_slice(b"* STATUS ");
    encode_mailbox(out, name, ctx.utf8);
    out.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
    Ok(())
}

pub(crate) fn status(ctx: &mut Ctx, raw: &[u8], items: &[StatusItem], out: &mut Vec<u8>) -> Done {
    let name = decode_mailbox(raw, ctx.utf8)?;
    write_status(ctx, name.as_str(), items, out)?;
    ok("Status completed.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let p = |pat: &str, name: &str| Pattern::new("", pat).unwrap().matches(name);
        assert!(p("*", "a.b.c"));
        assert!(p("%", "a"));
        assert!(!p("%", "a.b"));
        assert!(p("a.%", "a.b"));
        assert!(!p("a.%", "a.b.c"));
        assert!(p("inbox", "INBOX"));
        assert!(p("Inbox.%", "INBOX.x"));
        assert!(!p("a", "A"));
        assert!(Pattern::new("", "%%%%%%%%%%%%").is_err());
    }
}
