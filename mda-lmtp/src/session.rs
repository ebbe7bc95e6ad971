//! One LMTP session: feeds the connection's bytes to the pochta-smtp state machine and answers
//! its events — RCPT with a userdb lookup, a complete message with the deliveries.

use crate::config::Service;
use crate::deliver::deliver_all;
use crate::recipient::{resolve, Target};
use crate::Settings;
use pochta_server::{Connection, Fill, Peer, Session as ServerSession};
use pochta_smtp::{Event, Reply, Session};
use std::sync::Arc;

pub(crate) async fn serve(
    settings: Arc<Settings>,
    mut conn: Connection,
    info: ServerSession<Service>,
) {
    let mut cfg = settings.session.clone();
    cfg.starttls = conn.can_starttls();
    let mut s = Session::new(cfg);
    // The accepted recipients' targets, parallel to the transaction's recipient list.
    let mut targets: Vec<Target> = Vec::new();
    let session_id = info.id.to_string();
    let peer_ip = match &info.peer {
        Peer::Tcp(a) => Some(a.ip()),
        Peer::Unix { .. } => None,
    };
    loop {
        match s.next() {
            Event::Write(bytes) => {
                if let Err(e) = conn.write_all(&bytes).await {
                    tracing::info!(error = %e, "write failed; client gone");
                    return;
                }
            }
            Event::NeedInput => {
                if conn.buffered().is_empty() {
                    match conn.fill().await {
                        Ok(Fill::Data) => {}
                        Ok(Fill::Eof) | Err(_) => {
                            if s.in_transaction() {
                                tracing::info!(
                                    "client vanished in a transaction; nothing delivered"
                                );
                            }
                            return;
                        }
                        Ok(Fill::Idle) => {
                            s.close_with(Reply::with_status(
                                421,
                                (4, 4, 2),
                                format!("{} Error: timeout exceeded", settings.hostname),
                            ));
                            continue;
                        }
                        Ok(Fill::Shutdown) => {
                            s.close_with(Reply::with_status(
                                421,
                                (4, 3, 2),
                                format!("{} Service shutting down", settings.hostname),
                            ));
                            continue;
                        }
                    }
                }
                let n = s.feed(conn.buffered());
                if n == 0 {
                    // The session always makes room when it asks for input; never spin.
                    tracing::error!("LMTP session takes no input; closing");
                    return;
                }
                conn.consume(n);
            }
            Event::Hello { .. } => s.accept(),
            Event::Mail { from, .. } => {
                targets.clear();
                tracing::debug!(from = %from, "mail from");
                s.accept();
            }
            Event::Rcpt { to, .. } => match resolve(&settings, &to).await {
                Ok(t) => {
                    targets.push(t);
                    s.accept();
                }
                Err(reply) => s.reply(reply),
            },
            Event::Message(msg) => {
                let batch = std::mem::take(&mut targets);
                let replies = if batch.len() == msg.recipients.len() {
                    deliver_all(&settings, &msg, batch, &session_id, peer_ip).await
                } else {
                    // Cannot happen while every accepted RCPT pushes one target; never guess.
                    tracing::error!("recipient list out of step; deferring the message");
                    msg.recipients
                        .iter()
                        .map(|r| crate::recipient::temp_fail(&r.path.to_string()))
                        .collect()
                };
                s.reply_each(replies);
            }
            Event::StartTls if s.buffered_input() + conn.buffered().len() > 0 => {
                tracing::warn!("plaintext pipelined after STARTTLS; closing");
                return;
            }
            Event::StartTls => match conn.starttls().await {
                // Plaintext pipelined after STARTTLS (in the connection's or the session's
                // buffer) is an injection attempt (CVE-2011-0411).
                Ok(0) if s.tls_established() == 0 => {}
                Ok(_) => {
                    tracing::warn!("plaintext pipelined after STARTTLS; closing");
                    return;
                }
                Err(e) => {
                    tracing::info!(error = %e, "TLS handshake failed");
                    return;
                }
            },
            // AUTH is never offered over LMTP; the session refuses it before asking us.
            Event::Auth { .. } | Event::AuthResponse(_) => s.reply(Reply::with_status(
                502,
                (5, 5, 1),
                "Error: command not implemented",
            )),
            Event::AuthAborted => {}
            Event::Close => {
                conn.close().await;
                return;
            }
            Event::Pending => {
                tracing::error!("LMTP session left a decision unanswered; closing");
                return;
            }
        }
    }
}
