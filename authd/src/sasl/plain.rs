//! PLAIN (RFC 4616) and LOGIN: the client sends the password itself.

use super::{check_authz, Failure, Step};
use pochta_auth_proto::Secret;

/// Longest user name or password taken from a client.
const MAX_FIELD: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Plain {
    asked: bool,
}

impl Plain {
    /// `initial`: the initial response, if the client sent one.
    pub(crate) fn start(&mut self, initial: Option<&[u8]>) -> Step {
        match initial {
            Some(ir) => self.step(ir),
            None => {
                self.asked = true;
                Step::Challenge(Vec::new())
            }
        }
    }

    pub(crate) fn step(&mut self, data: &[u8]) -> Step {
        let mut parts = data.split(|b| *b == 0);
        let (Some(authz), Some(authc), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Step::Fail(Failure::Protocol(
                "PLAIN: expected authzid NUL authcid NUL password",
            ));
        };
        if authc.is_empty() || authc.len() > MAX_FIELD || pass.len() > MAX_FIELD {
            return Step::Fail(Failure::Protocol("PLAIN: empty or overlong field"));
        }
        let (Ok(authz), Ok(authc)) = (std::str::from_utf8(authz), std::str::from_utf8(authc))
        else {
            return Step::Fail(Failure::Protocol("PLAIN: user name is not UTF-8"));
        };
        if let Err(f) = check_authz(authz, authc) {
            return Step::Fail(f);
        }
        Step::VerifyPassword {
            user: authc.to_owned(),
            password: Secret::new(pass.to_vec()),
        }
    }
}

/// LOGIN: "Username:" then "Password:" challenges, as Dovecot sends them.
#[derive(Debug, Default)]
pub(crate) struct Login {
    user: Option<String>,
}

impl Login {
    pub(crate) fn start(&mut self, initial: Option<&[u8]>) -> Step {
        match initial {
            // An initial response is the user name (Dovecot accepts this).
            Some(ir) if !ir.is_empty() => self.step(ir),
            _ => Step::Challenge(b"Username:".to_vec()),
        }
    }

    pub(crate) fn step(&mut self, data: &[u8]) -> Step {
        if data.len() > MAX_FIELD {
            return Step::Fail(Failure::Protocol("LOGIN: overlong response"));
        }
        match &self.user {
            None => match std::str::from_utf8(data) {
                Ok(u) if !u.is_empty() && !u.contains('\0') => {
                    self.user = Some(u.to_owned());
                    Step::Challenge(b"Password:".to_vec())
                }
                _ => Step::Fail(Failure::Protocol("LOGIN: invalid user name")),
            },
            Some(user) => Step::VerifyPassword {
                user: user.clone(),
                password: Secret::new(data.to_vec()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(step: Step) -> (String, Vec<u8>) {
        match step {
            Step::VerifyPassword { user, password } => (user, password.expose().clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain() {
        assert_eq!(
            verify(Plain::default().start(Some(b"\0alice\0pw"))),
            ("alice".into(), b"pw".to_vec())
        );
        assert_eq!(
            verify(Plain::default().start(Some(b"alice\0alice\0pw"))).0,
            "alice"
        );
        assert!(matches!(
            Plain::default().start(Some(b"bob\0alice\0pw")),
            Step::Fail(Failure::Authz)
        ));
        assert!(matches!(
            Plain::default().start(Some(b"alice\0pw")),
            Step::Fail(Failure::Protocol(_))
        ));
        assert!(matches!(
            Plain::default().start(Some(b"\0\0pw")),
            Step::Fail(Failure::Protocol(_))
        ));
        assert!(matches!(
            Plain::default().start(Some(b"\0a\0b\0c")),
            Step::Fail(Failure::Protocol(_))
        ));
        let mut p = Plain::default();
        assert!(matches!(p.start(None), Step::Challenge(c) if c.is_empty()));
        assert_eq!(verify(p.step(b"\0u\0p")).0, "u");
    }

    #[test]
    fn login() {
        let mut l = Login::default();
        assert!(matches!(l.start(None), Step::Challenge(c) if c == b"Username:"));
        assert!(matches!(l.step(b"alice"), Step::Challenge(c) if c == b"Password:"));
        assert_eq!(
            verify(l.step(b"secret")),
            ("alice".into(), b"secret".to_vec())
        );
        let mut l = Login::default();
        assert!(matches!(l.start(Some(b"bob")), Step::Challenge(c) if c == b"Password:"));
    }
}
