//! Table parsing: aliases(5), postmap text, regexp/pcre, load errors and warnings.

use crate::*;
use std::path::{Path, PathBuf};

pub(crate) struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Writes a file (owned by whoever runs the tests).
    pub(crate) fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Writes a file owned by a non-root user (uid 1 when the tests run as root).
    pub(crate) fn user_file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.file(name, text);
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&p, Some(1), Some(1)).expect("chown");
        }
        p
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub(crate) fn settings() -> Settings {
    Settings {
        myorigin: "example.org".into(),
        alias_domains: vec!["example.org".into(), "localhost".into()],
        recipient_delimiter: "+".into(),
        ..Settings::default()
    }
}

fn load_ok(s: Settings) -> Aliases {
    match Aliases::load(s) {
        Ok(a) => a,
        Err(e) => panic!("load failed: {e:?}"),
    }
}

fn load_err(s: Settings) -> Vec<TableError> {
    match Aliases::load(s) {
        Ok(_) => panic!("load should fail"),
        Err(e) => e,
    }
}

fn virt(f: &Fixture, spec_kind: &str, text: &str) -> Aliases {
    let p = f.file("virtual", text);
    let mut s = settings();
    s.virtual_alias_maps = vec![format!("{spec_kind}{}", p.display())];
    load_ok(s)
}

fn one(a: &Aliases, key: &str) -> Option<Vec<String>> {
    a.lookup_one(key)
}

#[test]
fn text_table_comments_continuations_and_case() {
    let f = Fixture::new();
    let a = virt(
        &f,
        "",
        "# comment\nAlice@Example.org  Bob@Elsewhere.NET,\n\n   # inside\n  carol\n\nx@y z\n",
    );
    assert_eq!(
        one(&a, "alice@example.ORG"),
        Some(vec!["Bob@Elsewhere.NET".to_owned(), "carol".to_owned()])
    );
    assert_eq!(one(&a, "x@y"), Some(vec!["z".to_owned()]));
    assert!(a.warnings().is_empty(), "{:?}", a.warnings());
}

#[test]
fn text_table_bad_lines_are_warnings_like_postmap() {
    let f = Fixture::new();
    let a = virt(
        &f,
        "texthash:",
        "novalue\n\"unbalanced x@y z\nfirst@x one\nfirst@x two\nname: value\n",
    );
    let w: Vec<String> = a.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(w[0].ends_with(":1: expected format: key whitespace value: ignoring this line"));
    assert!(w[1].contains(":2: unbalanced"));
    assert!(w[2].contains(":4: duplicate entry first@x"));
    assert!(w[3].contains(":5: record is in \"key: value\" format"));
    assert_eq!(one(&a, "first@x"), Some(vec!["one".to_owned()]));
}

#[test]
fn leading_whitespace_and_non_utf8_lines() {
    let f = Fixture::new();
    let p = f.path().join("virtual");
    std::fs::write(&p, b"  orphan@x y\nok@x y\nbad@x \xff\n").expect("write");
    let mut s = settings();
    s.virtual_alias_maps = vec![p.display().to_string()];
    let a = load_ok(s);
    assert_eq!(a.warnings().len(), 2);
    assert!(a.warnings()[0]
        .to_string()
        .contains(":1: logical line must not start"));
    assert!(a.warnings()[1].to_string().contains(":3: non-UTF-8"));
    assert!(one(&a, "ok@x").is_some());
    assert!(one(&a, "bad@x").is_none());
}

#[test]
fn aliases_file_syntax() {
    let f = Fixture::new();
    let p = f.file(
        "aliases",
        "# the list\nStaff: alice,\n  bob@remote.test\n\"odd name\": carol\nnocolon here\nx@y: z\n\
         list: a b \"c d\"@e (comment), Joe <joe@f>\n",
    );
    let mut s = settings();
    s.alias_maps = vec![p];
    let a = load_ok(s);
    assert_eq!(
        one(&a, "staff"),
        Some(vec!["alice".to_owned(), "bob@remote.test".to_owned()])
    );
    assert_eq!(one(&a, "odd name"), Some(vec!["carol".to_owned()]));
    assert_eq!(
        one(&a, "list"),
        Some(vec![
            "a".to_owned(),
            "b".to_owned(),
            "c d@e".to_owned(),
            "joe@f".to_owned()
        ])
    );
    let w: Vec<String> = a.warnings().iter().map(|w| w.to_string()).collect();
    assert!(w[0].contains(":5: need name:value pair"), "{w:?}");
    assert!(w[1].contains(":6: name must be local"), "{w:?}");
}

#[test]
fn aliases_duplicate_keeps_first() {
    let f = Fixture::new();
    let p = f.file("aliases", "a: one\nA: two\n");
    let mut s = settings();
    s.alias_maps = vec![p];
    let a = load_ok(s);
    assert_eq!(one(&a, "a"), Some(vec!["one".to_owned()]));
    assert!(a.warnings()[0]
        .to_string()
        .contains(":2: duplicate entry a"));
}

