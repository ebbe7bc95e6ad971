//! The systemd units in etc/systemd pass `systemd-analyze verify`.

use crate::config::daemon_bin;
use crate::harness::*;
use std::path::Path;
use std::process::Command;

#[test]
fn systemd_units_verify() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = TempDir::new("units");
    let mut units = Vec::new();
    for entry in std::fs::read_dir(root.join("etc/systemd")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut text = std::fs::read_to_string(&path).unwrap();
        // verify checks that ExecStart's binary exists; point it at the built one. Daemons not
        // built yet get an existing stand-in so the rest of the unit is still checked.
        for daemon in ["authd", "mda-lmtp", "mta", "pop3d", "imapd"] {
            let installed = format!("/usr/sbin/pochta-{daemon} ");
            let exe = bin_dir().join(format!("pochta-{daemon}"));
            let built = if exe.exists() {
                exe
            } else {
                daemon_bin("testd")
            };
            text = text.replace(&installed, &format!("{} ", built.display()));
        }
        std::fs::write(dir.join(&name), text).unwrap();
        units.push(dir.join(&name));
    }
    assert!(units.len() >= 10, "units missing: {units:?}");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze (Debian package systemd) is needed: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let version = Command::new("systemctl").arg("--version").output().unwrap();
    let version: u32 = String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    // systemd < 253 does not know Type=notify-reload yet; the units document the drop-in for it.
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !(version < 253 && l.ends_with("Failed to parse service type, ignoring: notify-reload"))
        })
        .collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}
