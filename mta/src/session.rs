//! One SMTP session: feeds the connection's bytes to the pochta-smtp state machine and answers
//! its decisions — AUTH relayed to the auth server, RCPT through the relay policy and the
//! userdb, the finished message into the queue.

use crate::addresses::{Final, Resolved};
use crate::config::Service;
use crate::headers::{self, Trace};
use crate::policy::{self, Client};
use crate::Settings;
use pochta_auth_client::{AuthClientError, SaslExchange, SaslRequest, SaslStep, Secret};
use pochta_auth_proto::{base64_decode, base64_encode};
use pochta_queue::{NewMessage, NewRecipient, QueueId, Spool};
use pochta_server::{Connection, Fill, Peer, Session as ServerSession, TlsMode};
use pochta_smtp::{Event, Message, Reply, Session};
use std::sync::Arc;
use std::time::SystemTime;

/// The open transaction as the driver sees it (the protocol state is the session's).
#[derive(Default)]
struct Txn {
    sender: String,
    /// Assigned at the first accepted recipient (Postfix's smtpd_delay_open_until_valid_rcpt).
    id: Option<QueueId>,
    /// Final recipients of each accepted RCPT, parallel to the session's list; a final
    /// address already taken by an earlier RCPT is left out (one copy per mailbox, as
    /// Postfix's duplicate filter), so a RCPT may have none.
    accepted: Vec<Vec<Final>>,
    /// Final deliveries so far ([`Final::dedup_key`]: mailboxes without case, commands and
    /// files as written).
    seen: std::collections::HashSet<String>,
}

/// A SASL exchange in progress.
struct Auth {
    mechanism: String,
    exchange: Option<SaslExchange>,
}

struct Driver {
    settings: Arc<Settings>,
    spool: Spool,
    service: Service,
    session_id: String,
    /// `unknown[192.0.2.1]` or `local uid=1000 (alice)`, as Postfix names clients.
    client: String,
    peer_ip: Option<std::net::IpAddr>,
    local_uid: Option<u32>,
    trusted: bool,
    txn: Txn,
    auth: Option<Auth>,
    /// (mechanism, user) after a successful AUTH.
    login: Option<(String, String)>,
}

