//! MTA-STS (RFC 8461) text formats: the `_mta-sts` TXT record (§3.1) and the policy file
//! (§3.2), parsed without I/O; and MX pattern matching (§4.1). Both inputs come from the
//! network and are untrusted: sizes are capped, unknown fields ignored, anything malformed is
//! "no policy" (the caller then delivers as without MTA-STS, as §5 says for a policy that
//! cannot be fetched for the first time).

/// Largest policy body read (RFC 8461 §3.3 suggests a limit; 64 KiB like other senders).
pub const MAX_POLICY: usize = 64 * 1024;
/// Longest allowed max_age (§3.2: one year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// Policy mode (§5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StsMode {
    /// MX must match and TLS must verify, else no delivery.
    Enforce,
    /// Failures are reported (logged) but delivery goes on.
    Testing,
    /// No MTA-STS for this domain.
    None,
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsPolicy {
    pub mode: StsMode,
    /// `mail.example.com` or `*.example.net` (lower case).
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u64,
}

/// The `id` of a `v=STSv1; id=…;` TXT record, or None when it is not a valid STS record.
pub fn parse_txt(txt: &str) -> Option<String> {
    let mut fields = txt.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next()? != "v=STSv1" {
        return None;
    }
    let mut id = None;
    for f in fields {
        let (k, v) = f.split_once('=')?;
        if k.trim() == "id" {
            let v = v.trim();
            let ok = !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_alphanumeric());
            if !ok {
                return None;
            }
            id = Some(v.to_owned());
        }
    }
    id
}

/// Parses a policy body (`key: value` lines, LF or CRLF).
pub fn parse_policy(body: &[u8]) -> Result<StsPolicy, String> {
    if body.len() > MAX_POLICY {
        return Err("policy too large".into());
    }
    let text = std::str::from_utf8(body).map_err(|_| "policy is not UTF-8".to_owned())?;
    let mut version = false;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!("policy line without ':': {:?}", trunc(line)));
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "version" => {
                if v != "STSv1" {
                    return Err(format!("unknown policy version {:?}", trunc(v)));
                }
                version = true;
            }
            "mode" => {
                mode = Some(match v {
                    "enforce" => StsMode::Enforce,
                    "testing" => StsMode::Testing,
                    "none" => StsMode::None,
                    _ => return Err(format!("unknown policy mode {:?}", trunc(v))),
                })
            }
            "max_age" => {
                let n: u64 = v
                    .parse()
                    .ok()
                    .filter(|_| v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("bad max_age {:?}", trunc(v)))?;
                max_age = Some(n.min(MAX_AGE_LIMIT));
            }
            "mx" => {
                let p = v.to_ascii_lowercase();
                let host = p.strip_prefix("*.").unwrap_or(&p);
                if host.is_empty() || host.len() > 253 || host.contains('*') {
                    return Err(format!("bad mx pattern {:?}", trunc(v)));
                }
                if mx.len() < 100 {
                    mx.push(p);
                }
            }
            // §3.2: unknown fields are ignored.
            _ => {}
        }
    }
    if !version {
        return Err("policy without version: STSv1".into());
    }
    let mode = mode.ok_or("policy without mode")?;
    let max_age = max_age.ok_or("policy without max_age")?;
    if mode != StsMode::None && mx.is_empty() {
        return Err("policy without mx".into());
    }
    Ok(StsPolicy { mode, mx, max_age })
}

