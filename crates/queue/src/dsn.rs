//! Delivery status notifications as messages: RFC 3464 `multipart/report;
//! report-type=delivery-status` (RFC 6522) with a human part in Postfix's wording, the
//! machine-readable `message/delivery-status` part and the original message
//! (`message/rfc822`) or its headers (`text/rfc822-headers`). Pure: envelope, states and
//! content in, message bytes out.
//!
//! Whatever the input (any envelope strings, any content bytes), the output has CRLF line
//! ends only, no line longer than 998 octets (longer ones are broken by inserting CRLF SPACE,
//! like Postfix's smtp_line_length_limit), no NUL or bare CR, a boundary that occurs nowhere
//! in it, and 7-bit delivery-status fields (non-ASCII addresses in RFC 6533's `utf-8` form).
//! Any 8-bit octet (from the original or a UTF-8 address) is declared with
//! `Content-Transfer-Encoding: 8bit`; the caller then queues the notice with BODY=8BITMIME.

use crate::file::{Envelope, RcptState, StoredRecipient};
use crate::mailq::civil_from_days;
use std::fmt::Write;
use std::time::Duration;

/// Longest line we write (RFC 5322 §2.1.1: 998 octets before CRLF).
const MAX_LINE: usize = 998;
/// Where an overlong line is broken.
const BREAK_AT: usize = 990;

/// What the notice reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Action: failed, to the sender.
    Failure,
    /// Action: delayed, to the sender (headers only).
    Delay,
    /// Action: delivered, to the sender (NOTIFY=SUCCESS; headers only).
    Success,
    /// Action: failed, to the postmaster: a bounce (null sender) could not be delivered.
    Postmaster,
}

impl Kind {
    fn subject(self) -> &'static str {
        match self {
            Kind::Failure => "Undelivered Mail Returned to Sender",
            Kind::Delay => "Delayed Mail (still being retried)",
            Kind::Success => "Successful Mail Delivery Report",
            Kind::Postmaster => "Postmaster Copy: Undelivered Mail",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Kind::Failure | Kind::Postmaster => "failed",
            Kind::Delay => "delayed",
            Kind::Success => "delivered",
        }
    }

    /// Status when the recipient has none recorded.
    fn default_status(self) -> &'static str {
        match self {
            Kind::Failure | Kind::Postmaster => "5.0.0",
            Kind::Delay => "4.0.0",
            Kind::Success => "2.0.0",
        }
    }

    /// Postfix's log word: `sender non-delivery notification`.
    pub(crate) fn log_name(self) -> &'static str {
        match self {
            Kind::Failure => "sender non-delivery notification",
            Kind::Delay => "sender delay notification",
            Kind::Success => "sender delivery status notification",
            Kind::Postmaster => "postmaster non-delivery notification",
        }
    }
}

/// Everything a notice is built from.
pub(crate) struct Report<'a> {
    pub(crate) kind: Kind,
    /// Our host name (Reporting-MTA, From: MAILER-DAEMON@…).
    pub(crate) hostname: &'a str,
    /// The original message's envelope (its id, sender, arrival, ENVID).
    pub(crate) env: &'a Envelope,
    /// The recipients reported, with their states.
    pub(crate) rcpts: Vec<(&'a StoredRecipient, &'a RcptState)>,
    /// Where the notice goes (`To:`).
    pub(crate) to: &'a str,
    /// The notice's own queue id (Message-Id, boundary).
    pub(crate) new_id: &'a str,
    pub(crate) now_ms: u64,
    /// The original message as queued.
    pub(crate) content: &'a [u8],
    /// Return the whole original (message/rfc822) instead of its headers.
    pub(crate) full: bool,
    /// For the delay text: how long it has been queued, and its queue lifetime.
    pub(crate) delay_warning: Duration,
    pub(crate) lifetime: Duration,
}

/// A built notice.
#[derive(Debug)]
pub(crate) struct Built {
    /// The whole message, CRLF line ends.
    pub(crate) content: Vec<u8>,
    /// Some octet ≥ 0x80: queue it with BODY=8BITMIME.
    pub(crate) eight_bit: bool,
}

