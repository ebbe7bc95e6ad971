//! The user service behind both sockets: name normalisation, password verification, credentials
//! for challenge mechanisms, and userdb answers with defaults and templates applied. Every method
//! blocks (file reads, slow hashes): call it from spawn_blocking.

use crate::backend::{Backend, BackendError, PassdbEntry};
use crate::config::{Config, UsernameFormat};
use crate::template;
use pochta_auth_proto::Secret;
use pochta_password::{Scheme, ScramCredentials, ScramHash, StoredPassword};
use std::net::IpAddr;
use std::sync::Arc;

/// Dovecot's default `auth_username_chars`, plus `+` for address extensions.
fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@+".contains(&b))
        && !name.starts_with('.')
        && !name.contains("..")
}

/// Userdb fields, in reply order.
pub(crate) type UserFields = Vec<(String, String)>;
/// A passdb answer: the entry, none for an unknown user, or a backend failure.
type Lookup = Result<Option<PassdbEntry>, BackendError>;
/// Passdb extra fields (`None` value = bare flag).
pub(crate) type ExtraFields = Vec<(String, Option<String>)>;

/// The outcome of a password check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Authenticated as `user` (canonical name), with passdb extra fields for the OK reply.
    Ok {
        user: String,
        fields: Vec<(String, Option<String>)>,
    },
    /// Wrong password, unknown user, or not allowed from this network: indistinguishable to the
    /// client.
    Fail {
        user: Option<String>,
        why: &'static str,
    },
    /// Authenticated but login refused (`nologin`), with the entry's reason if any.
    Refused {
        user: String,
        reason: Option<String>,
    },
    /// The backend failed: try again later.
    TempFail(String),
}

/// The passdb and userdb as the sessions see them.
pub(crate) struct Users {
    backend: Arc<dyn Backend>,
    config: Arc<Config>,
    default_scheme: Scheme,
}

