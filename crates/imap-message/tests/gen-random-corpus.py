#!/usr/bin/env python3
"""Writes tests/corpus/r<NNN>.eml: random but reproducible (fixed seed) MIME messages that mix
the shapes real mail has with the mistakes broken mail has — folded and duplicated headers,
encoded words, 8-bit bytes, odd Content-Type/Content-Disposition parameters, every transfer
encoding (some corrupt), nested multiparts and message/rfc822 with missing or extra
boundaries, LF or CRLF line ends. tests/dovecot-golden.py then records Dovecot's answers for
them like for the hand-written corpus.

Usage: python3 crates/imap-message/tests/gen-random-corpus.py [COUNT [SEED [DIR]]]
(defaults: 150, 20261123, tests/corpus). Another seed and directory give a fresh hold-out
set: run dovecot-golden.py with POCHTA_GOLDEN_CORPUS/POCHTA_GOLDEN_OUT pointing there and
the Rust test with POCHTA_GOLDEN_DIR (see dovecot_golden.rs).
"""
import base64
import os
import quopri
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

ADDRS = [
    "alice@example.org", "Bob <bob@example.net>", '"Doe, J." <jd@example.com>',
    "=?utf-8?q?J=C3=BCrgen?= <j@example.de>", "Jörg Ü <joerg@example.de>",
    "undisclosed-recipients:;",
    "team: a@x.y, b@x.y;", "c@d (Comment Name)", "<@r.example:routed@example.com>", "broken",
    '"quoted local"@example.com', "x@[10.0.0.1]", "", "a@b, , c@d", "Name <>", "<a@b",
]
SUBJECTS = [
    "hello", "  spaced   out\tsubject ", "=?utf-8?b?w6TDtsO8?= and =?iso-8859-1?q?=E9t=E9?=",
    "Grüße", 'say "hi" \\\\ there', "", "a\n folded\n\tsubject", "x" * 200,
]
DATES = [
    "Mon, 2 Jan 2023 10:00:00 +0100", "2 Jan 23 10:00 GMT", "Tue, 03 Jan 2023 23:59:59 -1200",
    "garbage", "Wed, 4 Jan 2023 12:00:00 (comment) +0000", "Thu,\n 5 Jan 2023 01:02:03 EST",
]
CHARSETS = ["utf-8", "UTF-8", "iso-8859-1", "us-ascii", "windows-1252", "x-unknown", '"utf-8"']
TEXTS = [
    "Hello world.", "Grüße aus Köln!", "line with trailing spaces   ", "--not-a-boundary",
    "=3D looks like qp", "", ".", "Ünïcödé ✓", "tab\tseparated", "From here",
]


def text_body(r):
    return "\n".join(r.choice(TEXTS) for _ in range(r.randint(0, 5)))


def encode(r, body, cte):
    data = body.encode("utf-8")
    if cte.lower() == "base64":
        s = base64.encodebytes(data).decode()
        if r.random() < 0.15:
            s = s.rstrip("=\n")[:-1] + "\n"  # truncated
        return s
    if cte.lower() == "quoted-printable":
        s = quopri.encodestring(data).decode()
        if r.random() < 0.1:
            s += "=ZZ\n"
        return s
    return body


def content_headers(r, kind, boundary):
    h = []
    if kind == "multipart":
        sub = r.choice(["mixed", "alternative", "related", "digest", "MIXED"])
        if boundary is None:
            h.append(f"Content-Type: multipart/{sub}")
        else:
            q = r.choice(['"%s"', "%s"]) % boundary
            sep = r.choice([" ", "\n\t", "\n "])
            h.append(f"Content-Type: multipart/{sub};{sep}boundary={q}")
        return h, sub.lower()
    if kind == "message":
        h.append("Content-Type: message/rfc822")
        return h, None
    ct = r.choice([
        "text/plain", "text/html", "TEXT/Plain", "application/octet-stream", "image/png",
        "text", "text/", ";broken", None,
    ])
    if ct is not None:
        params = []
        for _ in range(r.randint(0, 3)):
            params.append(r.choice([
                f"charset={r.choice(CHARSETS)}", 'name="file name.txt"', "format=flowed",
                "name*0=long; name*1=name.bin", "title*=utf-8''%C3%A4", "x=\"a;b\"", "junk",
                "name==?utf-8?q?=C3=A4.txt?=", "empty=\"\"",
            ]))
        h.append("Content-Type: " + "; ".join([ct] + params))
    return h, None


