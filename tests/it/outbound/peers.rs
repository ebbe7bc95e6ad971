//! The outbound tests' peers, each a private instance on loopback: unbound serving the test
//! zone, a Postfix receiving mail for some test domains (STARTTLS with a certificate from a
//! test CA, virtual mailboxes), smtp-sink with failure injection, Dovecot for local delivery
//! (bounces to the local sender).

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn need(tool: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{tool} is not installed: install unbound, ldnsutils, postfix and dovecot-core \
         (run-tests does)"
    );
}

pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

fn test_user() -> Option<nix::unistd::User> {
    if nix::unistd::Uid::effective().is_root() {
        nix::unistd::User::from_name("nobody").unwrap()
    } else {
        None
    }
}

pub fn test_uid() -> u32 {
    test_user()
        .map(|u| u.uid.as_raw())
        .unwrap_or_else(|| nix::unistd::Uid::effective().as_raw())
}

pub fn chown_test_user(p: &Path) {
    if let Some(u) = test_user() {
        nix::unistd::chown(p, Some(u.uid), Some(u.gid)).unwrap();
    }
}

/// A child process killed on drop, its output in a file.
pub struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proc { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// unbound answering for the zone `test.` (static: names without data are NXDOMAIN).
pub struct Dns {
    pub addr: String,
    _proc: Proc,
}

impl Dns {
    /// Starts unbound in the foreground on `127.0.0.1:port` with `conf` (its `server:` and
    /// zone clauses; remote control is added, off) and waits for its start of service.
    fn run(base: &Path, port: u16, mut conf: String) -> Dns {
        conf.push_str("remote-control:\n  control-enable: no\n");
        let file = base.join("unbound.conf");
        std::fs::write(&file, conf).unwrap();
        let mut cmd = Command::new(need("unbound"));
        cmd.arg("-d").arg("-c").arg(&file);
        let proc = Proc::spawn(cmd, base.join("unbound.log"));
        wait_until(DEADLINE, "unbound's start of service", || {
            proc.log().contains("start of service")
        });
        Dns {
            addr: format!("127.0.0.1:{port}"),
            _proc: proc,
        }
    }

    /// `records`: unbound local-data lines like `"a.test. MX 10 mx.a.test."`.
    pub fn start(dir: &TempDir, records: &[&str]) -> Dns {
        let base = dir.join("unbound");
        std::fs::create_dir_all(&base).unwrap();
        // unbound binds UDP and TCP; a port free for TCP is almost always free for UDP.
        let port = free_port();
        let mut conf = format!(
            "server:\n  interface: 127.0.0.1@{port}\n  do-daemonize: no\n  username: \"\"\n\
             chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n\
             logfile: \"\"\n  use-syslog: no\n  verbosity: 1\n  do-ip6: no\n\
             access-control: 127.0.0.0/8 allow\n  module-config: \"iterator\"\n\
             local-zone: \"test.\" static\n",
            d = base.display()
        );
        for r in records {
            // TXT data carries double quotes: single-quote those records.
            if r.contains('"') {
                conf.push_str(&format!("  local-data: '{r}'\n"));
            } else {
                conf.push_str(&format!("  local-data: \"{r}\"\n"));
            }
        }
        Dns::run(&base, port, conf)
    }
}

/// One zone served by [`Dns::start_dnssec`].
pub struct Zone<'a> {
    /// `dane.test` (no trailing dot).
    pub name: &'a str,
    /// Signed with fresh keys (its DS is the resolver's trust anchor) or left unsigned.
    pub signed: bool,
    /// Zone-file lines with absolute owner names: `mx.dane.test. A 127.0.0.1`.
    pub records: &'a [String],
    /// Owner names whose signatures are broken after signing (their answers are bogus:
    /// the validating resolver answers SERVFAIL).
    pub bogus: &'a [String],
}

