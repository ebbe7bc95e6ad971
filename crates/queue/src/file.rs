//! The queue file format: one file per message, written once (envelope + content + checksum),
//! then only appended to (one checksummed record per recipient state change). Pure functions:
//! bytes in, types out; the parser bounds everything by the input length and never panics.
//!
//! ```text
//! POCHTA-QUEUE 1\n
//! id 0A3F0C2B41\n               arrival 1763894400123\n      (unix milliseconds)
//! sender <esc>\n                client <esc>\n    [sasl <esc>] [envid <esc>] [ret FULL|HDRS]
//! [body 7BIT|8BITMIME|BINARYMIME] [smtputf8 1]
//! rcpt <esc address> <NEVER|SUCCESS,FAILURE,DELAY|-> <esc type>;<esc addr>|-
//!      [orig=<esc>] [agent=command|file:<uid>:<gid>:<esc user>:<esc alias address>]\n (≥ 1)
//! content <N>\n <N bytes> \n end <crc32 of everything before "end", 8 hex>\n
//! r2 <idx> <D|F|B> <attempt ms> <attempts> <next ms> <flags> <esc dsn> <esc relay>
//!    <esc diag> <esc reason> <crc32 of the line before>\n       (one line)
//! ```
//! `<esc>`: bytes 0x21..0x7E except `+ ; ,` as is, others `+XX`. A file without a valid `end`
//! line is incomplete (never acknowledged). A torn last record (crash during an append) is
//! ignored and cut off before the next append. `<flags>`: `-` or letters, `n` = the final
//! outcome was notified (bounce or success DSN sent, or none due), `w` = delay notice sent.
//! Files written before `r2` existed hold `r <idx> <D|F|B> <attempt ms> <attempts> <next ms>
//! <esc reason> <crc>` records; they still load (no dsn/relay/diag, nothing notified).
//!
//! `agent=` marks a recipient of pochta's local delivery agent (an aliases(5) `|command` or
//! `/file` target; its address is then the command or the path). Only this field makes a
//! recipient one: the address text never does (a client may send `RCPT TO:<|cmd@x>`), and a
//! line without the field (every file written before it existed) is a mailbox. The `<esc>`
//! parts of `agent=` have `:` escaped too (`+3A`).

use crate::QueueId;
use pochta_smtp::{Body, Notify, Orcpt, Ret};
use std::fmt;
use std::ops::Range;

const MAGIC: &[u8] = b"POCHTA-QUEUE 1\n";
/// Longest header or record line; anything longer is corruption.
const MAX_LINE: usize = 64 * 1024;
/// Longest stored reason (the server's reply text).
pub const MAX_REASON: usize = 1000;

/// The envelope as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub id: QueueId,
    /// Arrival time, unix milliseconds.
    pub arrival_ms: u64,
    /// Reverse-path without `<>`; empty = null sender.
    pub sender: String,
    pub recipients: Vec<StoredRecipient>,
    pub envid: Option<String>,
    pub ret: Option<Ret>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub client: String,
    pub sasl_username: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecipient {
    pub address: String,
    pub notify: Option<Notify>,
    pub orcpt: Option<Orcpt>,
    /// The address as the client gave it when alias expansion changed it (Postfix's
    /// `orig_to=`; the bounce says "expanded from"). `None`: delivered as given.
    pub orig: Option<String>,
    /// Who delivers it; [`Agent::Mailbox`] unless the `agent=` field of this very record says
    /// otherwise.
    pub agent: Agent,
}

/// How a recipient is delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Agent {
    /// An address: LMTP for the local domains, SMTP to the MX for the others.
    #[default]
    Mailbox,
    /// An aliases(5) `|command` (the recipient's address, without the `|`), run with the
    /// message on its standard input (Postfix local(8) deliver_command()).
    Command {
        /// The delivery rights: the owner of the aliases file that named it.
        uid: u32,
        gid: u32,
        alias: LocalAlias,
    },
    /// An aliases(5) `/file` (the recipient's address), appended to in mbox format (Postfix
    /// local(8) deliver_file()).
    File {
        uid: u32,
        gid: u32,
        alias: LocalAlias,
    },
}

/// The aliases(5) entry whose value named a command or file, as local(8) describes it to
/// the command (USER, RECIPIENT, LOCAL, EXTENSION, DOMAIN) and in Delivered-To.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocalAlias {
    /// The alias name without extension (local(8)'s USER, LOGNAME).
    pub user: String,
    /// The address being delivered when the alias matched (`log+ext@example.org`):
    /// local(8)'s RECIPIENT and the Delivered-To header.
    pub address: String,
}

