//! SASL relay over an auth-client socket (pochta-authd's or Dovecot's): the mechanisms the
//! server lists, and exchanges relayed step by step, many at once on one persistent
//! connection that is re-opened when it dies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pochta_auth_proto::{
    AuthClientConfig, AuthClientConn, AuthRequest, ClientEvent, FailCode, Field, MechFlag,
    Mechanism, RequestId, Secret, Secured, ServerInfo,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use crate::task::{connect, read_some, ClientOptions, TaskHandle};
use crate::AuthClientError;

/// What to start an exchange with. Build it with [`SaslRequest::new`] and set the fields that
/// apply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaslRequest {
    /// Mechanism as the user's client named it (case does not matter).
    pub mechanism: String,
    /// `service=`: `smtp`, `imap`, `pop3`…
    pub service: String,
    /// Our address the user connected to.
    pub local_ip: Option<IpAddr>,
    /// The user's address (the server's brute-force penalty counts per remote IP).
    pub remote_ip: Option<IpAddr>,
    /// Our port.
    pub local_port: Option<u16>,
    /// The user's port.
    pub remote_port: Option<u16>,
    /// The connection is TLS-protected or otherwise trusted (sends `secured`).
    pub secured: bool,
    /// The client presented a certificate we verified.
    pub valid_client_cert: bool,
    /// Skip the server's brute-force penalty for this request.
    pub no_penalty: bool,
    /// Session id for the server's logs.
    pub session: Option<String>,
    /// The initial response (SMTP `AUTH PLAIN <ir>`, IMAP SASL-IR), decoded; `Some(empty)` for
    /// an explicitly empty one (`=`).
    pub initial_response: Option<Secret<Vec<u8>>>,
}

impl SaslRequest {
    /// A request for `mechanism` on behalf of `service`.
    pub fn new(mechanism: impl Into<String>, service: impl Into<String>) -> Self {
        SaslRequest {
            mechanism: mechanism.into(),
            service: service.into(),
            local_ip: None,
            remote_ip: None,
            local_port: None,
            remote_port: None,
            secured: false,
            valid_client_cert: false,
            no_penalty: false,
            session: None,
            initial_response: None,
        }
    }

    fn to_wire(&self, id: RequestId) -> AuthRequest {
        let mut r = AuthRequest::new(id, self.mechanism.clone(), self.service.clone());
        r.local_ip = self.local_ip;
        r.remote_ip = self.remote_ip;
        r.local_port = self.local_port;
        r.remote_port = self.remote_port;
        r.secured = self.secured.then_some(Secured::Yes);
        r.valid_client_cert = self.valid_client_cert;
        r.no_penalty = self.no_penalty;
        r.session = self.session.clone();
        r.initial_response = self.initial_response.clone();
        r
    }
}

/// Authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaslSuccess {
    /// The authenticated user, as the server canonicalised it: use this name from now on.
    pub user: String,
    /// Passdb extra fields of the `OK` line.
    pub fields: Vec<Field>,
}

/// Not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaslFailure {
    /// `code=` (2.3+) or the 2.2 flag, if any.
    pub code: Option<FailCode>,
    /// `reason=`: text the server meant for the user, if any.
    pub reason: Option<String>,
    /// `user=`, when the server named the user.
    pub user: Option<String>,
    /// Other fields of the `FAIL` line.
    pub fields: Vec<Field>,
}

impl SaslFailure {
    /// `code=temp_fail`: the server could not check (backend down). Answer "try again later"
    /// (SMTP 454 4.7.0), not "authentication failed".
    pub fn is_temporary(&self) -> bool {
        self.code == Some(FailCode::TempFail)
    }
}

/// The server's answer to one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// A challenge (SMTP `334`, IMAP `+`): show it to the user's client (base64-encode it) and
    /// pass its answer to [`SaslExchange::respond`].
    Continue(Secret<Vec<u8>>),
    /// Authenticated.
    Success(SaslSuccess),
    /// Wrong credentials, unknown user, refused, or [`SaslFailure::is_temporary`].
    Failure(SaslFailure),
}

/// Mechanisms to offer on a connection: the server's public mechanisms, without the
/// `plaintext` ones unless the connection is `secured` (TLS, or a trusted network), the rule
/// of Dovecot's `disable_plaintext_auth` and Postfix's `smtpd_tls_auth_only`.
pub fn filter_mechanisms(mechanisms: &[Mechanism], secured: bool) -> Vec<Mechanism> {
    mechanisms
        .iter()
        .filter(|m| !m.flags.contains(MechFlag::Private))
        .filter(|m| secured || !m.flags.contains(MechFlag::Plaintext))
        .cloned()
        .collect()
}

