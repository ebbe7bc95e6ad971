//! Realistic Maildir content for the imap row: messages of 2–4 KiB (Received, From, To,
//! Subject, Date, Message-ID, MIME headers, a text body of words), Dovecot-style file names
//! with S= (size on disk) and W= (size with CRLF) in cur/, mostly \Seen. Deterministic: the
//! same call writes the same files for both sides.

use std::path::Path;

use crate::ctx::{mkdir, write, Ctx};

/// Senders: message n is from `s{n % SENDERS:03}.sender@example.org`, so FROM on one sender
/// matches 1% of the mailbox.
const SENDERS: usize = 100;
/// Tickets in subjects: message n has `ticket {(n * 37 + 11) % TICKETS:03}`.
const TICKETS: usize = 100;

/// The FROM substring the row searches for and the SUBJECT substring.
pub(crate) const FROM_QUERY: &str = "s042.sender@";
pub(crate) const SUBJECT_QUERY: &str = "ticket 042";

const WORDS: &str = "the report server mailbox quarterly figures meeting please review attached \
    schedule budget delivery customer support release notes with from about update network \
    storage backup tomorrow agenda project invoice thanks regards minutes draft final version team";

fn rng(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn words(seed: u64, count: usize) -> String {
    let words: Vec<&str> = WORDS.split_ascii_whitespace().collect();
    (0..count)
        .map(|i| words[(rng(seed ^ ((i as u64) << 20)) % words.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Message `n` of `to` (LF line ends, as Dovecot stores mail) and its Maildir flags.
pub(crate) fn message(n: usize, to: &str) -> (String, &'static str) {
    let f = n % SENDERS;
    let ticket = (n * 37 + 11) % TICKETS;
    let r = rng(n as u64);
    let target = 2048 + (r % 2048) as usize;
    let (h, m, s) = (n / 3600 % 24, n / 60 % 60, n % 60);
    let mut text = format!(
        "Return-Path: <s{f:03}.sender@example.org>\n\
         Delivered-To: {to}\n\
         Received: from mail{f}.example.org (mail{f}.example.org [192.0.2.{ip}])\n\
         \tby mx.bench.test (Postfix) with ESMTPS id 4Q{n:08X}\n\
         \tfor <{to}>; Mon, 23 Nov 2026 {h:02}:{m:02}:{s:02} +0000 (UTC)\n\
         From: Sender {f:03} <s{f:03}.sender@example.org>\n\
         To: {to}\n\
         Subject: [ops-{list}] ticket {ticket:03}: {subj}\n\
         Date: Mon, 23 Nov 2026 {h:02}:{m:02}:{s:02} +0000\n\
         Message-ID: <{n}.{r:016x}@example.org>\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 7bit\n\n",
        ip = f + 1,
        list = r % 7,
        subj = words(r, 4),
    );
    let mut line = 0u64;
    while text.len() < target {
        text.push_str(&words(r ^ (line << 40), 11));
        text.push('\n');
        line += 1;
    }
    let flags = match r % 8 {
        0 | 1 => "",
        2 => "FS",
        _ => "S",
    };
    (text, flags)
}

/// How many of messages 0..n the FROM and SUBJECT queries match.
pub(crate) fn expected_matches(n: usize) -> (usize, usize) {
    let from = (0..n).filter(|i| i % SENDERS == 42).count();
    let subject = (0..n).filter(|i| (i * 37 + 11) % TICKETS == 42).count();
    (from, subject)
}

/// Writes `messages` messages into `home/Maildir/cur` (owned by the servers' user) and returns
/// the user's passwd-file line.
pub(crate) fn maildir(
    ctx: &Ctx,
    home: &Path,
    user: &str,
    pass: &str,
    messages: usize,
) -> Result<String, String> {
    let md = home.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        mkdir(&md.join(sub))?;
    }
    for n in 0..messages {
        let (text, flags) = message(n, user);
        let wire = text.len() + text.matches('\n').count();
        let name = format!(
            "{}.M{}P{}Q{n}.bench,S={},W={wire}:2,{flags}",
            1_763_884_800 + n,
            (n * 7919) % 1_000_000,
            4000 + n % 900,
            text.len()
        );
        let path = md.join("cur").join(name);
        write(&path, &text)?;
        ctx.give(&path)?;
    }
    for p in [
        home.to_path_buf(),
        md.clone(),
        md.join("cur"),
        md.join("new"),
        md.join("tmp"),
    ] {
        ctx.give(&p)?;
    }
    Ok(format!(
        "{user}:{{PLAIN}}{pass}:{}:{}::{}::\n",
        ctx.uid,
        ctx.gid,
        home.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_queries() {
        for n in 0..500 {
            let (t, _) = message(n, "big@bench.test");
            assert!((2048..4096 + 100).contains(&t.len()), "{n}: {}", t.len());
            let from_hit = t.contains(&format!("From: Sender 042 <{FROM_QUERY}"));
            assert_eq!(from_hit, n % SENDERS == 42);
            assert_eq!(t.contains(SUBJECT_QUERY), (n * 37 + 11) % TICKETS == 42);
        }
        assert_eq!(expected_matches(100_000), (1000, 1000));
    }
}
