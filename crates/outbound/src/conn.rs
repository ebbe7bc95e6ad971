//! One SMTP connection to a remote host: the sans-I/O [`ClientSession`] of pochta-smtp-client
//! driven over TCP, with STARTTLS (rustls) and AUTH PLAIN/LOGIN for a relayhost (only after
//! TLS). The stream is boxed so the TLS layer replaces it in place.

use crate::dane::DaneAuth;
use crate::tls::{self, TlsClient};
use pochta_auth_proto::{base64_encode, Secret};
use pochta_smtp_client::{
    ClientConfig, ClientError, ClientSession, Envelope, Incomplete, RcptOutcome, Reply,
    ReplyParser, SessionError, Stage, Step, Timeouts,
};
use rustls_pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What TLS the connection must or may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsUse {
    /// Never STARTTLS.
    Off,
    /// STARTTLS when offered; plaintext otherwise.
    May,
    /// STARTTLS required (certificate not checked).
    Encrypt,
    /// STARTTLS required, chain and host name checked.
    Verify,
    /// STARTTLS required, chain authenticated by the host's TLSA records (`Target::dane`).
    Dane,
}

/// Credentials for a relayhost (AUTH).
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) pass: Secret<String>,
}

/// Why a connection could not be set up.
#[derive(Debug)]
pub(crate) enum ConnError {
    Client(ClientError),
    /// The TLS policy could not be met (temporary, 4.7.x).
    Policy(String),
    /// The TLS handshake failed (under `may` the caller retries in plaintext).
    Handshake(String),
    /// The server answered EHLO/HELO with our own name: the mail would loop back to us
    /// (Postfix: "mail for … loops back to myself", a bounce with 5.4.6).
    Loop(String),
}

impl ConnError {
    pub(crate) fn describe(&self, relay: &str) -> String {
        match self {
            ConnError::Client(e) => e.describe(relay),
            ConnError::Policy(t) => t.clone(),
            ConnError::Handshake(t) => {
                format!("Cannot start TLS: handshake failure with {relay}: {t}")
            }
            ConnError::Loop(name) => format!("host {relay} greeted me with my own hostname {name}"),
        }
    }

    /// Enhanced status code for the deferral.
    pub(crate) fn dsn(&self) -> String {
        match self {
            ConnError::Client(ClientError::Session(SessionError::Rejected(_, r))) => {
                let d = r.dsn();
                // A 5xx greeting is treated like a 4xx (Postfix smtp_skip_5xx_greeting).
                format!("4{}", &d[1..])
            }
            ConnError::Client(ClientError::Connect(_) | ClientError::Timeout(Stage::Connect)) => {
                "4.4.1".into()
            }
            ConnError::Client(_) => "4.4.2".into(),
            ConnError::Policy(_) | ConnError::Handshake(_) => "4.7.5".into(),
            ConnError::Loop(_) => "5.4.6".into(),
        }
    }
}

impl From<ClientError> for ConnError {
    fn from(e: ClientError) -> ConnError {
        ConnError::Client(e)
    }
}

/// An open connection, greeted, EHLO done (and TLS/AUTH as the policy says).
pub(crate) struct SmtpConn {
    io: Box<dyn Io>,
    session: ClientSession,
    timeouts: Timeouts,
    relay: String,
    buf: Vec<u8>,
    usable: bool,
    /// `Verified TLS connection established to …` text; None in plaintext.
    pub(crate) tls: Option<String>,
}

/// Where and how to connect.
pub(crate) struct Target<'a> {
    pub(crate) host: &'a str,
    pub(crate) addr: SocketAddr,
    pub(crate) tls: TlsUse,
    pub(crate) auth: Option<&'a Credentials>,
    /// The TLSA records for `TlsUse::Dane`.
    pub(crate) dane: Option<&'a DaneAuth>,
}

impl SmtpConn {
    /// `host[addr]:port`, what logs show as `relay=`.
    pub(crate) fn relay_name(host: &str, addr: SocketAddr) -> String {
        format!("{host}[{}]:{}", addr.ip(), addr.port())
    }

