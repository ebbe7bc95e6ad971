//! Which delivery status notifications a message's recipient states call for, and sending
//! them: each notice is a new queue message (null sender, RFC 3464 report built by
//! [`crate::dsn`]) enqueued through the same durable path as SMTP mail; only after that
//! enqueue is acknowledged (file + directory fsynced) are the original's recipients marked
//! notified (one more fsynced record). A crash in between sends the notice twice, never not
//! at all.
//!
//! Rules (RFC 3461 §4.1, Postfix's behaviour where the RFC leaves a choice):
//! - failure (bounced: 5xx, permanent error, or the queue lifetime expired): a notice when
//!   NOTIFY is absent or has FAILURE; one notice per message per attempt for all such
//!   recipients. Never to `<>`: a failed bounce goes to `double_bounce_recipient`
//!   (postmaster) with sender `double-bounce@<host>`, and when that fails too it is dropped
//!   and logged (`undeliverable postmaster notification discarded`).
//! - delay: once per recipient when still queued after `delay_warning_time` and NOTIFY is
//!   absent or has DELAY; never for mail from `<>`.
//! - success: NOTIFY=SUCCESS on local delivery (LMTP is final delivery; relays to other
//!   MTAs pass NOTIFY on instead).
//!
//! RET: a failure notice returns the whole original when RET=FULL or RET is absent and the
//! message is at most `bounce_size_limit` bytes (Postfix: whole message up to 50,000 bytes,
//! headers beyond); RET=HDRS, bigger messages, delay and success notices carry the headers
//! (RFC 3461 §4.3: RET concerns failure notices).

use crate::config::DeliveryConfig;
use crate::deliver::{route, Route};
use crate::dsn::{self, Kind, Report};
use crate::file::{Agent, Envelope, RcptState, RcptStatus};
use crate::spool::{NewMessage, NewRecipient, Spool};
use pochta_smtp::Body;

/// Local part of the sender of postmaster notices (Postfix double_bounce_sender).
const DOUBLE_BOUNCE: &str = "double-bounce";

/// Settings the notices need besides `DeliveryConfig`.
pub(crate) struct Notifier {
    /// Our host name: MAILER-DAEMON@…, Reporting-MTA, double-bounce@….
    pub(crate) hostname: String,
}

impl Notifier {
    /// The envelope sender of postmaster notices.
    pub(crate) fn double_bounce_sender(&self) -> String {
        format!("{DOUBLE_BOUNCE}@{}", self.hostname)
    }

    /// Where failed bounces go: `double_bounce_recipient`, qualified with myorigin when it is
    /// a bare local part (the aliases then apply, as to every notice recipient).
    pub(crate) fn postmaster(&self, cfg: &DeliveryConfig) -> String {
        cfg.addresses.qualify(&cfg.double_bounce_recipient)
    }
}

/// Who the original came from, as far as notices care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    /// A real sender: notices go to it.
    Sender,
    /// `<>`: a bounce or other notice; its failures go to the postmaster.
    Null,
    /// A postmaster notice: its failures are dropped.
    DoubleBounce,
}

fn from_kind(n: &Notifier, env: &Envelope) -> From {
    if env.sender.is_empty() {
        From::Null
    } else if env.sender.eq_ignore_ascii_case(&n.double_bounce_sender()) {
        From::DoubleBounce
    } else {
        From::Sender
    }
}

fn failure_wanted(env: &Envelope, i: usize) -> bool {
    env.recipients[i]
        .notify
        .is_none_or(|n| n.failure && !n.never)
}

fn success_wanted(cfg: &DeliveryConfig, env: &Envelope, i: usize) -> bool {
    let r = &env.recipients[i];
    !env.sender.is_empty()
        && r.notify.is_some_and(|n| n.success && !n.never)
        && matches!(
            route(&*cfg.addresses.current(), r),
            Route::Lmtp | Route::Local
        )
}