pub(crate) async fn serve(
    settings: Arc<Settings>,
    spool: Spool,
    conn: Connection,
    info: ServerSession<Service>,
) {
    let (client, peer_ip, local_uid) = match &info.peer {
        Peer::Tcp(a) => (format!("unknown[{}]", a.ip()), Some(a.ip()), None),
        Peer::Unix { uid, .. } => {
            let uid = *uid;
            let name = tokio::task::spawn_blocking(move || {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| "unknown".into());
            (format!("local uid={uid} ({name})"), None, Some(uid))
        }
    };
    let trusted = info.service == Service::Local
        || peer_ip.is_some_and(|ip| {
            settings
                .smtpd
                .trusted_networks
                .iter()
                .any(|n| n.contains(ip))
        });
    tracing::info!("connect from {client}");
    let mut cfg = settings.session.clone();
    let offers_auth = match info.service {
        Service::Submission | Service::Submissions => true,
        Service::Smtp => settings.smtpd.auth_on_smtp,
        Service::Local => false,
    };
    if offers_auth {
        match settings.sasl.mechanisms().await {
            Ok(m) => {
                cfg.auth_mechanisms = pochta_auth_client::filter_mechanisms(&m, true)
                    .into_iter()
                    .filter(|m| !m.flags.contains(pochta_auth_client::MechFlag::Anonymous))
                    .map(|m| m.name.to_ascii_uppercase())
                    .collect();
            }
            Err(e) => tracing::warn!(error = %e, "auth server unavailable: AUTH not offered"),
        }
    }
    // AUTH only under TLS (Postfix smtpd_tls_auth_only): PLAIN/LOGIN never in the clear.
    cfg.auth_requires_tls = true;
    cfg.require_auth = matches!(info.service, Service::Submission | Service::Submissions);
    cfg.starttls = info.tls_mode == TlsMode::Starttls && conn.can_starttls();
    if info.service == Service::Local {
        cfg.forbid_unauth_pipelining = false;
        // Local programs write `RCPT TO:<root>` (Postfix appends myorigin).
        cfg.bare_address_domain =
            Some(pochta_queue::AddressPolicy::myorigin(&*settings.addresses).to_owned());
    }
    let s = if conn.tls().is_some() {
        Session::new_tls(cfg)
    } else {
        Session::new(cfg)
    };
    let mut d = Driver {
        settings,
        spool,
        service: info.service,
        session_id: info.id.to_string(),
        client,
        peer_ip,
        local_uid,
        trusted,
        txn: Txn::default(),
        auth: None,
        login: None,
    };
    let stats = d.run(s, conn).await;
    tracing::info!("disconnect from {} {stats}", d.client);
}

impl Driver {
    /// Runs the session to its end; returns the command counts for the disconnect line.
    async fn run(&mut self, mut s: Session, mut conn: Connection) -> String {
        loop {
            match s.next() {
                Event::Write(bytes) => {
                    if let Err(e) = conn.write_all(&bytes).await {
                        tracing::info!(error = %e, "lost connection from {}", self.client);
                        break;
                    }
                }
                Event::NeedInput => {
                    if conn.buffered().is_empty() {
                        match conn.fill().await {
                            Ok(Fill::Data) => {}
                            Ok(Fill::Eof) | Err(_) => {
                                if s.in_transaction() {
                                    tracing::info!(
                                        "lost connection in a transaction from {}",
                                        self.client
                                    );
                                }
                                break;
                            }
                            Ok(Fill::Idle) => {
                                tracing::info!("timeout from {}", self.client);
                                s.close_with(Reply::with_status(
                                    421,
                                    (4, 4, 2),
                                    format!("{} Error: timeout exceeded", self.settings.hostname),
                                ));
                                continue;
                            }
                            Ok(Fill::Shutdown) => {
                                s.close_with(Reply::with_status(
                                    421,
                                    (4, 3, 2),
                                    format!("{} Service shutting down", self.settings.hostname),
                                ));
                                continue;
                            }
                        }
                    }
                    let n = s.feed(conn.buffered());
                    if n == 0 {
                        // The session always makes room when it asks for input; never spin.
                        tracing::error!("SMTP session takes no input; closing");
                        break;
                    }
                    conn.consume(n);
                }
                Event::Hello { .. } => s.accept(),
                Event::Mail { from, .. } => {
                    self.txn = Txn {
                        sender: from.to_string(),
                        ..Txn::default()
                    };
                    let check = match (&self.login, self.settings.smtpd.sender_login_match) {
                        (Some((_, user)), true) => policy::check_sender(
                            &from,
                            user,
                            &self.settings.smtpd.local_domains,
                            &self.settings.smtpd.recipient_delimiter,
                        ),
                        _ => Ok(()),
                    };
                    match check {
                        Ok(()) => s.accept(),
                        Err(r) => {
                            self.log_reject("MAIL", &r, &s, None);
                            s.reply(r);
                        }
                    }
                }
                Event::Rcpt { to, .. } => match self.rcpt(&to).await {
                    Ok(finals) => {
                        if self.txn.id.is_none() {
                            let id = self.spool.new_id();
                            self.log_client(&id);
                            self.txn.id = Some(id);
                        }
                        let seen = &mut self.txn.seen;
                        let fresh = finals
                            .into_iter()
                            .filter(|f| seen.insert(f.dedup_key()))
                            .collect();
                        self.txn.accepted.push(fresh);
                        s.accept();
                    }
                    Err(r) => {
                        self.log_reject("RCPT", &r, &s, Some(&to.to_string()));
                        s.reply(r);
                    }
                },
                Event::Message(msg) => {
                    let reply = self.queue(msg, &conn).await;
                    s.reply(reply);
                }
                Event::StartTls if s.buffered_input() + conn.buffered().len() > 0 => {
                    // Plaintext pipelined behind STARTTLS (CVE-2011-0411): never executed.
                    tracing::warn!(
                        "{}: plaintext pipelined after STARTTLS; closing",
                        self.client
                    );
                    break;
                }
                Event::StartTls => match conn.starttls().await {
                    Ok(0) if s.tls_established() == 0 => {
                        // RFC 3207 §4.2: everything learnt in plaintext is forgotten.
                        self.txn = Txn::default();
                        self.auth = None;
                        self.login = None;
                    }
                    Ok(_) => {
                        tracing::warn!(
                            "{}: plaintext pipelined after STARTTLS; closing",
                            self.client
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "{}: TLS handshake failed", self.client);
                        break;
                    }
                },
                Event::Auth { mechanism, initial } => {
                    let initial = match initial {
                        None => None,
                        Some(d) => match decode(d.expose()) {
                            Some(v) => Some(v),
                            None => {
                                s.reply(cannot_decode());
                                continue;
                            }
                        },
                    };
                    let mut req = SaslRequest::new(mechanism.clone(), &self.settings.service);
                    req.remote_ip = self.peer_ip;
                    req.secured = s.is_tls();
                    req.session = Some(self.session_id.clone());
                    req.initial_response = initial.map(Secret::new);
                    let step = match self.settings.sasl.start(req).await {
                        Ok((ex, step)) => {
                            self.auth = Some(Auth {
                                mechanism,
                                exchange: Some(ex),
                            });
                            Ok(step)
                        }
                        Err(e) => {
                            self.auth = Some(Auth {
                                mechanism,
                                exchange: None,
                            });
                            Err(e)
                        }
                    };
                    self.auth_step(step, &mut s);
                }
                Event::AuthResponse(data) => {
                    let Some(bytes) = decode(data.expose()) else {
                        self.auth = None;
                        s.reply(cannot_decode());
                        continue;
                    };
                    let step = match self.auth.as_mut().and_then(|a| a.exchange.as_mut()) {
                        Some(ex) => ex.respond(&bytes).await,
                        None => Err(AuthClientError::ExchangeFinished),
                    };
                    self.auth_step(step, &mut s);
                }
                Event::AuthAborted => self.auth = None,
                Event::Close => {
                    conn.close().await;
                    return s.stats().summary();
                }
                Event::Pending => {
                    tracing::error!("SMTP session left a decision unanswered; closing");
                    break;
                }
            }
        }
        s.stats().summary()
    }

    /// RCPT TO: the address book (relay policy, aliases, SRS), then the userdb for a mailbox
    /// of a local domain. `Ok` = the final recipients.
    async fn rcpt(&self, to: &pochta_smtp::ForwardPath) -> Result<Vec<Final>, Reply> {
        let client = Client {
            authenticated: self.login.is_some(),
            trusted: self.trusted,
        };
        let now = crate::addresses::now_secs();
        let (address, lookup, orig, postmaster) =
            match self.settings.addresses.resolve(to, client, now)? {
                Resolved::Finals(finals) if finals.is_empty() => {
                    tracing::warn!("<{to}>: the aliases expand it to nothing (a loop?)");
                    return Err(Reply::with_status(
                        451,
                        (4, 3, 0),
                        format!("<{to}>: Temporary lookup failure"),
                    ));
                }
                Resolved::Finals(finals) => return Ok(finals),
                Resolved::Mailbox {
                    address,
                    lookup,
                    orig,
                    postmaster,
                } => (address, lookup, orig, postmaster),
            };
        let found = self
            .settings
            .userdb
            .lookup(&lookup, &self.settings.service, self.peer_ip, None)
            .await;
        let shown = orig.as_deref().unwrap_or(&address).to_owned();
        let accept = Final::mailbox(address, orig, false);
        match found {
            Ok(Some(_)) => Ok(vec![accept]),
            // RFC 5321 §4.5.1: the postmaster is always accepted; without a mailbox or an
            // alias the delivery bounces and the log says so.
            Ok(None) if postmaster => {
                tracing::warn!(
                    "<{shown}>: no mailbox and no alias for the postmaster: add \
                     `postmaster: someone` to the aliases"
                );
                Ok(vec![accept])
            }
            Ok(None) => Err(Reply::with_status(
                550,
                (5, 1, 1),
                format!(
                    "<{shown}>: Recipient address rejected: User unknown in virtual mailbox \
                     table"
                ),
            )),
            Err(e) => {
                tracing::warn!(user = %lookup, error = %e, "userdb lookup failed");
                Err(Reply::with_status(
                    451,
                    (4, 3, 0),
                    format!("<{shown}>: Temporary lookup failure"),
                ))
            }
        }
    }

    /// The finished message: headers added, queued durably. The reply is 250 only after the
    /// spool said Ok.
    async fn queue(&mut self, msg: Message, conn: &Connection) -> Reply {
        let txn = std::mem::take(&mut self.txn);
        let Some(id) = txn.id else {
            tracing::error!("message without an accepted recipient; deferring");
            return queue_error();
        };
        if txn.accepted.len() != msg.recipients.len() {
            // Cannot happen while every accepted RCPT pushes one address; never guess.
            tracing::error!("{id}: recipient list out of step; deferring the message");
            return queue_error();
        }
        let now = SystemTime::now();
        // Received: … for <the address the client named>, when it named one.
        let single = match txn.accepted.as_slice() {
            [finals] => finals
                .first()
                .map(|f| f.orig.as_deref().unwrap_or(&f.address)),
            _ => None,
        };
        let trace = Trace {
            helo: &msg.hello,
            client_ip: self.peer_ip,
            local_uid: self.local_uid,
            tls: conn.tls().map(|t| (t.protocol.clone(), t.cipher.clone())),
            hostname: &self.settings.hostname,
            with_protocol: msg.with_protocol,
            queue_id: id.as_str(),
            single_recipient: single,
        };
        let received = headers::received(&trace, now);
        let scan = headers::scan(&msg.body);
        let limit = self.settings.smtpd.hopcount_limit;
        if scan.received + 1 >= limit {
            // Postfix's cleanup counts the smtpd's own Received too.
            tracing::warn!(
                "{id}: reject: too many hops ({} Received: headers, hopcount_limit {limit}), \
                 mail loop; from=<{}>",
                scan.received + 1,
                msg.reverse_path,
            );
            return Reply::with_status(554, (5, 4, 6), "Error: too many hops");
        }
        let submission = self.login.is_some() || self.service == Service::Local;
        let (added, message_id) = if submission && self.settings.smtpd.add_missing_headers {
            headers::missing_headers(&scan, id.as_str(), &self.settings.hostname, now)
        } else {
            (Vec::new(), scan.message_id.clone())
        };
        let content = headers::assemble(&received, &msg.body, scan.end, &added);
        let sender = msg.reverse_path.to_string();
        let groups = self.envelopes(&sender, &msg, txn.accepted);
        if groups.is_empty() {
            tracing::error!("{id}: no recipient left after alias expansion; deferring");
            return queue_error();
        }
        let mut ids = Vec::new();
        for (i, (group_sender, recipients)) in groups.into_iter().enumerate() {
            // The first envelope keeps the session's queue id; one whose sender an owner-
            // alias or SRS changed is a message of its own, as Postfix's local(8) forwards.
            let gid = if i == 0 {
                id.clone()
            } else {
                let g = self.spool.new_id();
                tracing::info!("{g}: client={}, orig_queue_id={id}", self.client);
                g
            };
            let new = NewMessage {
                sender: group_sender,
                recipients,
                envid: msg.mail_params.envid.clone(),
                ret: msg.mail_params.ret,
                body: msg.mail_params.body,
                smtputf8: msg.mail_params.smtputf8,
                client: self.client.clone(),
                sasl_username: self.login.as_ref().map(|(_, u)| u.clone()),
                content: content.clone(),
            };
            if let Err(e) = self.spool.enqueue(&gid, new).await {
                tracing::error!("{gid}: queue file write error: {e}");
                return queue_error();
            }
            ids.push(gid);
        }
        for gid in &ids {
            match &message_id {
                Some(m) => tracing::info!("{gid}: message-id={m}"),
                None => tracing::info!("{gid}: message-id=<>"),
            }
        }
        Reply::with_status(250, (2, 0, 0), format!("Ok: queued as {id}"))
    }

    /// The queue envelopes of one message: recipients grouped by envelope sender — the
    /// client's, an `owner-` alias's, or the SRS form of the client's for mail an alias sends
    /// on to another domain (so SPF passes there). The client's own sender comes first.
    fn envelopes(
        &self,
        sender: &str,
        msg: &Message,
        accepted: Vec<Vec<Final>>,
    ) -> Vec<(String, Vec<NewRecipient>)> {
        let book = &self.settings.addresses;
        let srs_sender = || -> Option<String> {
            let srs = book.srs()?;
            let domain = sender.rsplit_once('@')?.1;
            if sender.is_empty() || pochta_queue::AddressPolicy::is_local_domain(&**book, domain) {
                return None;
            }
            match srs.forward(sender, crate::addresses::now_secs()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("SRS cannot rewrite <{sender}>: {e}; forwarding as is");
                    None
                }
            }
        };
        let srs = srs_sender();
        let mut groups: Vec<(String, Vec<NewRecipient>)> = vec![(sender.to_owned(), Vec::new())];
        for (r, finals) in msg.recipients.iter().zip(accepted) {
            for f in finals {
                let env_sender = match (&f.sender, f.forwarded, &srs) {
                    (Some(owner), _, _) => owner.clone(),
                    (None, true, Some(rewritten)) => rewritten.clone(),
                    _ => sender.to_owned(),
                };
                // The agent comes from the alias expansion only (Final::agent), never from
                // the address a client wrote.
                let rcpt = NewRecipient {
                    address: f.address,
                    orig: f.orig,
                    orcpt: r.params.orcpt.clone(),
                    notify: r.params.notify,
                    agent: f.agent,
                };
                match groups.iter_mut().find(|(s, _)| *s == env_sender) {
                    Some((_, list)) => list.push(rcpt),
                    None => groups.push((env_sender, vec![rcpt])),
                }
            }
        }
        groups.retain(|(_, list)| !list.is_empty());
        groups
    }

    /// Answers the session with the auth server's step.
    fn auth_step(&mut self, step: Result<SaslStep, AuthClientError>, s: &mut Session) {
        let mechanism = self
            .auth
            .as_ref()
            .map(|a| a.mechanism.clone())
            .unwrap_or_default();
        match step {
            Ok(SaslStep::Continue(challenge)) => {
                s.auth_challenge(&base64_encode(challenge.expose()));
            }
            Ok(SaslStep::Success(ok)) => {
                self.auth = None;
                tracing::info!(
                    "{}: SASL {mechanism} authentication succeeded, sasl_username={}",
                    self.client,
                    ok.user
                );
                s.auth_success(ok.user.clone());
                self.login = Some((mechanism, ok.user));
            }
            Ok(SaslStep::Failure(f)) if !f.is_temporary() => {
                self.auth = None;
                let reason = f.reason.unwrap_or_else(|| "(reason unavailable)".into());
                // Postfix appends the login the auth server named (for fail2ban and admins).
                let user = f
                    .user
                    .map(|u| format!(", sasl_username={u}"))
                    .unwrap_or_default();
                tracing::warn!(
                    "{}: SASL {mechanism} authentication failed: {reason}{user}",
                    self.client
                );
                s.reply(Reply::with_status(
                    535,
                    (5, 7, 8),
                    format!("Error: authentication failed: {reason}"),
                ));
            }
            Ok(SaslStep::Failure(_)) | Err(_) => {
                self.auth = None;
                if let Err(e) = step {
                    tracing::warn!(error = %e, "auth server unavailable");
                }
                tracing::warn!(
                    "{}: SASL {mechanism} authentication failed: temporary failure",
                    self.client
                );
                s.reply(Reply::with_status(
                    454,
                    (4, 7, 0),
                    "Temporary authentication failure",
                ));
            }
        }
    }

    /// `<id>: client=unknown[ip], sasl_method=PLAIN, sasl_username=alice@example.org`.
    fn log_client(&self, id: &QueueId) {
        match &self.login {
            Some((method, user)) => tracing::info!(
                "{id}: client={}, sasl_method={method}, sasl_username={user}",
                self.client
            ),
            None => tracing::info!("{id}: client={}", self.client),
        }
    }

    /// `NOQUEUE: reject: RCPT from unknown[ip]: 554 5.7.1 <…>: Relay access denied;
    /// from=<…> to=<…> proto=ESMTP helo=<…>`.
    fn log_reject(&self, stage: &str, r: &Reply, s: &Session, to: Option<&str>) {
        let id = self
            .txn
            .id
            .as_ref()
            .map_or_else(|| "NOQUEUE".to_owned(), |i| i.to_string());
        let text = r.to_wire(true);
        let to = to.map(|t| format!(" to=<{t}>")).unwrap_or_default();
        tracing::info!(
            "{id}: reject: {stage} from {}: {}; from=<{}>{to} helo=<{}>",
            self.client,
            text.trim_end(),
            self.txn.sender,
            s.hello_name().unwrap_or_default()
        );
    }
}

/// A SASL response or initial response: base64, or `=` for an empty one (RFC 4954 §4).
fn decode(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t == "=" {
        return Some(Vec::new());
    }
    base64_decode(t)
}

fn cannot_decode() -> Reply {
    Reply::with_status(501, (5, 5, 2), "Cannot decode response")
}

fn queue_error() -> Reply {
    Reply::with_status(451, (4, 3, 0), "Error: queue file write error")
}
