//! Address lists the way Postfix's RFC 822 tokenizer and parser see them (global/tok822_parse.c,
//! tok822_rewrite.c, quote_822_local.c): alias values, virtual table results and `:include:`
//! lines all go through here, so that `"|cmd arg"`, `a b` (two addresses: the parser adds the
//! missing comma), `Name <a@b>` and `(comments)` split exactly as Postfix splits them.

/// One token. Comments are kept by the scanner (postalias puts them into keys) and dropped by
/// the parser (they never end up inside an address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    Atom(String),
    /// Text of a quoted string, unquoted; also an atom with special characters made by `\`.
    QString(String),
    /// Text between `[` and `]`.
    DomLit(String),
    /// The whole comment with its parentheses, as written.
    Comment(String),
    Op(char),
}

/// tok822's single-character operators: RFC 822 specials plus `|`, `%` and `!`.
const OPCHARS: &str = "|%!()<>@,;:\\\".[]";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_op(c: char) -> bool {
    OPCHARS.contains(c)
}

/// Collects characters while `cond` holds, honouring `\` escapes (the escaped character is
/// taken as is, the backslash dropped); whitespace becomes a space (tok822's COLLECT).
fn collect(chars: &[char], i: &mut usize, out: &mut String, cond: impl Fn(char) -> bool) {
    while let Some(&c0) = chars.get(*i) {
        let mut c = c0;
        if c == '\\' {
            *i += 1;
            match chars.get(*i) {
                Some(&e) => c = e,
                None => break,
            }
        } else if !cond(c) {
            break;
        }
        out.push(if is_space(c) { ' ' } else { c });
        *i += 1;
    }
}

/// tok822_scan: a string (external form) to a flat token list.
pub(crate) fn scan(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        if is_space(c) {
            continue;
        }
        if c == '(' {
            let mut text = String::from("(");
            let mut level = 1;
            while let Some(&ch) = chars.get(i) {
                text.push(ch);
                i += 1;
                if ch == '(' {
                    level += 1;
                } else if ch == ')' {
                    level -= 1;
                    if level == 0 {
                        break;
                    }
                } else if ch == '\\' {
                    match chars.get(i) {
                        Some(&e) => {
                            text.push(e);
                            i += 1;
                        }
                        None => break,
                    }
                }
            }
            out.push(Tok::Comment(text));
        } else if c == '[' || c == '"' {
            let end = if c == '[' { ']' } else { '"' };
            let mut text = String::new();
            collect(&chars, &mut i, &mut text, |ch| ch != end);
            if i < chars.len() {
                i += 1;
            }
            out.push(if c == '[' {
                Tok::DomLit(text)
            } else {
                Tok::QString(text)
            });
        } else if c != '\\' && is_op(c) {
            out.push(Tok::Op(c));
        } else {
            i -= 1;
            let mut text = String::new();
            collect(&chars, &mut i, &mut text, |ch| !is_space(ch) && !is_op(ch));
            // tok822_quote_atom: an atom that needs quoting when printed is a quoted string.
            let quoted = text
                .chars()
                .any(|ch| ch == ' ' || ch.is_ascii_control() || is_op(ch));
            out.push(if quoted {
                Tok::QString(text)
            } else {
                Tok::Atom(text)
            });
        }
    }
    out
}

fn is_word(t: &Tok) -> bool {
    matches!(t, Tok::Atom(_) | Tok::QString(_) | Tok::DomLit(_))
}

