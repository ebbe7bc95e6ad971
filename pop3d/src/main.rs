//! pochta-pop3d: POP3 server on Maildir. See the library's documentation.

use pochta_pop3d::Pop3;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    pochta_server::daemon_main::<Pop3, _, _>(
        "pop3d",
        "POP3 server on Dovecot-compatible Maildir",
        |cfg| async move { Pop3::new(cfg).map(Arc::new) },
    )
}
