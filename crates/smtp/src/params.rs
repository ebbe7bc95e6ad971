//! ESMTP parameters of MAIL and RCPT: SIZE (RFC 1870), BODY (RFC 6152 / 3030), SMTPUTF8
//! (RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461, values in xtext) and AUTH= (RFC 4954).

use std::fmt;

/// Why a parameter was refused; maps to 501 (syntax) or 555 (unknown/unsupported).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// Not `keyword[=value]`.
    Syntax(String),
    /// A keyword we do not implement or did not advertise.
    Unsupported(String),
    /// A known keyword with a bad value.
    BadValue(String),
    Duplicate(String),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Syntax(p) => write!(f, "bad parameter syntax: {p}"),
            ParamError::Unsupported(p) => write!(f, "Unsupported option: {p}"),
            ParamError::BadValue(p) => write!(f, "Bad parameter value: {p}"),
            ParamError::Duplicate(p) => write!(f, "Duplicate parameter: {p}"),
        }
    }
}

/// BODY= (RFC 6152, RFC 3030).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// RET= (RFC 3461 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// NOTIFY= (RFC 3461 §4.1): NEVER, or any of SUCCESS/FAILURE/DELAY.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// ORCPT= (RFC 3461 §4.2): `addr-type;xtext`, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orcpt {
    pub addr_type: String,
    pub address: String,
}

/// MAIL FROM parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// ENVID, xtext-decoded.
    pub envid: Option<String>,
    /// AUTH=, xtext-decoded; `Some("<>")` means "unknown submitter".
    pub auth: Option<String>,
}

/// RCPT TO parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    pub orcpt: Option<Orcpt>,
}

/// Splits `KEY[=VALUE] KEY[=VALUE]…`; keywords are returned upper-cased.
fn split(params: &str) -> Result<Vec<(String, Option<&str>)>, ParamError> {
    let mut out: Vec<(String, Option<&str>)> = Vec::new();
    for tok in params.split(' ').filter(|t| !t.is_empty()) {
        let (k, v) = match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tok, None),
        };
        let key_ok = k.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
        // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531).
        let val_ok = v.is_none_or(|v| {
            !v.is_empty()
                && v.bytes()
                    .all(|c| (33..=126).contains(&c) && c != b'=' || c >= 0x80)
        });
        if !key_ok || !val_ok {
            return Err(ParamError::Syntax(tok.to_owned()));
        }
        let key = k.to_ascii_uppercase();
        if out.iter().any(|(seen, _)| *seen == key) {
            return Err(ParamError::Duplicate(key));
        }
        out.push((key, v));
    }
    Ok(out)
}

/// Decodes RFC 3461 xtext (`+XX` hex escapes).
pub fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = s.get(i + 1..i + 3)?;
                if !hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c @ 33..=126 if c != b'=' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes RFC 3461 xtext.
pub fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if (33..=126).contains(&c) && c != b'+' && c != b'=' {
            out.push(c as char);
        } else {
            out.push_str(&format!("+{c:02X}"));
        }
    }
    out
}

impl MailParams {
    pub(crate) fn parse(params: &str) -> Result<MailParams, ParamError> {
        let mut p = MailParams::default();
        for (key, val) in split(params)? {
            let bad = || ParamError::BadValue(key.clone());
            match (key.as_str(), val) {
                ("SIZE", Some(v)) => {
                    if v.len() > 20 || !v.bytes().all(|c| c.is_ascii_digit()) {
                        return Err(bad());
                    }
                    // A value too large for u64 is still "too big": clamp instead of failing.
                    p.size = Some(v.parse().unwrap_or(u64::MAX));
                }
                ("BODY", Some(v)) => {
                    p.body = Some(match v.to_ascii_uppercase().as_str() {
                        "7BIT" => Body::SevenBit,
                        "8BITMIME" => Body::EightBitMime,
                        "BINARYMIME" => Body::BinaryMime,
                        _ => return Err(bad()),
                    })
                }
                ("SMTPUTF8", None) => p.smtputf8 = true,
                ("RET", Some(v)) => {
                    p.ret = Some(match v.to_ascii_uppercase().as_str() {
                        "FULL" => Ret::Full,
                        "HDRS" => Ret::Hdrs,
                        _ => return Err(bad()),
                    })
                }
                ("ENVID", Some(v)) => {
                    let d = xtext_decode(v).filter(|d| d.len() <= 100).ok_or_else(bad)?;
                    p.envid = Some(d);
                }
                ("AUTH", Some(v)) => p.auth = Some(xtext_decode(v).ok_or_else(bad)?),
                ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH", None) | ("SMTPUTF8", Some(_)) => {
                    return Err(bad())
                }
                _ => return Err(ParamError::Unsupported(key)),
            }
        }
        Ok(p)
    }
}

