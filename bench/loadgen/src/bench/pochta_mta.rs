//! The pochta side of the rows that need pochta-mta (`smtp`, `e2e`): pochta-authd for the
//! recipient checks (userdb) and pochta-mta with a private spool, an SMTP listener on loopback
//! and local delivery over LMTP to the row's endpoint.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ctx::{mkdir, write, Ctx};
use crate::peers::Daemon;

/// pochta-authd serving `users` (passwd-file) on DIR/auth-client and DIR/auth-userdb.
pub(crate) struct Authd {
    pub(crate) daemon: Daemon,
    pub(crate) client: PathBuf,
    pub(crate) userdb: PathBuf,
}

impl Authd {
    pub(crate) fn start(ctx: &Ctx, dir: &Path, users: &Path) -> Result<Authd, String> {
        let (client, userdb) = (dir.join("auth-client"), dir.join("auth-userdb"));
        let cfg = dir.join("authd.toml");
        write(
            &cfg,
            &format!(
                "[server]\nuser = \"{}\"\n\n\
                 [[listener]]\nservice = \"auth-client\"\naddress = \"{}\"\nmode = \"0660\"\n\n\
                 [[listener]]\nservice = \"auth-userdb\"\naddress = \"{}\"\nmode = \"0666\"\n\n\
                 [passdb]\npath = \"{}\"\n",
                ctx.user,
                client.display(),
                userdb.display(),
                users.display()
            ),
        )?;
        let daemon = Daemon::start(&ctx.bin("authd"), &cfg, dir, std::slice::from_ref(&userdb))?;
        Ok(Authd {
            daemon,
            client,
            userdb,
        })
    }
}

/// A running pochta-mta.
pub(crate) struct Mta {
    pub(crate) daemon: Daemon,
    spool: PathBuf,
}

/// Reads a running mta's spool and log (while its [`Daemon`] is borrowed elsewhere).
#[derive(Clone)]
pub(crate) struct MtaProbe {
    spool: PathBuf,
    log: PathBuf,
}

impl Mta {
    /// pochta-mta listening on `listen` (no TLS), delivering `local_domain` over LMTP to `lmtp`
    /// (`unix:/path` or `inet:host:port`), recipients checked on `authd`'s userdb socket.
    /// Defaults otherwise (the spool is fsynced before every 250: file, then directory).
    pub(crate) fn start(
        ctx: &Ctx,
        dir: &Path,
        listen: &str,
        local_domain: &str,
        lmtp: &str,
        authd: &Authd,
    ) -> Result<Mta, String> {
        let spool = dir.join("spool");
        mkdir(&spool)?;
        ctx.give(&spool)?;
        let submit = dir.join("mta-submit");
        let cfg = dir.join("mta.toml");
        write(
            &cfg,
            &format!(
                "[server]\nuser = \"{user}\"\n\n\
                 [[listener]]\nservice = \"smtp\"\naddress = \"{listen}\"\ntls = \"none\"\n\n\
                 [[listener]]\nservice = \"local\"\naddress = \"{submit}\"\nmode = \"0660\"\n\
                 owner = \"{user}\"\n\n\
                 [smtpd]\nhostname = \"mx.bench.test\"\nlocal_domains = [\"{local_domain}\"]\n\n\
                 [auth]\nclient_socket = \"{client}\"\nuserdb_socket = \"{userdb}\"\n\n\
                 [queue]\ndir = \"{spool}\"\n\n\
                 [delivery]\nlmtp = \"{lmtp}\"\nhelo_name = \"mx.bench.test\"\n",
                user = ctx.user,
                submit = submit.display(),
                client = authd.client.display(),
                userdb = authd.userdb.display(),
                spool = spool.display(),
            ),
        )?;
        let daemon = Daemon::start(&ctx.bin("mta"), &cfg, dir, &[submit])?;
        Ok(Mta { daemon, spool })
    }

    pub(crate) fn probe(&self) -> MtaProbe {
        MtaProbe {
            spool: self.spool.clone(),
            log: self.daemon.log.clone(),
        }
    }
}

impl MtaProbe {
    /// Messages still in the spool (active, deferred or held).
    pub(crate) fn queued(&self) -> usize {
        ["queue", "hold"]
            .iter()
            .map(|d| {
                std::fs::read_dir(self.spool.join(d))
                    .map(|rd| rd.flatten().count())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Waits until the spool is empty (at most `limit`); false if it is not.
    pub(crate) fn drain(&self, limit: Duration) -> bool {
        let t0 = Instant::now();
        while self.queued() > 0 {
            if t0.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Recipients the mta logged as delivered (`status=sent`).
    pub(crate) fn sent(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("status=sent"))
            .count()
    }
}
