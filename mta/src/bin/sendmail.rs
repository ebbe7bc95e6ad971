//! `sendmail` (and `mailq` when called by that name): Postfix's sendmail(1) command line for
//! pochta-mta. A message is submitted over SMTP to the mta's local submission socket (no
//! password: the mta trusts the socket and names our uid from SO_PEERCRED); `-bp`/`mailq`
//! reads the spool directory and prints Postfix's listing; `-q` asks the running mta to retry
//! its queue; `-bs` speaks SMTP on stdin/stdout through the same socket.
//!
//! Options (Postfix's): `-t` recipients from To/Cc/Bcc (Bcc removed; Resent-* when present),
//! `-i`/`-oi` a lone `.` is data, `-f`/`-r` sender, `-F` full name for a generated From:,
//! `-N` DSN notify, `-R` DSN return, `-V` envid, `-B` body type, `-C` mta.toml, `-bp`, `-bs`,
//! `-bm`, `-q`, `-qI<id>`, `-qR<site>`, `--`; `-bi`/`-I`/`newaliases` (check the alias tables
//! of mta.toml and report `file:line` for each bad line; no database to build); the
//! options Postfix ignores are ignored. Exit codes (sysexits) as Postfix: 0, 64 usage,
//! 65 bad input, 69 refused, 70 software, 71 OS error, 75 try again later.
//!
//! Trust: runs as any local user; sends only what its user gives it to a socket that anyone
//! may use. Socket path: `POCHTA_SUBMIT_SOCKET`, else the `service = "local"` listener of the
//! mta config (`-C`, default /etc/pochta/mta.toml), else /run/pochta/mta-submit. Bare names
//! (`sendmail root`) get the mta's myorigin: `[smtpd] myorigin`, else its first local domain,
//! else its host name (Postfix's myorigin), so cron mail follows the aliases. Spool (for
//! mailq and -q): `POCHTA_SPOOL`, else `[queue] dir` of that config, else /var/spool/pochta.
//!
//! RFCs: 5321 (SMTP submission), 5322 (header address lists for -t), 3461 (DSN options).

use pochta_smtp::{Body, Notify, Ret};
use pochta_smtp_client::{
    ClientConfig, ClientSession, Envelope, Protocol, Recipient, SessionError, Step,
};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_UNAVAILABLE: u8 = 69;
const EX_SOFTWARE: u8 = 70;
const EX_OSERR: u8 = 71;
const EX_TEMPFAIL: u8 = 75;

#[derive(Debug, Default)]
struct Opts {
    mode: Mode,
    extract: bool,
    dot_ends: bool,
    sender: Option<String>,
    full_name: Option<String>,
    notify: Option<Notify>,
    ret: Option<Ret>,
    envid: Option<String>,
    body: Option<Body>,
    config: Option<PathBuf>,
    recipients: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum Mode {
    #[default]
    Deliver,
    ListQueue,
    Smtp,
    Flush(Option<String>),
    /// `newaliases`: check the alias tables.
    CheckAliases,
}

/// A fatal error: message for stderr and exit code.
struct Fatal(u8, String);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let prog = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned())
        .unwrap_or_else(|| "sendmail".to_owned());
    // Not Postfix options: for help2man (sendmail(8) in the Debian package is this text).
    match args.get(1).map(String::as_str) {
        Some("--help") => return print_and_exit(HELP),
        Some("--version") => {
            return print_and_exit(concat!(
                "sendmail (pochta) ",
                env!("CARGO_PKG_VERSION"),
                "\n"
            ))
        }
        _ => {}
    }
    let res = parse_args(&prog, &args[1.min(args.len())..]).and_then(run);
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(code, msg)) => {
            eprintln!("{prog}: fatal: {msg}");
            ExitCode::from(code)
        }
    }
}

const HELP: &str = "\
Postfix-compatible sendmail command line for pochta-mta (also run as mailq and newaliases)

Usage: sendmail [OPTIONS] [--] [RECIPIENT...]
       mailq (sendmail -bp)
       newaliases (sendmail -bi: pochta has no aliases database; does nothing)

