use super::*;
use crate::mech::MechFlag;

fn config() -> AuthServerConfig {
    AuthServerConfig::new(
        vec![
            Mechanism::new("PLAIN", &[MechFlag::Plaintext]),
            Mechanism::new(
                "SCRAM-SHA-256-PLUS",
                &[MechFlag::MutualAuth, MechFlag::ChannelBinding],
            ),
            Mechanism::new("SCRAM-SHA-256", &[MechFlag::MutualAuth]),
        ],
        812,
        17,
        Cookie([0xab; 16]),
    )
}

fn id(n: u32) -> RequestId {
    RequestId::new(n).unwrap()
}

fn ready(minor: u32) -> AuthServerConn {
    let mut c = AuthServerConn::new(config());
    c.take_output();
    c.feed(format!("VERSION\t1\t{minor}\nCPID\t99\n").as_bytes());
    assert!(matches!(
        c.next_event(),
        Some(Ok(ServerEvent::Hello { .. }))
    ));
    c
}

#[test]
fn handshake_skips_plus_below_minor_3() {
    let text = String::from_utf8(config().handshake()).unwrap();
    assert_eq!(
        text,
        "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tSCRAM-SHA-256\tmutual-auth\nSPID\t812\n\
         CUID\t17\nCOOKIE\tabababababababababababababababab\nDONE\n"
    );
    let mut c = config();
    c.minor = 3;
    let text = String::from_utf8(c.handshake()).unwrap();
    assert!(text.contains("MECH\tSCRAM-SHA-256-PLUS\tmutual-auth\tchannel-binding\n"));
}

#[test]
fn final_response_without_final_resp_ok_goes_as_cont() {
    let mut c = ready(2);
    c.feed(b"AUTH\t1\tSCRAM-SHA-256\tservice=smtp\tresp=eA==\n");
    assert!(matches!(c.next_event(), Some(Ok(ServerEvent::Auth(_)))));
    c.reply_continue(id(1), b"r=abc").unwrap();
    c.feed(b"CONT\t1\teQ==\n");
    assert!(matches!(
        c.next_event(),
        Some(Ok(ServerEvent::Continue { .. }))
    ));
    c.reply_ok(OkReply {
        id: id(1),
        user: Some("alice".into()),
        final_response: Some(Secret::new(b"v=xyz".to_vec())),
        fields: vec![],
    })
    .unwrap();
    assert_eq!(c.take_output(), b"CONT\t1\tcj1hYmM=\nCONT\t1\tdj14eXo=\n");
    c.feed(b"CONT\t1\t\n");
    assert_eq!(c.next_event(), None);
    assert_eq!(c.take_output(), b"OK\t1\tuser=alice\n");
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn final_response_inside_ok_with_final_resp_ok() {
    let mut c = ready(2);
    c.feed(b"AUTH\t1\tSCRAM-SHA-256\tservice=imap\tfinal-resp-ok\n");
    assert!(matches!(c.next_event(), Some(Ok(ServerEvent::Auth(_)))));
    c.reply_ok(OkReply {
        id: id(1),
        user: Some("alice".into()),
        final_response: Some(Secret::new(b"v=xyz".to_vec())),
        fields: vec![],
    })
    .unwrap();
    assert_eq!(c.take_output(), b"OK\t1\tuser=alice\tresp=dj14eXo=\n");
}

#[test]
fn replies_to_unknown_requests_write_nothing() {
    let mut c = ready(2);
    assert_eq!(c.reply_continue(id(5), b""), Err(NotInFlight(id(5))));
    assert_eq!(
        c.reply_fail(FailReply::with_reason(id(5), "x")),
        Err(NotInFlight(id(5)))
    );
    assert!(!c.has_output());
}

#[test]
fn closed_connection_ignores_input() {
    let mut c = AuthServerConn::new(config());
    c.feed(b"HELLO\n");
    let e = c.next_event().unwrap().unwrap_err();
    assert_eq!(e.disposition(), Disposition::Disconnect);
    assert!(c.is_closed());
    c.feed(b"VERSION\t1\t2\n");
    assert_eq!(c.next_event(), None);
}

#[test]
fn too_many_requests() {
    let mut cfg = config();
    cfg.max_in_flight = 1;
    let mut c = AuthServerConn::new(cfg);
    c.feed(b"VERSION\t1\t2\nCPID\t1\nAUTH\t1\tPLAIN\tservice=x\nAUTH\t2\tPLAIN\tservice=x\n");
    assert!(matches!(
        c.next_event(),
        Some(Ok(ServerEvent::Hello { .. }))
    ));
    assert!(matches!(c.next_event(), Some(Ok(ServerEvent::Auth(_)))));
    assert_eq!(
        c.next_event(),
        Some(Err(ServerError::TooManyRequests(id(2))))
    );
}
