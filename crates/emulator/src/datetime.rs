//! Dates and datetimes in Salesforce's wire formats.
//!
//! The org stores a datetime as UTC milliseconds since the Unix epoch and a date as days since
//! the epoch: small, `Copy`, cheap to compare and index. This module converts them to and from
//! the text Salesforce uses: `2024-01-01T10:00:05.123+0000` on output (milliseconds, `+0000`
//! without a colon) and the ISO-8601 variants Salesforce accepts on input (`Z`, `+HH:MM`,
//! `+HHMM`, optional fractional seconds). Hand-written because the hot path formats two or
//! three timestamps per record on every query page.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats UTC milliseconds as Salesforce does: `2024-01-01T10:00:05.123+0000`.
pub fn format_datetime(millis: i64) -> String {
    let mut text = format_datetime_z(millis);
    text.truncate(text.len() - 1);
    text.push_str("+0000");
    text
}

/// Milliseconds since the epoch as Bulk API CSV writes datetimes: `2024-01-03T23:52:01.000Z`.
pub fn format_datetime_z(millis: i64) -> String {
    let days = millis.div_euclid(MS_PER_DAY);
    let ms_of_day = millis.rem_euclid(MS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// Formats a day count as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i64 = digits(text.get(0..4)?)?;
    let month: u32 = u32::try_from(digits(text.get(5..7)?)?).ok()?;
    let day: u32 = u32::try_from(digits(text.get(8..10)?)?).ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    i32::try_from(days_from_civil(year, month, day)).ok()
}

/// Parses an ISO-8601 datetime as Salesforce accepts it: `YYYY-MM-DDTHH:MM:SS`, optional
/// fraction (any number of digits, kept to milliseconds), then `Z`, `+HH:MM`, `+HHMM` or
/// `-HH:MM`. A missing offset is read as UTC, as Salesforce does for REST input.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let date = parse_date(text.get(0..10)?)?;
    let rest = text.get(10..)?;
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let b = rest.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let hour = digits(rest.get(0..2)?)?;
    let minute = digits(rest.get(3..5)?)?;
    let second = digits(rest.get(6..8)?)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut tail = rest.get(8..)?;
    let mut millis = 0;
    if let Some(fraction) = tail.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let kept = fraction.get(..len.min(3))?;
        millis = digits(kept)? * 10_i64.pow(3 - u32::try_from(kept.len()).ok()?);
        tail = fraction.get(len..)?;
    }
    let offset_minutes = parse_offset(tail)?;
    let local = i64::from(date) * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis;
    Some(local - offset_minutes * 60_000)
}

/// The days since the epoch of the UTC day a timestamp falls on.
pub fn date_of(millis: i64) -> i32 {
    i32::try_from(millis.div_euclid(MS_PER_DAY)).unwrap_or(i32::MAX)
}

fn parse_offset(tail: &str) -> Option<i64> {
    match tail {
        "" | "Z" | "z" => Some(0),
        _ => {
            let sign = match tail.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let body = tail.get(1..)?;
            let (h, m) = match body.len() {
                5 if body.as_bytes()[2] == b':' => (body.get(0..2)?, body.get(3..5)?),
                4 => (body.get(0..2)?, body.get(2..4)?),
                2 => (body.get(0..2)?, "00"),
                _ => return None,
            };
            let (h, m) = (digits(h)?, digits(m)?);
            if h > 18 || m > 59 {
                return None;
            }
            Some(sign * (h * 60 + m))
        }
    }
}

fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_salesforce() {
        assert_eq!(format_datetime(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            format_datetime(1_719_847_200_123),
            "2024-07-01T15:20:00.123+0000"
        );
        assert_eq!(format_date(19_723), "2024-01-01");
    }

    #[test]
    fn parses_every_accepted_offset_form() {
        let utc = parse_datetime("2024-07-01T15:20:00.123Z").unwrap();
        assert_eq!(utc, 1_719_847_200_123);
        assert_eq!(parse_datetime("2024-07-01T15:20:00.123+0000"), Some(utc));
        assert_eq!(parse_datetime("2024-07-01T17:20:00.123+02:00"), Some(utc));
        assert_eq!(parse_datetime("2024-07-01T15:20:00.123456Z"), Some(utc));
        assert_eq!(parse_datetime("2024-07-01T15:20:00Z"), Some(utc - 123));
        assert_eq!(parse_datetime("2024-07-01T08:20:00-07:00"), Some(utc - 123));
    }

    #[test]
    fn rejects_impossible_dates_and_times() {
        assert_eq!(parse_date("2023-02-29"), None);
        assert!(parse_date("2024-02-29").is_some());
        assert_eq!(parse_datetime("2024-07-01T24:00:00Z"), None);
        assert_eq!(parse_datetime("2024-07-01"), None);
        assert_eq!(parse_datetime("2024-07-01T10:00:00+25:00"), None);
    }

    #[test]
    fn civil_round_trips_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
