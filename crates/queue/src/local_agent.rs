//! The local delivery agent for aliases(5) `|command` and `/file` targets (Postfix local(8)'s
//! deliver_command() and deliver_file(), with its mail_copy() and pipe_command()).
//!
//! - command: `/bin/sh -c COMMAND` in its own process group, cwd `/`, a clean environment
//!   (local(8)'s variables, values outside `command_expansion_filter` replaced by `_`), the
//!   message on stdin after a `From ` line, `Return-Path:`, `X-Original-To:` and
//!   `Delivered-To:` (local(8)'s copy flags for commands), LF line ends. Exit 0 delivered;
//!   `EX_TEMPFAIL` (75), other 4.x sysexits, a signal or `command_time_limit` (the process
//!   group is killed) deferred; other sysexits bounced with sys_exits.c's status; an output
//!   that starts with an enhanced status code overrides the exit code. The first KiB of
//!   output (stdout and stderr, one pipe) goes into the reason; the rest is read and dropped.
//! - file: mbox append (`From ` line, `>From ` quoting, the same headers, a blank line after),
//!   opened `O_APPEND|O_CREAT|O_NOFOLLOW` mode 0600, exclusive flock (kernel lock only),
//!   fsynced before it counts; on any error cut back to its old size and deferred. Runs on
//!   the blocking pool.
//!
//! Rights: pochta-mta cannot change users (it runs as its `[server] user`), so a target whose
//! rights (the owner of the aliases file that named it) are not the process's own is
//! deferred with the reason; the mta refuses such tables at load. Nothing here ever runs as
//! root.
//!
//! Differences from Postfix, on purpose: a command past its time limit is deferred (Postfix
//! bounces it: the cause is rarely the message); file errors are deferred (Postfix bounces
//! most of them), except an executable file (5.7.1, as Postfix); `HOME=/` and `SHELL=/bin/sh`
//! (Postfix takes the aliases file owner's passwd entry); always through `/bin/sh -c`; a
//! path ending in `/` (Postfix: maildir) is deferred as unsupported; From_ dates in UTC.

use crate::config::DeliveryConfig;
use crate::file::{Agent, LocalAlias, Parsed, StoredRecipient};
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Most command output kept for the reason (Postfix keeps a buffer's worth).
const OUTPUT_LIMIT: usize = 1024;
/// flock attempts and the pause between them (Postfix deliver_flock_attempts 5,
/// deliver_flock_delay 1s).
const LOCK_TRIES: u32 = 5;
const LOCK_DELAY: Duration = if cfg!(test) {
    Duration::from_millis(20)
} else {
    Duration::from_secs(1)
};
/// Postfix's command_expansion_filter: other characters in exported values become `_`.
const EXPANSION_FILTER: &str = "1234567890!@%-_=+:,./\
                                abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Environment variables passed on unchanged (Postfix export_environment, less MAIL_CONFIG).
const EXPORTED: [&str; 2] = ["TZ", "LANG"];

/// How one local delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalOutcome {
    /// 2 delivered, 4 deferred, 5 bounced.
    pub(crate) class: u16,
    pub(crate) dsn: String,
    /// Postfix's wording: `delivered to command: …`, `Command died with status 1: …`.
    pub(crate) text: String,
    /// RFC 3464 Diagnostic-Code; empty: `X-Postfix; text`.
    pub(crate) diag: String,
}

impl LocalOutcome {
    fn sent(text: String) -> LocalOutcome {
        LocalOutcome {
            class: 2,
            dsn: "2.0.0".into(),
            text,
            diag: String::new(),
        }
    }

    fn defer(dsn: &str, text: String) -> LocalOutcome {
        LocalOutcome {
            class: 4,
            dsn: dsn.into(),
            text,
            diag: String::new(),
        }
    }

    fn bounce(dsn: &str, text: String) -> LocalOutcome {
        LocalOutcome {
            class: 5,
            dsn: dsn.into(),
            text,
            diag: String::new(),
        }
    }

    fn with_unix_diag(mut self, detail: &str) -> LocalOutcome {
        self.diag = format!("X-Unix; {detail}");
        self
    }
}

/// What a delivery needs to know about the message and the recipient.
pub(crate) struct Delivery<'a> {
    pub(crate) sender: &'a str,
    pub(crate) rcpt: &'a StoredRecipient,
    pub(crate) envid: Option<&'a str>,
    /// `name[ip]` of the SMTP client, or a local description.
    pub(crate) client: &'a str,
    pub(crate) sasl_username: Option<&'a str>,
    /// The message as queued (CRLF line ends).
    pub(crate) content: &'a [u8],
}

