//! The relay policy on every RCPT the SMTP parser accepts: no panic, and no address with a
//! percent hack or bang path in its local part is ever routed, whoever the client is; a client
//! that may not relay only ever gets a local mailbox. The decisions are the address book's
//! (`AddressBook::resolve`, which applies `policy`), with one local domain and no tables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_mta::addresses::{AddressBook, Resolved};
use pochta_mta::config::Config;
use pochta_mta::policy::Client;
use pochta_smtp::{parse_command, Command};
use std::path::Path;
use std::sync::OnceLock;

fn book() -> &'static AddressBook {
    static BOOK: OnceLock<AddressBook> = OnceLock::new();
    BOOK.get_or_init(|| {
        let text = "[smtpd]\nhostname = \"mx.pochta.test\"\nlocal_domains = [\"pochta.test\"]\n";
        let cfg: Config =
            pochta_server::config::parse(Path::new("mta.toml"), text).expect("config");
        AddressBook::load(&cfg).expect("address book")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut line = b"RCPT TO:".to_vec();
    line.extend_from_slice(data);
    let Ok(Command::Rcpt { to, .. }) = parse_command(&line, true) else {
        return;
    };
    for (authenticated, trusted) in [(false, false), (true, false), (false, true)] {
        let client = Client {
            authenticated,
            trusted,
        };
        let resolved = match book().resolve(&to, client, 0) {
            Ok(r) => r,
            Err(reply) => {
                assert!(reply.code() >= 500);
                continue;
            }
        };
        if let Some(m) = to.mailbox() {
            assert!(!m.local().contains(['%', '!', '@']), "{resolved:?}");
        }
        if !authenticated && !trusted {
            assert!(matches!(resolved, Resolved::Mailbox { .. }), "{resolved:?}");
        }
    }
});