impl RcptParams {
    pub(crate) fn parse(params: &str) -> Result<RcptParams, ParamError> {
        let mut p = RcptParams::default();
        for (key, val) in split(params)? {
            let bad = || ParamError::BadValue(key.clone());
            match (key.as_str(), val) {
                ("NOTIFY", Some(v)) => {
                    let mut n = Notify::default();
                    for item in v.split(',') {
                        match item.to_ascii_uppercase().as_str() {
                            "NEVER" => n.never = true,
                            "SUCCESS" => n.success = true,
                            "FAILURE" => n.failure = true,
                            "DELAY" => n.delay = true,
                            _ => return Err(bad()),
                        }
                    }
                    if n.never && (n.success || n.failure || n.delay) {
                        return Err(bad());
                    }
                    p.notify = Some(n);
                }
                ("ORCPT", Some(v)) => {
                    let (t, a) = v.split_once(';').ok_or_else(bad)?;
                    let t_ok =
                        !t.is_empty() && t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
                    let address = xtext_decode(a).filter(|a| !a.is_empty()).ok_or_else(bad)?;
                    if !t_ok {
                        return Err(bad());
                    }
                    p.orcpt = Some(Orcpt {
                        addr_type: t.to_owned(),
                        address,
                    });
                }
                ("NOTIFY" | "ORCPT", None) => return Err(bad()),
                _ => return Err(ParamError::Unsupported(key)),
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_params() {
        let p = MailParams::parse("SIZE=1000 body=8bitmime SMTPUTF8 RET=HDRS ENVID=a+2Bb AUTH=<>")
            .unwrap();
        assert_eq!(p.size, Some(1000));
        assert_eq!(p.body, Some(Body::EightBitMime));
        assert!(p.smtputf8);
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("a+b"));
        assert_eq!(p.auth.as_deref(), Some("<>"));
        assert_eq!(
            MailParams::parse("X-FOO=1").unwrap_err(),
            ParamError::Unsupported("X-FOO".into())
        );
        assert!(matches!(
            MailParams::parse("SIZE=x"),
            Err(ParamError::BadValue(_))
        ));
        assert!(matches!(
            MailParams::parse("SIZE=1 SIZE=2"),
            Err(ParamError::Duplicate(_))
        ));
        assert!(matches!(
            MailParams::parse("=x"),
            Err(ParamError::Syntax(_))
        ));
        assert_eq!(
            MailParams::parse("SIZE=99999999999999999999").unwrap().size,
            Some(u64::MAX)
        );
    }

    #[test]
    fn rcpt_params() {
        let p = RcptParams::parse("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b").unwrap();
        assert_eq!(
            p.notify.map(|n| (n.success, n.failure, n.delay)),
            Some((true, true, false))
        );
        assert_eq!(p.orcpt.unwrap().address, "a@b");
        assert!(RcptParams::parse("NOTIFY=NEVER,DELAY").is_err());
        assert!(RcptParams::parse("ORCPT=rfc822").is_err());
    }

    #[test]
    fn xtext_roundtrip() {
        for s in ["a+b=c d", "plain", "ü"] {
            assert_eq!(xtext_decode(&xtext_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(xtext_decode("+4"), None);
        assert_eq!(xtext_decode("+4g"), None);
    }
}
