//! The one rule for a user's mailbox from a userdb reply — where the Maildir is and how much it
//! may hold — shared by mda-lmtp (delivery), imapd (APPEND, COPY) and pop3d, so a reply is read
//! the same way by every daemon and as Dovecot reads it.
//!
//! Location, first that is set: the userdb's `mail` (Dovecot 2.3's per-user mail_location, what
//! Debian's Dovecot uses even when a reply also carries 2.4's field), then `mail_path` (Dovecot
//! 2.4, with `mail_driver` if given, which must be maildir), then the daemon's configured
//! default. Quota: every `quota_rule`, `quota_rule2`, … for the whole user (`*:`; rules for single
//! folders do not limit the account), then 2.4's `quota_storage_size` / `quota_message_count`.

use crate::location::Template;
use crate::QuotaLimit;
use std::path::PathBuf;

/// Where a user's mail goes and the limit it is held to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserMailbox {
    /// The Maildir root (INBOX).
    pub root: PathBuf,
    pub quota: QuotaLimit,
}

impl UserMailbox {
    /// `user`: the canonical name from the reply; `field`: the reply's field lookup (`home`,
    /// `mail`, …); `default`: the daemon's own mail location.
    pub fn from_userdb<'a>(
        default: &Template,
        user: &str,
        field: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<UserMailbox, String> {
        let home = field("home");
        let set = |k: &str| field(k).filter(|v| !v.trim().is_empty());
        let template = match (set("mail"), set("mail_path")) {
            (Some(mail), _) => Template::parse(mail)?,
            (None, Some(path)) => {
                if let Some(driver) =
                    set("mail_driver").filter(|d| !d.eq_ignore_ascii_case("maildir"))
                {
                    return Err(format!("mail_driver={driver} is not maildir"));
                }
                Template::parse(path)?
            }
            (None, None) => default.clone(),
        };
        let root = template.expand(user, home)?;
        let mut quota = QuotaLimit::default();
        let rules = std::iter::once("quota_rule".to_owned())
            .chain((2..).map(|n| format!("quota_rule{n}")))
            .map_while(|k| field(&k));
        for rule in rules.filter(|r| r.trim().starts_with("*:")) {
            quota.apply_rule(rule)?;
        }
        for key in ["quota_storage_size", "quota_message_count"] {
            if let Some(v) = field(key) {
                quota.apply_field(key, v)?;
            }
        }
        Ok(UserMailbox { root, quota })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }

    #[test]
    fn precedence_and_quota() {
        let default = Template::parse("/var/mail/%d/%n/Maildir").unwrap();
        let u = |pairs: &[(&str, &str)]| UserMailbox::from_userdb(&default, "a@d", reply(pairs));
        assert_eq!(u(&[]).unwrap().root, PathBuf::from("/var/mail/d/a/Maildir"));
        // Both fields: `mail` wins, as Dovecot 2.3 decides (mail_path is not its setting).
        let both = [
            ("home", "/h/a"),
            ("mail", "maildir:~/Mail23"),
            ("mail_path", "~/Mail24"),
        ];
        assert_eq!(u(&both).unwrap().root, PathBuf::from("/h/a/Mail23"));
        let only24 = [("home", "/h/a"), ("mail_path", "~/Mail24")];
        assert_eq!(u(&only24).unwrap().root, PathBuf::from("/h/a/Mail24"));
        assert!(u(&[("mail_path", "/m"), ("mail_driver", "sdbox")]).is_err());
        assert_eq!(
            u(&[("mail", " ")]).unwrap().root,
            PathBuf::from("/var/mail/d/a/Maildir")
        );
        let q = u(&[
            ("quota_rule", "*:storage=1M"),
            ("quota_rule2", "Trash:storage=+10M"),
            ("quota_message_count", "7"),
        ])
        .unwrap()
        .quota;
        assert_eq!((q.bytes, q.messages), (Some(1 << 20), Some(7)));
        let q = u(&[("quota_storage_size", "2MiB")]).unwrap().quota;
        assert_eq!(q.bytes, Some(2 << 20));
        assert!(u(&[("quota_storage_size", "lots")]).is_err());
    }
}
