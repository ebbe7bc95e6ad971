//! The async driver: runs one [`Session`] over a [`Connection`], answering its actions with the
//! auth server (SASL relay, userdb lookup) and the Maildir store (in `spawn_blocking`).

use crate::config::{Config, Service};
use crate::session::{Action, AuthAnswer, ConnFacts, Session, StoreError};
use crate::store::Maildrop;
use pochta_auth_client::{
    AuthClientError, SaslClient, SaslExchange, SaslRequest, SaslStep, UserdbClient,
};
use pochta_mailstore::location::Template;
use pochta_server::{Connection, Fill, TlsMode};
use std::sync::Arc;

/// Output is written once this much is pending even if more pipelined input waits.
const FLUSH_AT: usize = 64 * 1024;

/// The daemon's shared state: config and auth clients.
#[derive(Debug)]
pub struct Pop3 {
    config: Arc<Config>,
    sasl: SaslClient,
    userdb: UserdbClient,
    location: Template,
}

impl Pop3 {
    pub fn new(config: Arc<Config>) -> Result<Self, String> {
        let location = Template::parse(&config.mail.location)?;
        Ok(Pop3 {
            sasl: SaslClient::new(config.auth.client_socket.clone()),
            userdb: UserdbClient::new(config.auth.userdb_socket.clone()),
            location,
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

    async fn open_maildrop(&self, user: &str, peer: Option<std::net::IpAddr>) -> Option<Maildrop> {
        let service = &self.config.auth.service;
        let reply = match self.userdb.lookup(user, service, peer, None).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::warn!(user, "authenticated user not found in userdb");
                return None;
            }
            Err(e) => {
                tracing::warn!(user, error = %e, "userdb lookup failed");
                return None;
            }
        };
        // The one rule every daemon reads a userdb reply with (mda-lmtp delivers there).
        let found = pochta_mailstore::UserMailbox::from_userdb(&self.location, &reply.user, |k| {
            reply.field(k)
        });
        let root = match found {
            Ok(mb) => mb.root,
            Err(e) => {
                tracing::warn!(user, error = %e, "no usable mail location");
                return None;
            }
        };
        let opened = tokio::task::spawn_blocking(move || Maildrop::open(root)).await;
        match opened {
            Ok(Ok(m)) => Some(m),
            Ok(Err(e)) => {
                tracing::warn!(user, error = %e, "cannot open INBOX");
                None
            }
            Err(e) => {
                tracing::error!(user, error = %e, "maildrop task failed");
                None
            }
        }
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
            trusted: peer_ip.is_some_and(|ip| self.config.pop3.is_trusted(ip)),
        };
        let mut s = Session::new(self.config.pop3.session_config(), facts, mechanisms);
        let mut out: Vec<u8> = Vec::new();
        let mut exchange: Option<SaslExchange> = None;
        let mut maildrop: Option<Maildrop> = None;
        let mut user = String::new();
        let (mut retrieved, mut deleted) = (0usize, 0usize);
        let mut ahead = ReadAhead::default();
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
                        let goodbye: &[u8] = match conn.fill().await {
                            Ok(Fill::Data) => continue,
                            Ok(Fill::Eof) | Err(_) => break,
                            Ok(Fill::Idle) => b"-ERR Disconnected for inactivity.\r\n",
                            Ok(Fill::Shutdown) => b"-ERR Server shutting down.\r\n",
                        };
                        let _ = conn.write_all(goodbye).await;
                        conn.close().await;
                        break;
                    }
                    let n = s.feed(conn.buffered());
                    if n == 0 {
                        // Cannot happen while every action is answered; never spin on it.
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
                            // Commands sent in the clear behind STLS (CVE-2011-0411): never
                            // run, and the client is not one to talk to — as the mta does.
                            tracing::warn!(discarded, "plaintext pipelined after STLS; closing");
                            break;
                        }
                        Ok(_) => s.tls_started(),
                        Err(e) => {
                            tracing::info!(error = %e, "STLS handshake failed");
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
                Action::OpenMaildrop { user: u } => {
                    exchange = None;
                    let m = self.open_maildrop(&u, peer_ip).await;
                    match &m {
                        Some(m) => {
                            tracing::info!(user = %u, messages = m.len(), "login");
                            s.maildrop_opened(Ok(m.entries()));
                        }
                        None => s.maildrop_opened(Err(StoreError::Temporary)),
                    }
                    maildrop = m;
                    user = u;
                }
                Action::Fetch { index, body_lines } => {
                    let top = body_lines.is_some();
                    let Some(m) = maildrop.clone() else {
                        let _ = s.fetch_begin(Err(StoreError::Temporary));
                        continue;
                    };
                    let sequential = !top && ahead.last_retr.is_some_and(|l| l + 1 == index);
                    if !top {
                        ahead.last_retr = Some(index);
                    }
                    let first = match ahead.take(index) {
                        Some(data) => Ok((None, data)),
                        None => {
                            let read = tokio::task::spawn_blocking(move || {
                                let f = m.open_message(index)?;
                                let (f, chunk) =
                                    read_chunk(f).map_err(|_| StoreError::Temporary)?;
                                let more = if sequential && chunk.len() < READ_CHUNK {
                                    m.read_ahead(index + 1, READ_AHEAD_MESSAGES, READ_AHEAD_BYTES)
                                } else {
                                    Vec::new()
                                };
                                Ok((f, chunk, more))
                            })
                            .await
                            .unwrap_or(Err(StoreError::Temporary));
                            read.map(|(f, chunk, more)| {
                                ahead.fill(more);
                                (Some(f), chunk)
                            })
                        }
                    };
                    let (mut file, mut chunk) = match first {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(user, index, error = ?e, "cannot read message");
                            let _ = s.fetch_begin(Err(e));
                            continue;
                        }
                    };
                    let Some(mut enc) = s.fetch_begin(Ok(())) else {
                        continue;
                    };
                    retrieved += usize::from(!top);
                    out.extend_from_slice(&s.take_output());
                    let mut failed = false;
                    loop {
                        enc.push(&chunk, &mut out);
                        if out.len() >= FLUSH_AT && !flush(&mut conn, &mut out).await {
                            failed = true;
                            break;
                        }
                        // Read-ahead messages are whole (smaller than a chunk): no file.
                        let Some(f) = file.take().filter(|_| chunk.len() >= READ_CHUNK) else {
                            break;
                        };
                        if enc.done() {
                            break;
                        }
                        match tokio::task::spawn_blocking(move || read_chunk(f)).await {
                            Ok(Ok((f, c))) => (file, chunk) = (Some(f), c),
                            _ => {
                                // The status line is out: POP3 has no way to report this.
                                tracing::error!(user, index, "read error in the middle of RETR");
                                failed = true;
                                break;
                            }
                        }
                    }
                    if failed {
                        break;
                    }
                    enc.finish(&mut out);
                }
                Action::Update { delete, seen } => {
                    let seen = if self.config.pop3.mark_seen {
                        seen
                    } else {
                        Vec::new()
                    };
                    let n_delete = delete.len();
                    let result = match maildrop.clone() {
                        Some(m) => tokio::task::spawn_blocking(move || m.update(&delete, &seen))
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.to_string())),
                        None => Err("no maildrop".to_owned()),
                    };
                    match &result {
                        Ok(_) => deleted = n_delete,
                        Err(e) => tracing::error!(user, error = %e, "UPDATE failed"),
                    }
                    s.updated(result.map_err(|_| StoreError::Temporary));
                }
                Action::Close => {
                    if flush(&mut conn, &mut out).await {
                        conn.close().await;
                    }
                    break;
                }
            }
        }
        if s.logged_in() || !user.is_empty() {
            tracing::info!(user, retrieved, deleted, "disconnected");
        }
    }
}

