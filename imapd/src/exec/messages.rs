//! Message-changing commands: APPEND (APPENDUID), STORE (all forms, .SILENT), COPY/MOVE
//! (COPYUID), EXPUNGE/UID EXPUNGE, CLOSE/UNSELECT.

use super::selected::{write_flags, Selected};
use super::{bad, decode_mailbox, no, ok, Ctx, Done, Reply};
use pochta_imap_proto::{Flag, SequenceSet, StoreOp};
use pochta_mailstore::keywords::is_valid_keyword;
use pochta_mailstore::{DeliverOptions, FlagOp, Flags, SystemFlag};
use std::time::{Duration, UNIX_EPOCH};

/// IMAP flags → Maildir system flags + keyword names. `\Recent` is never stored.
fn split_flags(flags: &[Flag]) -> Result<(Flags, Vec<String>), Reply> {
    let mut sys = Flags::empty();
    let mut kws: Vec<String> = Vec::new();
    for f in flags {
        match f {
            Flag::Answered => sys.set(SystemFlag::Answered, true),
            Flag::Flagged => sys.set(SystemFlag::Flagged, true),
            Flag::Deleted => sys.set(SystemFlag::Deleted, true),
            Flag::Seen => sys.set(SystemFlag::Seen, true),
            Flag::Draft => sys.set(SystemFlag::Draft, true),
            Flag::Extension(e) if e.eq_ignore_ascii_case("\\Recent") => {}
            Flag::Extension(_) => return Err(bad("Invalid system flag.")),
            Flag::Keyword(k) => {
                if !is_valid_keyword(k) {
                    return Err(bad("Invalid keyword."));
                }
                if !kws.contains(k) {
                    kws.push(k.clone());
                }
            }
        }
    }
    Ok((sys, kws))
}

pub(crate) fn selected(ctx: &mut Ctx) -> Result<&mut Selected, Reply> {
    ctx.selected
        .as_mut()
        .ok_or_else(|| bad("No mailbox selected."))
}

fn uid_validity_of(ctx: &Ctx, name: &str) -> Result<u32, Reply> {
    let mb = ctx.store.maildir.mailbox(name)?;
    Ok(mb.uidlist()?.map_or(0, |l| l.uid_validity))
}

pub(crate) fn append(
    ctx: &mut Ctx,
    raw: &[u8],
    flags: &[Flag],
    date: Option<(i64, i32)>,
    message: &[u8],
) -> Done {
    let name = decode_mailbox(raw, ctx.utf8)?;
    if !name.is_inbox() && !ctx.store.maildir.folder_exists(name.as_str()) {
        return Err(no("[TRYCREATE] Mailbox doesn't exist."));
    }
    if message.is_empty() {
        return Err(no("Can't save a zero byte message."));
    }
    let (sys, keywords) = split_flags(flags)?;
    let when = date.map(|(secs, _)| {
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH
        }
    });
    let opts = DeliverOptions {
        flags: sys,
        keywords,
        quota: ctx.store.quota,
    };
    let target = (!name.is_inbox()).then_some(name.as_str());
    let d = ctx
        .store
        .maildir
        .deliver_dated(target, message, &opts, when)?;
    let v = uid_validity_of(ctx, name.as_str())?;
    ok(format!("[APPENDUID {v} {}] Append completed.", d.uid))
}

pub(crate) fn close(ctx: &mut Ctx, expunge: bool) -> Done {
    let Some(sel) = ctx.selected.take() else {
        return Err(bad("No mailbox selected."));
    };
    if expunge && !sel.read_only {
        let del: Vec<_> = sel
            .msgs
            .iter()
            .filter(|m| !m.gone && m.m.flags.contains(SystemFlag::Deleted))
            .map(|m| m.m.clone())
            .collect();
        if !del.is_empty() {
            sel.mailbox.expunge(&del)?;
        }
    }
    if expunge {
        ok("Close completed.")
    } else {
        ok("Unselect completed.")
    }
}

pub(crate) fn expunge(ctx: &mut Ctx, uids: Option<&SequenceSet>, out: &mut Vec<u8>) -> Done {
    let rev2 = ctx.rev2;
    let sel = selected(ctx)?;
    if sel.read_only {
        return Err(no("[CANNOT] Mailbox is read-only."));
    }
    // see \Deleted set by other sessions too
    sel.refresh(true, rev2, out)?;
    let largest = sel.msgs.last().map_or(0, |m| m.m.uid);
    let del: Vec<_> = sel
        .msgs
        .iter()
        .filter(|m| m.m.flags.contains(SystemFlag::Deleted))
        .filter(|m| uids.is_none_or(|s| s.contains(m.m.uid, largest)))
        .map(|m| m.m.clone())
        .collect();
    if !del.is_empty() {
        sel.mailbox.expunge(&del)?;
        // removed now or by someone else meanwhile: gone either way
        let gone: std::collections::HashSet<u32> = del.iter().map(|m| m.uid).collect();
        for m in sel.msgs.iter_mut() {
            if gone.contains(&m.m.uid) {
                m.gone = true;
            }
        }
        sel.send_expunges(out);
    }
    ok("Expunge completed.")
}

