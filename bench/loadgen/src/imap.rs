//! IMAP load: concurrent sessions, each LOGIN, SELECT INBOX, then a fixed command mix repeated
//! (NOOP; UID FETCH 1:* (FLAGS); FETCH n (BODY.PEEK[]) of a message chosen by a fixed stride;
//! UID SEARCH SUBJECT; STATUS INBOX (MESSAGES UNSEEN)), LOGOUT. Latency per command; any NO/BAD
//! or a short answer is an error. [`Session`] scripts single commands for the harness's
//! large-mailbox measurement; [`open_idle`]/[`close_idle`] hold many sessions in IDLE.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::stats::Latencies;
use crate::wire::Wire;

/// Largest literal accepted from the server.
const MAX_LITERAL: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Options {
    /// host:port of the IMAP server (plaintext; loopback).
    pub addr: String,
    /// (user, password); session i logs in as users[i % users].
    pub users: Vec<(String, String)>,
    pub concurrency: usize,
    pub sessions: usize,
    /// Commands of the mix each session sends after SELECT.
    pub commands: usize,
    /// Messages every INBOX must hold (SELECT's EXISTS is checked).
    pub expect_messages: usize,
    pub timeout: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub sessions: usize,
    pub commands: usize,
    pub elapsed: Duration,
    pub latencies: Latencies,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Reads the answer to `tag`: untagged lines (with literals) until the tagged one, which must
/// be OK. Returns the untagged lines (literal contents skipped, their sizes summed).
async fn answer(w: &mut Wire<TcpStream>, tag: &str) -> Result<(Vec<String>, usize), String> {
    let mut lines = Vec::new();
    let mut literal_octets = 0;
    loop {
        let line = w.text().await?;
        if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            if rest.starts_with("OK") {
                return Ok((lines, literal_octets));
            }
            return Err(format!("{tag}: {line:?}"));
        }
        // A line ending in {n} announces n octets of literal, then the line goes on.
        let mut tail = line.clone();
        let mut cur = line;
        while let Some(n) = literal_len(&tail) {
            if n > MAX_LITERAL {
                return Err(format!("literal of {n} octets"));
            }
            w.bytes(n).await?;
            literal_octets += n;
            tail = w.text().await?;
            cur.push_str(&tail);
        }
        lines.push(cur);
    }
}

fn literal_len(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
}

