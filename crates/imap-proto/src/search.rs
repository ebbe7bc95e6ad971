//! SEARCH keys (RFC 9051 §6.4.4, RFC 3501 §6.4.4), with a nesting limit: `NOT`, `OR` and
//! parenthesized lists recurse, and an attacker's `((((…` must not exhaust the stack.

use crate::cursor::{err, Cursor, PResult};
use crate::sequence::{sequence_set, starts_sequence_set, SequenceSet};
use crate::Flag;

/// Deepest nesting of `(`/`NOT`/`OR` accepted.
pub const MAX_SEARCH_DEPTH: usize = 32;

/// One search criterion. Dates are days since 1970-01-01 (a calendar date, no zone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    All,
    /// System flag set (`ANSWERED`, `DELETED`, …, as the flag).
    Flag(Flag),
    /// System flag or keyword not set.
    NotFlag(Flag),
    New,
    Old,
    Recent,
    Before(i64),
    On(i64),
    Since(i64),
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    /// Header field contains (`FROM`, `TO`, `CC`, `BCC`, `SUBJECT`, `HEADER name value`).
    Header(String, String),
    Body(String),
    Text(String),
    Larger(u64),
    Smaller(u64),
    Uid(SequenceSet),
    Seq(SequenceSet),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    And(Vec<SearchKey>),
}

/// ESEARCH return options (RFC 4731 / RFC 9051).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
}

fn text(c: &mut Cursor<'_>) -> PResult<String> {
    c.sp()?;
    c.astring_utf8()
}

fn flag_word(c: &mut Cursor<'_>) -> PResult<Flag> {
    c.sp()?;
    let a = c.atom()?;
    Ok(Flag::Keyword(a.to_string()))
}

pub(crate) fn search_key(c: &mut Cursor<'_>, depth: usize) -> PResult<SearchKey> {
    if depth > MAX_SEARCH_DEPTH {
        return err("Search keys nested too deeply");
    }
    if c.eat(b'(') {
        let mut keys = vec![search_key(c, depth + 1)?];
        while c.eat(b' ') {
            keys.push(search_key(c, depth + 1)?);
        }
        c.expect(b')', "Expected ) after search keys")?;
        return Ok(SearchKey::And(keys));
    }
    if starts_sequence_set(c) {
        return Ok(SearchKey::Seq(sequence_set(c)?));
    }
    let word = c.atom()?.to_ascii_uppercase();
    use SearchKey as K;
    let key = match word.as_str() {
        "ALL" => K::All,
        "ANSWERED" => K::Flag(Flag::Answered),
        "DELETED" => K::Flag(Flag::Deleted),
        "DRAFT" => K::Flag(Flag::Draft),
        "FLAGGED" => K::Flag(Flag::Flagged),
        "SEEN" => K::Flag(Flag::Seen),
        "UNANSWERED" => K::NotFlag(Flag::Answered),
        "UNDELETED" => K::NotFlag(Flag::Deleted),
        "UNDRAFT" => K::NotFlag(Flag::Draft),
        "UNFLAGGED" => K::NotFlag(Flag::Flagged),
        "UNSEEN" => K::NotFlag(Flag::Seen),
        "KEYWORD" => K::Flag(flag_word(c)?),
        "UNKEYWORD" => K::NotFlag(flag_word(c)?),
        "NEW" => K::New,
        "OLD" => K::Old,
        "RECENT" => K::Recent,
        "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
            c.sp()?;
            let d = c.date()?;
            match word.as_str() {
                "BEFORE" => K::Before(d),
                "ON" => K::On(d),
                "SINCE" => K::Since(d),
                "SENTBEFORE" => K::SentBefore(d),
                "SENTON" => K::SentOn(d),
                _ => K::SentSince(d),
            }
        }
        "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => K::Header(word.clone(), text(c)?),
        "HEADER" => {
            let name = text(c)?;
            K::Header(name.to_ascii_uppercase(), text(c)?)
        }
        "BODY" => K::Body(text(c)?),
        "TEXT" => K::Text(text(c)?),
        "LARGER" | "SMALLER" => {
            c.sp()?;
            let n = c.number64()?;
            if word == "LARGER" {
                K::Larger(n)
            } else {
                K::Smaller(n)
            }
        }
        "UID" => {
            c.sp()?;
            K::Uid(sequence_set(c)?)
        }
        "NOT" => {
            c.sp()?;
            K::Not(Box::new(search_key(c, depth + 1)?))
        }
        "OR" => {
            c.sp()?;
            let a = search_key(c, depth + 1)?;
            c.sp()?;
            let b = search_key(c, depth + 1)?;
            K::Or(Box::new(a), Box::new(b))
        }
        _ => return err("Unknown search key"),
    };
    Ok(key)
}

pub(crate) fn search_return(c: &mut Cursor<'_>) -> PResult<SearchReturn> {
    c.expect(b'(', "Expected ( after RETURN")?;
    let mut r = SearchReturn::default();
    if !c.eat(b')') {
        loop {
            match c.atom()?.to_ascii_uppercase().as_str() {
                "MIN" => r.min = true,
                "MAX" => r.max = true,
                "ALL" => r.all = true,
                "COUNT" => r.count = true,
                _ => return err("Unknown search return option"),
            }
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    }
    if r == SearchReturn::default() {
        r.all = true;
    }
    Ok(r)
}