A message read from standard input is submitted over SMTP to the local submission socket of
pochta-mta: POCHTA_SUBMIT_SOCKET, else the service = \"local\" listener of mta.toml, else
/run/pochta/mta-submit. mailq and -q read the spool: POCHTA_SPOOL, else [queue] dir of
mta.toml, else /var/spool/pochta.

Options:
  -t             Recipients from To:, Cc: and Bcc: (Resent-* when present); Bcc: removed
  -i, -oi        A line with a single dot does not end the message
  -f SENDER      Envelope sender (also -r)
  -F NAME        Full name for a generated From: header
  -N DSN         Delivery status notification: never, or success,delay,failure
  -R RET         DSN return: hdrs or full
  -V ENVID       DSN envelope id
  -B TYPE        Body type: 7BIT or 8BITMIME
  -C PATH        mta.toml to read the socket, spool, myorigin and aliases from
                 [default: /etc/pochta/mta.toml]
      --config PATH  Same as -C
  -bm            Read a message and submit it (the default)
  -bp            List the queue like Postfix's mailq
  -bs            SMTP on standard input and output, through the submission socket
  -bi, -I        Check the alias tables of mta.toml (newaliases): file:line of each
                 bad line; nothing to build (reload pochta-mta to apply changes)
  -q             Ask the running pochta-mta to retry its queue now
  -qIID          Retry one queued message
  -qRSITE, -qSSITE  Retry the whole queue
      --help     Print this help
      --version  Print the version
Options Postfix ignores (-v, -Am, -Ac, -h, -m, -n, -o7, -o8, -om, -U, -oX...) are ignored.

Exit status (sysexits, as Postfix): 0 ok, 64 usage, 65 bad input, 69 refused, 70 software
error, 71 OS error, 75 temporary failure: try again later.
";

fn print_and_exit(text: &str) -> ExitCode {
    print!("{text}");
    ExitCode::SUCCESS
}

fn usage(m: impl Into<String>) -> Fatal {
    Fatal(EX_USAGE, m.into())
}

fn parse_args(prog: &str, args: &[String]) -> Result<Opts, Fatal> {
    let mut o = Opts {
        dot_ends: true,
        ..Opts::default()
    };
    match prog {
        "mailq" => o.mode = Mode::ListQueue,
        "newaliases" => o.mode = Mode::CheckAliases,
        _ => {}
    }
    let mut i = 0;
    // An option's value: glued (`-fuser`) or the next argument (`-f user`).
    let value = |i: &mut usize, a: &str, flag: &str| -> Result<String, Fatal> {
        if a.len() > flag.len() {
            return Ok(a[flag.len()..].to_owned());
        }
        *i += 1;
        args.get(*i)
            .cloned()
            .ok_or_else(|| usage(format!("option {flag} requires an argument")))
    };
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            o.recipients.extend(args[i + 1..].iter().cloned());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            o.recipients.push(a.to_owned());
            i += 1;
            continue;
        }
        match a {
            "-t" => o.extract = true,
            "--config" => {
                i += 1;
                let v = args
                    .get(i)
                    .ok_or_else(|| usage("--config requires a path"))?;
                o.config = Some(PathBuf::from(v));
            }
            "-i" | "-oi" => o.dot_ends = false,
            "-bp" => o.mode = Mode::ListQueue,
            "-bs" => o.mode = Mode::Smtp,
            "-bm" => o.mode = Mode::Deliver,
            "-bi" | "-I" => o.mode = Mode::CheckAliases,
            "-q" => o.mode = Mode::Flush(None),
            "-v" | "-Am" | "-Ac" | "-bh" | "-bH" | "-h" | "-m" | "-n" | "-o7" | "-o8" | "-om"
            | "-U" => {}
            _ if a.starts_with("-qI") => o.mode = Mode::Flush(Some(a[3..].to_owned())),
            _ if a.starts_with("-qR") || a.starts_with("-qS") => o.mode = Mode::Flush(None),
            // -q<interval>: ignored, as Postfix does.
            _ if a.starts_with("-q") => {}
            _ if a.starts_with("-oX") || a.starts_with("-X") || a.starts_with("-L") => {
                if a.len() == 2 || a == "-oX" {
                    i += 1;
                }
            }
            _ if a.starts_with("-f") => o.sender = Some(value(&mut i, a, "-f")?),
            _ if a.starts_with("-r") => o.sender = Some(value(&mut i, a, "-r")?),
            _ if a.starts_with("-F") => o.full_name = Some(value(&mut i, a, "-F")?),
            _ if a.starts_with("-C") => o.config = Some(PathBuf::from(value(&mut i, a, "-C")?)),
            _ if a.starts_with("-N") => o.notify = Some(parse_notify(&value(&mut i, a, "-N")?)?),
            _ if a.starts_with("-R") => {
                o.ret = Some(
                    match value(&mut i, a, "-R")?.to_ascii_lowercase().as_str() {
                        "full" => Ret::Full,
                        "hdrs" => Ret::Hdrs,
                        v => return Err(usage(format!("bad -R option: {v}"))),
                    },
                )
            }
            _ if a.starts_with("-V") => {
                o.envid = Some(value(&mut i, a, "-V")?);
            }
            _ if a.starts_with("-B") => {
                o.body = Some(
                    match value(&mut i, a, "-B")?.to_ascii_uppercase().as_str() {
                        "7BIT" => Body::SevenBit,
                        "8BITMIME" => Body::EightBitMime,
                        v => return Err(usage(format!("-B option needs 7BIT or 8BITMIME: {v}"))),
                    },
                )
            }
            _ if a.starts_with("-O") || a.starts_with("-o") => {
                if a.len() == 2 {
                    i += 1;
                }
            }
            _ if a.starts_with("-bv") || a.starts_with("-bd") => {
                return Err(usage(format!("unsupported option: {a}")))
            }
            _ => return Err(usage(format!("unknown option: {a}"))),
        }
        i += 1;
    }
    Ok(o)
}

