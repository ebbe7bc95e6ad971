//! pochta-mda-lmtp: LMTP delivery into Maildir. See the library's documentation.

use pochta_mda_lmtp::Lmtp;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    pochta_server::daemon_main::<Lmtp, _, _>(
        "mda-lmtp",
        "LMTP delivery agent into Dovecot-compatible Maildir",
        |cfg| async move { Lmtp::new(&cfg).map(Arc::new) },
    )
}
