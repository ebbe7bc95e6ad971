//! FETCH / UID FETCH: listing items (FLAGS, INTERNALDATE from the file's mtime, RFC822.SIZE
//! from `,W=`, UID) without opening the file; content items (ENVELOPE, BODY, BODYSTRUCTURE,
//! BODY[section]<partial>, RFC822*, BINARY[], BINARY.SIZE) through pochta-imap-message.
//! Non-PEEK body fetches set \Seen (not in read-only mailboxes) and report the new FLAGS.

use super::messages::selected;
use super::selected::write_flags;
use super::{bad, no, ok, Ctx, Done, Reply};
use pochta_imap_message::{
    internal_date, BinaryError, Message as Parsed, Section as MsgSection, SectionKind,
};
use pochta_imap_proto::{encode, FetchItem, Section, SectionText, SequenceSet};
use pochta_mailstore::{FlagOp, Flags, SystemFlag};
use std::time::UNIX_EPOCH;

fn msg_section(s: &Section) -> MsgSection {
    let kind = match &s.text {
        SectionText::Full => SectionKind::Full,
        SectionText::Header => SectionKind::Header,
        SectionText::HeaderFields(f) => SectionKind::HeaderFields(f.clone()),
        SectionText::HeaderFieldsNot(f) => SectionKind::HeaderFieldsNot(f.clone()),
        SectionText::Text => SectionKind::Text,
        SectionText::Mime => SectionKind::Mime,
    };
    MsgSection {
        part: s.part.clone(),
        kind,
    }
}

/// `<origin.length>` applied to section bytes.
fn apply_partial(data: &[u8], partial: Option<(u64, u64)>) -> &[u8] {
    match partial {
        None => data,
        Some((origin, len)) => {
            let start = usize::try_from(origin)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
            &data[start..end.min(data.len())]
        }
    }
}

fn part_spec(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Why a message's FETCH failed.
enum ItemError {
    UnknownCte,
}

fn write_item(
    out: &mut Vec<u8>,
    item: &FetchItem,
    m: &pochta_mailstore::Message,
    recent: bool,
    rev2: bool,
    parsed: Option<&Parsed<'_>>,
) -> Result<(), ItemError> {
    match item {
        FetchItem::Flags => {
            out.extend_from_slice(b"FLAGS ");
            write_flags(out, m, recent, rev2);
        }
        FetchItem::InternalDate => {
            let secs = m
                .internal_date
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            out.extend_from_slice(
                format!("INTERNALDATE \"{}\"", internal_date(secs, 0)).as_bytes(),
            );
        }
        FetchItem::Rfc822Size => {
            out.extend_from_slice(format!("RFC822.SIZE {}", m.vsize).as_bytes());
        }
        FetchItem::Uid => out.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
        FetchItem::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            match parsed {
                Some(p) => out.extend_from_slice(&p.envelope()),
                None => out.extend_from_slice(b"NIL"),
            }
        }
        FetchItem::BodyStructure(ext) => {
            out.extend_from_slice(if *ext { b"BODYSTRUCTURE " } else { b"BODY " });
            match parsed {
                Some(p) => out.extend_from_slice(&p.body_structure(*ext)),
                None => out.extend_from_slice(b"NIL"),
            }
        }
        FetchItem::Rfc822(text) => {
            let (name, kind) = match text {
                SectionText::Header => ("RFC822.HEADER ", SectionKind::Header),
                SectionText::Text => ("RFC822.TEXT ", SectionKind::Text),
                _ => ("RFC822 ", SectionKind::Full),
            };
            out.extend_from_slice(name.as_bytes());
            let data = parsed.and_then(|p| {
                p.section(&MsgSection {
                    part: Vec::new(),
                    kind,
                })
            });
            encode::literal(out, data.as_deref().unwrap_or_default());
        }
        FetchItem::BodySection {
            section, partial, ..
        } => {
            out.extend_from_slice(format!("BODY[{}]", section.spec()).as_bytes());
            if let Some((origin, _)) = partial {
                out.extend_from_slice(format!("<{origin}>").as_bytes());
            }
            out.push(b' ');
            // A section that does not exist is an empty string, sent as `{0}` like Dovecot.
            match parsed.and_then(|p| p.section(&msg_section(section))) {
                Some(data) => encode::literal(out, apply_partial(&data, *partial)),
                None => encode::literal(out, b""),
            }
        }
        FetchItem::Binary { part, partial, .. } => {
            out.extend_from_slice(format!("BINARY[{}]", part_spec(part)).as_bytes());
            if let Some((origin, _)) = partial {
                out.extend_from_slice(format!("<{origin}>").as_bytes());
            }
            out.push(b' ');
            let data = match parsed.map(|p| p.binary(part)) {
                Some(Err(BinaryError::UnknownCte)) => return Err(ItemError::UnknownCte),
                Some(Ok(d)) => d,
                None => None,
            };
            match data {
                Some(d) => {
                    let d = apply_partial(&d, *partial);
                    if d.contains(&0) {
                        out.push(b'~');
                    }
                    encode::literal(out, d);
                }
                // Dovecot: an empty literal for a part that does not exist.
                None => encode::literal(out, b""),
            }
        }
        FetchItem::BinarySize(part) => {
            let size = match parsed.map(|p| p.binary_size(part)) {
                Some(Err(BinaryError::UnknownCte)) => return Err(ItemError::UnknownCte),
                Some(Ok(s)) => s,
                None => None,
            };
            out.extend_from_slice(format!("BINARY.SIZE[{}] ", part_spec(part)).as_bytes());
            match size {
                Some(s) => out.extend_from_slice(s.to_string().as_bytes()),
                None => out.push(b'0'),
            }
        }
    }
    Ok(())
}