/// Builds the notice.
pub(crate) fn build(r: &Report<'_>) -> Built {
    let host = clean_ascii(r.hostname);
    let returned = returned_part(r.content, r.full);
    let eight_bit_orig = returned.iter().any(|&b| b >= 0x80);
    let human = human_text(r, &host);
    let eight_bit_human = human.bytes().any(|b| b >= 0x80);
    let status = delivery_status(r, &host);
    let secs = r.now_ms / 1000;
    let mut boundary = format!("{}.{secs}/{host}", clean_ascii(r.new_id));
    while contains(&returned, boundary.as_bytes())
        || human.contains(&boundary)
        || status.contains(&boundary)
    {
        boundary.push_str(".x");
    }
    // A UTF-8 recipient (SMTPUTF8 sender) puts 8-bit octets in the To: header too.
    let eight_bit = eight_bit_orig || eight_bit_human || !header_addr(r.to).is_ascii();

    let mut out = Vec::with_capacity(returned.len() + human.len() + status.len() + 1024);
    let mut head = String::new();
    let date = rfc5322_date(secs);
    let _ = writeln!(head, "Received: by {host} (pochta) id {}; {date}", r.new_id);
    let _ = writeln!(head, "Date: {date}");
    let _ = writeln!(head, "From: MAILER-DAEMON@{host} (Mail Delivery System)");
    let _ = writeln!(head, "Subject: {}", r.kind.subject());
    let _ = writeln!(head, "To: {}", header_addr(r.to));
    let _ = writeln!(head, "Auto-Submitted: auto-replied");
    let (y, mo, d, h, mi, s) = civil(secs);
    let _ = writeln!(
        head,
        "Message-Id: <{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}.{}@{host}>",
        clean_ascii(r.new_id)
    );
    let _ = writeln!(head, "MIME-Version: 1.0");
    let _ = writeln!(
        head,
        "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\""
    );
    if eight_bit {
        let _ = writeln!(head, "Content-Transfer-Encoding: 8bit");
    }
    head.push('\n');
    let _ = writeln!(head, "This is a MIME-encapsulated message.\n");
    let _ = writeln!(head, "--{boundary}");
    let _ = writeln!(head, "Content-Description: Notification");
    if eight_bit_human {
        let _ = writeln!(head, "Content-Type: text/plain; charset=utf-8");
        let _ = writeln!(head, "Content-Transfer-Encoding: 8bit");
    } else {
        let _ = writeln!(head, "Content-Type: text/plain; charset=us-ascii");
    }
    head.push('\n');
    head.push_str(&human);
    let _ = writeln!(head, "\n--{boundary}");
    let _ = writeln!(head, "Content-Description: Delivery report");
    let _ = writeln!(head, "Content-Type: message/delivery-status\n");
    head.push_str(&status);
    let _ = writeln!(head, "\n--{boundary}");
    let what = match (r.kind, r.full) {
        (Kind::Success, _) => "Delivered Message Headers",
        (_, true) => "Undelivered Message",
        (_, false) => "Undelivered Message Headers",
    };
    let _ = writeln!(head, "Content-Description: {what}");
    if r.full {
        let _ = writeln!(head, "Content-Type: message/rfc822");
    } else {
        let _ = writeln!(head, "Content-Type: text/rfc822-headers");
    }
    if eight_bit_orig {
        let _ = writeln!(head, "Content-Transfer-Encoding: 8bit");
    }
    head.push('\n');
    push_lines(&mut out, head.as_bytes());
    out.extend_from_slice(&returned);
    push_lines(&mut out, format!("\n--{boundary}--\n").as_bytes());
    Built {
        content: out,
        eight_bit,
    }
}

