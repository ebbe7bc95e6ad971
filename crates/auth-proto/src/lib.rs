//! pochta-auth-proto: a sans-I/O codec and state machines for Dovecot's auth protocol.
//!
//! Two protocols, both directions:
//! - **auth-client** (SASL): the server side is pochta-authd ([`AuthServerConn`]); the client side
//!   is every daemon that authenticates users ([`AuthClientConn`]). Interoperates with Postfix
//!   (`smtpd_sasl_type = dovecot`), Exim's dovecot authenticator, chasquid and Dovecot
//!   2.2/2.3/2.4 (lib-auth-client and the auth server).
//! - **auth-userdb / auth-master** (user lookups): [`UserdbServerConn`] for authd,
//!   [`UserdbClientConn`] for the LMTP delivery agent and others.
//!
//! Layers: [`escape`] (Dovecot's 0x01 tab-escaping), [`LineFramer`] (LF lines with a hard length
//! limit and bounded memory), typed messages with `parse`/`encode` ([`ClientCommand`],
//! [`ServerReply`], [`UserdbRequest`], [`UserdbReply`]), and connection state machines that take
//! bytes (`feed`), hand out events (`next_event`) and queue bytes to write (`take_output`).
//! Nothing here does I/O, spawns, sleeps or reads a clock; timeouts and the SASL mechanisms
//! themselves belong to the driver.
//!
//! Trust: everything received is untrusted. A peer cannot make this crate panic or grow memory
//! past the configured line limit plus what the caller feeds at once; every violation is a typed
//! error that says whether Dovecot would answer `FAIL` (connection kept) or disconnect.
//! Credentials (SASL responses, `pass=` fields) are wrapped so `Debug` prints `***`.
//! Runs inside whichever daemon links it, as that daemon's user; it needs no privileges.
//!
//! Specifications: Dovecot auth protocol (auth-client protocol major 1, minors 0–4; auth-master
//! protocol major 1), as documented in Dovecot's `auth_protocol.md` and implemented in
//! dovecot/core src/auth and src/lib-auth-client (see docs/formats.md#dovecot-auth-protocol);
//! base64 per RFC 4648 §4 (padding optional on input, like Dovecot).

#![forbid(unsafe_code)]

mod auth_request;
mod client;
mod client_msg;
mod error;
pub mod escape;
mod fields;
mod framing;
mod mech;
mod secret;
mod server;
mod server_msg;
mod userdb_client;
mod userdb_msg;
mod userdb_server;

pub use auth_request::{decode_initial_response, AuthRequest, Secured};
pub use client::{AuthClientConfig, AuthClientConn, ClientError, ClientEvent, ServerInfo};

pub use client_msg::ClientCommand;
pub use error::ParseError;
pub use fields::{base64_decode, base64_encode, field_value, Field, RequestId};
pub use framing::{
    FrameError, LineFramer, AUTH_CLIENT_MAX_LINE, CLIENT_MAX_LINE, USERDB_SERVER_MAX_LINE,
};
pub use mech::{Cookie, MechFlag, MechFlags, Mechanism};
pub use secret::Secret;
pub use server::{
    AuthServerConfig, AuthServerConn, AuthStart, Disposition, NotInFlight, ServerError, ServerEvent,
};
pub use server_msg::{FailCode, FailReply, OkReply, ServerReply};
pub use userdb_client::{UserdbClientConfig, UserdbClientConn, UserdbClientError, UserdbEvent};
pub use userdb_msg::{ListRequest, UserLookup, UserdbReply, UserdbRequest};
pub use userdb_server::{
    UserdbServerConfig, UserdbServerConn, UserdbServerError, UserdbServerEvent,
};

/// Protocol major version of both protocols.
pub const PROTOCOL_MAJOR: u32 = 1;
