//! Byte cursor with the IMAP lexical primitives (RFC 9051 §9 formal syntax): atoms, quoted
//! strings, literals, astrings, numbers, dates. Total: every function returns an error instead
//! of panicking, whatever the input.

use crate::ParseError;

/// Position in one framed command.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

pub(crate) type PResult<T> = Result<T, ParseError>;

pub(crate) fn err<T>(msg: &'static str) -> PResult<T> {
    Err(ParseError::new(msg))
}

/// atom-specials: `( ) { SP CTL % * " \ ]` (and 8-bit bytes, which are not CHAR).
pub(crate) fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// ASTRING-CHAR = ATOM-CHAR / resp-specials (`]`).
pub(crate) fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// list-char = ATOM-CHAR / list-wildcards / resp-specials.
fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.rest() == b"\r\n" || self.rest() == b"\n" || self.rest().is_empty()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn expect(&mut self, b: u8, msg: &'static str) -> PResult<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            err(msg)
        }
    }

    pub(crate) fn sp(&mut self) -> PResult<()> {
        self.expect(b' ', "Expected a space")
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Case-insensitive keyword followed by a non-atom byte.
    pub(crate) fn eat_word(&mut self, w: &str) -> bool {
        let r = self.rest();
        if r.len() >= w.len()
            && r[..w.len()].eq_ignore_ascii_case(w.as_bytes())
            && r.get(w.len())
                .is_none_or(|&b| !is_atom_char(b) || b == b'[')
        {
            self.pos += w.len();
            true
        } else {
            false
        }
    }

    pub(crate) fn end(&mut self) -> PResult<()> {
        if self.at_end() {
            self.pos = self.buf.len();
            Ok(())
        } else if self.peek() == Some(b' ') {
            err("Unexpected space")
        } else {
            err("Unexpected characters at the end of the command")
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    /// 1*ATOM-CHAR
    pub(crate) fn atom(&mut self) -> PResult<&'a str> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            if self.peek().is_some_and(|b| b >= 0x80) {
                return err("8-bit characters are not allowed here");
            }
            return err("Expected an atom");
        }
        // ATOM-CHAR is ASCII
        std::str::from_utf8(a).map_err(|_| ParseError::new("Expected an atom"))
    }

    pub(crate) fn number(&mut self) -> PResult<u32> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 10 {
            return err("Expected a number");
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or(ParseError::new("Number out of range"))
    }

    pub(crate) fn number64(&mut self) -> PResult<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 19 {
            return err("Expected a number");
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or(ParseError::new("Number out of range"))
    }

    pub(crate) fn nz_number(&mut self) -> PResult<u32> {
        match self.number()? {
            0 => err("Zero is not allowed here"),
            n => Ok(n),
        }
    }

    /// `"…"` with `\"` and `\\`; UTF-8 allowed (RFC 9051 / RFC 6855), no CR/LF/NUL.
    pub(crate) fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"', "Expected a quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') | Some(0) => {
                    return err("Unterminated quoted string")
                }
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return err("Invalid escape in quoted string"),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        if std::str::from_utf8(&out).is_err() {
            return err("Quoted string is not UTF-8");
        }
        Ok(out)
    }

    /// `{n}CRLF` / `{n+}CRLF` / `~{n}CRLF` then n bytes (the framer checked the sizes).
    /// Returns the bytes and whether it was a literal8.
    pub(crate) fn literal(&mut self) -> PResult<(Vec<u8>, bool)> {
        let binary = self.eat(b'~');
        self.expect(b'{', "Expected a literal")?;
        let n = self.number64()?;
        self.eat(b'+');
        self.expect(b'}', "Invalid literal")?;
        self.eat(b'\r');
        self.expect(b'\n', "Invalid literal")?;
        let n = usize::try_from(n).map_err(|_| ParseError::new("Literal too big"))?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return err("Literal shorter than announced");
        };
        let data = self.buf[self.pos..end].to_vec();
        self.pos = end;
        if !binary && data.contains(&0) {
            return err("NUL in a literal (use literal8)");
        }
        Ok((data, binary))
    }

    /// string = quoted / literal
    pub(crate) fn string(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal()?.0),
            _ => err("Expected a string"),
        }
    }

    /// astring = 1*ASTRING-CHAR / string
    pub(crate) fn astring(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            Some(b) if b >= 0x80 => err("8-bit characters are not allowed in atoms"),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    return err("Expected an astring");
                }
                Ok(a.to_vec())
            }
        }
    }

    /// astring as UTF-8 text.
    pub(crate) fn astring_utf8(&mut self) -> PResult<String> {
        String::from_utf8(self.astring()?).map_err(|_| ParseError::new("Not UTF-8"))
    }

    /// nstring = string / NIL
    pub(crate) fn nstring(&mut self) -> PResult<Option<Vec<u8>>> {
        if self.eat_word("NIL") {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// list-mailbox = 1*list-char / string
    pub(crate) fn list_mailbox(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            Some(b) if b >= 0x80 => err("8-bit characters are not allowed in atoms"),
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    return err("Expected a mailbox pattern");
                }
                Ok(a.to_vec())
            }
        }
    }

    /// date = date-text / DQUOTE date-text DQUOTE; returns days since 1970-01-01.
    pub(crate) fn date(&mut self) -> PResult<i64> {
        let q = self.eat(b'"');
        let day = self.number()?;
        self.expect(b'-', "Invalid date")?;
        let month = self.month()?;
        self.expect(b'-', "Invalid date")?;
        let year = self.number()?;
        if q {
            self.expect(b'"', "Invalid date")?;
        }
        valid_date(year, month, day)?;
        Ok(days_from_civil(i64::from(year), month, day))
    }

    fn month(&mut self) -> PResult<u32> {
        const M: [&str; 12] = [
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        for (i, m) in M.iter().enumerate() {
            let r = self.rest();
            if r.len() >= 3 && r[..3].eq_ignore_ascii_case(m.as_bytes()) {
                self.pos += 3;
                return Ok(i as u32 + 1);
            }
        }
        err("Invalid month")
    }

    /// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE;
    /// returns (unix seconds UTC, zone offset in seconds).
    pub(crate) fn date_time(&mut self) -> PResult<(i64, i32)> {
        self.expect(b'"', "Expected a date-time")?;
        self.eat(b' ');
        let day = self.number()?;
        self.expect(b'-', "Invalid date-time")?;
        let month = self.month()?;
        self.expect(b'-', "Invalid date-time")?;
        let year = self.number()?;
        self.sp()?;
        let h = self.two_digits()?;
        self.expect(b':', "Invalid time")?;
        let m = self.two_digits()?;
        self.expect(b':', "Invalid time")?;
        let s = self.two_digits()?;
        self.sp()?;
        let sign: i32 = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return err("Invalid zone"),
        };
        self.pos += 1;
        let zh = self.two_digits()?;
        let zm = self.two_digits()?;
        self.expect(b'"', "Invalid date-time")?;
        valid_date(year, month, day)?;
        if h > 23 || m > 59 || s > 60 || zh > 23 || zm > 59 {
            return err("Invalid time");
        }
        let zone = sign * (zh as i32 * 3600 + zm as i32 * 60);
        let local = days_from_civil(i64::from(year), month, day) * 86400
            + i64::from(h) * 3600
            + i64::from(m) * 60
            + i64::from(s);
        Ok((local - i64::from(zone), zone))
    }

    fn two_digits(&mut self) -> PResult<u32> {
        let r = self.rest();
        if r.len() >= 2 && r[0].is_ascii_digit() && r[1].is_ascii_digit() {
            self.pos += 2;
            Ok(u32::from(r[0] - b'0') * 10 + u32::from(r[1] - b'0'))
        } else {
            err("Expected two digits")
        }
    }
}

fn valid_date(year: u32, month: u32, day: u32) -> PResult<()> {
    if !(1..=9999).contains(&year) || day == 0 || day > days_in_month(year, month) {
        return err("Invalid date");
    }
    Ok(())
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
