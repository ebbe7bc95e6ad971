//! Transcript tests of the client session without sockets: `S:` lines are fed, the bytes the
//! session writes are compared with the expected `C:` lines.

use super::*;

fn cfg(protocol: Protocol) -> ClientConfig {
    ClientConfig {
        protocol,
        helo_name: "client.test".to_owned(),
        chunking: false,
    }
}

fn env(rcpts: &[&str]) -> Envelope {
    Envelope {
        sender: "a@x.test".to_owned(),
        recipients: rcpts
            .iter()
            .map(|r| Recipient {
                address: (*r).to_owned(),
                notify: None,
                orcpt: None,
            })
            .collect(),
        envid: None,
        ret: None,
        body: None,
        smtputf8: false,
    }
}

/// Runs the session until it needs input, collecting what it writes; returns (written, step).
fn run(s: &mut ClientSession) -> (String, Step) {
    let mut written = String::new();
    loop {
        match s.step() {
            Step::Write(b) => written.push_str(&String::from_utf8_lossy(&b)),
            other => return (written, other),
        }
    }
}

fn ready(protocol: Protocol, ehlo: &str) -> ClientSession {
    let mut s = ClientSession::new(cfg(protocol));
    assert!(matches!(run(&mut s), (w, Step::NeedInput) if w.is_empty()));
    s.feed(b"220 server ready\r\n");
    let (w, st) = run(&mut s);
    assert!(w.ends_with("HLO client.test\r\n"), "{w}");
    assert!(matches!(st, Step::NeedInput));
    s.feed(ehlo.as_bytes());
    assert!(matches!(run(&mut s), (w, Step::Ready) if w.is_empty()));
    s
}

fn done(step: Step) -> Vec<RcptOutcome> {
    match step {
        Step::Done(o) => o,
        other => panic!("expected Done, got {other:?}"),
    }
}

