//! The `AUTH` request with every parameter of docs/formats.md#auth-requests as a typed field.

use std::net::IpAddr;

use crate::error::ParseError;
use crate::escape::escape;
use crate::fields::{base64_decode, base64_encode, Field, LineWriter, RawLine, RequestId};
use crate::secret::Secret;

/// The `secured` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secured {
    /// Bare `secured`: TLS or a trusted local transport.
    Yes,
    /// `secured=tls`: real TLS.
    Tls,
}

/// `AUTH\t<id>\t<mech>\tservice=<svc>[\t<param>...][\tresp=<b64>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Request id.
    pub id: RequestId,
    /// Mechanism name as the client sent it.
    pub mechanism: String,
    /// `service=` (2.2/2.3) or `protocol=` (2.4); always encoded as `service=`.
    pub service: String,
    /// `lip=`; an empty or unparsable value is `None` (unparsable ones land in `other`).
    pub local_ip: Option<IpAddr>,
    /// `rip=`.
    pub remote_ip: Option<IpAddr>,
    /// `lport=`.
    pub local_port: Option<u16>,
    /// `rport=`.
    pub remote_port: Option<u16>,
    /// `real_lip=`: local address before a proxy.
    pub real_local_ip: Option<IpAddr>,
    /// `real_rip=`.
    pub real_remote_ip: Option<IpAddr>,
    /// `real_lport=`.
    pub real_local_port: Option<u16>,
    /// `real_rport=`.
    pub real_remote_port: Option<u16>,
    /// `secured` / `secured=tls`.
    pub secured: Option<Secured>,
    /// `valid-client-cert`.
    pub valid_client_cert: bool,
    /// `cert_username=`.
    pub cert_username: Option<String>,
    /// `no-penalty`: skip brute-force penalty accounting.
    pub no_penalty: bool,
    /// `final-resp-ok`: the client takes final SASL data inside `OK … resp=`.
    pub final_resp_ok: bool,
    /// `session=`.
    pub session: Option<String>,
    /// `local_name=` (TLS SNI).
    pub local_name: Option<String>,
    /// `client_id=`.
    pub client_id: Option<String>,
    /// `debug`.
    pub debug: bool,
    /// `forward_fields=`: tab-escaped list of tab-escaped `k=v`.
    pub forward_fields: Vec<Field>,
    /// `ssl_client_cert_fp=`.
    pub ssl_client_cert_fp: Option<String>,
    /// `ssl_client_cert_pubkey_fp=`.
    pub ssl_client_cert_pubkey_fp: Option<String>,
    /// `ssl_ja3_hash=`.
    pub ssl_ja3_hash: Option<String>,
    /// Parameters this crate does not type (`nologin`, `transport=`, `tls_cipher=`…), in order.
    /// Servers ignore them; they are kept for logging and round trips.
    pub other: Vec<Field>,
    /// `resp=`, decoded. `Some(empty)` is an empty `resp=` on the wire; whether that means "no
    /// initial response" depends on the client's minor version, see
    /// [`decode_initial_response`].
    pub initial_response: Option<Secret<Vec<u8>>>,
}

impl AuthRequest {
    /// A request with only the mandatory parts.
    pub fn new(id: RequestId, mechanism: impl Into<String>, service: impl Into<String>) -> Self {
        AuthRequest {
            id,
            mechanism: mechanism.into(),
            service: service.into(),
            local_ip: None,
            remote_ip: None,
            local_port: None,
            remote_port: None,
            real_local_ip: None,
            real_remote_ip: None,
            real_local_port: None,
            real_remote_port: None,
            secured: None,
            valid_client_cert: false,
            cert_username: None,
            no_penalty: false,
            final_resp_ok: false,
            session: None,
            local_name: None,
            client_id: None,
            debug: false,
            forward_fields: Vec::new(),
            ssl_client_cert_fp: None,
            ssl_client_cert_pubkey_fp: None,
            ssl_ja3_hash: None,
            other: Vec::new(),
            initial_response: None,
        }
    }

