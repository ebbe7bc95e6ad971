//! Cheap property tests (the fuzz targets `auth_proto_*` in `fuzz/` go deeper): escaping and
//! message round trips, and arbitrary input in arbitrary chunks never panics any state machine
//! nor grows its output without bound.

use std::num::NonZeroU32;

use pochta_auth_proto::escape::{escape_bytes, unescape_bytes};
use pochta_auth_proto::{
    AuthClientConfig, AuthClientConn, AuthServerConfig, AuthServerConn, ClientCommand, Cookie,
    FailCode, FailReply, Field, Mechanism, OkReply, RequestId, Secret, ServerReply,
    UserdbClientConfig, UserdbClientConn, UserdbReply, UserdbRequest, UserdbServerConfig,
    UserdbServerConn,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Any characters, with the protocol's special bytes made likely.
    prop::collection::vec(
        prop_oneof![
            Just('\t'),
            Just('\n'),
            Just('\r'),
            Just('\u{1}'),
            Just('\0'),
            Just('='),
            any::<char>()
        ],
        0..24,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn key() -> impl Strategy<Value = String> {
    "[a-z_]{1,12}".prop_filter("reserved keys", |k| {
        !matches!(k.as_str(), "user" | "code" | "reason" | "resp")
    })
}

fn id() -> impl Strategy<Value = RequestId> {
    (1u32..).prop_map(|n| RequestId::new(n).unwrap_or(RequestId::MIN))
}

/// Lines made of protocol words, separators, escapes and random bytes.
fn protocol_line() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "VERSION",
            "CPID",
            "AUTH",
            "CONT",
            "OK",
            "FAIL",
            "CANCEL",
            "CANCELLED",
            "MECH",
            "SPID",
            "CUID",
            "COOKIE",
            "DONE",
            "USER",
            "PASS",
            "LIST",
            "NOTFOUND",
            "1",
            "2",
            "0",
            "4294967295",
            "4294967296",
            "PLAIN",
            "service=smtp",
            "protocol=imap",
            "resp=",
            "resp=AHVAcA==",
            "user=",
            "user=a",
            "code=temp_fail",
            "temp",
            "reason=x",
            "secured",
            "secured=tls",
            "lip=127.0.0.1",
            "rip=::1",
            "lport=99999",
            "=",
            "==",
            "\u{1}",
            "\u{1}t",
            "\u{1}0",
            "\u{1}1",
            "fail",
            "forward_fields=a=b\u{1}tc=d",
            "plaintext",
            "9f0c0d5a51b2c81e4b7a2e66d1c0f3aa",
            "",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..4),
    ];
    prop::collection::vec(token, 1..8).prop_map(|tokens| tokens.join(&b'\t'))
}

fn strip(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The fuzz target `auth_proto_messages`, cheaply: what parses re-encodes to the same message.
    #[test]
    fn parsers_round_trip(line in protocol_line()) {
        if let Ok(m) = ServerReply::parse(&line) {
            prop_assert_eq!(ServerReply::parse(strip(&m.encode())), Ok(m));
        }
        if let Ok(m) = ClientCommand::parse(&line) {
            prop_assert_eq!(ClientCommand::parse(strip(&m.encode())), Ok(m));
        }
        if let Ok(m) = UserdbReply::parse(&line) {
            prop_assert_eq!(UserdbReply::parse(strip(&m.encode())), Ok(m));
        }
        if let Ok(m) = UserdbRequest::parse(&line) {
            prop_assert_eq!(UserdbRequest::parse(strip(&m.encode())), Ok(m));
        }
    }

    #[test]
    fn escape_round_trip(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let escaped = escape_bytes(&data);
        prop_assert!(!escaped.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r' | 0)));
        prop_assert_eq!(unescape_bytes(&escaped), data);
    }

    #[test]
    fn fail_and_ok_round_trip(
        id in id(),
        user in prop::option::of(text()),
        reason in prop::option::of(text()),
        fields in prop::collection::vec((key(), text()), 0..4),
        resp in prop::option::of(prop::collection::vec(any::<u8>(), 0..32)),
    ) {
        let fields: Vec<Field> = fields.into_iter().map(|(k, v)| Field::new(k, v)).collect();
        let fail = ServerReply::Fail(FailReply {
            id,
            user: user.clone(),
            code: Some(FailCode::TempFail),
            reason,
            fields: fields.clone(),
        });
        let line = fail.encode();
        prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        prop_assert_eq!(ServerReply::parse(&line[..line.len() - 1]), Ok(fail));
        let ok = ServerReply::Ok(OkReply {
            id,
            user: Some(user.unwrap_or_default()),
            final_response: resp.map(Secret::new),
            fields,
        });
        let line = ok.encode();
        prop_assert_eq!(ServerReply::parse(&line[..line.len() - 1]), Ok(ok));
    }

    #[test]
    fn userdb_user_round_trip(
        id in id(),
        user in text().prop_filter("non-empty", |u| !u.is_empty()),
        fields in prop::collection::vec((key(), text()), 0..4),
    ) {
        let reply = UserdbReply::User {
            id,
            user,
            fields: fields.into_iter().map(|(k, v)| Field::new(k, v)).collect(),
        };
        let line = reply.encode();
        prop_assert_eq!(UserdbReply::parse(&line[..line.len() - 1]), Ok(reply));
    }

    #[test]
    fn machines_survive_any_input(
        data in prop::collection::vec(any::<u8>(), 0..4096),
        cut in 1usize..512,
        prefix in prop::sample::select(vec![
            "", "VERSION\t1\t2\nCPID\t7\n", "VERSION\t1\t0\n",
            "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nDONE\n",
        ]),
    ) {
        let mut input = prefix.as_bytes().to_vec();
        input.extend_from_slice(&data);
        let pid = NonZeroU32::MIN;
        let mut server = AuthServerConn::new(AuthServerConfig::new(
            vec![Mechanism::dovecot_default("PLAIN").unwrap_or(Mechanism::new("PLAIN", &[]))],
            1,
            1,
            Cookie([0; 16]),
        ));
        let mut client = AuthClientConn::new(AuthClientConfig::new(pid));
        let mut userdb_server = UserdbServerConn::new(UserdbServerConfig::new(1));
        let mut userdb_client = UserdbClientConn::new(UserdbClientConfig::default());
        let mut out = 0usize;
        for chunk in input.chunks(cut) {
            server.feed(chunk);
            while let Some(ev) = server.next_event() {
                // Answer every AUTH with a CONT, as a driver would.
                if let Ok(pochta_auth_proto::ServerEvent::Auth(start)) = ev {
                    let _ = server.reply_continue(start.request.id, b"");
                }
            }
            client.feed(chunk);
            while client.next_event().is_some() {}
            userdb_server.feed(chunk);
            while userdb_server.next_event().is_some() {}
            userdb_client.feed(chunk);
            while userdb_client.next_event().is_some() {}
            out += server.take_output().len() + userdb_server.take_output().len();
        }
        // Output stays proportional to the input (handshakes plus a bounded line per line in).
        prop_assert!(out <= 1024 + input.len() * 64, "{out} bytes out for {} in", input.len());
    }
}