/// The body of an HTTP/1.x response to the policy GET (§3.3): status 200 only (no redirects),
/// Content-Type text/plain, body by Content-Length, chunked encoding, or up to the end.
pub fn parse_http_response(resp: &[u8]) -> Result<Vec<u8>, String> {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("HTTP response without end of header")?;
    let head = std::str::from_utf8(&resp[..end]).map_err(|_| "HTTP header is not UTF-8")?;
    let body = &resp[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut words = status.split_ascii_whitespace();
    let (Some(version), Some(code)) = (words.next(), words.next()) else {
        return Err(format!("bad HTTP status line {:?}", trunc(status)));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad HTTP status line {:?}", trunc(status)));
    }
    if code != "200" {
        return Err(format!("HTTP status {}", trunc(code)));
    }
    let mut length = None;
    let mut chunked = false;
    let mut text_plain = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        match k.as_str() {
            "content-length" => {
                length = Some(v.parse::<usize>().map_err(|_| "bad Content-Length")?);
            }
            "transfer-encoding" => chunked = v.split(',').any(|t| t.trim() == "chunked"),
            "content-type" => text_plain = v.split(';').next().map(str::trim) == Some("text/plain"),
            _ => {}
        }
    }
    if !text_plain {
        return Err("policy Content-Type is not text/plain".into());
    }
    if chunked {
        return dechunk(body);
    }
    match length {
        Some(n) if n > MAX_POLICY => Err("policy too large".into()),
        Some(n) => body
            .get(..n)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "HTTP body shorter than Content-Length".into()),
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&b[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if out.len() + size > MAX_POLICY {
            return Err("policy too large".into());
        }
        let chunk = b.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        b = b.get(size + 2..).ok_or("truncated chunk")?;
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(40).collect()
}

impl StsPolicy {
    /// Whether an MX host name (lower case, no trailing dot) matches a pattern (§4.1: a
    /// wildcard stands for exactly one leftmost label).
    pub fn mx_matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
            None => *p == host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_records() {
        assert_eq!(
            parse_txt("v=STSv1; id=20160831085700Z;").as_deref(),
            Some("20160831085700Z")
        );
        assert_eq!(parse_txt("v=STSv1;id=abc").as_deref(), Some("abc"));
        assert_eq!(parse_txt("id=abc; v=STSv1"), None);
        assert_eq!(parse_txt("v=STSv1; id=a-b"), None);
        assert_eq!(parse_txt("v=STSv1;"), None);
        assert_eq!(parse_txt("v=spf1 -all"), None);
    }

    #[test]
    fn rfc_example_policy() {
        let p = parse_policy(
            b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n\
              mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, StsMode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert!(p.mx_matches("mail.example.com"));
        assert!(p.mx_matches("MX1.example.net."));
        assert!(!p.mx_matches("a.b.example.net"));
        assert!(!p.mx_matches("example.net"));
        assert!(!p.mx_matches("evil.example.com"));
    }

    #[test]
    fn bad_policies() {
        assert!(parse_policy(b"mode: enforce\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse_policy(b"version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse_policy(b"version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
        assert!(parse_policy(b"version: STSv1\nmode: enforce\nmx: a\nmax_age: -1\n").is_err());
        assert!(parse_policy(b"version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n").is_err());
        assert!(parse_policy(&vec![b'a'; MAX_POLICY + 1]).is_err());
        let p = parse_policy(b"version: STSv1\nmode: none\nmax_age: 9999999999\nx: y\n").unwrap();
        assert_eq!((p.mode, p.max_age), (StsMode::None, MAX_AGE_LIMIT));
    }

    #[test]
    fn http_responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
                   Content-Length: 5\r\n\r\nhello world";
        assert_eq!(parse_http_response(ok).unwrap(), b"hello");
        let ch = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                   Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_http_response(ch).unwrap(), b"abcde");
        let eof = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
        assert_eq!(parse_http_response(eof).unwrap(), b"all of it");
        assert!(parse_http_response(b"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n").is_err());
        assert!(
            parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n").is_err()
        );
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(
            lines in proptest::collection::vec(
                proptest::sample::select(vec![
                    "version: STSv1", "mode: enforce", "mode: testing", "mx: *.a.test",
                    "mx: b.test", "max_age: 86400", "max_age: x", ":", "\r", "x: y", "é",
                ]),
                0..12,
            ),
            host in "[a-z*.]{0,12}",
        ) {
            let body = lines.join("\n");
            if let Ok(p) = parse_policy(body.as_bytes()) {
                let _ = p.mx_matches(&host);
                proptest::prop_assert!(p.max_age <= MAX_AGE_LIMIT);
            }
            let _ = parse_txt(&body);
        }
    }
}