async fn command(
    w: &mut Wire<TcpStream>,
    n: &mut u32,
    cmd: &str,
) -> Result<(Vec<String>, usize), String> {
    *n += 1;
    let tag = format!("a{n}");
    w.send(&format!("{tag} {cmd}\r\n")).await?;
    answer(w, &tag).await
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn session(opts: &Options, i: usize, out: &mut Outcome) -> Result<(), String> {
    let (user, pass) = &opts.users[i % opts.users.len()];
    let stream = TcpStream::connect(&opts.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", opts.addr))?;
    let _ = stream.set_nodelay(true);
    let mut w = Wire::new(stream, opts.timeout);
    let greeting = w.text().await?;
    if !greeting.starts_with("* OK") {
        return Err(format!("greeting: {greeting:?}"));
    }
    let mut n = 0;
    command(
        &mut w,
        &mut n,
        &format!("LOGIN {} {}", quote(user), quote(pass)),
    )
    .await?;
    let (lines, _) = command(&mut w, &mut n, "SELECT INBOX").await?;
    let exists = lines
        .iter()
        .find_map(|l| l.strip_suffix(" EXISTS").and_then(|l| l.strip_prefix("* ")))
        .and_then(|v| v.parse::<usize>().ok())
        .ok_or_else(|| format!("{user}: SELECT without EXISTS"))?;
    if exists != opts.expect_messages {
        return Err(format!(
            "{user}: {exists} messages, {} expected",
            opts.expect_messages
        ));
    }
    for k in 0..opts.commands {
        let msg = (k * 7919 + i * 104_729) % exists + 1;
        let cmd = match k % 5 {
            0 => "NOOP".to_owned(),
            1 => "UID FETCH 1:* (FLAGS)".to_owned(),
            2 => format!("FETCH {msg} (BODY.PEEK[])"),
            3 => format!("UID SEARCH SUBJECT \"message {:06}\"", msg - 1),
            _ => "STATUS INBOX (MESSAGES UNSEEN)".to_owned(),
        };
        let t0 = Instant::now();
        let (lines, octets) = command(&mut w, &mut n, &cmd).await?;
        out.latencies.push(t0.elapsed());
        let ok = match k % 5 {
            1 => lines.iter().filter(|l| l.contains("FETCH")).count() == exists,
            2 => octets > 0,
            3 => lines
                .iter()
                .any(|l| l.starts_with("* SEARCH ") && l.len() > 9),
            _ => true,
        };
        if !ok {
            return Err(format!("{user}: short answer to {cmd:?}"));
        }
        out.commands += 1;
    }
    command(&mut w, &mut n, "LOGOUT").await?;
    out.sessions += 1;
    Ok(())
}

/// Worker k runs sessions k, k + concurrency, …
async fn worker(opts: std::sync::Arc<Options>, k: usize) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    for i in (k..opts.sessions).step_by(opts.concurrency) {
        session(&opts, i, &mut out).await?;
    }
    Ok(out)
}

/// Runs the load; an error means the run is not a result.
pub async fn run(opts: Options) -> Result<Outcome, String> {
    if opts.users.is_empty() || opts.concurrency == 0 {
        return Err("no users or no concurrency".into());
    }
    let opts = std::sync::Arc::new(opts);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..opts.concurrency)
        .map(|k| tokio::spawn(worker(opts.clone(), k)))
        .collect();
    let mut total = Outcome::default();
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(o)) => {
                total.sessions += o.sessions;
                total.commands += o.commands;
                total.latencies.extend(o.latencies);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("worker task: {e}"));
            }
        }
    }
    total.elapsed = t0.elapsed();
    match first_err {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// One scripted IMAP connection, logged in (the large-mailbox and IDLE measurements).
pub struct Session {
    w: Wire<TcpStream>,
    n: u32,
    /// The tag of the IDLE in progress.
    idle_tag: Option<String>,
    pub user: String,
}

impl Session {
    /// Connects, checks the greeting and logs in with LOGIN.
    pub async fn login(
        addr: &str,
        user: &str,
        pass: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut w = Wire::new(stream, timeout);
        let greeting = w.text().await?;
        if !greeting.starts_with("* OK") {
            return Err(format!("greeting: {greeting:?}"));
        }
        let mut s = Session {
            w,
            n: 0,
            idle_tag: None,
            user: user.to_owned(),
        };
        s.command(&format!("LOGIN {} {}", quote(user), quote(pass)))
            .await
            .map_err(|e| format!("{user}: {e}"))?;
        Ok(s)
    }

    fn tag(&mut self) -> String {
        self.n += 1;
        format!("b{}", self.n)
    }

    /// Sends a command; its untagged lines (literal contents skipped) and literal octets.
    pub async fn command(&mut self, cmd: &str) -> Result<(Vec<String>, usize), String> {
        let tag = self.tag();
        self.w.send(&format!("{tag} {cmd}\r\n")).await?;
        answer(&mut self.w, &tag).await
    }

    /// SELECT: the EXISTS count it reports.
    pub async fn select(&mut self, mailbox: &str) -> Result<usize, String> {
        let (lines, _) = self.command(&format!("SELECT {}", quote(mailbox))).await?;
        lines
            .iter()
            .find_map(|l| l.strip_suffix(" EXISTS").and_then(|l| l.strip_prefix("* ")))
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| format!("{}: SELECT without EXISTS", self.user))
    }

    /// Sends `cmd` and counts the untagged lines that contain `word` (e.g. " FETCH "), without
    /// keeping them: a 100,000-line answer costs the generator as little as possible. The answer
    /// must not carry literals.
    pub async fn count_untagged(&mut self, cmd: &str, word: &str) -> Result<usize, String> {
        let tag = self.tag();
        self.w.send(&format!("{tag} {cmd}\r\n")).await?;
        let (tag_b, word_b) = (format!("{tag} ").into_bytes(), word.as_bytes());
        let mut count = 0;
        let end = self
            .w
            .each_line(|l| {
                if l.starts_with(&tag_b) {
                    return Some(String::from_utf8_lossy(&l[tag_b.len()..]).into_owned());
                }
                if l.starts_with(b"* ") && l.windows(word_b.len()).any(|x| x == word_b) {
                    count += 1;
                }
                None
            })
            .await?;
        if !end.starts_with("OK") {
            return Err(format!("{}: {cmd}: {tag} {}", self.user, end.trim_end()));
        }
        Ok(count)
    }

    /// A SEARCH command: the numbers of its `* SEARCH` lines (ESEARCH is not asked for).
    pub async fn search(&mut self, cmd: &str) -> Result<Vec<u32>, String> {
        let (lines, _) = self.command(cmd).await?;
        let mut out = Vec::new();
        for l in &lines {
            if let Some(rest) = l.strip_prefix("* SEARCH") {
                for v in rest.split_ascii_whitespace() {
                    out.push(
                        v.parse()
                            .map_err(|_| format!("{}: bad SEARCH answer {l:?}", self.user))?,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Starts IDLE (RFC 2177) and waits for the continuation.
    pub async fn idle(&mut self) -> Result<(), String> {
        let tag = self.tag();
        self.w.send(&format!("{tag} IDLE\r\n")).await?;
        loop {
            let line = self.w.text().await?;
            if line.starts_with('+') {
                self.idle_tag = Some(tag);
                return Ok(());
            }
            if line.starts_with(&format!("{tag} ")) {
                return Err(format!("{}: IDLE refused: {line:?}", self.user));
            }
        }
    }

    /// Ends IDLE with DONE; the IDLE's tagged answer must be OK.
    pub async fn done(&mut self) -> Result<(), String> {
        let tag = self
            .idle_tag
            .take()
            .ok_or_else(|| format!("{}: DONE without IDLE", self.user))?;
        self.w.send("DONE\r\n").await?;
        answer(&mut self.w, &tag)
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: IDLE ended: {e}", self.user))
    }

    pub async fn logout(mut self) -> Result<(), String> {
        self.command("LOGOUT").await.map(|_| ())
    }
}

/// Opens one session per user, `concurrency` logins at a time: LOGIN, SELECT INBOX (EXISTS must
/// equal `expect_messages`), IDLE. Returns the idling sessions.
pub async fn open_idle(
    addr: &str,
    users: &[(String, String)],
    expect_messages: usize,
    concurrency: usize,
    timeout: Duration,
) -> Result<Vec<Session>, String> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (user, pass) in users {
        let (sem, addr) = (sem.clone(), addr.to_owned());
        let (user, pass) = (user.clone(), pass.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| format!("{e}"))?;
            let mut s = Session::login(&addr, &user, &pass, timeout).await?;
            let exists = s.select("INBOX").await?;
            if exists != expect_messages {
                return Err(format!(
                    "{user}: {exists} messages, {expect_messages} expected"
                ));
            }
            s.idle().await?;
            Ok::<Session, String>(s)
        });
    }
    let mut out = Vec::with_capacity(users.len());
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(s)) => out.push(s),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("session task: {e}"));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Ends every IDLE (the server must still answer each one OK) and logs out; sessions done.
pub async fn close_idle(sessions: Vec<Session>, concurrency: usize) -> Result<usize, String> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for mut s in sessions {
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| format!("{e}"))?;
            s.done().await?;
            s.logout().await
        });
    }
    let mut done = 0;
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => done += 1,
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("session task: {e}"));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_lengths() {
        assert_eq!(literal_len("* 1 FETCH (BODY[] {4293}"), Some(4293));
        assert_eq!(literal_len("* 1 FETCH (BODY[] {12+}"), Some(12));
        assert_eq!(literal_len("* 1 FETCH (FLAGS ())"), None);
        assert_eq!(literal_len("{x}"), None);
    }
}
