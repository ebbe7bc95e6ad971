//! `pochta queue list|flush [ID]|delete ID|hold ID|release ID`: Postfix's postqueue -p / -f /
//! -i and postsuper -d / -h / -H for pochta-mta's spool. Listing, hold, release and delete work
//! on the spool files directly (like postsuper), whether the mta runs or not; flush (and the
//! "deliver now" after release) is a datagram to the running mta's `<spool>/flush` socket —
//! see pochta-queue's admin module. The spool is `--spool DIR`, else `[queue] dir` of the mta
//! config (`-c`, default /etc/pochta/mta.toml), else /var/spool/pochta.

use clap::{Args, Subcommand};
use pochta_queue::{admin, mailq, QueueId};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EX_USAGE: u8 = 64;
const EX_UNAVAILABLE: u8 = 69;
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 78;

#[derive(Args)]
pub(crate) struct QueueArgs {
    /// The mta's config file (for `[queue] dir`).
    #[arg(short = 'c', long = "config", default_value = "/etc/pochta/mta.toml")]
    config: PathBuf,
    /// The spool directory (overrides the config).
    #[arg(long)]
    spool: Option<PathBuf>,
    #[command(subcommand)]
    cmd: QueueCmd,
}

#[derive(Subcommand)]
enum QueueCmd {
    /// Print the queue in Postfix's mailq layout.
    List,
    /// Ask the running mta to retry all deferred mail (or one message) now.
    Flush { id: Option<String> },
    /// Delete a message from the queue (queued or held).
    Delete { id: String },
    /// Put a message on hold: kept, not delivered until released.
    Hold { id: String },
    /// Release a held message and deliver it now.
    Release { id: String },
}

pub(crate) fn run(args: QueueArgs) -> ExitCode {
    let spool = match spool_dir(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pochta queue: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let id = |s: &str| {
        QueueId::parse(s).ok_or_else(|| {
            eprintln!("pochta queue: bad queue id: {s}");
            ExitCode::from(EX_USAGE)
        })
    };
    let res = match &args.cmd {
        QueueCmd::List => return list(&spool),
        QueueCmd::Flush { id: None } => admin::flush(&spool, None),
        QueueCmd::Flush { id: Some(s) } => match id(s) {
            Ok(i) => admin::flush(&spool, Some(&i)),
            Err(c) => return c,
        },
        QueueCmd::Delete { id: s } => match id(s) {
            Ok(i) => admin::delete(&spool, &i).map(|()| eprintln!("pochta queue: {i}: removed")),
            Err(c) => return c,
        },
        QueueCmd::Hold { id: s } => match id(s) {
            Ok(i) => {
                admin::hold(&spool, &i).map(|()| eprintln!("pochta queue: {i}: placed on hold"))
            }
            Err(c) => return c,
        },
        QueueCmd::Release { id: s } => match id(s) {
            Ok(i) => admin::release(&spool, &i).map(|()| eprintln!("pochta queue: {i}: released")),
            Err(c) => return c,
        },
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ admin::AdminError::MailSystemDown(_)) => {
            eprintln!("pochta queue: fatal: {e}");
            ExitCode::from(EX_TEMPFAIL)
        }
        Err(e) => {
            eprintln!("pochta queue: {e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

fn list(spool: &Path) -> ExitCode {
    match mailq::read_queue(spool) {
        Ok(entries) => {
            let text = mailq::format(&entries, mailq::local_utc_offset());
            // `pochta queue list | head`: a reader that stops early is not an error (print!
            // would panic on the broken pipe).
            match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pochta queue: write: {e}");
                    ExitCode::from(EX_UNAVAILABLE)
                }
            }
        }
        Err(e) => {
            eprintln!("pochta queue: cannot read the mail queue: {e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

fn spool_dir(args: &QueueArgs) -> Result<PathBuf, String> {
    if let Some(s) = &args.spool {
        return Ok(s.clone());
    }
    let text = match std::fs::read_to_string(&args.config) {
        Ok(t) => t,
        Err(_) => return Ok(PathBuf::from("/var/spool/pochta")),
    };
    let doc: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", args.config.display()))?;
    Ok(doc
        .get("queue")
        .and_then(|q| q.get("dir"))
        .and_then(|d| d.as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/spool/pochta")))
}
