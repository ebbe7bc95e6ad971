//! The async driver: runs one [`Session`] over a [`Connection`], answering its actions with the
//! auth server (SASL relay, userdb lookup), the Maildir store (jobs in `spawn_blocking`) and,
//! while the client IDLEs, inotify on the selected mailbox's `new/` and `cur/`.

use crate::config::{Config, Service, SpecialMailbox};
use crate::exec::{Ctx, Store};
use crate::idle::{IdleHub, Subscription};
use crate::session::{Action, AuthAnswer, ConnFacts, Session};
use pochta_auth_client::{
    AuthClientError, SaslClient, SaslExchange, SaslRequest, SaslStep, UserdbClient,
};
use pochta_mailstore::location::Template;
use pochta_mailstore::Maildir;
use pochta_server::{Connection, Fill, TlsMode};
use std::sync::Arc;
use std::time::Duration;

/// Output is written once this much is pending even if more pipelined input waits.
const FLUSH_AT: usize = 64 * 1024;
/// While idling, the mailbox is also re-read this often (changes inotify cannot see, e.g. on
/// network filesystems).
const IDLE_POLL: Duration = Duration::from_secs(30);

/// The daemon's shared state.
#[derive(Debug)]
pub struct Imap {
    config: Arc<Config>,
    sasl: SaslClient,
    userdb: UserdbClient,
    location: Template,
    special: Arc<Vec<SpecialMailbox>>,
    /// The daemon's one inotify (`None`: unavailable, IDLE polls).
    idle: Option<IdleHub>,
}

impl Imap {
    pub fn new(config: Arc<Config>) -> Result<Self, String> {
        let location = Template::parse(&config.mail.location)?;
        Ok(Imap {
            sasl: SaslClient::new(config.auth.client_socket.clone()),
            userdb: UserdbClient::new(config.auth.userdb_socket.clone()),
            location,
            special: Arc::new(config.imap.mailboxes.clone()),
            idle: IdleHub::start(),
            config,
        })
    }

    fn step_answer(r: Result<SaslStep, AuthClientError>) -> AuthAnswer {
        match r {
            Ok(SaslStep::Continue(c)) => AuthAnswer::Challenge(c),
            Ok(SaslStep::Success(ok)) => AuthAnswer::Success { user: ok.user },
            Ok(SaslStep::Failure(f)) if f.is_temporary() => AuthAnswer::TempFailure,
            Ok(SaslStep::Failure(_)) => AuthAnswer::Failure,
            Err(e) => {
                tracing::warn!(error = %e, "auth server unavailable");
                AuthAnswer::TempFailure
            }
        }
    }

