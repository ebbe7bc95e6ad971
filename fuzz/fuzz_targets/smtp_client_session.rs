//! A client session (LMTP when the first byte is even) fed arbitrary server bytes: no panic,
//! and it never writes anything but commands and the message it was given; STARTTLS is
//! tried once when offered (the TLS layer itself is assumed to succeed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_smtp_client::{ClientConfig, ClientSession, Envelope, Protocol, Recipient, Step};

fuzz_target!(|data: &[u8]| {
    let protocol = if data.first().is_some_and(|b| b % 2 == 0) {
        Protocol::Lmtp
    } else {
        Protocol::Smtp
    };
    let mut s = ClientSession::new(ClientConfig {
        protocol,
        helo_name: "fuzz.test".into(),
        chunking: data.get(1).is_some_and(|b| b % 2 == 0),
    });
    let env = Envelope {
        sender: "a@b".into(),
        recipients: vec![
            Recipient { address: "c@d".into(), notify: None, orcpt: None },
            Recipient { address: "e@f".into(), notify: None, orcpt: None },
        ],
        envid: None,
        ret: None,
        body: None,
        smtputf8: false,
    };
    let mut written = 0usize;
    let mut tls_tried = false;
    for chunk in data.chunks(7) {
        s.feed(chunk);
        for _ in 0..64 {
            match s.step() {
                Step::Write(b) => {
                    written += b.len();
                    assert!(written < 100_000);
                }
                Step::Ready => {
                    if s.capabilities().starttls && !tls_tried {
                        tls_tried = true;
                        let _ = s.starttls();
                    } else {
                        let _ = s.start_transaction(&env, b"Subject: x\r\n\r\n.body\r\n");
                    }
                }
                Step::StartTls => {
                    let _ = s.tls_established();
                }
                Step::TlsRefused(_) => {}
                Step::Done(o) => assert_eq!(o.len(), 2),
                Step::NeedInput | Step::Closed | Step::Failed(_) => break,
            }
        }
    }
});
