//! Userdb lookups over an auth-userdb socket (pochta-authd's or Dovecot's): one connection
//! shared by every caller, requests pipelined with their own ids, reconnect on failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use pochta_auth_proto::{
    field_value, Field, ListRequest, RequestId, UserLookup, UserdbClientConfig, UserdbClientConn,
    UserdbEvent,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use crate::task::{connect, read_some, ClientOptions, TaskHandle};
use crate::AuthClientError;

/// A user found by a userdb lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserdbReply {
    /// The canonical user name: use it instead of the name asked for (the server may
    /// normalise or rewrite it).
    pub user: String,
    /// Every field as sent (`uid`, `gid`, `home`, `mail`, `quota_rule`, …), in order.
    pub fields: Vec<Field>,
}

impl UserdbReply {
    /// The first value of field `key`.
    pub fn field(&self, key: &str) -> Option<&str> {
        field_value(&self.fields, key)
    }

    /// `uid=` when numeric (Dovecot also allows a user name there; read it with
    /// [`UserdbReply::field`]).
    pub fn uid(&self) -> Option<u32> {
        self.field("uid").and_then(|v| v.parse().ok())
    }

    /// `gid=` when numeric.
    pub fn gid(&self) -> Option<u32> {
        self.field("gid").and_then(|v| v.parse().ok())
    }

    /// `home=`.
    pub fn home(&self) -> Option<&str> {
        self.field("home")
    }

    /// `mail=` (mail location, e.g. `maildir:~/Maildir`).
    pub fn mail(&self) -> Option<&str> {
        self.field("mail")
    }

    /// The first `quota_rule=` (e.g. `*:storage=1G`).
    pub fn quota_rule(&self) -> Option<&str> {
        self.field("quota_rule")
    }

    /// All quota rules in order: `quota_rule`, `quota_rule2`, `quota_rule3`, …
    pub fn quota_rules(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.quota_rule().into_iter().collect();
        for n in 2.. {
            match self.field(&format!("quota_rule{n}")) {
                Some(v) => out.push(v),
                None => break,
            }
        }
        out
    }
}

type Answer = Result<Option<UserdbReply>, AuthClientError>;
type ListAnswer = Result<Vec<String>, AuthClientError>;

enum Request {
    User {
        user: String,
        service: String,
        fields: Vec<Field>,
    },
    List {
        mask: Option<String>,
    },
}

enum Reply {
    User(oneshot::Sender<Answer>),
    /// The names received so far.
    List(oneshot::Sender<ListAnswer>, Vec<String>),
}

impl Reply {
    fn is_closed(&self) -> bool {
        match self {
            Reply::User(tx) => tx.is_closed(),
            Reply::List(tx, _) => tx.is_closed(),
        }
    }

    fn fail(self, e: AuthClientError) {
        match self {
            Reply::User(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::List(tx, _) => {
                let _ = tx.send(Err(e));
            }
        }
    }
}

struct Job {
    request: Request,
    reply: Reply,
    /// Already sent once on a connection that then died.
    retried: bool,
}

/// A client for auth-userdb sockets. Cheap to clone; clones share the connection. Needs a
/// Tokio runtime; the connection task starts at the first lookup and stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct UserdbClient {
    path: Arc<PathBuf>,
    options: ClientOptions,
    task: Arc<TaskHandle<Job>>,
}

