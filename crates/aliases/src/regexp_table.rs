//! regexp_table(5) and pcre_table(5) tables (util/dict_regexp.c, dict_pcre.c), matched with
//! the `regex` crate.
//!
//! regexp: patterns are POSIX regular expressions (extended by default, basic with the `x`
//! flag); they are translated to `regex` syntax. Two differences remain: POSIX picks the
//! leftmost-longest match where `regex` picks the leftmost-first one (this only changes what
//! `$n` captures with ambiguous alternations), and back-references (`\1`) are not supported —
//! a pattern using them is a load error, like any pattern that does not compile.
//! pcre: patterns go to `regex` as written; PCRE-only syntax (look-around, back-references,
//! possessive quantifiers) is a load error.

use crate::table_file::{self, error};
use crate::TableError;
use regex::{Regex, RegexBuilder};
use std::path::{Path, PathBuf};

struct Pattern {
    re: Regex,
    /// `false` for `!/pattern/`: the rule applies when the pattern does not match.
    positive: bool,
}

impl Pattern {
    fn matches(&self, key: &str) -> bool {
        self.re.is_match(key) == self.positive
    }
}

enum Piece {
    Text(String),
    Group(usize),
}

enum Rule {
    Match {
        first: Pattern,
        second: Option<Pattern>,
        replacement: Vec<Piece>,
        uses_groups: bool,
    },
    If {
        cond: Pattern,
        /// Index of the matching ENDIF; `None`: a false IF ends the lookup.
        endif: Option<usize>,
    },
    Endif,
}

pub(crate) struct RegexpTable {
    pub(crate) path: PathBuf,
    rules: Vec<Rule>,
}

/// One `/pattern/flags` as written: its text and options.
struct RawPattern {
    text: String,
    positive: bool,
    icase: bool,
    newline: bool,
    extended: bool,
    dotall: bool,
    ignore_ws: bool,
    anchored: bool,
    ungreedy: bool,
}

/// Why a rule is skipped (Postfix warns and goes on).
type Skip = String;

/// dict_regexp_get_pat / dict_pcre_get_pattern. Returns the pattern and the rest of the line.
fn get_pattern(p: &str, pcre: bool) -> Result<(RawPattern, &str), Skip> {
    let mut positive = true;
    let mut rest = p;
    loop {
        match rest.chars().next() {
            Some('!') => positive = !positive,
            Some(c) if c.is_ascii_whitespace() => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    let mut chars = rest.char_indices();
    let Some((_, delim)) = chars.next() else {
        return Err("no regexp: skipping this rule".into());
    };
    let start = delim.len_utf8();
    let mut end = None;
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            end = Some(i);
            break;
        }
    }
    let Some(end) = end else {
        return Err(format!(
            "no closing regexp delimiter \"{delim}\": skipping this rule"
        ));
    };
    let mut raw = RawPattern {
        text: rest[start..end].to_owned(),
        positive,
        icase: true,
        newline: false,
        extended: true,
        dotall: pcre,
        ignore_ws: false,
        anchored: false,
        ungreedy: false,
    };
    let mut opts = &rest[end + delim.len_utf8()..];
    while let Some(c) = opts.chars().next() {
        if c.is_ascii_whitespace() || (!pcre && c == '!') {
            break;
        }
        match (c, pcre) {
            ('i', _) => raw.icase = !raw.icase,
            ('m', _) => raw.newline = !raw.newline,
            ('x', false) => raw.extended = !raw.extended,
            ('x', true) => raw.ignore_ws = !raw.ignore_ws,
            ('s', true) => raw.dotall = !raw.dotall,
            ('A', true) => raw.anchored = !raw.anchored,
            ('U', true) => raw.ungreedy = !raw.ungreedy,
            // DOLLAR_ENDONLY changes nothing for keys without newlines; X is obsolete.
            ('E' | 'X', true) => {}
            _ => return Err(format!("unknown regexp option \"{c}\": skipping this rule")),
        }
        opts = &opts[c.len_utf8()..];
    }
    Ok((raw, opts))
}

