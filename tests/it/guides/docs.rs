//! Checks of the docs that need no daemon: the packaged units' writable paths, config keys.

use super::*;

/// The packaged unit etc/systemd/pochta-`daemon`.service (ProtectSystem=strict: read-only but
/// for its ReadWritePaths=), plus the guide's drop-in `dropin`, lets the daemon create every
/// UNIX socket and write every spool or mail directory that `config` (the guide's text, system
/// paths) names.
pub(super) fn assert_unit_allows(daemon: &str, config: &str, dropin: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let unit_path = root.join(format!("etc/systemd/pochta-{daemon}.service"));
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let writable: Vec<&str> = unit
        .lines()
        .chain(dropin.lines())
        .filter_map(|l| l.strip_prefix("ReadWritePaths="))
        .flat_map(str::split_whitespace)
        .collect();
    let doc: toml::Table = config.parse().unwrap();
    let mut needed = Vec::new();
    for l in doc
        .get("listener")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(a) = l.get("address").and_then(|v| v.as_str()) {
            if a.starts_with('/') {
                needed.push(Path::new(a).parent().unwrap().display().to_string());
            }
        }
    }
    for (table, key) in [
        ("queue", "dir"),
        ("delivery", "mail_location"),
        ("mail", "location"),
    ] {
        let v = doc
            .get(table)
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_str());
        if let Some(v) = v {
            let path = v.strip_prefix("maildir:").unwrap_or(v);
            let fixed = path.split('%').next().unwrap().trim_end_matches('/');
            needed.push(fixed.to_owned());
        }
    }
    for n in needed {
        let ok = writable
            .iter()
            .any(|w| n == *w || n.starts_with(&format!("{}/", w.trim_end_matches('/'))));
        assert!(
            ok,
            "pochta-{daemon} needs to write {n}, but {} (with the guide's drop-in) makes it \
             read-only: ReadWritePaths={writable:?}",
            unit_path.display()
        );
    }
}

/// Every "`[table] key`" the docs name is a key of some sample config in etc/ (where each key
/// is listed, commented out with its default when unset): the settings tables of upgrade.md and
/// the guides' prose cannot name keys that do not exist.
#[test]
fn docs_name_real_config_keys() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let samples: Vec<String> = std::fs::read_dir(root.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    // (table, key) as the samples have them: `key =` or `# key =` under `[table]`/`[[table]]`.
    let mut known = BTreeSet::new();
    for text in &samples {
        let mut table = String::new();
        for line in text.lines() {
            let l = line.trim_start_matches("# ").trim();
            if let Some(t) = l.strip_prefix('[').and_then(|t| t.split(']').next()) {
                if !l.contains('=') {
                    table = t.trim_matches(['[', ']']).to_owned();
                    continue;
                }
            }
            if let Some((k, _)) = l.split_once(" =") {
                if k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    known.insert((table.clone(), k.to_owned()));
                }
            }
        }
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for piece in text.split("`[").skip(1) {
            let Some((table, rest)) = piece.split_once("] ") else {
                continue;
            };
            let key: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let plain = |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            };
            if key.is_empty() || !plain(table) || table == "time" {
                continue;
            }
            assert!(
                known.contains(&(table.to_owned(), key.clone())),
                "{}: `[{table}] {key}` is not a key of any etc/*.toml",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} keys found in docs/");
}
