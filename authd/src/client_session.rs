//! The auth-client socket: one connection from Postfix, Exim, Dovecot or a pochta daemon, many
//! SASL exchanges on it, concurrently. Blocking work (passdb reads, password hashing) and the
//! failure delay run in their own tasks; their outcomes come back to the connection loop through a
//! channel, so one slow or failing exchange never holds up the others. A password stored in a
//! one-hash scheme ({PLAIN}, SHA*, SSHA*, …) in an unchanged passwd-file is checked right here:
//! a `stat`, a map lookup and a hash cost less than the trip to the blocking pool and back.

use crate::sasl::{CramMd5, Failure, Login, Plain, Scram, Step};
use crate::users::Verdict;
use crate::Authd;
use pochta_auth_proto::{
    AuthServerConfig, AuthServerConn, Cookie, Disposition, FailCode, FailReply, Field, OkReply,
    RequestId, Secret, ServerEvent,
};
use pochta_password::{ScramCredentials, ScramHash};
use pochta_server::{Connection, Fill};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

enum Mech {
    Plain(Plain),
    Login(Login),
    Cram(CramMd5),
    Scram(Scram, ScramHash),
}

struct Exchange {
    mech: Mech,
    mech_name: String,
    remote: Option<IpAddr>,
    no_penalty: bool,
    final_resp_ok: bool,
    /// Authenticated; waiting for the client's empty CONT after our final SASL data.
    final_pending: Option<(String, Vec<Field>)>,
}

/// Results of background work, handled by the connection loop.
enum Outcome {
    /// The penalty wait is over: start the exchange.
    Begin(RequestId, Option<Secret<Vec<u8>>>),
    Verified(RequestId, Verdict),
    Cram(
        RequestId,
        Result<Option<(crate::backend::PassdbEntry, [u8; 16])>, String>,
    ),
    Scram(
        RequestId,
        Result<Option<(crate::backend::PassdbEntry, ScramCredentials)>, String>,
    ),
    /// A delayed FAIL is due.
    SendFail(FailReply),
}

/// Serves one auth-client connection until the client closes it or breaks the protocol.
pub(crate) async fn serve(authd: Arc<Authd>, mut conn: Connection, connection_id: u32) {
    let state = authd.state();
    let mechanisms = state.mechanisms.clone();
    let cfg = AuthServerConfig::new(
        mechanisms,
        std::process::id(),
        connection_id,
        Cookie(crate::random::bytes::<16>()),
    );
    // The handshake block is queued by `new` and written by the loop below, at once.
    let mut proto = AuthServerConn::new(cfg);
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let mut exchanges: HashMap<RequestId, Exchange> = HashMap::new();
    let mut c = Ctx {
        authd: &authd,
        tx: &tx,
    };
    loop {
        while let Some(ev) = proto.next_event() {
            match ev {
                Ok(ev) => c.event(&mut proto, &mut exchanges, ev),
                Err(e) => {
                    tracing::info!(error = %e, "auth client protocol error");
                    match e.disposition() {
                        Disposition::Disconnect => {
                            let _ = conn.write_all(&proto.take_output()).await;
                            return;
                        }
                        // The codec already answered FAIL and forgot the request: so do we,
                        // or a client could pile up abandoned exchanges.
                        Disposition::Failed(id) => {
                            exchanges.remove(&id);
                        }
                    }
                }
            }
        }
        if proto.has_output() && conn.write_all(&proto.take_output()).await.is_err() {
            return;
        }
        if proto.is_closed() {
            return;
        }
        tokio::select! {
            fill = conn.fill() => match fill {
                Ok(Fill::Data) => {
                    let n = conn.buffered().len();
                    proto.feed(conn.buffered());
                    conn.consume(n);
                }
                // The auth protocol has no goodbye: just close.
                Ok(Fill::Eof | Fill::Idle | Fill::Shutdown) | Err(_) => return,
            },
            Some(outcome) = rx.recv() => c.outcome(&mut proto, &mut exchanges, outcome),
        }
    }
}

struct Ctx<'a> {
    authd: &'a Arc<Authd>,
    tx: &'a mpsc::UnboundedSender<Outcome>,
}

