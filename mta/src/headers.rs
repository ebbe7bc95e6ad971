//! What the mta adds to a message before it is queued: a Postfix-like `Received:` header on
//! top, and on submission `Message-ID:`/`Date:` when the client left them out (appended to
//! the header block, as Postfix's cleanup does).
//!
//! The header-block scan is a parser of untrusted input: it only looks, never allocates per
//! line, stops at the first line that is not a header field (RFC 5322 §2.2), and accepts any
//! bytes.

use std::time::{SystemTime, UNIX_EPOCH};

/// Facts about the session for the Received header.
pub struct Trace<'a> {
    /// The EHLO/HELO name (the parser admits no control characters or spaces).
    pub helo: &'a str,
    /// `unknown [192.0.2.1]`-style client for TCP; `None` for the local socket.
    pub client_ip: Option<std::net::IpAddr>,
    /// Local socket: the peer's uid.
    pub local_uid: Option<u32>,
    /// `using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`, if TLS.
    pub tls: Option<(String, String)>,
    pub hostname: &'a str,
    /// RFC 3848 keyword (ESMTPSA, …).
    pub with_protocol: &'a str,
    pub queue_id: &'a str,
    /// Named in `for <…>` when there is exactly one.
    pub single_recipient: Option<&'a str>,
}

/// The cipher name as OpenSSL/Postfix show it for TLS 1.3 (`TLS13_AES_256_GCM_SHA384` →
/// `TLS_AES_256_GCM_SHA384`), and its key bits.
fn cipher_text(cipher: &str) -> String {
    let name = match cipher.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => cipher.to_owned(),
    };
    let bits = if name.contains("AES_128") {
        Some(128)
    } else if name.contains("AES_256") || name.contains("CHACHA20") {
        Some(256)
    } else {
        None
    };
    match bits {
        Some(b) => format!("{name} ({b}/{b} bits)"),
        None => name,
    }
}

/// The `Received:` header, folded, CRLF-terminated.
pub fn received(t: &Trace<'_>, now: SystemTime) -> Vec<u8> {
    let mut h = String::from("Received: ");
    match (t.client_ip, t.local_uid) {
        (_, Some(uid)) => {
            // Postfix pickup: `by host (Postfix, from userid 1000)`.
            h.push_str(&format!(
                "by {} (pochta, from userid {uid})\r\n",
                t.hostname
            ));
            h.push_str(&format!("\tid {}", t.queue_id));
        }
        (ip, None) => {
            let ip = ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
            h.push_str(&format!("from {} (unknown [{ip}])\r\n", t.helo));
            if let Some((proto, cipher)) = &t.tls {
                h.push_str(&format!(
                    "\t(using {proto} with cipher {})\r\n",
                    cipher_text(cipher)
                ));
            }
            h.push_str(&format!(
                "\tby {} (pochta) with {} id {}",
                t.hostname, t.with_protocol, t.queue_id
            ));
        }
    }
    if let Some(r) = t.single_recipient {
        h.push_str(&format!("\r\n\tfor <{r}>"));
    }
    h.push_str(&format!("; {}\r\n", rfc5322_date(now)));
    h.into_bytes()
}

/// What the header block of a message holds, as far as the mta cares.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeaderScan {
    /// Octets of the header block (where missing fields are appended); the empty separator
    /// line, if any, starts here.
    pub end: usize,
    pub has_message_id: bool,
    pub has_date: bool,
    /// The Message-ID value (trimmed, at most 200 octets), for the log.
    pub message_id: Option<String>,
    /// Received: fields in the header block (hops the message has made).
    pub received: usize,
}

