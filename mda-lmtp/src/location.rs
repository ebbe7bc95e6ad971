//! Where a recipient's mail goes: mail location templates (`/var/mail/%d/%n/Maildir`,
//! `maildir:~/Maildir`) expanded with the canonical user name and home from the userdb, and
//! the Dovecot 2.4 quota fields (2.3's `quota_rule` is parsed by pochta-mailstore).
//!
//! User-derived values never become path separators: a `%u`/`%n`/`%d` containing `/`, a NUL,
//! or equal to `.` or `..` refuses the expansion (no path traversal from mail addresses).

use pochta_mailstore::QuotaLimit;
use std::path::PathBuf;

/// A parsed mail location template (the path part; `maildir:` and `:KEY=VALUE` options removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let s = s.trim();
        let path = match s.split_once(':') {
            Some((driver, rest)) if !driver.contains('/') && !driver.contains('%') => {
                if !driver.eq_ignore_ascii_case("maildir") {
                    return Err(format!(
                        "mail driver {driver:?} is not supported, only maildir"
                    ));
                }
                // Options (`:LAYOUT=…`, `:INDEX=…`) follow the path; they do not change where
                // INBOX is.
                rest.split(':').next().unwrap_or_default()
            }
            _ => s,
        };
        if path.is_empty() {
            return Err("empty mail location".into());
        }
        if !(path.starts_with('/') || path.starts_with('~') || path.starts_with("%h")) {
            return Err(format!(
                "mail location {path:?} must be absolute (or start with ~ or %h)"
            ));
        }
        // Check the escapes once, so a bad template is a config error, not a delivery error.
        expand(path, "u@d", Some("/h"))?;
        Ok(Template(path.to_owned()))
    }

    /// The Maildir root for `user` (canonical name from the userdb) with `home`.
    pub fn expand(&self, user: &str, home: Option<&str>) -> Result<PathBuf, String> {
        expand(&self.0, user, home).map(PathBuf::from)
    }
}

fn safe(v: &str, what: &str) -> Result<(), String> {
    if v.contains('/') || v.contains('\0') || v == "." || v == ".." {
        return Err(format!("{what} {v:?} cannot be used in a path"));
    }
    Ok(())
}

fn expand(t: &str, user: &str, home: Option<&str>) -> Result<String, String> {
    let (local, domain) = match user.rsplit_once('@') {
        Some((l, d)) => (l, d),
        None => (user, ""),
    };
    let need_home = || home.ok_or_else(|| "the mail location needs a home directory".to_owned());
    let mut out = String::new();
    let mut rest = t;
    if let Some(r) = rest.strip_prefix('~') {
        out.push_str(need_home()?.trim_end_matches('/'));
        rest = r;
    }
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let lower = chars.next_if_eq(&'L').is_some();
        let var = match chars.next() {
            Some('{') => {
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                name
            }
            Some(c) => c.to_string(),
            None => return Err("mail location ends with '%'".into()),
        };
        let value = match var.as_str() {
            "%" => "%".to_owned(),
            "u" | "user" => {
                safe(user, "user name")?;
                user.to_owned()
            }
            "n" | "username" => {
                safe(local, "user name")?;
                local.to_owned()
            }
            "d" | "domain" => {
                safe(domain, "domain")?;
                domain.to_owned()
            }
            "h" | "home" => need_home()?.trim_end_matches('/').to_owned(),
            other => return Err(format!("unknown variable %{other} in mail location")),
        };
        if lower {
            out.push_str(&value.to_lowercase());
        } else {
            out.push_str(&value);
        }
    }
    if !out.starts_with('/') {
        return Err(format!("mail location {out:?} is not absolute"));
    }
    Ok(out)
}

/// Dovecot size with suffix; `default_unit` applies to bare numbers.
fn size(v: &str, default_unit: u64) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim().to_ascii_uppercase().as_str() {
        "" => default_unit,
        "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Dovecot 2.4 `quota_storage_size` (bytes unless suffixed) and `quota_message_count`.
pub fn apply_quota_24(limit: &mut QuotaLimit, key: &str, value: &str) -> Result<(), String> {
    let bad = || format!("unreadable {key}={value:?}");
    match key {
        "quota_storage_size" => limit.bytes = Some(size(value, 1).ok_or_else(bad)?),
        "quota_message_count" => limit.messages = Some(value.trim().parse().map_err(|_| bad())?),
        _ => {}
    }
    if limit.bytes == Some(0) {
        limit.bytes = None;
    }
    if limit.messages == Some(0) {
        limit.messages = None;
    }
    Ok(())
}

/// Splits `alice+news` at the first delimiter character: (`alice`, `Some("news")`).
pub fn split_detail<'a>(local: &'a str, delimiters: &str) -> (&'a str, Option<&'a str>) {
    if delimiters.is_empty() {
        return (local, None);
    }
    match local.find(|c| delimiters.contains(c)) {
        Some(i) if i > 0 => {
            let c_len = local[i..].chars().next().map_or(1, char::len_utf8);
            (&local[..i], Some(&local[i + c_len..]))
        }
        _ => (local, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = Template::parse("/var/mail/%d/%n/Maildir").unwrap();
        assert_eq!(
            t.expand("alice@ex.test", None).unwrap(),
            PathBuf::from("/var/mail/ex.test/alice/Maildir")
        );
        let t = Template::parse("maildir:~/Maildir:LAYOUT=fs").unwrap();
        assert_eq!(
            t.expand("a@b", Some("/home/a/")).unwrap(),
            PathBuf::from("/home/a/Maildir")
        );
        assert!(t.expand("a@b", None).is_err());
        let t = Template::parse("/m/%Ld/%{username}").unwrap();
        assert_eq!(
            t.expand("Bob@EX.test", None).unwrap(),
            PathBuf::from("/m/ex.test/Bob")
        );
        assert!(Template::parse("mdbox:~/mdbox").is_err());
        assert!(Template::parse("relative/%n").is_err());
        assert!(Template::parse("/x/%q").is_err());
        let t = Template::parse("/var/mail/%d/%n").unwrap();
        assert!(t.expand("../x@d", None).is_err());
        assert!(t.expand("x@..", None).is_err());
        assert!(t.expand("a/b@d", None).is_err());
    }

    #[test]
    fn quota_24() {
        let mut q = QuotaLimit::default();
        apply_quota_24(&mut q, "quota_storage_size", "2M").unwrap();
        apply_quota_24(&mut q, "quota_message_count", "7").unwrap();
        assert_eq!((q.bytes, q.messages), (Some(2 << 20), Some(7)));
        apply_quota_24(&mut q, "quota_storage_size", "0").unwrap();
        assert_eq!(q.bytes, None);
        assert!(apply_quota_24(&mut q, "quota_storage_size", "lots").is_err());
    }

    #[test]
    fn details() {
        assert_eq!(split_detail("alice+news", "+"), ("alice", Some("news")));
        assert_eq!(split_detail("alice-x+y", "+-"), ("alice", Some("x+y")));
        assert_eq!(split_detail("+x", "+"), ("+x", None));
        assert_eq!(split_detail("alice", "+"), ("alice", None));
        assert_eq!(split_detail("a+b", ""), ("a+b", None));
    }
}
