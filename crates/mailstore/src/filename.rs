//! Maildir file names: `<base>[:<info>]` where the base is
//! `<sec>.<unique>.<host>[,S=<size>][,W=<vsize>]` and the info is `2,<flags>[,<anything>]`. Parses
//! what Dovecot, Postfix local(8)/virtual(8) and Courier write; generates our own unique names;
//! changes flags exactly as Dovecot's `maildir_filename_flags_full_set()` does (known flags merged
//! in ASCII order, unknown flags and any second `,` section kept).

use std::cmp::Ordering;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// `:` separates the base name from the info.
pub const INFO_SEP: char = ':';

/// An IMAP system flag stored as a Maildir info letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SystemFlag {
    /// `D`, \Draft
    Draft,
    /// `F`, \Flagged
    Flagged,
    /// `R`, \Answered
    Answered,
    /// `S`, \Seen
    Seen,
    /// `T`, \Deleted
    Deleted,
}

impl SystemFlag {
    /// All system flags in ASCII order of their letters.
    pub const ALL: [SystemFlag; 5] = [
        SystemFlag::Draft,
        SystemFlag::Flagged,
        SystemFlag::Answered,
        SystemFlag::Seen,
        SystemFlag::Deleted,
    ];

    /// The Maildir info letter.
    pub fn letter(self) -> char {
        match self {
            SystemFlag::Draft => 'D',
            SystemFlag::Flagged => 'F',
            SystemFlag::Answered => 'R',
            SystemFlag::Seen => 'S',
            SystemFlag::Deleted => 'T',
        }
    }

    /// The flag for a letter, if it is one of `DFRST`.
    pub fn from_letter(c: char) -> Option<Self> {
        SystemFlag::ALL.into_iter().find(|f| f.letter() == c)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The flags a Maildir file name can carry that IMAP knows: system flags and keyword slots `a`–`z`
/// (slot names live in `dovecot-keywords`). Unknown letters such as `P` are not represented here;
/// they survive flag changes because [`Filename::with_flags`] keeps them from the old name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    system: u8,
    keywords: u32,
}

impl Flags {
    /// No flags.
    pub fn empty() -> Self {
        Flags::default()
    }

    /// True if the system flag is set.
    pub fn contains(&self, flag: SystemFlag) -> bool {
        self.system & flag.bit() != 0
    }

    /// Sets or clears a system flag.
    pub fn set(&mut self, flag: SystemFlag, on: bool) {
        if on {
            self.system |= flag.bit();
        } else {
            self.system &= !flag.bit();
        }
    }

    /// Builder form of [`Flags::set`].
    pub fn with(mut self, flag: SystemFlag) -> Self {
        self.set(flag, true);
        self
    }

    /// Flags set in `self` or `other`.
    pub fn union(&self, other: &Flags) -> Flags {
        Flags {
            system: self.system | other.system,
            keywords: self.keywords | other.keywords,
        }
    }

    /// Flags of `self` not set in `other`.
    pub fn minus(&self, other: &Flags) -> Flags {
        Flags {
            system: self.system & !other.system,
            keywords: self.keywords & !other.keywords,
        }
    }

    /// Only the system flags (keyword slots cleared).
    pub fn system_only(&self) -> Flags {
        Flags {
            system: self.system,
            keywords: 0,
        }
    }

    /// True if keyword slot `idx` (0 = `a` … 25 = `z`) is set.
    pub fn has_keyword(&self, idx: u8) -> bool {
        idx < 26 && self.keywords & (1 << idx) != 0
    }

    /// Sets or clears keyword slot `idx` (ignored when `idx >= 26`).
    pub fn set_keyword(&mut self, idx: u8, on: bool) {
        if idx >= 26 {
            return;
        }
        if on {
            self.keywords |= 1 << idx;
        } else {
            self.keywords &= !(1 << idx);
        }
    }

    /// Keyword slots that are set, ascending.
    pub fn keywords(&self) -> impl Iterator<Item = u8> + '_ {
        (0u8..26).filter(|&i| self.has_keyword(i))
    }

    /// Parses the flag letters of an info string without its `2,` (stops at the next `,`).
    pub fn from_letters(letters: &str) -> Self {
        let mut flags = Flags::empty();
        for c in letters.chars().take_while(|&c| c != ',') {
            if let Some(f) = SystemFlag::from_letter(c) {
                flags.set(f, true);
            } else if c.is_ascii_lowercase() {
                flags.set_keyword(c as u8 - b'a', true);
            }
        }
        flags
    }

