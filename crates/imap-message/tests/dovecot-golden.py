#!/usr/bin/env python3
"""Regenerate the Dovecot golden files for pochta-imap-message.

Usage (as root, Dovecot 2.3 installed):
    python3 crates/imap-message/tests/dovecot-golden.py [--check]

For every message in tests/corpus/*.eml (bytes exactly as a Maildir stores them: LF or CRLF)
this starts a private Dovecot imap (own base_dir/state_dir/log_path, passwd-file user,
loopback port; never the system instance; TZ=UTC), drops the files into the user's Maildir
one by one (with distinct mtimes), and asks Dovecot for INTERNALDATE, RFC822.SIZE, ENVELOPE,
BODY, BODYSTRUCTURE, and BODY[section],
BINARY[section] and BINARY.SIZE[section] for every part number in the message (plus a few
that do not exist) with each section text (full, MIME, HEADER, TEXT, HEADER.FIELDS,
HEADER.FIELDS.NOT), and whether the message matches each of a list of SEARCH keys
(BODY, TEXT, SUBJECT, FROM, HEADER, SENT*). The answers are written verbatim to
tests/golden/<name>.golden as records

    @@ <length> <fetch item as sent>\\n<the item's value exactly as Dovecot sent it>\\n

(an error answer is recorded as the value `!ERR <tagged response>`, a dropped connection as
`!ERR disconnected`). tests/dovecot_golden.rs
compares our output with these byte for byte. `--check` compares instead of writing and exits
1 on any difference (useful after a Dovecot upgrade).
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.environ.get("POCHTA_GOLDEN_CORPUS", os.path.join(HERE, "corpus"))
GOLDEN = os.environ.get("POCHTA_GOLDEN_OUT", os.path.join(HERE, "golden"))
UID = 65534
FIELDS = "(FROM Subject content-TYPE X-Nothing)"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def find(prog):
    for d in ("/usr/sbin", "/usr/bin", "/usr/local/sbin"):
        p = os.path.join(d, prog)
        if os.path.exists(p):
            return p
    sys.exit(f"{prog} is not installed (Debian: dovecot-imapd)")


class Imap:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""
        self.n = 0
        self.read_response_line()  # greeting

    def read_line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def read_n(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response_line(self):
        """One response including any literals it carries."""
        out = b""
        while True:
            line = self.read_line()
            out += line
            body = line[:-2]
            if body.endswith(b"}") and b"{" in body:
                num = body[body.rindex(b"{") + 1:-1]
                if num.endswith(b"+"):
                    num = num[:-1]
                if num.isdigit():
                    out += self.read_n(int(num))
                    continue
            return out

    def cmd(self, text):
        self.n += 1
        tag = b"g%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        untagged = []
        while True:
            r = self.read_response_line()
            if r.startswith(tag + b" "):
                return r, untagged
            untagged.append(r)


def parse_value(b, i=0):
    """Parses one IMAP value at b[i:]; returns (python value, end). Lists → list,
    strings → bytes, NIL → None, atoms/numbers → str."""
    while b[i:i + 1] == b" ":
        i += 1
    c = b[i:i + 1]
    if c == b"(":
        i += 1
        out = []
        while True:
            while b[i:i + 1] == b" ":
                i += 1
            if b[i:i + 1] == b")":
                return out, i + 1
            v, i = parse_value(b, i)
            out.append(v)
    if c == b'"':
        i += 1
        s = b""
        while b[i:i + 1] != b'"':
            if b[i:i + 1] == b"\\":
                i += 1
            s += b[i:i + 1]
            i += 1
        return s, i + 1
    if c in (b"{", b"~"):
        if c == b"~":
            i += 1
        j = b.index(b"}", i)
        n = int(b[i + 1:j])
        start = j + 3
        return b[start:start + n], start + n
    j = i
    while j < len(b) and b[j:j + 1] not in (b" ", b")", b"("):
        j += 1
    atom = b[i:j].decode()
    return (None if atom.upper() == "NIL" else atom), j


def part_paths(body):
    """Every addressable part number of a BODYSTRUCTURE, in order."""
    out = []

    def children(b):
        kids = []
        for x in b:
            if not isinstance(x, list):
                break
            kids.append(x)
        return kids[:60]

    def is_multi(b):
        return isinstance(b, list) and bool(b) and isinstance(b[0], list)

    def is_msg(b):
        return (isinstance(b, list) and len(b) > 8 and isinstance(b[0], bytes)
                and b[0].lower() == b"message" and isinstance(b[1], bytes)
                and b[1].lower() == b"rfc822" and isinstance(b[8], list))

    def walk(b, p):
        for n, kid in enumerate(children(b), 1):
            out.append(p + [n])
            leafish(kid, p + [n])

    def leafish(b, q):
        if is_multi(b):
            walk(b, q)
        elif is_msg(b):
            if is_multi(b[8]):
                walk(b[8], q)
            else:
                out.append(q + [1])
                leafish(b[8], q + [1])

    if is_multi(body):
        walk(body, [])
    else:
        out.append([1])
        leafish(body, [1])
    return out


def items_for(paths):
    items = ["RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE",
             "BODY.PEEK[]", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]",
             f"BODY.PEEK[HEADER.FIELDS {FIELDS}]", f"BODY.PEEK[HEADER.FIELDS.NOT {FIELDS}]",
             "BINARY.PEEK[]", "BINARY.SIZE[]"]
    extra = []
    if paths:
        last = paths[-1]
        extra.append([len([p for p in paths if len(p) == 1]) + 1])
        extra.append(paths[0] + [1])
        extra.append(last + [2])
        extra.append([0])
    seen = set()
    for p in paths + extra:
        s = ".".join(map(str, p))
        if s in seen:
            continue
        seen.add(s)
        items += [f"BODY.PEEK[{s}]", f"BODY.PEEK[{s}.MIME]", f"BODY.PEEK[{s}.HEADER]",
                  f"BODY.PEEK[{s}.TEXT]", f"BODY.PEEK[{s}.HEADER.FIELDS {FIELDS}]",
                  f"BODY.PEEK[{s}.HEADER.FIELDS.NOT {FIELDS}]",
                  f"BINARY.PEEK[{s}]", f"BINARY.SIZE[{s}]"]
    return items


# SEARCH keys compared with Dovecot for every message: (key, argument).
SEARCHES = [
    ("BODY", "hello"), ("BODY", "HELLO WORLD"), ("BODY", "part one"), ("BODY", "köln"),
    ("BODY", "GRÜSSE"), ("BODY", "grüße aus"), ("BODY", "html alt"), ("BODY", "=3D"),
    ("BODY", "<b>html"), ("BODY", "binary"), ("BODY", "inner plain"), ("BODY", "%PDF"),
    ("BODY", "subject"), ("BODY", "digest one"), ("BODY", "deep text"), ("BODY", "preamble"),
    ("BODY", "hällo"), ("BODY", "inside"), ("BODY", "line3"), ("BODY", "=E4"),
    ("TEXT", "alice"), ("TEXT", "Content-Type"), ("TEXT", "inner ä"), ("TEXT", "example.org"),
    ("TEXT", "hello"), ("TEXT", "grüße"), ("TEXT", "boundary"), ("TEXT", "mime-version: 1.0"),
    ("SUBJECT", "test"), ("SUBJECT", "ä"), ("SUBJECT", "lots of"), ("SUBJECT", "GRÜSSE"),
    ("SUBJECT", "inner"), ("SUBJECT", "word199"), ("FROM", "alice"), ("FROM", "doe, john"),
    ("FROM", "jörg"), ("FROM", "second"), ("TO", "undisclosed"), ("CC", "bee"),
    ("HEADER Message-ID", "folded"), ("HEADER X-Empty", ""), ("HEADER Content-Type", "html"),
    ("SENTON", "2-Jan-2023"), ("SENTSINCE", "3-Jan-2023"), ("SENTBEFORE", "4-Jan-2023"),
    ("SENTON", "4-Jan-2023"), ("SENTBEFORE", "1-Jan-1971"), ("SENTON", "17-Jul-1996"),
    ("SENTON", "5-Jan-2023"), ("SENTON", "3-Jan-2023"), ("SENTON", "6-Jan-2023"),
    ("SENTON", "1-Jan-1970"), ("BODY", "résumé"), ("BODY", "JÜRGEN"), ("BODY", "hello world"),
    ("BODY", "soft  break"), ("BODY", "ää"), ("SUBJECT", "rechnung für"),
    ("SUBJECT", "résumé"),
    ("TO", "jürgen"), ("FROM", "é"), ("HEADER Content-Language", "DE"), ("BODY", "cafe"),
    ("BODY", "CAFÉ"), ("BODY", "crème"), ("BODY", "creme"), ("BODY", "file"), ("BODY", "ﬁle"),
    ("BODY", "å"), ("BODY", "Å"), ("BODY", "Ё"), ("BODY", "е"), ("BODY", "ẾX"), ("BODY", "e"),
    ("SUBJECT", "cafe"), ("SUBJECT", "CAFÉ"),
]


def search_value(imap, seq, key, arg):
    if key.startswith("SENT"):
        q = f"SEARCH {seq} {key} {arg}"
    else:
        data = arg.encode()
        q = f"SEARCH CHARSET UTF-8 {seq} {key} {{{len(data)}+}}\r\n" + data.decode()
    tagged, untagged = imap.cmd(q)
    if tagged.startswith(b"* BYE"):
        return b"!ERR disconnected"
    if b" OK " not in tagged:
        return b"!ERR " + untimed(tagged.split(b" ", 1)[1].rstrip(b"\r\n"))
    for r in untagged:
        if r.startswith(b"* SEARCH"):
            return b"1" if str(seq).encode() in r.split() else b"0"
    return b"!ERR no SEARCH response"


def untimed(text):
    """Drops Dovecot's "(0.001 + 0.000 secs)." timing so the golden files are stable."""
    return re.sub(rb" ?\([0-9.]+( \+ [0-9.]+)* secs\)\.?$", b"", text)