fn parse_notify(v: &str) -> Result<Notify, Fatal> {
    let mut n = Notify::default();
    for w in v.split(',') {
        match w.trim().to_ascii_lowercase().as_str() {
            "never" => n.never = true,
            "success" => n.success = true,
            "failure" => n.failure = true,
            "delay" => n.delay = true,
            other => return Err(usage(format!("bad -N option: {other}"))),
        }
    }
    if n.never && (n.success || n.failure || n.delay) {
        return Err(usage("-N never cannot be combined"));
    }
    Ok(n)
}

fn run(o: Opts) -> Result<(), Fatal> {
    let cfg = MtaPaths::load(o.config.as_deref())?;
    match &o.mode {
        Mode::CheckAliases => check_aliases(o.config.as_deref()),
        Mode::ListQueue => list_queue(&cfg.spool),
        Mode::Flush(id) => flush(&cfg.spool, id.as_deref()),
        Mode::Smtp => smtp_stdio(&cfg.socket),
        Mode::Deliver => deliver(&o, &cfg),
    }
}

/// Paths from the mta config and the environment.
struct MtaPaths {
    socket: PathBuf,
    spool: PathBuf,
    /// The domain for bare names.
    myorigin: String,
}

impl MtaPaths {
    fn load(explicit: Option<&Path>) -> Result<MtaPaths, Fatal> {
        let mut paths = MtaPaths {
            socket: PathBuf::from("/run/pochta/mta-submit"),
            spool: PathBuf::from("/var/spool/pochta"),
            myorigin: hostname(),
        };
        let file = explicit
            .map(Path::to_path_buf)
            .unwrap_or_else(|| "/etc/pochta/mta.toml".into());
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let doc: toml::Table = text
                    .parse()
                    .map_err(|e| Fatal(78, format!("{}: {e}", file.display())))?;
                if let Some(ls) = doc.get("listener").and_then(|l| l.as_array()) {
                    for l in ls {
                        if l.get("service").and_then(|s| s.as_str()) == Some("local") {
                            if let Some(a) = l.get("address").and_then(|a| a.as_str()) {
                                paths.socket = PathBuf::from(a);
                            }
                        }
                    }
                }
                if let Some(d) = doc
                    .get("queue")
                    .and_then(|q| q.get("dir"))
                    .and_then(|d| d.as_str())
                {
                    paths.spool = PathBuf::from(d);
                }
                // The mta's rule (pochta_mta::addresses::myorigin), read without the rest of
                // the config so that any user can run sendmail.
                let smtpd = doc.get("smtpd");
                let text = |k: &str| smtpd.and_then(|s| s.get(k)).and_then(|v| v.as_str());
                let first_local = smtpd
                    .and_then(|s| s.get("local_domains"))
                    .and_then(|l| l.as_array())
                    .and_then(|l| l.first())
                    .and_then(|d| d.as_str());
                if let Some(o) = text("myorigin").or(first_local).or(text("hostname")) {
                    paths.myorigin = o.to_ascii_lowercase();
                }
            }
            Err(e) if explicit.is_some() => {
                return Err(Fatal(78, format!("{}: {e}", file.display())))
            }
            Err(_) => {}
        }
        if let Some(s) = std::env::var_os("POCHTA_SUBMIT_SOCKET") {
            paths.socket = PathBuf::from(s);
        }
        if let Some(s) = std::env::var_os("POCHTA_SPOOL") {
            paths.spool = PathBuf::from(s);
        }
        Ok(paths)
    }
}