/// A FETCH's progress: finished, or stopped after a part of the output.
pub(crate) enum Progress {
    Done(Done),
    /// Continue at this index of the resolved set.
    More(usize),
}

pub(crate) fn fetch(
    ctx: &mut Ctx,
    uid: bool,
    set: &SequenceSet,
    items: &[FetchItem],
    out: &mut Vec<u8>,
    resume: usize,
) -> Progress {
    match fetch_part(ctx, uid, set, items, out, resume) {
        Ok(Some(next)) => Progress::More(next),
        Ok(None) => Progress::Done(ok("Fetch completed.")),
        Err(r) => Progress::Done(Err(r)),
    }
}

/// Writes FETCH responses from `resume` on; `Some(next)` when it stopped early.
fn fetch_part(
    ctx: &mut Ctx,
    uid: bool,
    set: &SequenceSet,
    items: &[FetchItem],
    out: &mut Vec<u8>,
    resume: usize,
) -> Result<Option<usize>, Reply> {
    let rev2 = ctx.rev2;
    let sel = selected(ctx)?;
    let all = sel
        .resolve(set, uid)
        .map_err(|()| bad("Invalid messageset."))?;
    let needs_content = items.iter().any(FetchItem::needs_content);
    let sets_seen = !sel.read_only && items.iter().any(FetchItem::sets_seen);
    let has_flags = items.contains(&FetchItem::Flags);
    let has_uid = items.contains(&FetchItem::Uid);
    let (mut missing, mut unknown_cte) = (false, false);
    for (pos, &i) in all.iter().enumerate().skip(resume) {
        if out.len() >= super::FETCH_PART {
            return Ok(Some(pos));
        }
        if sel.msgs[i].gone {
            missing = true;
            continue;
        }
        let raw = if needs_content {
            match sel.mailbox.read_message(&sel.msgs[i].m) {
                Ok(r) => Some(r),
                Err(pochta_mailstore::Error::MessageNotFound { .. }) => {
                    missing = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        let mut flags_changed = false;
        if sets_seen && !sel.msgs[i].m.flags.contains(SystemFlag::Seen) {
            let seen = Flags::empty().with(SystemFlag::Seen);
            match sel
                .mailbox
                .store_flags(&sel.msgs[i].m, FlagOp::Add, seen, &[])
            {
                Ok(m) => {
                    sel.msgs[i].m = m;
                    flags_changed = true;
                }
                Err(e) => tracing::warn!(error = %e, "cannot set \\Seen"),
            }
        }
        let parsed = raw.as_deref().map(Parsed::parse);
        let msg = &sel.msgs[i];
        let mut line = format!("* {} FETCH (", i + 1).into_bytes();
        let mut first = true;
        let mut sep = |line: &mut Vec<u8>| {
            if !std::mem::replace(&mut first, false) {
                line.push(b' ');
            }
        };
        if uid && !has_uid {
            sep(&mut line);
            line.extend_from_slice(format!("UID {}", msg.m.uid).as_bytes());
        }
        let mut failed = false;
        for item in items {
            sep(&mut line);
            if write_item(&mut line, item, &msg.m, msg.recent, rev2, parsed.as_ref()).is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            unknown_cte = true;
            continue;
        }
        if flags_changed && !has_flags {
            sep(&mut line);
            line.extend_from_slice(b"FLAGS ");
            write_flags(&mut line, &msg.m, msg.recent, rev2);
        }
        line.extend_from_slice(b")\r\n");
        out.extend_from_slice(&line);
    }
    if unknown_cte {
        return Err(no("[UNKNOWN-CTE] Unknown Content-Transfer-Encoding."));
    }
    if missing {
        return Err(no(
            "[EXPUNGEISSUED] Some of the requested messages no longer exist.",
        ));
    }
    Ok(None)
}
