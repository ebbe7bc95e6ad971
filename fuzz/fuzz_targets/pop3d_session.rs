//! The whole session state machine on arbitrary client bytes, cut into packets at arbitrary
//! points, with canned auth/maildrop answers: never a panic, bounded buffering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_pop3d::replay::Replay;
use pochta_pop3d::session::{ConnFacts, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let facts = ConnFacts {
        tls: mode & 1 != 0,
        starttls: mode & 2 != 0,
        trusted: mode & 4 != 0,
    };
    let chunk = usize::from(mode >> 3) + 1;
    let mut r = Replay::new(SessionConfig::default(), facts);
    for c in rest.chunks(chunk) {
        r.input(c);
        let _ = r.take_output();
    }
});
