//! pochta-imapd: IMAP server on Maildir. See the library's documentation.

use pochta_imapd::Imap;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    pochta_server::daemon_main::<Imap, _, _>(
        "imapd",
        "IMAP server on Dovecot-compatible Maildir",
        |cfg| async move { Imap::new(cfg).map(Arc::new) },
    )
}