impl std::fmt::Debug for UserdbClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserdbClient")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl UserdbClient {
    /// A client for the socket at `path` with default timeouts. Nothing connects yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_options(path, ClientOptions::default())
    }

    /// A client with explicit timeouts.
    pub fn with_options(path: impl Into<PathBuf>, options: ClientOptions) -> Self {
        UserdbClient {
            path: Arc::new(path.into()),
            options,
            task: TaskHandle::new(),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Looks `user` up for `service` (`lmtp`, `pop3`, `imap`, `smtp`, `doveadm`…).
    /// `Ok(None)`: no such user (`NOTFOUND`). Errors are temporary: the service is down, slow,
    /// or its backend failed (`FAIL`).
    pub async fn lookup(
        &self,
        user: &str,
        service: &str,
        remote_ip: Option<IpAddr>,
        local_ip: Option<IpAddr>,
    ) -> Result<Option<UserdbReply>, AuthClientError> {
        let mut fields = Vec::new();
        if let Some(ip) = local_ip {
            fields.push(Field::new("lip", ip.to_string()));
        }
        if let Some(ip) = remote_ip {
            fields.push(Field::new("rip", ip.to_string()));
        }
        let (tx, rx) = oneshot::channel();
        let request = Request::User {
            user: user.to_owned(),
            service: service.to_owned(),
            fields,
        };
        self.submit(request, Reply::User(tx));
        self.wait(rx).await?
    }

    /// Every user name matching `mask` (`*` and `?` wildcards; `None`: all), as
    /// `doveadm user '*'` lists them. The server may refuse (`LookupFailed`), e.g. on a
    /// restricted 0666 socket.
    pub async fn list(&self, mask: Option<&str>) -> Result<Vec<String>, AuthClientError> {
        let (tx, rx) = oneshot::channel();
        let request = Request::List {
            mask: mask.map(str::to_owned),
        };
        self.submit(request, Reply::List(tx, Vec::new()));
        self.wait(rx).await?
    }

    fn submit(&self, request: Request, reply: Reply) {
        let job = Job {
            request,
            reply,
            retried: false,
        };
        let (path, options) = (Arc::clone(&self.path), self.options);
        self.task.submit(job, move |rx| run(path, options, rx));
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<T>) -> Result<T, AuthClientError> {
        match tokio::time::timeout(self.options.request_timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(AuthClientError::ConnectionLost(
                "userdb client task ended".into(),
            )),
            Err(_) => Err(AuthClientError::Timeout),
        }
    }
}

struct Live {
    stream: UnixStream,
    proto: UserdbClientConn,
    pending: HashMap<RequestId, Job>,
}

enum Wake {
    Job(Option<Job>),
    Read(std::io::Result<usize>),
}

async fn run(path: Arc<PathBuf>, options: ClientOptions, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut live: Option<Live> = None;
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
                if let Some(l) = live.as_mut() {
                    // Callers that gave up (timeout) leave their entries: drop them now.
                    l.pending.retain(|_, j| !j.reply.is_closed());
                }
                send_jobs(&path, options, &mut live, vec![job]).await;
            }
            Wake::Read(Ok(n)) if n > 0 => {
                let Some(l) = live.as_mut() else { continue };
                l.proto.feed(&buf[..n]);
                if let Err(e) = drain_events(l) {
                    let lost = live.take().map(|l| l.pending).unwrap_or_default();
                    retry_or_fail(&path, options, &mut live, lost, e).await;
                }
            }
            Wake::Read(r) => {
                let why = match r {
                    Err(e) => e.to_string(),
                    Ok(_) => "server closed the connection".to_owned(),
                };
                let lost = live.take().map(|l| l.pending).unwrap_or_default();
                let e = AuthClientError::ConnectionLost(why);
                retry_or_fail(&path, options, &mut live, lost, e).await;
            }
        }
    }
}

/// Sends jobs on the live connection, connecting first if there is none.
async fn send_jobs(
    path: &std::path::Path,
    options: ClientOptions,
    live: &mut Option<Live>,
    jobs: Vec<Job>,
) {
    if live.is_none() {
        match connect(path, options.connect_timeout).await {
            Ok(stream) => {
                *live = Some(Live {
                    stream,
                    proto: UserdbClientConn::new(UserdbClientConfig::default()),
                    pending: HashMap::new(),
                })
            }
            Err(e) => {
                for job in jobs {
                    job.reply.fail(e.clone());
                }
                return;
            }
        }
    }
    let Some(l) = live.as_mut() else { return };
    let mut sent = Vec::new();
    for mut job in jobs {
        let id = l.proto.next_request_id();
        let queued = match &job.request {
            Request::User {
                user,
                service,
                fields,
            } => {
                let mut lookup = UserLookup::new(id, user.clone(), service.clone());
                lookup.fields = fields.clone();
                l.proto.user(lookup)
            }
            Request::List { mask } => l.proto.list(ListRequest {
                id,
                user_mask: mask.clone(),
                service: None,
                fields: Vec::new(),
            }),
        };
        match queued {
            Ok(()) => {
                // A retried LIST starts over.
                if let Reply::List(_, names) = &mut job.reply {
                    names.clear();
                }
                sent.push((id, job));
            }
            Err(e) => job.reply.fail(AuthClientError::Protocol(e.to_string())),
        }
    }
    let out = l.proto.take_output();
    l.pending.extend(sent);
    if let Err(e) = l.stream.write_all(&out).await {
        let lost = live.take().map(|l| l.pending).unwrap_or_default();
        let e = AuthClientError::ConnectionLost(e.to_string());
        Box::pin(retry_or_fail(path, options, live, lost, e)).await;
    }
}

