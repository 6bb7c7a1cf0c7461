//! Points in time with millisecond precision, and the two text forms the
//! protocol needs: ASN.1 GeneralizedTime (§4.4) and RFC 3339 (`--since`,
//! client output).

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z, limited to years 0000–9999.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    bincode::Encode,
    bincode::Decode,
)]
pub struct Timestamp(i64);

/// Why a time text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError {
    /// The text that was refused.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid time {:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for TimeError {}

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year, 0–9999.
    pub year: i64,
    /// Month, 1–12.
    pub month: i64,
    /// Day of month, 1–31.
    pub day: i64,
    /// Hour, 0–23.
    pub hour: i64,
    /// Minute, 0–59.
    pub minute: i64,
    /// Second, 0–59.
    pub second: i64,
    /// Millisecond, 0–999.
    pub millis: i64,
}

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From milliseconds since the epoch.
    pub fn from_unix_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// The current time.
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// Builds a timestamp from a validated UTC date and time, shifted by
    /// `offset_minutes` east of UTC.
    pub fn from_civil(c: Civil, offset_minutes: i64) -> Option<Timestamp> {
        let valid = (0..=9999).contains(&c.year)
            && (1..=12).contains(&c.month)
            && c.day >= 1
            && c.day <= days_in_month(c.year, c.month)
            && (0..24).contains(&c.hour)
            && (0..60).contains(&c.minute)
            && (0..60).contains(&c.second)
            && (0..1000).contains(&c.millis);
        if !valid {
            return None;
        }
        let days = days_from_civil(c.year, c.month, c.day);
        let ms = days * MS_PER_DAY
            + ((c.hour * 60 + c.minute - offset_minutes) * 60 + c.second) * 1000
            + c.millis;
        Some(Timestamp(ms))
    }

    /// The UTC date and time.
    pub fn civil(self) -> Civil {
        let days = self.0.div_euclid(MS_PER_DAY);
        let rest = self.0.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: rest / 3_600_000,
            minute: rest / 60_000 % 60,
            second: rest / 1000 % 60,
            millis: rest % 1000,
        }
    }

    /// GeneralizedTime text as upstream encodes it: `YYYYMMDDHHMMSS`, then
    /// `.mmm` only when the milliseconds are non-zero, then `Z`.
    pub fn to_generalized(self) -> String {
        let c = self.civil();
        let mut s = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        );
        if c.millis != 0 {
            s.push_str(&format!(".{:03}", c.millis));
        }
        s.push('Z');
        s
    }

    /// Parses GeneralizedTime leniently, as upstream does (§4.4):
    /// `YYYYMMDDHH[MM[SS]][.f{1,3}][Z|±HHMM]`, the fraction read as an
    /// integer count of milliseconds.
    pub fn parse_generalized(text: &[u8]) -> Result<Timestamp, TimeError> {
        let err = |reason| TimeError {
            text: String::from_utf8_lossy(text).into_owned(),
            reason,
        };
        let mut p = Digits { s: text, pos: 0 };
        let year = p.take(4).ok_or_else(|| err("expected YYYYMMDDHH"))?;
        let month = p.take(2).ok_or_else(|| err("expected YYYYMMDDHH"))?;
        let day = p.take(2).ok_or_else(|| err("expected YYYYMMDDHH"))?;
        let hour = p.take(2).ok_or_else(|| err("expected YYYYMMDDHH"))?;
        let minute = p.take(2).unwrap_or(0);
        let second = if p.pos == 12 {
            p.take(2).unwrap_or(0)
        } else {
            0
        };
        let mut millis = 0;
        if p.peek() == Some(b'.') {
            p.pos += 1;
            let start = p.pos;
            while p.pos - start < 3 && p.peek().is_some_and(|b| b.is_ascii_digit()) {
                millis = millis * 10 + i64::from(text[p.pos] - b'0');
                p.pos += 1;
            }
            if p.pos == start {
                return Err(err("expected digits after '.'"));
            }
        }
        let offset = match p.peek() {
            None => 0,
            Some(b'Z') => {
                p.pos += 1;
                0
            }
            Some(b'+' | b'-') => p.zone_offset(None).map_err(err)?,
            Some(_) => return Err(err("unexpected character")),
        };
        if p.pos != text.len() {
            return Err(err("trailing characters"));
        }
        let civil = Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millis,
        };
        Timestamp::from_civil(civil, offset).ok_or_else(|| err("no such date or time"))
    }

    /// Parses RFC 3339 (`2025-08-22T13:04:43.123+02:00`, `z`/`t` in either
    /// case, a space allowed for `T`), or a bare date `YYYY-MM-DD` meaning
    /// midnight UTC. Fractions beyond milliseconds are cut.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimeError> {
        let err = |reason| TimeError {
            text: text.to_string(),
            reason,
        };
        let b = text.as_bytes();
        let mut p = Digits { s: b, pos: 0 };
        let field = |p: &mut Digits, n, sep: Option<u8>| -> Result<i64, TimeError> {
            let v = p
                .take(n)
                .ok_or_else(|| err("expected YYYY-MM-DDTHH:MM:SS and a zone"))?;
            if let Some(sep) = sep {
                if p.peek() != Some(sep) {
                    return Err(err("expected YYYY-MM-DDTHH:MM:SS and a zone"));
                }
                p.pos += 1;
            }
            Ok(v)
        };
        let year = field(&mut p, 4, Some(b'-'))?;
        let month = field(&mut p, 2, Some(b'-'))?;
        let day = field(&mut p, 2, None)?;
        if p.pos == b.len() {
            let civil = Civil {
                year,
                month,
                day,
                hour: 0,
                minute: 0,
                second: 0,
                millis: 0,
            };
            return Timestamp::from_civil(civil, 0).ok_or_else(|| err("no such date"));
        }
        if !matches!(p.peek(), Some(b'T' | b't' | b' ')) {
            return Err(err("expected 'T' after the date"));
        }
        p.pos += 1;
        let hour = field(&mut p, 2, Some(b':'))?;
        let minute = field(&mut p, 2, Some(b':'))?;
        let second = field(&mut p, 2, None)?;
        let mut millis = 0;
        if p.peek() == Some(b'.') {
            p.pos += 1;
            let start = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                if p.pos - start < 3 {
                    millis = millis * 10 + i64::from(b[p.pos] - b'0');
                }
                p.pos += 1;
            }
            match p.pos - start {
                0 => return Err(err("expected digits after '.'")),
                1 => millis *= 100,
                2 => millis *= 10,
                _ => {}
            }
        }
        let offset = match p.peek() {
            Some(b'Z' | b'z') => {
                p.pos += 1;
                0
            }
            Some(b'+' | b'-') => p.zone_offset(Some(b':')).map_err(err)?,
            _ => return Err(err("missing time zone (Z or ±HH:MM)")),
        };
        if p.pos != b.len() {
            return Err(err("trailing characters"));
        }
        let civil = Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millis,
        };
        Timestamp::from_civil(civil, offset).ok_or_else(|| err("no such date or time"))
    }

    /// RFC 3339 in UTC as upstream's client prints it: seconds precision
    /// and the `-00:00` zone.
    pub fn to_rfc3339(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}-00:00",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

