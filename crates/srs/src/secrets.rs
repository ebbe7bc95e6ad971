//! postsrsd's secrets file: one secret per line, the first signs, all verify.
//!
//! postsrsd (1.x `-s FILE`, 2.x `secrets-file`) reads the file with `fgets` into a 1024-byte
//! buffer, cuts each line at its line break, skips empty lines and keeps everything else byte
//! for byte, spaces included. It never looks at the file's mode: its installers create it
//! 0600 root (Debian's postinst does), and a daemon that reads it after dropping privileges
//! gets it handed over some other way. We read the same lines, but refuse what postsrsd would
//! read differently from us (over-long lines, NUL bytes, a carriage return inside a line), and
//! we refuse a file that other users can read or anyone but its owner can write: whoever reads
//! the secret can mint addresses that our reverse rewriting accepts, i.e. use us as a relay for
//! "bounces" to anywhere. Group read is allowed, so a file `root:pochta 0640` works for a
//! daemon that reads it after dropping to its own group.

use std::io::Read;
use std::path::Path;

use crate::hash::MAX_SECRET_LEN;

/// A secrets file is a few lines; anything bigger is not one.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// Reads postsrsd's secrets file. Errors name the file and the line, never the secret.
pub fn read_secrets(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot open SRS secrets file {shown}: {e}"))?;
    // The mode of the file we opened, not of whatever the path names a moment later.
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat SRS secrets file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("SRS secrets file {shown} is not a regular file"));
    }
    check_mode(&meta).map_err(|why| format!("SRS secrets file {shown} {why}"))?;
    let mut data = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read SRS secrets file {shown}: {e}"))?;
    if data.len() as u64 > MAX_FILE_LEN {
        return Err(format!(
            "SRS secrets file {shown} is larger than {MAX_FILE_LEN} bytes: not a secrets file"
        ));
    }
    let secrets = parse_secrets(&data).map_err(|why| format!("SRS secrets file {shown}: {why}"))?;
    Ok(secrets)
}

#[cfg(unix)]
fn check_mode(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "is accessible by other users (mode {mode:04o}): chmod o-rwx it (postsrsd's installers \
             create it 0600) and choose a new secret if it may have been read"
        ));
    }
    if mode & 0o020 != 0 {
        return Err(format!(
            "is writable by its group (mode {mode:04o}): chmod g-w it"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// The secrets in file order. A CRLF line ending counts as a line break.
pub(crate) fn parse_secrets(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut secrets = Vec::new();
    for (number, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let number = number + 1;
        if line.is_empty() {
            continue;
        }
        if line.contains(&b'\r') {
            // postsrsd 1.x and 2.x disagree on what such a line holds.
            return Err(format!("line {number} contains a carriage return"));
        }
        if line.contains(&0) {
            return Err(format!(
                "line {number} contains a NUL byte (postsrsd would cut the secret there)"
            ));
        }
        if line.len() > MAX_SECRET_LEN {
            return Err(format!(
                "line {number} is longer than {MAX_SECRET_LEN} bytes (postsrsd would read it as \
                 several secrets)"
            ));
        }
        secrets.push(line.to_vec());
    }
    if secrets.is_empty() {
        return Err("holds no secret (one secret per line, the first signs)".to_owned());
    }
    Ok(secrets)
}
