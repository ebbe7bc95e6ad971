//! Queue file format: examples, round-trips (proptest) and hostile input.

use super::*;
use proptest::prelude::*;

fn sample() -> Envelope {
    Envelope {
        id: QueueId::parse("0A3F0C2B41").unwrap(),
        arrival_ms: 1_763_894_400_123,
        sender: "a b+c@x.test".into(),
        recipients: vec![
            StoredRecipient {
                address: "u1@pochta.test".into(),
                notify: None,
                orcpt: None,
                orig: None,
                agent: Agent::Mailbox,
            },
            StoredRecipient {
                address: "ü;2@pochta.test".into(),
                notify: Some(Notify {
                    failure: true,
                    delay: true,
                    ..Notify::default()
                }),
                orcpt: Some(Orcpt {
                    addr_type: "rfc822".into(),
                    address: "x y@z".into(),
                }),
                orig: Some("Post Master@pochta.test".into()),
                agent: Agent::Mailbox,
            },
            StoredRecipient {
                address: "/bin/sh -c 'cat >> /tmp/x; exit 0' # a+b;c,d:e=f".into(),
                notify: None,
                orcpt: None,
                orig: Some("log@pochta.test".into()),
                agent: Agent::Command {
                    uid: 1000,
                    gid: 100,
                    alias: LocalAlias {
                        user: "lo:g".into(),
                        address: "lo:g+x=y@pochta.test".into(),
                    },
                },
            },
            StoredRecipient {
                address: "/var/mail/archive box".into(),
                notify: None,
                orcpt: None,
                orig: Some("archive@pochta.test".into()),
                agent: Agent::File {
                    uid: 4_000_000_000,
                    gid: 0,
                    alias: LocalAlias {
                        user: "archive".into(),
                        address: "archive@pochta.test".into(),
                    },
                },
            },
        ],
        envid: Some("E 1".into()),
        ret: Some(Ret::Hdrs),
        body: Some(Body::EightBitMime),
        smtputf8: true,
        client: "localhost[127.0.0.1]".into(),
        sasl_username: Some("alice".into()),
    }
}

#[test]
fn roundtrip_with_records() {
    let env = sample();
    let mut f = encode(&env, b"Subject: x\r\n\r\nbody\r\n");
    let p = parse(&f).unwrap();
    assert_eq!(p.envelope, env);
    assert_eq!(&f[p.content.clone()], b"Subject: x\r\n\r\nbody\r\n");
    assert!(p.states.iter().all(|s| s.status == RcptStatus::Pending));
    let st = RcptState {
        status: RcptStatus::Deferred,
        attempts: 1,
        last_ms: 5,
        next_ms: 300_005,
        reason: "connect to local[/run/x]: Connection refused".into(),
        dsn: "4.4.1".into(),
        relay: "local[/run/x]".into(),
        diag: "X-Postfix; connect to local[/run/x]: Connection refused".into(),
        notified: false,
        delay_notified: true,
    };
    f.extend_from_slice(&encode_record(1, &st));
    let mut done = st.clone();
    done.status = RcptStatus::Delivered;
    done.notified = true;
    done.diag.clear();
    f.extend_from_slice(&encode_record(0, &done));
    let p = parse(&f).unwrap();
    assert_eq!(p.states[1], st);
    assert_eq!(p.states[0], done);
    assert_eq!(p.valid_len, f.len());
}

/// The agent is the `agent=` field of the rcpt line: written only for commands and files,
/// read back exactly; files without it (all older ones) are mailboxes.
#[test]
fn agent_field_round_trip_and_old_lines() {
    let env = sample();
    let f = encode(&env, b"x\r\n");
    let text = String::from_utf8_lossy(&f);
    let rcpts: Vec<&str> = text.lines().filter(|l| l.starts_with("rcpt ")).collect();
    assert!(!rcpts[0].contains("agent=") && !rcpts[1].contains("agent="));
    assert!(
        rcpts[2].ends_with(" agent=command:1000:100:lo+3Ag:lo+3Ag+2Bx=y@pochta.test"),
        "{}",
        rcpts[2]
    );
    assert!(
        rcpts[3].ends_with(" agent=file:4000000000:0:archive:archive@pochta.test"),
        "{}",
        rcpts[3]
    );
    let p = parse(&f).unwrap();
    assert_eq!(p.envelope.recipients, env.recipients);
    assert_eq!(
        p.envelope.recipients[2].shown(),
        format!("|{}", env.recipients[2].address)
    );
    assert_eq!(p.envelope.recipients[3].reported(), "archive@pochta.test");

    // A line written before the field existed: a mailbox, even when it looks like a command.
    let old = "POCHTA-QUEUE 1\nid 0A3F0C2B41\narrival 5\nsender s@x\nclient c\n\
               rcpt |cmd@x - - orig=log@x\nrcpt /etc/passwd - -\ncontent 3\nx\r\n\n";
    let mut old = old.as_bytes().to_vec();
    let crc = crc32(&old);
    old.extend_from_slice(format!("end {crc:08x}\n").as_bytes());
    let p = parse(&old).unwrap();
    assert_eq!(p.envelope.recipients[0].address, "|cmd@x");
    assert_eq!(p.envelope.recipients[0].agent, Agent::Mailbox);
    assert_eq!(p.envelope.recipients[1].agent, Agent::Mailbox);
    assert_eq!(p.envelope.recipients[0].shown(), "|cmd@x");

    // Malformed agent fields are corruption, never a guess.
    for bad in [
        "agent=command",
        "agent=command:1:2:u",
        "agent=pipe:1:2:u:a@x",
        "agent=file:-1:2:u:a@x",
        "agent=file:1:2:u:a@x:extra",
        "agent=file:1:2:u:a@x agent=file:1:2:u:a@x",
    ] {
        let text = format!(
            "POCHTA-QUEUE 1\nid 0A3F0C2B41\narrival 5\nsender s@x\nclient c\n\
             rcpt /x - - {bad}\ncontent 1\nx\n"
        );
        let mut b = text.into_bytes();
        let crc = crc32(&b);
        b.extend_from_slice(format!("end {crc:08x}\n").as_bytes());
        assert!(
            matches!(parse(&b), Err(FormatError::Corrupt(_))),
            "{bad} parsed"
        );
    }
}

