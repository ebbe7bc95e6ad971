//! Dovecot-style variable expansion for userdb templates: `/var/mail/%d/%n` or
//! `/var/mail/%{domain}/%{username}`. `%u` full user, `%n` local part, `%d` domain, `%%` a percent
//! sign. Expanded values must not escape the intended directory: a user name with `/` or a `..`
//! component never reaches here (see `username`), and the expansion refuses them again.

/// Expands `template` for `user`; `Err` names an unknown variable or an unsafe value.
pub(crate) fn expand(template: &str, user: &str) -> Result<String, String> {
    let (local, domain) = match user.rsplit_once('@') {
        Some((l, d)) => (l, d),
        None => (user, ""),
    };
    for part in [local, domain] {
        if part.contains('/') || part == ".." || part == "." || part.contains('\0') {
            return Err(format!("user name {user:?} is not safe in a path"));
        }
    }
    let mut out = String::with_capacity(template.len() + user.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let var: String = match chars.next() {
            Some('{') => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => return Err(format!("unclosed %{{ in {template:?}")),
                    }
                }
                name
            }
            Some(ch) => ch.to_string(),
            None => return Err(format!("trailing % in {template:?}")),
        };
        match var.as_str() {
            "%" => out.push('%'),
            "u" | "user" => out.push_str(user),
            "n" | "username" => out.push_str(local),
            "d" | "domain" => out.push_str(domain),
            other => {
                return Err(format!(
                    "unknown variable %{other} in {template:?} (use %u, %n, %d)"
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands() {
        assert_eq!(
            expand("/var/mail/%d/%n", "alice@example.org").unwrap(),
            "/var/mail/example.org/alice"
        );
        assert_eq!(
            expand("/m/%{domain}/%{username}/%%", "bob@x.test").unwrap(),
            "/m/x.test/bob/%"
        );
        assert_eq!(expand("/home/%u", "carol").unwrap(), "/home/carol");
        assert!(expand("/m/%x", "a@b").is_err());
        assert!(expand("/m/%d/%n", "../..@x").is_err());
        assert!(expand("/m/%d/%n", "a@b/c").is_err());
    }
}
