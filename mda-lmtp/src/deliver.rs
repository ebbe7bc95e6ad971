//! Stores one message for every accepted recipient, concurrently, and maps each outcome to the
//! recipient's LMTP reply.

use crate::headers::{message_id, trace_headers, Trace};
use crate::recipient::{temp_fail, Target};
use crate::Settings;
use pochta_mailstore::{DeliverOptions, Maildir};
use pochta_smtp::{Message, Reply};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// What happened to one copy.
enum Outcome {
    Saved {
        file_name: String,
        uid: u32,
        size: u64,
        folder: String,
    },
    OverQuota,
    Failed(String),
}

/// Delivers `msg` to every target; the replies are in target (= RCPT) order.
pub(crate) async fn deliver_all(
    settings: &Settings,
    msg: &Message,
    targets: Vec<Target>,
    session_id: &str,
    peer_ip: Option<IpAddr>,
) -> Vec<Reply> {
    let body: Arc<[u8]> = Arc::from(msg.body.as_slice());
    let sender = msg.reverse_path.to_string();
    let msgid = message_id(&msg.body).unwrap_or_default();
    let now = SystemTime::now();
    let timeout = settings.delivery.timeout.get();
    let mut tasks = Vec::with_capacity(targets.len());
    for t in &targets {
        let header = if settings.delivery.add_headers {
            trace_headers(
                &Trace {
                    sender: &sender,
                    recipient: &t.rcpt,
                    helo: &msg.hello,
                    peer_ip,
                    hostname: &settings.hostname,
                    with_protocol: msg.with_protocol,
                    session_id,
                },
                now,
            )
        } else {
            Vec::new()
        };
        let target = t.clone();
        let body = Arc::clone(&body);
        let crlf = settings.delivery.save_crlf;
        let job = tokio::task::spawn_blocking(move || store(&target, &header, &body, crlf));
        tasks.push(tokio::time::timeout(timeout, job));
    }
    let mut replies = Vec::with_capacity(targets.len());
    for (t, task) in targets.iter().zip(tasks) {
        let outcome = match task.await {
            Ok(Ok(o)) => o,
            Ok(Err(join)) => Outcome::Failed(format!("delivery task failed: {join}")),
            // The blocking write may still finish; the client retries and may get a duplicate,
            // which is the safe side.
            Err(_) => Outcome::Failed("delivery timed out".into()),
        };
        replies.push(reply_for(settings, t, outcome, session_id, &sender, &msgid));
    }
    replies
}

fn reply_for(
    settings: &Settings,
    t: &Target,
    outcome: Outcome,
    session_id: &str,
    sender: &str,
    msgid: &str,
) -> Reply {
    let rcpt = &t.rcpt;
    match outcome {
        Outcome::Saved {
            file_name,
            uid,
            size,
            folder,
        } => {
            tracing::info!(from = %sender, rcpt = %rcpt, user = %t.user, msgid = %msgid,
                folder = %folder, uid, size, file = %file_name, "saved");
            Reply::with_status(250, (2, 0, 0), format!("<{rcpt}> {session_id} Saved"))
        }
        Outcome::OverQuota => {
            tracing::info!(from = %sender, rcpt = %rcpt, user = %t.user, "quota exceeded");
            let text = format!("<{rcpt}> Quota exceeded (mailbox for user is full)");
            if settings.quota_full_tempfail {
                Reply::with_status(452, (4, 2, 2), text)
            } else {
                Reply::with_status(552, (5, 2, 2), text)
            }
        }
        Outcome::Failed(e) => {
            tracing::error!(from = %sender, rcpt = %rcpt, user = %t.user, error = %e,
                "delivery failed; deferred");
            temp_fail(rcpt)
        }
    }
}

