//! The queue listing in Postfix's `mailq` / `postqueue -p` layout (short ids):
//!
//! ```text
//! -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
//! 0A3F0C2B41*    2045 Tue Mar  4 10:15:02  alice@example.org
//!        (connect to local[/run/pochta/lmtp]: Connection refused)
//!                                          bob@example.net
//!
//! -- 2 Kbytes in 1 Request.
//! ```
//! Sender line `%-11s %7ld %20.20s %s` (id with status `*` active / `!` held, size, the first 20
//! characters of asctime()), recipients indented 41 columns, `(reason)` right-aligned to column
//! 78 before the recipients it applies to (only when it changes), a blank line after each
//! message, `MAILER-DAEMON` for the null sender. Delivered recipients are not shown.

use crate::file::{self, RcptState, RcptStatus};
use crate::spool::{io_err, list_ids, QueueError, HOLD, QUEUE};
use crate::QueueId;
use std::fmt::Write;
use std::path::Path;

/// One message as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: QueueId,
    pub held: bool,
    /// Content size in bytes.
    pub size: u64,
    pub arrival_ms: u64,
    pub sender: String,
    /// Recipients not yet delivered, with their state.
    pub recipients: Vec<(String, RcptState)>,
}

impl Entry {
    /// Never tried yet (Postfix's `*`, in the active queue).
    pub fn is_active(&self) -> bool {
        !self.held && self.recipients.iter().all(|(_, s)| s.attempts == 0)
    }
}

/// Reads every message in `queue/` and `hold/`, oldest first. Files being written or removed
/// meanwhile are skipped.
pub fn read_queue(dir: &Path) -> Result<Vec<Entry>, QueueError> {
    let mut out = Vec::new();
    for (sub, held) in [(QUEUE, false), (HOLD, true)] {
        for id in list_ids(dir, sub)? {
            let path = dir.join(sub).join(id.as_str());
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read", &path)(e)),
            };
            let Ok(p) = file::parse(&bytes) else { continue };
            let recipients = p
                .envelope
                .recipients
                .iter()
                .zip(p.states.iter())
                .filter(|(_, s)| s.status != RcptStatus::Delivered)
                .map(|(r, s)| (r.shown(), s.clone()))
                .collect();
            out.push(Entry {
                id,
                held,
                size: p.content.len() as u64,
                arrival_ms: p.envelope.arrival_ms,
                sender: p.envelope.sender.clone(),
                recipients,
            });
        }
    }
    out.sort_by(|a, b| (a.arrival_ms, &a.id).cmp(&(b.arrival_ms, &b.id)));
    Ok(out)
}

/// The listing; `utc_offset` (seconds east of UTC) gives local arrival times.
pub fn format(entries: &[Entry], utc_offset: i64) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_owned();
    }
    let mut out =
        String::from("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    let mut total: u64 = 0;
    for e in entries {
        total += e.size;
        let mark = if e.held {
            "!"
        } else if e.is_active() {
            "*"
        } else {
            ""
        };
        let sender = if e.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &e.sender
        };
        let when = asctime20(e.arrival_ms / 1000, utc_offset);
        let _ = writeln!(
            out,
            "{:<11} {:>7} {:<20.20} {sender}",
            format!("{}{mark}", e.id),
            e.size,
            when
        );
        let mut last_reason: Option<&str> = None;
        for (addr, st) in &e.recipients {
            if !st.reason.is_empty() && last_reason != Some(st.reason.as_str()) {
                let shown = format!("({})", st.reason);
                let pad = 78usize.saturating_sub(shown.chars().count());
                let _ = writeln!(out, "{:pad$}{shown}", "");
                last_reason = Some(st.reason.as_str());
            }
            let _ = writeln!(out, "{:41}{addr}", "");
        }
        out.push('\n');
    }
    let n = entries.len();
    let _ = writeln!(
        out,
        "-- {} Kbytes in {n} Request{}.",
        total / 1024,
        if n == 1 { "" } else { "s" }
    );
    out
}

/// The local time zone's offset from UTC in seconds, as `date +%z` reports it (honours TZ);
/// 0 when that fails. For the command-line tools only (runs a process).
pub fn local_utc_offset() -> i64 {
    let Ok(out) = std::process::Command::new("date").arg("+%z").output() else {
        return 0;
    };
    let s = String::from_utf8_lossy(&out.stdout);
    let s = s.trim();
    let (sign, digits) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => return 0,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let h: i64 = digits[..2].parse().unwrap_or(0);
    let m: i64 = digits[2..].parse().unwrap_or(0);
    sign * (h * 3600 + m * 60)
}

/// `Tue Mar  4 10:15:02 ` — the first 20 characters of asctime().
pub fn asctime20(unix_secs: u64, utc_offset: i64) -> String {
    let t = unix_secs as i64 + utc_offset;
    let days = t.div_euclid(86_400);
    let sod = t.rem_euclid(86_400);
    let (_, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} ",
        WD[days.rem_euclid(7) as usize],
        MON[(m - 1) as usize % 12],
        d,
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// (year, month 1–12, day 1–31) from days since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asctime() {
        // 2025-03-04 10:15:02 UTC was a Tuesday.
        assert_eq!(asctime20(1_741_083_302, 0), "Tue Mar  4 10:15:02 ");
        assert_eq!(asctime20(0, 0), "Thu Jan  1 00:00:00 ");
        assert_eq!(asctime20(0, 3600), "Thu Jan  1 01:00:00 ");
    }

    #[test]
    fn postfix_layout() {
        let deferred = RcptState {
            status: RcptStatus::Deferred,
            attempts: 1,
            last_ms: 0,
            next_ms: 0,
            reason: "connect to mx.example.net[203.0.113.9]:25: Connection refused".into(),
            ..RcptState::pending()
        };
        let entries = vec![
            Entry {
                id: QueueId::parse("4B3C21A0F2").unwrap(),
                held: false,
                size: 2045,
                arrival_ms: 1_741_083_302_000,
                sender: "alice@example.org".into(),
                recipients: vec![("bob@example.net".into(), RcptState::pending())],
            },
            Entry {
                id: QueueId::parse("8C1D24B7E1").unwrap(),
                held: true,
                size: 980,
                arrival_ms: 1_741_078_904_000,
                sender: String::new(),
                recipients: vec![("carol@example.net".into(), deferred)],
            },
        ];
        let expected = "\
-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
4B3C21A0F2*    2045 Tue Mar  4 10:15:02  alice@example.org
                                         bob@example.net

8C1D24B7E1!     980 Tue Mar  4 09:01:44  MAILER-DAEMON
               (connect to mx.example.net[203.0.113.9]:25: Connection refused)
                                         carol@example.net

-- 2 Kbytes in 2 Requests.
";
        assert_eq!(format(&entries, 0), expected);
        assert_eq!(format(&[], 0), "Mail queue is empty\n");
    }
}