impl Agent {
    /// `command`, `file`, or `mailbox` (logs, errors).
    pub fn kind(&self) -> &'static str {
        match self {
            Agent::Mailbox => "mailbox",
            Agent::Command { .. } => "command",
            Agent::File { .. } => "file",
        }
    }

    /// The alias entry of a command or file.
    pub fn alias(&self) -> Option<&LocalAlias> {
        match self {
            Agent::Mailbox => None,
            Agent::Command { alias, .. } | Agent::File { alias, .. } => Some(alias),
        }
    }
}

impl StoredRecipient {
    /// The recipient as logs and mailq show it: `|command` for a command, else the address
    /// (a file's path, a mailbox).
    pub fn shown(&self) -> String {
        match self.agent {
            Agent::Command { .. } => format!("|{}", self.address),
            _ => self.address.clone(),
        }
    }

    /// The address a notice reports for it (Final-Recipient): the alias for a command or a
    /// file, as Postfix's local(8) reports its recipient; else the address.
    pub fn reported(&self) -> &str {
        self.agent
            .alias()
            .map_or(self.address.as_str(), |a| a.address.as_str())
    }

    /// The original recipient for DSNs and for the next hop's ORCPT: the client's ORCPT,
    /// else the address before alias expansion (Postfix sends `ORCPT=rfc822;orig` then too).
    pub fn original(&self) -> Option<Orcpt> {
        self.orcpt.clone().or_else(|| {
            self.orig.as_ref().map(|o| Orcpt {
                addr_type: "rfc822".into(),
                address: o.clone(),
            })
        })
    }
}

/// Where a recipient stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RcptStatus {
    /// Not tried yet.
    Pending,
    /// Temporary failure; retried at `next_ms`.
    Deferred,
    Delivered,
    /// Permanent failure (5xx, or temporary past the queue lifetime): kept until the sender
    /// was notified (`RcptState::notified`), then the message is removed.
    Bounced,
}

impl RcptStatus {
    /// Still to be delivered.
    pub fn is_open(self) -> bool {
        matches!(self, RcptStatus::Pending | RcptStatus::Deferred)
    }
}

/// The current state of one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptState {
    pub status: RcptStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Time of the last attempt (unix ms), 0 = never.
    pub last_ms: u64,
    /// Next attempt (unix ms); 0 = as soon as possible.
    pub next_ms: u64,
    /// The last server reply or error, for logs and mailq (Postfix's wording:
    /// `host X said: 550 5.1.1 … (in reply to RCPT TO command)`).
    pub reason: String,
    /// Enhanced status of the last result (`5.1.1`; derived from the reply code when the
    /// server gave none; `4.4.7` once the queue lifetime expired); empty = never tried.
    pub dsn: String,
    /// The MTA that gave the last result, as logged in `relay=`:
    /// `mx.example.org[192.0.2.1]:25`, `local[/run/pochta/lmtp]`, or `none`; empty = never
    /// tried.
    pub relay: String,
    /// RFC 3464 Diagnostic-Code value: `smtp; 550 5.1.1 <x@y>: no such user` for a server
    /// reply, `X-Postfix; connect to …: Connection refused` for our own words; empty = none.
    pub diag: String,
    /// The final outcome has been reported to the sender (bounce or success DSN enqueued and
    /// fsynced), or no report was due (NOTIFY=NEVER, null sender handled): never again.
    pub notified: bool,
    /// A delay notice (RFC 3464 action=delayed) has been sent for this recipient.
    pub delay_notified: bool,
}

impl RcptState {
    pub fn pending() -> RcptState {
        RcptState {
            status: RcptStatus::Pending,
            attempts: 0,
            last_ms: 0,
            next_ms: 0,
            reason: String::new(),
            dsn: String::new(),
            relay: String::new(),
            diag: String::new(),
            notified: false,
            delay_notified: false,
        }
    }
}

/// A parsed queue file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub envelope: Envelope,
    /// Where the content is in the input.
    pub content: Range<usize>,
    /// One per recipient, in envelope order.
    pub states: Vec<RcptState>,
    /// Length of the valid prefix (everything after is a torn record to cut off).
    pub valid_len: usize,
}