pub(crate) fn store(
    ctx: &mut Ctx,
    uid: bool,
    set: &SequenceSet,
    op: StoreOp,
    silent: bool,
    flags: &[Flag],
    out: &mut Vec<u8>,
) -> Done {
    let rev2 = ctx.rev2;
    let sel = selected(ctx)?;
    if sel.read_only {
        return Err(no("[CANNOT] Mailbox is read-only."));
    }
    let idx = sel
        .resolve(set, uid)
        .map_err(|()| bad("Invalid messageset."))?;
    let (sys, kws) = split_flags(flags)?;
    if op != StoreOp::Remove && kws.iter().any(|k| !sel.keywords.contains(k)) {
        sel.keywords.extend(kws.iter().cloned());
        let mut flags_out = Vec::new();
        // re-announce FLAGS/PERMANENTFLAGS with the new keywords
        let sys_names = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];
        let kw: Vec<&str> = sel.keywords.iter().map(String::as_str).collect();
        flags_out.extend_from_slice(b"* FLAGS ");
        pochta_imap_proto::encode::flag_list(
            &mut flags_out,
            sys_names.iter().copied().chain(kw.iter().copied()),
        );
        flags_out.extend_from_slice(b"\r\n* OK [PERMANENTFLAGS ");
        pochta_imap_proto::encode::flag_list(
            &mut flags_out,
            sys_names
                .iter()
                .copied()
                .chain(kw.iter().copied())
                .chain(["\\*"]),
        );
        flags_out.extend_from_slice(b"] Flags permitted.\r\n");
        out.extend_from_slice(&flags_out);
    }
    let fop = match op {
        StoreOp::Replace => FlagOp::Replace,
        StoreOp::Add => FlagOp::Add,
        StoreOp::Remove => FlagOp::Remove,
    };
    let mut missing = false;
    for i in idx {
        if sel.msgs[i].gone {
            missing = true;
            continue;
        }
        match sel.mailbox.store_flags(&sel.msgs[i].m, fop, sys, &kws) {
            Ok(m) => sel.msgs[i].m = m,
            Err(pochta_mailstore::Error::MessageNotFound { .. }) => {
                sel.msgs[i].gone = true;
                missing = true;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        if !silent {
            let msg = &sel.msgs[i];
            out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
            if uid {
                out.extend_from_slice(format!("UID {} ", msg.m.uid).as_bytes());
            }
            out.extend_from_slice(b"FLAGS ");
            write_flags(out, &msg.m, msg.recent, rev2);
            out.extend_from_slice(b")\r\n");
        }
    }
    if missing {
        return Err(no("[EXPUNGEISSUED] Some of the messages no longer exist."));
    }
    ok("Store completed.")
}

pub(crate) fn copy(
    ctx: &mut Ctx,
    uid: bool,
    set: &SequenceSet,
    raw: &[u8],
    is_move: bool,
    out: &mut Vec<u8>,
) -> Done {
    let dest = decode_mailbox(raw, ctx.utf8)?;
    if !dest.is_inbox() && !ctx.store.maildir.folder_exists(dest.as_str()) {
        return Err(no("[TRYCREATE] Mailbox doesn't exist."));
    }
    let maildir = ctx.store.maildir.clone();
    let quota = ctx.store.quota;
    let sel = selected(ctx)?;
    if is_move && sel.read_only {
        return Err(no("[CANNOT] Mailbox is read-only."));
    }
    let idx = sel
        .resolve(set, uid)
        .map_err(|()| bad("Invalid messageset."))?;
    let target = (!dest.is_inbox()).then_some(dest.as_str());
    let (mut src_uids, mut dst_uids, mut moved) = (Vec::new(), Vec::new(), Vec::new());
    let mut missing = false;
    for &i in &idx {
        let msg = &sel.msgs[i];
        if msg.gone {
            missing = true;
            continue;
        }
        let bytes = match sel.mailbox.read_message(&msg.m) {
            Ok(b) => b,
            Err(pochta_mailstore::Error::MessageNotFound { .. }) => {
                missing = true;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let opts = DeliverOptions {
            flags: msg.m.flags.system_only(),
            keywords: msg.m.keywords.clone(),
            quota,
        };
        let d = maildir.deliver_dated(target, &bytes, &opts, Some(msg.m.internal_date))?;
        src_uids.push(msg.m.uid);
        dst_uids.push(d.uid);
        moved.push(msg.m.clone());
    }
    if missing && src_uids.is_empty() {
        return Err(no(
            "[EXPUNGEISSUED] Some of the requested messages no longer exist.",
        ));
    }
    let v = {
        let mb = maildir.mailbox(dest.as_str())?;
        mb.uidlist()?.map_or(0, |l| l.uid_validity)
    };
    let code = if src_uids.is_empty() {
        String::new()
    } else {
        format!(
            "[COPYUID {v} {} {}] ",
            SequenceSet::compress(&src_uids),
            SequenceSet::compress(&dst_uids)
        )
    };
    if !is_move {
        return ok(format!("{code}Copy completed."));
    }
    if !code.is_empty() {
        out.extend_from_slice(format!("* OK {}Moved UIDs.\r\n", code).as_bytes());
    }
    if !moved.is_empty() {
        sel.mailbox.expunge(&moved)?;
        let gone: std::collections::HashSet<u32> = moved.iter().map(|m| m.uid).collect();
        for m in sel.msgs.iter_mut() {
            if gone.contains(&m.m.uid) {
                m.gone = true;
            }
        }
        sel.send_expunges(out);
    }
    ok("Move completed.")
}