/// Writes one copy: tmp → fsync → rename into new/ → fsync the directory (pochta-mailstore).
/// Runs on the blocking pool.
fn store(t: &Target, header: &[u8], body: &[u8], crlf: bool) -> Outcome {
    let mut bytes = Vec::with_capacity(header.len() + body.len());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(body);
    if !crlf {
        bytes = crlf_to_lf(&bytes);
    }
    let _as_user = match t.ids.map(|(uid, gid)| FsIds::switch(uid, gid)).transpose() {
        Ok(ids) => ids,
        Err(e) => return Outcome::Failed(e),
    };
    let md = Maildir::open(&t.maildir);
    if let Err(e) = md.create_if_missing() {
        return Outcome::Failed(e.to_string());
    }
    // Dovecot's lmtp_save_to_detail_mailbox: the folder if it exists, INBOX otherwise.
    let folder = t.folder.as_deref().filter(|f| md.folder_exists(f));
    let opts = DeliverOptions {
        quota: (!t.quota.is_unlimited()).then_some(t.quota),
        ..DeliverOptions::default()
    };
    let result = md.deliver(folder, &bytes, &opts);
    sweep_tmp_now_and_then(&md, folder);
    match result {
        Ok(d) => Outcome::Saved {
            file_name: d.file_name,
            uid: d.uid,
            size: d.size,
            folder: folder.unwrap_or("INBOX").to_owned(),
        },
        Err(e) if e.is_over_quota() => Outcome::OverQuota,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// This thread's filesystem uid/gid switched to a user's for one delivery (Linux fsuid/fsgid
/// are per thread, unlike setuid, so other sessions' threads are unaffected); restored on drop,
/// also when the delivery panics.
struct FsIds {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

impl FsIds {
    fn switch(uid: u32, gid: u32) -> Result<FsIds, String> {
        use nix::unistd::{setfsgid, setfsuid, Gid, Uid};
        let ids = FsIds {
            gid: setfsgid(Gid::from_raw(gid)),
            uid: setfsuid(Uid::from_raw(uid)),
        };
        // The calls report no errors; an invalid id (-1) changes nothing and returns the
        // current one, which tells whether the switch held.
        let (now_uid, now_gid) = (
            setfsuid(Uid::from_raw(u32::MAX)),
            setfsgid(Gid::from_raw(u32::MAX)),
        );
        if now_uid.as_raw() != uid || now_gid.as_raw() != gid {
            return Err(format!(
                "cannot write as uid {uid} gid {gid} (fsuid {now_uid}, fsgid {now_gid})"
            ));
        }
        Ok(ids)
    }
}

impl Drop for FsIds {
    fn drop(&mut self) {
        nix::unistd::setfsuid(self.uid);
        nix::unistd::setfsgid(self.gid);
    }
}

/// Deletes a mailbox's tmp/ leftovers of crashed deliveries (older than 36 h, as Dovecot) at
/// most every 8 hours per mailbox and process. Failures only cost a log line.
fn sweep_tmp_now_and_then(md: &Maildir, folder: Option<&str>) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};
    static LAST: OnceLock<Mutex<HashMap<std::path::PathBuf, Instant>>> = OnceLock::new();
    const EVERY: Duration = Duration::from_secs(8 * 3600);
    let key = md.root().join(folder.unwrap_or(""));
    {
        let mut last = LAST
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.get(&key).is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        if last.len() >= 100_000 {
            last.clear();
        }
        last.insert(key, Instant::now());
    }
    let mailbox = match folder {
        Some(f) => md.mailbox(f),
        None => md.inbox(),
    };
    match mailbox.and_then(|m| m.sweep_tmp()) {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(maildir = %md.root().display(), files = n, "old tmp/ files removed")
        }
        Err(e) => tracing::debug!(maildir = %md.root().display(), error = %e, "tmp/ sweep failed"),
    }
}

/// CRLF → LF; a CR not followed by LF stays.
fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn crlf_to_lf() {
        assert_eq!(super::crlf_to_lf(b"a\r\nb\rc\r\r\n"), b"a\nb\rc\r\n");
    }
}