def connect(port):
    imap = Imap(port)
    t, _ = imap.cmd("LOGIN u1 pass1")
    assert t.split(b" ")[1] == b"OK", t
    t, _ = imap.cmd("EXAMINE INBOX")
    assert b" OK " in t, t
    return imap


class Session:
    """An IMAP session that reconnects when Dovecot drops the connection (it does so when
    BINARY meets broken base64/quoted-printable: recorded as `!ERR disconnected`)."""

    def __init__(self, port):
        self.port = port
        self.imap = connect(port)

    def cmd(self, text):
        try:
            return self.imap.cmd(text)
        except (EOFError, OSError):
            self.imap = connect(self.port)
            return b"* BYE disconnected\r\n", []


def fetch_value(imap, seq, item):
    tagged, untagged = imap.cmd(f"FETCH {seq} ({item})")
    if tagged.startswith(b"* BYE"):
        return b"!ERR disconnected"
    if not tagged.split(b" ", 2)[1].startswith(b"OK"):
        return b"!ERR " + untimed(tagged.split(b" ", 1)[1].rstrip(b"\r\n"))
    prefix = b"* %d FETCH (" % seq
    for r in untagged:
        if r.startswith(prefix):
            r = r[len(prefix):]
            if not r.endswith(b")\r\n"):
                raise ValueError(f"odd FETCH response {r!r}")
            r = r[:-3]
            if b"[" in r.split(b" ", 1)[0]:
                j = r.index(b"]") + 1
                while r[j:j + 1] != b" ":
                    j += 1
                return r[j + 1:]
            return r.split(b" ", 1)[1]
    return b"!ERR no FETCH response"


