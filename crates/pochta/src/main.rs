//! `pochta`: the admin tool of the pochta mail suite — `pochta demo` starts the whole suite on
//! loopback with generated config, certificate and users. Later subcommands (pw, user, auth test,
//! queue, aliases) stay thin: they call the library crates, never reimplement them.
//!
//! Trust: run by the admin; reads and writes only below the directories it is given. As root, the
//! demo's daemons drop to `nobody`.

#![forbid(unsafe_code)]

mod aliases;
mod auth;
mod demo;
mod demo_configs;
mod pw;
mod queue;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "pochta", version, about = "pochta mail suite: admin tool")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start every pochta daemon on loopback with a generated config, certificate and demo users.
    Demo {
        /// Directory for configs, sockets, mail, queue and logs.
        #[arg(long, default_value = "demo")]
        dir: PathBuf,
        /// Password for alice@pochta.test and bob@pochta.test (default: a random one, printed).
        #[arg(long)]
        password: Option<String>,
    },
    /// Generate or verify a password hash, like `doveadm pw`.
    Pw(pw::PwArgs),
    /// Authentication commands, like `doveadm auth`.
    #[command(subcommand)]
    Auth(AuthCmd),
    /// Look a user up on an auth-userdb socket, like `doveadm user`.
    User(auth::UserArgs),
    /// Mail queue of pochta-mta: list|flush [ID]|delete ID|hold ID|release ID.
    Queue(queue::QueueArgs),
    /// What pochta-mta's alias tables make of addresses, like `postmap -q` / `sendmail -bv`.
    Aliases(aliases::AliasesArgs),
}

/// `pochta auth …`.
#[derive(Subcommand)]
enum AuthCmd {
    /// Authenticate a user with PLAIN on an auth-client socket, like `doveadm auth test`.
    Test(auth::AuthTestArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Demo { dir, password } => demo::run(demo::DemoArgs { dir, password }),
        Cmd::Pw(args) => pw::run(args),
        Cmd::Auth(AuthCmd::Test(args)) => auth::test(args),
        Cmd::User(args) => auth::user(args),
        Cmd::Queue(args) => queue::run(args),
        Cmd::Aliases(args) => aliases::run(args),
    }
}
