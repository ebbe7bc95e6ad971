//! pochta-mta: SMTP server with a durable queue and LMTP delivery. See the library's
//! documentation.

use pochta_mta::Mta;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    pochta_server::daemon_main::<Mta, _, _>(
        "mta",
        "SMTP server with a durable queue and local delivery over LMTP",
        |cfg| async move { Mta::start(cfg).await.map(Arc::new) },
    )
}
