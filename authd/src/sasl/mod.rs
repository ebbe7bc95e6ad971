//! Server side of the SASL mechanisms authd offers, as sans-I/O state machines: the session
//! driver feeds client responses and gets the next step; password checks and credential lookups
//! come out as steps the driver answers (they block: passdb reads, slow hashes).
//!
//! RFC 4616 (PLAIN), draft-murchison-sasl-login (LOGIN), RFC 2195 (CRAM-MD5), RFC 5802 (SCRAM).

mod cram;
mod plain;
mod scram;

pub(crate) use cram::CramMd5;
pub(crate) use plain::{Login, Plain};
pub(crate) use scram::Scram;

use pochta_auth_proto::Secret;

/// Why an exchange failed; the user-visible text never tells an unknown user from a bad password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The client's message did not follow the mechanism.
    Protocol(&'static str),
    /// Wrong credentials or unknown user.
    Credentials,
    /// Authorization identity differs from the authenticated one (no master users yet).
    Authz,
}

/// What the driver does next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send `CONT` with these bytes and feed the client's answer to `step`.
    Challenge(Vec<u8>),
    /// Verify `password` against the passdb entry of `user` and call `password_result`.
    VerifyPassword {
        user: String,
        password: Secret<Vec<u8>>,
    },
    /// Look up `user`'s credentials for this mechanism and call `credentials`.
    NeedCredentials {
        user: String,
    },
    /// Authenticated as `user`. `final_data` is the server's last message (SCRAM `v=`), sent in
    /// `OK … resp=` or as a last `CONT` when the client did not say `final-resp-ok`.
    Success {
        user: String,
        final_data: Option<Vec<u8>>,
    },
    Fail(Failure),
}

/// Splits `authzid` handling shared by PLAIN and SCRAM: empty or equal → fine, else refused.
fn check_authz(authzid: &str, authcid: &str) -> Result<(), Failure> {
    if authzid.is_empty() || authzid == authcid {
        Ok(())
    } else {
        Err(Failure::Authz)
    }
}
