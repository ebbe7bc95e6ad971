//! CRAM-MD5 (RFC 2195): the server sends `<random.time@host>`, the client answers
//! `user SP hex(HMAC-MD5(password, challenge))`.

use super::{Failure, Step};
use subtle::ConstantTimeEq;

#[derive(Debug)]
pub(crate) struct CramMd5 {
    challenge: Vec<u8>,
    /// The user and digest of the response, until the credentials arrive.
    pending: Option<(String, [u8; 16])>,
}

impl CramMd5 {
    pub(crate) fn new(hostname: &str) -> Self {
        let r = crate::random::bytes::<8>();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let challenge = format!("<{}.{now}@{hostname}>", u64::from_le_bytes(r)).into_bytes();
        CramMd5 {
            challenge,
            pending: None,
        }
    }

    pub(crate) fn start(&mut self) -> Step {
        Step::Challenge(self.challenge.clone())
    }

    pub(crate) fn step(&mut self, data: &[u8]) -> Step {
        let Ok(text) = std::str::from_utf8(data) else {
            return Step::Fail(Failure::Protocol("CRAM-MD5: response is not UTF-8"));
        };
        let Some((user, hex)) = text.rsplit_once(' ') else {
            return Step::Fail(Failure::Protocol("CRAM-MD5: expected \"user digest\""));
        };
        let Some(digest) = decode_hex16(hex) else {
            return Step::Fail(Failure::Protocol("CRAM-MD5: digest is not 32 hex digits"));
        };
        if user.is_empty() || user.len() > 1024 {
            return Step::Fail(Failure::Protocol("CRAM-MD5: bad user name"));
        }
        self.pending = Some((user.to_owned(), digest));
        Step::NeedCredentials {
            user: user.to_owned(),
        }
    }

    /// The challenge the HMAC must be computed over.
    pub(crate) fn challenge(&self) -> &[u8] {
        &self.challenge
    }

    /// Answers `NeedCredentials` with the expected HMAC-MD5 of the challenge, computed from the
    /// user's stored credentials, or `None` when the user is unknown or has none usable.
    pub(crate) fn credentials(&mut self, expected: Option<[u8; 16]>) -> Step {
        let Some((user, got)) = self.pending.take() else {
            return Step::Fail(Failure::Protocol("CRAM-MD5: credentials out of order"));
        };
        match expected {
            Some(want) if bool::from(want.ct_eq(&got)) => Step::Success {
                user,
                final_data: None,
            },
            _ => Step::Fail(Failure::Credentials),
        }
    }
}

fn decode_hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2195_example_shape() {
        let mut c = CramMd5::new("mx.example");
        let Step::Challenge(ch) = c.start() else {
            panic!()
        };
        assert!(ch.starts_with(b"<") && ch.ends_with(b"@mx.example>"));
        // RFC 2195's example digest, checked against the expected value we pass in.
        let digest = decode_hex16("b913a602c7eda7a495b4e6e7334d3890").unwrap();
        let step = c.step(b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert!(matches!(step, Step::NeedCredentials { user } if user == "tim"));
        assert!(matches!(c.credentials(Some(digest)), Step::Success { user, .. } if user == "tim"));
        let mut c = CramMd5::new("h");
        c.step(b"tim b913a602c7eda7a495b4e6e7334d3890");
        assert!(matches!(
            c.credentials(None),
            Step::Fail(Failure::Credentials)
        ));
        assert!(matches!(
            CramMd5::new("h").step(b"tim xyz"),
            Step::Fail(Failure::Protocol(_))
        ));
    }
}