    /// The letters in ASCII order, e.g. `FSab`.
    pub fn letters(&self) -> String {
        let mut s: String = SystemFlag::ALL
            .into_iter()
            .filter(|f| self.contains(*f))
            .map(SystemFlag::letter)
            .collect();
        s.extend(self.keywords().map(|i| char::from(b'a' + i)));
        s
    }
}

/// A parsed Maildir file name (no directory part).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Filename {
    name: String,
    /// Byte offset of the first `:` (end of the base name), or `name.len()`.
    base_end: usize,
}

/// Why a directory entry is not a usable message file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilenameError {
    /// Empty name.
    Empty,
    /// Hidden files (leading `.`) are skipped by every Maildir reader.
    Hidden,
    /// `/`, NUL, CR or LF inside the name (Dovecot ignores such files).
    ForbiddenByte(u8),
}

impl fmt::Display for FilenameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilenameError::Empty => write!(f, "empty file name"),
            FilenameError::Hidden => write!(f, "hidden file"),
            FilenameError::ForbiddenByte(b) => write!(f, "forbidden byte {b:#04x} in file name"),
        }
    }
}

impl std::error::Error for FilenameError {}

impl Filename {
    /// Parses a file name as found in `new/` or `cur/`.
    pub fn parse(name: &str) -> Result<Self, FilenameError> {
        if name.is_empty() {
            return Err(FilenameError::Empty);
        }
        if name.starts_with('.') {
            return Err(FilenameError::Hidden);
        }
        if let Some(b) = name.bytes().find(|b| matches!(b, b'/' | 0 | b'\r' | b'\n')) {
            return Err(FilenameError::ForbiddenByte(b));
        }
        let base_end = name.find(INFO_SEP).unwrap_or(name.len());
        Ok(Filename {
            name: name.to_string(),
            base_end,
        })
    }

    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The identity of the message: everything before the first `:`.
    pub fn base(&self) -> &str {
        &self.name[..self.base_end]
    }

    /// Everything after the first `:` (e.g. `2,FS`), if there is a `:`.
    pub fn info(&self) -> Option<&str> {
        self.name.get(self.base_end + 1..)
    }

    /// `,S=<n>` of the base name: the file size Dovecot and Courier put there.
    pub fn size(&self) -> Option<u64> {
        base_field(self.base(), b'S')
    }

    /// `,W=<n>` of the base name: RFC822.SIZE with LF counted as CRLF.
    pub fn vsize(&self) -> Option<u64> {
        base_field(self.base(), b'W')
    }

    /// Leading decimal seconds (delivery time), if the name starts with digits.
    pub fn timestamp(&self) -> Option<u64> {
        let digits: &str = &self.name[..self.name.bytes().take_while(u8::is_ascii_digit).count()];
        digits.parse().ok()
    }

    /// The letters of a `2,` info (up to a second `,`), empty without one. Dovecot reads the info
    /// after the last `:`.
    pub fn flag_letters(&self) -> &str {
        let Some(pos) = self.name.rfind(INFO_SEP) else {
            return "";
        };
        let info = &self.name[pos + 1..];
        match info.strip_prefix("2,") {
            Some(rest) => rest.split(',').next().unwrap_or(""),
            None => "",
        }
    }

    /// The IMAP flags and keyword slots of the name.
    pub fn flags(&self) -> Flags {
        Flags::from_letters(self.flag_letters())
    }

    /// True if `letter` is among the flag letters (e.g. `P`, passed, which IMAP does not show).
    pub fn has_flag_letter(&self, letter: char) -> bool {
        self.flag_letters().contains(letter)
    }