#[test]
fn commands_and_files_need_the_settings() {
    let f = Fixture::new();
    let p = f.user_file(
        "aliases",
        "a: \"|/usr/bin/prog arg\"\nb: /var/log/mail.b\nc: ~/inbox\n",
    );
    let mut s = settings();
    s.alias_maps = vec![p.clone()];
    let e: Vec<String> = load_err(s.clone()).iter().map(|e| e.to_string()).collect();
    assert_eq!(e.len(), 3, "{e:?}");
    assert_eq!(
        e[0],
        format!(
            "{}:1: mail to commands is not enabled: set allow_mail_to_commands",
            p.display()
        )
    );
    assert!(e[1].ends_with(":2: mail to files is not enabled: set allow_mail_to_files"));
    assert!(e[2].ends_with(":3: mail to files is not enabled: set allow_mail_to_files"));
    s.allow_mail_to_commands = true;
    s.allow_mail_to_files = true;
    load_ok(s);
}

#[test]
fn root_owned_pipes_are_refused() {
    if !nix::unistd::geteuid().is_root() {
        return; // cannot make a root-owned file
    }
    let f = Fixture::new();
    let p = f.file("aliases", "a: \"|prog\"\nb: plain\n");
    let mut s = settings();
    s.alias_maps = vec![p];
    s.allow_mail_to_commands = true;
    let e = load_err(s);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, 1);
    assert_eq!(
        e[0].message,
        "pipe/file targets in a root-owned file would run as root: refused"
    );
}

#[test]
fn include_paths_and_restrictions() {
    let f = Fixture::new();
    let inc = f.file("list.inc", "x@remote.test\n\"|prog\"\n");
    let p = f.file(
        "aliases",
        &format!("l: :include:{}\nr: :include:relative.inc\n", inc.display()),
    );
    let mut s = settings();
    s.alias_maps = vec![p];
    s.allow_mail_to_commands = true;
    let e: Vec<String> = load_err(s).iter().map(|e| e.to_string()).collect();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e
        .iter()
        .any(|e| e.ends_with(":2: :include:relative.inc uses a relative path")));
    assert!(e
        .iter()
        .any(|e| e.ends_with("list.inc:2: mail to commands is restricted in :include: files")));
}

#[test]
fn every_error_of_every_file_is_reported() {
    let f = Fixture::new();
    let re = f.file("re", "/ok/ fine\n/(unclosed/ x\n/[z-a]/ y\n");
    let mut s = settings();
    s.alias_maps = vec![f.path().join("missing-aliases")];
    s.virtual_alias_maps = vec![
        format!("regexp:{}", re.display()),
        "ldap:/etc/x.cf".into(),
        f.path().join("missing-virtual").display().to_string(),
    ];
    let e = load_err(s);
    assert_eq!(e.len(), 5, "{e:?}");
    assert!(e[0].to_string().contains("missing-aliases: cannot open"));
    assert_eq!((e[1].line, e[2].line), (2, 3));
    assert!(e[1]
        .message
        .starts_with("regular expression does not compile"));
    assert!(e[3].message.contains("unsupported table type ldap"));
    assert!(e[4].to_string().contains("missing-virtual: cannot open"));
}

#[test]
fn oversized_table_is_an_error() {
    let f = Fixture::new();
    let p = f.file("big", "");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .expect("open");
    file.set_len(table_file::MAX_FILE_BYTES + 1)
        .expect("set_len");
    let mut s = settings();
    s.virtual_alias_maps = vec![p.display().to_string()];
    let e = load_err(s);
    assert!(e[0].message.contains("larger than"));
}

#[test]
fn regexp_substitution_and_flags() {
    let f = Fixture::new();
    let a = virt(
        &f,
        "regexp:",
        "/^(.*)@(ex)\\.com$/ $1@$2.net\n/^dollar/ $$x\n/^([a-z]+)\\+(.*)@x$/ ${2}${1}@y\n\
         /^Case@/i exact\n/^case@/ folded\n",
    );
    assert_eq!(one(&a, "Bob@EX.com"), Some(vec!["Bob@EX.net".to_owned()]));
    assert_eq!(one(&a, "dollar"), Some(vec!["$x".to_owned()]));
    assert_eq!(one(&a, "foo+bar@x"), Some(vec!["barfoo@y".to_owned()]));
    // `i` toggles the default case-insensitivity off.
    assert_eq!(one(&a, "Case@z"), Some(vec!["exact".to_owned()]));
    assert_eq!(one(&a, "CASE@z"), Some(vec!["folded".to_owned()]));
}