/// Why a file is not a (complete) queue file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// No valid `end` line: an incomplete write, never acknowledged.
    Incomplete,
    /// Structurally wrong: corruption or not our file.
    Corrupt(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Incomplete => write!(f, "incomplete queue file"),
            FormatError::Corrupt(m) => write!(f, "corrupt queue file: {m}"),
        }
    }
}

impl std::error::Error for FormatError {}

fn corrupt(m: impl Into<String>) -> FormatError {
    FormatError::Corrupt(m.into())
}

/// The bytes of a new queue file.
pub fn encode(env: &Envelope, content: &[u8]) -> Vec<u8> {
    let mut h = String::with_capacity(256 + 64 * env.recipients.len());
    h.push_str("POCHTA-QUEUE 1\n");
    h.push_str(&format!("id {}\narrival {}\n", env.id, env.arrival_ms));
    h.push_str(&format!(
        "sender {}\nclient {}\n",
        esc(&env.sender),
        esc(&env.client)
    ));
    if let Some(s) = &env.sasl_username {
        h.push_str(&format!("sasl {}\n", esc(s)));
    }
    if let Some(e) = &env.envid {
        h.push_str(&format!("envid {}\n", esc(e)));
    }
    if let Some(r) = env.ret {
        h.push_str(match r {
            Ret::Full => "ret FULL\n",
            Ret::Hdrs => "ret HDRS\n",
        });
    }
    if let Some(b) = env.body {
        h.push_str(match b {
            Body::SevenBit => "body 7BIT\n",
            Body::EightBitMime => "body 8BITMIME\n",
            Body::BinaryMime => "body BINARYMIME\n",
        });
    }
    if env.smtputf8 {
        h.push_str("smtputf8 1\n");
    }
    for r in &env.recipients {
        let notify = r.notify.map(notify_text).unwrap_or_else(|| "-".into());
        let orcpt = match &r.orcpt {
            Some(o) => format!("{};{}", esc(&o.addr_type), esc(&o.address)),
            None => "-".into(),
        };
        // Optional fields are `key=value` after the fixed three (older files have none).
        let orig = match &r.orig {
            Some(o) => format!(" orig={}", esc(o)),
            None => String::new(),
        };
        let agent = encode_agent(&r.agent);
        h.push_str(&format!(
            "rcpt {} {notify} {orcpt}{orig}{agent}\n",
            esc(&r.address)
        ));
    }
    h.push_str(&format!("content {}\n", content.len()));
    let mut out = Vec::with_capacity(h.len() + content.len() + 16);
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(content);
    out.push(b'\n');
    let crc = crc32(&out);
    out.extend_from_slice(format!("end {crc:08x}\n").as_bytes());
    out
}

/// One appended state record for recipient `idx`.
pub fn encode_record(idx: usize, st: &RcptState) -> Vec<u8> {
    let kind = match st.status {
        RcptStatus::Pending | RcptStatus::Deferred => 'F',
        RcptStatus::Delivered => 'D',
        RcptStatus::Bounced => 'B',
    };
    let cut = |t: &str| -> String { esc(&t.chars().take(MAX_REASON).collect::<String>()) };
    let mut flags = String::new();
    if st.notified {
        flags.push('n');
    }
    if st.delay_notified {
        flags.push('w');
    }
    if flags.is_empty() {
        flags.push('-');
    }
    let line = format!(
        "r2 {idx} {kind} {} {} {} {flags} {} {} {} {}",
        st.last_ms,
        st.attempts,
        st.next_ms,
        cut(&st.dsn),
        cut(&st.relay),
        cut(&st.diag),
        cut(&st.reason)
    );
    format!("{line} {:08x}\n", crc32(line.as_bytes())).into_bytes()
}

