//! `user+detail` splitting. Where a user's mail goes and its quota are pochta-mailstore's
//! [`pochta_mailstore::UserMailbox`] (one rule for mda-lmtp, imapd and pop3d).

/// Splits `alice+news` at the first delimiter character: (`alice`, `Some("news")`).
pub fn split_detail<'a>(local: &'a str, delimiters: &str) -> (&'a str, Option<&'a str>) {
    if delimiters.is_empty() {
        return (local, None);
    }
    match local.find(|c| delimiters.contains(c)) {
        Some(i) if i > 0 => {
            let c_len = local[i..].chars().next().map_or(1, char::len_utf8);
            (&local[..i], Some(&local[i + c_len..]))
        }
        _ => (local, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details() {
        assert_eq!(split_detail("alice+news", "+"), ("alice", Some("news")));
        assert_eq!(split_detail("alice-x+y", "+-"), ("alice", Some("x+y")));
        assert_eq!(split_detail("+x", "+"), ("+x", None));
        assert_eq!(split_detail("alice", "+"), ("alice", None));
        assert_eq!(split_detail("a+b", ""), ("a+b", None));
    }
}