impl<'a> Delivery<'a> {
    pub(crate) fn new(parsed: &'a Parsed, i: usize, content: &'a [u8]) -> Delivery<'a> {
        let env = &parsed.envelope;
        Delivery {
            sender: &env.sender,
            rcpt: &env.recipients[i],
            envid: env.envid.as_deref(),
            client: &env.client,
            sasl_username: env.sasl_username.as_deref(),
            content,
        }
    }
}

/// Delivers one command or file recipient (a mailbox recipient is a caller's mistake and is
/// deferred).
pub(crate) async fn deliver(cfg: &DeliveryConfig, d: &Delivery<'_>) -> LocalOutcome {
    let (uid, gid, alias) = match &d.rcpt.agent {
        Agent::Command { uid, gid, alias } | Agent::File { uid, gid, alias } => (*uid, *gid, alias),
        Agent::Mailbox => {
            return LocalOutcome::defer("4.3.0", "not a command or file recipient".into())
        }
    };
    if let Err(o) = check_rights(d.rcpt.agent.kind(), uid, gid, own_ids()) {
        return o;
    }
    let now = crate::now_ms() / 1000;
    match &d.rcpt.agent {
        Agent::Command { .. } => {
            let input = mail_copy(d, alias, d.content, now, false);
            let env = environment(d, alias);
            run_command(&d.rcpt.address, &env, &input, cfg.command_time_limit.0).await
        }
        _ => {
            let path = d.rcpt.address.clone();
            let data = mail_copy(d, alias, d.content, now, true);
            match tokio::task::spawn_blocking(move || append_file(Path::new(&path), &data)).await {
                Ok(o) => o,
                Err(e) => LocalOutcome::defer("4.3.0", format!("file delivery task failed: {e}")),
            }
        }
    }
}

/// The process's effective uid and gid.
fn own_ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// The target must run with the process's own rights (the mta cannot switch users), and
/// never as root.
fn check_rights(kind: &str, uid: u32, gid: u32, own: (u32, u32)) -> Result<(), LocalOutcome> {
    if uid == 0 {
        return Err(LocalOutcome::defer(
            "4.3.5",
            format!("mail system configuration error: delivery to {kind} would run as root"),
        ));
    }
    if (uid, gid) != own {
        return Err(LocalOutcome::defer(
            "4.3.5",
            format!(
                "mail system configuration error: cannot deliver to {kind} as uid {uid} gid \
                 {gid}: pochta-mta runs as uid {} gid {} and cannot change users; chown the \
                 aliases file to the mta's user",
                own.0, own.1
            ),
        ));
    }
    Ok(())
}

/// Header values and the From_ line never take a line break from an address.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

