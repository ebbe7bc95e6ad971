//! The Remote branch of a delivery attempt: recipients in other domains are grouped by domain
//! and handed to pochta-outbound (one SMTP transaction per domain and next hop); its results
//! become the [`Outcome`]s that `apply` turns into recipient states.

use crate::deliver::{Ctx, Outcome};
use crate::file::Parsed;
use crate::QueueId;
use pochta_outbound::RcptResult;
use pochta_smtp_client::{Envelope, Recipient};
use std::time::Duration;

/// One remote recipient's result in this attempt.
pub(crate) struct RemoteResult {
    /// Index into the message's recipients.
    pub(crate) index: usize,
    pub(crate) outcome: Outcome,
    /// `mx.example[192.0.2.1]:25` or `none`.
    pub(crate) relay: String,
    /// Connection setup and transaction time (Postfix's delays c and d).
    pub(crate) setup: Duration,
    pub(crate) xfer: Duration,
}

/// The domain of an address, lower case (IDN kept as written; outbound converts it).
fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_lowercase()
}

/// Delivers the recipients `remote` (indices into the envelope) of one message.
pub(crate) async fn deliver(
    ctx: &Ctx,
    id: &QueueId,
    parsed: &Parsed,
    content: &[u8],
    remote: &[usize],
) -> Vec<RemoteResult> {
    // Domains in first-seen order, each with its recipients in envelope order.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for &i in remote {
        let d = domain_of(&parsed.envelope.recipients[i].address);
        match groups.iter_mut().find(|(g, _)| *g == d) {
            Some((_, v)) => v.push(i),
            None => groups.push((d, vec![i])),
        }
    }
    let id_text = id.to_string();
    let mut out = Vec::with_capacity(remote.len());
    for (domain, idx) in groups {
        let env = Envelope {
            sender: parsed.envelope.sender.clone(),
            recipients: idx
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
        let res = ctx
            .cfg
            .outbound
            .deliver(&id_text, &domain, &env, content)
            .await;
        for (k, &i) in idx.iter().enumerate() {
            let outcome = match res.results.get(k) {
                Some(RcptResult::Reply(o)) => Outcome::Reply(o.clone()),
                Some(RcptResult::Temporary { dsn, text }) => Outcome::Temporary {
                    dsn: dsn.clone(),
                    text: text.clone(),
                },
                Some(RcptResult::Permanent { dsn, text }) => Outcome::Permanent {
                    dsn: dsn.clone(),
                    text: text.clone(),
                },
                None => Outcome::Error("no result for this recipient".into()),
            };
            out.push(RemoteResult {
                index: i,
                outcome,
                relay: res.relay.clone(),
                setup: res.setup,
                xfer: res.xfer,
            });
        }
    }
    out
}
