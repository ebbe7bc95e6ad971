//! Replays every `tests/transcripts/*.txt` dialog against the session state machine, in process.
//!
//! Format, one item per line:
//! - `O: word …` session options: `smtp`, `lmtp`, `max_size=N`, `max_errors=N`, `max_rcpt=N`,
//!   `bare_lf=reject`, `starttls`, `auth=MECH`, `require_tls`, `no_chunking`,
//!   `forbid_unauth_pipelining`;
//! - `C: text` a client line (CRLF appended); `R: text` raw client bytes with `\r \n \t \\`
//!   `\xHH` escapes and nothing appended. Consecutive C/R lines go to the session in one piece
//!   (pipelining);
//! - `S: text` the next line the server writes (without CRLF); all server output produced by the
//!   preceding client block must be matched by S lines exactly;
//! - `M: escaped` the body of the next committed message; `E: close` the server closes here;
//! - `#` comments and blank lines are ignored.
//!
//! The driver's policy, standing in for the daemon: RCPT local parts starting with `unknown` get
//! 550 5.1.1, `tempfail` 451 4.3.0; LMTP deliveries to `full…` get 552 5.2.2; senders
//! `reject@…` get 550 5.7.1; AUTH PLAIN accepts `dGVzdA==`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pochta_smtp::*;
use std::path::Path;

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b == b'\\' {
            match it.next() {
                Some(b'r') => out.push(b'\r'),
                Some(b'n') => out.push(b'\n'),
                Some(b't') => out.push(b'\t'),
                Some(b'\\') => out.push(b'\\'),
                Some(b'x') => {
                    let hex: Vec<u8> = it.by_ref().take(2).collect();
                    let hex = std::str::from_utf8(&hex).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                }
                other => panic!("bad escape \\{other:?}"),
            }
        } else {
            out.push(b);
        }
    }
    out
}

fn config(opts: &[String]) -> SessionConfig {
    let mut c = if opts.iter().any(|o| o == "smtp") {
        SessionConfig::smtp("mx.test")
    } else {
        SessionConfig::lmtp("mx.test")
    };
    for o in opts {
        match o.split_once('=') {
            Some(("max_size", v)) => c.max_message_size = v.parse().unwrap(),
            Some(("max_errors", v)) => c.max_errors = v.parse().unwrap(),
            Some(("max_rcpt", v)) => c.max_recipients = v.parse().unwrap(),
            Some(("bare_lf", "reject")) => c.bare_lf = BareLf::Reject,
            Some(("auth", m)) => c.auth_mechanisms.push(m.to_owned()),
            None if o == "starttls" => c.starttls = true,
            None if o == "require_tls" => c.require_tls = true,
            None if o == "auth_plaintext" => c.auth_requires_tls = false,
            None if o == "no_chunking" => c.chunking = false,
            None if o == "forbid_unauth_pipelining" => c.forbid_unauth_pipelining = true,
            None if o == "smtp" || o == "lmtp" => {}
            _ => panic!("unknown option {o}"),
        }
    }
    c
}

/// Runs the session until it wants input; returns the written bytes and whether it closed.
fn drive(s: &mut Session, bodies: &mut Vec<Vec<u8>>) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        match s.next() {
            Event::Write(b) => out.extend_from_slice(&b),
            Event::NeedInput => return (out, false),
            Event::Close => return (out, true),
            Event::Pending => panic!("decision left pending"),
            Event::Hello { .. } => s.accept(),
            Event::Mail { from, .. } => {
                if from.mailbox().is_some_and(|m| m.local() == "reject") {
                    s.reply(Reply::with_status(550, (5, 7, 1), "Sender rejected"));
                } else {
                    s.accept();
                }
            }
            Event::Rcpt { to, .. } => {
                let local = to
                    .mailbox()
                    .map(|m| m.local().to_owned())
                    .unwrap_or_default();
                if local.starts_with("unknown") {
                    s.reply(Reply::with_status(
                        550,
                        (5, 1, 1),
                        format!("<{to}> User doesn't exist: {to}"),
                    ));
                } else if local.starts_with("tempfail") {
                    s.reply(Reply::with_status(
                        451,
                        (4, 3, 0),
                        format!("<{to}> Temporary internal error"),
                    ));
                } else {
                    s.accept();
                }
            }
            Event::Message(m) => {
                bodies.push(m.body.clone());
                if s.config().protocol == Protocol::Smtp {
                    s.reply(Reply::with_status(250, (2, 0, 0), "Ok: queued as TEST"));
                    continue;
                }
                let replies = m
                    .recipients
                    .iter()
                    .map(|r| {
                        let to = &r.path;
                        let local = to
                            .mailbox()
                            .map(|m| m.local().to_owned())
                            .unwrap_or_default();
                        if local.starts_with("full") {
                            Reply::with_status(
                                552,
                                (5, 2, 2),
                                format!("<{to}> Quota exceeded (mailbox for user is full)"),
                            )
                        } else {
                            Reply::with_status(250, (2, 0, 0), format!("<{to}> SESSION Saved"))
                        }
                    })
                    .collect();
                s.reply_each(replies);
            }
            Event::StartTls => {
                let discarded = s.tls_established();
                assert_eq!(discarded, 0, "plaintext after STARTTLS");
            }
            Event::Auth { initial: None, .. } => s.auth_challenge(""),
            Event::Auth {
                initial: Some(d), ..
            }
            | Event::AuthResponse(d) => {
                if d.expose() == "dGVzdA==" {
                    s.auth_success("test".into());
                } else {
                    s.reply(Reply::with_status(
                        535,
                        (5, 7, 8),
                        "Error: authentication failed",
                    ));
                }
            }
            Event::AuthAborted => {}
        }
    }
}

