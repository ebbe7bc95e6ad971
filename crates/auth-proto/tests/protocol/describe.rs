//! One-line descriptions of events and errors, as written in `E:` transcript lines.

use pochta_auth_proto::{
    base64_encode, ClientError, ClientEvent, Disposition, Field, ServerError, ServerEvent,
    UserdbClientError, UserdbEvent, UserdbServerError, UserdbServerEvent,
};

pub(crate) fn fields(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| match &f.value {
            Some(v) => format!("{}={}", f.key, v),
            None => f.key.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn disposition(d: Disposition) -> &'static str {
    match d {
        Disposition::Failed(_) => "failed",
        Disposition::Disconnect => "disconnect",
    }
}

pub(crate) fn server(ev: Result<ServerEvent, ServerError>) -> String {
    match ev {
        Ok(ServerEvent::Hello { minor, client_pid }) => {
            format!("hello minor={minor} pid={client_pid}")
        }
        Ok(ServerEvent::Auth(start)) => {
            let r = &start.request;
            let mut s = format!(
                "auth id={} mech={} service={}",
                r.id, start.mechanism.name, r.service
            );
            if let Some(ip) = r.local_ip {
                s += &format!(" lip={ip}");
            }
            if let Some(ip) = r.remote_ip {
                s += &format!(" rip={ip}");
            }
            if let Some(sec) = r.secured {
                s += &format!(" secured={sec:?}");
            }
            if r.valid_client_cert {
                s += " valid-client-cert";
            }
            if r.no_penalty {
                s += " no-penalty";
            }
            if r.final_resp_ok {
                s += " final-resp-ok";
            }
            if let Some(v) = &r.session {
                s += &format!(" session={v}");
            }
            if !r.other.is_empty() {
                s += &format!(" other={}", fields(&r.other));
            }
            match &r.initial_response {
                Some(ir) => s += &format!(" ir={}", base64_encode(ir.expose())),
                None => s += " ir=none",
            }
            s
        }
        Ok(ServerEvent::Continue { id, data }) => {
            format!("cont id={id} data={}", base64_encode(data.expose()))
        }
        Ok(ServerEvent::Cancel { id }) => format!("cancel id={id}"),
        Err(e) => format!("error {} {e:?}", disposition(e.disposition())),
    }
}

pub(crate) fn client(ev: Result<ClientEvent, ClientError>) -> String {
    match ev {
        Ok(ClientEvent::Ready(info)) => {
            let mechs: Vec<String> = info
                .mechanisms
                .iter()
                .map(|m| {
                    let flags: Vec<&str> = m.flags.iter().map(|f| f.as_str()).collect();
                    format!("{}({})", m.name, flags.join(","))
                })
                .collect();
            format!(
                "ready minor={} mechs={} spid={:?} cuid={:?} cookie={}",
                info.minor,
                mechs.join(","),
                info.server_pid,
                info.connection_id,
                info.cookie.map(|c| c.to_hex()).unwrap_or_default()
            )
        }
        Ok(ClientEvent::Continue { id, data }) => {
            format!("cont id={id} data={}", base64_encode(data.expose()))
        }
        Ok(ClientEvent::Success { user, reply }) => {
            let mut s = format!("success id={} user={user}", reply.id);
            if let Some(r) = &reply.final_response {
                s += &format!(" resp={}", base64_encode(r.expose()));
            }
            if !reply.fields.is_empty() {
                s += &format!(" fields={}", fields(&reply.fields));
            }
            s
        }
        Ok(ClientEvent::Failure(f)) => {
            let mut s = format!("failure id={}", f.id);
            if let Some(u) = &f.user {
                s += &format!(" user={u}");
            }
            if let Some(c) = &f.code {
                s += &format!(" code={}", c.as_str());
            }
            if let Some(r) = &f.reason {
                s += &format!(" reason={r}");
            }
            if !f.fields.is_empty() {
                s += &format!(" fields={}", fields(&f.fields));
            }
            s
        }
        Ok(ClientEvent::Cancelled(id)) => format!("cancelled id={id}"),
        Err(e) => {
            let kind = if e.is_fatal() { "fatal" } else { "request" };
            format!("error {kind} {e:?}")
        }
    }
}

pub(crate) fn userdb_server(ev: Result<UserdbServerEvent, UserdbServerError>) -> String {
    match ev {
        Ok(UserdbServerEvent::Hello { minor }) => format!("hello minor={minor}"),
        Ok(UserdbServerEvent::User(l)) => format!(
            "user id={} user={} service={} fields={}",
            l.id,
            l.user,
            l.service,
            fields(&l.fields)
        ),
        Ok(UserdbServerEvent::Pass(l)) => format!(
            "pass id={} user={} service={} fields={}",
            l.id,
            l.user,
            l.service,
            fields(&l.fields)
        ),
        Ok(UserdbServerEvent::List(l)) => format!(
            "list id={} mask={} service={}",
            l.id,
            l.user_mask.unwrap_or_default(),
            l.service.unwrap_or_default()
        ),
        Err(e) => format!("error {} {e:?}", disposition(e.disposition())),
    }
}

pub(crate) fn userdb_client(ev: Result<UserdbEvent, UserdbClientError>) -> String {
    match ev {
        Ok(UserdbEvent::Ready { minor, server_pid }) => {
            format!("ready minor={minor} spid={server_pid}")
        }
        Ok(UserdbEvent::User {
            id,
            user,
            fields: f,
        }) => {
            format!("user id={id} user={user} fields={}", fields(&f))
        }
        Ok(UserdbEvent::Pass {
            id,
            user,
            fields: f,
        }) => format!(
            "pass id={id} user={} fields={}",
            user.unwrap_or_default(),
            fields(&f)
        ),
        Ok(UserdbEvent::NotFound(id)) => format!("notfound id={id}"),
        Ok(UserdbEvent::Failed { id, reason }) => {
            format!("failed id={id} reason={}", reason.unwrap_or_default())
        }
        Ok(UserdbEvent::ListUser { id, user }) => format!("listuser id={id} user={user}"),
        Ok(UserdbEvent::ListDone { id, failed }) => format!("listdone id={id} failed={failed}"),
        Err(e) => format!("error fatal {e:?}"),
    }
}