impl Users {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        config: Arc<Config>,
        default_scheme: Scheme,
    ) -> Self {
        Users {
            backend,
            config,
            default_scheme,
        }
    }

    /// The stored password of an entry, parsed; an unusable one is logged (without its
    /// content) and treated as "no credentials".
    fn stored(&self, entry: &PassdbEntry) -> Option<StoredPassword> {
        let raw = entry.password.as_deref()?;
        match StoredPassword::parse(
            raw,
            self.default_scheme,
            self.config.auth.allow_weak_schemes,
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(user = %entry.user, "stored password unusable: {e}");
                None
            }
        }
    }

    /// Normalises a user name as configured; `None` when it has characters we never accept.
    pub(crate) fn normalize(&self, name: &str) -> Option<String> {
        let mut name = match self.config.auth.username_format {
            UsernameFormat::Lowercase => name.to_lowercase(),
            UsernameFormat::LowercaseDomain => match name.rsplit_once('@') {
                Some((l, d)) => format!("{l}@{}", d.to_lowercase()),
                None => name.to_owned(),
            },
            UsernameFormat::AsIs => name.to_owned(),
        };
        if !name.contains('@') {
            if let Some(d) = &self.config.auth.default_domain {
                name = format!("{name}@{d}");
            }
        }
        valid_username(&name).then_some(name)
    }

    fn passdb(
        &self,
        name: &str,
        remote: Option<IpAddr>,
    ) -> Result<Result<PassdbEntry, Verdict>, BackendError> {
        let found = self.passdb_with(name, remote, |b, user| Some(b.passdb(user)));
        // invariant: the lookup closure above always answers.
        found.unwrap_or_else(|| Err(BackendError("no passdb answer".into())))
    }

    /// [`Self::passdb`] with the backend call given by `lookup`; `None` when `lookup` gave none.
    fn passdb_with(
        &self,
        name: &str,
        remote: Option<IpAddr>,
        lookup: impl FnOnce(&dyn Backend, &str) -> Option<Lookup>,
    ) -> Option<Result<Result<PassdbEntry, Verdict>, BackendError>> {
        let Some(user) = self.normalize(name) else {
            return Some(Ok(Err(Verdict::Fail {
                user: None,
                why: "invalid user name",
            })));
        };
        let found = lookup(self.backend.as_ref(), &user)?;
        Some(Self::entry_policy(user, remote, found))
    }

    fn entry_policy(
        user: String,
        remote: Option<IpAddr>,
        found: Lookup,
    ) -> Result<Result<PassdbEntry, Verdict>, BackendError> {
        let Some(entry) = found? else {
            return Ok(Err(Verdict::Fail {
                user: Some(user),
                why: "unknown user",
            }));
        };
        if let Some(nets) = &entry.allow_nets {
            let allowed = remote.is_some_and(|ip| nets.iter().any(|n| n.contains(ip)));
            if !allowed {
                return Ok(Err(Verdict::Fail {
                    user: Some(entry.user),
                    why: "remote IP not in allow_nets",
                }));
            }
        }
        Ok(Ok(entry))
    }

    fn finish(entry: PassdbEntry) -> Verdict {
        if entry.nologin {
            let reason = entry
                .extra
                .iter()
                .find(|(k, _)| k == "reason")
                .and_then(|(_, v)| v.clone());
            return Verdict::Refused {
                user: entry.user,
                reason,
            };
        }
        let fields = entry
            .extra
            .into_iter()
            .filter(|(k, _)| k != "reason")
            .collect();
        Verdict::Ok {
            user: entry.user,
            fields,
        }
    }

    /// Checks a password (PLAIN, LOGIN). Slow (password hashing): call from spawn_blocking.
    pub(crate) fn verify(
        &self,
        name: &str,
        password: &Secret<Vec<u8>>,
        remote: Option<IpAddr>,
    ) -> Verdict {
        match self.passdb(name, remote) {
            Ok(found) => self.check(found, password, false),
            Err(e) => Some(Verdict::TempFail(e.0)),
        }
        // invariant: `check` with `now == false` always answers.
        .unwrap_or_else(|| Verdict::TempFail("no verdict".into()))
    }

    /// [`Self::verify`] when it can be answered without blocking: the passdb answers from
    /// memory ([`Backend::passdb_now`]) and the stored scheme is a single hash or a compare
    /// ([`cheap`]), microseconds like the protocol work around it. `None`: use `verify` on the
    /// blocking pool (crypt family, Argon2, PBKDF2, SCRAM, OTP, a changed passwd-file, SQL).
    pub(crate) fn verify_now(
        &self,
        name: &str,
        password: &Secret<Vec<u8>>,
        remote: Option<IpAddr>,
    ) -> Option<Verdict> {
        match self.passdb_with(name, remote, |b, user| b.passdb_now(user))? {
            Ok(found) => self.check(found, password, true),
            Err(e) => Some(Verdict::TempFail(e.0)),
        }
    }

    /// The password check proper; with `now`, `None` when the stored scheme is not [`cheap`].
    fn check(
        &self,
        found: Result<PassdbEntry, Verdict>,
        password: &Secret<Vec<u8>>,
        now: bool,
    ) -> Option<Verdict> {
        let entry = match found {
            Ok(e) => e,
            Err(v) => return Some(v),
        };
        if entry.nopassword {
            return Some(Self::finish(entry));
        }
        let Some(stored) = self.stored(&entry) else {
            return Some(Verdict::Fail {
                user: Some(entry.user),
                why: "no usable password",
            });
        };
        if now && !cheap(stored.scheme()) {
            return None;
        }
        Some(match stored.verify(password.expose(), &entry.user) {
            Ok(true) => Self::finish(entry),
            Ok(false) => Verdict::Fail {
                user: Some(entry.user),
                why: "password mismatch",
            },
            Err(e) => {
                tracing::warn!(user = %entry.user, "stored password unusable: {e}");
                Verdict::Fail {
                    user: Some(entry.user),
                    why: "stored password unusable",
                }
            }
        })
    }

    /// Expected HMAC-MD5 of `challenge` for CRAM-MD5, and the entry; `Ok(None)` when the user
    /// is unknown, not allowed from `remote`, or its stored scheme cannot serve CRAM-MD5.
    pub(crate) fn cram(
        &self,
        name: &str,
        challenge: &[u8],
        remote: Option<IpAddr>,
    ) -> Result<Option<(PassdbEntry, [u8; 16])>, BackendError> {
        let Ok(entry) = self.passdb(name, remote)? else {
            return Ok(None);
        };
        let Some(key) = self.stored(&entry).and_then(|p| p.cram_md5()) else {
            tracing::info!(user = %entry.user, "CRAM-MD5: the stored scheme cannot serve it");
            return Ok(None);
        };
        let expected = key.hmac(challenge);
        Ok(Some((entry, expected)))
    }

    /// SCRAM credentials and the entry; `Ok(None)` as for [`Users::cram`]. Slow for cleartext
    /// passwords (PBKDF2): call from spawn_blocking.
    pub(crate) fn scram(
        &self,
        name: &str,
        hash: ScramHash,
        remote: Option<IpAddr>,
    ) -> Result<Option<(PassdbEntry, ScramCredentials)>, BackendError> {
        let Ok(entry) = self.passdb(name, remote)? else {
            return Ok(None);
        };
        let Some(creds) = self.stored(&entry).and_then(|p| p.scram(hash)) else {
            tracing::info!(user = %entry.user, "SCRAM: the stored scheme cannot serve it");
            return Ok(None);
        };
        Ok(Some((entry, creds)))
    }

    /// Applies the policy of a passdb entry found for a challenge mechanism that succeeded.
    pub(crate) fn after_challenge(entry: PassdbEntry) -> Verdict {
        Self::finish(entry)
    }

    /// The userdb answer for `name`: canonical user and fields (uid, gid, home, mail, …).
    pub(crate) fn userdb(&self, name: &str) -> Result<Option<(String, UserFields)>, BackendError> {
        let Some(user) = self.normalize(name) else {
            return Ok(None);
        };
        let Some(entry) = self.backend.userdb(&user)? else {
            return Ok(None);
        };
        let d = &self.config.userdb;
        let expand = |t: &str| template::expand(t, &entry.user).map_err(BackendError);
        let mut fields = Vec::new();
        if let Some(uid) = entry.uid.clone().or_else(|| d.uid.clone()) {
            fields.push(("uid".to_owned(), resolve_uid(&uid)?));
        }
        if let Some(gid) = entry.gid.clone().or_else(|| d.gid.clone()) {
            fields.push(("gid".to_owned(), resolve_gid(&gid)?));
        }
        match (&entry.home, &d.home) {
            (Some(h), _) => fields.push(("home".to_owned(), h.clone())),
            (None, Some(t)) => fields.push(("home".to_owned(), expand(t)?)),
            (None, None) => {}
        }
        let has = |k: &str| entry.fields.iter().any(|(f, _)| f == k);
        if let (Some(t), false) = (&d.mail, has("mail")) {
            fields.push(("mail".to_owned(), expand(t)?));
        }
        if let (Some(q), false) = (&d.quota_rule, has("quota_rule")) {
            fields.push(("quota_rule".to_owned(), q.clone()));
        }
        fields.extend(entry.fields.iter().cloned());
        Ok(Some((entry.user, fields)))
    }

    /// For the userdb `PASS` request: passdb fields without any password check.
    pub(crate) fn pass_lookup(
        &self,
        name: &str,
    ) -> Result<Option<(String, ExtraFields)>, BackendError> {
        let Some(user) = self.normalize(name) else {
            return Ok(None);
        };
        let Some(entry) = self.backend.passdb(&user)? else {
            return Ok(None);
        };
        if entry.nologin {
            return Ok(None);
        }
        Ok(Some((entry.user, entry.extra)))
    }

    /// User names matching `mask` (`*`/`?` wildcards), for `LIST`.
    pub(crate) fn list(&self, mask: Option<&str>) -> Result<Vec<String>, BackendError> {
        let all = self.backend.list()?;
        Ok(match mask {
            Some(m) => all.into_iter().filter(|u| wildcard(m, u)).collect(),
            None => all,
        })
    }
}