/// Scans the header block of `msg` (RFC 5322 §2.2: `name: value` lines and their folded
/// continuations up to the first empty line or non-header line).
pub fn scan(msg: &[u8]) -> HeaderScan {
    let mut out = HeaderScan::default();
    let mut pos = 0;
    let mut in_message_id = false;
    while pos < msg.len() {
        let rest = &msg[pos..];
        let line_len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..line_len];
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if content.is_empty() {
            break;
        }
        if content[0] == b' ' || content[0] == b'\t' {
            // Folded continuation: belongs to the previous field (none before = not headers).
            if pos == 0 {
                break;
            }
            if in_message_id && out.message_id.as_deref() == Some("") {
                out.message_id = Some(trimmed(content));
            }
        } else {
            let Some(colon) = content.iter().position(|&b| b == b':') else {
                break;
            };
            let name = &content[..colon];
            let is_field_name =
                !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':');
            if !is_field_name {
                break;
            }
            in_message_id = name.eq_ignore_ascii_case(b"Message-ID");
            if in_message_id {
                out.has_message_id = true;
                out.message_id = Some(trimmed(&content[colon + 1..]));
            }
            if name.eq_ignore_ascii_case(b"Date") {
                out.has_date = true;
            }
            if name.eq_ignore_ascii_case(b"Received") {
                out.received += 1;
            }
        }
        pos += line_len;
        out.end = pos;
    }
    out
}

fn trimmed(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    let t = s.trim();
    let mut end = t.len().min(200);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t[..end].to_owned()
}

/// Headers to append on submission: `Date:` and `Message-ID: <YYYYmmddHHMMSS.ID@host>`
/// (Postfix's format) when missing. Returns them and the Message-ID now in effect.
pub fn missing_headers(
    scan: &HeaderScan,
    queue_id: &str,
    hostname: &str,
    now: SystemTime,
) -> (Vec<u8>, Option<String>) {
    let mut out = String::new();
    let mut id = scan.message_id.clone();
    if !scan.has_date {
        out.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    }
    if !scan.has_message_id {
        let (y, mo, d, h, mi, s) = civil(now);
        let new = format!("<{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}.{queue_id}@{hostname}>");
        out.push_str(&format!("Message-ID: {new}\r\n"));
        id = Some(new);
    }
    (out.into_bytes(), id)
}

