//! One delivery attempt of one message: load it, send its open recipients on their way (other
//! domains to [`crate::remote`], aliases(5) commands and files to [`crate::local_agent`], the
//! rest over LMTP), apply the per-recipient results (2xx delivered, 4xx deferred with backoff,
//! 5xx bounced), persist them, log each in Postfix's shape, then send the notices they call
//! for ([`crate::bounce`]) and remove the message once every recipient is done.

use crate::bounce::{self, Notifier};
use crate::config::DeliveryConfig;
use crate::file::{Agent, Parsed, RcptState, RcptStatus, StoredRecipient};
use crate::local_agent::{self, LocalOutcome};
use crate::pool::{Pool, Pooled};
use crate::spool::{self, QueueError, Spool};
use crate::{now_ms, AddressPolicy, QueueId};
use pochta_smtp_client::{Envelope, Incomplete, RcptOutcome, Recipient};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shared by all delivery tasks.
pub(crate) struct Ctx {
    pub(crate) dir: PathBuf,
    pub(crate) cfg: DeliveryConfig,
    pub(crate) pool: Pool,
    /// Where notices (bounces, delay and success DSNs) are enqueued.
    pub(crate) spool: Spool,
    pub(crate) notifier: Notifier,
}

/// Where a recipient goes: local LMTP, SMTP to another domain's MX ([`crate::remote`]), or
/// the local delivery agent for commands and files ([`crate::local_agent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Lmtp,
    /// Another domain: SMTP to its MX through pochta-outbound.
    Remote,
    /// An aliases(5) `|command` or `/file`.
    Local,
}

/// The routing hook: a recipient whose queue record says command or file goes to the local
/// agent (only that record decides: never the address text, which a client wrote);
/// recipients in the mta's local domains (as they are now, after any reload) go to LMTP. A
/// trailing dot (`example.org.`) names the same domain.
pub(crate) fn route(policy: &dyn AddressPolicy, rcpt: &StoredRecipient) -> Route {
    if rcpt.agent != Agent::Mailbox {
        return Route::Local;
    }
    let domain = rcpt.address.rsplit_once('@').map_or("", |(_, d)| d);
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if policy.is_local_domain(domain) {
        Route::Lmtp
    } else {
        Route::Remote
    }
}

/// ` orig_to=<…>,` when alias expansion changed the address (Postfix's field), else nothing.
pub(crate) fn orig_to(r: &StoredRecipient) -> String {
    match &r.orig {
        Some(o) => format!(" orig_to=<{o}>,"),
        None => String::new(),
    }
}

/// Result of one recipient in this attempt.
pub(crate) enum Outcome {
    Reply(RcptOutcome),
    /// Connection-level trouble: deferred with this text (dsn 4.4.2, Postfix's default).
    Error(String),
    /// Deferred without a server's reply, with the status the cause gives (4.4.1 no answer,
    /// 4.4.3 DNS failure, 4.7.5 TLS policy / certificate not verified).
    Temporary {
        dsn: String,
        text: String,
    },
    /// Failed for good without a server's reply (null MX, no such domain, SMTPUTF8 or 8-bit
    /// content the peer cannot take): bounced with this status and text.
    Permanent {
        dsn: String,
        text: String,
    },
    /// The local delivery agent's verdict (command or file).
    Local(LocalOutcome),
}

