//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, without channel binding
//! (the -PLUS variants are not offered). An unknown user gets a made-up but stable salt, so the
//! exchange fails only at the proof, exactly like a wrong password.

use super::{check_authz, Failure, Step};
use hmac::{Hmac, KeyInit, Mac};
use pochta_password::{ScramCredentials, ScramHash};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// H() of RFC 5802 §2.2.
fn h(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

/// HMAC() of RFC 5802 §2.2.
fn mac(hash: ScramHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    match hash {
        ScramHash::Sha1 => match Hmac::<Sha1>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        },
        ScramHash::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        },
    }
}

/// Output length of the hash.
fn hash_len(hash: ScramHash) -> usize {
    match hash {
        ScramHash::Sha1 => 20,
        ScramHash::Sha256 => 32,
    }
}

#[derive(Debug)]
enum State {
    Start,
    /// Client-first parsed; waiting for credentials.
    Lookup {
        user: String,
        gs2_header: String,
        client_first_bare: String,
        client_nonce: String,
    },
    /// Server-first sent.
    Sent {
        user: String,
        gs2_header: String,
        auth_prefix: String,
        nonce: String,
        creds: Option<ScramCredentials>,
    },
    Done,
}

#[derive(Debug)]
pub(crate) struct Scram {
    hash: ScramHash,
    state: State,
    /// Secret for the stable fake salt of unknown users.
    fake_salt_key: [u8; 32],
}

const MAX_MESSAGE: usize = 4096;

impl Scram {
    pub(crate) fn new(hash: ScramHash, fake_salt_key: [u8; 32]) -> Self {
        Scram {
            hash,
            state: State::Start,
            fake_salt_key,
        }
    }

    pub(crate) fn start(&mut self, initial: Option<&[u8]>) -> Step {
        match initial {
            Some(ir) if !ir.is_empty() => self.step(ir),
            _ => Step::Challenge(Vec::new()),
        }
    }

    pub(crate) fn step(&mut self, data: &[u8]) -> Step {
        if data.len() > MAX_MESSAGE {
            return self.fail(Failure::Protocol("SCRAM: message too long"));
        }
        let Ok(text) = std::str::from_utf8(data) else {
            return self.fail(Failure::Protocol("SCRAM: message is not UTF-8"));
        };
        match std::mem::replace(&mut self.state, State::Done) {
            State::Start => match parse_client_first(text) {
                Ok((gs2_header, authzid, user, client_nonce, bare)) => {
                    if let Err(f) = check_authz(&authzid, &user) {
                        return self.fail(f);
                    }
                    self.state = State::Lookup {
                        user: user.clone(),
                        gs2_header,
                        client_first_bare: bare,
                        client_nonce,
                    };
                    Step::NeedCredentials { user }
                }
                Err(e) => self.fail(Failure::Protocol(e)),
            },
            State::Sent {
                user,
                gs2_header,
                auth_prefix,
                nonce,
                creds,
            } => self.client_final(text, user, &gs2_header, &auth_prefix, &nonce, creds),
            State::Lookup { .. } | State::Done => {
                self.fail(Failure::Protocol("SCRAM: unexpected message"))
            }
        }
    }