/// When a delay notice is due for recipient `i` (None: never).
fn delay_at(
    cfg: &DeliveryConfig,
    n: &Notifier,
    env: &Envelope,
    i: usize,
    st: &RcptState,
) -> Option<u64> {
    let dw = cfg.delay_warning_time.0.as_millis() as u64;
    let wanted = env.recipients[i].notify.is_none_or(|n| n.delay && !n.never);
    (dw > 0
        && wanted
        && st.status.is_open()
        && !st.delay_notified
        && from_kind(n, env) == From::Sender)
        .then(|| env.arrival_ms.saturating_add(dw))
}

/// Nothing is left to do for recipient `i`: delivered (and any success notice sent) or
/// bounced and notified (or no notice wanted).
pub(crate) fn done(cfg: &DeliveryConfig, env: &Envelope, i: usize, st: &RcptState) -> bool {
    match st.status {
        RcptStatus::Delivered => st.notified || !success_wanted(cfg, env, i),
        RcptStatus::Bounced => st.notified || !failure_wanted(env, i),
        RcptStatus::Pending | RcptStatus::Deferred => false,
    }
}

/// When the message needs the runner next: the earliest open recipient's retry, a delay
/// notice falling due, or `owed_at` when a notice is owed now (0 at start; a backoff after a
/// failed attempt to send it). None: nothing left to schedule.
pub(crate) fn next_due(
    cfg: &DeliveryConfig,
    n: &Notifier,
    env: &Envelope,
    states: &[RcptState],
    now: u64,
    owed_at: u64,
) -> Option<u64> {
    let mut due: Option<u64> = None;
    let mut at = |t: u64| due = Some(due.map_or(t, |d| d.min(t)));
    for (i, st) in states.iter().enumerate() {
        if st.status.is_open() {
            at(st.next_ms);
            if let Some(w) = delay_at(cfg, n, env, i, st) {
                at(if w <= now { owed_at } else { w });
            }
        } else if !done(cfg, env, i, st) {
            at(owed_at);
        }
    }
    due
}

/// One notice to send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) kind: Kind,
    /// Recipients it reports.
    pub(crate) rcpts: Vec<usize>,
    /// Where it goes; None: dropped (a failed postmaster notice), only logged and marked.
    pub(crate) to: Option<String>,
}