/// Schemes whose check is one hash (or HMAC key setup) over the password, or a plain compare:
/// cheap enough for the async threads. Everything with a work factor stays on the blocking pool.
fn cheap(scheme: Scheme) -> bool {
    matches!(
        scheme,
        Scheme::Plain
            | Scheme::PlainTrunc
            | Scheme::Sha
            | Scheme::Sha256
            | Scheme::Sha512
            | Scheme::Ssha
            | Scheme::Ssha256
            | Scheme::Ssha512
            | Scheme::Smd5
            | Scheme::PlainMd5
            | Scheme::LdapMd5
            | Scheme::PlainMd4
            | Scheme::CramMd5
            | Scheme::DigestMd5
    )
}

/// Numeric uid; a name is resolved through the system's user database.
fn resolve_uid(v: &str) -> Result<String, BackendError> {
    if v.parse::<u32>().is_ok() {
        return Ok(v.to_owned());
    }
    match nix::unistd::User::from_name(v) {
        Ok(Some(u)) => Ok(u.uid.to_string()),
        Ok(None) => Err(BackendError(format!("uid {v:?}: no such user"))),
        Err(e) => Err(BackendError(format!("uid {v:?}: {e}"))),
    }
}

fn resolve_gid(v: &str) -> Result<String, BackendError> {
    if v.parse::<u32>().is_ok() {
        return Ok(v.to_owned());
    }
    match nix::unistd::Group::from_name(v) {
        Ok(Some(g)) => Ok(g.gid.to_string()),
        Ok(None) => Err(BackendError(format!("gid {v:?}: no such group"))),
        Err(e) => Err(BackendError(format!("gid {v:?}: {e}"))),
    }
}

/// `*` and `?` wildcards, as in `doveadm user '*@example.org'`.
fn wildcard(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_names() {
        assert!(wildcard("*@example.org", "a@example.org"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("*@example.org", "a@example.com"));
        assert!(valid_username("alice+tag@example.org"));
        assert!(!valid_username("../etc@x"));
        assert!(!valid_username("a b@x"));
        assert!(!valid_username("a/b@x"));
    }
}