/// Delivers what is open in `id`; returns when to try again (None: nothing left to schedule —
/// done, deleted or held). `forced`: new or flushed — deliver even before the recipients'
/// next attempt time (otherwise a wake-up that is only for a notice delivers nothing early).
pub(crate) async fn attempt(
    ctx: Arc<Ctx>,
    id: QueueId,
    picked_ms: u64,
    forced: bool,
) -> Option<u64> {
    let dir = ctx.dir.clone();
    let lid = id.clone();
    let loaded = tokio::task::spawn_blocking(move || spool::load(&dir, &lid)).await;
    let (parsed, bytes) = match loaded {
        Ok(Ok(v)) => v,
        Ok(Err(QueueError::NotFound(_))) => return None,
        Ok(Err(QueueError::Format(..))) => return None,
        Ok(Err(e)) => {
            tracing::error!("{id}: {e}");
            return Some(now_ms() + ctx.cfg.minimal_backoff.0.as_millis() as u64);
        }
        Err(e) => {
            tracing::error!("{id}: load task failed: {e}");
            return Some(now_ms() + ctx.cfg.minimal_backoff.0.as_millis() as u64);
        }
    };
    let open: Vec<usize> = (0..parsed.states.len())
        .filter(|&i| parsed.states[i].status.is_open())
        .collect();
    let due = forced || open.iter().any(|&i| parsed.states[i].next_ms <= picked_ms);
    if open.is_empty() || !due {
        return finish(&ctx, &id, &parsed, &bytes, &[]).await;
    }
    let policy = ctx.cfg.addresses.current();
    let routed = |r: Route| -> Vec<usize> {
        open.iter()
            .copied()
            .filter(|&i| route(&*policy, &parsed.envelope.recipients[i]) == r)
            .collect()
    };
    let (lmtp, remote, local) = (
        routed(Route::Lmtp),
        routed(Route::Remote),
        routed(Route::Local),
    );
    let mut changes = Vec::new();
    let now = now_ms();
    let start_ms = now;
    let remote_content = &bytes[parsed.content.clone()];
    for r in crate::remote::deliver(&ctx, &id, &parsed, remote_content, &remote).await {
        let (i, relay, now) = (r.index, &r.relay, now_ms());
        let (st, dsn, status_word, text) = apply(
            &ctx.cfg,
            &parsed,
            &parsed.states[i],
            Some(&r.outcome),
            now,
            relay,
        );
        let delay = secs(now.saturating_sub(parsed.envelope.arrival_ms));
        let a = secs(picked_ms.saturating_sub(parsed.envelope.arrival_ms));
        let b = secs(start_ms.saturating_sub(picked_ms));
        let (c, d) = (fmt_secs(r.setup), fmt_secs(r.xfer));
        tracing::info!(
            "{id}: to=<{}>,{} relay={relay}, delay={delay}, delays={a}/{b}/{c}/{d}, dsn={dsn}, \
             status={status_word} ({text})",
            parsed.envelope.recipients[i].address,
            orig_to(&parsed.envelope.recipients[i]),
        );
        changes.push((i, st));
    }
    for &i in &local {
        let rcpt = &parsed.envelope.recipients[i];
        let start_ms = now_ms();
        let started = Instant::now();
        let outcome = if policy.allows(&rcpt.agent) {
            let d = local_agent::Delivery::new(&parsed, i, &bytes[parsed.content.clone()]);
            local_agent::deliver(&ctx.cfg, &d).await
        } else {
            // Turned off (and reloaded) since the message was accepted: kept until it is on
            // again or the queue lifetime ends.
            let kind = rcpt.agent.kind();
            LocalOutcome {
                class: 4,
                dsn: "4.7.1".into(),
                text: format!("mail to {kind} is restricted: aliases.allow_mail_to_{kind}s is off"),
                diag: String::new(),
            }
        };
        let now = now_ms();
        let outcome = Outcome::Local(outcome);
        let (st, dsn, status_word, text) = apply(
            &ctx.cfg,
            &parsed,
            &parsed.states[i],
            Some(&outcome),
            now,
            "local",
        );
        let delay = secs(now.saturating_sub(parsed.envelope.arrival_ms));
        let a = secs(picked_ms.saturating_sub(parsed.envelope.arrival_ms));
        let b = secs(start_ms.saturating_sub(picked_ms));
        tracing::info!(
            "{id}: to=<{}>,{} relay=local, delay={delay}, delays={a}/{b}/0/{}, dsn={dsn}, \
             status={status_word} ({text})",
            rcpt.shown(),
            orig_to(rcpt),
            fmt_secs(started.elapsed()),
        );
        changes.push((i, st));
    }
    if lmtp.is_empty() {
        return finish(&ctx, &id, &parsed, &bytes, &changes).await;
    }
    let started = Instant::now();
    let start_ms = now_ms();
    let env = Envelope {
        sender: parsed.envelope.sender.clone(),
        recipients: lmtp
            .iter()
            .map(|&i| {
                let r = &parsed.envelope.recipients[i];
                Recipient {
                    address: r.address.clone(),
                    notify: r.notify,
                    orcpt: r.original(),
                }
            })
            .collect(),
        envid: parsed.envelope.envid.clone(),
        ret: parsed.envelope.ret,
        body: parsed.envelope.body,
        smtputf8: parsed.envelope.smtputf8,
    };
    let content = &bytes[parsed.content.clone()];
    let (outcomes, relay, setup) = transact(&ctx, &env, content).await;
    let xfer = started.elapsed().saturating_sub(setup);
    let now = now_ms();
    for (k, &i) in lmtp.iter().enumerate() {
        let old = &parsed.states[i];
        let outcome = outcomes.get(k);
        let (st, dsn, status_word, text) = apply(&ctx.cfg, &parsed, old, outcome, now, &relay);
        let rcpt = &parsed.envelope.recipients[i];
        let delay = secs(now.saturating_sub(parsed.envelope.arrival_ms));
        let a = secs(picked_ms.saturating_sub(parsed.envelope.arrival_ms));
        let b = secs(start_ms.saturating_sub(picked_ms));
        tracing::info!(
            "{id}: to=<{}>,{} relay={relay}, delay={delay}, delays={a}/{b}/{}/{}, dsn={dsn}, \
             status={status_word} ({text})",
            rcpt.address,
            orig_to(rcpt),
            fmt_secs(setup),
            fmt_secs(xfer),
        );
        changes.push((i, st));
    }
    finish(&ctx, &id, &parsed, &bytes, &changes).await
}

