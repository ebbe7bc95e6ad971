//! The one error type of this crate. Every variant but the last two is temporary: the auth
//! service is down, slow or broken, and the caller answers "try again later" (SMTP 454, IMAP
//! `NO [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]`), never "wrong password".

use std::fmt;

/// Why a lookup or an authentication step could not be completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthClientError {
    /// The socket could not be connected to (auth service down, wrong path, no permission).
    Unavailable(String),
    /// The connection died while the request was in flight.
    ConnectionLost(String),
    /// No answer within the configured timeout.
    Timeout,
    /// The server sent something this client cannot use (not an auth socket, another major
    /// version, a malformed line).
    Protocol(String),
    /// The userdb answered `FAIL` (its backend failed; Dovecot logs the cause).
    LookupFailed(Option<String>),
    /// The mechanism is not one the server offers (a caller error: offer only what
    /// [`crate::SaslClient::mechanisms`] returns).
    UnknownMechanism(String),
    /// The exchange already ended (success, failure or abort) or lost its connection.
    ExchangeFinished,
}

impl AuthClientError {
    /// Whether this is a temporary condition of the auth service (everything except caller
    /// errors).
    pub fn is_temporary(&self) -> bool {
        !matches!(
            self,
            AuthClientError::UnknownMechanism(_) | AuthClientError::ExchangeFinished
        )
    }
}

impl fmt::Display for AuthClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthClientError::Unavailable(e) => write!(f, "auth service unavailable: {e}"),
            AuthClientError::ConnectionLost(e) => write!(f, "auth connection lost: {e}"),
            AuthClientError::Timeout => f.write_str("auth service did not answer in time"),
            AuthClientError::Protocol(e) => write!(f, "auth protocol error: {e}"),
            AuthClientError::LookupFailed(Some(r)) => write!(f, "userdb lookup failed: {r}"),
            AuthClientError::LookupFailed(None) => f.write_str("userdb lookup failed"),
            AuthClientError::UnknownMechanism(m) => {
                write!(f, "mechanism {m} is not offered by the auth server")
            }
            AuthClientError::ExchangeFinished => f.write_str("the SASL exchange is over"),
        }
    }
}

impl std::error::Error for AuthClientError {}