    /// Parses the arguments after `AUTH` (raw, still escaped), in Dovecot's order of checks:
    /// id and mechanism, then parameters (`resp=` must be last), then the service. Returns the
    /// request without its initial response and the raw `resp=` text, so the caller can check
    /// for duplicate ids before decoding base64 (as Dovecot does).
    pub(crate) fn parse_args<'a>(
        line: &RawLine<'a>,
    ) -> Result<(AuthRequest, Option<&'a str>), ParseError> {
        let id = line.id(0)?;
        let mechanism = line.arg(1, "mechanism")?;
        let mut req = AuthRequest::new(id, mechanism, String::new());
        let mut service = None;
        let mut resp = None;
        let mut params = line.args.iter().skip(2);
        for raw in params.by_ref() {
            // 2.4 clients can double a TAB (after `local_name=`): an empty parameter is nothing.
            if raw.is_empty() {
                continue;
            }
            // `resp=` is taken raw: base64 never holds escape bytes.
            if let Some(r) = raw.strip_prefix("resp=") {
                resp = Some(r);
                break;
            }
            if *raw == "resp" {
                resp = Some("");
                break;
            }
            let field = Field::parse(raw);
            if let Some(svc) = req.apply(field) {
                service = Some(svc);
            }
        }
        if params.next().is_some() {
            return Err(ParseError::ParamsAfterResp(id));
        }
        req.service = service.ok_or(ParseError::MissingService(id))?;
        Ok((req, resp))
    }

    /// Parses the arguments after `AUTH` including the base64 of `resp=` (an empty `resp=`
    /// gives `Some(empty)`).
    pub(crate) fn parse(line: &RawLine<'_>) -> Result<AuthRequest, ParseError> {
        let (mut req, resp) = AuthRequest::parse_args(line)?;
        if let Some(raw) = resp {
            let data = decode_initial_response(raw, u32::MAX)
                .ok_or(ParseError::InvalidBase64(req.id))?
                .unwrap_or_default();
            req.initial_response = Some(Secret::new(data));
        }
        Ok(req)
    }

    /// Stores one parameter; returns the service when it is `service=`/`protocol=`.
    fn apply(&mut self, field: Field) -> Option<String> {
        let Field { key, value } = field;
        if key.is_empty() && value.is_none() {
            return None;
        }
        let Some(value) = value else {
            match key.as_str() {
                "secured" => self.secured = Some(Secured::Yes),
                "valid-client-cert" => self.valid_client_cert = true,
                "no-penalty" => self.no_penalty = true,
                "final-resp-ok" => self.final_resp_ok = true,
                "debug" => self.debug = true,
                _ => self.other.push(Field::flag(key)),
            }
            return None;
        };
        fn ip(v: &str) -> Option<Option<IpAddr>> {
            if v.is_empty() {
                return Some(None);
            }
            let bare = v
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(v);
            bare.parse().ok().map(Some)
        }
        fn port(v: &str) -> Option<Option<u16>> {
            if v.is_empty() {
                return Some(None);
            }
            crate::fields::parse_u32(v)
                .and_then(|p| u16::try_from(p).ok())
                .map(Some)
        }
        let ok = match key.as_str() {
            "service" | "protocol" => return Some(value),
            "lip" => ip(&value).map(|v| self.local_ip = v),
            "rip" => ip(&value).map(|v| self.remote_ip = v),
            "real_lip" => ip(&value).map(|v| self.real_local_ip = v),
            "real_rip" => ip(&value).map(|v| self.real_remote_ip = v),
            "lport" => port(&value).map(|v| self.local_port = v),
            "rport" => port(&value).map(|v| self.remote_port = v),
            "real_lport" => port(&value).map(|v| self.real_local_port = v),
            "real_rport" => port(&value).map(|v| self.real_remote_port = v),
            "secured" => {
                self.secured = Some(if value == "tls" {
                    Secured::Tls
                } else {
                    Secured::Yes
                });
                Some(())
            }
            "cert_username" => {
                self.cert_username = Some(value.clone());
                Some(())
            }
            "session" => {
                self.session = Some(value.clone());
                Some(())
            }
            "local_name" => {
                self.local_name = Some(value.clone());
                Some(())
            }
            "client_id" => {
                self.client_id = Some(value.clone());
                Some(())
            }
            "forward_fields" => {
                self.forward_fields = value
                    .split('\t')
                    .filter(|s| !s.is_empty())
                    .map(Field::parse)
                    .collect();
                Some(())
            }
            "ssl_client_cert_fp" => {
                self.ssl_client_cert_fp = Some(value.clone());
                Some(())
            }
            "ssl_client_cert_pubkey_fp" => {
                self.ssl_client_cert_pubkey_fp = Some(value.clone());
                Some(())
            }
            "ssl_ja3_hash" => {
                self.ssl_ja3_hash = Some(value.clone());
                Some(())
            }
            _ => None,
        };
        if ok.is_none() {
            self.other.push(Field::new(key, value));
        }
        None
    }

    /// The wire line, LF included.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = LineWriter::new("AUTH");
        w.raw(&self.id.to_string()).arg(&self.mechanism);
        w.kv("service", &self.service);
        let ips = [
            ("lip", self.local_ip),
            ("rip", self.remote_ip),
            ("real_lip", self.real_local_ip),
            ("real_rip", self.real_remote_ip),
        ];
        for (k, v) in ips {
            if let Some(ip) = v {
                w.kv(k, &ip.to_string());
            }
        }
        let ports = [
            ("lport", self.local_port),
            ("rport", self.remote_port),
            ("real_lport", self.real_local_port),
            ("real_rport", self.real_remote_port),
        ];
        for (k, v) in ports {
            if let Some(p) = v {
                w.kv(k, &p.to_string());
            }
        }
        match self.secured {
            Some(Secured::Yes) => {
                w.arg("secured");
            }
            Some(Secured::Tls) => {
                w.kv("secured", "tls");
            }
            None => {}
        }
        if self.valid_client_cert {
            w.arg("valid-client-cert");
        }
        let texts = [
            ("cert_username", &self.cert_username),
            ("session", &self.session),
            ("local_name", &self.local_name),
            ("client_id", &self.client_id),
            ("ssl_client_cert_fp", &self.ssl_client_cert_fp),
            ("ssl_client_cert_pubkey_fp", &self.ssl_client_cert_pubkey_fp),
            ("ssl_ja3_hash", &self.ssl_ja3_hash),
        ];
        for (k, v) in texts {
            if let Some(v) = v {
                w.kv(k, v);
            }
        }
        let flags = [
            ("no-penalty", self.no_penalty),
            ("final-resp-ok", self.final_resp_ok),
            ("debug", self.debug),
        ];
        for (k, set) in flags {
            if set {
                w.arg(k);
            }
        }
        if !self.forward_fields.is_empty() {
            let inner: Vec<String> = self
                .forward_fields
                .iter()
                .map(|f| match &f.value {
                    Some(v) => format!("{}={}", escape(&f.key), escape(v)),
                    None => escape(&f.key).into_owned(),
                })
                .collect();
            w.kv("forward_fields", &inner.join("\t"));
        }
        for f in &self.other {
            f.write(&mut w);
        }
        if let Some(ir) = &self.initial_response {
            w.raw(&format!("resp={}", base64_encode(ir.expose())));
        }
        w.finish()
    }
}

