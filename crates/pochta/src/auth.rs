//! `pochta auth test` and `pochta user`: `doveadm auth test` and `doveadm user` work-alikes
//! (same output, same exit codes) on top of pochta-auth-client, so they work against
//! pochta-authd and a real Dovecot alike.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use pochta_auth_client::{AuthClientError, Field, SaslClient, SaslRequest, SaslStep, UserdbClient};

/// EX_NOUSER: `doveadm user` for an unknown user.
const EX_NOUSER: u8 = 67;
/// EX_TEMPFAIL: the lookup could not be done.
const EX_TEMPFAIL: u8 = 75;
/// EX_NOPERM: `doveadm auth test` when authentication fails (for any reason).
const EX_NOPERM: u8 = 77;

/// `pochta auth test [-a SOCKET] USER [PASS]`.
#[derive(Args, Debug)]
pub(crate) struct AuthTestArgs {
    /// The auth-client socket.
    #[arg(
        short = 'a',
        value_name = "SOCKET",
        default_value = "/run/pochta/auth-client"
    )]
    socket: PathBuf,
    /// The user name to authenticate.
    user: String,
    /// The password (asked for when missing).
    password: Option<String>,
}

/// `pochta user [-a SOCKET] USER` (a mask with `*`/`?` lists users).
#[derive(Args, Debug)]
pub(crate) struct UserArgs {
    /// The auth-userdb socket.
    #[arg(
        short = 'a',
        value_name = "SOCKET",
        default_value = "/run/pochta/auth-userdb"
    )]
    socket: PathBuf,
    /// The user to look up, or a mask with `*` and `?`.
    user: String,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn field_text(f: &Field) -> String {
    match &f.value {
        Some(v) => format!("{}={v}", f.key),
        None => f.key.clone(),
    }
}

/// Runs `pochta auth test`.
pub(crate) fn test(args: AuthTestArgs) -> ExitCode {
    let password = match args.password {
        Some(p) => p.into_bytes(),
        None => match crate::pw::ask("Password: ") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("Error: cannot read the password: {e}");
                return ExitCode::from(EX_NOPERM);
            }
        },
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(EX_NOPERM);
        }
    };
    let client = SaslClient::new(&args.socket);
    let mut ir = Vec::with_capacity(args.user.len() + password.len() + 2);
    ir.push(0);
    ir.extend_from_slice(args.user.as_bytes());
    ir.push(0);
    ir.extend_from_slice(&password);
    let mut req = SaslRequest::new("PLAIN", "doveadm");
    // Like doveadm: the test is local and trusted, and must not feed the penalty table.
    req.secured = true;
    req.no_penalty = true;
    req.initial_response = Some(ir.into());
    let result = rt.block_on(async {
        let (mut exchange, mut step) = client.start(req).await?;
        // PLAIN with an initial response needs no challenge; answer an empty one anyway.
        for _ in 0..3 {
            if !matches!(step, SaslStep::Continue(_)) {
                break;
            }
            step = exchange.respond(b"").await?;
        }
        Ok::<_, AuthClientError>(step)
    });
    let mut out = std::io::stdout().lock();
    match result {
        Ok(SaslStep::Success(ok)) => {
            let _ = writeln!(out, "passdb: {} auth succeeded", args.user);
            let _ = writeln!(out, "extra fields:");
            let _ = writeln!(out, "  user={}", ok.user);
            for f in &ok.fields {
                let _ = writeln!(out, "  {}", field_text(f));
            }
            ExitCode::SUCCESS
        }
        Ok(SaslStep::Failure(f)) => {
            let _ = writeln!(out, "passdb: {} auth failed", args.user);
            let _ = writeln!(out, "extra fields:");
            if let Some(u) = &f.user {
                let _ = writeln!(out, "  user={u}");
            }
            if let Some(c) = &f.code {
                let _ = writeln!(out, "  code={}", c.as_str());
            }
            if let Some(r) = &f.reason {
                let _ = writeln!(out, "  reason={r}");
            }
            for field in &f.fields {
                let _ = writeln!(out, "  {}", field_text(field));
            }
            ExitCode::from(EX_NOPERM)
        }
        Ok(SaslStep::Continue(_)) => {
            eprintln!("Error: the auth server keeps asking for more data");
            ExitCode::from(EX_NOPERM)
        }
        Err(e) => {
            eprintln!("Error: auth-client: {e}");
            ExitCode::from(EX_NOPERM)
        }
    }
}

/// Runs `pochta user`.
pub(crate) fn user(args: UserArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    let client = UserdbClient::new(&args.socket);
    let mut out = std::io::stdout().lock();
    if args.user.contains(['*', '?']) {
        return match rt.block_on(client.list(Some(&args.user))) {
            Ok(names) => {
                for n in names {
                    let _ = writeln!(out, "{n}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("Error: user listing failed: {e}");
                ExitCode::from(EX_TEMPFAIL)
            }
        };
    }
    let _ = writeln!(out, "field\tvalue");
    match rt.block_on(client.lookup(&args.user, "doveadm", None, None)) {
        Ok(Some(reply)) => {
            if reply.user != args.user {
                let _ = writeln!(out, "user\t{}", reply.user);
            }
            for f in &reply.fields {
                let _ = writeln!(out, "{}\t{}", f.key, f.value.as_deref().unwrap_or(""));
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            let _ = writeln!(out);
            let _ = writeln!(out, "userdb lookup: user {} doesn't exist", args.user);
            ExitCode::from(EX_NOUSER)
        }
        Err(e) => {
            eprintln!("Error: userdb lookup({}): {e}", args.user);
            ExitCode::from(EX_TEMPFAIL)
        }
    }
}
