//! Commands as types (RFC 3501, RFC 9051 and the extensions the server offers) and their
//! parser. Per-verb properties (which states allow it, whether it may run while responses for
//! sequence numbers would be ambiguous) live on [`CommandBody`].

use crate::cursor::{err, Cursor, PResult};
use crate::fetch::{fetch_items, FetchItem};
use crate::search::{search_key, search_return, SearchKey, SearchReturn};
use crate::sequence::{sequence_set, SequenceSet};
use crate::{Flag, ParseError, Secret};

/// A parsed command.
#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub body: CommandBody,
}

/// LIST-EXTENDED selection options (RFC 5258) and SPECIAL-USE (RFC 6154).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListSelect {
    pub subscribed: bool,
    pub recursive_match: bool,
    pub special_use: bool,
}

/// LIST return options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListReturn {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    /// LIST-STATUS (RFC 5819).
    pub status: Option<Vec<StatusItem>>,
}

/// STATUS data items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
}

/// STORE's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    Replace,
    Add,
    Remove,
}

/// The command verb and arguments. Mailbox names are as sent (modified UTF-7 or UTF-8); the
/// session decodes them.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandBody {
    Capability,
    Noop,
    Logout,
    StartTls,
    Authenticate {
        mechanism: String,
        /// SASL-IR (RFC 4959), still base64; `=` is an empty response.
        initial: Option<Secret<Vec<u8>>>,
    },
    Login {
        user: String,
        password: Secret<Vec<u8>>,
    },
    Enable(Vec<String>),
    Id(Option<Vec<(String, Option<String>)>>),
    Namespace,
    Select {
        mailbox: Vec<u8>,
        read_only: bool,
    },
    Create {
        mailbox: Vec<u8>,
        special_use: Vec<String>,
    },
    Delete(Vec<u8>),
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
    List {
        reference: Vec<u8>,
        patterns: Vec<Vec<u8>>,
        select: ListSelect,
        ret: ListReturn,
        /// LIST-EXTENDED syntax was used (then replies carry extended data).
        extended: bool,
    },
    Lsub {
        reference: Vec<u8>,
        pattern: Vec<u8>,
    },
    Status {
        mailbox: Vec<u8>,
        items: Vec<StatusItem>,
    },
    Append {
        mailbox: Vec<u8>,
        flags: Vec<Flag>,
        /// (unix seconds, zone offset seconds)
        date: Option<(i64, i32)>,
        message: Vec<u8>,
        /// Sent as literal8 (RFC 3516 `~{n}`).
        binary: bool,
    },
    Idle,
    Check,
    Close,
    Unselect,
    Expunge {
        uids: Option<SequenceSet>,
    },
    Search {
        uid: bool,
        ret: Option<SearchReturn>,
        key: SearchKey,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        items: Vec<FetchItem>,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        op: StoreOp,
        silent: bool,
        flags: Vec<Flag>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
}

impl CommandBody {
    /// Name for logs and replies.
    pub fn name(&self) -> &'static str {
        use CommandBody as C;
        match self {
            C::Capability => "CAPABILITY",
            C::Noop => "NOOP",
            C::Logout => "LOGOUT",
            C::StartTls => "STARTTLS",
            C::Authenticate { .. } => "AUTHENTICATE",
            C::Login { .. } => "LOGIN",
            C::Enable(_) => "ENABLE",
            C::Id(_) => "ID",
            C::Namespace => "NAMESPACE",
            C::Select {
                read_only: false, ..
            } => "SELECT",
            C::Select { .. } => "EXAMINE",
            C::Create { .. } => "CREATE",
            C::Delete(_) => "DELETE",
            C::Rename { .. } => "RENAME",
            C::Subscribe(_) => "SUBSCRIBE",
            C::Unsubscribe(_) => "UNSUBSCRIBE",
            C::List { .. } => "LIST",
            C::Lsub { .. } => "LSUB",
            C::Status { .. } => "STATUS",
            C::Append { .. } => "APPEND",
            C::Idle => "IDLE",
            C::Check => "CHECK",
            C::Close => "CLOSE",
            C::Unselect => "UNSELECT",
            C::Expunge { uids: None } => "EXPUNGE",
            C::Expunge { .. } => "UID EXPUNGE",
            C::Search { .. } => "SEARCH",
            C::Fetch { .. } => "FETCH",
            C::Store { .. } => "STORE",
            C::Copy { .. } => "COPY",
            C::Move { .. } => "MOVE",
        }
    }

    /// Allowed in the not-authenticated state.
    pub fn allowed_unauthenticated(&self) -> bool {
        use CommandBody as C;
        matches!(
            self,
            C::Capability
                | C::Noop
                | C::Logout
                | C::StartTls
                | C::Authenticate { .. }
                | C::Login { .. }
                | C::Id(_)
        )
    }

    /// Allowed only in the selected state.
    pub fn needs_selected(&self) -> bool {
        use CommandBody as C;
        matches!(
            self,
            C::Check
                | C::Close
                | C::Unselect
                | C::Expunge { .. }
                | C::Search { .. }
                | C::Fetch { .. }
                | C::Store { .. }
                | C::Copy { .. }
                | C::Move { .. }
        )
    }

    /// RFC 9051 §7.5.1: while a command that uses message sequence numbers runs (FETCH, STORE,
    /// SEARCH, COPY/MOVE without UID), no EXPUNGE may be sent, so the numbers stay unambiguous.
    pub fn forbids_expunge_responses(&self) -> bool {
        use CommandBody as C;
        matches!(
            self,
            C::Fetch { uid: false, .. }
                | C::Store { uid: false, .. }
                | C::Search { uid: false, .. }
                | C::Copy { uid: false, .. }
                | C::Move { uid: false, .. }
        )
    }
}