struct Digits<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Digits<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// A zone offset `±HH` `sep` `MM` in minutes east of UTC; the cursor is
    /// on the sign.
    fn zone_offset(&mut self, sep: Option<u8>) -> Result<i64, &'static str> {
        const EXPECTED: &str = "expected a zone offset ±HHMM or ±HH:MM";
        let negative = self.peek() == Some(b'-');
        self.pos += 1;
        let hh = self.take(2).ok_or(EXPECTED)?;
        if let Some(sep) = sep {
            if self.peek() != Some(sep) {
                return Err(EXPECTED);
            }
            self.pos += 1;
        }
        let mm = self.take(2).ok_or(EXPECTED)?;
        if hh > 23 || mm > 59 {
            return Err("zone offset out of range");
        }
        Ok(if negative {
            -(hh * 60 + mm)
        } else {
            hh * 60 + mm
        })
    }

    /// Exactly `n` ASCII digits as a number, or `None` (position unchanged).
    fn take(&mut self, n: usize) -> Option<i64> {
        let digits = self.s.get(self.pos..self.pos + n)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.pos += n;
        Some(
            digits
                .iter()
                .fold(0, |acc, d| acc * 10 + i64::from(d - b'0')),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_round_trip() {
        let t = Timestamp::parse_generalized(b"20250822130443.123Z").unwrap();
        assert_eq!(t.to_generalized(), "20250822130443.123Z");
        let t = Timestamp::parse_generalized(b"20250101000000Z").unwrap();
        assert_eq!(t.to_generalized(), "20250101000000Z");
        assert_eq!(t.unix_millis(), 1_735_689_600_000);
        assert_eq!(Timestamp::EPOCH.to_generalized(), "19700101000000Z");
    }

    #[test]
    fn generalized_lenient() {
        let t = |s: &str| Timestamp::parse_generalized(s.as_bytes()).map(|t| t.to_generalized());
        assert_eq!(t("2025010112").unwrap(), "20250101120000Z");
        assert_eq!(t("202501011230").unwrap(), "20250101123000Z");
        assert_eq!(t("20250101123059.5").unwrap(), "20250101123059.005Z");
        assert_eq!(t("20250101123059+0100").unwrap(), "20250101113059Z");
        assert_eq!(t("20250101003059-0130").unwrap(), "20250101020059Z");
        assert!(t("20250230000000Z").is_err());
        assert!(t("2025013100000").is_err());
        assert!(t("20250131000000ZZ").is_err());
        assert!(t("20250131000000.").is_err());
    }

    #[test]
    fn rfc3339() {
        let t = |s| Timestamp::parse_rfc3339(s).map(|t| t.to_generalized());
        assert_eq!(t("2025-08-22").unwrap(), "20250822000000Z");
        assert_eq!(
            t("2025-08-22T13:04:43.123456+02:00").unwrap(),
            "20250822110443.123Z"
        );
        assert_eq!(t("2025-08-22T13:04:43.5Z").unwrap(), "20250822130443.500Z");
        assert_eq!(t("2025-08-22t13:04:43-00:00").unwrap(), "20250822130443Z");
        assert!(t("2025-08-22T13:04:43").is_err());
        assert!(t("2025-02-30").is_err());
        assert!(t("yesterday").is_err());
        let now = Timestamp::parse_rfc3339("2025-08-22T13:04:43Z").unwrap();
        assert_eq!(now.to_rfc3339(), "2025-08-22T13:04:43-00:00");
    }

    #[test]
    fn civil_round_trip() {
        for ms in [
            -62_167_219_200_000i64,
            -1,
            0,
            1,
            951_782_400_000,
            253_402_300_799_999,
        ] {
            let t = Timestamp(ms);
            assert_eq!(Timestamp::from_civil(t.civil(), 0), Some(t));
        }
    }
}