type StepResult = Result<SaslStep, AuthClientError>;

enum Job {
    Mechanisms(oneshot::Sender<Result<Vec<Mechanism>, AuthClientError>>),
    Start {
        request: Box<SaslRequest>,
        started: oneshot::Sender<Result<(RequestId, u64), AuthClientError>>,
        step: oneshot::Sender<StepResult>,
    },
    Respond {
        id: RequestId,
        generation: u64,
        data: Secret<Vec<u8>>,
        step: oneshot::Sender<StepResult>,
    },
    Forget {
        id: RequestId,
        generation: u64,
    },
}

/// A client for auth-client sockets. Cheap to clone; clones share one connection. Needs a
/// Tokio runtime; the connection task starts on first use and stops when the last clone (and
/// the last exchange) is dropped.
#[derive(Clone)]
pub struct SaslClient {
    path: Arc<PathBuf>,
    options: ClientOptions,
    task: Arc<TaskHandle<Job>>,
}

impl std::fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslClient")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SaslClient {
    /// A client for the socket at `path` with default timeouts. Nothing connects yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_options(path, ClientOptions::default())
    }

    /// A client with explicit timeouts.
    pub fn with_options(path: impl Into<PathBuf>, options: ClientOptions) -> Self {
        SaslClient {
            path: Arc::new(path.into()),
            options,
            task: TaskHandle::new(),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn submit(&self, job: Job) {
        let (path, options) = (Arc::clone(&self.path), self.options);
        self.task.submit(job, move |rx| run(path, options, rx));
    }

    async fn wait<T>(
        &self,
        rx: oneshot::Receiver<Result<T, AuthClientError>>,
    ) -> Result<T, AuthClientError> {
        match tokio::time::timeout(self.options.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(AuthClientError::ConnectionLost(
                "auth client task ended".into(),
            )),
            Err(_) => Err(AuthClientError::Timeout),
        }
    }

    /// Every mechanism the server lists, with its flags, in its order (`private` ones left
    /// out). Connects if needed; the list is the one of the current connection's handshake.
    pub async fn mechanisms(&self) -> Result<Vec<Mechanism>, AuthClientError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Mechanisms(tx));
        self.wait(rx).await
    }

    /// The mechanisms to advertise on a connection: [`filter_mechanisms`] applied to
    /// [`SaslClient::mechanisms`].
    pub async fn mechanisms_to_offer(
        &self,
        secured: bool,
    ) -> Result<Vec<Mechanism>, AuthClientError> {
        Ok(filter_mechanisms(&self.mechanisms().await?, secured))
    }

    /// Starts an exchange; returns it with the server's first answer (a challenge, or already
    /// the result when an initial response was enough).
    pub async fn start(
        &self,
        request: SaslRequest,
    ) -> Result<(SaslExchange, SaslStep), AuthClientError> {
        let (started_tx, started_rx) = oneshot::channel();
        let (step_tx, step_rx) = oneshot::channel();
        self.submit(Job::Start {
            request: Box::new(request),
            started: started_tx,
            step: step_tx,
        });
        let (id, generation) = self.wait(started_rx).await?;
        let mut exchange = SaslExchange {
            client: self.clone(),
            id,
            generation,
            finished: false,
        };
        let step = exchange.await_step(step_rx).await?;
        Ok((exchange, step))
    }
}

/// One SASL exchange in progress. Dropping it before the end abandons it (the server times
/// the request out by itself).
#[derive(Debug)]
pub struct SaslExchange {
    client: SaslClient,
    id: RequestId,
    generation: u64,
    finished: bool,
}

impl SaslExchange {
    /// The request id on the wire (for logs).
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Sends the user's answer to the last challenge and returns the server's next step. The
    /// user's client cancelling (SMTP/IMAP `*`) is not relayed: drop the exchange instead.
    pub async fn respond(&mut self, data: &[u8]) -> StepResult {
        if self.finished {
            return Err(AuthClientError::ExchangeFinished);
        }
        let (tx, rx) = oneshot::channel();
        self.client.submit(Job::Respond {
            id: self.id,
            generation: self.generation,
            data: Secret::new(data.to_vec()),
            step: tx,
        });
        self.await_step(rx).await
    }