/// Parses one framed command.
pub fn parse_command(input: &[u8]) -> Result<Command, ParseError> {
    let mut c = Cursor::new(input);
    let tag = tag(&mut c)?;
    let with_tag = |e: ParseError| e.with_tag(&tag);
    c.sp().map_err(with_tag)?;
    let body = command_body(&mut c).map_err(with_tag)?;
    c.end().map_err(with_tag)?;
    Ok(Command { tag, body })
}

fn tag(c: &mut Cursor<'_>) -> PResult<String> {
    let start = c.pos;
    while c
        .peek()
        .is_some_and(|b| crate::cursor::is_astring_char(b) && b != b'+')
    {
        c.pos += 1;
    }
    if c.pos == start || c.pos - start > 64 {
        return err("Invalid tag");
    }
    Ok(String::from_utf8_lossy(&c.buf[start..c.pos]).into_owned())
}

fn mailbox(c: &mut Cursor<'_>) -> PResult<Vec<u8>> {
    c.sp()?;
    c.astring()
}

fn flag(c: &mut Cursor<'_>) -> PResult<Flag> {
    if c.eat(b'\\') {
        let a = c.atom()?;
        Ok(Flag::system(a))
    } else {
        Ok(Flag::Keyword(c.atom()?.to_string()))
    }
}

/// flag-list = "(" [flag *(SP flag)] ")"
fn flag_list(c: &mut Cursor<'_>) -> PResult<Vec<Flag>> {
    c.expect(b'(', "Expected a flag list")?;
    let mut out = Vec::new();
    if c.eat(b')') {
        return Ok(out);
    }
    loop {
        out.push(flag(c)?);
        if out.len() > 1000 {
            return err("Too many flags");
        }
        if c.eat(b')') {
            return Ok(out);
        }
        c.sp()?;
    }
}

fn status_items(c: &mut Cursor<'_>) -> PResult<Vec<StatusItem>> {
    c.expect(b'(', "Expected ( before status items")?;
    let mut out = Vec::new();
    loop {
        let item = match c.atom()?.to_ascii_uppercase().as_str() {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "SIZE" => StatusItem::Size,
            _ => return err("Unknown status item"),
        };
        if !out.contains(&item) {
            out.push(item);
        }
        if c.eat(b')') {
            return Ok(out);
        }
        c.sp()?;
    }
}

