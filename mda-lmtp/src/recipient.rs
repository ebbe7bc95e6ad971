//! RCPT TO → a delivery target: strip the address extension, look the user up in the userdb,
//! work out the Maildir, the detail folder and the quota. The answer for an unknown user or a
//! failed lookup is the reply Dovecot LMTP gives.

use crate::location::split_detail;
use crate::Settings;
use pochta_auth_client::UserdbReply;
use pochta_mailstore::{QuotaLimit, UserMailbox};
use pochta_smtp::{ForwardPath, Reply};
use std::path::PathBuf;

/// Where one accepted recipient's copy goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// The RCPT TO address as sent (replies, Delivered-To).
    pub rcpt: String,
    /// The canonical user name from the userdb (logs).
    pub user: String,
    pub maildir: PathBuf,
    /// The address extension, when deliveries into a folder of that name are enabled.
    pub folder: Option<String>,
    pub quota: QuotaLimit,
    /// uid/gid to write as (per_user_ids); `None` = the daemon's own.
    pub ids: Option<(u32, u32)>,
}

/// `451 4.3.0 <rcpt> Temporary internal error`.
pub fn temp_fail(rcpt: &str) -> Reply {
    Reply::with_status(451, (4, 3, 0), format!("<{rcpt}> Temporary internal error"))
}

/// The name to look up: `alice+news@example.org` → `alice@example.org`; `<Postmaster>` →
/// `postmaster`. Returns it with the detail.
pub fn lookup_name(to: &ForwardPath, delimiters: &str) -> (String, Option<String>) {
    match to.mailbox() {
        None => ("postmaster".to_owned(), None),
        Some(m) => {
            let (user, detail) = split_detail(m.local(), delimiters);
            (format!("{user}@{}", m.domain()), detail.map(str::to_owned))
        }
    }
}

/// Resolves a recipient; `Err` is the reply for RCPT.
pub async fn resolve(settings: &Settings, to: &ForwardPath) -> Result<Target, Reply> {
    let rcpt = to.to_string();
    let (name, detail) = lookup_name(to, &settings.delivery.recipient_delimiter);
    let found = match settings
        .userdb
        .lookup(&name, &settings.userdb_service, None, None)
        .await
    {
        Ok(Some(u)) => u,
        Ok(None) => {
            tracing::info!(rcpt = %rcpt, user = %name, "unknown user");
            return Err(Reply::with_status(
                550,
                (5, 1, 1),
                format!("<{rcpt}> User doesn't exist: {name}"),
            ));
        }
        Err(e) => {
            tracing::warn!(rcpt = %rcpt, user = %name, error = %e, "userdb lookup failed");
            return Err(temp_fail(&rcpt));
        }
    };
    target(settings, rcpt, detail, &found).map_err(|(rcpt, e)| {
        tracing::error!(rcpt = %rcpt, user = %found.user, error = %e, "cannot deliver to user");
        temp_fail(&rcpt)
    })
}

fn target(
    settings: &Settings,
    rcpt: String,
    detail: Option<String>,
    u: &UserdbReply,
) -> Result<Target, (String, String)> {
    let fail = |rcpt: &String, e: String| (rcpt.clone(), e);
    // The one rule every daemon reads a userdb reply with (pochta-mailstore's user module).
    let mb = UserMailbox::from_userdb(&settings.mail_location, &u.user, |k| u.field(k))
        .map_err(|e| fail(&rcpt, e))?;
    let (maildir, quota) = (mb.root, mb.quota);
    let ids = if settings.delivery.per_user_ids {
        let min = settings.delivery.first_valid_uid;
        match (u.uid(), u.gid()) {
            (Some(uid), Some(gid)) if uid >= min && gid >= min => Some((uid, gid)),
            (Some(uid), Some(gid)) => {
                return Err(fail(
                    &rcpt,
                    format!("uid {uid} / gid {gid} below first_valid_uid {min}"),
                ))
            }
            _ => return Err(fail(&rcpt, "userdb gave no numeric uid and gid".into())),
        }
    } else {
        None
    };
    let folder = detail.filter(|d| {
        settings.delivery.save_to_detail_folder
            && !d.is_empty()
            && !d.contains(['/', '\0'])
            && !d.starts_with('.')
    });
    Ok(Target {
        rcpt,
        user: u.user.clone(),
        maildir,
        folder,
        quota,
        ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pochta_smtp::Mailbox;

    #[test]
    fn lookup_names() {
        let to = ForwardPath::Mailbox(Mailbox::parse("alice+news@ex.test", false).unwrap());
        assert_eq!(
            lookup_name(&to, "+"),
            ("alice@ex.test".into(), Some("news".into()))
        );
        assert_eq!(lookup_name(&to, ""), ("alice+news@ex.test".into(), None));
        assert_eq!(
            lookup_name(&ForwardPath::Postmaster, "+"),
            ("postmaster".into(), None)
        );
    }
}
