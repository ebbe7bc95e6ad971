//! Arbitrary aliases(5), virtual(5) and regexp_table(5) text plus an address: loading,
//! expanding, the audit and one-level lookups never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_aliases::{Aliases, Settings};
use std::path::PathBuf;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("pochta-aliases-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fuzz_target!(|data: &[u8]| {
    // Four parts separated by 0xff bytes: aliases, virtual, regexp, address.
    let mut parts = data.split(|&b| b == 0xff);
    let aliases = parts.next().unwrap_or_default();
    let virt = parts.next().unwrap_or_default();
    let re = parts.next().unwrap_or_default();
    let address = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let d = dir();
    let (a, v, r) = (d.join("aliases"), d.join("virtual"), d.join("regexp"));
    std::fs::write(&a, aliases).expect("write");
    std::fs::write(&v, virt).expect("write");
    std::fs::write(&r, re).expect("write");
    let settings = Settings {
        alias_maps: vec![a],
        virtual_alias_maps: vec![v.display().to_string(), format!("regexp:{}", r.display())],
        myorigin: "example.org".into(),
        alias_domains: vec!["example.org".into()],
        recipient_delimiter: "+-".into(),
        recursion_limit: 30,
        expansion_limit: 100,
        ..Settings::default()
    };
    let Ok(tables) = Aliases::load(settings) else {
        return;
    };
    let _ = tables.expand(&address);
    let _ = tables.lookup_one(&address);
    let _ = tables.is_virtual_domain(&address);
    let _ = tables.check();
});