impl Dns {
    /// A validating unbound (module-config "validator iterator") with `zones` as auth-zones
    /// it resolves as if from upstream: answers from signed zones are validated against the
    /// zones' own trust anchors (AD set), unsigned ones are insecure. Keys are made and zones
    /// signed in the test's directory with ldns-keygen/ldns-signzone (ldnsutils).
    pub fn start_dnssec(dir: &TempDir, zones: &[Zone<'_>]) -> Dns {
        let base = dir.join("unbound-dnssec");
        std::fs::create_dir_all(&base).unwrap();
        let port = free_port();
        let mut conf = format!(
            "server:\n  interface: 127.0.0.1@{port}\n  do-daemonize: no\n  username: \"\"\n\
             chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n\
             logfile: \"\"\n  use-syslog: no\n  verbosity: 1\n  val-log-level: 2\n\
             do-ip6: no\n  access-control: 127.0.0.0/8 allow\n\
             module-config: \"validator iterator\"\n  local-zone: \"test.\" nodefault\n",
            d = base.display()
        );
        let mut auth = String::new();
        for z in zones {
            let file = base.join(format!("{}.zone", z.name));
            let mut text = format!(
                "$ORIGIN {n}.\n$TTL 300\n@ SOA ns.{n}. hostmaster.{n}. 1 3600 600 86400 300\n\
                 @ NS ns.{n}.\nns A 127.0.0.1\n",
                n = z.name
            );
            for r in z.records {
                text.push_str(r);
                text.push('\n');
            }
            std::fs::write(&file, text).unwrap();
            let served = if z.signed {
                let keygen = |ksk: bool| {
                    let mut c = Command::new(need("ldns-keygen"));
                    c.current_dir(&base).args(["-a", "ECDSAP256SHA256"]);
                    if ksk {
                        c.arg("-k");
                    }
                    let out = c.arg(z.name).stdin(Stdio::null()).output().unwrap();
                    assert!(out.status.success(), "ldns-keygen: {out:?}");
                    String::from_utf8(out.stdout).unwrap().trim().to_owned()
                };
                let (ksk, zsk) = (keygen(true), keygen(false));
                let out = Command::new(need("ldns-signzone"))
                    .current_dir(&base)
                    .arg("-o")
                    .arg(z.name)
                    .arg(&file)
                    .arg(&ksk)
                    .arg(&zsk)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert!(out.status.success(), "ldns-signzone: {out:?}");
                let signed = base.join(format!("{}.zone.signed", z.name));
                if !z.bogus.is_empty() {
                    let text = std::fs::read_to_string(&signed).unwrap();
                    let broken: Vec<String> = text
                        .lines()
                        .map(|l| {
                            let owner = l.split_whitespace().next().unwrap_or("");
                            let hit = l.contains("\tRRSIG\t")
                                && z.bogus.iter().any(|b| owner == format!("{b}."));
                            match (hit, l.rsplit_once(' ')) {
                                // Flip the signature's first base64 character.
                                (true, Some((head, sig))) => {
                                    let flipped = if sig.starts_with('A') { "B" } else { "A" };
                                    format!("{head} {flipped}{}", &sig[1..])
                                }
                                _ => l.to_owned(),
                            }
                        })
                        .collect();
                    std::fs::write(&signed, broken.join("\n") + "\n").unwrap();
                }
                conf.push_str(&format!(
                    "  trust-anchor-file: \"{}\"\n",
                    base.join(format!("{ksk}.ds")).display()
                ));
                signed
            } else {
                file
            };
            auth.push_str(&format!(
                "auth-zone:\n  name: \"{}.\"\n  zonefile: \"{}\"\n  for-downstream: no\n\
                 for-upstream: yes\n  fallback-enabled: no\n",
                z.name,
                served.display()
            ));
        }
        conf.push_str(&auth);
        Dns::run(&base, port, conf)
    }

    /// The resolver's log (validation failures are logged at val-log-level 2).
    pub fn log(&self) -> String {
        self._proc.log()
    }
}

/// smtp-sink on `ip:port`, dumping each message into its own file.
pub struct Sink {
    pub dump: PathBuf,
    _proc: Proc,
}

impl Sink {
    /// `args`: failure injection and other options (`-r RCPT`, `-f RCPT`, `-8`…).
    pub fn start(dir: &TempDir, name: &str, ip: &str, port: u16, args: &[&str]) -> Sink {
        let dump = dir.join(&format!("sink-{name}"));
        std::fs::create_dir_all(&dump).unwrap();
        std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut cmd = Command::new(need("smtp-sink"));
        if nix::unistd::Uid::effective().is_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(["-h", name])
            .arg("-d")
            .arg(format!("{}/%Y%m%d%H%M%S.", dump.display()))
            .args(args)
            .arg(format!("{ip}:{port}"))
            .arg("100");
        let proc = Proc::spawn(cmd, dir.join(&format!("sink-{name}.log")));
        let bare = ip.trim_start_matches('[').trim_end_matches(']');
        wait_until(DEADLINE, "smtp-sink listening", || {
            std::net::TcpStream::connect((bare, port)).is_ok()
        });
        Sink { dump, _proc: proc }
    }