    pub(crate) async fn open(
        t: &Target<'_>,
        cfg: ClientConfig,
        timeouts: Timeouts,
        tls: &TlsClient,
    ) -> Result<SmtpConn, ConnError> {
        let tcp = tokio::time::timeout(timeouts.connect, tokio::net::TcpStream::connect(t.addr))
            .await
            .map_err(|_| ClientError::Timeout(Stage::Connect))?
            .map_err(ClientError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let ours = cfg.helo_name.clone();
        let mut c = SmtpConn {
            io: Box::new(tcp),
            session: ClientSession::new(cfg),
            timeouts,
            relay: SmtpConn::relay_name(t.host, t.addr),
            buf: vec![0; 16 * 1024],
            usable: true,
            tls: None,
        };
        c.until_ready().await?;
        let name = &c.session.capabilities().name;
        if !ours.is_empty() && name.eq_ignore_ascii_case(&ours) {
            return Err(ConnError::Loop(name.clone()));
        }
        let offered = c.session.capabilities().starttls;
        match t.tls {
            TlsUse::Off => {}
            TlsUse::May if !offered => {}
            TlsUse::Encrypt | TlsUse::Verify | TlsUse::Dane if !offered => {
                return Err(ConnError::Policy(format!(
                    "TLS is required, but was not offered by host {}",
                    c.relay
                )));
            }
            _ => c.starttls(t, tls).await?,
        }
        if let Some(cred) = t.auth {
            if c.tls.is_none() {
                return Err(ConnError::Policy(format!(
                    "not sending AUTH to {} without TLS",
                    c.relay
                )));
            }
            c.authenticate(cred).await?;
        }
        Ok(c)
    }

    pub(crate) fn relay(&self) -> &str {
        &self.relay
    }

    pub(crate) fn session(&self) -> &ClientSession {
        &self.session
    }

    pub(crate) fn is_usable(&self) -> bool {
        self.usable
    }

    async fn until_ready(&mut self) -> Result<(), ConnError> {
        match self.run().await? {
            Step::Ready => Ok(()),
            _ => Err(ClientError::Lost(Stage::Helo).into()),
        }
    }

    async fn starttls(&mut self, t: &Target<'_>, tls: &TlsClient) -> Result<(), ConnError> {
        self.session
            .starttls()
            .map_err(|e| ConnError::Client(ClientError::Session(e)))?;
        match self.run().await? {
            Step::StartTls => {}
            Step::TlsRefused(r) => {
                if t.tls == TlsUse::May {
                    return Ok(());
                }
                return Err(ConnError::Policy(format!(
                    "TLS is required, but host {} refused to start TLS: {r}",
                    self.relay
                )));
            }
            _ => return Err(ClientError::Lost(Stage::StartTls).into()),
        }
        let dane = t.dane.filter(|_| t.tls == TlsUse::Dane);
        let config = match (t.tls, dane) {
            (TlsUse::Dane, Some(d)) => tls.dane_config(d),
            (TlsUse::Dane, None) => Err("TLS policy dane without TLSA records".to_owned()),
            (u, _) => tls.config(u == TlsUse::Verify),
        }
        .map_err(ConnError::Policy)?;
        let name = match t.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(t.host.to_owned())
                .map_err(|e| ConnError::Handshake(format!("server name {}: {e}", t.host)))?,
        };
        let plain = std::mem::replace(&mut self.io, Box::new(tokio::io::duplex(1).0));
        let connector = tokio_rustls::TlsConnector::from(config);
        let handshake = connector.connect(name.clone(), plain);
        let stream = match tokio::time::timeout(self.timeouts.command, handshake).await {
            Err(_) => return Err(ClientError::Timeout(Stage::StartTls).into()),
            Ok(Err(e)) => {
                self.usable = false;
                let cert = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
                if let (Some(d), true) = (dane, cert) {
                    // Postfix: "Server certificate not verified" (and a 4.7.5 deferral).
                    return Err(ConnError::Policy(format!(
                        "Server certificate not verified: no TLSA record at {} matches the \
                         certificate of {} (MX host {})",
                        d.owner, self.relay, t.host
                    )));
                }
                return Err(ConnError::Handshake(e.to_string()));
            }
            Ok(Ok(s)) => s,
        };
        let (_, conn) = stream.get_ref();
        let trust = if dane.is_some() {
            "Verified"
        } else {
            tls.trust(conn, &name)
        };
        self.tls = Some(format!(
            "{trust} TLS connection established to {}: {}",
            self.relay,
            tls::describe(conn)
        ));
        self.io = Box::new(stream);
        self.session
            .tls_established()
            .map_err(|e| ConnError::Client(ClientError::Session(e)))?;
        self.until_ready().await
    }

    /// AUTH PLAIN (or LOGIN) outside the session machine: it is idle (`Ready`) meanwhile.
    async fn authenticate(&mut self, cred: &Credentials) -> Result<(), ConnError> {
        let mechs = &self.session.capabilities().auth;
        let fail = |relay: &str, r: Reply| {
            ConnError::Policy(format!(
                "SASL authentication failed; server {relay} said: {r}"
            ))
        };
        if mechs.iter().any(|m| m == "PLAIN") {
            let mut raw = vec![0u8];
            raw.extend_from_slice(cred.user.as_bytes());
            raw.push(0);
            raw.extend_from_slice(cred.pass.expose().as_bytes());
            let line = format!("AUTH PLAIN {}\r\n", base64_encode(&raw));
            let r = self.raw(line.as_bytes()).await?;
            if r.code() != 235 {
                return Err(fail(&self.relay, r));
            }
            return Ok(());
        }
        if mechs.iter().any(|m| m == "LOGIN") {
            let r = self.raw(b"AUTH LOGIN\r\n").await?;
            if r.code() != 334 {
                return Err(fail(&self.relay, r));
            }
            let user = format!("{}\r\n", base64_encode(cred.user.as_bytes()));
            let r = self.raw(user.as_bytes()).await?;
            if r.code() != 334 {
                return Err(fail(&self.relay, r));
            }
            let pass = format!("{}\r\n", base64_encode(cred.pass.expose().as_bytes()));
            let r = self.raw(pass.as_bytes()).await?;
            if r.code() != 235 {
                return Err(fail(&self.relay, r));
            }
            return Ok(());
        }
        Err(ConnError::Policy(format!(
            "SASL authentication failed: host {} offers neither PLAIN nor LOGIN",
            self.relay
        )))
    }

