//! Parser tests: every verb, the limits, and a proptest that no input panics.

use super::*;
use proptest::prelude::*;

fn p(s: &str) -> Command {
    parse_command(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn bad(s: &[u8]) -> ParseError {
    parse_command(s).expect_err("should fail")
}

#[test]
fn simple_verbs() {
    assert_eq!(p("a1 CAPABILITY\r\n").body, CommandBody::Capability);
    assert_eq!(p("a1 noop\r\n").body, CommandBody::Noop);
    assert_eq!(p("x LOGOUT\r\n").tag, "x");
    assert_eq!(p("x UID EXPUNGE 1:3\r\n").body.name(), "UID EXPUNGE");
}

#[test]
fn login_forms() {
    let c = p("a LOGIN alice \"p w\\\"d\"\r\n");
    let CommandBody::Login { user, password } = c.body else {
        panic!()
    };
    assert_eq!(user, "alice");
    assert_eq!(password.expose(), b"p w\"d");
    let c = p("a LOGIN {5}\r\nalice {3+}\r\npwd\r\n");
    assert!(matches!(c.body, CommandBody::Login { .. }));
}

#[test]
fn authenticate_ir() {
    let c = p("a AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n");
    let CommandBody::Authenticate { mechanism, initial } = c.body else {
        panic!()
    };
    assert_eq!(mechanism, "PLAIN");
    assert_eq!(initial.unwrap().expose(), b"AGFsaWNlAHB3");
    let c = p("a AUTHENTICATE login\r\n");
    assert!(matches!(
        c.body,
        CommandBody::Authenticate { initial: None, .. }
    ));
}

#[test]
fn list_extended() {
    let c =
        p("a LIST (SUBSCRIBED) \"\" (\"*\" INBOX.%) RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\n");
    let CommandBody::List {
        patterns,
        select,
        ret,
        extended,
        ..
    } = c.body
    else {
        panic!()
    };
    assert!(extended && select.subscribed && ret.children);
    assert_eq!(patterns, vec![b"*".to_vec(), b"INBOX.%".to_vec()]);
    assert_eq!(
        ret.status,
        Some(vec![StatusItem::Messages, StatusItem::Size])
    );
    let c = p("a LIST \"\" %\r\n");
    assert!(matches!(
        c.body,
        CommandBody::List {
            extended: false,
            ..
        }
    ));
}

#[test]
fn append_with_flags_and_date() {
    let c = p("a APPEND Sent (\\Seen $Junk) \"17-Jul-1996 02:44:25 -0700\" {5}\r\nhello\r\n");
    let CommandBody::Append {
        mailbox,
        flags,
        date,
        message,
        binary,
    } = c.body
    else {
        panic!()
    };
    assert_eq!(mailbox, b"Sent");
    assert_eq!(flags, vec![Flag::Seen, Flag::Keyword("$Junk".into())]);
    assert_eq!(date, Some((837596665, -25200)));
    assert_eq!(message, b"hello");
    assert!(!binary);
}

#[test]
fn fetch_items_and_sections() {
    let c =
        p("a UID FETCH 1:*,5 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From to)]<0.100> BINARY[1])\r\n");
    let CommandBody::Fetch { uid, set, items } = c.body else {
        panic!()
    };
    assert!(uid);
    assert_eq!(set.0.len(), 2);
    assert_eq!(items.len(), 3);
    let FetchItem::BodySection {
        section, partial, ..
    } = &items[1]
    else {
        panic!()
    };
    assert_eq!(section.spec(), "1.2.HEADER.FIELDS (FROM TO)");
    assert_eq!(*partial, Some((0, 100)));
    assert_eq!(p("a FETCH 1 ALL\r\n").body.name(), "FETCH");
    assert!(parse_command(b"a FETCH 1 BODY[MIME]\r\n").is_err());
    assert!(parse_command(b"a FETCH 0 FLAGS\r\n").is_err());
}

#[test]
fn store_forms() {
    let c = p("a STORE 1:2 +FLAGS.SILENT (\\Deleted)\r\n");
    assert!(matches!(
        c.body,
        CommandBody::Store {
            op: StoreOp::Add,
            silent: true,
            ..
        }
    ));
    let c = p("a UID STORE 3 -FLAGS \\Seen foo\r\n");
    let CommandBody::Store { flags, op, .. } = c.body else {
        panic!()
    };
    assert_eq!(op, StoreOp::Remove);
    assert_eq!(flags.len(), 2);
}

#[test]
fn search_keys() {
    let c = p("a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM bob (UNSEEN SINCE 1-Feb-2024) NOT 1:3\r\n");
    let CommandBody::Search { ret, key, .. } = c.body else {
        panic!()
    };
    assert!(ret.unwrap().count);
    let SearchKey::And(keys) = key else { panic!() };
    assert_eq!(keys.len(), 2);
    let e = bad(b"a SEARCH CHARSET KOI8-R ALL\r\n");
    assert!(e.bad_charset);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let mut s = b"a SEARCH ".to_vec();
    s.extend(std::iter::repeat_n(b'(', 10_000));
    s.extend_from_slice(b"ALL");
    s.extend(std::iter::repeat_n(b')', 10_000));
    s.extend_from_slice(b"\r\n");
    let e = bad(&s);
    assert_eq!(e.tag.as_deref(), Some("a"));
    let mut s = b"a SEARCH ".to_vec();
    for _ in 0..10_000 {
        s.extend_from_slice(b"NOT ");
    }
    s.extend_from_slice(b"ALL\r\n");
    assert!(parse_command(&s).is_err());
}

#[test]
fn bad_input() {
    assert!(bad(b"a FOO\r\n").unknown_command);
    assert!(bad(b"\r\n").tag.is_none());
    assert_eq!(bad(b"a LOGIN \xc3\xa4 x\r\n").tag.as_deref(), Some("a"));
    assert!(parse_command(b"a LOGIN a\r\n").is_err());
    assert!(parse_command(b"a NOOP extra\r\n").is_err());
    assert!(parse_command(b"a LOGIN {10}\r\nabc\r\n").is_err());
    assert!(parse_command(b"a SELECT \"unterminated\r\n").is_err());
}

#[test]
fn status_and_create_use() {
    let c = p("a STATUS \"Sent Items\" (UIDNEXT MESSAGES SIZE)\r\n");
    assert!(matches!(c.body, CommandBody::Status { .. }));
    let c = p("a CREATE Archive (USE (\\Archive))\r\n");
    let CommandBody::Create { special_use, .. } = c.body else {
        panic!()
    };
    assert_eq!(special_use, vec!["\\Archive".to_string()]);
}

#[test]
fn compress_sets() {
    assert_eq!(SequenceSet::compress(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
    assert_eq!(SequenceSet::compress(&[]), "");
}

#[test]
fn dates_roundtrip() {
    for d in [-1000i64, 0, 59, 60, 10_000, 20_000] {
        let (y, m, dd) = civil_from_days(d);
        assert_eq!(days_from_civil(y, m, dd), d);
    }
}

proptest! {
    #[test]
    fn parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_command(&input);
    }

    #[test]
    fn parser_never_panics_on_wordy_input(
        words in proptest::collection::vec(prop_oneof![
            Just("a "), Just("UID "), Just("FETCH "), Just("SEARCH "), Just("("), Just(")"),
            Just("1:*"), Just("{3}\r\n"), Just("{2+}\r\n"), Just("\""), Just("BODY["),
            Just("]"), Just("<0.5>"), Just("NOT "), Just("OR "), Just("HEADER.FIELDS "),
            Just("LIST "), Just("APPEND "), Just("\\Seen"), Just(" "), Just("STORE "),
        ], 0..30)
    ) {
        let s: String = words.concat();
        let _ = parse_command(s.as_bytes());
        let mut f = Framer::new(Limits::PRE_AUTH);
        let mut input = s.as_bytes();
        while !input.is_empty() {
            let (n, frame) = f.push(input);
            if let Some(Frame::Command(c)) = frame {
                let _ = parse_command(&c);
            }
            if n == 0 { break; }
            input = &input[n..];
        }
    }
}