    async fn open_store(&self, user: &str, peer: Option<std::net::IpAddr>) -> Result<Ctx, String> {
        let service = &self.config.auth.service;
        let reply = match self.userdb.lookup(user, service, peer, None).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err("authenticated user not found in userdb".into()),
            Err(e) => return Err(format!("userdb lookup failed: {e}")),
        };
        // The one rule every daemon reads a userdb reply with: same Maildir and same quota
        // (2.3 quota_rule and 2.4 quota fields) as mda-lmtp's delivery.
        let mb = pochta_mailstore::UserMailbox::from_userdb(&self.location, &reply.user, |k| {
            reply.field(k)
        })?;
        let (root, quota) = (mb.root, mb.quota);
        let special = self.special.clone();
        tokio::task::spawn_blocking(move || Store::open(Maildir::open(root), special, Some(quota)))
            .await
            .map_err(|e| format!("store task failed: {e}"))?
            .map(Ctx::new)
            .map_err(|e| e.to_string())
    }

    /// Serves one connection to its end.
    pub async fn run(
        self: Arc<Self>,
        mut conn: Connection,
        tls_mode: TlsMode,
        session_id: String,
        _service: Service,
    ) {
        let peer_ip = conn.peer().ip();
        let mechanisms = match self.sasl.mechanisms().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "auth server unavailable: no SASL mechanisms");
                Vec::new()
            }
        };
        let facts = ConnFacts {
            tls: conn.tls().is_some(),
            starttls: tls_mode == TlsMode::Starttls && conn.can_starttls(),
            trusted: peer_ip.is_some_and(|ip| self.config.imap.is_trusted(ip)),
        };
        let mut s = Session::new(self.config.imap.session_config(), facts, mechanisms);
        let mut out: Vec<u8> = Vec::new();
        let mut exchange: Option<SaslExchange> = None;
        let mut watcher: Option<Subscription> = None;
        loop {
            match s.next_action() {
                Action::Write(b) => {
                    out.extend_from_slice(&b);
                    if out.len() >= FLUSH_AT && !flush(&mut conn, &mut out).await {
                        break;
                    }
                }
                Action::NeedInput => {
                    if conn.buffered().is_empty() {
                        if !flush(&mut conn, &mut out).await {
                            break;
                        }
                        match conn.fill().await {
                            Ok(Fill::Data) => continue,
                            Ok(Fill::Eof) | Err(_) => break,
                            Ok(Fill::Idle) => {
                                goodbye(conn, b"* BYE Disconnected for inactivity.\r\n").await;
                                break;
                            }
                            Ok(Fill::Shutdown) => {
                                goodbye(conn, b"* BYE Server shutting down.\r\n").await;
                                break;
                            }
                        }
                    }
                    let n = s.feed(conn.buffered());
                    if n == 0 {
                        tracing::error!("session refused input while asking for it");
                        break;
                    }
                    conn.consume(n);
                }
                Action::StartTls => {
                    if !flush(&mut conn, &mut out).await {
                        break;
                    }
                    match conn.starttls().await {
                        Ok(discarded) if discarded > 0 => {
                            // Commands sent in the clear behind STARTTLS (CVE-2011-0411): never
                            // run, and the client is not one to talk to — as the mta does.
                            tracing::warn!(
                                discarded,
                                "plaintext pipelined after STARTTLS; closing"
                            );
                            break;
                        }
                        Ok(_) => s.tls_started(),
                        Err(e) => {
                            tracing::info!(error = %e, "STARTTLS handshake failed");
                            break;
                        }
                    }
                }
                Action::AuthStart {
                    mechanism,
                    initial_response,
                } => {
                    let mut req = SaslRequest::new(mechanism, self.config.auth.service.clone());
                    req.remote_ip = peer_ip;
                    req.secured = conn.tls().is_some() || s.plaintext_allowed();
                    req.session = Some(session_id.clone());
                    req.initial_response = initial_response;
                    let answer = match self.sasl.start(req).await {
                        Ok((ex, step)) => {
                            exchange = Some(ex);
                            Self::step_answer(Ok(step))
                        }
                        Err(e) => Self::step_answer(Err(e)),
                    };
                    if matches!(answer, AuthAnswer::Failure) {
                        tracing::info!("authentication failed");
                    }
                    s.auth_answer(answer);
                }
                Action::AuthContinue(data) => {
                    let answer = match exchange.as_mut() {
                        Some(ex) => Self::step_answer(ex.respond(data.expose()).await),
                        None => AuthAnswer::TempFailure,
                    };
                    if matches!(answer, AuthAnswer::Failure) {
                        tracing::info!("authentication failed");
                    }
                    s.auth_answer(answer);
                }
                Action::AuthAbort => exchange = None,
                Action::OpenStore { user } => {
                    exchange = None;
                    let r = self.open_store(&user, peer_ip).await;
                    match &r {
                        Ok(_) => tracing::info!(user = %user, "login"),
                        Err(e) => tracing::warn!(user = %user, error = %e, "cannot open mailbox"),
                    }
                    s.store_opened(&user, r);
                }
                Action::Run(job) => match tokio::task::spawn_blocking(move || job.run()).await {
                    Ok(done) => s.job_done(done),
                    Err(e) => {
                        tracing::error!(error = %e, "mailbox job failed");
                        let _ = flush(&mut conn, &mut out).await;
                        goodbye(conn, b"* BYE Internal error.\r\n").await;
                        break;
                    }
                },
                Action::Idle { watch: dirs } => {
                    if !flush(&mut conn, &mut out).await {
                        break;
                    }
                    if !conn.buffered().is_empty() {
                        continue;
                    }
                    if watcher.as_ref().is_none_or(|w| !w.covers(&dirs)) {
                        watcher = self.idle.as_ref().map(|h| h.subscribe(&dirs));
                    }
                    let changed = async {
                        match watcher.as_mut() {
                            Some(w) => {
                                w.changed().await;
                                // a delivery is several events (rename, uidlist): take them
                                // together
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    };
                    tokio::select! {
                        r = conn.fill() => match r {
                            Ok(Fill::Data) => {}
                            Ok(Fill::Eof) | Err(_) => break,
                            Ok(Fill::Idle) => {
                                goodbye(conn, b"* BYE Disconnected for inactivity.\r\n").await;
                                break;
                            }
                            Ok(Fill::Shutdown) => {
                                goodbye(conn, b"* BYE Server shutting down.\r\n").await;
                                break;
                            }
                        },
                        () = changed => s.mailbox_changed(),
                        () = tokio::time::sleep(IDLE_POLL) => s.mailbox_changed(),
                    }
                }
                Action::Close => {
                    if flush(&mut conn, &mut out).await {
                        conn.close().await;
                    }
                    break;
                }
            }
        }
        if let Some(u) = s.user() {
            tracing::info!(user = %u, "disconnected");
        }
    }
}

async fn goodbye(mut conn: Connection, text: &[u8]) {
    let _ = conn.write_all(text).await;
    conn.close().await;
}

async fn flush(conn: &mut Connection, out: &mut Vec<u8>) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = conn.write_all(out).await.is_ok();
    out.clear();
    ok
}