/// mail_copy(): `From ` line, Return-Path, X-Original-To, Delivered-To, then the message
/// with LF line ends (a missing last newline added). `mbox`: `>From ` quoting and a blank
/// line at the end too (MAIL_COPY_MBOX).
pub(crate) fn mail_copy(
    d: &Delivery<'_>,
    alias: &LocalAlias,
    content: &[u8],
    now_secs: u64,
    mbox: bool,
) -> Vec<u8> {
    let mut head = String::with_capacity(256);
    let from = if d.sender.is_empty() {
        "MAILER-DAEMON".to_owned()
    } else {
        one_line(d.sender)
    };
    // asctime(): "Tue Mar  4 10:15:02 2025"; Postfix puts two spaces before it.
    let (year, _, _) = crate::mailq::civil_from_days((now_secs / 86_400) as i64);
    let _ = writeln!(
        head,
        "From {from}  {}{year}",
        crate::mailq::asctime20(now_secs, 0)
    );
    let _ = writeln!(head, "Return-Path: <{}>", one_line(d.sender));
    if let Some(o) = d.rcpt.orig.as_deref().filter(|o| !o.is_empty()) {
        let _ = writeln!(head, "X-Original-To: {}", one_line(o));
    }
    let _ = writeln!(head, "Delivered-To: {}", one_line(&alias.address));
    let mut out = Vec::with_capacity(head.len() + content.len() + content.len() / 40 + 2);
    out.extend_from_slice(head.as_bytes());
    let mut rest = content;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => (&rest[..p], &rest[p + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if mbox && line.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
    if mbox {
        out.push(b'\n');
    }
    out
}

/// local(8)'s environment for a command.
pub(crate) fn environment(d: &Delivery<'_>, alias: &LocalAlias) -> Vec<(String, String)> {
    let censor = |v: &str| -> String {
        v.chars()
            .map(|c| if EXPANSION_FILTER.contains(c) { c } else { '_' })
            .collect()
    };
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
    set("HOME", "/".into());
    set("SHELL", "/bin/sh".into());
    set("PATH", "/usr/bin:/bin".into());
    set("LOGNAME", censor(&alias.user));
    set("USER", censor(&alias.user));
    set("SENDER", censor(d.sender));
    set("RECIPIENT", censor(&alias.address));
    let (local, domain) = match alias.address.rsplit_once('@') {
        Some((l, dom)) => (l, Some(dom)),
        None => (alias.address.as_str(), None),
    };
    set("LOCAL", censor(local));
    if let Some(dom) = domain.filter(|x| !x.is_empty()) {
        set("DOMAIN", censor(dom));
    }
    // The extension: what follows the user name and one delimiter character.
    let n = alias.user.len();
    let extension = local
        .get(..n)
        .filter(|u| u.eq_ignore_ascii_case(&alias.user))
        .and_then(|_| local.get(n..))
        .and_then(|r| {
            let mut c = r.chars();
            c.next();
            Some(c.as_str()).filter(|e| !e.is_empty())
        });
    if let Some(ext) = extension {
        set("EXTENSION", censor(ext));
    }
    if let Some(o) = d.rcpt.orig.as_deref().filter(|o| !o.is_empty()) {
        set("ORIGINAL_RECIPIENT", censor(o));
    }
    if let Some(e) = d.envid.filter(|e| !e.is_empty()) {
        set("ENVID", censor(e));
    }
    // `name[ip]`, as the smtpd logs the client.
    if let Some((name, rest)) = d.client.split_once('[') {
        if let Some(ip) = rest.strip_suffix(']') {
            set("CLIENT_HOSTNAME", censor(name));
            set("CLIENT_ADDRESS", censor(ip));
        }
    }
    if let Some(u) = d.sasl_username.filter(|u| !u.is_empty()) {
        set("SASL_USERNAME", censor(u));
    }
    for k in EXPORTED {
        if let Ok(v) = std::env::var(k) {
            set(k, v);
        }
    }
    env
}

/// The first [`OUTPUT_LIMIT`] bytes of the command's output; the rest is read and dropped
/// so the command never blocks on a full pipe.
struct Output {
    rx: tokio::net::unix::pipe::Receiver,
    kept: Vec<u8>,
    eof: bool,
}

impl Output {
    fn keep(&mut self, b: &[u8]) {
        let room = OUTPUT_LIMIT.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&b[..b.len().min(room)]);
    }

    async fn read_some(&mut self) {
        let mut buf = [0u8; 4096];
        match self.rx.read(&mut buf).await {
            Ok(0) | Err(_) => self.eof = true,
            Ok(n) => self.keep(&buf[..n]),
        }
    }

    /// What is in the pipe now, without waiting (a background process may hold it open).
    fn drain_ready(&mut self) {
        let mut buf = [0u8; 4096];
        while !self.eof {
            match self.rx.try_read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.keep(&buf[..n]),
                Err(_) => break,
            }
        }
    }

    /// Postfix's cleanup of the captured text: tabs and newlines become spaces, other
    /// control characters `_`.
    fn text(&self) -> String {
        let s: String = String::from_utf8_lossy(&self.kept)
            .chars()
            .map(|c| match c {
                '\t' | '\n' | '\r' => ' ',
                c if c.is_control() => '_',
                c => c,
            })
            .collect();
        s.trim().to_owned()
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
}

impl Exit {
    fn of(status: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// Runs `/bin/sh -c command` with `input` on stdin, within `limit`.
pub(crate) async fn run_command(
    command: &str,
    env: &[(String, String)],
    input: &[u8],
    limit: Duration,
) -> LocalOutcome {
    let failed = |what: &str, e: io::Error| {
        LocalOutcome::defer(
            "4.3.0",
            format!("Delivery failed: {what}: {e}: \"{command}\""),
        )
        .with_unix_diag("system resource problem")
    };
    // One pipe for stdout and stderr, as Postfix captures them.
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return failed("pipe", e),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return failed("pipe", e),
    };
    let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader)) {
        Ok(rx) => rx,
        Err(e) => return failed("pipe", e),
    };
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .process_group(0)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // Our copies of the output pipe's write end go with the Command: EOF comes when the
    // command (and whatever it started) closes theirs.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return failed("cannot run /bin/sh", e),
    };
    let pid = child.id();
    let stdin = child.stdin.take();
    let mut out = Output {
        rx,
        kept: Vec::new(),
        eof: false,
    };
    let finished = {
        let work = async {
            let feed = async {
                let Some(mut s) = stdin else { return Ok(()) };
                s.write_all(input).await?;
                s.shutdown().await
            };
            tokio::join!(feed, child.wait())
        };
        tokio::pin!(work);
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = &mut work => break Some(r),
                () = &mut deadline => break None,
                () = out.read_some(), if !out.eof => {}
            }
        }
    };
    let (exit, write) = match finished {
        Some((write, Ok(status))) => (Exit::of(status), write.err()),
        Some((_, Err(e))) => return failed("wait", e),
        None => {
            // The whole process group: the shell and what it started.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            (Exit::TimedOut, None)
        }
    };
    out.drain_ready();
    command_result(command, exit, write.as_ref(), &out.text())
}