/// A literal character in `regex` syntax.
fn lit(out: &mut String, c: char) {
    out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
}

/// Copies a POSIX bracket expression starting after its `[`; returns the index after `]`.
fn bracket(p: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    out.push('[');
    if p.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = p.get(i) else {
            return Err("unmatched [".into());
        };
        if c == ']' && !first {
            out.push(']');
            return Ok(i + 1);
        }
        first = false;
        if c == '[' && matches!(p.get(i + 1), Some(':' | '=' | '.')) {
            let kind = p[i + 1];
            let close = (i + 2..p.len().saturating_sub(1))
                .find(|&j| p[j] == kind && p[j + 1] == ']')
                .ok_or("unterminated character class")?;
            if kind != ':' {
                return Err("collating elements and equivalence classes are not supported".into());
            }
            out.extend(&p[i..close + 2]);
            i = close + 2;
            continue;
        }
        // In POSIX a backslash inside brackets is an ordinary character.
        lit(out, c);
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            out.push('-');
            lit(out, p[i + 2]);
            i += 3;
        } else {
            i += 1;
        }
    }
}

/// A POSIX regular expression (extended, or basic when `extended` is false) in `regex`
/// syntax, with glibc's extensions (`\w`, `\s`, `\b`, `\<`, `\>`; `\+ \? \|` in basic).
fn translate_posix(pattern: &str, extended: bool) -> Result<String, String> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    // Basic syntax: `*` and `^` are special only at the start of an expression.
    let mut at_start = true;
    while let Some(&c) = p.get(i) {
        i += 1;
        let was_start = at_start;
        at_start = false;
        match c {
            '\\' => {
                let Some(&e) = p.get(i) else {
                    return Err("trailing backslash".into());
                };
                i += 1;
                match e {
                    'w' | 'W' | 's' | 'S' | 'b' | 'B' => {
                        out.push('\\');
                        out.push(e);
                    }
                    '<' => out.push_str(r"\b{start}"),
                    '>' => out.push_str(r"\b{end}"),
                    '`' => out.push_str(r"\A"),
                    '\'' => out.push_str(r"\z"),
                    '1'..='9' => return Err("back-references are not supported".into()),
                    '(' if !extended => {
                        out.push('(');
                        at_start = true;
                    }
                    '|' if !extended => {
                        out.push('|');
                        at_start = true;
                    }
                    ')' | '{' | '}' | '+' | '?' if !extended => out.push(e),
                    _ => lit(&mut out, e),
                }
            }
            '[' => i = bracket(&p, i, &mut out)?,
            '.' => out.push('.'),
            '*' if !extended && was_start => lit(&mut out, '*'),
            '^' if !extended && !was_start => lit(&mut out, '^'),
            '^' if !extended => {
                out.push('^');
                at_start = true;
            }
            '$' if !extended => {
                let at_end =
                    i == p.len() || (p.get(i) == Some(&'\\') && p.get(i + 1) == Some(&')'));
                if at_end {
                    out.push('$');
                } else {
                    lit(&mut out, '$');
                }
            }
            '*' => out.push('*'),
            '(' | '|' if extended => {
                out.push(c);
                at_start = true;
            }
            '^' | '$' | ')' | '+' | '?' | '{' | '}' if extended => out.push(c),
            _ => lit(&mut out, c),
        }
    }
    Ok(out)
}

