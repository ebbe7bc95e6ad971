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
        Mode::Auth {
            socket,
            users,
            connections,
            requests,
        } => {
            let text = match std::fs::read_to_string(&users) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("pochta-loadgen: {}: {e}", users.display());
                    return ExitCode::FAILURE;
                }
            };
            let users: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .collect();
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
    }
}
