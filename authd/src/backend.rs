//! Where users come from: a passdb (credentials and login policy) and a userdb (uid, gid, home,
//! mail location, quota). Behind a trait so SQL and LDAP backends can follow the passwd-file one.
//! Backends are blocking (file reads, later network round trips): callers use spawn_blocking.

use std::net::IpAddr;

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
    pub allow_nets: Option<Vec<IpNet>>,
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

/// An IP network, `192.0.2.0/24`, `2001:db8::/32` or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("invalid network {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(format!("invalid prefix in {s:?}"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets() {
        let n: IpNet = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains("192.0.2.200".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.9".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        let one: IpNet = "2001:db8::1".parse().unwrap();
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
    }
}
