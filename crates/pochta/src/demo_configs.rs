//! The demo's config for each daemon, and the one-line example it prints.
//!
//! HOW A DAEMON ADDS ITSELF TO THE DEMO — two edits in this file, nothing else:
//!
//! 1. Add `fn <daemon>(env: &DemoEnv) -> String` below (`-` becomes `_`: `fn mda_lmtp`). It
//!    returns the daemon's whole TOML config:
//!    - start with `env.server_table()` (log level, drain time, and `user` when run as root);
//!    - add `env.tls_table()` when a listener uses TLS (the demo's self-signed certificate);
//!    - add `listener(service, address, tls)` for each listener, on the fixed ports of
//!      docs/architecture.md#the-demo (`ports::SMTP`, `ports::IMAP`, … below) or at
//!      `env.socket("lmtp")` for UNIX sockets (sockets live in DIR/run: `auth-client`,
//!      `auth-userdb`, `lmtp`);
//!    - then its own tables. Paths: mail in `env.mail_root()` laid out as
//!      `<mail_root>/pochta.test/<user>/Maildir` (`env.mail_location()` gives that as the
//!      template `<mail_root>/%d/%n/Maildir`, see docs/formats.md#mail-location-templates),
//!      the users file
//!      `env.users_file()` (DIR/etc/users, Dovecot passwd-file format, alice@pochta.test and
//!      bob@pochta.test), queue and other state in `env.spool().join("<daemon>")` (the demo
//!      creates it). Quote paths with `q()`, other strings with `quote()`.
//! 2. Add one arm to `config()`: `"mda-lmtp" => Some(mda_lmtp(env)),`.
//!
//! The demo then writes DIR/etc/<daemon>.toml, runs `pochta-<daemon> --check-config -c` on it,
//! starts `pochta-<daemon> -c <it>` with its own NOTIFY_SOCKET, waits for READY=1, prints the
//! `[[listener]]` tables as endpoints: nothing else to register. Started as root, the daemons
//! drop to `env.run_as` (nobody); DIR/run, DIR/mail, DIR/spool, DIR/tls and DIR/etc/users belong
//! to that user, so whatever a daemon writes must live below them.

use std::path::{Path, PathBuf};

/// Fixed demo endpoints (docs/architecture.md#the-demo), so docs and tests can rely on them.
#[allow(dead_code)] // used by the daemons' templates as they land
pub(crate) mod ports {
    pub(crate) const SMTP: &str = "127.0.0.1:2525";
    pub(crate) const SUBMISSION: &str = "127.0.0.1:5587";
    pub(crate) const SUBMISSIONS: &str = "127.0.0.1:4465";
    pub(crate) const POP3: &str = "127.0.0.1:1110";
    pub(crate) const POP3S: &str = "127.0.0.1:1995";
    pub(crate) const IMAP: &str = "127.0.0.1:1143";
    pub(crate) const IMAPS: &str = "127.0.0.1:1993";
}

/// The local domain of the demo users.
#[allow(dead_code)] // used by the daemons' templates as they land
pub(crate) const DOMAIN: &str = "pochta.test";

/// What the demo decided once, shared by every daemon's config.
pub(crate) struct DemoEnv {
    /// Absolute demo directory.
    pub(crate) dir: PathBuf,
    pub(crate) password: String,
    pub(crate) password_generated: bool,
    /// The user the daemons switch to after binding (`server.user`) when the demo runs as root.
    pub(crate) run_as: Option<String>,
}

#[allow(dead_code)] // used by the daemons' templates as they land
impl DemoEnv {
    /// The `[server]` table every demo config starts with.
    pub(crate) fn server_table(&self) -> String {
        let mut s = String::from("[server]\nlog_level = \"info\"\ndrain_timeout = \"5s\"\n");
        if let Some(u) = &self.run_as {
            s.push_str(&format!("user = {}\n", quote(u)));
        }
        s.push('\n');
        s
    }

    /// The `[tls]` table with the demo's self-signed certificate (DIR/tls).
    pub(crate) fn tls_table(&self) -> String {
        format!(
            "[tls]\ncert = {}\nkey = {}\n\n",
            q(&self.dir.join("tls/cert.pem")),
            q(&self.dir.join("tls/key.pem"))
        )
    }

    /// DIR/run/<name>: where the demo's UNIX sockets live (`auth-client`, `auth-userdb`, `lmtp`).
    pub(crate) fn socket(&self, name: &str) -> PathBuf {
        self.dir.join("run").join(name)
    }

    /// A `[[listener]]` on the UNIX socket DIR/run/<name>, mode 0660, owned by the daemons'
    /// user (when the demo runs as root the socket is bound before the privilege drop, so the
    /// owner must be set), so that only the demo's daemons connect.
    pub(crate) fn private_socket(&self, service: &str, name: &str) -> String {
        let table = listener(service, &self.socket(name).to_string_lossy(), "none");
        let mut s = format!("{}\nmode = \"0660\"\n", table.trim_end());
        if let Some(u) = &self.run_as {
            s.push_str(&format!("owner = {}\n", quote(u)));
        }
        s.push('\n');
        s
    }

