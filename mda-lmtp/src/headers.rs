//! The trace headers prepended to each delivered copy, as Dovecot LMTP writes them:
//! `Return-Path`, `Delivered-To` and a `Received` with the session id.

use std::time::{SystemTime, UNIX_EPOCH};

/// What one recipient's trace headers say.
pub struct Trace<'a> {
    pub sender: &'a str,
    pub recipient: &'a str,
    pub helo: &'a str,
    /// The client's IP for TCP sessions.
    pub peer_ip: Option<std::net::IpAddr>,
    pub hostname: &'a str,
    pub with_protocol: &'a str,
    pub session_id: &'a str,
}

/// The header block, each line CRLF-terminated. Inputs come from the SMTP parser, which
/// admits no control characters, so no header can be injected.
pub fn trace_headers(t: &Trace<'_>, now: SystemTime) -> Vec<u8> {
    let from = match t.peer_ip {
        Some(ip) => format!("{} ([{ip}])", t.helo),
        None => t.helo.to_owned(),
    };
    format!(
        "Return-Path: <{}>\r\nDelivered-To: {}\r\nReceived: from {from}\r\n\tby {} with {}\r\n\
         \tid {}\r\n\t(envelope-from <{}>)\r\n\tfor <{}>; {}\r\n",
        t.sender,
        t.recipient,
        t.hostname,
        t.with_protocol,
        t.session_id,
        t.sender,
        t.recipient,
        rfc5322_date(now)
    )
    .into_bytes()
}

/// `Mon, 23 Nov 2026 07:38:17 +0000` (RFC 5322 §3.3), in UTC.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d} {} {y} {:02}:{:02}:{:02} +0000",
        WD[(days % 7) as usize],
        MON[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-since-epoch → (year, month 1..=12, day).
fn civil_from_days(z: u64) -> (u64, u64, u64) {
    let z = z + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The message's Message-ID (the first one in the header, unfolded, at most 200 bytes, only
/// printable ASCII kept), for the `saved` log line as Dovecot logs `msgid=`. The header ends
/// at the first empty line; a message without one has no Message-ID.
pub fn message_id(content: &[u8]) -> Option<String> {
    const MAX: usize = 200;
    let mut lines = content.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"message-id")
        {
            continue;
        }
        let mut value: Vec<u8> = line[colon + 1..].to_vec();
        // folded continuation lines
        while let Some(next) = lines.peek() {
            if !next.first().is_some_and(|b| *b == b' ' || *b == b'\t') || value.len() > MAX {
                break;
            }
            let next = next.strip_suffix(b"\r").unwrap_or(next);
            value.push(b' ');
            value.extend_from_slice(next);
            lines.next();
        }
        let id: String = value
            .trim_ascii()
            .iter()
            .filter(|b| b.is_ascii_graphic() || **b == b' ')
            .take(MAX)
            .map(|&b| char::from(b))
            .collect();
        return (!id.is_empty()).then_some(id);
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids() {
        assert_eq!(
            super::message_id(b"Subject: x\r\nMessage-Id:  <a@b>\r\n\r\nMessage-ID: <c@d>\r\n")
                .as_deref(),
            Some("<a@b>")
        );
        assert_eq!(
            super::message_id(b"message-id:\n <folded@x>\nTo: y\n\nbody").as_deref(),
            Some("<folded@x>")
        );
        assert_eq!(
            super::message_id(b"Subject: x\r\n\r\nMessage-ID: <b@body>\r\n"),
            None
        );
        assert_eq!(
            super::message_id(b"Message-ID: <\x1b[31m@x>\r\n").as_deref(),
            Some("<[31m@x>")
        );
        assert_eq!(super::message_id(b"Message-ID:\r\n"), None);
        assert!(super::message_id(&[b'M'; 100_000]).is_none());
        let long = format!("Message-ID: <{}@x>\r\n", "a".repeat(1000));
        assert_eq!(
            super::message_id(long.as_bytes()).map(|s| s.len()),
            Some(200)
        );
    }

    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_419_497);
        assert_eq!(rfc5322_date(t), "Mon, 23 Nov 2026 07:38:17 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert!(rfc5322_date(leap).starts_with("Tue, 29 Feb 2000"));
    }

    #[test]
    fn headers() {
        let h = trace_headers(
            &Trace {
                sender: "s@x.test",
                recipient: "a+b@y.test",
                helo: "mx.x.test",
                peer_ip: Some("192.0.2.1".parse().unwrap()),
                hostname: "lmtp.y.test",
                with_protocol: "LMTP",
                session_id: "abc123",
            },
            UNIX_EPOCH,
        );
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "Return-Path: <s@x.test>\r\nDelivered-To: a+b@y.test\r\n\
             Received: from mx.x.test ([192.0.2.1])\r\n\tby lmtp.y.test with LMTP\r\n\
             \tid abc123\r\n\t(envelope-from <s@x.test>)\r\n\tfor <a+b@y.test>; \
             Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }
}