    async fn await_step(&mut self, rx: oneshot::Receiver<StepResult>) -> StepResult {
        let r = self.client.wait(rx).await;
        if !matches!(r, Ok(SaslStep::Continue(_))) {
            self.finished = true;
        }
        r
    }
}

impl Drop for SaslExchange {
    fn drop(&mut self) {
        if !self.finished {
            self.client.submit(Job::Forget {
                id: self.id,
                generation: self.generation,
            });
        }
    }
}

struct Live {
    stream: UnixStream,
    proto: AuthClientConn,
    info: ServerInfo,
    generation: u64,
    waiting: HashMap<RequestId, oneshot::Sender<StepResult>>,
}

enum Wake {
    Job(Option<Job>),
    Read(std::io::Result<usize>),
}

async fn run(path: Arc<PathBuf>, options: ClientOptions, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut live: Option<Live> = None;
    let mut generation = 0u64;
    let mut buf = Vec::new();
    loop {
        let wake = match live.as_mut() {
            Some(l) => tokio::select! {
                job = jobs.recv() => Wake::Job(job),
                r = read_some(&mut l.stream, &mut buf) => Wake::Read(r),
            },
            None => Wake::Job(jobs.recv().await),
        };
        match wake {
            Wake::Job(None) => return,
            Wake::Job(Some(job)) => {
                handle_job(&path, options, &mut live, &mut generation, job).await;
            }
            Wake::Read(Ok(n)) if n > 0 => {
                let Some(l) = live.as_mut() else { continue };
                l.proto.feed(&buf[..n]);
                if let Err(e) = drain_events(l) {
                    lose(&mut live, e);
                }
            }
            Wake::Read(r) => {
                let why = match r {
                    Err(e) => e.to_string(),
                    Ok(_) => "auth server closed the connection".to_owned(),
                };
                lose(&mut live, AuthClientError::ConnectionLost(why));
            }
        }
    }
}

/// Drops the connection; every waiting step gets `error`.
fn lose(live: &mut Option<Live>, error: AuthClientError) {
    if let Some(l) = live.take() {
        tracing::debug!("auth-client connection closed: {error}");
        for (_, w) in l.waiting {
            let _ = w.send(Err(error.clone()));
        }
    }
}

/// Connects and reads the server's handshake up to `DONE`.
async fn open(
    path: &Path,
    options: ClientOptions,
    generation: u64,
) -> Result<Live, AuthClientError> {
    let mut stream = connect(path, options.connect_timeout).await?;
    // A pid is never 0 for a running process; 1 keeps the line valid if it ever were.
    let pid = NonZeroU32::new(std::process::id()).unwrap_or(NonZeroU32::MIN);
    let mut proto = AuthClientConn::new(AuthClientConfig::new(pid));
    let handshake = async {
        stream
            .write_all(&proto.take_output())
            .await
            .map_err(|e| AuthClientError::Unavailable(format!("{}: {e}", path.display())))?;
        let mut buf = Vec::new();
        loop {
            while let Some(ev) = proto.next_event() {
                match ev {
                    Ok(ClientEvent::Ready(info)) => return Ok(info),
                    Ok(_) => {}
                    Err(e) => return Err(AuthClientError::Protocol(e.to_string())),
                }
            }
            match read_some(&mut stream, &mut buf).await {
                Ok(0) => {
                    return Err(AuthClientError::Unavailable(format!(
                        "{}: closed during the handshake",
                        path.display()
                    )))
                }
                Ok(n) => proto.feed(&buf[..n]),
                Err(e) => {
                    return Err(AuthClientError::Unavailable(format!(
                        "{}: {e}",
                        path.display()
                    )))
                }
            }
        }
    };
    let info = match tokio::time::timeout(options.connect_timeout, handshake).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(AuthClientError::Unavailable(format!(
                "{}: no handshake from the auth server",
                path.display()
            )))
        }
    };
    Ok(Live {
        stream,
        proto,
        info,
        generation,
        waiting: HashMap::new(),
    })
}

async fn ensure_live<'a>(
    path: &Path,
    options: ClientOptions,
    live: &'a mut Option<Live>,
    generation: &mut u64,
) -> Result<&'a mut Live, AuthClientError> {
    if live.is_none() {
        *generation += 1;
        *live = Some(open(path, options, *generation).await?);
    }
    live.as_mut()
        .ok_or_else(|| AuthClientError::Unavailable("no connection".into()))
}

