//! Mechanisms as advertised in `MECH` lines, their security flags, and the handshake cookie.

use std::fmt;

/// One `MECH` flag. Declaration order is Dovecot's emit order (`mech_security_flags` in
/// lib-sasl), which encoding follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MechFlag {
    /// Usable but never advertised to end users (APOP, DOVECOT-TOKEN).
    Private,
    /// Anonymous login.
    Anonymous,
    /// Sends the password in the clear.
    Plaintext,
    /// Open to passive dictionary attacks.
    Dictionary,
    /// Open to active (non-dictionary) attacks.
    Active,
    /// Forward secrecy between sessions.
    ForwardSecrecy,
    /// Mutual authentication.
    MutualAuth,
    /// Supports channel binding (advertised only to clients of minor ≥ 3).
    ChannelBinding,
}

impl MechFlag {
    /// All flags in emit order.
    pub const ALL: [MechFlag; 8] = [
        MechFlag::Private,
        MechFlag::Anonymous,
        MechFlag::Plaintext,
        MechFlag::Dictionary,
        MechFlag::Active,
        MechFlag::ForwardSecrecy,
        MechFlag::MutualAuth,
        MechFlag::ChannelBinding,
    ];

    /// The wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            MechFlag::Private => "private",
            MechFlag::Anonymous => "anonymous",
            MechFlag::Plaintext => "plaintext",
            MechFlag::Dictionary => "dictionary",
            MechFlag::Active => "active",
            MechFlag::ForwardSecrecy => "forward-secrecy",
            MechFlag::MutualAuth => "mutual-auth",
            MechFlag::ChannelBinding => "channel-binding",
        }
    }

    /// Parses a wire word, case-insensitively (as Postfix does).
    pub fn parse(s: &str) -> Option<Self> {
        MechFlag::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`MechFlag`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MechFlags(u8);

impl MechFlags {
    /// No flag.
    pub const fn empty() -> Self {
        MechFlags(0)
    }

    /// A set from a list.
    pub fn from_flags(flags: &[MechFlag]) -> Self {
        flags.iter().fold(MechFlags::empty(), |s, &f| s.with(f))
    }

    /// This set plus `flag`.
    pub fn with(self, flag: MechFlag) -> Self {
        MechFlags(self.0 | flag.bit())
    }

    /// Whether `flag` is set.
    pub fn contains(self, flag: MechFlag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// The set flags in emit order.
    pub fn iter(self) -> impl Iterator<Item = MechFlag> {
        MechFlag::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl fmt::Debug for MechFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A mechanism as advertised: name (upper case by convention) and flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    /// SASL name, e.g. `PLAIN`, `SCRAM-SHA-256`.
    pub name: String,
    /// Security flags.
    pub flags: MechFlags,
}

impl Mechanism {
    /// A mechanism with the given flags.
    pub fn new(name: impl Into<String>, flags: &[MechFlag]) -> Self {
        Mechanism {
            name: name.into(),
            flags: MechFlags::from_flags(flags),
        }
    }

    /// Whether `name` names this mechanism (SASL names are case-insensitive; Postfix sends the
    /// name as the SMTP client typed it).
    pub fn matches(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Dovecot's flags for the mechanisms it knows (docs/formats.md#mechanisms-and-their-flags);
    /// `None` for others.
    pub fn dovecot_default(name: &str) -> Option<Self> {
        use MechFlag::*;
        let upper = name.to_ascii_uppercase();
        let flags: &[MechFlag] = match upper.as_str() {
            "PLAIN" | "LOGIN" | "OAUTHBEARER" | "XOAUTH2" => &[Plaintext],
            "CRAM-MD5" => &[Dictionary, Active],
            "DIGEST-MD5" => &[Dictionary, Active, MutualAuth],
            "SCRAM-SHA-1" | "SCRAM-SHA-256" => &[MutualAuth],
            "SCRAM-SHA-1-PLUS" | "SCRAM-SHA-256-PLUS" => &[MutualAuth, ChannelBinding],
            "ANONYMOUS" => &[Anonymous],
            "EXTERNAL" | "GSSAPI" => &[],
            "APOP" | "DOVECOT-TOKEN" => &[Private],
            _ => return None,
        };
        Some(Mechanism::new(upper, flags))
    }
}

/// The 128-bit handshake cookie (`COOKIE` line: 32 lowercase hex digits). The caller supplies
/// the random bytes; this crate does no I/O and owns no RNG.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cookie(pub [u8; 16]);

impl Cookie {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses exactly 32 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Cookie(out))
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cookie authenticates login-process handoffs: keep it out of logs.
        f.write_str("Cookie(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_order_and_case() {
        let f = MechFlags::from_flags(&[MechFlag::Active, MechFlag::Dictionary]);
        let v: Vec<_> = f.iter().map(MechFlag::as_str).collect();
        assert_eq!(v, ["dictionary", "active"]);
        assert_eq!(MechFlag::parse("PLAINTEXT"), Some(MechFlag::Plaintext));
        assert_eq!(MechFlag::parse("bogus"), None);
    }

    #[test]
    fn cookie_hex() {
        let c = Cookie::from_hex("9f0c0d5a51b2c81e4b7a2e66d1c0f3aa").unwrap();
        assert_eq!(c.to_hex(), "9f0c0d5a51b2c81e4b7a2e66d1c0f3aa");
        assert!(Cookie::from_hex("9f0c").is_none());
        assert!(Cookie::from_hex("zz0c0d5a51b2c81e4b7a2e66d1c0f3aa").is_none());
        assert_eq!(format!("{c:?}"), "Cookie(***)");
    }

    #[test]
    fn defaults() {
        let m = Mechanism::dovecot_default("cram-md5").unwrap();
        assert_eq!(m.name, "CRAM-MD5");
        assert!(m.flags.contains(MechFlag::Active));
        assert!(m.matches("Cram-Md5"));
    }
}
