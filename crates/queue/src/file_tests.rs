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

fn arb_env() -> impl Strategy<Value = Envelope> {
    (
        arb_text(),
        proptest::collection::vec((arb_text(), any::<bool>(), arb_text()), 1..4),
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
                .map(|(a, n, o)| StoredRecipient {
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