    /// The name with `flags` set, as Dovecot computes it: the old info is replaced by `2,` + flags;
    /// unknown letters of the old `2,` info are kept in place and known ones are inserted before
    /// the first unknown letter with a higher ASCII code; a second `,` section is kept verbatim.
    pub fn with_flags(&self, flags: &Flags) -> Filename {
        let (prefix, old) = match self.name.rfind(INFO_SEP) {
            Some(pos) => {
                let info = &self.name[pos + 1..];
                (&self.name[..pos], info.strip_prefix("2,").unwrap_or(""))
            }
            None => (self.name.as_str(), ""),
        };
        let mut out = String::with_capacity(prefix.len() + 8);
        out.push_str(prefix);
        out.push_str(":2,");
        let known = |c: char| matches!(c, 'D' | 'F' | 'R' | 'S' | 'T') || c.is_ascii_lowercase();
        let mut pending: Vec<char> = flags.letters().chars().collect();
        let mut old = old.chars().peekable();
        loop {
            while old.peek().is_some_and(|&c| known(c)) {
                old.next();
            }
            let next: u32 = match old.peek() {
                None | Some(',') => u32::MAX,
                Some(&c) => u32::from(c),
            };
            pending.retain(|&c| {
                if u32::from(c) < next {
                    out.push(c);
                    false
                } else {
                    true
                }
            });
            match old.peek() {
                None | Some(',') => break,
                Some(&c) => {
                    out.push(c);
                    old.next();
                }
            }
        }
        // a second `,` section: not ours to interpret
        out.extend(old);
        let base_end = out.find(INFO_SEP).unwrap_or(out.len());
        Filename {
            name: out,
            base_end,
        }
    }
}

impl fmt::Display for Filename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Dovecot's `maildir_filename_get_size()` restricted to the base name: the digits after `,<key>=`,
/// ended by `,`, `:` or the end.
fn base_field(base: &str, key: u8) -> Option<u64> {
    let b = base.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        if b[i] == b',' && b[i + 1] == key && b[i + 2] == b'=' {
            let digits = &b[i + 3..];
            let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
            let rest = &digits[n..];
            if !(rest.is_empty() || rest[0] == b',' || rest[0] == b':') {
                return None;
            }
            let mut v: u64 = 0;
            for &d in &digits[..n] {
                v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            }
            return Some(v);
        }
        i += 1;
    }
    None
}

/// Dovecot's `maildir_filename_sort_cmp()`: by leading seconds, then by the `M<usecs>` of the
/// unique part when both have one, then by base name. New files get UIDs in this order. C
/// arithmetic (`int` differences, signed `char`) is reproduced so the order matches for any name.
pub fn dovecot_sort_cmp(a: &str, b: &str) -> Ordering {
    let (sa, ra) = leading_secs(a.as_bytes());
    let (sb, rb) = leading_secs(b.as_bytes());
    let mut ret = sa.wrapping_sub(sb) as i32;
    if ret == 0 {
        if let (Some(ua), Some(ub)) = (usecs(ra), usecs(rb)) {
            ret = ua.wrapping_sub(ub);
        }
        if ret == 0 {
            ret = base_cmp(ra, rb);
        }
    }
    ret.cmp(&0)
}

fn leading_secs(s: &[u8]) -> (i64, &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let v = s[..n].iter().fold(0i64, |acc, d| {
        acc.wrapping_mul(10).wrapping_add(i64::from(d - b'0'))
    });
    (v, &s[n..])
}

fn usecs(s: &[u8]) -> Option<i32> {
    let rest = s.strip_prefix(b".")?;
    let mut i = 0;
    while i < rest.len() && rest[i] != b'.' && rest[i] != b':' {
        let c = rest[i];
        i += 1;
        if c == b'M' {
            let v = rest[i..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .fold(0i32, |acc, d| {
                    acc.wrapping_mul(10).wrapping_add(i32::from(d - b'0'))
                });
            return Some(v);
        }
    }
    None
}

/// `maildir_filename_base_cmp()`: compares up to the first `:`, with C's signed `char` difference.
fn base_cmp(a: &[u8], b: &[u8]) -> i32 {
    let end = |s: &[u8], i: usize| i >= s.len() || s[i] == b':';
    let mut i = 0;
    while !end(a, i) && !end(b, i) && a[i] == b[i] {
        i += 1;
    }
    if end(a, i) && end(b, i) {
        return 0;
    }
    let ca = if end(a, i) { 0 } else { i32::from(a[i] as i8) };
    let cb = if end(b, i) { 0 } else { i32::from(b[i] as i8) };
    ca - cb
}

/// Counts bytes and the RFC822.SIZE Dovecot puts in `,W=`: every LF not preceded by CR counts
/// twice.
#[derive(Clone, Copy, Debug, Default)]
pub struct SizeCounter {
    size: u64,
    bare_lf: u64,
    last_cr: bool,
}

impl SizeCounter {
    /// Feeds the next chunk of the message.
    pub fn update(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' && !self.last_cr {
                self.bare_lf += 1;
            }
            self.last_cr = b == b'\r';
        }
        self.size += chunk.len() as u64;
    }

    /// Physical size (`S=`).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Virtual size (`W=`).
    pub fn vsize(&self) -> u64 {
        self.size + self.bare_lf
    }
}

