//! pochta-loadgen: standalone load generator for the auth protocol (and later POP3/IMAP).
//! See bench/README.md. Prints one result line; exits 1 when the run is not a result
//! (a lost connection, an unexpected reply, or any failed authentication).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pochta-loadgen",
    about = "Load generator for auth, POP3 and IMAP servers"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// AUTH PLAIN over Dovecot's auth-client protocol.
    Auth {
        /// The auth-client UNIX socket.
        #[arg(long)]
        socket: PathBuf,
        /// File of `user:password` lines, used round-robin.
        #[arg(long)]
        users: PathBuf,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 10_000)]
        requests: usize,
    },
    /// POP3 download: sessions of USER/PASS, STAT, UIDL, RETR every message, QUIT.
    Pop3 {
        /// host:port (plaintext).
        #[arg(long)]
        addr: String,
        /// File of `user:password` lines; sessions take them round-robin.
        #[arg(long)]
        users: PathBuf,
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        sessions: usize,
        /// Messages every mailbox holds (STAT is checked).
        #[arg(long)]
        messages: usize,
    },
    /// IMAP: LOGIN, SELECT INBOX, a fixed command mix, LOGOUT.
    Imap(ImapArgs),
}

/// IMAP mixed load (see the imap module).
#[derive(clap::Args)]
struct ImapArgs {
    /// host:port (plaintext).
    #[arg(long)]
    addr: String,
    /// File of `user:password` lines; session i uses line i % lines.
    #[arg(long)]
    users: PathBuf,
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Commands of the mix per session.
    #[arg(long, default_value_t = 500)]
    commands: usize,
    /// Messages every INBOX holds (SELECT's EXISTS is checked).
    #[arg(long)]
    messages: usize,
}

fn imap(rt: &tokio::runtime::Runtime, a: ImapArgs) -> Result<(), String> {
    let opts = pochta_loadgen::imap::Options {
        addr: a.addr,
        users: read_users(&a.users)?,
        concurrency: a.concurrency,
        sessions: a.sessions,
        commands: a.commands,
        expect_messages: a.messages,
        timeout: Duration::from_secs(30),
    };
    let o = rt.block_on(pochta_loadgen::imap::run(opts))?;
    println!(
        "imap: sessions={} commands={} secs={:.3} rate={:.0} cmd/s p50={:.2}ms p99={:.2}ms",
        o.sessions,
        o.commands,
        o.elapsed.as_secs_f64(),
        o.rate(),
        o.latencies.percentile_ms(50.0),
        o.latencies.percentile_ms(99.0)
    );
    Ok(())
}

fn read_users(path: &PathBuf) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .collect())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pochta-loadgen: tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.mode {
        Mode::Imap(a) => match imap(&rt, a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pochta-loadgen: {e}");
                ExitCode::FAILURE
            }
        },
        Mode::Auth {
            socket,
            users,
            connections,
            requests,
        } => {
            let users = match read_users(&users) {
                Ok(u) => u,
                Err(e) => {
                    eprintln!("pochta-loadgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let opts = pochta_loadgen::auth::Options {
                socket,
                users,
                connections,
                requests,
                timeout: Duration::from_secs(30),
            };
            match rt.block_on(pochta_loadgen::auth::run(opts)) {
                Ok(o) => {
                    println!(
                        "auth: ok={} failed={} secs={:.3} rate={:.0}/s p50={:.2}ms p99={:.2}ms",
                        o.ok,
                        o.failed,
                        o.elapsed.as_secs_f64(),
                        o.rate(),
                        o.latencies.percentile_ms(50.0),
                        o.latencies.percentile_ms(99.0)
                    );
                    if o.failed > 0 {
                        eprintln!("pochta-loadgen: {} authentications failed", o.failed);
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pochta-loadgen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Mode::Pop3 {
            addr,
            users,
            concurrency,
            sessions,
            messages,
        } => {
            let users = match read_users(&users) {
                Ok(u) => u,
                Err(e) => {
                    eprintln!("pochta-loadgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let opts = pochta_loadgen::pop3::Options {
                addr,
                users,
                concurrency,
                sessions,
                expect_messages: messages,
                expect_size: None,
                timeout: Duration::from_secs(30),
            };
            match rt.block_on(pochta_loadgen::pop3::run(opts)) {
                Ok(o) => {
                    println!(
                        "pop3: sessions={} messages={} bytes={} secs={:.3} rate={:.0} msg/s \
                         p50={:.2}ms p99={:.2}ms",
                        o.sessions,
                        o.messages,
                        o.bytes,
                        o.elapsed.as_secs_f64(),
                        o.rate(),
                        o.latencies.percentile_ms(50.0),
                        o.latencies.percentile_ms(99.0)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pochta-loadgen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