/// After a connection died: requests sent only once go out again on a new connection (a
/// lookup is idempotent; the server may just have closed an idle connection); the others fail.
async fn retry_or_fail(
    path: &std::path::Path,
    options: ClientOptions,
    live: &mut Option<Live>,
    lost: HashMap<RequestId, Job>,
    error: AuthClientError,
) {
    let mut again = Vec::new();
    for (_, mut job) in lost {
        if job.retried || job.reply.is_closed() {
            job.reply.fail(error.clone());
        } else {
            job.retried = true;
            again.push(job);
        }
    }
    if !again.is_empty() {
        tracing::debug!(
            requests = again.len(),
            "userdb connection lost ({error}); retrying"
        );
        send_jobs(path, options, live, again).await;
    }
}

/// Hands every complete reply to its caller; a fatal protocol error closes the connection.
fn drain_events(l: &mut Live) -> Result<(), AuthClientError> {
    while let Some(ev) = l.proto.next_event() {
        let ev = ev.map_err(|e| AuthClientError::Protocol(e.to_string()))?;
        let (id, answer) = match ev {
            UserdbEvent::User { id, user, fields } => (id, Ok(Some(UserdbReply { user, fields }))),
            UserdbEvent::NotFound(id) => (id, Ok(None)),
            UserdbEvent::Failed { id, reason } => (id, Err(AuthClientError::LookupFailed(reason))),
            UserdbEvent::ListUser { id, user } => {
                if let Some(Job {
                    reply: Reply::List(_, names),
                    ..
                }) = l.pending.get_mut(&id)
                {
                    names.push(user);
                }
                continue;
            }
            UserdbEvent::ListDone { id, failed } => {
                if let Some(job) = l.pending.remove(&id) {
                    match job.reply {
                        Reply::List(tx, names) if !failed => {
                            let _ = tx.send(Ok(names));
                        }
                        other => other.fail(AuthClientError::LookupFailed(None)),
                    }
                }
                continue;
            }
            // PASS is never sent.
            UserdbEvent::Ready { .. } | UserdbEvent::Pass { .. } => continue,
        };
        if let Some(job) = l.pending.remove(&id) {
            match (job.reply, answer) {
                (Reply::User(tx), answer) => {
                    let _ = tx.send(answer);
                }
                // A LIST answered with FAIL/NOTFOUND (not sent by Dovecot, but possible).
                (other, Err(e)) => other.fail(e),
                (other, Ok(_)) => other.fail(AuthClientError::LookupFailed(None)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let r = UserdbReply {
            user: "a@x".into(),
            fields: vec![
                Field::new("uid", "5000"),
                Field::new("gid", "vmail"),
                Field::new("home", "/srv/a"),
                Field::new("quota_rule", "*:storage=1G"),
                Field::new("quota_rule2", "Trash:storage=+100M"),
            ],
        };
        assert_eq!(r.uid(), Some(5000));
        assert_eq!(r.gid(), None);
        assert_eq!(r.field("gid"), Some("vmail"));
        assert_eq!(r.home(), Some("/srv/a"));
        assert_eq!(r.mail(), None);
        assert_eq!(r.quota_rules(), ["*:storage=1G", "Trash:storage=+100M"]);
    }
}