#[test]
fn lmtp_pipelined_per_recipient_replies() {
    let mut s = ready(
        Protocol::Lmtp,
        "250-h\r\n250-PIPELINING\r\n250-SIZE\r\n250 8BITMIME\r\n",
    );
    s.start_transaction(
        &env(&["u1@d", "u2@d", "u3@d"]),
        b"Subject: x\r\n\r\n.dot\r\n",
    )
    .unwrap();
    let (w, st) = run(&mut s);
    assert_eq!(
        w,
        "MAIL FROM:<a@x.test> SIZE=20\r\nRCPT TO:<u1@d>\r\nRCPT TO:<u2@d>\r\n\
         RCPT TO:<u3@d>\r\nDATA\r\n"
    );
    assert!(matches!(st, Step::NeedInput));
    s.feed(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 <u2@d> User doesn't exist\r\n250 ok\r\n");
    s.feed(b"354 go\r\n");
    let (w, _) = run(&mut s);
    assert_eq!(w, "Subject: x\r\n\r\n..dot\r\n.\r\n");
    assert!(s.data_sent());
    s.feed(b"250 2.0.0 <u1@d> Saved\r\n");
    assert!(matches!(run(&mut s).1, Step::NeedInput));
    assert!(s.partial_outcomes()[0].is_some());
    s.feed(b"452 4.2.2 <u3@d> Quota exceeded\r\n");
    let o = done(run(&mut s).1);
    assert_eq!(o[0].reply.code(), 250);
    assert_eq!((o[1].reply.code(), o[1].stage), (550, Stage::Rcpt));
    assert_eq!((o[2].reply.code(), o[2].stage), (452, Stage::EndOfData));
    assert!(matches!(run(&mut s).1, Step::Ready));
    s.quit();
    assert_eq!(run(&mut s).0, "QUIT\r\n");
    s.feed(b"221 bye\r\n");
    assert!(matches!(run(&mut s).1, Step::Closed));
}

#[test]
fn smtp_without_pipelining_waits_for_each_reply() {
    let mut s = ready(Protocol::Smtp, "250-h\r\n250 DSN\r\n");
    let mut e = env(&["b@y"]);
    e.recipients[0].notify = Some(Notify {
        failure: true,
        delay: true,
        ..Notify::default()
    });
    e.ret = Some(Ret::Hdrs);
    s.start_transaction(&e, b"x").unwrap();
    assert_eq!(run(&mut s).0, "MAIL FROM:<a@x.test> RET=HDRS\r\n");
    s.feed(b"250 ok\r\n");
    assert_eq!(run(&mut s).0, "RCPT TO:<b@y> NOTIFY=FAILURE,DELAY\r\n");
    s.feed(b"250 ok\r\n");
    assert_eq!(run(&mut s).0, "DATA\r\n");
    s.feed(b"354 go\r\n");
    assert_eq!(run(&mut s).0, "x\r\n.\r\n");
    s.feed(b"250 queued\r\n");
    let o = done(run(&mut s).1);
    assert_eq!(o[0].reply.code(), 250);
}

#[test]
fn mail_refused_and_all_rcpts_refused() {
    let mut s = ready(Protocol::Smtp, "250 h\r\n");
    s.start_transaction(&env(&["b@y", "c@y"]), b"x").unwrap();
    run(&mut s);
    s.feed(b"451 4.3.0 try later\r\n");
    let o = done(run(&mut s).1);
    assert!(o
        .iter()
        .all(|o| o.reply.code() == 451 && o.stage == Stage::Mail));
    s.start_transaction(&env(&["b@y"]), b"x").unwrap();
    run(&mut s);
    s.feed(b"250 ok\r\n");
    run(&mut s);
    s.feed(b"550 no\r\n");
    assert_eq!(run(&mut s).0, "RSET\r\n");
    s.feed(b"250 ok\r\n");
    let o = done(run(&mut s).1);
    assert_eq!(o[0].reply.code(), 550);
}

#[test]
fn pipelined_data_refused_then_rset() {
    let mut s = ready(Protocol::Lmtp, "250-h\r\n250 PIPELINING\r\n");
    s.start_transaction(&env(&["b@y"]), b"x").unwrap();
    run(&mut s);
    s.feed(b"250 ok\r\n550 no\r\n554 no valid recipients\r\n");
    assert_eq!(run(&mut s).0, "RSET\r\n");
    s.feed(b"250 ok\r\n");
    let o = done(run(&mut s).1);
    assert_eq!((o[0].reply.code(), o[0].stage), (550, Stage::Rcpt));
}

#[test]
fn server_421_closes() {
    let mut s = ready(Protocol::Lmtp, "250-h\r\n250 PIPELINING\r\n");
    s.start_transaction(&env(&["b@y", "c@y"]), b"x").unwrap();
    run(&mut s);
    s.feed(b"250 ok\r\n250 ok\r\n421 4.3.2 shutting down\r\n");
    let o = done(run(&mut s).1);
    assert!(o.iter().all(|o| o.reply.code() == 421));
    assert!(matches!(run(&mut s).1, Step::Closed));
}

#[test]
fn bad_greeting_and_ehlo_fallback() {
    let mut s = ClientSession::new(cfg(Protocol::Smtp));
    run(&mut s);
    s.feed(b"554 go away\r\n");
    assert!(matches!(
        run(&mut s).1,
        Step::Failed(SessionError::Rejected(Stage::Greeting, _))
    ));

    let mut s = ClientSession::new(cfg(Protocol::Smtp));
    run(&mut s);
    s.feed(b"220 hi\r\n");
    run(&mut s);
    s.feed(b"502 what\r\n");
    assert_eq!(run(&mut s).0, "HELO client.test\r\n");
    s.feed(b"250 hi\r\n");
    assert!(matches!(run(&mut s).1, Step::Ready));
}

#[test]
fn bdat_when_chunking() {
    let mut c = cfg(Protocol::Lmtp);
    c.chunking = true;
    let mut s = ClientSession::new(c);
    run(&mut s);
    s.feed(b"220 hi\r\n250-h\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    assert!(matches!(run(&mut s), (_, Step::Ready)));
    s.start_transaction(&env(&["b@y", "c@y"]), b".x\n").unwrap();
    assert_eq!(
        run(&mut s).0,
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\n"
    );
    s.feed(b"250 ok\r\n250 ok\r\n250 ok\r\n");
    assert_eq!(run(&mut s).0, "BDAT 4 LAST\r\n.x\r\n");
    s.feed(b"250 ok\r\n250 ok\r\n");
    assert_eq!(done(run(&mut s).1).len(), 2);
}

#[test]
fn garbage_reply_fails() {
    let mut s = ClientSession::new(cfg(Protocol::Lmtp));
    run(&mut s);
    s.feed(b"HTTP/1.1 400 Bad\r\n");
    assert!(matches!(
        run(&mut s).1,
        Step::Failed(SessionError::Reply(_))
    ));
}

#[test]
fn starttls_then_fresh_ehlo() {
    let mut s = ready(Protocol::Smtp, "250-h\r\n250-STARTTLS\r\n250 SIZE 10\r\n");
    s.starttls().unwrap();
    assert_eq!(run(&mut s).0, "STARTTLS\r\n");
    s.feed(b"220 go ahead\r\n");
    assert!(matches!(run(&mut s).1, Step::StartTls));
    assert!(matches!(run(&mut s).1, Step::StartTls));
    assert!(s.start_transaction(&env(&["b@y"]), b"x").is_err());
    s.tls_established().unwrap();
    assert_eq!(run(&mut s).0, "EHLO client.test\r\n");
    assert_eq!(s.capabilities().size, None, "pre-TLS capabilities kept");
    s.feed(b"250-h\r\n250 PIPELINING\r\n");
    assert!(matches!(run(&mut s).1, Step::Ready));
    assert!(s.capabilities().pipelining && !s.capabilities().starttls);
}

#[test]
fn starttls_refused_or_injected() {
    let mut s = ready(Protocol::Smtp, "250-h\r\n250 STARTTLS\r\n");
    s.starttls().unwrap();
    run(&mut s);
    s.feed(b"454 4.7.0 TLS not available\r\n");
    assert!(matches!(run(&mut s).1, Step::TlsRefused(r) if r.code() == 454));
    assert!(matches!(run(&mut s).1, Step::Ready));

    let mut s = ready(Protocol::Smtp, "250-h\r\n250 STARTTLS\r\n");
    s.starttls().unwrap();
    run(&mut s);
    s.feed(b"220 go ahead\r\n250 injected\r\n");
    assert!(matches!(
        run(&mut s).1,
        Step::Failed(SessionError::Unexpected(_))
    ));

    let mut s = ready(Protocol::Smtp, "250 h\r\n");
    assert!(s.starttls().is_err(), "STARTTLS not offered");
}