/// The human-readable part, Postfix's templates (bounce.cf.default) with one line per
/// recipient: `<addr>: reason`.
fn human_text(r: &Report<'_>, host: &str) -> String {
    let mut t = format!("This is the mail system at host {host}.\n\n");
    match r.kind {
        Kind::Failure | Kind::Postmaster => t.push_str(
            "I'm sorry to have to inform you that your message could not\n\
             be delivered to one or more recipients. It's attached below.\n\n\
             For further assistance, please send mail to postmaster.\n\n\
             If you do so, please include this problem report. You can\n\
             delete your own text from the attached returned message.\n",
        ),
        Kind::Delay => {
            t.push_str(
                "####################################################################\n\
                 # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\
                 ####################################################################\n\n",
            );
            let _ = write!(
                t,
                "Your message could not be delivered for {}.\n\
                 It will be retried until it is {} old.\n\n\
                 For further assistance, please send mail to postmaster.\n\n\
                 If you do so, please include this problem report. You can\n\
                 delete your own text from the attached returned message.\n",
                human_duration(r.delay_warning),
                human_duration(r.lifetime)
            );
        }
        Kind::Success => t.push_str(
            "Your message was successfully delivered to the destination(s)\n\
             listed below. If the message was delivered to mailbox you will\n\
             receive no further notifications. Otherwise you may still receive\n\
             notifications of mail delivery errors from other systems.\n",
        ),
    }
    t.push_str("\n                   The mail system\n");
    for (rcpt, st) in &r.rcpts {
        let reason = if st.reason.is_empty() {
            r.kind.action().to_owned()
        } else {
            clean_text(&st.reason)
        };
        // Postfix names the address the sender used when aliases changed it; a command or
        // file is reported as the alias that named it (the reason names the command).
        let shown = rcpt.reported();
        let expanded = match &rcpt.orig {
            Some(o) if rcpt.agent.alias().is_none() || !o.eq_ignore_ascii_case(shown) => {
                format!(" (expanded from <{}>)", clean_text(o))
            }
            _ => String::new(),
        };
        let _ = write!(t, "\n<{}>{expanded}: {reason}\n", clean_text(shown));
    }
    t
}

/// The `message/delivery-status` body (RFC 3464 §2.2, §2.3), 7-bit.
fn delivery_status(r: &Report<'_>, host: &str) -> String {
    let env = r.env;
    let mut t = format!("Reporting-MTA: dns; {host}\n");
    let _ = writeln!(t, "X-Postfix-Queue-ID: {}", clean_ascii(env.id.as_str()));
    let _ = writeln!(t, "X-Postfix-Sender: {}", typed_addr(&env.sender));
    if let Some(e) = &env.envid {
        let _ = writeln!(t, "Original-Envelope-Id: {}", xtext(e));
    }
    let _ = writeln!(t, "Arrival-Date: {}", rfc5322_date(env.arrival_ms / 1000));
    for (rcpt, st) in &r.rcpts {
        t.push('\n');
        let _ = writeln!(t, "Final-Recipient: {}", typed_addr(rcpt.reported()));
        if let Some(o) = &rcpt.original() {
            let kind = clean_ascii(&o.addr_type);
            let _ = writeln!(t, "Original-Recipient: {kind};{}", xtext(&o.address));
        }
        let _ = writeln!(t, "Action: {}", r.kind.action());
        let status = if valid_status(&st.dsn) {
            st.dsn.as_str()
        } else {
            r.kind.default_status()
        };
        let _ = writeln!(t, "Status: {status}");
        let from_server = st.diag.len() > 5 && st.diag[..5].eq_ignore_ascii_case("smtp;");
        let name = st.relay.split('[').next().unwrap_or_default();
        if from_server && !name.is_empty() && st.relay != "none" {
            let _ = writeln!(t, "Remote-MTA: dns; {}", clean_ascii(name));
        }
        if !st.diag.is_empty() {
            let _ = writeln!(t, "Diagnostic-Code: {}", clean_ascii(&st.diag));
        } else if !st.reason.is_empty() && r.kind != Kind::Success {
            let _ = writeln!(t, "Diagnostic-Code: X-Postfix; {}", clean_ascii(&st.reason));
        }
        if st.last_ms > 0 {
            let _ = writeln!(t, "Last-Attempt-Date: {}", rfc5322_date(st.last_ms / 1000));
        }
        if r.kind == Kind::Delay {
            let until = env.arrival_ms / 1000 + r.lifetime.as_secs();
            let _ = writeln!(t, "Will-Retry-Until: {}", rfc5322_date(until));
        }
    }
    t
}

