//! The report builder: a worked example checked field by field, and a proptest that any
//! envelope, states and content give a well-formed multipart/report.

use super::*;
use crate::file::RcptStatus;
use crate::QueueId;
use pochta_smtp::{Notify, Orcpt};
use proptest::prelude::*;

fn env(sender: &str, rcpts: &[&str]) -> Envelope {
    Envelope {
        id: QueueId::parse("0A3F0C2B41").unwrap(),
        arrival_ms: 1_763_894_400_123,
        sender: sender.into(),
        recipients: rcpts
            .iter()
            .map(|a| StoredRecipient {
                address: (*a).into(),
                notify: None,
                orcpt: None,
                orig: None,
                agent: Default::default(),
            })
            .collect(),
        envid: Some("E=1".into()),
        ret: None,
        body: None,
        smtputf8: false,
        client: String::new(),
        sasl_username: None,
    }
}

fn bounced(reason: &str) -> RcptState {
    RcptState {
        status: RcptStatus::Bounced,
        attempts: 1,
        last_ms: 1_763_894_401_000,
        next_ms: 0,
        reason: format!("host local[/run/lmtp] said: {reason} (in reply to end of data command)"),
        dsn: "5.2.2".into(),
        relay: "local[/run/lmtp]".into(),
        diag: format!("smtp; {reason}"),
        notified: false,
        delay_notified: false,
    }
}