/// Persists the changes, sends the notices they call for, removes the message when every
/// recipient is done, and says when it is due next.
async fn finish(
    ctx: &Ctx,
    id: &QueueId,
    parsed: &Parsed,
    file: &[u8],
    changes: &[(usize, RcptState)],
) -> Option<u64> {
    let env = &parsed.envelope;
    let mut states = parsed.states.clone();
    for (i, st) in changes {
        states[*i] = st.clone();
    }
    let all_done = |states: &[RcptState]| {
        (0..states.len()).all(|i| bounce::done(&ctx.cfg, env, i, &states[i]))
    };
    match persist(ctx, id, changes.to_vec(), all_done(&states)).await {
        Persisted::Removed | Persisted::Gone => return None,
        Persisted::Kept => {}
    }
    let now = now_ms();
    let retry = now + ctx.cfg.minimal_backoff.0.as_millis() as u64;
    if all_done(&states) {
        // Done but still on disk: retried later only to be removed.
        return Some(retry);
    }
    // Notices: each is durably queued before the original's records say so.
    let content = &file[parsed.content.clone()];
    let sent = bounce::send(
        &ctx.spool,
        &ctx.cfg,
        &ctx.notifier,
        env,
        content,
        &mut states,
        now,
    )
    .await;
    if !sent.is_empty() {
        let recs = sent.iter().map(|&i| (i, states[i].clone())).collect();
        match persist(ctx, id, recs, all_done(&states)).await {
            Persisted::Removed | Persisted::Gone => return None,
            Persisted::Kept if all_done(&states) => return Some(retry),
            Persisted::Kept => {}
        }
    }
    bounce::next_due(&ctx.cfg, &ctx.notifier, env, &states, now, retry)
}

/// What became of the message file.
enum Persisted {
    /// Every recipient done: unlinked.
    Removed,
    /// Deleted or held by the admin meanwhile.
    Gone,
    /// Still there (records appended, or they could not be: the next attempt repeats them —
    /// possible duplicates, no loss).
    Kept,
}

