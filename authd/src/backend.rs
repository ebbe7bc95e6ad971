//! Where users come from: a passdb (credentials and login policy) and a userdb (uid, gid, home,
//! mail location, quota). Behind a trait so SQL and LDAP backends can follow the passwd-file one.
//! Backends are blocking (file reads, later network round trips): callers use spawn_blocking.

/// A backend failure: the answer is "try again later" (FAIL code=temp_fail), never "no such user".
#[derive(Debug)]
pub struct BackendError(pub String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the passdb knows of a user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassdbEntry {
    /// The user name as stored (canonical).
    pub user: String,
    /// Stored password, `{SCHEME}data` or bare (default scheme). `None`: no password set.
    pub password: Option<String>,
    /// Any password is accepted (Dovecot's `nopassword`).
    pub nopassword: bool,
    /// Authentication succeeds but login is refused (Dovecot's `nologin`; used with `reason=`).
    pub nologin: bool,
    /// Logins accepted only from these networks (`allow_nets=`).
    pub allow_nets: Option<Vec<Network>>,
    /// Other passdb extra fields, passed through in OK replies.
    pub extra: Vec<(String, Option<String>)>,
}

/// What the userdb knows of a user, before defaults and templates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserdbEntry {
    pub user: String,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub home: Option<String>,
    /// Further fields (`mail`, `quota_rule`, …) in file order.
    pub fields: Vec<(String, String)>,
}

pub trait Backend: Send + Sync {
    fn passdb(&self, user: &str) -> Result<Option<PassdbEntry>, BackendError>;
    /// The same answer as [`Backend::passdb`] when it can be given without blocking (from memory,
    /// after at most a `stat`); `None` when the caller must use `passdb` on the blocking pool
    /// (the default: network backends always block).
    fn passdb_now(&self, _user: &str) -> Option<Result<Option<PassdbEntry>, BackendError>> {
        None
    }
    fn userdb(&self, user: &str) -> Result<Option<UserdbEntry>, BackendError>;
    /// Every user name (for `LIST` / `doveadm user '*'`).
    fn list(&self) -> Result<Vec<String>, BackendError>;
}

pub use pochta_server::net::Network;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets() {
        let n: Network = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains("192.0.2.200".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.9".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        let one: Network = "2001:db8::1".parse().unwrap();
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
    }
}