fn compile(raw: &RawPattern, pcre: bool) -> Result<Regex, String> {
    let text = if pcre {
        if raw.anchored {
            format!(r"\A(?:{})", raw.text)
        } else {
            raw.text.clone()
        }
    } else {
        translate_posix(&raw.text, raw.extended)?
    };
    RegexBuilder::new(&text)
        .case_insensitive(raw.icase)
        .multi_line(raw.newline)
        .dot_matches_new_line(if pcre { raw.dotall } else { !raw.newline })
        .ignore_whitespace(raw.ignore_ws)
        .swap_greed(raw.ungreedy)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// mac_parse() plus the $number pre-scan: `$n`, `${n}`, `$(n)`, `$$`.
fn parse_replacement(s: &str) -> Result<Vec<Piece>, Skip> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c != '$' {
            text.push(c);
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&'$') {
            text.push('$');
            i += 2;
            continue;
        }
        i += 1;
        let name: String = match b.get(i) {
            Some(&open @ ('{' | '(')) => {
                let close = if open == '{' { '}' } else { ')' };
                let mut level = 1;
                let start = i + 1;
                let mut j = start;
                loop {
                    let Some(&ch) = b.get(j) else {
                        return Err("bad replacement syntax: skipping this rule".into());
                    };
                    if ch == open {
                        level += 1;
                    }
                    if ch == close {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    j += 1;
                }
                i = j + 1;
                b[start..j].iter().collect()
            }
            _ => {
                let start = i;
                while b
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                b[start..i].iter().collect()
            }
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "non-numeric replacement index \"{name}\": skipping this rule"
            ));
        }
        let n: usize = name.parse().unwrap_or(usize::MAX);
        if !(1..=99).contains(&n) {
            return Err(format!(
                "out of range replacement index \"{name}\": skipping this rule"
            ));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Group(n));
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// What one line of the table is.
enum Parsed {
    Rule(Rule),
    Skip(Skip),
    Broken(String),
}