def leaf_extras(r):
    h = []
    if r.random() < 0.3:
        h.append("Content-Disposition: " + r.choice([
            "inline", "attachment; filename=a.txt", 'attachment; filename="ä b.pdf"',
            "attachment;\n filename*0*=utf-8''%C3%A4;\n filename*1*=.txt", "INLINE; size=42",
        ]))
    if r.random() < 0.15:
        h.append("Content-ID: <" + r.choice(["id1@x", "a b"]) + ">")
    if r.random() < 0.15:
        h.append("Content-Description: " + r.choice(SUBJECTS))
    if r.random() < 0.1:
        h.append("Content-Language: " + r.choice(["en", "en, de", "(c) fr"]))
    if r.random() < 0.1:
        h.append("Content-Location: http://example.org/x")
    if r.random() < 0.1:
        h.append("Content-MD5: Q2hlY2s=")
    return h


def part(r, depth, top):
    """Returns (header lines, body text) of one part."""
    h = []
    if top:
        for name, pool in (("From", ADDRS), ("To", ADDRS), ("Cc", ADDRS), ("Subject", SUBJECTS),
                           ("Date", DATES), ("Reply-To", ADDRS), ("Sender", ADDRS)):
            for _ in range(r.choice([0, 1, 1, 1, 2] if name in ("From", "To", "Subject", "Date")
                                    else [0, 0, 0, 1])):
                h.append(f"{name}: {r.choice(pool)}")
        if r.random() < 0.7:
            h.append("Message-ID: <%d@example.org>" % r.randint(1, 10**6))
        if r.random() < 0.8:
            h.append("MIME-Version: 1.0")
    roll = r.random()
    kind = "leaf"
    if depth < 3 and roll < 0.3:
        kind = "multipart"
    elif depth < 3 and roll < 0.4:
        kind = "message"
    if kind == "multipart":
        boundary = None if r.random() < 0.05 else r.choice(["b%d" % depth, "==x%d==" % depth,
                                                             "sep", "a'()+_,-./:=? %d" % depth])
        ch, sub = content_headers(r, "multipart", boundary)
        h += ch
        body = []
        if r.random() < 0.3:
            body.append("preamble text")
        for _ in range(r.randint(0, 3)):
            ph, pb = part(r, depth + 1, False)
            delim = "--%s" % boundary if boundary else "--nothing"
            if r.random() < 0.1:
                delim += r.choice(["   ", " junk"])
            body.append(delim)
            body += ph
            if r.random() < 0.93:
                body.append("")
            if pb:
                body.append(pb)
        if boundary and r.random() < 0.85:
            body.append("--%s--" % boundary)
            if r.random() < 0.3:
                body.append("epilogue")
        return h, "\n".join(body)
    if kind == "message":
        ch, _ = content_headers(r, "message", None)
        h += ch
        ih, ib = part(r, depth + 1, True)
        return h, "\n".join(ih + [""] + ([ib] if ib else []))
    ch, _ = content_headers(r, "leaf", None)
    h += ch + leaf_extras(r)
    cte = r.choice([None, None, "7bit", "8bit", "base64", "quoted-printable", "BASE64",
                    "x-uuencode", "base64 junk", "binary"])
    if cte:
        h.append("Content-Transfer-Encoding: " + cte)
    body = text_body(r)
    if cte and cte.split()[0].lower() in ("base64", "quoted-printable"):
        body = encode(r, body, cte.split()[0]).rstrip("\n")
    return h, body


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    r = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 20261123)
    out = sys.argv[3] if len(sys.argv) > 3 else CORPUS
    os.makedirs(out, exist_ok=True)
    for i in range(count):
        h, body = part(r, 0, True)
        r.shuffle(h) if r.random() < 0.2 else None
        msg = "\n".join(h) + "\n\n" + body + ("\n" if r.random() < 0.9 else "")
        data = msg.encode("utf-8")
        if r.random() < 0.5:
            data = data.replace(b"\n", b"\r\n")
        with open(os.path.join(out, "r%03d.eml" % i), "wb") as f:
            f.write(data)
    print(f"{count} random messages written to {out}")


if __name__ == "__main__":
    main()
