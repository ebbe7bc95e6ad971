//! ENVELOPE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) rendered the way Dovecot 2.3 renders it:
//! the last occurrence of a header wins, Subject and display names are "for humans"
//! (whitespace collapsed), Sender and Reply-To default to From, groups become
//! `(NIL NIL "name" NIL)` … `(NIL NIL NIL NIL)`.

use crate::address::{parse_addresses, Addr};
use crate::header::{self, unfold};
use crate::quote::{nstring, nstring_nolf, string_for_humans};
use std::ops::Range;

const N: usize = 10;
const DATE: usize = 0;
const SUBJECT: usize = 1;
const FROM: usize = 2;
const SENDER: usize = 3;
const REPLY_TO: usize = 4;
const TO: usize = 5;
const CC: usize = 6;
const BCC: usize = 7;
const IN_REPLY_TO: usize = 8;
const MESSAGE_ID: usize = 9;

fn field_index(name: &[u8]) -> Option<usize> {
    const NAMES: [&[u8]; N] = [
        b"Date",
        b"Subject",
        b"From",
        b"Sender",
        b"Reply-To",
        b"To",
        b"Cc",
        b"Bcc",
        b"In-Reply-To",
        b"Message-ID",
    ];
    NAMES.iter().position(|n| n.eq_ignore_ascii_case(name))
}

/// Appends the envelope fields (without the outer parentheses) of the header `raw[hdr]`.
pub(crate) fn write(out: &mut Vec<u8>, raw: &[u8], hdr: Range<usize>) {
    let mut vals: [Option<Range<usize>>; N] = Default::default();
    // Address headers that occur more than once are concatenated (Dovecot 2.3 does so);
    // for the others the last occurrence wins.
    let mut addrs: [Option<Vec<Addr>>; N] = Default::default();
    for f in header::fields(raw, hdr) {
        if let Some(i) = field_index(&raw[f.name.clone()]) {
            if (FROM..=BCC).contains(&i) {
                let list = parse_addresses(&unfold(&raw[f.value.clone()]));
                if !list.is_empty() {
                    addrs[i].get_or_insert_with(Vec::new).extend(list);
                }
            }
            vals[i] = Some(f.value);
        }
    }
    nstring_nolf(out, vals[DATE].clone().map(|r| unfold(&raw[r])).as_deref());
    out.push(b' ');
    match vals[SUBJECT].clone() {
        None => out.extend_from_slice(b"NIL"),
        Some(r) => string_for_humans(out, &unfold(&raw[r])),
    }
    for i in [FROM, SENDER, REPLY_TO, TO, CC, BCC] {
        out.push(b' ');
        let list = match i {
            SENDER | REPLY_TO => addrs[i].as_ref().or(addrs[FROM].as_ref()),
            _ => addrs[i].as_ref(),
        };
        write_addresses(out, list.map(Vec::as_slice));
    }
    out.push(b' ');
    nstring_nolf(
        out,
        vals[IN_REPLY_TO]
            .clone()
            .map(|r| unfold(&raw[r]))
            .as_deref(),
    );
    out.push(b' ');
    nstring_nolf(
        out,
        vals[MESSAGE_ID].clone().map(|r| unfold(&raw[r])).as_deref(),
    );
}

fn write_addresses(out: &mut Vec<u8>, list: Option<&[Addr]>) {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        out.extend_from_slice(b"NIL");
        return;
    };
    out.push(b'(');
    for a in list {
        out.push(b'(');
        match &a.name {
            None => out.extend_from_slice(b"NIL"),
            Some(n) => string_for_humans(out, n),
        }
        out.push(b' ');
        nstring(out, a.route.as_deref());
        out.push(b' ');
        nstring(out, a.mailbox.as_deref());
        out.push(b' ');
        nstring(out, a.domain.as_deref());
        out.push(b')');
    }
    out.push(b')');
}