fn run(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let opts: Vec<String> = lines
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("O: "))
        .flat_map(|l| l.split_whitespace().map(str::to_owned))
        .collect();
    let mut s = Session::new(config(&opts));
    let mut bodies = Vec::new();
    let mut body_idx = 0;
    let (mut pending_out, mut closed) = drive(&mut s, &mut bodies);
    let mut i = 0;
    while i < lines.len() {
        let (ln, line) = lines[i];
        let (tag, rest) = line.split_at(3.min(line.len()));
        match tag {
            "O: " => i += 1,
            "C: " | "R: " => {
                assert!(
                    !closed,
                    "{name}:{ln}: client writes after the server closed"
                );
                assert!(
                    pending_out.is_empty(),
                    "{name}:{ln}: unexpected server output before this line: {:?}",
                    String::from_utf8_lossy(&pending_out)
                );
                let mut input = Vec::new();
                while i < lines.len()
                    && (lines[i].1.starts_with("C: ") || lines[i].1.starts_with("R: "))
                {
                    let l = lines[i].1;
                    if let Some(c) = l.strip_prefix("C: ") {
                        input.extend_from_slice(c.as_bytes());
                        input.extend_from_slice(b"\r\n");
                    } else {
                        input.extend(unescape(&l[3..]));
                    }
                    i += 1;
                }
                let mut off = 0;
                let mut out = Vec::new();
                loop {
                    off += s.feed(&input[off..]);
                    let (o, c) = drive(&mut s, &mut bodies);
                    out.extend(o);
                    closed |= c;
                    if off == input.len() || closed {
                        break;
                    }
                }
                pending_out = out;
            }
            "S: " => {
                let want = format!("{rest}\r\n");
                let got_len = pending_out
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(pending_out.len(), |p| p + 1);
                let got: Vec<u8> = pending_out.drain(..got_len).collect();
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    want,
                    "{name}:{ln}: server line differs"
                );
                i += 1;
            }
            "M: " => {
                let want = unescape(rest);
                let got = bodies
                    .get(body_idx)
                    .unwrap_or_else(|| panic!("{name}:{ln}: no message committed"));
                assert_eq!(
                    String::from_utf8_lossy(got),
                    String::from_utf8_lossy(&want),
                    "{name}:{ln}: message body differs"
                );
                body_idx += 1;
                i += 1;
            }
            "E: " => {
                assert!(
                    pending_out.is_empty(),
                    "{name}:{ln}: output left before close: {:?}",
                    String::from_utf8_lossy(&pending_out)
                );
                assert!(closed, "{name}:{ln}: server did not close");
                i += 1;
            }
            _ => panic!("{name}:{ln}: bad transcript line {line:?}"),
        }
    }
    assert!(
        pending_out.is_empty(),
        "{name}: server output not matched at the end: {:?}",
        String::from_utf8_lossy(&pending_out)
    );
    assert_eq!(
        body_idx,
        bodies.len(),
        "{name}: committed messages not checked with M:"
    );
}

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        if f.extension().is_some_and(|e| e == "txt") {
            run(&f);
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} transcripts");
}