/// Bytes read from a message file per blocking call.
const READ_CHUNK: usize = 256 * 1024;

/// A client that RETRs message n right after n − 1 (fetchmail, getmail, Outlook and the
/// like download a whole maildrop so) gets the next messages read in the same blocking call:
/// the hop to the blocking pool and back costs more than reading a small message. At most
/// this many messages and bytes per session are held.
const READ_AHEAD_MESSAGES: usize = 32;
const READ_AHEAD_BYTES: usize = 64 * 1024;
/// Read-ahead older than this is dropped rather than sent: a message another session expunged
/// is reported as expunged to a RETR sent after that, as when it is read at the RETR.
const READ_AHEAD_FRESH: std::time::Duration = std::time::Duration::from_millis(100);

/// Messages read ahead of a sequential download, by ascending index.
#[derive(Default)]
struct ReadAhead {
    messages: std::collections::VecDeque<(usize, Vec<u8>)>,
    read_at: Option<std::time::Instant>,
    /// The last message RETR asked for.
    last_retr: Option<usize>,
}

impl ReadAhead {
    fn fill(&mut self, messages: Vec<(usize, Vec<u8>)>) {
        self.messages = messages.into();
        self.read_at = Some(std::time::Instant::now());
    }

    /// Message `index` if it was read ahead recently enough; anything before it is dropped,
    /// everything goes when it is not there.
    fn take(&mut self, index: usize) -> Option<Vec<u8>> {
        let fresh = self
            .read_at
            .is_some_and(|t| t.elapsed() <= READ_AHEAD_FRESH);
        while self.messages.front().is_some_and(|(i, _)| *i < index) {
            self.messages.pop_front();
        }
        match self.messages.front() {
            Some((i, _)) if *i == index && fresh => self.messages.pop_front().map(|(_, d)| d),
            _ => {
                self.messages.clear();
                None
            }
        }
    }
}

/// Reads up to [`READ_CHUNK`] bytes; fewer means the end of the file. Blocking.
fn read_chunk(f: std::fs::File) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(READ_CHUNK.min(64 * 1024));
    let mut limited = f.take(READ_CHUNK as u64);
    limited.read_to_end(&mut buf)?;
    Ok((limited.into_inner(), buf))
}

async fn flush(conn: &mut Connection, out: &mut Vec<u8>) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = conn.write_all(out).await.is_ok();
    out.clear();
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_serves_in_order_and_only_fresh() {
        let mut ra = ReadAhead::default();
        assert_eq!(ra.take(0), None);
        ra.fill(vec![
            (3, b"c".to_vec()),
            (4, b"d".to_vec()),
            (6, b"f".to_vec()),
        ]);
        // Skipped indexes (DELE'd, or the client jumped) are dropped on the way.
        assert_eq!(ra.take(4), Some(b"d".to_vec()));
        assert_eq!(ra.take(5), None);
        // A miss forgets the rest: the next read starts afresh.
        assert_eq!(ra.take(6), None);
        ra.fill(vec![(7, b"g".to_vec())]);
        ra.read_at = Some(std::time::Instant::now() - READ_AHEAD_FRESH * 2);
        assert_eq!(ra.take(7), None, "stale read-ahead is not sent");
    }
}