fn list_queue(spool: &Path) -> Result<(), Fatal> {
    let entries = pochta_queue::mailq::read_queue(spool)
        .map_err(|e| Fatal(EX_UNAVAILABLE, format!("cannot read the mail queue: {e}")))?;
    let text = pochta_queue::mailq::format(&entries, pochta_queue::mailq::local_utc_offset());
    match std::io::stdout().write_all(text.as_bytes()) {
        // `mailq | head`: a reader that stops early is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Fatal(EX_OSERR, format!("write: {e}")))
        }
        _ => Ok(()),
    }
}

fn flush(spool: &Path, id: Option<&str>) -> Result<(), Fatal> {
    let id = match id {
        Some(s) => Some(
            pochta_queue::QueueId::parse(s).ok_or_else(|| usage(format!("bad queue id: {s}")))?,
        ),
        None => None,
    };
    pochta_queue::admin::flush(spool, id.as_ref()).map_err(|e| Fatal(EX_TEMPFAIL, e.to_string()))
}

/// `-bs`: SMTP between stdin/stdout and the local socket.
fn smtp_stdio(socket: &Path) -> Result<(), Fatal> {
    let sock = connect(socket)?;
    let mut up = sock
        .try_clone()
        .map_err(|e| Fatal(EX_OSERR, format!("socket: {e}")))?;
    let to_server = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    let mut down = sock;
    let _ = std::io::copy(&mut down, &mut std::io::stdout().lock());
    drop(to_server);
    Ok(())
}