    /// The dumped messages.
    pub fn messages(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dump)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// A test CA and a certificate it signed for `names`: (ca pem, cert pem, key pem).
pub fn ca_and_cert(names: &[&str]) -> (String, String, String) {
    let (ca, mut leaves) = ca_and_certs(&[names]);
    let (cert, key) = leaves.remove(0);
    (ca, cert, key)
}

/// A test CA and one certificate per name list: (ca pem, [(cert pem, key pem)]).
pub fn ca_and_certs(name_sets: &[&[&str]]) -> (String, Vec<(String, String)>) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pochta outbound test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut leaves = Vec::new();
    for names in name_sets {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        leaves.push((cert.pem(), key.serialize_pem()));
    }
    (ca.pem(), leaves)
}

/// python3's http.server over TLS serving `files` (path under the root → content).
pub struct Https {
    _proc: Proc,
}

impl Https {
    pub fn start(
        dir: &TempDir,
        ip: &str,
        port: u16,
        cert: &str,
        key: &str,
        files: &[(&str, &str)],
    ) -> Https {
        let base = dir.join("https");
        let root = base.join("root");
        for (path, content) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        std::fs::write(base.join("cert.pem"), cert).unwrap();
        std::fs::write(base.join("key.pem"), key).unwrap();
        let script = "import http.server, ssl, sys, os\n\
                      os.chdir(sys.argv[1])\n\
                      s = http.server.HTTPServer((sys.argv[2], int(sys.argv[3])), \
                      http.server.SimpleHTTPRequestHandler)\n\
                      c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
                      c.load_cert_chain(sys.argv[4], sys.argv[5])\n\
                      s.socket = c.wrap_socket(s.socket, server_side=True)\n\
                      s.serve_forever()\n";
        let mut cmd = Command::new(need("python3"));
        cmd.arg("-c")
            .arg(script)
            .arg(&root)
            .arg(ip)
            .arg(port.to_string())
            .arg(base.join("cert.pem"))
            .arg(base.join("key.pem"));
        let proc = Proc::spawn(cmd, base.join("https.log"));
        wait_until(DEADLINE, "the HTTPS server", || {
            std::net::TcpStream::connect((ip, port)).is_ok()
        });
        Https { _proc: proc }
    }
}

/// A private Postfix receiving mail into virtual Maildirs under `mail/`.
pub struct Postfix {
    conf: PathBuf,
    pub log: PathBuf,
    pub mail: PathBuf,
}

/// What a test adds to the receiving Postfix's configuration ([`Postfix::start_with`]).
#[derive(Default)]
pub struct PfExtra<'a> {
    /// main.cf lines `name = value`; each replaces the default line of the same name.
    pub main_cf: &'a [String],
    /// master.cf lines appended to the default services (e.g. `local`, `lmtp`).
    pub master_cf: &'a [&'a str],
}

/// One smtpd listener of the receiving Postfix.
pub struct PfListener<'a> {
    pub ip: &'a str,
    /// Extra `-o` options, e.g. `smtpd_discard_ehlo_keywords=8bitmime`.
    pub opts: &'a [&'a str],
}

impl Postfix {
    /// The private config directory (main.cf, master.cf) of the Postfix `start` runs in `dir`.
    /// Postfix tools a test runs before `start` (postmap) take it with `-c`: without `-c` they
    /// read /etc/postfix/main.cf, which an unconfigured Postfix package does not have.
    pub fn conf_dir(dir: &TempDir) -> PathBuf {
        dir.join("postfix").join("etc")
    }

