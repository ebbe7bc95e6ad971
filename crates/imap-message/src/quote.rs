//! IMAP string output: quoted strings, literals, NIL, and the INTERNALDATE form.
//!
//! The choice between `"quoted"` and `{n}\r\n` literal follows Dovecot 2.3 so that our
//! responses are byte-identical to its: a literal for CR, LF, NUL or 8-bit bytes, and also
//! once a string needs a fifth `\` escape (a literal is then shorter).

/// After this many quoted-specials a literal is cheaper than escaping (Dovecot's rule).
const QUOTED_MAX_ESCAPES: usize = 4;

/// Appends `s` as an IMAP string: `"quoted"` when every byte is a plain TEXT-CHAR and at most
/// four need a backslash, otherwise a `{n}\r\n` literal (always for CR, LF, NUL, 8-bit).
pub fn imap_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut escapes = 0usize;
    for &b in s {
        let literal = match b {
            b'"' | b'\\' => {
                escapes += 1;
                escapes > QUOTED_MAX_ESCAPES
            }
            b'\r' | b'\n' | 0 => true,
            _ => b >= 0x80,
        };
        if literal {
            literal_into(out, s);
            return;
        }
    }
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Appends `NIL` for `None`, else [`imap_string`].
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => out.extend_from_slice(b"NIL"),
        Some(s) => imap_string(out, s),
    }
}

/// `{n}\r\n` followed by the bytes.
pub(crate) fn literal_into(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'{');
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(s);
}

/// Like [`nstring`], but line breaks inside `s` are removed first (a break not followed by
/// whitespace becomes one space): header values such as Date and Message-ID in ENVELOPE.
pub(crate) fn nstring_nolf(out: &mut Vec<u8>, s: Option<&[u8]>) {
    let Some(s) = s else {
        out.extend_from_slice(b"NIL");
        return;
    };
    if !s.iter().any(|&b| b == b'\r' || b == b'\n') {
        imap_string(out, s);
        return;
    }
    let mut v = Vec::with_capacity(s.len());
    for (i, &b) in s.iter().enumerate() {
        if b != b'\r' && b != b'\n' {
            v.push(b);
        } else if let Some(&next) = s.get(i + 1) {
            if next != b' ' && next != b'\t' && next != b'\r' && next != b'\n' {
                v.push(b' ');
            }
        }
    }
    imap_string(out, &v);
}

/// A string meant for people (Subject, display names): runs of whitespace become one space,
/// line breaks vanish, leading/trailing whitespace goes, NUL becomes 0x80; quoted when
/// nothing needed changing, otherwise a literal — Dovecot's rendering exactly.
pub(crate) fn string_for_humans(out: &mut Vec<u8>, src: &[u8]) {
    let mut remove = 0usize;
    let mut modify = false;
    let mut last_lwsp = true;
    let mut ws_prefix = true;
    for &b in src {
        match b {
            0 => {
                last_lwsp = false;
                modify = true;
            }
            b'\t' | b' ' | b'\r' => {
                if b != b' ' {
                    modify = true;
                }
                if last_lwsp {
                    modify = true;
                    remove += 1;
                }
                last_lwsp = true;
            }
            b'\n' => {
                remove += 1;
                modify = true;
            }
            b'"' | b'\\' => {
                modify = true;
                last_lwsp = false;
            }
            _ => {
                if b >= 0x80 {
                    modify = true;
                }
                last_lwsp = false;
            }
        }
        if !last_lwsp {
            ws_prefix = false;
        }
    }
    if last_lwsp && !src.is_empty() && !ws_prefix {
        modify = true;
        remove += 1;
    }
    if !modify {
        out.push(b'"');
        out.extend_from_slice(src);
        out.push(b'"');
        return;
    }
    if remove >= src.len() {
        out.extend_from_slice(b"\"\"");
        return;
    }
    let mut v = Vec::with_capacity(src.len() - remove);
    let mut last_lwsp = true;
    let mut ws_prefix = true;
    for &b in src {
        match b {
            0 => {
                v.push(0x80);
                last_lwsp = false;
            }
            b'\t' | b' ' | b'\r' => {
                if !last_lwsp {
                    v.push(b' ');
                }
                last_lwsp = true;
            }
            b'\n' => {}
            _ => {
                last_lwsp = false;
                v.push(b);
            }
        }
        if !last_lwsp {
            ws_prefix = false;
        }
    }
    if last_lwsp && !src.is_empty() && !ws_prefix {
        v.pop();
    }
    literal_into(out, &v);
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date (inverse of [`civil_from_days`]).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// INTERNALDATE text (without the quotes): `"17-Jul-1996 02:44:25 -0700"` — the wall-clock
/// time at `tz_offset_secs` east of UTC. The day is zero-padded (`07-Jul-…`) as Dovecot
/// writes it (RFC 3501 `date-day-fixed` also allows a space).
pub fn internal_date(unix_secs: i64, tz_offset_secs: i32) -> String {
    let local = unix_secs.saturating_add(i64::from(tz_offset_secs));
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let month = MONTHS.get(m as usize - 1).copied().unwrap_or("Jan");
    let sign = if tz_offset_secs < 0 { '-' } else { '+' };
    let off = tz_offset_secs.unsigned_abs() / 60;
    format!(
        "{d:02}-{month}-{y:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        off / 60,
        off % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn quoting() {
        assert_eq!(s(|o| imap_string(o, b"abc")), "\"abc\"");
        assert_eq!(s(|o| imap_string(o, b"a\"b\\")), "\"a\\\"b\\\\\"");
        assert_eq!(s(|o| imap_string(o, b"\"\"\"\"\"")), "{5}\r\n\"\"\"\"\"");
        assert_eq!(s(|o| imap_string(o, "ä".as_bytes())), "{2}\r\nä");
        assert_eq!(s(|o| imap_string(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(s(|o| nstring(o, None)), "NIL");
        assert_eq!(s(|o| imap_string(o, b"")), "\"\"");
    }

    #[test]
    fn humans() {
        assert_eq!(s(|o| string_for_humans(o, b"plain")), "\"plain\"");
        assert_eq!(s(|o| string_for_humans(o, b"  a \t b  ")), "{3}\r\na b");
        assert_eq!(s(|o| string_for_humans(o, b"   ")), "\"\"");
        assert_eq!(s(|o| string_for_humans(o, b"")), "\"\"");
    }

    #[test]
    fn dates() {
        assert_eq!(
            internal_date(837_596_665, -7 * 3600),
            "17-Jul-1996 02:44:25 -0700"
        );
        assert_eq!(internal_date(0, 0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(
            internal_date(1_700_000_000, 19_800),
            "15-Nov-2023 03:43:20 +0530"
        );
        for d in [-800_000i64, -1, 0, 59, 60, 789, 20_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