fn connect(socket: &Path) -> Result<UnixStream, Fatal> {
    let s = UnixStream::connect(socket).map_err(|e| {
        Fatal(
            EX_TEMPFAIL,
            format!(
                "cannot connect to the mail system at {}: {e}",
                socket.display()
            ),
        )
    })?;
    let t = Some(Duration::from_secs(300));
    let _ = s.set_read_timeout(t);
    let _ = s.set_write_timeout(t);
    Ok(s)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `user` → `user@myorigin`.
fn qualify(addr: &str, host: &str) -> String {
    if addr.is_empty() || addr.contains('@') {
        addr.to_owned()
    } else {
        format!("{addr}@{host}")
    }
}

/// `newaliases` / `sendmail -bi`: loads mta.toml as the mta would (its alias tables
/// included) and reports every bad line as `file:line: message`.
fn check_aliases(config: Option<&Path>) -> Result<(), Fatal> {
    let path = config.unwrap_or(Path::new("/etc/pochta/mta.toml"));
    let cfg: pochta_mta::config::Config =
        pochta_server::load_config(path).map_err(|e| Fatal(78, e))?;
    let book = pochta_mta::addresses::AddressBook::load(&cfg).map_err(|e| Fatal(78, e))?;
    let problems = book.aliases().check();
    for p in &problems {
        eprintln!("newaliases: warning: {p}");
    }
    eprintln!(
        "newaliases: {} alias table(s) checked{}; reload pochta-mta to apply changes",
        cfg.aliases.alias_maps.len() + cfg.aliases.virtual_alias_maps.len(),
        if problems.is_empty() {
            ""
        } else {
            " with warnings"
        }
    );
    Ok(())
}

fn deliver(o: &Opts, cfg: &MtaPaths) -> Result<(), Fatal> {
    let (host, socket) = (cfg.myorigin.clone(), cfg.socket.as_path());
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| Fatal(EX_DATAERR, format!("error reading input: {e}")))?;
    let mut lines = to_lines(&input, o.dot_ends);
    separate_header(&mut lines);
    let login = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "nobody".to_owned());
    let sender = match &o.sender {
        Some(s) if s == "<>" => String::new(),
        Some(s) => qualify(s.trim_start_matches('<').trim_end_matches('>'), &host),
        None => qualify(&login, &host),
    };
    let mut rcpts: Vec<String> = o
        .recipients
        .iter()
        .flat_map(|r| split_addresses(r))
        .collect();
    if o.extract {
        rcpts.extend(extract_recipients(&mut lines));
    }
    let rcpts: Vec<String> = rcpts.iter().map(|r| qualify(r, &host)).collect();
    if rcpts.is_empty() {
        return Err(usage(if o.extract {
            "no recipient addresses found in message header"
        } else {
            "Recipient addresses must be specified on the command line or via the -t option"
        }));
    }
    if header_end(&lines).is_some_and(|end| !has_header(&lines[..end], "from")) {
        let name = o.full_name.clone().or_else(|| std::env::var("NAME").ok());
        let from = match name {
            Some(n) if !n.is_empty() => format!("From: {} <{sender}>", quote_phrase(&n)),
            _ => format!("From: {sender}"),
        };
        lines.insert(0, from.into_bytes());
    }
    let mut content = Vec::with_capacity(input.len() + 256);
    for l in &lines {
        content.extend_from_slice(l);
        content.extend_from_slice(b"\r\n");
    }
    let env = Envelope {
        sender,
        recipients: rcpts
            .iter()
            .map(|r| Recipient {
                address: r.clone(),
                notify: o.notify,
                orcpt: None,
            })
            .collect(),
        envid: o.envid.clone(),
        ret: o.ret,
        body: o.body.or_else(|| {
            content
                .iter()
                .any(|&b| b >= 0x80)
                .then_some(Body::EightBitMime)
        }),
        smtputf8: false,
    };
    submit(socket, &host, &env, &content)
}

/// Input lines without their line ends. With `dot_ends`, a line with only `.` ends the input.
fn to_lines(input: &[u8], dot_ends: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    if input.is_empty() {
        return out;
    }
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if dot_ends && line == b"." {
            break;
        }
        out.push(line.to_vec());
    }
    out
}

/// Index of the line ending the header: the first line that is neither a header field nor a
/// continuation (normally the empty separator line), or the end of the input.
fn header_end(lines: &[Vec<u8>]) -> Option<usize> {
    let is_field = |i: usize, l: &Vec<u8>| {
        let continuation = i > 0 && l.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        continuation
            || header_name(l).is_some_and(|n| {
                !n.is_empty() && n.bytes().all(|b| (33..=126).contains(&b) && b != b':')
            })
    };
    Some(
        lines
            .iter()
            .enumerate()
            .position(|(i, l)| !is_field(i, l))
            .unwrap_or(lines.len()),
    )
}

/// Makes sure an empty line separates header and body: input that starts its body without
/// one (`echo body | sendmail user`) gets it, as Postfix's cleanup does.
fn separate_header(lines: &mut Vec<Vec<u8>>) {
    if let Some(end) = header_end(lines) {
        if lines.get(end).is_some_and(|l| !l.is_empty()) {
            lines.insert(end, Vec::new());
        }
    }
}

