//! Reading table files: size limits, the owner (for delivery rights), and Postfix's logical
//! lines (util/readlline.c).

use crate::TableError;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Largest table or `:include:` file read.
pub(crate) const MAX_FILE_BYTES: u64 = 64 << 20;
/// Longest logical line (a long continued alias is still far below this).
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// Who owns a file, and what Postfix's local(8) makes of it: a root-owned file gives the
/// default rights; otherwise the owner's passwd entry gives uid, gid and home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Root,
    User {
        uid: u32,
        gid: u32,
        home: PathBuf,
    },
    /// No passwd entry for this uid: Postfix defers every alias found in such a file.
    Unknown {
        uid: u32,
    },
}

impl Owner {
    pub(crate) fn of_uid(uid: u32) -> Owner {
        if uid == 0 {
            return Owner::Root;
        }
        match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(u)) => Owner::User {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                home: u.dir,
            },
            _ => Owner::Unknown { uid },
        }
    }
}

pub(crate) struct FileText {
    pub(crate) uid: u32,
    pub(crate) mode: u32,
    pub(crate) bytes: Vec<u8>,
}

pub(crate) fn error(file: &Path, line: usize, message: impl Into<String>) -> TableError {
    TableError {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

/// Reads a whole regular file of at most [`MAX_FILE_BYTES`].
pub(crate) fn read(path: &Path) -> Result<FileText, TableError> {
    let f = std::fs::File::open(path).map_err(|e| error(path, 0, format!("cannot open: {e}")))?;
    let meta = f
        .metadata()
        .map_err(|e| error(path, 0, format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(error(path, 0, "not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(error(
            path,
            0,
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(path, 0, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(error(
            path,
            0,
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    Ok(FileText {
        uid: meta.uid(),
        mode: meta.mode(),
        bytes,
    })
}

/// One logical line and the number of its first physical line.
pub(crate) struct LogicalLine {
    pub(crate) line: usize,
    pub(crate) text: String,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// readllines(): blank lines and lines whose first non-blank is `#` are skipped (they do not
/// end a logical line); a line starting with white space continues the logical line (joined
/// without the newline). Like Postfix with smtputf8 on, a line that is not UTF-8 is ignored
/// with a warning; text after a NUL byte is ignored with a warning (C strings end there).
pub(crate) fn logical_lines(
    path: &Path,
    bytes: &[u8],
    warnings: &mut Vec<TableError>,
    errors: &mut Vec<TableError>,
) -> Vec<LogicalLine> {
    let mut raw: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut lineno = 0;
    let mut physical = bytes.split(|&b| b == b'\n').peekable();
    while let Some(line) = physical.next() {
        if physical.peek().is_none() && line.is_empty() {
            break;
        }
        lineno += 1;
        let first = line.iter().position(|&b| !is_space(b));
        match first {
            None => continue,
            Some(i) if line[i] == b'#' => continue,
            _ => {}
        }
        if is_space(line[0]) {
            if let Some((_, cur)) = raw.last_mut() {
                if cur.len() <= MAX_LINE_BYTES {
                    cur.extend_from_slice(line);
                }
                continue;
            }
            warnings.push(error(
                path,
                lineno,
                "logical line must not start with whitespace: ignored",
            ));
            continue;
        }
        raw.push((lineno, line.to_vec()));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (line, mut text) in raw {
        if text.len() > MAX_LINE_BYTES {
            errors.push(error(
                path,
                line,
                format!("logical line is longer than {MAX_LINE_BYTES} bytes"),
            ));
            continue;
        }
        if let Some(nul) = text.iter().position(|&b| b == 0) {
            warnings.push(error(path, line, "text after null byte is ignored"));
            text.truncate(nul);
        }
        match String::from_utf8(text) {
            Ok(text) => out.push(LogicalLine { line, text }),
            Err(_) => warnings.push(error(path, line, "non-UTF-8 input: ignoring this line")),
        }
    }
    out
}