fn parse_rule(line: &str, pcre: bool, nesting: usize, warn: &mut Vec<String>) -> Parsed {
    let first = line.chars().next().unwrap_or(' ');
    let kw = |w: &str| {
        line.len() >= w.len()
            && line.is_char_boundary(w.len())
            && line[..w.len()].eq_ignore_ascii_case(w)
            && !line[w.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
    };
    if !first.is_ascii_alphanumeric() {
        let (raw, mut rest) = match get_pattern(line, pcre) {
            Ok(x) => x,
            Err(s) => return Parsed::Skip(s),
        };
        let mut second = None;
        if !pcre && rest.starts_with('!') {
            match get_pattern(rest, pcre) {
                Ok((r, after)) => {
                    second = Some(r);
                    rest = after;
                }
                Err(s) => return Parsed::Skip(s),
            }
        }
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if rest.is_empty() {
            warn.push("no replacement text: using empty string".into());
        }
        let replacement = match parse_replacement(rest) {
            Ok(r) => r,
            Err(s) => return Parsed::Skip(s),
        };
        let max_sub = replacement
            .iter()
            .filter_map(|p| match p {
                Piece::Group(n) => Some(*n),
                Piece::Text(_) => None,
            })
            .max()
            .unwrap_or(0);
        if max_sub > 0 && !raw.positive {
            return Parsed::Skip(
                "$number found in negative match replacement text: skipping this rule".into(),
            );
        }
        let re = match compile(&raw, pcre) {
            Ok(re) => re,
            Err(e) => return Parsed::Broken(e),
        };
        if max_sub > re.captures_len().saturating_sub(1) {
            return Parsed::Skip(format!(
                "out of range replacement index \"{max_sub}\": skipping this rule"
            ));
        }
        let second = match second {
            Some(r) => match compile(&r, pcre) {
                Ok(re) => Some(Pattern {
                    re,
                    positive: r.positive,
                }),
                Err(e) => return Parsed::Broken(e),
            },
            None => None,
        };
        Parsed::Rule(Rule::Match {
            first: Pattern {
                re,
                positive: raw.positive,
            },
            second,
            replacement,
            uses_groups: max_sub > 0,
        })
    } else if kw("if") {
        let (raw, rest) = match get_pattern(line[2..].trim_start(), pcre) {
            Ok(x) => x,
            Err(s) => return Parsed::Skip(s),
        };
        if !rest.trim().is_empty() {
            warn.push(format!(
                "ignoring extra text after IF statement: \"{}\"",
                rest.trim()
            ));
        }
        match compile(&raw, pcre) {
            Ok(re) => Parsed::Rule(Rule::If {
                cond: Pattern {
                    re,
                    positive: raw.positive,
                },
                endif: None,
            }),
            Err(e) => Parsed::Broken(e),
        }
    } else if kw("endif") {
        if nesting == 0 {
            return Parsed::Skip("ignoring ENDIF without matching IF".into());
        }
        if !line[5..].trim().is_empty() {
            warn.push("ignoring extra text after ENDIF".into());
        }
        Parsed::Rule(Rule::Endif)
    } else {
        Parsed::Skip("ignoring unrecognized request".into())
    }
}

impl RegexpTable {
    pub(crate) fn load(
        path: &Path,
        pcre: bool,
        warnings: &mut Vec<TableError>,
        errors: &mut Vec<TableError>,
    ) -> Option<RegexpTable> {
        let text = match table_file::read(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                return None;
            }
        };
        let mut rules = Vec::new();
        let mut open_ifs: Vec<(usize, usize)> = Vec::new();
        for l in table_file::logical_lines(path, &text.bytes, warnings, errors) {
            let line = l.text.trim_end_matches(|c: char| c.is_ascii_whitespace());
            if line.is_empty() {
                continue;
            }
            let mut warn = Vec::new();
            let parsed = parse_rule(line, pcre, open_ifs.len(), &mut warn);
            warnings.extend(warn.into_iter().map(|w| error(path, l.line, w)));
            match parsed {
                Parsed::Rule(rule) => {
                    match rule {
                        Rule::If { .. } => open_ifs.push((rules.len(), l.line)),
                        Rule::Endif => {
                            if let Some((at, _)) = open_ifs.pop() {
                                let here = rules.len();
                                if let Some(Rule::If { endif, .. }) = rules.get_mut(at) {
                                    *endif = Some(here);
                                }
                            }
                        }
                        Rule::Match { .. } => {}
                    }
                    rules.push(rule);
                }
                Parsed::Skip(why) => warnings.push(error(path, l.line, why)),
                Parsed::Broken(why) => errors.push(error(
                    path,
                    l.line,
                    format!("regular expression does not compile: {why}"),
                )),
            }
        }
        for (_, line) in open_ifs {
            warnings.push(error(path, line, "IF has no matching ENDIF"));
        }
        Some(RegexpTable {
            path: path.to_owned(),
            rules,
        })
    }

    /// dict_regexp_lookup: the first rule that matches, `$n` substituted (an unmatched or
    /// empty group gives nothing).
    pub(crate) fn lookup(&self, key: &str) -> Option<String> {
        let mut i = 0;
        while let Some(rule) = self.rules.get(i) {
            i += 1;
            match rule {
                Rule::Match {
                    first,
                    second,
                    replacement,
                    uses_groups,
                } => {
                    if !first.matches(key) || second.as_ref().is_some_and(|s| !s.matches(key)) {
                        continue;
                    }
                    let caps = if *uses_groups {
                        first.re.captures(key)
                    } else {
                        None
                    };
                    let mut out = String::new();
                    for p in replacement {
                        match p {
                            Piece::Text(t) => out.push_str(t),
                            Piece::Group(n) => {
                                if let Some(m) = caps.as_ref().and_then(|c| c.get(*n)) {
                                    out.push_str(m.as_str());
                                }
                            }
                        }
                    }
                    return Some(out);
                }
                Rule::If { cond, endif } => {
                    if cond.matches(key) {
                        continue;
                    }
                    i = (*endif)? + 1;
                }
                Rule::Endif => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::translate_posix;

    #[test]
    fn posix_translation() {
        assert_eq!(translate_posix(r"^a\.b$", true).as_deref(), Ok(r"^a\.b$"));
        assert_eq!(translate_posix(r"[\.]", true).as_deref(), Ok(r"[\\\.]"));
        assert_eq!(translate_posix(r"[]a-z]", true).as_deref(), Ok(r"[\]a-z]"));
        assert_eq!(translate_posix(r"\(a\)+", false).as_deref(), Ok(r"(a)\+"));
        assert_eq!(translate_posix(r"*a^$", false).as_deref(), Ok(r"\*a\^$"));
        assert!(translate_posix(r"(a)\1", true).is_err());
        assert_eq!(translate_posix(r"\d", true).as_deref(), Ok("d"));
    }
}