/// tok822_parse: the addresses of an address list, left to right, each as its tokens.
///
/// Postfix parses from right to left, grouping the tokens between the current token and a
/// right-hand boundary into an address; two adjacent words get a missing comma between them,
/// `<...>` is the address of `phrase <...>`, `name: a, b;` is a group. Comments are set aside
/// first: they never belong to an address.
pub(crate) fn parse_addresses(toks: &[Tok]) -> Vec<Vec<Tok>> {
    let t: Vec<&Tok> = toks
        .iter()
        .filter(|t| !matches!(t, Tok::Comment(_)))
        .collect();
    const DO_WORD: u8 = 1;
    const DO_GROUP: u8 = 2;
    let mut groups: Vec<Vec<Tok>> = Vec::new();
    // Tokens strictly between `tp` and `right` are not yet grouped. -1 is the left sentinel.
    let mut emit = |left: isize, right: isize| {
        let (Ok(from), Ok(to)) = (usize::try_from(left + 1), usize::try_from(right)) else {
            return;
        };
        if from < to && to <= t.len() {
            groups.push(t[from..to].iter().map(|&x| x.clone()).collect());
        }
    };
    let op_at = |i: isize| -> Option<char> {
        match t.get(usize::try_from(i).ok()?) {
            Some(Tok::Op(c)) => Some(*c),
            _ => None,
        }
    };
    let mut state = DO_WORD;
    let mut right = t.len() as isize;
    let mut tp = right - 1;
    while tp >= 0 {
        let i = tp as usize;
        match t[i] {
            Tok::Op(';') => {
                emit(tp, right);
                right = tp;
                state = DO_GROUP | DO_WORD;
            }
            Tok::Op(':') if state & DO_GROUP != 0 => {
                emit(tp, right);
                while tp >= 0 && op_at(tp) != Some(',') {
                    tp -= 1;
                }
                right = tp;
                continue;
            }
            Tok::Op('>') => {
                emit(tp, right);
                let gt = tp;
                while tp >= 0 && op_at(tp) != Some('<') {
                    tp -= 1;
                }
                emit(tp, gt);
                while tp >= 0 && !matches!(op_at(tp), Some('>' | ';' | ',' | ':')) {
                    tp -= 1;
                }
                right = tp;
                state |= DO_WORD;
                continue;
            }
            w if is_word(w) => {
                if state & DO_WORD == 0 {
                    emit(tp, right);
                    right = tp + 1;
                }
                state &= !DO_WORD;
            }
            Tok::Op(',') => {
                emit(tp, right);
                right = tp;
                state |= DO_WORD;
            }
            _ => state |= DO_WORD,
        }
        tp -= 1;
    }
    emit(-1, right);
    groups.reverse();
    groups
}

/// tok822_internalize of one address: its tokens without quoting or spaces.
pub(crate) fn internalize(toks: &[Tok]) -> String {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Atom(x) | Tok::QString(x) | Tok::Comment(x) => s.push_str(x),
            Tok::DomLit(x) => {
                s.push('[');
                s.push_str(x);
                s.push(']');
            }
            Tok::Op(c) => s.push(*c),
        }
    }
    s
}