/// `d.d.d` with 1–3 digits in the last two parts and class 2, 4 or 5.
fn valid_status(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok = |p: Option<&str>, max: usize| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(s.as_bytes().first(), Some(b'2' | b'4' | b'5'))
        && ok(parts.next(), 1)
        && ok(parts.next(), 3)
        && ok(parts.next(), 3)
        && parts.next().is_none()
}

/// The original as returned: the whole message, or its header section (up to the first
/// empty line), with lines made safe (see the module docs), LF line ends (CRLF added later).
fn returned_part(content: &[u8], full: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(if full { content.len() } else { 4096 });
    for line in content.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !full && line.is_empty() {
            break;
        }
        out.extend(
            line.iter()
                .map(|&b| if b == b'\r' || b == 0 { b' ' } else { b }),
        );
        out.push(b'\n');
    }
    // `split` yields a last empty piece after a final LF: not a line of its own.
    if content.ends_with(b"\n") && full {
        out.pop();
    }
    let mut crlf = Vec::with_capacity(out.len() + out.len() / 32);
    push_lines(&mut crlf, &out);
    crlf
}

/// Appends `text` (LF line ends, no CR) as CRLF lines, breaking any line longer than
/// [`MAX_LINE`] with CRLF SPACE (never inside a UTF-8 sequence when avoidable).
fn push_lines(out: &mut Vec<u8>, text: &[u8]) {
    let mut pieces = text.split(|&b| b == b'\n').peekable();
    while let Some(mut line) = pieces.next() {
        let last = pieces.peek().is_none();
        if last && line.is_empty() {
            break;
        }
        let mut first = true;
        loop {
            let room = if first { MAX_LINE } else { MAX_LINE - 1 };
            if !first {
                out.push(b' ');
            }
            if line.len() <= room {
                out.extend_from_slice(line);
                break;
            }
            let mut cut = BREAK_AT;
            while cut > BREAK_AT - 3 && (line[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            out.extend_from_slice(&line[..cut]);
            out.extend_from_slice(b"\r\n");
            line = &line[cut..];
            first = false;
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// `rfc822; addr` for ASCII addresses, RFC 6533 `utf-8; addr` with `\x{HEX}` for the rest
/// (the delivery-status part stays 7-bit). Controls and spaces are escaped too.
fn typed_addr(a: &str) -> String {
    if a.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'\\') {
        return format!("rfc822; {a}");
    }
    let mut s = String::from("utf-8; ");
    for c in a.chars() {
        if c.is_ascii_graphic() && c != '\\' {
            s.push(c);
        } else {
            let _ = write!(s, "\\x{{{:X}}}", c as u32);
        }
    }
    s
}

/// RFC 3461 xtext: `+XX` for octets outside 0x21..0x7E and for `+` and `=`.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x21..0x7f).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

/// An address for a header field: `<addr>` when printable, else the controls replaced.
fn header_addr(a: &str) -> String {
    format!("<{}>", clean_text(a))
}

/// Printable ASCII only: controls and non-ASCII become `?` (tabs a space).
fn clean_ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' => ' ',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// Text for the human part: UTF-8 kept, controls replaced (tab → space).
fn clean_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// `4 hour(s)`, `5 day(s)`, `90 second(s)` — the largest unit that divides evenly.
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0 second(s)".to_owned(),
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s if s % 60 == 0 => format!("{} minute(s)", s / 60),
        s => format!("{s} second(s)"),
    }
}

fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60)
}

/// RFC 5322 date in UTC: `Mon, 23 Nov 2026 12:30:00 +0000`.
pub(crate) fn rfc5322_date(secs: u64) -> String {
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, h, mi, s) = civil(secs);
    format!(
        "{}, {d} {} {y} {h:02}:{mi:02}:{s:02} +0000",
        WD[(secs / 86_400 % 7) as usize],
        MON[(m as usize + 11) % 12]
    )
}

#[cfg(test)]
#[path = "dsn_tests.rs"]
mod tests;