fn has_header(header: &[Vec<u8>], name: &str) -> bool {
    header
        .iter()
        .any(|l| header_name(l).is_some_and(|n| n.eq_ignore_ascii_case(name)))
}

fn header_name(line: &[u8]) -> Option<&str> {
    if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return None;
    }
    let colon = line.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&line[..colon]).ok().map(str::trim_end)
}

/// `-t`: addresses of To/Cc/Bcc (or of Resent-To/Cc/Bcc when any Resent- header exists);
/// Bcc headers are removed from the message.
fn extract_recipients(lines: &mut Vec<Vec<u8>>) -> Vec<String> {
    let end = header_end(lines).unwrap_or(0);
    let resent = lines[..end].iter().any(|l| {
        header_name(l).is_some_and(|n| n.len() > 7 && n[..7].eq_ignore_ascii_case("resent-"))
    });
    let wanted: &[&str] = if resent {
        &["resent-to", "resent-cc", "resent-bcc"]
    } else {
        &["to", "cc", "bcc"]
    };
    let mut out = Vec::new();
    let mut keep = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        if i >= end {
            keep.push(std::mem::take(&mut lines[i]));
            i += 1;
            continue;
        }
        // The header field with its continuation lines.
        let mut j = i + 1;
        while j < end && lines[j].first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            j += 1;
        }
        let name = header_name(&lines[i]).map(str::to_ascii_lowercase);
        let is_bcc = name
            .as_deref()
            .is_some_and(|n| n == "bcc" || n == "resent-bcc");
        if let Some(n) = &name {
            if wanted.contains(&n.as_str()) {
                let mut value = String::new();
                for (k, l) in lines[i..j].iter().enumerate() {
                    let s = String::from_utf8_lossy(l);
                    let v = if k == 0 {
                        s.split_once(':')
                            .map(|(_, v)| v.to_owned())
                            .unwrap_or_default()
                    } else {
                        s.into_owned()
                    };
                    value.push(' ');
                    value.push_str(&v);
                }
                out.extend(split_addresses(&value));
            }
        }
        for l in &mut lines[i..j] {
            if !is_bcc {
                keep.push(std::mem::take(l));
            }
        }
        i = j;
    }
    *lines = keep;
    out
}

/// RFC 5322 address list → addr-specs: `Name <a@b>, c@d (comment), "x, y" <e@f>, grp: g@h;`.
fn split_addresses(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut depth, mut angle) = (false, 0u32, false);
    let mut angle_addr: Option<String> = None;
    let mut chars = list.chars().peekable();
    let mut flush = |cur: &mut String, angle_addr: &mut Option<String>| {
        let a = angle_addr.take().unwrap_or_else(|| cur.trim().to_owned());
        let a = a
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
            .to_owned();
        if !a.is_empty() && !a.ends_with(':') {
            out.push(a);
        }
        cur.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                if angle {
                    cur.push(c);
                }
            }
            _ if quoted => {
                if angle {
                    cur.push(c);
                }
            }
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            '<' => {
                angle = true;
                cur.clear();
            }
            '>' => {
                angle = false;
                angle_addr = Some(std::mem::take(&mut cur));
            }
            ':' if !angle => cur.clear(), // group name
            ',' | ';' if !angle => flush(&mut cur, &mut angle_addr),
            _ => {
                if angle_addr.is_none() {
                    cur.push(c);
                }
            }
        }
    }
    flush(&mut cur, &mut angle_addr);
    out.into_iter()
        .filter(|a| !a.contains(char::is_whitespace))
        .collect()
}