    /// Answers `NeedCredentials`; `None` when the user does not exist or has no usable password.
    pub(crate) fn credentials(&mut self, creds: Option<ScramCredentials>) -> Step {
        let State::Lookup {
            user,
            gs2_header,
            client_first_bare,
            client_nonce,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return self.fail(Failure::Protocol("SCRAM: credentials out of order"));
        };
        let (salt, iterations) = match &creds {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                mac(self.hash, &self.fake_salt_key, user.as_bytes())[..16].to_vec(),
                4096,
            ),
        };
        let server_nonce = pochta_auth_proto::base64_encode(&crate::random::bytes::<18>());
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={iterations}",
            pochta_auth_proto::base64_encode(&salt)
        );
        let auth_prefix = format!("{client_first_bare},{server_first},");
        self.state = State::Sent {
            user,
            gs2_header,
            auth_prefix,
            nonce,
            creds,
        };
        Step::Challenge(server_first.into_bytes())
    }

    fn client_final(
        &mut self,
        text: &str,
        user: String,
        gs2_header: &str,
        auth_prefix: &str,
        nonce: &str,
        creds: Option<ScramCredentials>,
    ) -> Step {
        let Some((without_proof, proof_b64)) = text.rsplit_once(",p=") else {
            return self.fail(Failure::Protocol("SCRAM: client-final without proof"));
        };
        let mut attrs = without_proof.split(',');
        let (Some(c), Some(r)) = (attrs.next(), attrs.next()) else {
            return self.fail(Failure::Protocol("SCRAM: malformed client-final"));
        };
        let expected_cb = pochta_auth_proto::base64_encode(gs2_header.as_bytes());
        if c.strip_prefix("c=") != Some(expected_cb.as_str()) {
            return self.fail(Failure::Protocol("SCRAM: channel binding mismatch"));
        }
        if r.strip_prefix("r=") != Some(nonce) {
            return self.fail(Failure::Protocol("SCRAM: nonce mismatch"));
        }
        let Some(proof) = pochta_auth_proto::base64_decode(proof_b64) else {
            return self.fail(Failure::Protocol("SCRAM: proof is not base64"));
        };
        let Some(creds) = creds else {
            return self.fail(Failure::Credentials);
        };
        if proof.len() != hash_len(self.hash) {
            return self.fail(Failure::Credentials);
        }
        let auth_message = format!("{auth_prefix}{without_proof}");
        let client_signature = mac(self.hash, &creds.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let stored = h(self.hash, &client_key);
        if !bool::from(stored.ct_eq(&creds.stored_key)) {
            return self.fail(Failure::Credentials);
        }
        let server_signature = mac(self.hash, &creds.server_key, auth_message.as_bytes());
        let final_data = format!("v={}", pochta_auth_proto::base64_encode(&server_signature));
        self.state = State::Done;
        Step::Success {
            user,
            final_data: Some(final_data.into_bytes()),
        }
    }

    fn fail(&mut self, f: Failure) -> Step {
        self.state = State::Done;
        Step::Fail(f)
    }
}

