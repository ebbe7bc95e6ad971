#!/usr/bin/env python3
"""Writes tests/corpus/a<NNN>.eml: header-only messages whose address headers (From, Sender,
Reply-To, To, Cc, Bcc) are random mixes of display names (atoms, quoted strings with
escapes, comments, encoded words, 8-bit), angle addresses with and without routes, groups,
empty elements, missing local parts or domains, bad domains and unclosed brackets: the
input on which Dovecot's address parser shows its recovery rules (tests/dovecot_golden.rs
compares ENVELOPE and SEARCH FROM/TO/... with Dovecot's answers).

Usage: python3 crates/imap-message/tests/gen-address-corpus.py [COUNT [SEED [DIR]]]
(defaults: 80, 4242, tests/corpus); reproducible for a given seed.
"""
import random, os
import sys
r = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 4242)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, "corpus")
COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 80
os.makedirs(OUT, exist_ok=True)
atoms = ["a", "bob", "john.doe", "x_y", "Ünï", "=?utf-8?q?J=C3=BCrgen?=", "o'neil", "a+b", ""]
domains = ["example.com", "x.y", "[10.0.0.1]", "sub.example.org", "", "b.", ".c", "exa mple.com"]
QUOTED = ["Doe, J.", "a\\\"b", "tab\there", "", " sp ", "Ü x", "\\\\"]


def word():
    c = r.random()
    if c < 0.5: return r.choice(atoms)
    if c < 0.7:
        return '"' + r.choice(QUOTED) + '"'
    if c < 0.8: return "(" + r.choice(["c", "nested (x) y", "", "Ü"]) + ")"
    return r.choice(["Dr.", "J.", "Mr", "=?iso-8859-1?q?=E9?="])
def phrase():
    return " ".join(word() for _ in range(r.randint(0, 3)))
def addrspec():
    s = r.choice(atoms) if r.random() < 0.8 else '"' + r.choice(["q l", "a@b", ""]) + '"'
    if r.random() < 0.9: s += "@" + r.choice(domains)
    return s
def mailbox():
    c = r.random()
    if c < 0.3:
        s = addrspec()
        if r.random() < 0.3:
            s += " (" + r.choice(["Name", "", "A (B)"]) + ")"
        return s
    route = "@r1.example,@r2.example:" if r.random() < 0.1 else ""
    close = ">" if r.random() < 0.9 else ""
    return (phrase() + " " if r.random() < 0.8 else "") + "<" + route + addrspec() + close
def alist():
    items = []
    for _ in range(r.randint(0, 4)):
        if r.random() < 0.15:
            name = phrase()
            members = ", ".join(mailbox() for _ in range(r.randint(0, 2)))
            items.append(name + ": " + members + (";" if r.random() < 0.8 else ""))
        else:
            items.append(mailbox())
    sep = r.choice([", ", ",", " , ", ",\n\t", ",,"])
    return sep.join(items)
for i in range(COUNT):
    h = []
    for name in ["From", "Sender", "Reply-To", "To", "Cc", "Bcc"]:
        if r.random() < 0.6: h.append(f"{name}: {alist()}")
    if r.random() < 0.7: h.append("Subject: " + phrase())
    if r.random() < 0.5:
        irt = ["<a@b>", "<a@b> (c)", " <x@y>\n\t<z@w>", "garbage \"q\""]
        h.append("In-Reply-To: " + r.choice(irt))
    if r.random() < 0.5: h.append("Message-ID: " + r.choice(["<m@x>", "m@x", "<\"q\"@x>", "<a b>"]))
    r.shuffle(h)
    open(os.path.join(OUT, f"a{i:03d}.eml"), "wb").write(("\n".join(h) + "\n\nbody\n").encode())
