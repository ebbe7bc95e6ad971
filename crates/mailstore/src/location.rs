//! Dovecot mail location templates: where a user's INBOX (the Maildir root) is.
//! `/var/mail/%d/%n/Maildir`, `maildir:~/Maildir:INDEX=…`, `%{username}`, `%Ld`, `%h` are
//! expanded with the canonical user name and home from the userdb. Which template applies to a
//! user (the userdb's `mail`, 2.4's `mail_path`, or the configured default) is
//! [`crate::user::UserMailbox`]'s rule. Shared by every daemon that opens a user's Maildir
//! (mda-lmtp, pop3d, imapd).
//!
//! User-derived values never become path separators: a `%u`/`%n`/`%d` containing `/`, a NUL,
//! or equal to `.` or `..` refuses the expansion (no path traversal from user names or mail
//! addresses).

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
                let mut parts = rest.split(':');
                let path = parts.next().unwrap_or_default();
                for opt in parts {
                    check_option(opt)?;
                }
                path
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

/// Dovecot's `:KEY=VALUE` options after the path. Those about Dovecot's own index files are
/// accepted (pochta keeps none there); those that change where or how mail, folders or the
/// uidlist are stored are refused, because reading such a Maildir as the default layout would
/// show other folders and new UIDs (clients would download everything again).
fn check_option(opt: &str) -> Result<(), String> {
    let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
    match key.to_ascii_uppercase().as_str() {
        "INDEX" | "INDEXPVT" | "VOLATILEDIR" | "ITERINDEX" | "NO-NOSELECT" | "NOSELECT" => Ok(()),
        "LAYOUT" if value.eq_ignore_ascii_case("maildir++") => Ok(()),
        "LAYOUT" | "CONTROL" | "INBOX" | "UTF-8" | "ALT" | "DIRNAME" | "FULLDIRNAME"
        | "SUBSCRIPTIONS" | "MAILBOXDIR" => Err(format!(
            "mail location option {opt:?} is not supported: pochta reads Maildir++ with the \
             uidlist and subscriptions in the Maildir and modified UTF-7 folder names"
        )),
        _ => Err(format!("unknown mail location option {opt:?}")),
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
        let t = Template::parse("maildir:~/Maildir:INDEX=/var/idx/%u:LAYOUT=Maildir++").unwrap();
        assert_eq!(
            t.expand("a@b", Some("/home/a/")).unwrap(),
            PathBuf::from("/home/a/Maildir")
        );
        assert!(t.expand("a@b", None).is_err());
        for refused in [
            "maildir:~/Maildir:LAYOUT=fs",
            "maildir:~/Maildir:LAYOUT=index",
            "maildir:~/Maildir:UTF-8",
            "maildir:~/Maildir:CONTROL=~/control",
            "maildir:~/Maildir:INBOX=/var/mail/%u",
            "maildir:~/Maildir:NOSUCH=1",
        ] {
            assert!(Template::parse(refused).is_err(), "{refused}");
        }
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
}