/// Blocking part of `finish`: removes the file when `remove`, else (or when the unlink
/// fails) appends the records.
async fn persist(
    ctx: &Ctx,
    id: &QueueId,
    changes: Vec<(usize, RcptState)>,
    remove: bool,
) -> Persisted {
    let dir = ctx.dir.clone();
    let tid = id.clone();
    // Ok(true): the file is gone.
    let res = tokio::task::spawn_blocking(move || {
        if remove {
            match spool::remove(&dir, &tid) {
                Ok(()) => return Ok(true),
                // Could not unlink: record the results instead, so a restart does not deliver
                // again (it removes a file whose recipients are all done).
                Err(e) => tracing::error!("{tid}: {e}"),
            }
        }
        if changes.is_empty() {
            Ok(false)
        } else {
            spool::append_states(&dir, &tid, &changes).map(|()| false)
        }
    })
    .await;
    match res {
        Ok(Ok(true)) => {
            tracing::info!("{id}: removed");
            Persisted::Removed
        }
        Ok(Ok(false)) => Persisted::Kept,
        Ok(Err(QueueError::NotFound(_))) => Persisted::Gone,
        Ok(Err(e)) => {
            tracing::error!("{id}: cannot record delivery status: {e}");
            Persisted::Kept
        }
        Err(e) => {
            tracing::error!("{id}: status task failed: {e}");
            Persisted::Kept
        }
    }
}

/// Runs the transaction, reconnecting once when a reused connection turned out dead before
/// anything was sent. Returns per-recipient outcomes, `relay=` and connection setup time.
async fn transact(ctx: &Ctx, env: &Envelope, content: &[u8]) -> (Vec<Outcome>, String, Duration) {
    let mut fresh = false;
    loop {
        let t0 = Instant::now();
        let mut pooled: Pooled = match ctx.pool.get(fresh).await {
            Ok(p) => p,
            Err(e) => {
                // Postfix: no connection, so `relay=none`; the reason names the socket.
                let text = e.describe(&ctx.pool.relay_name());
                let n = env.recipients.len();
                return (
                    (0..n).map(|_| Outcome::Error(text.clone())).collect(),
                    "none".to_owned(),
                    t0.elapsed(),
                );
            }
        };
        let setup = if pooled.reused {
            Duration::ZERO
        } else {
            t0.elapsed()
        };
        let relay = pooled.conn.relay().to_owned();
        match pooled.conn.send(env, content).await {
            Ok(o) => {
                ctx.pool.put(pooled);
                return (o.into_iter().map(Outcome::Reply).collect(), relay, setup);
            }
            Err(inc) => {
                let nothing_known = inc.known.iter().all(Option::is_none);
                if pooled.reused && !inc.data_sent && nothing_known {
                    // The server closed the idle connection meanwhile: nothing was delivered.
                    fresh = true;
                    continue;
                }
                return (incomplete(inc, &relay), relay, setup);
            }
        }
    }
}

fn incomplete(inc: Incomplete, relay: &str) -> Vec<Outcome> {
    let text = inc.error.describe(relay);
    inc.known
        .into_iter()
        .map(|k| match k {
            Some(o) => Outcome::Reply(o),
            None => Outcome::Error(text.clone()),
        })
        .collect()
}

