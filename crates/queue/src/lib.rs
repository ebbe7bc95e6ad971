//! pochta-queue: pochta-mta's mail queue and its local delivery runner.
//!
//! The spool ([`Spool`]) stores each accepted message as one queue file (envelope + content,
//! see [`file`]) and acknowledges it only after the file and its directory entry are fsynced;
//! concurrent enqueues share one directory fsync (group commit on a dedicated thread). Per-
//! recipient state (delivered, deferred with reason and next attempt, bounced) is appended to
//! the file with a checksum, so a crash or restart resumes exactly. The runner
//! ([`spawn_runner`]) keeps an in-memory schedule ordered by next attempt (built once at start,
//! then fed by enqueues, results and `flush` requests — no periodic rescans) and delivers over
//! LMTP with per-recipient results, exponential backoff, connection reuse and bounded
//! concurrency; other domains go to pochta-outbound, and aliases(5) `|command` and `/file`
//! recipients (marked so by the queue file's own `agent=` field, never by their address) to
//! the local delivery agent (`local_agent`: Postfix local(8)'s pipe and mbox delivery). Recipients that fail for good (5xx, or 4xx past `maximal_queue_lifetime`)
//! are reported to the sender with an RFC 3464 bounce, stuck ones with one delay notice after
//! `delay_warning_time`, NOTIFY=SUCCESS ones with a success DSN (`bounce`, `dsn`): each notice
//! is a new queue message from `<>`, committed before the original's records say "notified";
//! the original is removed when every recipient is delivered or bounced and notified.
//! [`mailq`] prints the queue in Postfix's layout; [`admin`] holds what `pochta queue` and
//! `sendmail -q` do.
//!
//! Trust: the queue files are ours (checksummed; a corrupt one is moved to `corrupt/`, never
//! deleted); the LMTP server's replies are parsed by pochta-smtp-client with limits. Runs as the
//! mta's user, which owns the spool directory; admin commands run as that user or root.
//! Commands and files run with that user's rights only: one whose aliases file belongs to
//! anybody else is deferred, never run (the mta cannot change users).
//!
//! Layout of the spool directory: `queue/` (messages; a file without its checksummed `end`
//! line is still being written), `hold/` (held by the admin), `corrupt/` (damaged files, kept
//! for the admin), `tmp/` (scratch, emptied at start), `lock` (flock of the running mta),
//! `flush` (UNIX datagram socket: `flush` or `flush <id>` makes the runner retry now).
//!
//! RFCs: 5321 §4.5.4 (retry strategy), 2033 (LMTP per-recipient replies), 3461 (DSN
//! parameters NOTIFY/RET/ENVID/ORCPT kept with the recipient and honoured), 3464 + 6522
//! (delivery status notifications, multipart/report), 3463 (enhanced status codes, 4.4.7
//! for an expired message), 6533 (`utf-8` address type for non-ASCII recipients).
//!
//! Dependencies: nix for flock(2) and killpg(2); pochta-smtp for the DSN/BODY types the smtpd
//! parses.

#![forbid(unsafe_code)]

mod addresses;
pub mod admin;
mod bounce;
mod config;
mod deliver;
mod dsn;
pub mod file;
mod id;
mod local_agent;
pub mod mailq;
mod pool;
mod remote;
mod runner;
mod schedule;
mod spool;

pub use addresses::{AddressPolicy, Addresses};
pub use config::{parse_duration, DeliveryConfig, DurationStr, LmtpEndpoint, QueueConfig};
pub use file::{Agent, LocalAlias};
pub use id::QueueId;
pub use runner::{spawn_runner, FLUSH_SOCKET};
pub use spool::{NewMessage, NewRecipient, QueueError, Spool};

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
