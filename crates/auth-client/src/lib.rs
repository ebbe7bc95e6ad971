//! pochta-auth-client: how pochta's daemons authenticate users and look them up, through
//! Dovecot's auth protocol — against pochta-authd or a real Dovecot auth service alike.
//!
//! - [`SaslClient`] relays SASL over an auth-client socket: it lists the server's mechanisms
//!   with their flags ([`SaslClient::mechanisms`], filtered for a connection by
//!   [`filter_mechanisms`]: plaintext mechanisms only over TLS or from trusted networks), and
//!   runs exchanges step by step ([`SaslClient::start`], [`SaslExchange::respond`]). All
//!   exchanges share one persistent connection, re-opened when it dies.
//! - [`UserdbClient`] looks users up on an auth-userdb socket ([`UserdbClient::lookup`]): one
//!   connection, pipelined request ids, reconnect (and one retry) on failure.
//!
//! Failures are typed so a front end can answer correctly: a [`SaslStep::Failure`] is "wrong
//! credentials" unless [`SaslFailure::is_temporary`] (`code=temp_fail`); an
//! [`AuthClientError`] (socket gone, timeout, protocol error) is always "try again later".
//!
//! Trust: the auth server is trusted for its verdicts, not for well-formed input: its lines
//! are parsed by pochta-auth-proto with hard length limits, and a broken server costs a
//! reconnect, never a panic. Credentials are held in [`Secret`] so `Debug` never shows them.
//! Runs inside the calling daemon, as its user; it needs read/write access to the sockets.
//!
//! Protocol: Dovecot auth protocol 1.x, auth-client and auth-master/userdb sides (pochta's
//! docs/formats.md#dovecot-auth-protocol); SASL mechanisms are relayed opaquely (RFC 4422).
//!
//! ```no_run
//! use pochta_auth_client::{SaslClient, SaslRequest, SaslStep, UserdbClient};
//!
//! # async fn demo() -> Result<(), pochta_auth_client::AuthClientError> {
//! // One client per socket for the whole daemon; clone it into sessions.
//! let sasl = SaslClient::new("/run/pochta/auth-client");
//! let userdb = UserdbClient::new("/run/pochta/auth-userdb");
//!
//! // EHLO / CAPABILITY: what to offer on a connection without TLS.
//! let offer = sasl.mechanisms_to_offer(false).await?;
//! println!("{:?}", offer.iter().map(|m| &m.name).collect::<Vec<_>>());
//!
//! // AUTH PLAIN with an initial response, relayed until the server decides.
//! let mut req = SaslRequest::new("PLAIN", "smtp");
//! req.remote_ip = Some("192.0.2.7".parse().unwrap());
//! req.secured = true; // TLS is active
//! req.initial_response = Some(b"\0alice@example.org\0secret".to_vec().into());
//! let (mut exchange, mut step) = sasl.start(req).await?;
//! loop {
//!     match step {
//!         SaslStep::Continue(challenge) => {
//!             // Send `334 base64(challenge)` and read the client's answer...
//!             let _ = challenge;
//!             let answer: Vec<u8> = Vec::new();
//!             step = exchange.respond(&answer).await?;
//!         }
//!         SaslStep::Success(ok) => {
//!             println!("235 authenticated as {}", ok.user);
//!             break;
//!         }
//!         SaslStep::Failure(f) if f.is_temporary() => {
//!             println!("454 4.7.0 Temporary authentication failure");
//!             break;
//!         }
//!         SaslStep::Failure(_) => {
//!             println!("535 5.7.8 Authentication credentials invalid");
//!             break;
//!         }
//!     }
//! }
//!
//! // Delivery: does the user exist, and where does its mail go?
//! match userdb.lookup("alice@example.org", "lmtp", None, None).await? {
//!     Some(user) => println!("{} uid={:?} home={:?}", user.user, user.uid(), user.home()),
//!     None => println!("550 5.1.1 no such user"),
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod error;
mod sasl;
mod task;
mod userdb;

pub use error::AuthClientError;
pub use sasl::{
    filter_mechanisms, SaslClient, SaslExchange, SaslFailure, SaslRequest, SaslStep, SaslSuccess,
};
pub use task::ClientOptions;
pub use userdb::{UserdbClient, UserdbReply};

pub use pochta_auth_proto::{FailCode, Field, MechFlag, MechFlags, Mechanism, RequestId, Secret};