/// sys_exits.c's table: enhanced status and text of the <sysexits.h> codes.
pub(crate) fn sys_exit(code: i32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        64 => ("5.3.0", "command line usage error"),
        65 => ("5.6.0", "data format error"),
        66 => ("5.3.0", "cannot open input"),
        67 => ("5.1.1", "user unknown"),
        68 => ("5.1.2", "host name unknown"),
        69 => ("5.3.0", "service unavailable"),
        70 => ("5.3.0", "internal software error"),
        71 => ("4.3.0", "system resource problem"),
        72 => ("5.3.0", "critical OS file missing"),
        73 => ("5.2.0", "can't create user output file"),
        74 => ("5.3.0", "input/output error"),
        75 => ("4.3.0", "temporary failure"),
        76 => ("5.5.0", "remote error in protocol"),
        77 => ("5.7.0", "permission denied"),
        78 => ("5.3.5", "local configuration error"),
        _ => return None,
    })
}

/// `4.x.y text` / `5.x.y text` at the start of the output (pipe_command's "D.S.N text").
fn output_status(output: &str) -> Option<(&str, &str)> {
    let (code, text) = output.split_once(' ').unwrap_or((output, ""));
    let mut parts = code.split('.');
    let digits = |p: Option<&str>, max: usize| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let ok = matches!(code.as_bytes().first(), Some(b'4' | b'5'))
        && digits(parts.next(), 1)
        && digits(parts.next(), 3)
        && digits(parts.next(), 3)
        && parts.next().is_none();
    ok.then_some((code, text.trim()))
}

/// pipe_command()'s verdict on how a command ended.
pub(crate) fn command_result(
    command: &str,
    exit: Exit,
    write_error: Option<&io::Error>,
    output: &str,
) -> LocalOutcome {
    let said = if output.is_empty() {
        String::new()
    } else {
        format!(". Command output: {output}")
    };
    let detail = |fallback: &str| {
        if output.is_empty() {
            fallback.to_owned()
        } else {
            output.to_owned()
        }
    };
    match exit {
        Exit::Code(0) => match write_error {
            // The command ended well without reading all of it: its choice (Postfix).
            Some(e) if e.kind() != io::ErrorKind::BrokenPipe => LocalOutcome::defer(
                "4.3.0",
                format!("Command failed: error writing message: {e}: \"{command}\""),
            )
            .with_unix_diag(&detail("input/output error")),
            _ => LocalOutcome::sent(format!("delivered to command: {command}")),
        },
        Exit::TimedOut => LocalOutcome::defer(
            "4.3.0",
            format!("Command time limit exceeded: \"{command}\"{said}"),
        )
        .with_unix_diag(&detail("internal software error")),
        Exit::Signal(s) => LocalOutcome::defer(
            "4.3.0",
            format!("Command died with signal {s}: \"{command}\"{said}"),
        )
        .with_unix_diag(&detail("internal software error")),
        Exit::Code(code) => {
            if let Some((dsn, text)) = output_status(output) {
                let o = if dsn.starts_with('4') {
                    LocalOutcome::defer(dsn, text.to_owned())
                } else {
                    LocalOutcome::bounce(dsn, text.to_owned())
                };
                return o.with_unix_diag(text);
            }
            match sys_exit(code) {
                Some((dsn, text)) => {
                    let reason = format!("{text}{said}");
                    let o = if dsn.starts_with('4') {
                        LocalOutcome::defer(dsn, reason)
                    } else {
                        LocalOutcome::bounce(dsn, reason)
                    };
                    o.with_unix_diag(&detail(text))
                }
                None => LocalOutcome::bounce(
                    "5.3.0",
                    format!("Command died with status {code}: \"{command}\"{said}"),
                )
                .with_unix_diag(&detail(&format!("unknown mail system error {code}"))),
            }
        }
    }
}

