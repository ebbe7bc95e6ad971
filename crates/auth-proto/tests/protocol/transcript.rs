//! Replays the dialogs in `tests/transcripts/*.txt` against the state machines.
//!
//! Format (one item per line):
//! - `# …` comment, blank lines ignored.
//! - `@role auth-server|auth-client|userdb-server|userdb-client`: the machine under test; other
//!   `@key value` lines configure it (`@minor`, `@pid`, `@mechs NAME:flag,flag …`, `@max_line`,
//!   `@max_in_flight`, `@restricted_uid`).
//! - `C: line` / `S: line`: a line sent by the client / server. Lines of the peer are fed to the
//!   machine; lines of the machine's own side must be exactly what it wrote by itself.
//! - `C+ line` / `S+ line`: a line the machine's side sends because its driver asked (an API call
//!   made from the parsed line); the machine's output must parse to the same message.
//! - `C~ bytes` / `S~ bytes`: peer bytes fed without a trailing LF.
//! - `E: text`: the next event (or error) must be described by a string starting with `text`;
//!   `E: none` = no event pending, `E: closed` = the machine closed the connection.
//!
//! In line text `\t`, `\r`, `\n`, `\\` and `\xHH` are escapes and `{c*N}` is `c` repeated N
//! times. At the end no event and no unchecked output may remain.

use std::num::NonZeroU32;
use std::path::Path;

use pochta_auth_proto::{
    AuthClientConfig, AuthClientConn, AuthServerConfig, AuthServerConn, ClientCommand, Cookie,
    MechFlag, MechFlags, Mechanism, ServerReply, UserdbClientConfig, UserdbClientConn, UserdbReply,
    UserdbRequest, UserdbServerConfig, UserdbServerConn,
};

use crate::describe;

enum Machine {
    AuthServer(AuthServerConn),
    AuthClient(AuthClientConn),
    UserdbServer(UserdbServerConn),
    UserdbClient(UserdbClientConn),
}

/// Which side the machine plays.
fn is_server(role: &str) -> bool {
    role.ends_with("server")
}

#[derive(Default)]
struct Settings {
    role: String,
    minor: Option<u32>,
    pid: Option<u32>,
    mechs: Option<Vec<Mechanism>>,
    max_line: Option<usize>,
    max_in_flight: Option<usize>,
    restricted_uid: Option<u32>,
}

impl Settings {
    fn build(&self) -> Result<Machine, String> {
        Ok(match self.role.as_str() {
            "auth-server" => {
                let mechs = self.mechs.clone().unwrap_or_else(|| {
                    vec![
                        Mechanism::new("PLAIN", &[MechFlag::Plaintext]),
                        Mechanism::new("LOGIN", &[MechFlag::Plaintext]),
                        Mechanism::new("CRAM-MD5", &[MechFlag::Dictionary, MechFlag::Active]),
                    ]
                });
                let cookie =
                    Cookie::from_hex("9f0c0d5a51b2c81e4b7a2e66d1c0f3aa").ok_or("cookie")?;
                let mut c = AuthServerConfig::new(mechs, self.pid.unwrap_or(812), 17, cookie);
                if let Some(m) = self.minor {
                    c.minor = m;
                }
                if let Some(m) = self.max_line {
                    c.max_line = m;
                }
                if let Some(m) = self.max_in_flight {
                    c.max_in_flight = m;
                }
                Machine::AuthServer(AuthServerConn::new(c))
            }
            "auth-client" => {
                let pid = NonZeroU32::new(self.pid.unwrap_or(23044)).ok_or("pid 0")?;
                let mut c = AuthClientConfig::new(pid);
                if let Some(m) = self.minor {
                    c.minor = m;
                }
                if let Some(m) = self.max_line {
                    c.max_line = m;
                }
                Machine::AuthClient(AuthClientConn::new(c))
            }
            "userdb-server" => {
                let mut c = UserdbServerConfig::new(self.pid.unwrap_or(812));
                if let Some(m) = self.minor {
                    c.minor = m;
                }
                if let Some(m) = self.max_line {
                    c.max_line = m;
                }
                c.restricted_uid = self.restricted_uid;
                Machine::UserdbServer(UserdbServerConn::new(c))
            }
            "userdb-client" => {
                let mut c = UserdbClientConfig::default();
                if let Some(m) = self.minor {
                    c.minor = m;
                }
                if let Some(m) = self.max_line {
                    c.max_line = m;
                }
                Machine::UserdbClient(UserdbClientConn::new(c))
            }
            other => return Err(format!("unknown role {other:?}")),
        })
    }
}

impl Machine {
    fn feed(&mut self, data: &[u8]) {
        match self {
            Machine::AuthServer(m) => m.feed(data),
            Machine::AuthClient(m) => m.feed(data),
            Machine::UserdbServer(m) => m.feed(data),
            Machine::UserdbClient(m) => m.feed(data),
        }
    }