/// The notices due now for these states.
pub(crate) fn plan(
    cfg: &DeliveryConfig,
    n: &Notifier,
    env: &Envelope,
    states: &[RcptState],
    now: u64,
) -> Vec<Notice> {
    let from = from_kind(n, env);
    let (mut failed, mut delayed, mut delivered) = (Vec::new(), Vec::new(), Vec::new());
    for (i, st) in states.iter().enumerate() {
        match st.status {
            RcptStatus::Bounced if !done(cfg, env, i, st) => failed.push(i),
            RcptStatus::Delivered if !done(cfg, env, i, st) => delivered.push(i),
            RcptStatus::Pending | RcptStatus::Deferred
                if delay_at(cfg, n, env, i, st).is_some_and(|w| w <= now) =>
            {
                delayed.push(i)
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if !failed.is_empty() {
        let (kind, to) = match from {
            From::Sender => (Kind::Failure, Some(env.sender.clone())),
            From::Null => (Kind::Postmaster, Some(n.postmaster(cfg))),
            From::DoubleBounce => (Kind::Postmaster, None),
        };
        out.push(Notice {
            kind,
            rcpts: failed,
            to,
        });
    }
    if !delayed.is_empty() {
        out.push(Notice {
            kind: Kind::Delay,
            rcpts: delayed,
            to: Some(env.sender.clone()),
        });
    }
    if !delivered.is_empty() {
        out.push(Notice {
            kind: Kind::Success,
            rcpts: delivered,
            to: Some(env.sender.clone()),
        });
    }
    out
}

/// Sends the notices `plan` gives for `states` (updated in place: notified flags) and returns
/// the recipients whose states changed, to be recorded by the caller. A notice whose enqueue
/// fails is logged and left owed (its recipients unchanged).
pub(crate) async fn send(
    spool: &Spool,
    cfg: &DeliveryConfig,
    n: &Notifier,
    env: &Envelope,
    content: &[u8],
    states: &mut [RcptState],
    now: u64,
) -> Vec<usize> {
    let mut changed = Vec::new();
    for notice in plan(cfg, n, env, states, now) {
        let id = &env.id;
        let sent = match &notice.to {
            None => {
                tracing::info!("{id}: undeliverable postmaster notification discarded");
                true
            }
            Some(to) => {
                match enqueue(spool, cfg, n, env, content, states, &notice, to, now).await {
                    Ok(new_id) => {
                        tracing::info!("{id}: {}: {new_id}", notice.kind.log_name());
                        true
                    }
                    Err(e) => {
                        tracing::error!("{id}: cannot queue {}: {e}", notice.kind.log_name());
                        false
                    }
                }
            }
        };
        if sent {
            for &i in &notice.rcpts {
                if notice.kind == Kind::Delay {
                    states[i].delay_notified = true;
                } else {
                    states[i].notified = true;
                }
                changed.push(i);
            }
        }
    }
    changed.sort_unstable();
    changed.dedup();
    changed
}

#[allow(clippy::too_many_arguments)]
async fn enqueue(
    spool: &Spool,
    cfg: &DeliveryConfig,
    n: &Notifier,
    env: &Envelope,
    content: &[u8],
    states: &[RcptState],
    notice: &Notice,
    to: &str,
    now: u64,
) -> Result<crate::QueueId, crate::QueueError> {
    let new_id = spool.new_id();
    let full = notice.kind == Kind::Failure || notice.kind == Kind::Postmaster;
    let full =
        full && env.ret != Some(pochta_smtp::Ret::Hdrs) && content.len() <= cfg.bounce_size_limit;
    let lifetime = if env.sender.is_empty() {
        cfg.bounce_queue_lifetime.0
    } else {
        cfg.maximal_queue_lifetime.0
    };
    let report = Report {
        kind: notice.kind,
        hostname: &n.hostname,
        env,
        rcpts: notice
            .rcpts
            .iter()
            .map(|&i| (&env.recipients[i], &states[i]))
            .collect(),
        to,
        new_id: new_id.as_str(),
        now_ms: now,
        content,
        full,
        delay_warning: cfg.delay_warning_time.0,
        lifetime,
    };
    let built = dsn::build(&report);
    let sender = match notice.kind {
        Kind::Postmaster => n.double_bounce_sender(),
        _ => String::new(),
    };
    // A notice follows the aliases like any mail (Postfix's bounces pass through cleanup):
    // `root@…` reaches the admin, the postmaster whoever the aliases name.
    let finals = cfg
        .addresses
        .current()
        .expand(to)
        .map_err(|e| crate::QueueError::Io {
            what: format!("alias expansion of <{to}>"),
            source: std::io::Error::other(e),
        })?;
    let recipients = finals
        .into_iter()
        .map(|(address, agent)| NewRecipient {
            orig: (!address.eq_ignore_ascii_case(to) || agent != Agent::Mailbox)
                .then(|| to.to_owned()),
            address,
            orcpt: None,
            notify: None,
            agent,
        })
        .collect();
    let msg = NewMessage {
        sender,
        recipients,
        envid: None,
        ret: None,
        body: built.eight_bit.then_some(Body::EightBitMime),
        smtputf8: !to.is_ascii(),
        client: "bounce".to_owned(),
        sasl_username: None,
        content: built.content,
    };
    spool.enqueue(&new_id, msg).await.map(|()| new_id)
}

#[cfg(test)]
#[path = "bounce_tests.rs"]
mod tests;
