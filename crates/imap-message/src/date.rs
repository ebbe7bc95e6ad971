//! RFC 5322 §3.3 date-time parsing, including the obsolete forms of §4.3: optional or
//! misplaced day names, two- and three-digit years, missing seconds, comments and folding
//! anywhere, alphabetic zones (UT, GMT, EST…, military letters → -0000), and a missing zone.

use crate::quote::days_from_civil;

fn month(w: &[u8]) -> Option<u32> {
    const M: [&[u8]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let w3 = w.get(..3)?;
    M.iter()
        .position(|m| m.eq_ignore_ascii_case(w3))
        .map(|i| i as u32 + 1)
}

fn zone_name(w: &[u8]) -> Option<i32> {
    let z: &[(&[u8], i32)] = &[
        (b"UT", 0),
        (b"UTC", 0),
        (b"GMT", 0),
        (b"Z", 0),
        (b"EST", -5),
        (b"EDT", -4),
        (b"CST", -6),
        (b"CDT", -5),
        (b"MST", -7),
        (b"MDT", -6),
        (b"PST", -8),
        (b"PDT", -7),
    ];
    if let Some((_, h)) = z.iter().find(|(n, _)| n.eq_ignore_ascii_case(w)) {
        return Some(h * 3600);
    }
    // Military zones: RFC 5322 says treat as -0000 (their meaning was botched in RFC 822).
    (w.len() == 1 && w[0].is_ascii_alphabetic()).then_some(0)
}

/// Tokens of a date: words and numbers, with comments, commas and folding removed; `:`
/// separated times kept together, signs kept on zone numbers.
fn tokens(v: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut depth = 0usize;
    while i < v.len() && out.len() < 16 {
        let b = v[i];
        if depth > 0 {
            match b {
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'\\' => i += 1,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'(' => {
                depth = 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b'\n' | b',' => i += 1,
            _ => {
                let start = i;
                i += 1;
                while i < v.len() && !matches!(v[i], b' ' | b'\t' | b'\r' | b'\n' | b',' | b'(') {
                    // "+0200" after a time without a space: split at the sign.
                    if (v[i] == b'+' || v[i] == b'-') && v[start].is_ascii_digit() {
                        break;
                    }
                    i += 1;
                }
                out.push(&v[start..i]);
            }
        }
    }
    out
}

fn num(w: &[u8]) -> Option<i64> {
    if w.is_empty() || w.len() > 9 || !w.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(w).ok()?.parse().ok()
}

/// Parses a Date: value: `(seconds since the epoch in UTC, zone offset in seconds east)`.
pub(crate) fn parse(v: &[u8]) -> Option<(i64, i32)> {
    let t = tokens(v);
    let mut it = t.iter().copied().peekable();
    // Optional day of week (also "Mon," glued forms were split at the comma).
    if let Some(w) = it.peek() {
        if w.first().is_some_and(u8::is_ascii_alphabetic) && month(w).is_none() {
            it.next();
        }
    }
    let a = it.next()?;
    let b = it.next()?;
    // day month or month day (seen in the wild).
    let (day, mon) = match (num(a), month(b)) {
        (Some(d), Some(m)) => (d, m),
        _ => (num(b)?, month(a)?),
    };
    let y = it.next()?;
    let mut year = num(y)?;
    year = match y.len() {
        1 | 2 if year < 50 => 2000 + year,
        1 | 2 => 1900 + year,
        3 => 1900 + year,
        _ => year,
    };
    let time = it.next()?;
    let mut parts = time.split(|&b| b == b':');
    let hh = num(parts.next()?)?;
    let mm = num(parts.next()?)?;
    let ss = match parts.next() {
        Some(s) => num(s)?,
        None => 0,
    };
    if !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let zone = match it.next() {
        None => 0,
        Some(z) => match z.first() {
            Some(&s @ (b'+' | b'-')) if z.len() == 5 => {
                let n = num(&z[1..])?;
                let secs = ((n / 100) * 3600 + (n % 100) * 60) as i32;
                if s == b'-' {
                    -secs
                } else {
                    secs
                }
            }
            _ => zone_name(z).unwrap_or(0),
        },
    };
    let days = days_from_civil(year, mon, day as u32);
    let local = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some((local - i64::from(zone), zone))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn forms() {
        assert_eq!(
            parse(b"Wed, 17 Jul 1996 02:44:25 -0700"),
            Some((837_596_665, -25_200))
        );
        assert_eq!(parse(b"17 Jul 96 09:44:25 GMT"), Some((837_596_665, 0)));
        assert_eq!(
            parse(b"Wed (x), 17 Jul 1996 02:44 (c) -0700"),
            Some((837_596_640, -25_200))
        );
        assert_eq!(parse(b"17 Jul 1996 09:44:25"), Some((837_596_665, 0)));
        assert_eq!(parse(b"Thu, 1 Jan 1970 00:00:00 +0000"), Some((0, 0)));
        assert_eq!(parse(b"garbage"), None);
    }
}