fn copy_quoted(out: &mut String, text: &str, specials: &str) {
    for c in text.chars() {
        if specials.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// tok822_externalize of a flat (top-level) token list: quoted strings re-quoted, a space
/// between two adjacent words. postalias stores keys in this form.
pub(crate) fn externalize(toks: &[Tok]) -> String {
    let mut s = String::new();
    let non_op = |t: &Tok| !matches!(t, Tok::Op(_));
    for (n, t) in toks.iter().enumerate() {
        match t {
            Tok::Atom(x) | Tok::Comment(x) => s.push_str(x),
            Tok::QString(x) => {
                s.push('"');
                copy_quoted(&mut s, x, "\"\\\r\n");
                s.push('"');
            }
            Tok::DomLit(x) => {
                s.push('[');
                copy_quoted(&mut s, x, "\\\r\n");
                s.push(']');
            }
            Tok::Op(c) => s.push(*c),
        }
        if let Some(next) = toks.get(n + 1) {
            if *t == Tok::Op(',') || *next == Tok::Op('<') || (non_op(t) && non_op(next)) {
                s.push(' ');
            }
        }
    }
    s
}

fn is_dot_string(local: &str) -> bool {
    if local.is_empty() || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    !local.chars().any(|c| {
        c == ' '
            || c.is_ascii_control()
            || matches!(
                c,
                '(' | ')' | '<' | '>' | '@' | ',' | ';' | ':' | '\\' | '"' | '[' | ']'
            )
    })
}

/// quote_822_local: internal (unquoted) form to external form, quoting the local part when it
/// is not a dot-string. `bare`: the whole string is a local part (no `@domain`).
pub(crate) fn quote_local(mbox: &str, bare: bool) -> String {
    let start = match (mbox.starts_with('@'), mbox.find(':')) {
        (true, Some(c)) => c + 1,
        _ => 0,
    };
    let end = if bare {
        mbox.len()
    } else {
        mbox[start..].rfind('@').map_or(mbox.len(), |p| start + p)
    };
    let local = &mbox[start..end];
    if is_dot_string(local) {
        return mbox.to_owned();
    }
    let mut s = String::with_capacity(mbox.len() + 4);
    s.push_str(&mbox[..start]);
    s.push('"');
    copy_quoted(&mut s, local, "\"\\\r");
    s.push('"');
    s.push_str(&mbox[end..]);
    s
}

/// rewrite_tree with Postfix's default settings (trivial-rewrite's "local" rules): strip a
/// source route, `site!user` → `user@site` (swap_bangpath), `user%site` → `user@site`
/// (allow_percent_hack), append `@myorigin` (append_at_myorigin), strip one trailing dot.
/// append_dot_mydomain is off, its default since Postfix 3.0.
pub(crate) fn rewrite(toks: &mut Vec<Tok>, myorigin: &str) {
    if toks.is_empty() || (toks.len() == 1 && toks[0] == Tok::QString(String::new())) {
        return;
    }
    if toks.len() == 1 && toks[0] == Tok::Op('@') {
        toks[0] = Tok::QString(String::new());
        return;
    }
    if toks[0] == Tok::Op('@') {
        if let Some(colon) = toks.iter().position(|t| *t == Tok::Op(':')) {
            if colon + 1 != toks.len() {
                toks.drain(..=colon);
            }
        }
    }
    if !toks.contains(&Tok::Op('@')) {
        if let Some(bang) = toks.iter().position(|t| *t == Tok::Op('!')) {
            let mut local: Vec<Tok> = toks.split_off(bang + 1);
            toks.pop();
            local.push(Tok::Op('@'));
            local.append(toks);
            *toks = local;
        } else if let Some(pct) = toks.iter().rposition(|t| *t == Tok::Op('%')) {
            toks[pct] = Tok::Op('@');
        } else if !myorigin.is_empty() {
            toks.push(Tok::Op('@'));
            toks.extend(scan(myorigin));
        }
    }
    let n = toks.len();
    if n >= 2
        && toks[n - 1] == Tok::Op('.')
        && toks[n - 2] != Tok::Op('.')
        && toks[n - 2] != Tok::Op('@')
    {
        toks.pop();
    }
}

/// cleanup's canonicalization of an internal-form address: quote, rewrite, back to internal.
pub(crate) fn canon_internal(addr: &str, myorigin: &str) -> String {
    if addr.is_empty() {
        return String::new();
    }
    let mut toks = scan(&quote_local(addr, false));
    rewrite(&mut toks, myorigin);
    internalize(&toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(s: &str) -> Vec<String> {
        parse_addresses(&scan(s))
            .iter()
            .map(|a| internalize(a))
            .collect()
    }

    #[test]
    fn missing_commas_and_quotes() {
        assert_eq!(addrs("a, b c"), ["a", "b", "c"]);
        assert_eq!(addrs("|cmd arg"), ["|cmd", "arg"]);
        assert_eq!(addrs("\"|cmd arg\", x@y"), ["|cmd arg", "x@y"]);
        assert_eq!(addrs("Joe Bloggs <joe@x.y> (c), z"), ["joe@x.y", "z"]);
        assert_eq!(addrs("list: a, b;"), ["a", "b"]);
        assert_eq!(addrs(":include:/etc/x.list"), [":include:/etc/x.list"]);
        assert_eq!(addrs("/var/mail/a.b"), ["/var/mail/a.b"]);
        assert_eq!(addrs("<>"), Vec::<String>::new());
        assert_eq!(addrs("\"\""), [""]);
        assert_eq!(addrs("a\\ b@x"), ["a b@x"]);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_local("a b@x", false), "\"a b\"@x");
        assert_eq!(quote_local("a.b@x", false), "a.b@x");
        assert_eq!(quote_local("a@b", true), "\"a@b\"");
        assert_eq!(externalize(&scan("\"a b\"")), "\"a b\"");
        assert_eq!(externalize(&scan("a b")), "a b");
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canon_internal("bob", "ex.org"), "bob@ex.org");
        assert_eq!(canon_internal("bob@ex.net.", "ex.org"), "bob@ex.net");
        assert_eq!(canon_internal("host!bob", "ex.org"), "bob@host");
        assert_eq!(canon_internal("bob%host", "ex.org"), "bob@host");
        assert_eq!(canon_internal("@r1,@r2:bob@x", "ex.org"), "bob@x");
        assert_eq!(canon_internal("a b", "ex.org"), "a b@ex.org");
    }
}
