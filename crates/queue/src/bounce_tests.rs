//! Which notices the states call for (pure planning) and when the message is due next.

use super::*;
use crate::file::StoredRecipient;
use crate::QueueId;
use pochta_smtp::Notify;
use std::time::Duration;

const HOUR: u64 = 3_600_000;

/// pochta.test is local and myorigin; no aliases.
struct TestDomain(&'static str);

impl crate::AddressPolicy for TestDomain {
    fn is_local_domain(&self, domain: &str) -> bool {
        domain.eq_ignore_ascii_case("pochta.test")
    }
    fn myorigin(&self) -> &str {
        self.0
    }
    fn expand(&self, address: &str) -> Result<Vec<(String, crate::Agent)>, String> {
        Ok(vec![(address.to_owned(), crate::Agent::Mailbox)])
    }
}

fn cfg() -> DeliveryConfig {
    DeliveryConfig {
        addresses: crate::Addresses::new(std::sync::Arc::new(TestDomain("pochta.test"))),
        ..DeliveryConfig::default()
    }
}

fn notifier() -> Notifier {
    Notifier {
        hostname: "mx.pochta.test".into(),
    }
}

fn env(sender: &str, notify: &[Option<Notify>]) -> Envelope {
    Envelope {
        id: QueueId::parse("0A0A0A0A0A").unwrap(),
        arrival_ms: 100 * HOUR,
        sender: sender.into(),
        recipients: notify
            .iter()
            .enumerate()
            .map(|(i, n)| StoredRecipient {
                address: format!("r{i}@pochta.test"),
                notify: *n,
                orcpt: None,
                orig: None,
                agent: Default::default(),
            })
            .collect(),
        envid: None,
        ret: None,
        body: None,
        smtputf8: false,
        client: String::new(),
        sasl_username: None,
    }
}

fn st(status: RcptStatus, next_ms: u64) -> RcptState {
    RcptState {
        status,
        next_ms,
        attempts: 1,
        ..RcptState::pending()
    }
}

fn notify(s: &str) -> Option<Notify> {
    Some(Notify {
        never: s.contains('N'),
        success: s.contains('S'),
        failure: s.contains('F'),
        delay: s.contains('D'),
    })
}

#[test]
fn failure_goes_to_sender_once_per_attempt() {
    let (c, n) = (cfg(), notifier());
    let e = env(
        "alice@pochta.test",
        &[None, notify("F"), notify("N"), notify("D")],
    );
    let b = st(RcptStatus::Bounced, 0);
    let states = vec![b.clone(), b.clone(), b.clone(), b];
    let p = plan(&c, &n, &e, &states, 100 * HOUR);
    assert_eq!(
        p,
        vec![Notice {
            kind: Kind::Failure,
            rcpts: vec![0, 1],
            to: Some("alice@pochta.test".into()),
        }]
    );
    // NOTIFY=NEVER and NOTIFY without FAILURE: done without a notice.
    assert!(done(&c, &e, 2, &states[2]) && done(&c, &e, 3, &states[3]));
    assert!(!done(&c, &e, 0, &states[0]));
    let mut notified = states.clone();
    notified[0].notified = true;
    notified[1].notified = true;
    assert!(plan(&c, &n, &e, &notified, 100 * HOUR).is_empty());
    assert_eq!(next_due(&c, &n, &e, &notified, 100 * HOUR, 7), None);
    // Owed: due at `owed_at`.
    assert_eq!(next_due(&c, &n, &e, &states, 100 * HOUR, 7), Some(7));
}

#[test]
fn null_sender_goes_to_postmaster_then_dropped() {
    let (c, n) = (cfg(), notifier());
    let states = vec![st(RcptStatus::Bounced, 0)];
    let p = plan(&c, &n, &env("", &[None]), &states, 0);
    assert_eq!(p[0].kind, Kind::Postmaster);
    assert_eq!(p[0].to.as_deref(), Some("postmaster@pochta.test"));
    let e = env("double-bounce@mx.pochta.test", &[None]);
    let p = plan(&c, &n, &e, &states, 0);
    assert_eq!((p[0].kind, p[0].to.as_deref()), (Kind::Postmaster, None));
    let mut c2 = cfg();
    c2.double_bounce_recipient = "admin@example.org".into();
    assert_eq!(n.postmaster(&c2), "admin@example.org");
    c2.addresses = crate::Addresses::new(std::sync::Arc::new(TestDomain("mx.pochta.test")));
    c2.double_bounce_recipient = "pm".into();
    assert_eq!(n.postmaster(&c2), "pm@mx.pochta.test");
}

#[test]
fn delay_notice_once_after_warning_time() {
    let mut c = cfg();
    c.delay_warning_time = crate::DurationStr(Duration::from_secs(3600));
    let n = notifier();
    let e = env("alice@pochta.test", &[None, notify("F"), notify("FD")]);
    let d = st(RcptStatus::Deferred, 110 * HOUR);
    let states = vec![d.clone(), d.clone(), d];
    // Before the warning time: nothing, and the message wakes at it (before the retry).
    assert!(plan(&c, &n, &e, &states, 100 * HOUR + 5).is_empty());
    assert_eq!(
        next_due(&c, &n, &e, &states, 100 * HOUR + 5, 0),
        Some(101 * HOUR)
    );
    let p = plan(&c, &n, &e, &states, 101 * HOUR);
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].kind, &p[0].rcpts), (Kind::Delay, &vec![0, 2]));
    let mut warned = states.clone();
    warned[0].delay_notified = true;
    warned[2].delay_notified = true;
    assert!(plan(&c, &n, &e, &warned, 105 * HOUR).is_empty());
    assert_eq!(
        next_due(&c, &n, &e, &warned, 105 * HOUR, 0),
        Some(110 * HOUR)
    );
    // Never for mail from <>, never when turned off.
    assert!(plan(&c, &n, &env("", &[None]), &states[..1], 105 * HOUR).is_empty());
    c.delay_warning_time = crate::DurationStr(Duration::ZERO);
    assert!(plan(&c, &n, &e, &states, 105 * HOUR).is_empty());
}

#[test]
fn success_only_for_notify_success_on_local_delivery() {
    let (c, n) = (cfg(), notifier());
    let mut e = env("alice@example.org", &[notify("SF"), None, notify("S")]);
    e.recipients[2].address = "far@example.net".into();
    let dl = st(RcptStatus::Delivered, 0);
    let states = vec![dl.clone(), dl.clone(), dl];
    let p = plan(&c, &n, &e, &states, 0);
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].kind, &p[0].rcpts), (Kind::Success, &vec![0]));
    assert!(done(&c, &e, 1, &states[1]) && done(&c, &e, 2, &states[2]));
}