fn command_body(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    use CommandBody as C;
    let verb = c.atom()?.to_ascii_uppercase();
    let body = match verb.as_str() {
        "CAPABILITY" => C::Capability,
        "NOOP" => C::Noop,
        "LOGOUT" => C::Logout,
        "STARTTLS" => C::StartTls,
        "NAMESPACE" => C::Namespace,
        "IDLE" => C::Idle,
        "CHECK" => C::Check,
        "CLOSE" => C::Close,
        "UNSELECT" => C::Unselect,
        "EXPUNGE" => C::Expunge { uids: None },
        "AUTHENTICATE" => {
            c.sp()?;
            let mechanism = c.atom()?.to_ascii_uppercase();
            let initial = if c.eat(b' ') {
                let start = c.pos;
                while c
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
                {
                    c.pos += 1;
                }
                while c.peek() == Some(b'=') {
                    c.pos += 1;
                }
                if c.pos == start {
                    return err("Invalid initial response");
                }
                Some(Secret::new(c.buf[start..c.pos].to_vec()))
            } else {
                None
            };
            C::Authenticate { mechanism, initial }
        }
        "LOGIN" => {
            c.sp()?;
            let user = c.astring_utf8()?;
            c.sp()?;
            let password = Secret::new(c.astring()?);
            C::Login { user, password }
        }
        "ENABLE" => {
            let mut caps = Vec::new();
            while c.eat(b' ') {
                caps.push(c.atom()?.to_ascii_uppercase());
                if caps.len() > 100 {
                    return err("Too many capabilities");
                }
            }
            if caps.is_empty() {
                return err("ENABLE needs a capability");
            }
            C::Enable(caps)
        }
        "ID" => {
            c.sp()?;
            if c.eat_word("NIL") {
                C::Id(None)
            } else {
                c.expect(b'(', "Expected ( or NIL")?;
                let mut fields = Vec::new();
                if !c.eat(b')') {
                    loop {
                        let k = String::from_utf8_lossy(&c.string()?).into_owned();
                        c.sp()?;
                        let v = c
                            .nstring()?
                            .map(|v| String::from_utf8_lossy(&v).into_owned());
                        fields.push((k, v));
                        if fields.len() > 30 {
                            return err("Too many ID fields");
                        }
                        if c.eat(b')') {
                            break;
                        }
                        c.sp()?;
                    }
                }
                C::Id(Some(fields))
            }
        }
        "SELECT" | "EXAMINE" => {
            let mailbox = mailbox(c)?;
            if c.eat(b' ') {
                // select-params: we offer none (CONDSTORE/QRESYNC are a later issue)
                return err("Unsupported SELECT parameters");
            }
            C::Select {
                mailbox,
                read_only: verb == "EXAMINE",
            }
        }
        "CREATE" => {
            let mailbox = mailbox(c)?;
            let mut special_use = Vec::new();
            if c.eat(b' ') {
                c.expect(b'(', "Expected (")?;
                if !c.eat_word("USE") {
                    return err("Unknown CREATE parameter");
                }
                c.sp()?;
                for f in flag_list(c)? {
                    match f {
                        Flag::Extension(name) => special_use.push(name),
                        _ => return err("Invalid special-use attribute"),
                    }
                }
                c.expect(b')', "Expected )")?;
            }
            C::Create {
                mailbox,
                special_use,
            }
        }
        "DELETE" => C::Delete(mailbox(c)?),
        "SUBSCRIBE" => C::Subscribe(mailbox(c)?),
        "UNSUBSCRIBE" => C::Unsubscribe(mailbox(c)?),
        "RENAME" => {
            let from = mailbox(c)?;
            let to = mailbox(c)?;
            C::Rename { from, to }
        }
        "LIST" => list(c)?,
        "LSUB" => {
            let reference = mailbox(c)?;
            c.sp()?;
            let pattern = c.list_mailbox()?;
            C::Lsub { reference, pattern }
        }
        "STATUS" => {
            let mailbox = mailbox(c)?;
            c.sp()?;
            C::Status {
                mailbox,
                items: status_items(c)?,
            }
        }
        "APPEND" => {
            let mailbox = mailbox(c)?;
            c.sp()?;
            let mut flags = Vec::new();
            if c.peek() == Some(b'(') {
                flags = flag_list(c)?;
                c.sp()?;
            }
            let mut date = None;
            if c.peek() == Some(b'"') {
                date = Some(c.date_time()?);
                c.sp()?;
            }
            if c.peek() != Some(b'{') && c.peek() != Some(b'~') {
                return err("Expected the message as a literal");
            }
            let (message, binary) = c.literal()?;
            C::Append {
                mailbox,
                flags,
                date,
                message,
                binary,
            }
        }
        "SEARCH" => search(c, false)?,
        "FETCH" => fetch(c, false)?,
        "STORE" => store(c, false)?,
        "COPY" | "MOVE" => copy(c, false, verb == "MOVE")?,
        "UID" => {
            c.sp()?;
            let sub = c.atom()?.to_ascii_uppercase();
            match sub.as_str() {
                "SEARCH" => search(c, true)?,
                "FETCH" => fetch(c, true)?,
                "STORE" => store(c, true)?,
                "COPY" | "MOVE" => copy(c, true, sub == "MOVE")?,
                "EXPUNGE" => {
                    c.sp()?;
                    C::Expunge {
                        uids: Some(sequence_set(c)?),
                    }
                }
                _ => return err("Unknown UID command"),
            }
        }
        _ => return Err(ParseError::new("Unknown command").unknown()),
    };
    Ok(body)
}