fn quote_phrase(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c))
    {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// One SMTP transaction on the local socket, with the sans-I/O client session.
fn submit(socket: &Path, host: &str, env: &Envelope, content: &[u8]) -> Result<(), Fatal> {
    let mut sock = connect(socket)?;
    let mut s = ClientSession::new(ClientConfig {
        protocol: Protocol::Smtp,
        helo_name: host.to_owned(),
        chunking: false,
    });
    let mut buf = vec![0u8; 8192];
    let mut started = false;
    loop {
        match s.step() {
            Step::Write(b) => sock
                .write_all(&b)
                .map_err(|e| Fatal(EX_TEMPFAIL, format!("lost connection to the mta: {e}")))?,
            Step::NeedInput => {
                let n = sock
                    .read(&mut buf)
                    .map_err(|e| Fatal(EX_TEMPFAIL, format!("lost connection to the mta: {e}")))?;
                if n == 0 {
                    return Err(Fatal(EX_TEMPFAIL, "lost connection to the mta".into()));
                }
                s.feed(&buf[..n]);
            }
            Step::Ready if !started => {
                started = true;
                s.start_transaction(env, content)
                    .map_err(|e| Fatal(EX_SOFTWARE, e.to_string()))?;
            }
            Step::Ready => s.quit(),
            Step::Done(outcomes) => {
                let refused: Vec<String> = outcomes
                    .iter()
                    .zip(&env.recipients)
                    .filter(|(o, _)| !o.reply.is_positive())
                    .map(|(o, r)| format!("<{}>: {}", r.address, o.reply))
                    .collect();
                if !refused.is_empty() {
                    let temp = outcomes
                        .iter()
                        .all(|o| o.reply.is_positive() || o.reply.is_transient());
                    let code = if temp { EX_TEMPFAIL } else { EX_UNAVAILABLE };
                    return Err(Fatal(code, refused.join("; ")));
                }
                s.quit();
            }
            Step::Closed => return Ok(()),
            Step::Failed(SessionError::Rejected(_, r)) if r.is_transient() => {
                return Err(Fatal(EX_TEMPFAIL, format!("mail system said: {r}")))
            }
            Step::Failed(e) => return Err(Fatal(EX_UNAVAILABLE, e.to_string())),
            // Never asked for on the local socket.
            Step::StartTls | Step::TlsRefused(_) => {
                return Err(Fatal(EX_SOFTWARE, "unexpected STARTTLS step".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists() {
        assert_eq!(
            split_addresses(" Alice <a@x>, b@y (Bob), \"Doe, J\" <c@z>, grp: d@w, e@v;"),
            ["a@x", "b@y", "c@z", "d@w", "e@v"]
        );
        assert_eq!(
            split_addresses("undisclosed-recipients:;"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn extract_and_strip_bcc() {
        let mut lines: Vec<Vec<u8>> = [
            "To: a@x,",
            " b@y",
            "Bcc: hidden@z",
            "Subject: s",
            "",
            "To: not@header",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        assert_eq!(extract_recipients(&mut lines), ["a@x", "b@y", "hidden@z"]);
        let text: Vec<String> = lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into())
            .collect();
        assert_eq!(
            text,
            ["To: a@x,", " b@y", "Subject: s", "", "To: not@header"]
        );
    }

    #[test]
    fn body_without_header_gets_a_separator() {
        let mut lines = to_lines(b"just a body\nline 2\n", true);
        separate_header(&mut lines);
        assert_eq!(
            lines,
            [b"".to_vec(), b"just a body".to_vec(), b"line 2".to_vec()]
        );
        let mut lines = to_lines(b"Subject: x\n continued\nbody\n", true);
        separate_header(&mut lines);
        assert_eq!(lines[2], b"");
        let mut lines = to_lines(b"Subject: x\n\nbody\n", true);
        separate_header(&mut lines);
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn dot_and_options() {
        assert_eq!(to_lines(b"a\r\n.\nb\n", true), [b"a".to_vec()]);
        assert_eq!(to_lines(b"a\n.\nb", false).len(), 3);
        let o = parse_args(
            "sendmail",
            &["-oi".into(), "-fme".into(), "--".into(), "-x@y".into()],
        )
        .ok()
        .unwrap();
        assert!(!o.dot_ends);
        assert_eq!(o.sender.as_deref(), Some("me"));
        assert_eq!(o.recipients, ["-x@y"]);
        assert_eq!(parse_args("mailq", &[]).ok().unwrap().mode, Mode::ListQueue);
        assert!(parse_args("sendmail", &["-Z".into()]).is_err());
    }
}