/// Decodes the raw `resp=` text as Dovecot's server does: for a client minor version < 2 an
/// empty value means "no initial response" (`Ok(None)`, Exim's case); otherwise an empty value
/// or `=` is an empty initial response. `None` if the base64 is invalid.
pub fn decode_initial_response(raw: &str, client_minor: u32) -> Option<Option<Vec<u8>>> {
    if raw.is_empty() && client_minor < 2 {
        return Some(None);
    }
    if raw.is_empty() || raw == "=" {
        return Some(Some(Vec::new()));
    }
    base64_decode(raw).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<AuthRequest, ParseError> {
        let raw = RawLine::split(line.as_bytes())?;
        AuthRequest::parse(&RawLine {
            command: raw.command,
            args: raw.args,
        })
    }

    #[test]
    fn postfix_request() {
        let r = parse(
            "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\trip=198.51.100.7\tsecured\t\
             resp=AHVzZXIAcGFzcw==",
        )
        .unwrap();
        assert_eq!(r.id.get(), 1);
        assert_eq!(r.mechanism, "PLAIN");
        assert_eq!(r.service, "smtp");
        assert_eq!(r.local_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(r.secured, Some(Secured::Yes));
        assert_eq!(r.other, vec![Field::flag("nologin")]);
        assert_eq!(r.initial_response.unwrap().expose(), b"\0user\0pass");
    }

    #[test]
    fn protocol_synonym_and_empty_lip() {
        let r = parse("AUTH\t7\tLOGIN\tprotocol=imap\tlip=\trport=40000\tsecured=tls").unwrap();
        assert_eq!(r.service, "imap");
        assert_eq!(r.local_ip, None);
        assert_eq!(r.remote_port, Some(40000));
        assert_eq!(r.secured, Some(Secured::Tls));
        assert!(r.other.is_empty());
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse("AUTH\t1\tPLAIN\tresp=\tservice=smtp"),
            Err(ParseError::ParamsAfterResp(RequestId::new(1).unwrap()))
        );
        assert_eq!(
            parse("AUTH\t1\tPLAIN\tlip=1.2.3.4"),
            Err(ParseError::MissingService(RequestId::new(1).unwrap()))
        );
        assert!(matches!(
            parse("AUTH\t0\tPLAIN"),
            Err(ParseError::BadRequestId(_))
        ));
        assert!(matches!(parse("AUTH\t1"), Err(ParseError::Missing { .. })));
        assert_eq!(
            parse("AUTH\t3\tPLAIN\tservice=smtp\tresp=!!"),
            Err(ParseError::InvalidBase64(RequestId::new(3).unwrap()))
        );
    }

    #[test]
    fn bad_ip_kept_in_other() {
        let r = parse("AUTH\t1\tPLAIN\tservice=smtp\trip=not-an-ip\tlport=99999").unwrap();
        assert_eq!(r.remote_ip, None);
        assert_eq!(
            r.other,
            vec![Field::new("rip", "not-an-ip"), Field::new("lport", "99999")]
        );
    }

    #[test]
    fn forward_fields_round_trip() {
        let mut r = AuthRequest::new(RequestId::new(2).unwrap(), "PLAIN", "imap");
        r.forward_fields = vec![Field::new("a", "x\ty"), Field::new("b", "")];
        r.session = Some("s\tess".into());
        let line = r.encode();
        let text = String::from_utf8(line.clone()).unwrap();
        assert_eq!(text.matches('\t').count(), 5, "{text:?}");
        assert_eq!(parse(text.trim_end_matches('\n')).unwrap(), r);
    }

    #[test]
    fn initial_response_rules() {
        assert_eq!(decode_initial_response("", 0), Some(None));
        assert_eq!(decode_initial_response("", 1), Some(None));
        assert_eq!(decode_initial_response("", 2), Some(Some(vec![])));
        assert_eq!(decode_initial_response("=", 2), Some(Some(vec![])));
        assert_eq!(decode_initial_response("@@", 2), None);
    }
}
