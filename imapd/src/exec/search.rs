//! SEARCH / UID SEARCH: every key of RFC 9051 §6.4.4 over the selected mailbox, answered as
//! `* SEARCH` (IMAP4rev1) or `* ESEARCH` (RETURN options, or IMAP4rev2 enabled; RFC 4731).
//! Flags, sizes, dates and UIDs come from the listing; header, body and sent-date keys read
//! and parse the message (through pochta-imap-message) only when the key needs it.

use super::messages::selected;
use super::{ok, Ctx, Done};
use pochta_imap_message::Message as Parsed;
use pochta_imap_proto::{Flag, SearchKey, SearchReturn, SequenceSet};
use pochta_mailstore::SystemFlag;
use std::time::UNIX_EPOCH;

/// Per message facts the keys look at.
struct Candidate<'a> {
    seq: u32,
    msg: &'a super::selected::Msg,
    largest_seq: u32,
    largest_uid: u32,
    /// The raw message, read on first need.
    raw: Option<Option<Vec<u8>>>,
    mailbox: &'a pochta_mailstore::Mailbox,
}

impl Candidate<'_> {
    fn raw(&mut self) -> Option<&[u8]> {
        if self.raw.is_none() {
            self.raw = Some(self.mailbox.read_message(&self.msg.m).ok());
        }
        self.raw.as_ref().and_then(|r| r.as_deref())
    }

    fn internal_day(&self) -> i64 {
        let secs = self
            .msg
            .m
            .internal_date
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        secs.div_euclid(86400)
    }

    fn sent_day(&mut self) -> i64 {
        let fallback = self.internal_day();
        match self.raw() {
            // No (readable) Date: header compares as 1-Jan-1970, as in Dovecot.
            Some(raw) => match Parsed::parse(raw).sent_date() {
                Some((secs, tz)) => (secs + i64::from(tz)).div_euclid(86400),
                None => 0,
            },
            None => fallback,
        }
    }
}

fn has_flag(c: &Candidate<'_>, f: &Flag) -> bool {
    let fl = &c.msg.m.flags;
    match f {
        Flag::Answered => fl.contains(SystemFlag::Answered),
        Flag::Flagged => fl.contains(SystemFlag::Flagged),
        Flag::Deleted => fl.contains(SystemFlag::Deleted),
        Flag::Seen => fl.contains(SystemFlag::Seen),
        Flag::Draft => fl.contains(SystemFlag::Draft),
        Flag::Extension(_) => false,
        Flag::Keyword(k) => c.msg.m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)),
    }
}

fn eval(key: &SearchKey, c: &mut Candidate<'_>) -> bool {
    use SearchKey as K;
    match key {
        K::All => true,
        K::Flag(f) => has_flag(c, f),
        K::NotFlag(f) => !has_flag(c, f),
        K::New => c.msg.recent && !c.msg.m.flags.contains(SystemFlag::Seen),
        K::Old => !c.msg.recent,
        K::Recent => c.msg.recent,
        K::Before(d) => c.internal_day() < *d,
        K::On(d) => c.internal_day() == *d,
        K::Since(d) => c.internal_day() >= *d,
        K::SentBefore(d) => c.sent_day() < *d,
        K::SentOn(d) => c.sent_day() == *d,
        K::SentSince(d) => c.sent_day() >= *d,
        K::Header(name, value) => match c.raw() {
            Some(raw) => {
                let parsed = Parsed::parse(raw);
                if value.is_empty() {
                    !parsed.header_values(name).is_empty()
                } else {
                    // Dovecot's folding (e.g. "cafe" matches "café"); addresses as parsed.
                    parsed.header_contains(name, value)
                }
            }
            None => false,
        },
        K::Body(s) => c.raw().is_some_and(|r| Parsed::parse(r).body_contains(s)),
        K::Text(s) => c.raw().is_some_and(|r| Parsed::parse(r).text_contains(s)),
        K::Larger(n) => c.msg.m.vsize > *n,
        K::Smaller(n) => c.msg.m.vsize < *n,
        K::Uid(set) => set.contains(c.msg.m.uid, c.largest_uid),
        K::Seq(set) => set.contains(c.seq, c.largest_seq),
        K::Not(k) => !eval(k, c),
        K::Or(a, b) => eval(a, c) || eval(b, c),
        K::And(keys) => keys.iter().all(|k| eval(k, c)),
    }
}

pub(crate) fn search(
    ctx: &mut Ctx,
    tag: &str,
    uid: bool,
    ret: Option<SearchReturn>,
    key: &SearchKey,
    out: &mut Vec<u8>,
) -> Done {
    let rev2 = ctx.rev2;
    let sel = selected(ctx)?;
    let largest_seq = sel.msgs.len() as u32;
    let largest_uid = sel.msgs.last().map_or(0, |m| m.m.uid);
    let mut hits: Vec<u32> = Vec::new();
    for (i, msg) in sel.msgs.iter().enumerate() {
        if msg.gone {
            continue;
        }
        let mut c = Candidate {
            seq: i as u32 + 1,
            msg,
            largest_seq,
            largest_uid,
            raw: None,
            mailbox: &sel.mailbox,
        };
        if eval(key, &mut c) {
            hits.push(if uid { msg.m.uid } else { i as u32 + 1 });
        }
    }
    let ret = match ret {
        Some(r) => Some(r),
        None if rev2 => Some(SearchReturn {
            all: true,
            ..SearchReturn::default()
        }),
        None => None,
    };
    match ret {
        None => {
            out.extend_from_slice(b"* SEARCH");
            for h in &hits {
                out.extend_from_slice(format!(" {h}").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        Some(r) => {
            let mut line = String::from("* ESEARCH (TAG ");
            let mut q = Vec::new();
            pochta_imap_proto::encode::string(&mut q, tag.as_bytes(), false);
            line.push_str(&String::from_utf8_lossy(&q));
            line.push(')');
            if uid {
                line.push_str(" UID");
            }
            if let (true, Some(m)) = (r.min, hits.first()) {
                line.push_str(&format!(" MIN {m}"));
            }
            if let (true, Some(m)) = (r.max, hits.last()) {
                line.push_str(&format!(" MAX {m}"));
            }
            if r.all && !hits.is_empty() {
                line.push_str(&format!(" ALL {}", SequenceSet::compress(&hits)));
            }
            if r.count {
                line.push_str(&format!(" COUNT {}", hits.len()));
            }
            line.push_str("\r\n");
            out.extend_from_slice(line.as_bytes());
        }
    }
    ok("Search completed.")
}
