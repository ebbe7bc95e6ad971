//! Service extensions a server announced in its EHLO/LHLO reply (RFC 5321 §4.1.1.1).

use crate::reply::Reply;

/// What the peer offers; unknown keywords are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The name the server gave in its EHLO/LHLO/HELO reply (first word, at most 255 octets):
    /// a server answering with our own name means the mail loops back to us.
    pub name: String,
    pub pipelining: bool,
    /// `SIZE` with its limit; `Some(0)` = no fixed limit announced.
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    pub binarymime: bool,
    pub dsn: bool,
    pub enhanced_status: bool,
    pub starttls: bool,
    /// SASL mechanisms from `AUTH`, upper-cased.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// From the EHLO/LHLO reply: the first line is the server's name, each further line one
    /// keyword with optional parameters.
    pub fn from_reply(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities {
            name: Capabilities::server_name(reply),
            ..Capabilities::default()
        };
        for line in reply.lines().iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(kw) = words.next() else { continue };
            match kw.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|v| v.parse().ok()).unwrap_or(0)),
                "8BITMIME" => caps.eightbitmime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "CHUNKING" => caps.chunking = true,
                "BINARYMIME" => caps.binarymime = true,
                "DSN" => caps.dsn = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status = true,
                "STARTTLS" => caps.starttls = true,
                "AUTH" => caps.auth = words.map(|w| w.to_ascii_uppercase()).collect(),
                _ => {}
            }
        }
        caps
    }

    /// The first word of the reply's first line (the server's name in a 250 to EHLO or HELO).
    pub fn server_name(reply: &Reply) -> String {
        let first = reply.lines().first().map_or("", String::as_str);
        let word = first.split_ascii_whitespace().next().unwrap_or("");
        let mut end = word.len().min(255);
        while !word.is_char_boundary(end) {
            end -= 1;
        }
        word[..end].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplyParser;

    #[test]
    fn dovecot_lhlo() {
        let mut p = ReplyParser::new();
        p.feed(
            b"250-host\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n\
              250-PIPELINING\r\n250-SIZE\r\n250-AUTH PLAIN login\r\n250 SMTPUTF8\r\n",
        );
        let caps = Capabilities::from_reply(&p.next_reply().unwrap().unwrap());
        assert!(caps.pipelining && caps.eightbitmime && caps.chunking && caps.smtputf8);
        assert!(caps.enhanced_status && !caps.dsn && !caps.starttls);
        assert_eq!(caps.size, Some(0));
        assert_eq!(caps.auth, ["PLAIN", "LOGIN"]);
        assert_eq!(caps.name, "host");
        p.feed(b"250 mx.example.org Hello client\r\n");
        let helo = p.next_reply().unwrap().unwrap();
        assert_eq!(Capabilities::server_name(&helo), "mx.example.org");
    }
}