/// Parses a whole queue file.
pub fn parse(buf: &[u8]) -> Result<Parsed, FormatError> {
    if !buf.starts_with(MAGIC) {
        if MAGIC.starts_with(buf) {
            return Err(FormatError::Incomplete);
        }
        return Err(corrupt("bad magic"));
    }
    let mut pos = MAGIC.len();
    let mut id = None;
    let mut arrival = None;
    let mut sender = None;
    let mut client = None;
    let mut env_opt = (None, None, None, None, false); // sasl, envid, ret, body, utf8
    let mut recipients = Vec::new();
    let content_len: usize;
    loop {
        let Some(line) = next_line(buf, &mut pos)? else {
            return Err(FormatError::Incomplete);
        };
        let (key, val) = line.split_once(' ').ok_or_else(|| corrupt("header line"))?;
        match key {
            "id" => id = Some(QueueId::parse(val).ok_or_else(|| corrupt("bad id"))?),
            "arrival" => arrival = Some(val.parse::<u64>().map_err(|_| corrupt("arrival"))?),
            "sender" => sender = Some(unesc(val)?),
            "client" => client = Some(unesc(val)?),
            "sasl" => env_opt.0 = Some(unesc(val)?),
            "envid" => env_opt.1 = Some(unesc(val)?),
            "ret" => {
                env_opt.2 = Some(match val {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Hdrs,
                    _ => return Err(corrupt("ret")),
                })
            }
            "body" => {
                env_opt.3 = Some(match val {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(corrupt("body")),
                })
            }
            "smtputf8" => env_opt.4 = val == "1",
            "rcpt" => recipients.push(parse_rcpt(val)?),
            "content" => {
                content_len = val.parse().map_err(|_| corrupt("content length"))?;
                break;
            }
            _ => return Err(corrupt(format!("unknown header {}", trunc(key)))),
        }
    }
    let start = pos;
    let end = start
        .checked_add(content_len)
        .ok_or_else(|| corrupt("content length"))?;
    if end >= buf.len() {
        return Err(FormatError::Incomplete);
    }
    if buf[end] != b'\n' {
        return Err(corrupt("content not followed by newline"));
    }
    pos = end + 1;
    let crc = crc32(&buf[..pos]);
    let Some(end_line) = next_line(buf, &mut pos).map_err(|_| FormatError::Incomplete)? else {
        return Err(FormatError::Incomplete);
    };
    if end_line != format!("end {crc:08x}") {
        // A whole end line with the wrong checksum is damage, not an unfinished write.
        if end_line.len() == 12 && end_line.starts_with("end ") {
            return Err(corrupt("checksum mismatch"));
        }
        return Err(FormatError::Incomplete);
    }
    let envelope = Envelope {
        id: id.ok_or_else(|| corrupt("no id"))?,
        arrival_ms: arrival.ok_or_else(|| corrupt("no arrival"))?,
        sender: sender.ok_or_else(|| corrupt("no sender"))?,
        client: client.unwrap_or_default(),
        sasl_username: env_opt.0,
        envid: env_opt.1,
        ret: env_opt.2,
        body: env_opt.3,
        smtputf8: env_opt.4,
        recipients,
    };
    if envelope.recipients.is_empty() {
        return Err(corrupt("no recipients"));
    }
    let mut states = vec![RcptState::pending(); envelope.recipients.len()];
    let mut valid_len = pos;
    // Records: a bad one ends the list (a torn append); everything before it counts.
    while let Ok(Some(line)) = next_line(buf, &mut pos) {
        match parse_record(line, states.len()) {
            Some((idx, st)) => {
                states[idx] = st;
                valid_len = pos;
            }
            None => break,
        }
    }
    Ok(Parsed {
        envelope,
        content: start..end,
        states,
        valid_len,
    })
}

fn parse_rcpt(val: &str) -> Result<StoredRecipient, FormatError> {
    let mut f = val.split(' ');
    let (Some(addr), Some(notify), Some(orcpt)) = (f.next(), f.next(), f.next()) else {
        return Err(corrupt("rcpt fields"));
    };
    let mut orig = None;
    let mut agent = None;
    for field in f {
        match field.split_once('=') {
            Some(("orig", o)) if orig.is_none() => orig = Some(unesc(o)?),
            Some(("agent", a)) if agent.is_none() => agent = Some(parse_agent(a)?),
            _ => return Err(corrupt("rcpt fields")),
        }
    }
    let notify = match notify {
        "-" => None,
        n => Some(parse_notify(n).ok_or_else(|| corrupt("notify"))?),
    };
    let orcpt = match orcpt {
        "-" => None,
        o => {
            let (t, a) = o.split_once(';').ok_or_else(|| corrupt("orcpt"))?;
            Some(Orcpt {
                addr_type: unesc(t)?,
                address: unesc(a)?,
            })
        }
    };
    Ok(StoredRecipient {
        address: unesc(addr)?,
        notify,
        orcpt,
        orig,
        agent: agent.unwrap_or_default(),
    })
}