    fn take_output(&mut self) -> Vec<u8> {
        match self {
            Machine::AuthServer(m) => m.take_output(),
            Machine::AuthClient(m) => m.take_output(),
            Machine::UserdbServer(m) => m.take_output(),
            Machine::UserdbClient(m) => m.take_output(),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Machine::AuthServer(m) => m.is_closed(),
            Machine::AuthClient(m) => m.is_closed(),
            Machine::UserdbServer(m) => m.is_closed(),
            Machine::UserdbClient(m) => m.is_closed(),
        }
    }

    fn next_event(&mut self) -> Option<String> {
        match self {
            Machine::AuthServer(m) => m.next_event().map(describe::server),
            Machine::AuthClient(m) => m.next_event().map(describe::client),
            Machine::UserdbServer(m) => m.next_event().map(describe::userdb_server),
            Machine::UserdbClient(m) => m.next_event().map(describe::userdb_client),
        }
    }

    /// Makes the driver send `line` through the API; checks the written line means the same.
    fn driver(&mut self, line: &[u8]) -> Result<(), String> {
        let written = match self {
            Machine::AuthServer(m) => {
                let reply = ServerReply::parse(line).map_err(|e| e.to_string())?;
                let r = match reply.clone() {
                    ServerReply::Cont { id, data, .. } => m.reply_continue(id, data.expose()),
                    ServerReply::Ok(ok) => m.reply_ok(ok),
                    ServerReply::Fail(f) => m.reply_fail(f),
                    other => return Err(format!("no driver call for {other:?}")),
                };
                r.map_err(|e| e.to_string())?;
                let out = m.take_output();
                let got = ServerReply::parse(strip_lf(&out)?).map_err(|e| e.to_string())?;
                (got == reply, out)
            }
            Machine::AuthClient(m) => {
                let cmd = ClientCommand::parse(line).map_err(|e| e.to_string())?;
                let r = match &cmd {
                    ClientCommand::Auth(req) => m.start(req),
                    ClientCommand::Cont { id, data } => m.respond(*id, data.expose()),
                    ClientCommand::Cancel(id) => m.cancel(*id),
                    other => return Err(format!("no driver call for {other:?}")),
                };
                r.map_err(|e| e.to_string())?;
                let out = m.take_output();
                let got = ClientCommand::parse(strip_lf(&out)?).map_err(|e| e.to_string())?;
                (got == cmd, out)
            }
            Machine::UserdbServer(m) => {
                let reply = UserdbReply::parse(line).map_err(|e| e.to_string())?;
                match reply.clone() {
                    UserdbReply::User { id, user, fields } => {
                        m.reply_user(id, &user, fields);
                    }
                    UserdbReply::Pass { id, user, fields } => {
                        m.reply_pass(id, &user.unwrap_or_default(), fields)
                    }
                    UserdbReply::NotFound(id) => m.reply_notfound(id),
                    UserdbReply::Fail { id, reason } => m.reply_fail(id, reason.as_deref()),
                    UserdbReply::List { id, user } => m.list_user(id, &user),
                    UserdbReply::Done { id, failed } => m.list_done(id, failed),
                    other => return Err(format!("no driver call for {other:?}")),
                }
                let out = m.take_output();
                let got = UserdbReply::parse(strip_lf(&out)?).map_err(|e| e.to_string())?;
                (got == reply, out)
            }
            Machine::UserdbClient(m) => {
                let req = UserdbRequest::parse(line).map_err(|e| e.to_string())?;
                let r = match req.clone() {
                    UserdbRequest::User(l) => m.user(l),
                    UserdbRequest::Pass(l) => m.pass(l),
                    UserdbRequest::List(l) => m.list(l),
                    other => return Err(format!("no driver call for {other:?}")),
                };
                r.map_err(|e| e.to_string())?;
                let out = m.take_output();
                let got = UserdbRequest::parse(strip_lf(&out)?).map_err(|e| e.to_string())?;
                (got == req, out)
            }
        };
        match written {
            (true, _) => Ok(()),
            (false, out) => Err(format!("driver wrote {:?}", String::from_utf8_lossy(&out))),
        }
    }
}

fn strip_lf(out: &[u8]) -> Result<&[u8], String> {
    match out.strip_suffix(b"\n") {
        Some(l) if !l.contains(&b'\n') => Ok(l),
        _ => Err(format!(
            "expected exactly one line, got {:?}",
            String::from_utf8_lossy(out)
        )),
    }
}