    /// Writes one line and reads one reply with a parser of its own.
    async fn raw(&mut self, line: &[u8]) -> Result<Reply, ConnError> {
        let t = self.timeouts.command;
        let stage = Stage::Helo;
        match tokio::time::timeout(t, async {
            self.io.write_all(line).await?;
            self.io.flush().await
        })
        .await
        {
            Err(_) => return Err(self.fail(ClientError::Timeout(stage)).into()),
            Ok(Err(e)) => return Err(self.fail(ClientError::Io(stage, e)).into()),
            Ok(Ok(())) => {}
        }
        let mut parser = ReplyParser::new();
        loop {
            match parser.next_reply() {
                Some(Ok(r)) => return Ok(r),
                Some(Err(e)) => {
                    let e = ClientError::Session(SessionError::Reply(e));
                    return Err(self.fail(e).into());
                }
                None => {}
            }
            match tokio::time::timeout(t, self.io.read(&mut self.buf)).await {
                Err(_) => return Err(self.fail(ClientError::Timeout(stage)).into()),
                Ok(Err(e)) => return Err(self.fail(ClientError::Io(stage, e)).into()),
                Ok(Ok(0)) => return Err(self.fail(ClientError::Lost(stage)).into()),
                Ok(Ok(n)) => parser.feed(self.buf.get(..n).unwrap_or_default()),
            }
        }
    }

    /// One transaction: an outcome per recipient, or what is known when it failed part-way.
    pub(crate) async fn send(
        &mut self,
        env: &Envelope,
        content: &[u8],
    ) -> Result<Vec<RcptOutcome>, Incomplete> {
        if let Err(e) = self.session.start_transaction(env, content) {
            self.usable = false;
            return Err(Incomplete {
                known: vec![None; env.recipients.len()],
                error: ClientError::Session(e),
                data_sent: false,
            });
        }
        match self.run().await {
            Ok(Step::Done(o)) => Ok(o),
            Ok(_) => {
                self.usable = false;
                Err(self.incomplete(ClientError::Lost(self.session.stage())))
            }
            Err(e) => Err(self.incomplete(e)),
        }
    }

    fn incomplete(&self, error: ClientError) -> Incomplete {
        Incomplete {
            known: self.session.partial_outcomes(),
            error,
            data_sent: self.session.data_sent(),
        }
    }

    /// QUIT and close (errors ignored).
    pub(crate) async fn quit(mut self) {
        if self.usable {
            self.session.quit();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.run()).await;
        }
        let _ = self.io.shutdown().await;
    }

    /// Drives the session until Ready, Done, Closed, a TLS step or failure.
    async fn run(&mut self) -> Result<Step, ClientError> {
        loop {
            match self.session.step() {
                Step::Write(bytes) => {
                    let stage = self.session.stage();
                    let t = self.stage_timeout(stage);
                    match tokio::time::timeout(t, self.io.write_all(&bytes)).await {
                        Err(_) => return Err(self.fail(ClientError::Timeout(stage))),
                        Ok(Err(e)) => return Err(self.fail(ClientError::Io(stage, e))),
                        Ok(Ok(())) => {}
                    }
                }
                Step::NeedInput => {
                    let stage = self.session.stage();
                    let t = self.stage_timeout(stage);
                    if let Err(e) = self.io.flush().await {
                        return Err(self.fail(ClientError::Io(stage, e)));
                    }
                    match tokio::time::timeout(t, self.io.read(&mut self.buf)).await {
                        Err(_) => return Err(self.fail(ClientError::Timeout(stage))),
                        Ok(Err(e)) => return Err(self.fail(ClientError::Io(stage, e))),
                        Ok(Ok(0)) => return Err(self.fail(ClientError::Lost(stage))),
                        Ok(Ok(n)) => {
                            let (head, _) = self.buf.split_at(n);
                            self.session.feed(head);
                        }
                    }
                }
                Step::Failed(e) => return Err(self.fail(ClientError::Session(e))),
                Step::Closed => {
                    self.usable = false;
                    return Ok(Step::Closed);
                }
                s @ (Step::StartTls | Step::TlsRefused(_) | Step::Ready) => return Ok(s),
                s @ Step::Done(_) => {
                    // A 421 inside the transaction: Closed follows, no reuse.
                    if matches!(self.session.step(), Step::Closed) {
                        self.usable = false;
                    }
                    return Ok(s);
                }
            }
        }
    }

    fn stage_timeout(&self, stage: Stage) -> Duration {
        if stage == Stage::EndOfData {
            self.timeouts.data
        } else {
            self.timeouts.command
        }
    }

    fn fail(&mut self, e: ClientError) -> ClientError {
        self.usable = false;
        e
    }
}
