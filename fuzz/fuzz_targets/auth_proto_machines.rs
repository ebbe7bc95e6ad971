//! All four state machines (auth-client server and client, userdb server and client) fed the
//! same bytes in chunks chosen by the first input byte, with a driver that answers every
//! request: never a panic, and output bounded by the input. Words: fuzz/dict/auth.dict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::num::NonZeroU32;

use pochta_auth_proto::{
    AuthClientConfig, AuthClientConn, AuthServerConfig, AuthServerConn, Cookie, FailReply,
    Field, Mechanism, OkReply, RequestId, ServerEvent, UserdbClientConfig, UserdbClientConn,
    UserdbServerConfig, UserdbServerConn, UserdbServerEvent,
};

fuzz_target!(|data: &[u8]| {
    let Some((&opts, input)) = data.split_first() else {
        return;
    };
    let cut = usize::from(opts & 0x3f) + 1;
    let mechs = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]
        .iter()
        .filter_map(|m| Mechanism::dovecot_default(m))
        .collect();
    let mut server_cfg = AuthServerConfig::new(mechs, 1, 1, Cookie([7; 16]));
    server_cfg.minor = u32::from(opts >> 6) + 1;
    server_cfg.max_in_flight = 8;
    let mut server = AuthServerConn::new(server_cfg);
    let mut client = AuthClientConn::new(AuthClientConfig::new(NonZeroU32::MIN));
    let mut userdb_cfg = UserdbServerConfig::new(1);
    userdb_cfg.restricted_uid = (opts & 0x40 != 0).then_some(1000);
    let mut userdb_server = UserdbServerConn::new(userdb_cfg);
    let mut userdb_client = UserdbClientConn::new(UserdbClientConfig::default());
    let pending = userdb_client.next_request_id();
    let _ = userdb_client.user(pochta_auth_proto::UserLookup::new(pending, "u", "lmtp"));
    let mut out = 0usize;
    let mut turn = 0u32;
    for chunk in input.chunks(cut) {
        server.feed(chunk);
        while let Some(ev) = server.next_event() {
            turn = turn.wrapping_add(1);
            let id = match &ev {
                Ok(ServerEvent::Auth(start)) => Some(start.request.id),
                Ok(ServerEvent::Continue { id, .. }) => Some(*id),
                _ => None,
            };
            if let Some(id) = id {
                let _ = match turn % 3 {
                    0 => server.reply_continue(id, b"challenge"),
                    1 => server.reply_ok(OkReply {
                        id,
                        user: Some("u".into()),
                        final_response: Some(b"v=x".to_vec().into()),
                        fields: vec![Field::flag("nologin")],
                    }),
                    _ => server.reply_fail(FailReply::with_reason(id, "no")),
                };
            }
        }
        client.feed(chunk);
        while let Some(ev) = client.next_event() {
            if let Ok(pochta_auth_proto::ClientEvent::Continue { id, .. }) = ev {
                let _ = client.respond(id, b"answer");
            }
        }
        userdb_server.feed(chunk);
        while let Some(ev) = userdb_server.next_event() {
            match ev {
                Ok(UserdbServerEvent::User(l)) => {
                    userdb_server.reply_user(l.id, &l.user, vec![Field::new("uid", "1000")]);
                }
                Ok(UserdbServerEvent::Pass(l)) => userdb_server.reply_notfound(l.id),
                Ok(UserdbServerEvent::List(l)) => {
                    userdb_server.list_user(l.id, "u");
                    userdb_server.list_done(l.id, false);
                }
                _ => {}
            }
        }
        userdb_client.feed(chunk);
        while userdb_client.next_event().is_some() {}
        out += server.take_output().len()
            + client.take_output().len()
            + userdb_server.take_output().len();
    }
    let _ = RequestId::MIN;
    assert!(out <= 4096 + input.len() * 128, "{out} bytes out for {} in", input.len());
});