impl Ctx<'_> {
    fn event(
        &mut self,
        proto: &mut AuthServerConn,
        exchanges: &mut HashMap<RequestId, Exchange>,
        ev: ServerEvent,
    ) {
        match ev {
            ServerEvent::Hello { minor, client_pid } => {
                tracing::debug!(minor, client_pid, "auth client handshake");
            }
            ServerEvent::Auth(start) => {
                let req = start.request;
                let state = self.authd.state();
                let mech = match start.mechanism.name.as_str() {
                    "PLAIN" => Mech::Plain(Plain::default()),
                    "LOGIN" => Mech::Login(Login::default()),
                    "CRAM-MD5" => Mech::Cram(CramMd5::new(&state.hostname)),
                    "SCRAM-SHA-1" => Mech::Scram(
                        Scram::new(ScramHash::Sha1, state.fake_salt_key),
                        ScramHash::Sha1,
                    ),
                    "SCRAM-SHA-256" => Mech::Scram(
                        Scram::new(ScramHash::Sha256, state.fake_salt_key),
                        ScramHash::Sha256,
                    ),
                    other => {
                        // The codec only passes configured mechanisms; stay sane anyway.
                        let _ = proto.reply_fail(FailReply::with_reason(
                            req.id,
                            format!("Unsupported mechanism {other}"),
                        ));
                        return;
                    }
                };
                let remote = req.remote_ip;
                let delay = match remote {
                    Some(ip) if !req.no_penalty => self.authd.penalty.delay(ip, Instant::now()),
                    _ => std::time::Duration::ZERO,
                };
                let id = req.id;
                exchanges.insert(
                    id,
                    Exchange {
                        mech,
                        mech_name: start.mechanism.name.clone(),
                        remote,
                        no_penalty: req.no_penalty,
                        final_resp_ok: req.final_resp_ok,
                        final_pending: None,
                    },
                );
                let initial = req.initial_response;
                if delay.is_zero() {
                    self.begin(proto, exchanges, id, initial);
                } else {
                    let delay_ms = delay.as_millis() as u64;
                    tracing::info!(rip = ?remote, delay_ms, "auth penalty: delaying request");
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(Outcome::Begin(id, initial));
                    });
                }
            }
            ServerEvent::Continue { id, data } => {
                let Some(ex) = exchanges.get_mut(&id) else {
                    return;
                };
                if let Some((user, fields)) = ex.final_pending.take() {
                    let ex = exchanges.remove(&id);
                    self.ok(proto, id, user, None, fields, ex.as_ref());
                    return;
                }
                let step = match &mut ex.mech {
                    Mech::Plain(m) => m.step(data.expose()),
                    Mech::Login(m) => m.step(data.expose()),
                    Mech::Cram(m) => m.step(data.expose()),
                    Mech::Scram(m, _) => m.step(data.expose()),
                };
                self.step(proto, exchanges, id, step);
            }
            ServerEvent::Cancel { id } => {
                exchanges.remove(&id);
            }
        }
    }

    fn begin(
        &mut self,
        proto: &mut AuthServerConn,
        exchanges: &mut HashMap<RequestId, Exchange>,
        id: RequestId,
        initial: Option<Secret<Vec<u8>>>,
    ) {
        let Some(ex) = exchanges.get_mut(&id) else {
            return;
        };
        let ir = initial.as_ref().map(|s| s.expose().as_slice());
        let step = match &mut ex.mech {
            Mech::Plain(m) => m.start(ir),
            Mech::Login(m) => m.start(ir),
            Mech::Cram(m) => m.start(),
            Mech::Scram(m, _) => m.start(ir),
        };
        self.step(proto, exchanges, id, step);
    }

    fn step(
        &mut self,
        proto: &mut AuthServerConn,
        exchanges: &mut HashMap<RequestId, Exchange>,
        id: RequestId,
        step: Step,
    ) {
        let Some(ex) = exchanges.get_mut(&id) else {
            return;
        };
        match step {
            Step::Challenge(data) => {
                let _ = proto.reply_continue(id, &data);
            }
            Step::VerifyPassword { user, password } => {
                let remote = ex.remote;
                // {PLAIN} and other one-hash schemes: the check costs less than a hop to the
                // blocking pool and back, so it is done here; real hashing goes to the pool.
                if let Some(verdict) = self
                    .authd
                    .state()
                    .users
                    .verify_now(&user, &password, remote)
                {
                    self.verdict(proto, exchanges, id, verdict);
                    return;
                }
                let (authd, tx) = (Arc::clone(self.authd), self.tx.clone());
                tokio::spawn(async move {
                    let users = authd.state().users.clone();
                    let verdict =
                        tokio::task::spawn_blocking(move || users.verify(&user, &password, remote))
                            .await
                            .unwrap_or_else(|e| {
                                Verdict::TempFail(format!("verification task failed: {e}"))
                            });
                    let _ = tx.send(Outcome::Verified(id, verdict));
                });
            }
            Step::NeedCredentials { user } => {
                let (authd, tx, remote) = (Arc::clone(self.authd), self.tx.clone(), ex.remote);
                match &ex.mech {
                    Mech::Cram(m) => {
                        let challenge = m.challenge().to_vec();
                        tokio::spawn(async move {
                            let users = authd.state().users.clone();
                            let r = tokio::task::spawn_blocking(move || {
                                users.cram(&user, &challenge, remote)
                            })
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.0));
                            let _ = tx.send(Outcome::Cram(id, r));
                        });
                    }
                    Mech::Scram(_, hash) => {
                        let hash = *hash;
                        tokio::spawn(async move {
                            let users = authd.state().users.clone();
                            let r = tokio::task::spawn_blocking(move || {
                                users.scram(&user, hash, remote)
                            })
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.0));
                            let _ = tx.send(Outcome::Scram(id, r));
                        });
                    }
                    Mech::Plain(_) | Mech::Login(_) => {
                        self.fail(
                            proto,
                            exchanges,
                            id,
                            None,
                            Failure::Protocol("unexpected credentials request"),
                        );
                    }
                }
            }
            Step::Success { user, final_data } => {
                // Challenge mechanisms: the passdb policy was checked when credentials were fetched
                // (see `outcome`); here only the reply remains.
                let fields = Vec::new();
                match final_data {
                    Some(data) if !ex.final_resp_ok => {
                        ex.final_pending = Some((user, fields));
                        let _ = proto.reply_continue(id, &data);
                    }
                    data => {
                        let ex = exchanges.remove(&id);
                        self.ok(proto, id, user, data, fields, ex.as_ref());
                    }
                }
            }
            Step::Fail(f) => self.fail(proto, exchanges, id, None, f),
        }
    }

    fn outcome(
        &mut self,
        proto: &mut AuthServerConn,
        exchanges: &mut HashMap<RequestId, Exchange>,
        outcome: Outcome,
    ) {
        match outcome {
            Outcome::Begin(id, initial) => self.begin(proto, exchanges, id, initial),
            Outcome::SendFail(reply) => {
                let _ = proto.reply_fail(reply);
            }
            Outcome::Verified(id, verdict) => self.verdict(proto, exchanges, id, verdict),
            Outcome::Cram(id, r) => {
                let Some(ex) = exchanges.get_mut(&id) else {
                    return;
                };
                let Mech::Cram(m) = &mut ex.mech else { return };
                match r {
                    Err(e) => self.temp_fail(proto, exchanges, id, &e),
                    Ok(found) => {
                        let (entry, expected) = match found {
                            Some((e, x)) => (Some(e), Some(x)),
                            None => (None, None),
                        };
                        match (m.credentials(expected), entry) {
                            (Step::Success { .. }, Some(entry)) => self.verdict(
                                proto,
                                exchanges,
                                id,
                                crate::users::Users::after_challenge(entry),
                            ),
                            (step, _) => self.step(proto, exchanges, id, step),
                        }
                    }
                }
            }
            Outcome::Scram(id, r) => {
                let Some(ex) = exchanges.get_mut(&id) else {
                    return;
                };
                let Mech::Scram(m, _) = &mut ex.mech else {
                    return;
                };
                match r {
                    Err(e) => self.temp_fail(proto, exchanges, id, &e),
                    Ok(found) => {
                        // Refused users (nologin) cannot be told apart before the proof; check the
                        // policy now and let a refused one fail at the proof like a wrong password.
                        let creds =
                            found.and_then(
                                |(entry, c)| match crate::users::Users::after_challenge(entry) {
                                    Verdict::Ok { .. } => Some(c),
                                    _ => None,
                                },
                            );
                        let step = m.credentials(creds);
                        self.step(proto, exchanges, id, step);
                    }
                }
            }
        }
    }

    fn verdict(
        &mut self,
        proto: &mut AuthServerConn,
        exchanges: &mut HashMap<RequestId, Exchange>,
        id: RequestId,
        verdict: Verdict,
    ) {
        match verdict {
            Verdict::Ok { user, fields } => {
                let fields = fields
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => Field::new(k, v),
                        None => Field::flag(k),
                    })
                    .collect();
                let ex = exchanges.remove(&id);
                self.ok(proto, id, user, None, fields, ex.as_ref());
            }
            Verdict::Fail { user, why } => {
                let mech = exchanges
                    .get(&id)
                    .map(|e| e.mech_name.clone())
                    .unwrap_or_default();
                tracing::info!(
                    mech,
                    user = user.as_deref().unwrap_or("-"),
                    "authentication failed: {why}"
                );
                self.fail(proto, exchanges, id, user, Failure::Credentials);
            }
            Verdict::Refused { user, reason } => {
                tracing::info!(user = %user, "login refused (nologin)");
                let Some(ex) = exchanges.remove(&id) else {
                    return;
                };
                let mut reply =
                    FailReply::with_reason(id, reason.unwrap_or_else(|| "Login disabled".into()));
                reply.user = Some(user);
                self.delayed_fail(reply, &ex);
            }
            Verdict::TempFail(e) => self.temp_fail(proto, exchanges, id, &e),
        }
    }

    fn ok(
        &mut self,
        proto: &mut AuthServerConn,
        id: RequestId,
        user: String,
        final_data: Option<Vec<u8>>,
        fields: Vec<Field>,
        ex: Option<&Exchange>,
    ) {
        if let Some(ip) = ex.and_then(|e| e.remote) {
            self.authd.penalty.success(ip);
        }
        let mech = ex.map(|e| e.mech_name.as_str()).unwrap_or("-");
        let rip = ex.and_then(|e| e.remote);
        // Like Dovecot (auth_verbose = no), successes are not logged at info: the login
        // services (pop3d, imapd, smtpd) log their logins; one line per SASL success here would
        // be the largest cost of a {PLAIN} authentication.
        tracing::debug!(mech, user = %user, rip = ?rip, "authenticated");
        let reply = OkReply {
            id,
            user: Some(user),
            final_response: final_data.map(Secret::new),
            fields,
        };
        let _ = proto.reply_ok(reply);
    }

    fn fail(
        &mut self,
        proto: &mut AuthServerConn,
        exchanges: &mut HashMap<RequestId, Exchange>,
        id: RequestId,
        user: Option<String>,
        f: Failure,
    ) {
        let Some(ex) = exchanges.remove(&id) else {
            let _ = proto.reply_fail(FailReply::with_reason(id, "Authentication failed"));
            return;
        };
        if let Failure::Protocol(why) = f {
            tracing::info!(mech = %ex.mech_name, "authentication failed: {why}");
        }
        let mut reply = match f {
            Failure::Authz => FailReply::with_code(id, FailCode::AuthzFail, "Authorization failed"),
            // Never reveal whether the user exists: one text for every credential failure.
            // No reason, like Dovecot (Postfix then says "authentication failure").
            Failure::Credentials | Failure::Protocol(_) => FailReply {
                id,
                user: None,
                code: None,
                reason: None,
                fields: Vec::new(),
            },
        };
        reply.user = user;
        self.delayed_fail(reply, &ex);
    }

    /// Counts the failure against the client's IP and sends FAIL after the failure delay.
    fn delayed_fail(&mut self, reply: FailReply, ex: &Exchange) {
        if let (Some(ip), false) = (ex.remote, ex.no_penalty) {
            self.authd.penalty.failure(ip, Instant::now());
        }
        let delay = self.authd.state().config.auth.failure_delay.get();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Outcome::SendFail(reply));
        });
    }

    fn temp_fail(
        &mut self,
        proto: &mut AuthServerConn,
        exchanges: &mut HashMap<RequestId, Exchange>,
        id: RequestId,
        error: &str,
    ) {
        tracing::error!("passdb lookup failed: {error}");
        exchanges.remove(&id);
        let _ = proto.reply_fail(FailReply::with_code(
            id,
            FailCode::TempFail,
            "Temporary authentication failure",
        ));
    }
}
