//! pochta integration tests: the built binaries against real peers. One test crate with modules.

// Helpers are shared by modules of this one binary; `pub` here is for them, not for export.
#![allow(unreachable_pub)]
// This whole binary is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aliases_postfix;
mod authd;
mod config;
mod demo;
mod guides;
mod harness;
mod imap;
mod lmtp;
mod maildir_dovecot;
mod mta;
mod mta_aliases;
mod mta_bounce;
mod mta_queue;
mod outbound;
mod packaging;
mod password;
mod pop3;
mod runtime;
mod units;
mod user_mailbox;