/// A minimal MIME reader for the checks: (header fields unfolded, body).
fn split_message(m: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = m.split_once("\r\n\r\n").unwrap_or((m, ""));
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("continuation without a field");
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (k, v) = line.split_once(':').expect("header line without a colon");
            fields.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    (fields, body)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Checks the structure; returns the three parts (fields, body).
fn check(out: &[u8], n_rcpts: usize) -> Vec<(Vec<(String, String)>, String)> {
    // CRLF only, lines ≤ 998 octets, no NUL.
    let mut i = 0;
    for line in out.split(|&b| b == b'\n') {
        if i + line.len() == out.len() {
            assert!(line.is_empty(), "last line not terminated");
            break;
        }
        assert!(line.ends_with(b"\r"), "bare LF");
        let l = &line[..line.len() - 1];
        assert!(!l.contains(&b'\r'), "bare CR");
        assert!(!l.contains(&0), "NUL");
        assert!(l.len() <= 998, "line of {} octets", l.len());
        i += line.len() + 1;
    }
    let text = String::from_utf8_lossy(out).into_owned();
    let (top, body) = split_message(&text);
    assert_eq!(field(&top, "mime-version"), Some("1.0"));
    let ct = field(&top, "content-type").unwrap();
    assert!(
        ct.starts_with("multipart/report; report-type=delivery-status;"),
        "{ct}"
    );
    let boundary = ct
        .split("boundary=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    let delim = format!("\r\n--{boundary}");
    let wrapped = format!("\r\n{body}");
    let pieces: Vec<&str> = wrapped.split(&delim).collect();
    assert_eq!(pieces.len(), 5, "preamble, 3 parts, epilogue: {pieces:?}");
    assert!(pieces[4].starts_with("--"), "close delimiter");
    let parts: Vec<(Vec<(String, String)>, String)> = pieces[1..4]
        .iter()
        .map(|p| {
            let p = p.strip_prefix("\r\n").unwrap();
            let (f, b) = split_message(p);
            (f, b.to_owned())
        })
        .collect();
    assert!(field(&parts[0].0, "content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        field(&parts[1].0, "content-type"),
        Some("message/delivery-status")
    );
    let ct3 = field(&parts[2].0, "content-type").unwrap();
    assert!(
        ct3 == "message/rfc822" || ct3 == "text/rfc822-headers",
        "{ct3}"
    );
    // Delivery status: per-message group, then one group per recipient (RFC 3464 §2.1).
    let ds = parts[1].1.trim_end_matches("\r\n");
    let groups: Vec<&str> = ds.split("\r\n\r\n").collect();
    assert_eq!(groups.len(), 1 + n_rcpts, "{ds}");
    assert!(groups[0].starts_with("Reporting-MTA: dns; "), "{ds}");
    assert!(ds.is_ascii(), "delivery-status not 7-bit");
    for g in &groups[1..] {
        let (f, _) = split_message(g);
        assert!(field(&f, "final-recipient").is_some(), "{g}");
        assert!(field(&f, "action").is_some(), "{g}");
        assert!(valid_status(field(&f, "status").unwrap()), "{g}");
    }
    // 8-bit content is declared.
    if out.iter().any(|&b| b >= 0x80) {
        assert_eq!(field(&top, "content-transfer-encoding"), Some("8bit"));
    }
    parts
}

fn report<'a>(
    kind: Kind,
    env: &'a Envelope,
    states: &'a [RcptState],
    content: &'a [u8],
    full: bool,
) -> Report<'a> {
    Report {
        kind,
        hostname: "mx.pochta.test",
        env,
        rcpts: env.recipients.iter().zip(states.iter()).collect(),
        to: &env.sender,
        new_id: "0A3F0C2B99",
        now_ms: 1_763_894_460_000,
        content,
        full,
        delay_warning: Duration::from_secs(4 * 3600),
        lifetime: Duration::from_secs(5 * 86400),
    }
}

#[test]
fn failure_report_fields() {
    let mut e = env("alice@pochta.test", &["full@pochta.test"]);
    e.recipients[0].orcpt = Some(Orcpt {
        addr_type: "rfc822".into(),
        address: "Full+1@pochta.test".into(),
    });
    let states = [bounced("552 5.2.2 <full@pochta.test> Quota exceeded")];
    let content = b"Subject: hi\r\nFrom: alice@pochta.test\r\n\r\nbody line\r\n";
    let b = build(&report(Kind::Failure, &e, &states, content, true));
    assert!(!b.eight_bit);
    let parts = check(&b.content, 1);
    let text = String::from_utf8(b.content.clone()).unwrap();
    assert!(text.contains("\r\nFrom: MAILER-DAEMON@mx.pochta.test (Mail Delivery System)\r\n"));
    assert!(text.contains("\r\nSubject: Undelivered Mail Returned to Sender\r\n"));
    assert!(text.contains("\r\nTo: <alice@pochta.test>\r\n"));
    assert!(text.contains("\r\nAuto-Submitted: auto-replied\r\n"));
    assert!(parts[0]
        .1
        .starts_with("This is the mail system at host mx.pochta.test.\r\n"));
    assert!(parts[0].1.contains(
        "<full@pochta.test>: host local[/run/lmtp] said: 552 5.2.2 <full@pochta.test> Quota \
         exceeded (in reply to end of data command)"
    ));
    let ds = &parts[1].1;
    for line in [
        "Reporting-MTA: dns; mx.pochta.test",
        "X-Postfix-Queue-ID: 0A3F0C2B41",
        "X-Postfix-Sender: rfc822; alice@pochta.test",
        "Original-Envelope-Id: E+3D1",
        "Arrival-Date: Sun, 23 Nov 2025 10:40:00 +0000",
        "Final-Recipient: rfc822; full@pochta.test",
        "Original-Recipient: rfc822;Full+2B1@pochta.test",
        "Action: failed",
        "Status: 5.2.2",
        "Remote-MTA: dns; local",
        "Diagnostic-Code: smtp; 552 5.2.2 <full@pochta.test> Quota exceeded",
        "Last-Attempt-Date: Sun, 23 Nov 2025 10:40:01 +0000",
    ] {
        assert!(ds.contains(&format!("{line}\r\n")), "{line:?} not in\n{ds}");
    }
    assert_eq!(field(&parts[2].0, "content-type"), Some("message/rfc822"));
    assert!(parts[2].1.starts_with("Subject: hi\r\n"));
    assert!(parts[2].1.contains("body line"));
}

#[test]
fn delay_report_headers_only_and_8bit() {
    let e = env("bob@pochta.test", &["x@pochta.test", "y@pochta.test"]);
    let mut st = bounced("452 4.2.2 full");
    st.status = RcptStatus::Deferred;
    st.dsn = "4.2.2".into();
    let states = [st.clone(), st];
    let content = "Subject: caf\u{e9}\r\n\r\nsecret body\r\n".as_bytes();
    let b = build(&report(Kind::Delay, &e, &states, content, false));
    assert!(b.eight_bit);
    let parts = check(&b.content, 2);
    let text = String::from_utf8_lossy(&b.content);
    assert!(text.contains("Subject: Delayed Mail (still being retried)\r\n"));
    assert!(parts[0]
        .1
        .contains("Your message could not be delivered for 4 hour(s).\r\n"));
    assert!(parts[0]
        .1
        .contains("It will be retried until it is 5 day(s) old.\r\n"));
    assert!(parts[1].1.contains("Action: delayed\r\n"));
    assert!(parts[1].1.contains("Status: 4.2.2\r\n"));
    assert!(parts[1]
        .1
        .contains("Will-Retry-Until: Fri, 28 Nov 2025 10:40:00 +0000\r\n"));
    assert_eq!(
        field(&parts[2].0, "content-type"),
        Some("text/rfc822-headers")
    );
    assert_eq!(
        field(&parts[2].0, "content-transfer-encoding"),
        Some("8bit")
    );
    assert!(!parts[2].1.contains("secret body"));
}

#[test]
fn success_and_utf8_addresses() {
    let mut e = env("s@x.test", &["d\u{fc}rst@pochta.test"]);
    e.recipients[0].notify = Some(Notify {
        success: true,
        ..Notify::default()
    });
    let st = RcptState {
        status: RcptStatus::Delivered,
        dsn: "2.0.0".into(),
        diag: "smtp; 250 2.0.0 ok".into(),
        relay: "local[/x]".into(),
        reason: "250 2.0.0 ok".into(),
        ..RcptState::pending()
    };
    let states = [st];
    let b = build(&report(
        Kind::Success,
        &e,
        &states,
        b"A: b\r\n\r\nc\r\n",
        false,
    ));
    let parts = check(&b.content, 1);
    assert!(parts[1].1.contains("Action: delivered\r\n"));
    assert!(parts[1]
        .1
        .contains("Final-Recipient: utf-8; d\\x{FC}rst@pochta.test\r\n"));
}

#[test]
fn long_lines_broken_and_boundary_avoided() {
    let e = env("a@b", &["c@d"]);
    let states = [bounced(&"x".repeat(3000))];
    let mut content = format!("Subject: {}\r\n\r\n", "y".repeat(5000)).into_bytes();
    content.extend_from_slice(b"--0A3F0C2B99.1763894460/mx.pochta.test\r\nbare\rCR\nLF\0\r\n");
    let b = build(&report(Kind::Failure, &e, &states, &content, true));
    check(&b.content, 1);
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z@.]{0,12}",
        "\\PC{0,20}",
        "[ +;,=%\t\r\n\\\\-]{0,6}",
        ".{0,1200}"
    ]
}

proptest! {
    #[test]
    fn any_input_gives_a_wellformed_report(
        sender in arb_text(),
        rcpts in proptest::collection::vec((arb_text(), arb_text(), arb_text()), 1..4),
        content in proptest::collection::vec(any::<u8>(), 0..3000),
        envid in proptest::option::of(arb_text()),
        kind in 0..4u8,
        full in any::<bool>(),
        dsn in "[0-9.]{0,7}",
    ) {
        let mut e = env(&sender, &[]);
        e.envid = envid;
        let mut states = Vec::new();
        for (addr, reason, orcpt) in rcpts {
            e.recipients.push(StoredRecipient {
                address: addr,
                notify: None,
                orcpt: (!orcpt.is_empty()).then(|| Orcpt { addr_type: "rfc822".into(),
                                                           address: orcpt }),
                orig: None,
                agent: Default::default(),
            });
            let mut st = bounced(&reason);
            st.dsn = dsn.clone();
            states.push(st);
        }
        let kind = [Kind::Failure, Kind::Delay, Kind::Success, Kind::Postmaster][kind as usize];
        let b = build(&report(kind, &e, &states, &content, full));
        check(&b.content, states.len());
    }
}
