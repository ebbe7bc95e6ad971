//! The relay policy on every RCPT the SMTP parser accepts: no panic, and no address with a
//! percent hack or bang path in its local part is ever routed, whoever the client is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_mta::policy::{route, Client, Route};
use pochta_smtp::{parse_command, Command};

fuzz_target!(|data: &[u8]| {
    let mut line = b"RCPT TO:".to_vec();
    line.extend_from_slice(data);
    let Ok(Command::Rcpt { to, .. }) = parse_command(&line, true) else {
        return;
    };
    let local = vec!["pochta.test".to_owned()];
    for (authenticated, trusted) in [(false, false), (true, false), (false, true)] {
        let client = Client {
            authenticated,
            trusted,
        };
        let routed = match route(&to, &local, "+", client) {
            Ok(Route::Local { address, .. }) | Ok(Route::Relay { address }) => address,
            Err(reply) => {
                assert!(reply.code() >= 500);
                continue;
            }
        };
        if let Some(m) = to.mailbox() {
            assert!(!m.local().contains(['%', '!', '@']), "{routed}");
        }
        if !authenticated && !trusted {
            assert!(matches!(route(&to, &local, "+", client), Ok(Route::Local { .. })));
        }
    }
});