/// ` agent=command:UID:GID:USER:ALIAS` (or `file:…`); nothing for a mailbox.
fn encode_agent(agent: &Agent) -> String {
    let (kind, uid, gid, alias) = match agent {
        Agent::Mailbox => return String::new(),
        Agent::Command { uid, gid, alias } => ("command", uid, gid, alias),
        Agent::File { uid, gid, alias } => ("file", uid, gid, alias),
    };
    let part = |s: &str| esc(s).replace(':', "+3A");
    format!(
        " agent={kind}:{uid}:{gid}:{}:{}",
        part(&alias.user),
        part(&alias.address)
    )
}

fn parse_agent(text: &str) -> Result<Agent, FormatError> {
    let parts: Vec<&str> = text.split(':').collect();
    let [kind, uid, gid, user, address] = parts.as_slice() else {
        return Err(corrupt("agent"));
    };
    let uid = uid.parse().map_err(|_| corrupt("agent uid"))?;
    let gid = gid.parse().map_err(|_| corrupt("agent gid"))?;
    let alias = LocalAlias {
        user: unesc(user)?,
        address: unesc(address)?,
    };
    match *kind {
        "command" => Ok(Agent::Command { uid, gid, alias }),
        "file" => Ok(Agent::File { uid, gid, alias }),
        _ => Err(corrupt("agent kind")),
    }
}

fn parse_record(line: &str, n: usize) -> Option<(usize, RcptState)> {
    let (body, crc) = line.rsplit_once(' ')?;
    if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32(body.as_bytes()) {
        return None;
    }
    let mut f = body.split(' ');
    // `r`: the first format (no dsn/relay/diag/flags); `r2`: the current one.
    let v2 = match f.next()? {
        "r" => false,
        "r2" => true,
        _ => return None,
    };
    let idx: usize = f.next()?.parse().ok()?;
    let status = match f.next()? {
        "D" => RcptStatus::Delivered,
        "F" => RcptStatus::Deferred,
        "B" => RcptStatus::Bounced,
        _ => return None,
    };
    let mut st = RcptState::pending();
    st.status = status;
    st.last_ms = f.next()?.parse().ok()?;
    st.attempts = f.next()?.parse().ok()?;
    st.next_ms = f.next()?.parse().ok()?;
    if v2 {
        let flags = f.next()?;
        if flags != "-" {
            for c in flags.chars() {
                match c {
                    'n' => st.notified = true,
                    'w' => st.delay_notified = true,
                    _ => return None,
                }
            }
        }
        st.dsn = unesc(f.next()?).ok()?;
        st.relay = unesc(f.next()?).ok()?;
        st.diag = unesc(f.next()?).ok()?;
    }
    st.reason = unesc(f.next()?).ok()?;
    if f.next().is_some() || idx >= n {
        return None;
    }
    Some((idx, st))
}

/// The next `\n`-terminated line as UTF-8 (without the `\n`); `Ok(None)` at end of input or
/// on an unterminated last line.
fn next_line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a str>, FormatError> {
    let rest = buf.get(*pos..).unwrap_or_default();
    let window = &rest[..rest.len().min(MAX_LINE)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        if rest.len() > MAX_LINE {
            return Err(corrupt("line too long"));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&rest[..nl]).map_err(|_| corrupt("not UTF-8"))?;
    *pos += nl + 1;
    Ok(Some(line))
}

fn trunc(s: &str) -> String {
    s.chars().take(40).collect()
}

/// `NEVER` or `SUCCESS,FAILURE,DELAY` subset.
pub fn notify_text(n: Notify) -> String {
    pochta_smtp_client::notify_value(n)
}

fn parse_notify(s: &str) -> Option<Notify> {
    let mut n = Notify::default();
    for w in s.split(',') {
        match w {
            "NEVER" => n.never = true,
            "SUCCESS" => n.success = true,
            "FAILURE" => n.failure = true,
            "DELAY" => n.delay = true,
            _ => return None,
        }
    }
    Some(n)
}

/// Escapes everything but printable ASCII (and our separators `+ ; ,`) as `+XX`.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if (0x21..=0x7e).contains(&c) && !b"+;,".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("+{c:02X}"));
        }
    }
    out
}

fn unesc(s: &str) -> Result<String, FormatError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| corrupt("escape"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| corrupt("escape"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| corrupt("escaped text not UTF-8"))
}

/// CRC-32 (IEEE 802.3), bitwise-table free but fast enough for queue files.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = make_table();
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const fn make_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