/// deliver_file(): appends `data` (already in mbox form) to `path`. Blocking.
pub(crate) fn append_file(path: &Path, data: &[u8]) -> LocalOutcome {
    let shown = path.display();
    let cannot = |dsn: &str, what: String| {
        LocalOutcome::defer(
            dsn,
            format!("cannot append message to file {shown}: {what}"),
        )
    };
    if !path.is_absolute() {
        return LocalOutcome::defer(
            "4.3.5",
            format!("mail system configuration error: {shown} is not an absolute path"),
        );
    }
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return LocalOutcome::defer(
            "4.3.5",
            format!(
                "mail system configuration error: {shown}: maildir delivery (a path ending \
                 in /) is not supported"
            ),
        );
    }
    use nix::fcntl::OFlag;
    // O_NONBLOCK: a FIFO without a reader fails at once instead of holding a thread; regular
    // files ignore it.
    let file = match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return cannot("4.2.0", "file is a symbolic link".into())
        }
        Err(e) => return cannot("4.2.0", format!("cannot open file: {e}")),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return cannot("4.2.0", format!("cannot stat file: {e}")),
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        return cannot("4.2.0", "file is a directory".into());
    }
    if !ft.is_file() {
        // /dev/null and the like: no lock, no fsync, nothing to cut back (Postfix).
        let res = (&file).write_all(data);
        return match res {
            Ok(()) => LocalOutcome::sent(format!("delivered to file: {shown}")),
            Err(e) if ft.is_fifo() && e.kind() == io::ErrorKind::WouldBlock => cannot(
                "4.2.0",
                "error writing message: the reader is not keeping up".into(),
            ),
            Err(e) => cannot(write_dsn(&e), format!("error writing message: {e}")),
        };
    }
    if meta.nlink() != 1 {
        // Someone could lure us into a sensitive file with a hard link (safe_open()).
        return cannot("4.2.0", format!("file has {} hard links", meta.nlink()));
    }
    if meta.mode() & 0o111 != 0 {
        return LocalOutcome::bounce(
            "5.7.1",
            format!("cannot append message to file {shown}: file is executable"),
        );
    }
    let mut file = file;
    let mut tries = 0;
    let locked = loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => break l,
            Err((f, e)) => {
                tries += 1;
                if tries >= LOCK_TRIES || e != nix::errno::Errno::EWOULDBLOCK {
                    return cannot(
                        "4.2.0",
                        format!("unable to lock for exclusive access: {}", e.desc()),
                    );
                }
                file = f;
                std::thread::sleep(LOCK_DELAY);
            }
        }
    };
    // After the lock: another writer may have appended meanwhile.
    let old_len = match locked.metadata() {
        Ok(m) => m.len(),
        Err(e) => return cannot("4.2.0", format!("cannot stat file: {e}")),
    };
    let res = (&*locked).write_all(data).and_then(|()| locked.sync_all());
    match res {
        Ok(()) => LocalOutcome::sent(format!("delivered to file: {shown}")),
        Err(e) => {
            // Cut back to the old size while still holding the lock (mail_copy()).
            let _ = locked.set_len(old_len);
            let _ = locked.sync_all();
            cannot(write_dsn(&e), format!("error writing message: {e}"))
        }
    }
}

/// mbox_dsn() for a write error, deferred: 4.2.2 for quota and file size limits, else 4.3.0.
fn write_dsn(e: &io::Error) -> &'static str {
    use nix::errno::Errno;
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::EDQUOT | Errno::EFBIG) => "4.2.2",
        _ => "4.3.0",
    }
}

#[cfg(test)]
#[path = "local_agent_tests.rs"]
mod tests;
