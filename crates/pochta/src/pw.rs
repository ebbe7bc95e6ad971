//! `pochta pw`: Dovecot's `doveadm pw` — generate a password hash, verify one (`-t`), list the
//! schemes (`-l`). Same options, same output, so scripts written for doveadm keep working. The
//! hashing itself is pochta-password's; this file only does the terminal and the exit codes.

use clap::Args;
use nix::sys::termios::{self, LocalFlags, SetArg};
use pochta_password::{generate_named, Scheme, StoredPassword};
use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal, Write};
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

/// Exit status of a failed `-t`/`-V` check or any other fatal error. The issue (and Dovecot's
/// FATAL_DEFAULT) say 89; note Dovecot 2.3.19's doveadm exits 75 here.
const EXIT_FATAL: u8 = 89;

/// How often the two typed passwords may differ before giving up (doveadm: 3 tries).
const TRIES: usize = 3;

/// Arguments of `pochta pw`, letter for letter `doveadm pw`'s.
#[derive(Args)]
pub(crate) struct PwArgs {
    /// List the known password schemes.
    #[arg(short = 'l')]
    list: bool,
    /// The password (default: ask twice on the terminal, or read lines from stdin).
    #[arg(short = 'p', value_name = "PASSWORD")]
    password: Option<OsString>,
    /// Cost: rounds for SHA*-CRYPT and PBKDF2, bcrypt cost, Argon2 passes, SCRAM iterations.
    #[arg(short = 'r', value_name = "ROUNDS")]
    rounds: Option<u32>,
    /// Scheme to generate (case-insensitive; `.b64`/`.hex` suffix re-encodes).
    #[arg(short = 's', value_name = "SCHEME", default_value = "CRYPT")]
    scheme: String,
    /// Verify the password against this `{SCHEME}hash` instead of generating one.
    #[arg(short = 't', value_name = "HASH")]
    test: Option<String>,
    /// User name (DIGEST-MD5 needs `user@realm`).
    #[arg(short = 'u', value_name = "USER")]
    user: Option<String>,
    /// Verify the generated hash before printing it.
    #[arg(short = 'V')]
    verify: bool,
}

pub(crate) fn run(args: PwArgs) -> ExitCode {
    match run_inner(args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("Fatal: {msg}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}

fn run_inner(args: PwArgs) -> Result<String, String> {
    if args.list {
        // doveadm prints every name followed by a space.
        let mut line = String::new();
        for name in Scheme::names() {
            line.push_str(name);
            line.push(' ');
        }
        return Ok(line);
    }
    let user = args.user.unwrap_or_default();
    if let Some(hash) = args.test {
        let password = match args.password {
            Some(p) => p.into_vec(),
            None => ask("Enter password to verify: ").map_err(|e| e.to_string())?,
        };
        return test_hash(&hash, &password, &user);
    }
    // Check the scheme before asking for a password, as doveadm does.
    args.scheme
        .parse::<Scheme>()
        .map_err(|_| format!("Unknown scheme: {}", args.scheme))?;
    let password = match args.password {
        Some(p) => p.into_vec(),
        None => ask_new().map_err(|e| e.to_string())?,
    };
    let hash =
        generate_named(&args.scheme, &password, &user, args.rounds).map_err(|e| e.to_string())?;
    if args.verify {
        let stored = StoredPassword::parse(&hash, Scheme::Crypt, true)
            .map_err(|e| format!("reverse decode check failed: {e}"))?;
        match stored.verify(&password, &user) {
            Ok(true) => Ok(format!("{hash} (verified)")),
            Ok(false) => {
                Err("reverse password verification check failed: Password mismatch".into())
            }
            Err(e) => Err(format!("reverse password verification check failed: {e}")),
        }
    } else {
        Ok(hash)
    }
}

/// `-t`: the hash must carry a `{SCHEME}` prefix; a bare `$1$…` is taken as MD5-CRYPT and
/// printed with that prefix (doveadm's behaviour).
fn test_hash(hash: &str, password: &[u8], user: &str) -> Result<String, String> {
    let shown = if hash.starts_with('{') {
        hash.to_owned()
    } else if hash.starts_with("$1$") {
        format!("{{MD5-CRYPT}}{hash}")
    } else {
        return Err("Missing {scheme} prefix from hash".into());
    };
    let stored = StoredPassword::parse(hash, Scheme::Crypt, true)
        .map_err(|e| format!("reverse decode check failed: {e}"))?;
    match stored.verify(password, user) {
        Ok(true) => Ok(format!("{shown} (verified)")),
        Ok(false) => Err("reverse password verification check failed: Password mismatch".into()),
        Err(e) => Err(format!("reverse password verification check failed: {e}")),
    }
}

/// Ask for a new password twice until both agree (at most [`TRIES`] times).
fn ask_new() -> io::Result<Vec<u8>> {
    for _ in 0..TRIES {
        let first = ask("Enter new password: ")?;
        let second = ask("Retype new password: ")?;
        if first == second {
            return Ok(first);
        }
        eprintln!("Error: Passwords don't match!");
    }
    Err(io::Error::other("Too many password mismatches"))
}

/// One line from stdin. On a terminal: prompt on stderr and no echo (doveadm's askpass);
/// otherwise read silently, end of input giving an empty password.
pub(crate) fn ask(prompt: &str) -> io::Result<Vec<u8>> {
    let stdin = io::stdin();
    let tty = stdin.is_terminal();
    let mut saved = None;
    if tty {
        // Echo off (and typed-ahead input flushed) before the prompt shows, so nothing typed
        // after seeing the prompt is echoed or lost.
        if let Ok(old) = termios::tcgetattr(&stdin) {
            let mut quiet = old.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            if termios::tcsetattr(&stdin, SetArg::TCSAFLUSH, &quiet).is_ok() {
                saved = Some(old);
            }
        }
        eprint!("{prompt}");
        io::stderr().flush()?;
    }
    let mut line = Vec::new();
    let read = stdin.lock().read_until(b'\n', &mut line);
    if let Some(old) = saved {
        // Best effort: the terminal state is restored even when reading failed.
        let _ = termios::tcsetattr(&stdin, SetArg::TCSAFLUSH, &old);
    }
    if tty {
        eprintln!();
    }
    read?;
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}