/// Expands `\t`, `\r`, `\n`, `\\`, `\xHH` and `{c*N}`.
fn expand(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let c = *b.get(i + 1).ok_or("trailing backslash")?;
                i += 2;
                match c {
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'n' => out.push(b'\n'),
                    b'\\' => out.push(b'\\'),
                    b'x' => {
                        let hex = text.get(i..i + 2).ok_or("short \\x")?;
                        out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                        i += 2;
                    }
                    other => return Err(format!("unknown escape \\{}", other as char)),
                }
            }
            b'{' if b.get(i + 2) == Some(&b'*') => {
                let end = text[i..].find('}').ok_or("unclosed {")? + i;
                let n: usize = text[i + 3..end].parse().map_err(|_| "bad repeat count")?;
                out.extend(std::iter::repeat_n(b[i + 1], n));
                i = end + 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn parse_mechs(spec: &str) -> Result<Vec<Mechanism>, String> {
    spec.split_whitespace()
        .map(|m| {
            let (name, flags) = m.split_once(':').unwrap_or((m, ""));
            let flags = flags
                .split(',')
                .filter(|f| !f.is_empty())
                .map(|f| MechFlag::parse(f).ok_or(format!("unknown flag {f}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Mechanism {
                name: name.to_owned(),
                flags: MechFlags::from_flags(&flags),
            })
        })
        .collect()
}

fn run(text: &str) -> Result<(), (usize, String)> {
    let mut settings = Settings::default();
    let mut machine: Option<Machine> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut last_line = 0;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        last_line = n;
        let err = |e: String| (n, e);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(dir) = line.strip_prefix('@') {
            if machine.is_some() {
                return Err(err("directive after the dialog started".into()));
            }
            let (key, value) = dir.split_once(' ').unwrap_or((dir, ""));
            let num = || value.trim().parse::<u32>().map_err(|e| err(e.to_string()));
            match key {
                "role" => settings.role = value.trim().to_owned(),
                "minor" => settings.minor = Some(num()?),
                "pid" => settings.pid = Some(num()?),
                "max_line" => settings.max_line = Some(num()? as usize),
                "max_in_flight" => settings.max_in_flight = Some(num()? as usize),
                "restricted_uid" => settings.restricted_uid = Some(num()?),
                "mechs" => settings.mechs = Some(parse_mechs(value).map_err(err)?),
                other => return Err(err(format!("unknown directive @{other}"))),
            }
            continue;
        }
        if machine.is_none() {
            machine = Some(settings.build().map_err(err)?);
        }
        let Some(m) = machine.as_mut() else {
            return Err(err("no machine".into()));
        };
        if line.len() < 3 {
            return Err(err(format!("bad line {line:?}")));
        }
        let (tag, rest) = line.split_at(2);
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let ours = if is_server(&settings.role) { 'S' } else { 'C' };
        let who = tag.chars().next().unwrap_or('?');
        match (tag.chars().nth(1), who == ours) {
            (Some(':'), false) if who == 'C' || who == 'S' => {
                let mut data = expand(rest).map_err(err)?;
                data.push(b'\n');
                m.feed(&data);
            }
            (Some('~'), false) => m.feed(&expand(rest).map_err(err)?),
            (Some(':'), true) => {
                pending.extend(m.take_output());
                let mut want = expand(rest).map_err(err)?;
                want.push(b'\n');
                if !pending.starts_with(&want) {
                    return Err(err(format!(
                        "expected output {:?}, have {:?}",
                        String::from_utf8_lossy(&want),
                        String::from_utf8_lossy(&pending)
                    )));
                }
                pending.drain(..want.len());
            }
            (Some('+'), true) => {
                pending.extend(m.take_output());
                if !pending.is_empty() {
                    return Err(err(format!(
                        "unchecked output before driver line: {:?}",
                        String::from_utf8_lossy(&pending)
                    )));
                }
                m.driver(&expand(rest).map_err(err)?).map_err(err)?;
            }
            (Some(':'), _) if who == 'E' => match rest {
                "none" => {
                    if let Some(ev) = m.next_event() {
                        return Err(err(format!("unexpected event {ev}")));
                    }
                }
                "closed" => {
                    if !m.is_closed() {
                        return Err(err("connection not closed".into()));
                    }
                }
                want => match m.next_event() {
                    Some(ev) if ev.starts_with(want) => {}
                    Some(ev) => return Err(err(format!("expected event {want}, got {ev}"))),
                    None => return Err(err(format!("expected event {want}, got none"))),
                },
            },
            _ => return Err(err(format!("bad line {line:?}"))),
        }
    }
    if let Some(m) = machine.as_mut() {
        if let Some(ev) = m.next_event() {
            return Err((last_line, format!("event left at end: {ev}")));
        }
        pending.extend(m.take_output());
        if !pending.is_empty() {
            return Err((
                last_line,
                format!(
                    "output left at end: {:?}",
                    String::from_utf8_lossy(&pending)
                ),
            ));
        }
    }
    Ok(())
}

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("transcript dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "transcripts missing in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read transcript");
        if let Err((line, msg)) = run(&text) {
            failures.push(format!("{}:{line}: {msg}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn harness_detects_mismatch() {
    let bad = "@role auth-server\nS: VERSION\\t1\\t9\n";
    assert!(run(bad).is_err());
    let leftover = "@role auth-server\n";
    assert!(run(leftover).is_ok(), "no line: machine never built");
    let unchecked = "@role userdb-server\nC: VERSION\\t1\\t0\n";
    assert!(run(unchecked).is_err(), "handshake output left unchecked");
}