/// The content to queue: Received on top, the client's header block, the added fields,
/// then the rest. A message without a header/body separator gets the added fields at the
/// point where its header block ends.
pub fn assemble(received: &[u8], body: &[u8], end: usize, added: &[u8]) -> Vec<u8> {
    let end = end.min(body.len());
    let mut out = Vec::with_capacity(received.len() + body.len() + added.len() + 2);
    out.extend_from_slice(received);
    out.extend_from_slice(&body[..end]);
    if !added.is_empty() && end > 0 && !body[..end].ends_with(b"\n") {
        // The last header line had no line end (a message of headers only).
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(added);
    if !added.is_empty() && end == 0 && !body.is_empty() && !body.starts_with(b"\r\n") {
        // No header block at all: keep the body a body.
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&body[end..]);
    out
}

/// `Mon, 23 Nov 2026 07:38:17 +0000 (UTC)` (RFC 5322 §3.3 with Postfix's comment).
pub fn rfc5322_date(t: SystemTime) -> String {
    let (y, m, d, h, mi, s) = civil(t);
    let days = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) / 86_400;
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wd = WD.get((days % 7) as usize).copied().unwrap_or("Thu");
    let mon = MON
        .get((m as usize).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!("{wd}, {d} {mon} {y} {h:02}:{mi:02}:{s:02} +0000 (UTC)")
}

/// (year, month 1..=12, day, hour, minute, second) in UTC; Howard Hinnant's civil_from_days.
fn civil(t: SystemTime) -> (u64, u64, u64, u64, u64, u64) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rem = secs % 86_400;
    let z = secs / 86_400 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T: u64 = 1_795_419_497; // Mon, 23 Nov 2026 07:38:17 UTC

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T)
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(at()), "Mon, 23 Nov 2026 07:38:17 +0000 (UTC)");
        assert_eq!(
            rfc5322_date(UNIX_EPOCH),
            "Thu, 1 Jan 1970 00:00:00 +0000 (UTC)"
        );
    }

    #[test]
    fn received_like_postfix() {
        let t = Trace {
            helo: "client.test",
            client_ip: Some("192.0.2.1".parse().unwrap()),
            local_uid: None,
            tls: Some(("TLSv1.3".into(), "TLS13_AES_256_GCM_SHA384".into())),
            hostname: "mx.pochta.test",
            with_protocol: "ESMTPSA",
            queue_id: "4B3C21A0F2",
            single_recipient: Some("bob@pochta.test"),
        };
        assert_eq!(
            String::from_utf8(received(&t, at())).unwrap(),
            "Received: from client.test (unknown [192.0.2.1])\r\n\
             \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\
             \tby mx.pochta.test (pochta) with ESMTPSA id 4B3C21A0F2\r\n\
             \tfor <bob@pochta.test>; Mon, 23 Nov 2026 07:38:17 +0000 (UTC)\r\n"
        );
        let local = Trace {
            local_uid: Some(1000),
            client_ip: None,
            tls: None,
            single_recipient: None,
            ..t
        };
        assert_eq!(
            String::from_utf8(received(&local, at())).unwrap(),
            "Received: by mx.pochta.test (pochta, from userid 1000)\r\n\
             \tid 4B3C21A0F2; Mon, 23 Nov 2026 07:38:17 +0000 (UTC)\r\n"
        );
    }

    #[test]
    fn scans_header_block() {
        let m = b"From: a@b\r\nMessage-ID:\r\n <x@y>\r\nSubject: s\r\n\r\nbody\r\nDate: no\r\n";
        let s = scan(m);
        assert_eq!(s.end, 44);
        assert!(s.has_message_id);
        assert!(!s.has_date);
        assert_eq!(s.message_id.as_deref(), Some("<x@y>"));
        let s = scan(b"no header here\r\n");
        assert_eq!(s.end, 0);
        let s = scan(b"Date: x\r\nSubject: only headers");
        assert_eq!(s.end, 30);
        assert!(s.has_date);
        assert_eq!(s.received, 0);
        // Received: fields count hops, folded or not, in any case; a body line does not.
        let m = b"Received: from a\r\n\tby b; d\r\nRECEIVED: x\r\nreceived:y\r\n\r\n\
                  Received: z\r\n";
        assert_eq!(scan(m).received, 3);
    }

    #[test]
    fn adds_missing_headers() {
        let body = b"Subject: s\r\n\r\nhi\r\n";
        let s = scan(body);
        let (added, id) = missing_headers(&s, "ABC", "mx.test", at());
        assert_eq!(id.as_deref(), Some("<20261123073817.ABC@mx.test>"));
        let out = assemble(b"Received: x\r\n", body, s.end, &added);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Received: x\r\nSubject: s\r\nDate: Mon, 23 Nov 2026 07:38:17 +0000 (UTC)\r\n\
             Message-ID: <20261123073817.ABC@mx.test>\r\n\r\nhi\r\n"
        );
        let out = assemble(b"", b"just a body\r\n", 0, b"Date: d\r\n");
        assert_eq!(out, b"Date: d\r\n\r\njust a body\r\n");
        let out = assemble(b"", b"Subject: x", 10, b"Date: d\r\n");
        assert_eq!(out, b"Subject: x\r\nDate: d\r\n");
    }

    proptest::proptest! {
        #[test]
        fn scan_never_panics_and_stays_in_bounds(data: Vec<u8>) {
            let s = scan(&data);
            proptest::prop_assert!(s.end <= data.len());
            let (added, _) = missing_headers(&s, "Q", "h", at());
            let out = assemble(b"R\r\n", &data, s.end, &added);
            proptest::prop_assert!(out.len() >= data.len());
        }
    }
}
