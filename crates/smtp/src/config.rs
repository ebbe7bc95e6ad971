//! What a session offers and enforces. Built by the daemon from its own config file; this crate
//! reads no files.

/// SMTP (RFC 5321) or LMTP (RFC 2033).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

/// What to do with a bare LF (a LF not preceded by CR) in commands and DATA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BareLf {
    /// Postfix ≥ 3.9 `smtpd_forbid_bare_newline = normalize`: accept it as a line ending (stored
    /// as CRLF), still demand CRLF.CRLF to end DATA.
    #[default]
    Normalize,
    /// `smtpd_forbid_bare_newline = reject`: a command with one gets 550 5.5.2 and the session
    /// ends; a message with one gets 550 5.5.2 (per recipient in LMTP).
    Reject,
}

/// Session limits and advertised extensions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub protocol: Protocol,
    /// Our name in the greeting, EHLO/LHLO reply and 421s.
    pub hostname: String,
    /// Text after the hostname in the 220 greeting.
    pub banner: String,
    /// Longest command line including CRLF (Postfix `line_length_limit` = 2048; RFC 5321's 512
    /// plus room for extension parameters).
    pub max_line: usize,
    /// Largest message in octets after dot-unstuffing (advertised as SIZE). Larger messages are
    /// read to the end and refused with 552 5.3.4.
    pub max_message_size: u64,
    /// Most recipients per transaction (Postfix `smtpd_recipient_limit` = 1000); more get 452.
    pub max_recipients: usize,
    /// After this many errors the session gets 421 and ends (Postfix `smtpd_hard_error_limit`).
    pub max_errors: u32,
    /// Whether a RCPT the driver rejects counts as an error (an SMTP server wants this against
    /// address harvesting; an LMTP server behind a trusted MTA does not).
    pub count_rejected_recipients: bool,
    pub bare_lf: BareLf,
    /// Advertise and accept the extensions.
    pub pipelining: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    /// BODY=BINARYMIME (RFC 3030 §3): advertised, and accepted, only with CHUNKING and only
    /// when whoever takes the message can pass binary content on unchanged.
    pub binary_mime: bool,
    pub dsn: bool,
    /// STARTTLS can be offered (a certificate is configured); ignored once TLS is active.
    pub starttls: bool,
    /// Refuse everything but EHLO/STARTTLS/NOOP/RSET/QUIT until TLS is active.
    pub require_tls: bool,
    /// SASL mechanisms to advertise (upper case); empty = no AUTH.
    pub auth_mechanisms: Vec<String>,
    /// Offer AUTH only over TLS (Postfix `smtpd_tls_auth_only`).
    pub auth_requires_tls: bool,
    /// Refuse MAIL until the client has authenticated (submission).
    pub require_auth: bool,
    /// Refuse HELO/EHLO/LHLO names that are not a domain or address literal (501 5.5.4).
    pub strict_hello: bool,
    /// A MAIL or RCPT address without a domain (`<root>`) gets this one (Postfix
    /// append_at_myorigin); `None`: such an address is a syntax error (501), as RFC 5321 wants
    /// from the Internet.
    pub bare_address_domain: Option<String>,
    /// End the session (554 5.5.0) when an unauthenticated client pipelines where RFC 2920
    /// forbids it (Postfix ≥ 3.9 `smtpd_forbid_unauth_pipelining = yes`).
    pub forbid_unauth_pipelining: bool,
}

impl SessionConfig {
    /// An SMTP server with Postfix's defaults.
    pub fn smtp(hostname: impl Into<String>) -> Self {
        SessionConfig {
            protocol: Protocol::Smtp,
            hostname: hostname.into(),
            banner: "ESMTP pochta".into(),
            max_line: 2048,
            max_message_size: 10_240_000,
            max_recipients: 1000,
            max_errors: 20,
            count_rejected_recipients: true,
            bare_lf: BareLf::Normalize,
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: true,
            chunking: true,
            // The mta relays to peers that may not take binary content and cannot downgrade it.
            binary_mime: false,
            dsn: true,
            starttls: false,
            require_tls: false,
            auth_mechanisms: Vec::new(),
            auth_requires_tls: true,
            require_auth: false,
            strict_hello: false,
            bare_address_domain: None,
            forbid_unauth_pipelining: false,
        }
    }

    /// An LMTP server offering what Dovecot LMTP offers (PIPELINING, ENHANCEDSTATUSCODES,
    /// 8BITMIME, CHUNKING, SIZE, SMTPUTF8), no DSN.
    pub fn lmtp(hostname: impl Into<String>) -> Self {
        SessionConfig {
            protocol: Protocol::Lmtp,
            banner: "LMTP pochta ready".into(),
            max_message_size: 50 << 20,
            count_rejected_recipients: false,
            dsn: false,
            strict_hello: true,
            ..Self::smtp(hostname)
        }
    }

    /// The longest line read while a SASL exchange is in progress (Dovecot/Postfix allow long
    /// base64 responses, e.g. GSSAPI tickets).
    pub(crate) fn max_auth_line(&self) -> usize {
        self.max_line.max(12_288)
    }
}
