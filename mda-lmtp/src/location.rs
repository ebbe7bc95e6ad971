//! Recipient details: the Dovecot 2.4 quota fields (2.3's `quota_rule` is parsed by
//! pochta-mailstore) and `user+detail` splitting. Mail location templates are
//! [`pochta_mailstore::location`].

use pochta_mailstore::QuotaLimit;

/// Dovecot size with suffix; `default_unit` applies to bare numbers.
fn size(v: &str, default_unit: u64) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim().to_ascii_uppercase().as_str() {
        "" => default_unit,
        "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Dovecot 2.4 `quota_storage_size` (bytes unless suffixed) and `quota_message_count`.
pub fn apply_quota_24(limit: &mut QuotaLimit, key: &str, value: &str) -> Result<(), String> {
    let bad = || format!("unreadable {key}={value:?}");
    match key {
        "quota_storage_size" => limit.bytes = Some(size(value, 1).ok_or_else(bad)?),
        "quota_message_count" => limit.messages = Some(value.trim().parse().map_err(|_| bad())?),
        _ => {}
    }
    if limit.bytes == Some(0) {
        limit.bytes = None;
    }
    if limit.messages == Some(0) {
        limit.messages = None;
    }
    Ok(())
}

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
    fn quota_24() {
        let mut q = QuotaLimit::default();
        apply_quota_24(&mut q, "quota_storage_size", "2M").unwrap();
        apply_quota_24(&mut q, "quota_message_count", "7").unwrap();
        assert_eq!((q.bytes, q.messages), (Some(2 << 20), Some(7)));
        apply_quota_24(&mut q, "quota_storage_size", "0").unwrap();
        assert_eq!(q.bytes, None);
        assert!(apply_quota_24(&mut q, "quota_storage_size", "lots").is_err());
    }

    #[test]
    fn details() {
        assert_eq!(split_detail("alice+news", "+"), ("alice", Some("news")));
        assert_eq!(split_detail("alice-x+y", "+-"), ("alice", Some("x+y")));
        assert_eq!(split_detail("+x", "+"), ("+x", None));
        assert_eq!(split_detail("alice", "+"), ("alice", None));
        assert_eq!(split_detail("a+b", ""), ("a+b", None));
    }
}