#[test]
fn regexp_negation_second_pattern_and_if_endif() {
    let f = Fixture::new();
    let a = virt(
        &f,
        "regexp:",
        "if /@example\\.org$/\n!/^admin@/ not-admin\nendif\n/^a/!/b/ a-without-b\n\
         IF !/^z/\n/./ not-z\nENDIF\n/^zz/ zz\n",
    );
    assert_eq!(
        one(&a, "joe@example.org"),
        Some(vec!["not-admin".to_owned()])
    );
    assert_eq!(
        one(&a, "admin@example.org"),
        Some(vec!["a-without-b".to_owned()])
    );
    assert_eq!(one(&a, "ab@x"), Some(vec!["not-z".to_owned()]));
    assert_eq!(one(&a, "zz"), Some(vec!["zz".to_owned()]));
    assert_eq!(one(&a, "zq"), None);
}

#[test]
fn regexp_rules_postfix_skips_are_warnings() {
    let f = Fixture::new();
    let a = virt(
        &f,
        "regexp:",
        "/a/q x\n/b/ $2\n/(c)/ $1x\n/d x\n!/(e)/ $1\nendif\nword here\nif /f/\n/f/ ok\n",
    );
    let w: Vec<(usize, String)> = a
        .warnings()
        .iter()
        .map(|w| (w.line, w.message.clone()))
        .collect();
    assert_eq!(w.len(), 8, "{w:?}");
    assert!(w[0].1.contains("unknown regexp option \"q\""));
    assert!(w[1].1.contains("out of range replacement index \"2\""));
    assert!(w[2].1.contains("non-numeric replacement index \"1x\""));
    assert!(w[3].1.contains("no closing regexp delimiter"));
    assert!(w[4].1.contains("$number found in negative match"));
    assert!(w[5].1.contains("ENDIF without matching IF"));
    assert!(w[6].1.contains("unrecognized request"));
    assert_eq!(w[7], (8, "IF has no matching ENDIF".to_owned()));
    assert_eq!(one(&a, "f"), Some(vec!["ok".to_owned()]));
}

#[test]
fn regexp_basic_syntax_with_x_flag() {
    let f = Fixture::new();
    let a = virt(
        &f,
        "regexp:",
        "/^\\(a*\\)+$/x plus:$1\n/^\\(b\\)\\{2\\}$/x two-b\n",
    );
    assert_eq!(one(&a, "aa+"), Some(vec!["plus:aa".to_owned()]));
    assert_eq!(one(&a, "aa"), None);
    assert_eq!(one(&a, "bb"), Some(vec!["two-b".to_owned()]));
}

#[test]
fn pcre_table() {
    let f = Fixture::new();
    let a = virt(
        &f,
        "pcre:",
        "/^(\\w+)\\.(\\w+)@old\\.test$/ $2.$1@new.test\n/^x/A anchored\n",
    );
    assert_eq!(
        one(&a, "Jane.Doe@OLD.test"),
        Some(vec!["Doe.Jane@new.test".to_owned()])
    );
    assert_eq!(one(&a, "xy"), Some(vec!["anchored".to_owned()]));
    let p = f.file("bad", "/(?<=a)b/ x\n");
    let mut s = settings();
    s.virtual_alias_maps = vec![format!("pcre:{}", p.display())];
    assert_eq!(load_err(s)[0].line, 1);
}

#[test]
fn virtual_domains() {
    let f = Fixture::new();
    let t = f.file("v", "virt.test anything\n.sub.test x\nu@other.test y\n");
    let r = f.file("r", "/^re\\.test$/ z\n");
    let mut s = settings();
    s.virtual_alias_maps = vec![t.display().to_string(), format!("regexp:{}", r.display())];
    let a = load_ok(s);
    assert!(a.is_virtual_domain("VIRT.test"));
    assert!(a.is_virtual_domain("a.b.sub.test"));
    assert!(!a.is_virtual_domain("sub.test"));
    assert!(!a.is_virtual_domain("other.test"));
    assert!(a.is_virtual_domain("re.test"));
    assert!(!a.is_virtual_domain("é"));
}

#[test]
fn table_error_display() {
    let e = TableError {
        file: PathBuf::from("/etc/aliases"),
        line: 7,
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "/etc/aliases:7: bad");
}

#[test]
fn loaded_tables_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Aliases>();
}

#[test]
fn check_reports_loops_at_the_key() {
    let f = Fixture::new();
    let p = f.file("aliases", "ok: bob\n\nloop1: loop2\nloop2: loop1\n");
    let v = f.file(
        "virtual",
        "a@virt.test b@virt.test\nb@virt.test a@virt.test\n",
    );
    let mut s = settings();
    s.alias_maps = vec![p];
    s.virtual_alias_maps = vec![v.display().to_string()];
    s.recursion_limit = 20;
    let a = load_ok(s);
    let problems: Vec<String> = a.check().iter().map(|e| e.to_string()).collect();
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems[0].contains("aliases:3: loop1: recipient nesting limit exceeded"));
    assert!(problems[1].contains("aliases:4: loop2: recipient nesting limit exceeded"));
    assert!(problems[2].contains("virtual:1: a@virt.test: alias expansion error"));
    assert!(problems[3].contains("virtual:2: b@virt.test:"));
}