fn list(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mut select = ListSelect::default();
    let mut extended = false;
    if c.eat(b'(') {
        extended = true;
        if !c.eat(b')') {
            loop {
                match c.atom()?.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => select.subscribed = true,
                    "RECURSIVEMATCH" => select.recursive_match = true,
                    "SPECIAL-USE" => select.special_use = true,
                    "REMOTE" => {}
                    _ => return err("Unknown LIST selection option"),
                }
                if c.eat(b')') {
                    break;
                }
                c.sp()?;
            }
        }
        c.sp()?;
        if select.recursive_match && !select.subscribed {
            return err("RECURSIVEMATCH needs another selection option");
        }
    }
    let reference = c.astring()?;
    c.sp()?;
    let mut patterns = Vec::new();
    if c.eat(b'(') {
        extended = true;
        loop {
            patterns.push(c.list_mailbox()?);
            if patterns.len() > 100 {
                return err("Too many patterns");
            }
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    } else {
        patterns.push(c.list_mailbox()?);
    }
    let mut ret = ListReturn::default();
    if c.eat(b' ') {
        if !c.eat_word("RETURN") {
            return err("Expected RETURN");
        }
        extended = true;
        c.sp()?;
        c.expect(b'(', "Expected (")?;
        if !c.eat(b')') {
            loop {
                match c.atom()?.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => ret.subscribed = true,
                    "CHILDREN" => ret.children = true,
                    "SPECIAL-USE" => ret.special_use = true,
                    "STATUS" => {
                        c.sp()?;
                        ret.status = Some(status_items(c)?);
                    }
                    _ => return err("Unknown LIST return option"),
                }
                if c.eat(b')') {
                    break;
                }
                c.sp()?;
            }
        }
    }
    Ok(CommandBody::List {
        reference,
        patterns,
        select,
        ret,
        extended,
    })
}

fn search(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let mut ret = None;
    if c.eat_word("RETURN") {
        c.sp()?;
        ret = Some(search_return(c)?);
        c.sp()?;
    }
    if c.eat_word("CHARSET") {
        c.sp()?;
        let cs = c.astring_utf8()?.to_ascii_uppercase();
        if cs != "UTF-8" && cs != "US-ASCII" {
            return Err(ParseError::new("Unsupported charset").badcharset());
        }
        c.sp()?;
    }
    let mut keys = vec![search_key(c, 0)?];
    while c.eat(b' ') {
        keys.push(search_key(c, 0)?);
        if keys.len() > 1000 {
            return err("Too many search keys");
        }
    }
    let key = if keys.len() == 1 {
        keys.pop().unwrap_or(SearchKey::All)
    } else {
        SearchKey::And(keys)
    };
    Ok(CommandBody::Search { uid, ret, key })
}

fn fetch(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = sequence_set(c)?;
    c.sp()?;
    let items = fetch_items(c)?;
    Ok(CommandBody::Fetch { uid, set, items })
}

fn store(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = sequence_set(c)?;
    c.sp()?;
    let op = if c.eat(b'+') {
        StoreOp::Add
    } else if c.eat(b'-') {
        StoreOp::Remove
    } else {
        StoreOp::Replace
    };
    let silent = if c.eat_word("FLAGS.SILENT") {
        true
    } else if c.eat_word("FLAGS") {
        false
    } else {
        return err("Expected FLAGS");
    };
    c.sp()?;
    let flags = if c.peek() == Some(b'(') {
        flag_list(c)?
    } else {
        let mut v = vec![flag(c)?];
        while c.eat(b' ') {
            v.push(flag(c)?);
            if v.len() > 1000 {
                return err("Too many flags");
            }
        }
        v
    };
    Ok(CommandBody::Store {
        uid,
        set,
        op,
        silent,
        flags,
    })
}

fn copy(c: &mut Cursor<'_>, uid: bool, is_move: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = sequence_set(c)?;
    let mailbox = mailbox(c)?;
    Ok(if is_move {
        CommandBody::Move { uid, set, mailbox }
    } else {
        CommandBody::Copy { uid, set, mailbox }
    })
}
