//! The auth-userdb socket: USER, PASS and LIST for LMTP/LDA delivery agents and doveadm, as
//! Dovecot's auth-master connection answers them. A socket of mode exactly 0666 restricts peers
//! that are not its owner to lookups of their own uid (docs/formats.md#auth-userdb).

use crate::Authd;
use pochta_auth_proto::{
    Disposition, Field, UserdbServerConfig, UserdbServerConn, UserdbServerEvent,
};
use pochta_server::{Connection, Fill, Peer, Session};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

/// The uid a connection is restricted to, per Dovecot's rule for 0666 userdb sockets: a peer
/// that is neither the socket's owner nor in its group may only see its own uid. Root is never
/// restricted (Dovecot stores the uid with 0 meaning "none"). If the socket file cannot be
/// examined, the peer is restricted (fail closed).
async fn restricted_uid(session: &Session<crate::config::Service>, peer: &Peer) -> Option<u32> {
    let Peer::Unix { uid, gid, .. } = peer else {
        return None;
    };
    if *uid == 0 {
        return None;
    }
    let restricted = match tokio::fs::metadata(&*session.listener).await {
        Ok(meta) => meta.mode() & 0o777 == 0o666 && *uid != meta.uid() && *gid != meta.gid(),
        Err(_) => true,
    };
    restricted.then_some(*uid)
}

pub(crate) async fn serve(
    authd: Arc<Authd>,
    mut conn: Connection,
    session: Session<crate::config::Service>,
) {
    let mut cfg = UserdbServerConfig::new(std::process::id());
    cfg.restricted_uid = restricted_uid(&session, conn.peer()).await;
    let mut proto = UserdbServerConn::new(cfg);
    if conn.write_all(&proto.take_output()).await.is_err() {
        return;
    }
    loop {
        while let Some(ev) = proto.next_event() {
            match ev {
                Ok(ev) => handle(&authd, &mut proto, ev).await,
                Err(e) => {
                    tracing::info!(error = %e, "userdb client protocol error");
                    if e.disposition() == Disposition::Disconnect {
                        let _ = conn.write_all(&proto.take_output()).await;
                        return;
                    }
                }
            }
        }
        let out = proto.take_output();
        if !out.is_empty() && conn.write_all(&out).await.is_err() {
            return;
        }
        if proto.is_closed() {
            return;
        }
        match conn.fill().await {
            Ok(Fill::Data) => {
                let n = conn.buffered().len();
                proto.feed(conn.buffered());
                conn.consume(n);
            }
            Ok(Fill::Eof | Fill::Idle | Fill::Shutdown) | Err(_) => return,
        }
    }
}

async fn handle(authd: &Arc<Authd>, proto: &mut UserdbServerConn, ev: UserdbServerEvent) {
    let users = authd.state().users.clone();
    match ev {
        UserdbServerEvent::Hello { minor } => tracing::debug!(minor, "userdb client handshake"),
        UserdbServerEvent::User(l) => {
            let name = l.user.clone();
            match tokio::task::spawn_blocking(move || users.userdb(&name)).await {
                Ok(Ok(Some((user, fields)))) => {
                    let fields = fields.into_iter().map(|(k, v)| Field::new(k, v)).collect();
                    if !proto.reply_user(l.id, &user, fields) {
                        tracing::info!(
                            user = %user,
                            service = %l.service,
                            "userdb lookup refused: not the uid of the restricted peer"
                        );
                    }
                }
                Ok(Ok(None)) => proto.reply_notfound(l.id),
                Ok(Err(e)) => {
                    tracing::error!(user = %l.user, "userdb lookup failed: {e}");
                    proto.reply_fail(
                        l.id,
                        Some("Internal error occurred. Refer to server log for more information."),
                    );
                }
                Err(e) => proto.reply_fail(l.id, Some(&format!("lookup task failed: {e}"))),
            }
        }
        UserdbServerEvent::Pass(l) => {
            let name = l.user.clone();
            match tokio::task::spawn_blocking(move || users.pass_lookup(&name)).await {
                Ok(Ok(Some((user, extra)))) => {
                    let fields = extra
                        .into_iter()
                        .map(|(k, v)| match v {
                            Some(v) => Field::new(k, v),
                            None => Field::flag(k),
                        })
                        .collect();
                    proto.reply_pass(l.id, &user, fields);
                }
                Ok(Ok(None)) => proto.reply_notfound(l.id),
                Ok(Err(e)) => {
                    tracing::error!(user = %l.user, "passdb lookup failed: {e}");
                    proto.reply_fail(l.id, None);
                }
                Err(_) => proto.reply_fail(l.id, None),
            }
        }
        UserdbServerEvent::List(l) => {
            let mask = l.user_mask.clone();
            match tokio::task::spawn_blocking(move || users.list(mask.as_deref())).await {
                Ok(Ok(all)) => {
                    for u in all {
                        proto.list_user(l.id, &u);
                    }
                    proto.list_done(l.id, false);
                }
                Ok(Err(e)) => {
                    tracing::error!("user listing failed: {e}");
                    proto.list_done(l.id, true);
                }
                Err(_) => proto.list_done(l.id, true),
            }
        }
    }
}