/// New state, dsn, Postfix status word and reason text for one recipient.
fn apply(
    cfg: &DeliveryConfig,
    parsed: &Parsed,
    old: &RcptState,
    outcome: Option<&Outcome>,
    now: u64,
    relay: &str,
) -> (RcptState, String, &'static str, String) {
    let attempts = old.attempts.saturating_add(1);
    let (class, dsn, text) = match outcome {
        Some(Outcome::Reply(o)) => {
            let text = if o.reply.is_positive() {
                o.reply.to_string()
            } else {
                format!(
                    "host {relay} said: {} (in reply to {} command)",
                    o.reply,
                    o.stage.command()
                )
            };
            (o.reply.code() / 100, o.reply.dsn(), text)
        }
        Some(Outcome::Error(t)) => (4, "4.4.2".to_owned(), t.clone()),
        Some(Outcome::Temporary { dsn, text }) => (4, dsn.clone(), text.clone()),
        Some(Outcome::Permanent { dsn, text }) => (5, dsn.clone(), text.clone()),
        Some(Outcome::Local(o)) => (o.class, o.dsn.clone(), o.text.clone()),
        None => (
            4,
            "4.4.0".to_owned(),
            "no result for this recipient".to_owned(),
        ),
    };
    let diag = match outcome {
        Some(Outcome::Reply(o)) => format!("smtp; {}", o.reply),
        Some(Outcome::Local(o)) if !o.diag.is_empty() => o.diag.clone(),
        _ => format!("X-Postfix; {text}"),
    };
    let mut st = RcptState {
        status: RcptStatus::Delivered,
        attempts,
        last_ms: now,
        next_ms: 0,
        reason: text.clone(),
        dsn: dsn.clone(),
        relay: relay.to_owned(),
        diag,
        // A new result is reported anew (a success or bounce notice when one is due).
        notified: false,
        delay_notified: old.delay_notified,
    };
    match class {
        2 => (st, dsn, "sent", text),
        5 => {
            st.status = RcptStatus::Bounced;
            (st, dsn, "bounced", text)
        }
        _ => {
            let age = now.saturating_sub(parsed.envelope.arrival_ms);
            // Mail from <> (bounces) has its own, usually shorter, lifetime (Postfix).
            let lifetime = if parsed.envelope.sender.is_empty() {
                cfg.bounce_queue_lifetime.0
            } else {
                cfg.maximal_queue_lifetime.0
            };
            if age >= lifetime.as_millis() as u64 {
                st.status = RcptStatus::Bounced;
                // RFC 3463 X.4.7: delivery time expired (persistent transient failure).
                st.dsn = "4.4.7".to_owned();
                st.reason = format!("message expired in the queue: {text}");
                return (st, dsn, "expired", text);
            }
            st.status = RcptStatus::Deferred;
            st.next_ms = now + backoff(cfg, attempts).as_millis() as u64;
            (st, dsn, "deferred", text)
        }
    }
}

/// minimal_backoff × 2^(attempts−1), at most maximal_backoff.
pub(crate) fn backoff(cfg: &DeliveryConfig, attempts: u32) -> Duration {
    let min = cfg.minimal_backoff.0;
    let max = cfg.maximal_backoff.0.max(min);
    let shift = attempts.saturating_sub(1).min(30);
    min.checked_mul(1u32 << shift).unwrap_or(max).min(max)
}

fn secs(ms: u64) -> String {
    fmt_secs(Duration::from_millis(ms))
}

