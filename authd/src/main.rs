//! pochta-authd: SASL and user lookups over Dovecot's auth protocol (see the library's docs).
//! Runs as root only to bind its UNIX sockets, then as `[server] user`.

use pochta_authd::Authd;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    pochta_server::daemon_main::<Authd, _, _>(
        "authd",
        "SASL authentication and user lookups over Dovecot's auth protocol",
        |config| async move { Authd::new(config).map(Arc::new) },
    )
}