static DELIVERY_COUNTER: AtomicU64 = AtomicU64::new(0);
static HOSTNAME: OnceLock<String> = OnceLock::new();

/// The host name as the dot-lock files and Dovecot's `my_hostname` use it (unescaped).
pub(crate) fn raw_hostname() -> &'static str {
    HOSTNAME.get_or_init(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    })
}

/// Escapes a host name for a Maildir file name: `/` → `\057`, `:` → `\072` (maildir(5)).
pub fn escape_hostname(host: &str) -> String {
    host.replace('/', "\\057").replace(':', "\\072")
}

/// A fresh base name `<sec>.M<usec>P<pid>Q<n>.<host>`; unique per process through the delivery
/// counter `Q`, and across processes through the pid.
pub fn generate_base(now: SystemTime) -> String {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let q = DELIVERY_COUNTER.fetch_add(1, AtomicOrdering::Relaxed) + 1;
    format!(
        "{}.M{}P{}Q{}.{}",
        d.as_secs(),
        d.subsec_micros(),
        std::process::id(),
        q,
        escape_hostname(raw_hostname())
    )
}

/// Appends `,S=<size>,W=<vsize>` to a base name.
pub fn with_sizes(base: &str, counter: &SizeCounter) -> String {
    format!("{base},S={},W={}", counter.size(), counter.vsize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> Filename {
        Filename::parse(s).unwrap()
    }

    #[test]
    fn dovecot_name() {
        let n = f("1700000123.M456789P4242.mx1,S=2048,W=2101:2,FSa");
        assert_eq!(n.base(), "1700000123.M456789P4242.mx1,S=2048,W=2101");
        assert_eq!(n.size(), Some(2048));
        assert_eq!(n.vsize(), Some(2101));
        assert_eq!(n.timestamp(), Some(1700000123));
        let fl = n.flags();
        assert!(fl.contains(SystemFlag::Flagged) && fl.contains(SystemFlag::Seen));
        assert!(!fl.contains(SystemFlag::Draft));
        assert!(fl.has_keyword(0) && !fl.has_keyword(1));
        assert_eq!(fl.letters(), "FSa");
    }

    #[test]
    fn other_writers() {
        // Postfix local(8)
        let n = f("1700000000.V801I1a2bM123456.mx.example.org");
        assert_eq!((n.size(), n.vsize(), n.info()), (None, None, None));
        assert_eq!(n.flags(), Flags::empty());
        // Courier with size in the name and a flag set
        let n = f("1700000000.M1P2.host,S=1234:2,RS");
        assert_eq!(n.size(), Some(1234));
        assert_eq!(n.flags().letters(), "RS");
        // Courier maildrop/deliverquota: dev/inode/pid/usec tokens and `_<n>` suffix
        let n = f(
            "1700000000.M123456P4321V0000000000000803I00000000001A2B3C_0.mail.example,S=1234:2,FS",
        );
        assert_eq!((n.size(), n.vsize()), (Some(1234), None));
        assert_eq!(
            n.base(),
            "1700000000.M123456P4321V0000000000000803I00000000001A2B3C_0.mail.example,S=1234"
        );
        assert_eq!(n.flags().letters(), "FS");
        // host names with escaped '/' and ':' (maildir(5))
        let n = f("1700000000.M1P2.ho\\057st\\072x,S=5:2,S");
        assert_eq!(
            (n.size(), n.base()),
            (Some(5), "1700000000.M1P2.ho\\057st\\072x,S=5")
        );
        // Size ended by something else is no size
        assert_eq!(f("1.M1P2.host,S=12x").size(), None);
        assert_eq!(f("1.M1P2.host,S=12,W=30").vsize(), Some(30));
        // ,S= after the colon does not count
        assert_eq!(f("1.M1P2.host:2,S,S=5").size(), None);
        // version 1 info (experimental) has no flags
        assert_eq!(f("1.M1P2.host:1,foo").flags(), Flags::empty());
        assert!(f("1.x.h:2,PS").has_flag_letter('P'));
    }

    #[test]
    fn rejects() {
        assert_eq!(Filename::parse(""), Err(FilenameError::Empty));
        assert_eq!(Filename::parse(".nfs123"), Err(FilenameError::Hidden));
        assert_eq!(
            Filename::parse("a/b"),
            Err(FilenameError::ForbiddenByte(b'/'))
        );
        assert_eq!(
            Filename::parse("a\nb"),
            Err(FilenameError::ForbiddenByte(b'\n'))
        );
    }

    #[test]
    fn set_flags_like_dovecot() {
        let seen = Flags::empty().with(SystemFlag::Seen);
        assert_eq!(f("1.M2P3.h").with_flags(&seen).as_str(), "1.M2P3.h:2,S");
        assert_eq!(f("1.M2P3.h:2,").with_flags(&seen).as_str(), "1.M2P3.h:2,S");
        // unknown P is kept and the known flags go around it in ASCII order
        let fl = Flags::empty()
            .with(SystemFlag::Flagged)
            .with(SystemFlag::Seen);
        assert_eq!(
            f("1.M2P3.h:2,PT").with_flags(&fl).as_str(),
            "1.M2P3.h:2,FPS"
        );
        // a second comma section is kept verbatim
        let mut kw = Flags::empty().with(SystemFlag::Answered);
        kw.set_keyword(2, true);
        assert_eq!(
            f("1.M2P3.h:2,S,xyz").with_flags(&kw).as_str(),
            "1.M2P3.h:2,Rc,xyz"
        );
        // clearing everything
        assert_eq!(
            f("1.M2P3.h:2,FS").with_flags(&Flags::empty()).as_str(),
            "1.M2P3.h:2,"
        );
        // non-2 info is replaced
        assert_eq!(
            f("1.M2P3.h:1,abc").with_flags(&seen).as_str(),
            "1.M2P3.h:2,S"
        );
    }

    #[test]
    fn sort_order() {
        let mut v = vec![
            "1700000002.M1P1.h",
            "1700000001.M20P1.h",
            "1700000001.M3P1.h",
            "1700000001.xyz.h",
            "999.M1P1.h",
        ];
        v.sort_by(|a, b| dovecot_sort_cmp(a, b));
        assert_eq!(
            v,
            [
                "999.M1P1.h",
                "1700000001.M3P1.h",
                "1700000001.M20P1.h",
                "1700000001.xyz.h",
                "1700000002.M1P1.h"
            ]
        );
        assert_eq!(dovecot_sort_cmp("1.a:2,S", "1.a:2,F"), Ordering::Equal);
    }

    #[test]
    fn sizes_and_names() {
        let mut c = SizeCounter::default();
        c.update(b"a\r");
        c.update(b"\nb\nc\n");
        assert_eq!((c.size(), c.vsize()), (7, 9));
        assert_eq!(escape_hostname("a/b:c"), "a\\057b\\072c");
        let now = SystemTime::now();
        let (a, b) = (generate_base(now), generate_base(now));
        assert_ne!(a, b);
        assert!(Filename::parse(&with_sizes(&a, &c)).is_ok());
        assert_eq!(
            Filename::parse(&with_sizes(&a, &c)).unwrap().vsize(),
            Some(9)
        );
    }

    proptest! {
        #[test]
        fn flags_round_trip(sys in 0u8..32, kw in 0u32..(1 << 26), other in "[A-Z0-9]{0,3}",
                            tail in "(,[a-z]{0,4})?") {
            let mut flags = Flags::empty();
            for (i, fl) in SystemFlag::ALL.into_iter().enumerate() {
                flags.set(fl, sys & (1 << i) != 0);
            }
            for i in 0..26 { flags.set_keyword(i, kw & (1 << i) != 0); }
            let mut others: Vec<char> = other.chars().filter(|c| !"DFRST".contains(*c)).collect();
            others.sort_unstable();
            others.dedup();
            let others: String = others.into_iter().collect();
            let name = format!("1700000000.M1P2.host,S=10:2,{others}{tail}");
            let n = f(&name).with_flags(&flags);
            prop_assert_eq!(n.flags(), flags);
            prop_assert_eq!(n.base(), "1700000000.M1P2.host,S=10");
            let letters = n.flag_letters().to_string();
            let mut sorted: Vec<char> = letters.chars().collect();
            sorted.sort_unstable();
            prop_assert_eq!(sorted.into_iter().collect::<String>(), letters.clone());
            for c in others.chars() { prop_assert!(letters.contains(c)); }
            prop_assert!(n.as_str().ends_with(&tail));
            prop_assert_eq!(f(n.as_str()).with_flags(&flags), n.clone());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            if let Ok(n) = Filename::parse(&s) {
                let _ = (n.size(), n.vsize(), n.flags(), n.timestamp());
                let _ = n.with_flags(&Flags::empty());
                prop_assert!(!n.base().contains(':'));
            }
        }
    }
}