/// Postfix's compact delay format: `0`, `0.05`, `1.2`, `17`.
pub(crate) fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 0.005 {
        "0".to_owned()
    } else if s < 1.0 {
        format!("{s:.2}")
    } else if s < 10.0 {
        format!("{s:.1}")
    } else {
        format!("{s:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = DeliveryConfig::default();
        assert_eq!(backoff(&cfg, 1), Duration::from_secs(300));
        assert_eq!(backoff(&cfg, 2), Duration::from_secs(600));
        assert_eq!(backoff(&cfg, 7), Duration::from_secs(4 * 3600));
        assert_eq!(backoff(&cfg, 1000), Duration::from_secs(4 * 3600));
    }

    fn parsed(arrival_ms: u64) -> Parsed {
        let env = crate::file::Envelope {
            id: QueueId::parse("0A0A0A0A0A").unwrap(),
            arrival_ms,
            sender: "s@x".into(),
            recipients: vec![StoredRecipient {
                address: "r@y".into(),
                notify: None,
                orcpt: None,
                orig: None,
                agent: Agent::Mailbox,
            }],
            envid: None,
            ret: None,
            body: None,
            smtputf8: false,
            client: String::new(),
            sasl_username: None,
        };
        crate::file::parse(&crate::file::encode(&env, b"x\r\n")).unwrap()
    }

    fn reply(text: &[u8]) -> Outcome {
        let mut p = pochta_smtp_client::ReplyParser::new();
        p.feed(text);
        Outcome::Reply(RcptOutcome {
            reply: p.next_reply().unwrap().unwrap(),
            stage: pochta_smtp_client::Stage::EndOfData,
        })
    }

    #[test]
    fn results_map_to_states() {
        let cfg = DeliveryConfig::default();
        let now = 10 * 86_400_000;
        let p = parsed(now - 1000);
        let old = RcptState::pending();
        let (st, dsn, word, _) = apply(&cfg, &p, &old, Some(&reply(b"250 2.0.0 ok\r\n")), now, "r");
        assert_eq!(
            (st.status, dsn.as_str(), word),
            (RcptStatus::Delivered, "2.0.0", "sent")
        );
        let (st, dsn, word, text) = apply(
            &cfg,
            &p,
            &old,
            Some(&reply(b"452 4.2.2 full\r\n")),
            now,
            "r",
        );
        assert_eq!(
            (st.status, dsn.as_str(), word),
            (RcptStatus::Deferred, "4.2.2", "deferred")
        );
        assert_eq!(st.next_ms, now + 300_000);
        assert_eq!(st.attempts, 1);
        assert_eq!(
            text,
            "host r said: 452 4.2.2 full (in reply to end of data command)"
        );
        let (st, _, word, _) = apply(&cfg, &p, &old, Some(&reply(b"550 no\r\n")), now, "r");
        assert_eq!((st.status, word), (RcptStatus::Bounced, "bounced"));
        let err = Outcome::Error("connect to r: Connection refused".into());
        let (st, dsn, _, _) = apply(&cfg, &p, &st, Some(&err), now, "r");
        assert_eq!(
            (st.status, dsn.as_str(), st.attempts),
            (RcptStatus::Deferred, "4.4.2", 2)
        );
        assert_eq!(st.next_ms, now + 600_000);
        // A non-reply failure with its own status (outbound: TLS policy, DNS) keeps it.
        let tls = Outcome::Temporary {
            dsn: "4.7.5".into(),
            text: "Server certificate not verified".into(),
        };
        let (st2, dsn, word, text) = apply(&cfg, &p, &st, Some(&tls), now, "r");
        assert_eq!(
            (st2.status, dsn.as_str(), word),
            (RcptStatus::Deferred, "4.7.5", "deferred")
        );
        assert_eq!(text, "Server certificate not verified");
        // Past maximal_queue_lifetime a temporary failure gives up.
        let old_msg = parsed(now - 6 * 86_400_000);
        let (st, _, word, _) = apply(&cfg, &old_msg, &old, Some(&err), now, "r");
        assert_eq!((st.status, word), (RcptStatus::Bounced, "expired"));
        assert!(st
            .reason
            .starts_with("message expired in the queue: connect to r"));
    }

    /// Only the queue record's agent sends a recipient to the local agent: an address that
    /// looks like a command or a file is routed by its domain like any other.
    #[test]
    fn route_follows_the_record_not_the_address() {
        let policy = crate::Addresses::default().current();
        let mut r = parsed(0).envelope.recipients[0].clone();
        for text in ["|/bin/sh -c id@y", "/etc/passwd", "|cmd"] {
            r.address = text.into();
            assert_eq!(route(&*policy, &r), Route::Lmtp, "{text}");
        }
        r.agent = Agent::File {
            uid: 1,
            gid: 1,
            alias: Default::default(),
        };
        assert_eq!(route(&*policy, &r), Route::Local);
        // And the default policy (no mta) allows no local agent at all.
        assert!(!policy.allows(&r.agent));
        assert!(policy.allows(&Agent::Mailbox));
    }

    #[test]
    fn delay_format() {
        assert_eq!(fmt_secs(Duration::from_millis(1)), "0");
        assert_eq!(fmt_secs(Duration::from_millis(140)), "0.14");
        assert_eq!(fmt_secs(Duration::from_millis(1200)), "1.2");
        assert_eq!(fmt_secs(Duration::from_secs(17)), "17");
    }
}