#[test]
fn torn_record_is_ignored_and_truncated_file_incomplete() {
    let env = sample();
    let full = encode(&env, b"x\r\n");
    for cut in 0..full.len() {
        assert!(parse(&full[..cut]).is_err(), "prefix {cut} parsed");
    }
    let mut f = full.clone();
    let rec = encode_record(0, &RcptState::pending());
    f.extend_from_slice(&rec[..rec.len() - 3]);
    let p = parse(&f).unwrap();
    assert_eq!(p.valid_len, full.len());
    // A flipped bit in the content is caught by the checksum.
    let mut g = full.clone();
    let i = g.len() - 16;
    g[i] ^= 1;
    assert!(parse(&g).is_err());
}

/// A queue file written before per-recipient DSN data existed (records `r …`, the format of
/// commit 997f33f) still loads: states as recorded, no dsn/relay/diag, nothing notified.
#[test]
fn old_format_records_still_load() {
    let mut f = encode(&sample(), b"Subject: old\r\n\r\nx\r\n");
    for body in [
        "r 0 F 1763894400200 1 1763894700200 connect+20to+20local[/run/x]:+20refused",
        "r 1 B 1763894400300 1 0 host+20local[/run/x]+20said:+20550+205.1.1+20no",
        "r 0 D 1763894800000 2 0 250+202.0.0+20ok",
    ] {
        f.extend_from_slice(format!("{body} {:08x}\n", crc32(body.as_bytes())).as_bytes());
    }
    let p = parse(&f).unwrap();
    assert_eq!(p.valid_len, f.len());
    assert_eq!(p.states[0].status, RcptStatus::Delivered);
    assert_eq!(
        (p.states[0].attempts, p.states[0].last_ms),
        (2, 1_763_894_800_000)
    );
    assert_eq!(p.states[0].reason, "250 2.0.0 ok");
    let b = &p.states[1];
    assert_eq!(b.status, RcptStatus::Bounced);
    assert_eq!(b.reason, "host local[/run/x] said: 550 5.1.1 no");
    assert!(b.dsn.is_empty() && b.relay.is_empty() && b.diag.is_empty());
    assert!(!b.notified && !b.delay_notified);
    // A new record after old ones: the newest wins, and the file stays parseable.
    let mut st = b.clone();
    st.notified = true;
    st.dsn = "5.1.1".into();
    f.extend_from_slice(&encode_record(1, &st));
    let p = parse(&f).unwrap();
    assert_eq!(p.states[1], st);
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z@.]{0,12}", "\\PC{0,8}", "[ +;,=%\t-]{0,6}"]
}

fn arb_agent() -> impl Strategy<Value = Agent> {
    (0u8..3, any::<u32>(), any::<u32>(), arb_text(), arb_text()).prop_map(
        |(k, uid, gid, user, address)| {
            let alias = LocalAlias { user, address };
            match k {
                0 => Agent::Mailbox,
                1 => Agent::Command { uid, gid, alias },
                _ => Agent::File { uid, gid, alias },
            }
        },
    )
}

fn arb_env() -> impl Strategy<Value = Envelope> {
    (
        arb_text(),
        proptest::collection::vec((arb_text(), any::<bool>(), arb_text(), arb_agent()), 1..4),
        proptest::option::of(arb_text()),
        any::<bool>(),
        arb_text(),
        any::<u64>(),
    )
        .prop_map(|(sender, rcpts, envid, utf8, client, at)| Envelope {
            id: QueueId::parse("ABC123").unwrap(),
            arrival_ms: at,
            sender,
            recipients: rcpts
                .into_iter()
                .map(|(a, n, o, agent)| StoredRecipient {
                    address: a,
                    notify: n.then(|| Notify {
                        success: true,
                        ..Notify::default()
                    }),
                    orcpt: (!o.is_empty()).then(|| Orcpt {
                        addr_type: "rfc822".into(),
                        address: o,
                    }),
                    orig: None,
                    agent,
                })
                .collect(),
            envid,
            ret: None,
            body: utf8.then_some(Body::BinaryMime),
            smtputf8: utf8,
            client,
            sasl_username: None,
        })
}

proptest! {
    #[test]
    fn roundtrip(env in arb_env(), content in proptest::collection::vec(any::<u8>(), 0..300),
                 reason in arb_text(), attempts in any::<u32>(), next in any::<u64>()) {
        let mut f = encode(&env, &content);
        let st = RcptState { status: RcptStatus::Bounced, attempts, last_ms: 1, next_ms: next,
                             dsn: reason.clone(), relay: "mx[192.0.2.1]:25".into(),
                             diag: format!("smtp; {reason}"), notified: attempts % 2 == 0,
                             delay_notified: attempts % 3 == 0, reason };
        f.extend_from_slice(&encode_record(env.recipients.len() - 1, &st));
        let p = parse(&f).unwrap();
        prop_assert_eq!(&p.envelope, &env);
        prop_assert_eq!(&f[p.content.clone()], &content[..]);
        prop_assert_eq!(p.states.last().unwrap(), &st);
    }

    #[test]
    fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse(&data);
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&data);
        let _ = parse(&f);
    }
}