    /// `mailboxes`: addresses that exist (others get 550 5.1.1 at RCPT); their domains are
    /// the virtual mailbox domains. `cert`/`key`: PEM for STARTTLS.
    pub fn start(
        dir: &TempDir,
        port: u16,
        listeners: &[PfListener<'_>],
        mailboxes: &[&str],
        cert: &str,
        key: &str,
    ) -> Postfix {
        Self::start_with(
            dir,
            port,
            listeners,
            mailboxes,
            cert,
            key,
            &PfExtra::default(),
        )
    }

    /// [`Postfix::start`] with `extra` main.cf and master.cf lines.
    pub fn start_with(
        dir: &TempDir,
        port: u16,
        listeners: &[PfListener<'_>],
        mailboxes: &[&str],
        cert: &str,
        key: &str,
        extra: &PfExtra<'_>,
    ) -> Postfix {
        let base = dir.join("postfix");
        let (conf, queue, data, mail) = (
            Self::conf_dir(dir),
            base.join("spool"),
            base.join("data"),
            base.join("mail"),
        );
        for d in [&conf, &queue, &data, &mail] {
            std::fs::create_dir_all(d).unwrap();
        }
        let pf = nix::unistd::User::from_name("postfix").unwrap().unwrap();
        nix::unistd::chown(&data, Some(pf.uid), None).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown_test_user(&mail);
        std::fs::write(base.join("cert.pem"), cert).unwrap();
        std::fs::write(base.join("key.pem"), key).unwrap();
        std::fs::set_permissions(base.join("key.pem"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let mut domains: Vec<&str> = mailboxes
            .iter()
            .map(|m| m.rsplit_once('@').unwrap().1)
            .collect();
        domains.sort();
        domains.dedup();
        let boxes: Vec<String> = mailboxes
            .iter()
            .map(|m| {
                let (l, d) = m.rsplit_once('@').unwrap();
                format!("{m}={d}/{l}/")
            })
            .collect();
        // Postfix only accepts inet_interfaces it finds on an interface (127.0.0.1 on lo):
        // "all" here, the listeners' addresses in master.cf.
        let log = base.join("maillog");
        let uid = test_uid();
        let main_cf = format!(
            "compatibility_level = 3.6\nqueue_directory = {queue}\ndata_directory = {data}\n\
                 mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mx.pf.test\n\
                 mydomain = pf.test\nmyorigin = $myhostname\nmydestination =\n\
                 inet_interfaces = all\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n\
                 virtual_mailbox_domains = {domains}\nvirtual_mailbox_base = {mail}\n\
                 virtual_mailbox_maps = inline:{{ {boxes} }}\n\
                 virtual_uid_maps = static:{uid}\nvirtual_gid_maps = static:{uid}\n\
                 virtual_minimum_uid = 1\n\
                 smtpd_tls_cert_file = {base}/cert.pem\nsmtpd_tls_key_file = {base}/key.pem\n\
                 smtpd_tls_security_level = may\nsmtpd_tls_loglevel = 1\n\
                 smtpd_tls_received_header = yes\n\
                 in_flow_delay = 0\nsmtpd_peername_lookup = no\n\
                 smtp_dns_support_level = disabled\n\
                 alias_maps =\nalias_database =\nlocal_recipient_maps =\nbiff = no\n\
                 maillog_file = {log}\nmaillog_file_prefixes = /var, /dev/stdout, /tmp\n\
                 master_service_disable =\n",
            queue = queue.display(),
            data = data.display(),
            domains = domains.join(", "),
            mail = mail.display(),
            boxes = boxes.join(", "),
            base = base.display(),
            log = log.display(),
        );
        let name = |l: &str| l.split('=').next().unwrap_or("").trim().to_owned();
        let replaced: Vec<String> = extra.main_cf.iter().map(|l| name(l)).collect();
        let mut main_cf: String = main_cf
            .lines()
            .filter(|l| !replaced.contains(&name(l)))
            .map(|l| format!("{l}\n"))
            .collect();
        for l in extra.main_cf {
            main_cf.push_str(&format!("{l}\n"));
        }
        std::fs::write(conf.join("main.cf"), main_cf).unwrap();
        let mut master = String::new();
        for l in listeners {
            master.push_str(&format!("{}:{port} inet n - n - - smtpd\n", l.ip));
            for o in l.opts {
                master.push_str(&format!("  -o {o}\n"));
            }
        }
        master.push_str(
            "pickup unix n - n 60 1 pickup\ncleanup unix n - n - 0 cleanup\n\
             qmgr unix n - n 300 1 qmgr\ntlsmgr unix - - n 1000? 1 tlsmgr\n\
             rewrite unix - - n - - trivial-rewrite\nbounce unix - - n - 0 bounce\n\
             defer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce\n\
             verify unix - - n - 1 verify\nflush unix n - n 1000? 0 flush\n\
             proxymap unix - - n - - proxymap\nproxywrite unix - - n - 1 proxymap\n\
             smtp unix - - n - - smtp\nrelay unix - - n - - smtp\n\
             showq unix n - n - - showq\nerror unix - - n - - error\n\
             retry unix - - n - - error\ndiscard unix - - n - - discard\n\
             virtual unix - n n - - virtual\nanvil unix - - n - 1 anvil\n\
             scache unix - - n - 1 scache\npostlog unix-dgram n - n - 1 postlogd\n",
        );
        for l in extra.master_cf {
            master.push_str(&format!("{l}\n"));
        }
        std::fs::write(conf.join("master.cf"), master).unwrap();
        let status = Command::new(need("postfix"))
            .arg("-c")
            .arg(&conf)
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "postfix start failed: {}{}\n{}",
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        for l in listeners {
            wait_until(DEADLINE, "postfix smtpd", || {
                std::net::TcpStream::connect((l.ip, port)).is_ok()
            });
        }
        Postfix { conf, log, mail }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Raw bytes of the messages delivered to `local@domain`.
    pub fn delivered(&self, address: &str) -> Vec<Vec<u8>> {
        let (l, d) = address.rsplit_once('@').unwrap();
        let md = self.mail.join(d).join(l);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(md.join(sub)) {
                for e in rd.flatten() {
                    if let Ok(b) = std::fs::read(e.path()) {
                        out.push(b);
                    }
                }
            }
        }
        out
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg("abort")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A private Dovecot serving LMTP and userdb for local users of `domain`.
pub struct Dovecot {
    base: PathBuf,
    pub homes: PathBuf,
}

impl Dovecot {
    pub fn start(dir: &TempDir, domain: &str, users: &[&str]) -> Dovecot {
        let base = dir.join("dovecot");
        std::fs::create_dir_all(base.join("state")).unwrap();
        let homes = dir.join("home");
        let uid = test_uid();
        let mut passwd = String::new();
        for u in users {
            let home = homes.join(u);
            std::fs::create_dir_all(&home).unwrap();
            chown_test_user(&home);
            passwd.push_str(&format!(
                "{u}@{domain}:{{PLAIN}}pw:{uid}:{uid}::{}::\n",
                home.display()
            ));
        }
        let users_file = base.join("users");
        std::fs::write(&users_file, passwd).unwrap();
        let conf = base.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "base_dir = {run}\nstate_dir = {state}\ninstance_name = pochta-it-ob-{pid}-{n}\n\
                 protocols = lmtp\nlisten = 127.0.0.1\nlog_path = {log}\nssl = no\n\
                 first_valid_uid = {uid}\nlast_valid_uid = {uid}\n\
                 mail_location = maildir:~/Maildir\npostmaster_address = postmaster@{domain}\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n\
                 service auth {{\n  unix_listener auth-userdb {{\n    mode = 0666\n  }}\n\
                 unix_listener auth-client {{\n    mode = 0666\n  }}\n}}\n\
                 service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n}}\n",
                run = base.join("run").display(),
                state = base.join("state").display(),
                pid = std::process::id(),
                n = free_port(),
                log = base.join("dovecot.log").display(),
                users = users_file.display(),
            ),
        )
        .unwrap();
        let errors = base.join("start.err");
        let status = Command::new(need("dovecot"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors).unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot failed to start: {}",
            std::fs::read_to_string(&errors).unwrap_or_default()
        );
        let d = Dovecot { base, homes };
        wait_until(DEADLINE, "dovecot's sockets", || {
            d.lmtp().exists() && d.userdb().exists()
        });
        d
    }

    pub fn lmtp(&self) -> PathBuf {
        self.base.join("run/lmtp")
    }

    /// The SASL socket (Postfix `smtpd_sasl_type = dovecot`).
    pub fn auth_client(&self) -> PathBuf {
        self.base.join("run/auth-client")
    }

    pub fn userdb(&self) -> PathBuf {
        self.base.join("run/auth-userdb")
    }

    /// Texts of the messages in a user's Maildir.
    pub fn messages(&self, user: &str) -> Vec<String> {
        let md = self.homes.join(user).join("Maildir");
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(md.join(sub)) {
                for e in rd.flatten() {
                    if let Ok(b) = std::fs::read(e.path()) {
                        out.push(String::from_utf8_lossy(&b).into_owned());
                    }
                }
            }
        }
        out
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.base.join("run/master.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let pid = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let end = Instant::now() + Duration::from_secs(10);
                while Instant::now() < end && nix::sys::signal::kill(pid, None).is_ok() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}
