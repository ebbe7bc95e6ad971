//! Log setup: one line per event on stderr, `key=value` fields, the session span (id, peer,
//! listener) on every line of a session. Under journald (`$JOURNAL_STREAM`) timestamps are left to
//! the journal. `$POCHTA_LOG` overrides the configured filter.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub(crate) fn init(configured: &str) {
    let filter = std::env::var("POCHTA_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(configured).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let result = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (e.g. in tests): keep the existing subscriber.
    drop(result);
}