def main():
    check = "--check" in sys.argv
    dovecot, doveadm = find("dovecot"), find("doveadm")
    names = sorted(f[:-4] for f in os.listdir(CORPUS) if f.endswith(".eml"))
    tmp = tempfile.mkdtemp(prefix="pochta-golden-")
    os.chmod(tmp, 0o755)
    home = os.path.join(tmp, "home")
    md = os.path.join(home, "Maildir")
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d))
    for root, dirs, files in os.walk(home):
        os.chown(root, UID, UID)
    os.makedirs(os.path.join(tmp, "state"))
    port = free_port()
    users = os.path.join(tmp, "users")
    with open(users, "w") as f:
        f.write(f"u1:{{PLAIN}}pass1:{UID}:{UID}::{home}::\n")
    conf = os.path.join(tmp, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""base_dir = {tmp}/run
state_dir = {tmp}/state
instance_name = pochta-golden-{os.getpid()}
protocols = imap
listen = 127.0.0.1
log_path = {tmp}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = {UID}
last_valid_uid = {UID}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
    # INTERNALDATE is rendered in the server's zone: pin it to UTC.
    subprocess.run([dovecot, "-c", conf], check=True, env=dict(os.environ, TZ="UTC"))
    failed = False
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("dovecot did not listen:\n" + open(f"{tmp}/dovecot.log").read())
                time.sleep(0.05)
        imap = Session(port)
        os.makedirs(GOLDEN, exist_ok=True)
        for seq, name in enumerate(names, 1):
            src = os.path.join(CORPUS, name + ".eml")
            dst = os.path.join(md, "new", f"{1700000000 + seq}.M{seq}P1.golden")
            shutil.copyfile(src, dst)
            os.chown(dst, UID, UID)
            # Distinct INTERNALDATEs (Maildir: the file's mtime), single- and two-digit days.
            # (from the name, so that adding a message changes no other golden file)
            mtime = 837596665 + zlib.crc32(name.encode()) % 900_000_000
            os.utime(dst, (mtime, mtime))
            t, u = imap.cmd("NOOP")
            assert any(b"EXISTS" in r for r in u), (name, u)
            bs, _ = parse_value(fetch_value(imap, seq, "BODYSTRUCTURE"))
            out = b""
            v = fetch_value(imap, seq, "INTERNALDATE")
            out += b"@@ %d INTERNALDATE %d\n" % (len(v), mtime) + v + b"\n"
            for item in items_for(part_paths(bs)):
                v = fetch_value(imap, seq, item)
                out += b"@@ %d %s\n" % (len(v), item.encode()) + v + b"\n"
            for key, arg in SEARCHES:
                v = search_value(imap, seq, key, arg)
                item = f"SEARCH {key} {arg}"
                out += b"@@ %d %s\n" % (len(v), item.encode()) + v + b"\n"
            path = os.path.join(GOLDEN, name + ".golden")
            if check:
                old = open(path, "rb").read() if os.path.exists(path) else b""
                if old != out:
                    print(f"DIFFERS: {name}")
                    failed = True
            else:
                with open(path, "wb") as f:
                    f.write(out)
        imap.cmd("LOGOUT")
    finally:
        subprocess.run([doveadm, "-c", conf, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        if "--keep" not in sys.argv:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(names)} messages {'checked' if check else 'written to ' + GOLDEN}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