/// saslname decoding: `=2C` → `,`, `=3D` → `=`; any other `=` is an error (RFC 5802 §5.1).
fn decode_saslname(s: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err("SCRAM: bad escape in user name"),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Returns (gs2 header, authzid, user, client nonce, client-first-bare).
fn parse_client_first(
    text: &str,
) -> Result<(String, String, String, String, String), &'static str> {
    let mut it = text.splitn(3, ',');
    let (Some(flag), Some(authz), Some(bare)) = (it.next(), it.next(), it.next()) else {
        return Err("SCRAM: malformed client-first");
    };
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err("SCRAM: channel binding is not offered"),
        _ => return Err("SCRAM: bad gs2 header"),
    }
    let authzid = match authz {
        "" => String::new(),
        a => decode_saslname(a.strip_prefix("a=").ok_or("SCRAM: bad authzid")?)?,
    };
    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err("SCRAM: mandatory extension not supported");
    }
    let user = decode_saslname(first.strip_prefix("n=").ok_or("SCRAM: missing user name")?)?;
    let nonce = attrs
        .next()
        .and_then(|r| r.strip_prefix("r="))
        .ok_or("SCRAM: missing nonce")?;
    if user.is_empty()
        || nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err("SCRAM: empty user or bad nonce");
    }
    Ok((
        format!("{flag},{authz},"),
        authzid,
        user,
        nonce.to_owned(),
        bare.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pochta_auth_proto::Secret;

    /// Derives SCRAM credentials from a cleartext password (RFC 5802 §3).
    fn derive(
        hash: ScramHash,
        password: &Secret<Vec<u8>>,
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredentials {
        let mut salted = vec![0u8; hash_len(hash)];
        match hash {
            ScramHash::Sha1 => {
                pbkdf2::pbkdf2_hmac::<Sha1>(password.expose(), salt, iterations, &mut salted)
            }
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password.expose(), salt, iterations, &mut salted)
            }
        }
        let client_key = mac(hash, &salted, b"Client Key");
        ScramCredentials {
            iterations,
            salt: salt.to_vec(),
            stored_key: h(hash, &client_key),
            server_key: mac(hash, &salted, b"Server Key"),
        }
    }

    /// RFC 7677 §3 test vector (SCRAM-SHA-256, user "user", password "pencil").
    #[test]
    fn rfc7677_vector() {
        let salt = pochta_auth_proto::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = derive(
            ScramHash::Sha256,
            &Secret::new(b"pencil".to_vec()),
            &salt,
            4096,
        );
        let client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let mut s = Scram::new(ScramHash::Sha256, [7; 32]);
        let step = s.start(Some(client_first.as_bytes()));
        assert!(matches!(step, Step::NeedCredentials { user } if user == "user"));
        // Force the RFC's server nonce to reproduce its proof.
        let _ = s.credentials(Some(creds.clone()));
        let State::Sent {
            user, gs2_header, ..
        } = std::mem::replace(&mut s.state, State::Done)
        else {
            panic!()
        };
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_owned();
        let server_first = format!("r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        s.state = State::Sent {
            user,
            gs2_header,
            auth_prefix: format!("n=user,r=rOprNGfwEbeRWgbNEkqO,{server_first},"),
            nonce: nonce.clone(),
            creds: Some(creds),
        };
        let final_msg = format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        match s.step(final_msg.as_bytes()) {
            Step::Success { user, final_data } => {
                assert_eq!(user, "user");
                assert_eq!(
                    final_data.unwrap(),
                    b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_proof_and_unknown_user_fail_alike() {
        let mut s = Scram::new(ScramHash::Sha1, [1; 32]);
        assert!(matches!(
            s.start(Some(b"n,,n=ghost,r=abc")),
            Step::NeedCredentials { .. }
        ));
        let Step::Challenge(first) = s.credentials(None) else {
            panic!()
        };
        let first = String::from_utf8(first).unwrap();
        let nonce = first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=")
            .unwrap()
            .to_owned();
        let proof = pochta_auth_proto::base64_encode(&[0u8; 20]);
        let fin = format!("c=biws,r={nonce},p={proof}");
        assert!(matches!(
            s.step(fin.as_bytes()),
            Step::Fail(Failure::Credentials)
        ));
        // Same fake salt for the same unknown user.
        let mut t = Scram::new(ScramHash::Sha1, [1; 32]);
        t.start(Some(b"n,,n=ghost,r=xyz"));
        let Step::Challenge(again) = t.credentials(None) else {
            panic!()
        };
        let salt = |m: &str| m.split(',').nth(1).unwrap().to_owned();
        assert_eq!(salt(&first), salt(&String::from_utf8(again).unwrap()));
    }

    #[test]
    fn rejects_bad_client_first() {
        for bad in [
            "",
            "x,,n=u,r=a",
            "p=tls-unique,,n=u,r=a",
            "n,,m=x,n=u,r=a",
            "n,,n=u",
            "n,,n=a=2Xb,r=a",
            "n,a=other,n=u,r=a",
        ] {
            let mut s = Scram::new(ScramHash::Sha256, [0; 32]);
            assert!(
                matches!(
                    s.start(Some(bad.as_bytes())),
                    Step::Fail(_) | Step::Challenge(_)
                ),
                "{bad}"
            );
            if !bad.is_empty() {
                assert!(
                    matches!(
                        Scram::new(ScramHash::Sha256, [0; 32]).start(Some(bad.as_bytes())),
                        Step::Fail(_)
                    ),
                    "{bad}"
                );
            }
        }
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
    }
}
