//! Every sample config parses, and an unknown key injected into any table is rejected with
//! `file:line:col` naming the key (hickory's TableMutator idea), through the daemon's own
//! `--check-config`.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const BOGUS: &str = "pochta_bogus_key";

/// The built binary `pochta-<name>` next to the test binary's target dir.
pub fn daemon_bin(name: &str) -> PathBuf {
    if name == "testd" {
        return testd();
    }
    let bin = bin_dir().join(format!("pochta-{name}"));
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (./run-tests does)",
        bin.display()
    );
    bin
}

/// (sample file, daemon name) for every sample we ship.
fn samples() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut out = vec![(root.join("tests/fixtures/testd.toml"), "testd".to_owned())];
    for entry in std::fs::read_dir(root.join("etc")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((path, name));
        }
    }
    out
}

fn check(bin: &Path, file: &Path) -> (Option<i32>, String) {
    let out = Command::new(bin)
        .arg("--check-config")
        .arg("-c")
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Paths (table keys and array indexes) of every table in the document.
fn table_paths(v: &toml::Table, prefix: Vec<PathPart>, out: &mut Vec<Vec<PathPart>>) {
    out.push(prefix.clone());
    for (k, v) in v {
        match v {
            toml::Value::Table(t) => {
                let mut p = prefix.clone();
                p.push(PathPart::Key(k.clone()));
                table_paths(t, p, out);
            }
            toml::Value::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    if let toml::Value::Table(t) = item {
                        let mut p = prefix.clone();
                        p.push(PathPart::Key(k.clone()));
                        p.push(PathPart::Index(i));
                        table_paths(t, p, out);
                    }
                }
            }
            _ => {}
        }
    }
}

#[derive(Clone, Debug)]
enum PathPart {
    Key(String),
    Index(usize),
}

fn table_at<'a>(mut t: &'a mut toml::Table, path: &[PathPart]) -> &'a mut toml::Table {
    let mut i = 0;
    while i < path.len() {
        let PathPart::Key(k) = &path[i] else {
            unreachable!()
        };
        t = match t.get_mut(k).unwrap() {
            toml::Value::Table(inner) => {
                i += 1;
                inner
            }
            toml::Value::Array(a) => {
                let PathPart::Index(n) = path[i + 1] else {
                    unreachable!()
                };
                i += 2;
                a[n].as_table_mut().unwrap()
            }
            _ => unreachable!(),
        };
    }
    t
}

#[test]
fn samples_parse_and_reject_unknown_keys_everywhere() {
    let dir = TempDir::new("samples");
    let mut checked_tables = 0;
    for (sample, name) in samples() {
        // A sample whose daemon is not built is a failure, never a skip.
        let bin = if name == "testd" {
            testd()
        } else {
            bin_dir().join(format!("pochta-{name}"))
        };
        assert!(
            bin.exists(),
            "{} is checked by {}, which is not built: run `cargo build --workspace --bins` \
             first (./run-tests does), or name the sample after its daemon (etc/<daemon>.toml \
             for pochta-<daemon>)",
            sample.display(),
            bin.display()
        );
        let (code, err) = check(&bin, &sample);
        // Sample certificate paths may not exist on a build machine; everything else must pass.
        assert!(
            code == Some(0) || (code == Some(78) && err.contains("tls.")),
            "{}: --check-config failed: {err}",
            sample.display()
        );
        let text = std::fs::read_to_string(&sample).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let mut paths = Vec::new();
        table_paths(&doc, Vec::new(), &mut paths);
        for path in paths {
            let mut mutated = doc.clone();
            table_at(&mut mutated, &path).insert(BOGUS.to_owned(), toml::Value::Integer(1));
            let text = toml::to_string(&mutated).unwrap();
            let file = dir.join(&format!("{name}-mutated.toml"));
            std::fs::write(&file, &text).unwrap();
            let line = text.lines().position(|l| l.starts_with(BOGUS)).unwrap() + 1;
            let (code, err) = check(&bin, &file);
            assert_eq!(
                code,
                Some(78),
                "{} with {BOGUS} in {path:?}: not rejected: {err}",
                sample.display()
            );
            let want = format!("{}:{line}:1: unknown field `{BOGUS}`", file.display());
            assert!(
                err.contains(&want),
                "{} {path:?}: expected {want:?} in {err:?}",
                sample.display()
            );
            checked_tables += 1;
        }
    }
    // testd's sample alone has the root, [server], [tls] and two [[listener]] tables.
    assert!(checked_tables >= 5, "only {checked_tables} tables checked");
}