async fn handle_job(
    path: &Path,
    options: ClientOptions,
    live: &mut Option<Live>,
    generation: &mut u64,
    job: Job,
) {
    match job {
        Job::Mechanisms(reply) => {
            let r = ensure_live(path, options, live, generation)
                .await
                .map(|l| l.info.public_mechanisms().cloned().collect());
            let _ = reply.send(r);
        }
        Job::Start {
            request,
            started,
            step,
        } => {
            // Like Postfix: a connection found dead on write is re-opened once.
            for attempt in 0..2 {
                let l = match ensure_live(path, options, live, generation).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                if l.info.mechanism(&request.mechanism).is_none() {
                    let m = request.mechanism.clone();
                    let _ = started.send(Err(AuthClientError::UnknownMechanism(m)));
                    return;
                }
                let id = l.proto.next_request_id();
                if let Err(e) = l.proto.start(&request.to_wire(id)) {
                    let _ = started.send(Err(AuthClientError::Protocol(e.to_string())));
                    return;
                }
                let out = l.proto.take_output();
                match l.stream.write_all(&out).await {
                    Ok(()) => {
                        l.waiting.insert(id, step);
                        let _ = started.send(Ok((id, l.generation)));
                        return;
                    }
                    Err(e) => {
                        let e = AuthClientError::ConnectionLost(e.to_string());
                        lose(live, e.clone());
                        if attempt == 1 {
                            let _ = started.send(Err(e));
                            return;
                        }
                    }
                }
            }
        }
        Job::Respond {
            id,
            generation: gen,
            data,
            step,
        } => {
            let Some(l) = live.as_mut().filter(|l| l.generation == gen) else {
                let _ = step.send(Err(AuthClientError::ConnectionLost(
                    "the connection of this exchange was closed".into(),
                )));
                return;
            };
            if l.proto.respond(id, data.expose()).is_err() {
                let _ = step.send(Err(AuthClientError::ExchangeFinished));
                return;
            }
            let out = l.proto.take_output();
            if let Err(e) = l.stream.write_all(&out).await {
                let _ = step.send(Err(AuthClientError::ConnectionLost(e.to_string())));
                lose(live, AuthClientError::ConnectionLost(e.to_string()));
                return;
            }
            l.waiting.insert(id, step);
        }
        Job::Forget {
            id,
            generation: gen,
        } => {
            if let Some(l) = live.as_mut().filter(|l| l.generation == gen) {
                l.proto.forget(id);
                l.waiting.remove(&id);
            }
        }
    }
}

/// Routes every server reply to the exchange waiting for it. A fatal protocol error closes the
/// connection.
fn drain_events(l: &mut Live) -> Result<(), AuthClientError> {
    while let Some(ev) = l.proto.next_event() {
        let (id, result) = match ev {
            Ok(ClientEvent::Continue { id, data }) => (id, Ok(SaslStep::Continue(data))),
            Ok(ClientEvent::Success { user, reply }) => (
                reply.id,
                Ok(SaslStep::Success(SaslSuccess {
                    user,
                    fields: reply.fields,
                })),
            ),
            Ok(ClientEvent::Failure(f)) => (
                f.id,
                Ok(SaslStep::Failure(SaslFailure {
                    code: f.code,
                    reason: f.reason,
                    user: f.user,
                    fields: f.fields,
                })),
            ),
            Ok(ClientEvent::Ready(_) | ClientEvent::Cancelled(_)) => continue,
            Err(e) if e.is_fatal() => return Err(AuthClientError::Protocol(e.to_string())),
            Err(pochta_auth_proto::ClientError::MissingUser(id)) => (
                id,
                Err(AuthClientError::Protocol(
                    "OK without user= (auth backend error)".into(),
                )),
            ),
            Err(_) => continue,
        };
        if let Some(w) = l.waiting.remove(&id) {
            let _ = w.send(result);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_needs_secured() {
        let mechs = vec![
            Mechanism::dovecot_default("PLAIN").unwrap(),
            Mechanism::dovecot_default("CRAM-MD5").unwrap(),
            Mechanism::dovecot_default("APOP").unwrap(),
        ];
        let names = |v: Vec<Mechanism>| v.into_iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(names(filter_mechanisms(&mechs, false)), ["CRAM-MD5"]);
        assert_eq!(
            names(filter_mechanisms(&mechs, true)),
            ["PLAIN", "CRAM-MD5"]
        );
    }

    #[test]
    fn temporary_failure() {
        let f = SaslFailure {
            code: Some(FailCode::TempFail),
            reason: None,
            user: None,
            fields: vec![],
        };
        assert!(f.is_temporary());
    }
}