    /// DIR/etc/users, Dovecot passwd-file format.
    pub(crate) fn users_file(&self) -> PathBuf {
        self.dir.join("etc/users")
    }

    /// DIR/etc/aliases, aliases(5) format (postmaster, abuse, root → alice).
    pub(crate) fn aliases_file(&self) -> PathBuf {
        self.dir.join("etc/aliases")
    }

    /// DIR/mail: Maildirs are `<this>/pochta.test/<user>/Maildir`.
    pub(crate) fn mail_root(&self) -> PathBuf {
        self.dir.join("mail")
    }

    /// `DIR/mail/%d/%n/Maildir`: the mail location template
    /// (docs/formats.md#mail-location-templates).
    pub(crate) fn mail_location(&self) -> String {
        format!("{}/%d/%n/Maildir", self.mail_root().display())
    }

    /// DIR/spool: daemons keep their queue and state in `<this>/<daemon>`.
    pub(crate) fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }
}

/// A TOML string literal (quoted and escaped) for any text.
pub(crate) fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML string literal for a path.
pub(crate) fn q(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// One `[[listener]]` table: `tls` is `none`, `starttls` or `implicit`; `address` is `IP:port`
/// or a socket path.
#[allow(dead_code)] // used by the daemons' templates as they land
pub(crate) fn listener(service: &str, address: &str, tls: &str) -> String {
    format!(
        "[[listener]]\nservice = {}\naddress = {}\ntls = {}\n\n",
        quote(service),
        quote(address),
        quote(tls)
    )
}

/// The config file for `daemon`, or `None` while the daemon has no demo config yet.
pub(crate) fn config(daemon: &str, env: &DemoEnv) -> Option<String> {
    match daemon {
        // One arm per daemon, e.g.: "mda-lmtp" => Some(mda_lmtp(env)),
        "mda-lmtp" => Some(mda_lmtp(env)),
        "authd" => Some(authd(env)),
        "pop3d" => Some(pop3d(env)),
        "mta" => Some(mta(env)),
        "imapd" => Some(imapd(env)),
        _ => None,
    }
}

/// pochta-mda-lmtp: LMTP on DIR/run/lmtp, users from authd's auth-userdb socket, Maildirs in
/// DIR/mail/%d/%n/Maildir.
fn mda_lmtp(env: &DemoEnv) -> String {
    let mut s = env.server_table();
    // The mta (running as the daemons' user) delivers here; nobody else may.
    s.push_str(&env.private_socket("lmtp", "lmtp"));
    s.push_str(&format!(
        "[lmtp]\nhostname = {}\n\n[userdb]\nsocket = {}\n\n[delivery]\nmail_location = {}\n",
        quote(&format!("mx.{DOMAIN}")),
        q(&env.socket("auth-userdb")),
        quote(&format!("{}/%d/%n/Maildir", env.mail_root().display()))
    ));
    s
}

/// pochta-mta: MX on 2525 (STARTTLS), submission on 5587 (STARTTLS + AUTH), submissions on
/// 4465, local submission on DIR/run/mta-submit. No trusted networks: only authenticated users
/// relay, even from loopback. pochta.test goes over LMTP to DIR/run/lmtp; queue in DIR/spool/mta.
fn mta(env: &DemoEnv) -> String {
    let mut s = env.server_table();
    s.push_str(&env.tls_table());
    s.push_str(&listener("smtp", ports::SMTP, "starttls"));
    s.push_str(&listener("submission", ports::SUBMISSION, "starttls"));
    s.push_str(&listener("submissions", ports::SUBMISSIONS, "implicit"));
    // sendmail's socket: every local user may submit (like Postfix's world-executable postdrop).
    let local = listener("local", &env.socket("mta-submit").to_string_lossy(), "none");
    s.push_str(local.trim_end());
    s.push_str("\nmode = \"0666\"\n\n");
    s.push_str(&format!(
        "[smtpd]\nhostname = {}\nlocal_domains = [{}]\ntrusted_networks = []\n\n\
         [aliases]\nalias_maps = [{}]\n\n\
         [auth]\nclient_socket = {}\nuserdb_socket = {}\n\n[queue]\ndir = {}\n\n\
         [delivery]\nlmtp = {}\n",
        quote(&format!("mx.{DOMAIN}")),
        quote(DOMAIN),
        q(&env.aliases_file()),
        q(&env.socket("auth-client")),
        q(&env.socket("auth-userdb")),
        q(&env.spool().join("mta")),
        quote(&format!("unix:{}", env.socket("lmtp").display()))
    ));
    s
}

fn pop3d(env: &DemoEnv) -> String {
    let mut s = env.server_table();
    s.push_str(&env.tls_table());
    s.push_str(&listener("pop3", ports::POP3, "starttls"));
    s.push_str(&listener("pop3s", ports::POP3S, "implicit"));
    s.push_str(&format!(
        "[auth]\nclient_socket = {}\nuserdb_socket = {}\n\n[mail]\nlocation = {}\n",
        q(&env.socket("auth-client")),
        q(&env.socket("auth-userdb")),
        quote(&env.mail_location())
    ));
    s
}

/// pochta-imapd: IMAP on 1143 (STARTTLS), IMAPS on 1993; logins through authd, Maildirs as
/// the userdb says (DIR/mail/%d/%n/Maildir). Plaintext logins only over TLS (no trusted
/// networks), as in a real setup.
fn imapd(env: &DemoEnv) -> String {
    let mut s = env.server_table();
    s.push_str(&env.tls_table());
    s.push_str(&listener("imap", ports::IMAP, "starttls"));
    s.push_str(&listener("imaps", ports::IMAPS, "implicit"));
    s.push_str(&format!(
        "[auth]\nclient_socket = {}\nuserdb_socket = {}\n\n[mail]\nlocation = {}\n",
        q(&env.socket("auth-client")),
        q(&env.socket("auth-userdb")),
        quote(&env.mail_location())
    ));
    s
}

/// pochta-authd: SASL on DIR/run/auth-client, user lookups on DIR/run/auth-userdb, users from
/// DIR/etc/users. Both sockets belong to the daemons' user, mode 0660, so every demo daemon
/// reaches them and the 0666 restriction does not apply. The users have no uid/gid/home of their
/// own: the daemons' user owns the Maildirs in DIR/mail/%d/%n/Maildir.
fn authd(env: &DemoEnv) -> String {
    let mut s = env.server_table();
    for service in ["auth-client", "auth-userdb"] {
        s.push_str(&env.private_socket(service, service));
    }
    let owner = match &env.run_as {
        Some(name) => nix::unistd::User::from_name(name).ok().flatten(),
        None => nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten(),
    };
    let (uid, gid) = match owner {
        Some(u) => (u.uid.as_raw(), u.gid.as_raw()),
        None => (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        ),
    };
    s.push_str(&format!(
        "[passdb]\npath = {}\n\n\
         [userdb]\nuid = \"{uid}\"\ngid = \"{gid}\"\nhome = {}\nmail = \"maildir:~/Maildir\"\n\n\
         [auth]\nmechanisms = [\"PLAIN\", \"LOGIN\"]\n",
        q(&env.users_file()),
        quote(&format!("{}/%d/%n", env.mail_root().display())),
    ));
    s
}

/// A one-line example using what is running.
pub(crate) fn example(running: &[&str], env: &DemoEnv) -> Option<String> {
    if running.contains(&"mta") {
        Some(format!(
            "swaks --server {} --from bob@{DOMAIN} --to alice@{DOMAIN}",
            ports::SMTP
        ))
    } else if running.contains(&"mda-lmtp") {
        Some(format!(
            "swaks --protocol LMTP --socket {} --from bob@{DOMAIN} --to alice@{DOMAIN}",
            env.socket("lmtp").display()
        ))
    } else if running.contains(&"authd") {
        Some(format!(
            "doveadm auth test -a {} alice@{DOMAIN} {}",
            env.socket("auth-client").display(),
            env.password
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(run_as: Option<&str>) -> DemoEnv {
        DemoEnv {
            dir: PathBuf::from("/tmp/demo \"x\""),
            password: "pw".into(),
            password_generated: false,
            run_as: run_as.map(str::to_owned),
        }
    }

    #[test]
    fn helpers_make_valid_toml() {
        let e = env(Some("nobody"));
        let text = format!(
            "{}{}{}{}",
            e.server_table(),
            e.tls_table(),
            listener("imap", ports::IMAP, "starttls"),
            listener("lmtp", &e.socket("lmtp").to_string_lossy(), "none"),
        );
        let doc: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(doc["server"]["user"].as_str(), Some("nobody"));
        assert_eq!(
            doc["tls"]["key"].as_str(),
            Some("/tmp/demo \"x\"/tls/key.pem")
        );
        let l = doc["listener"].as_array().unwrap();
        assert_eq!(l[0]["address"].as_str(), Some("127.0.0.1:1143"));
        assert_eq!(l[1]["address"].as_str(), Some("/tmp/demo \"x\"/run/lmtp"));
    }

    #[test]
    fn no_user_unless_root() {
        let doc: toml::Table = toml::from_str(&env(None).server_table()).unwrap();
        assert!(doc["server"].get("user").is_none());
    }
}
