//! Dates and timestamps as scenario files write them (`2024-01-01`,
//! `2024-01-01 12:30:00`, `2024-01-01T12:30:00Z`), turned into the units
//! Postgres stores: days and microseconds since 2000-01-01 UTC.

use std::ops::RangeInclusive;

use super::limits;

/// Days from 1970-01-01 to 2000-01-01, the Postgres epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

/// Days since 1970-01-01 of a proleptic Gregorian date.
/// (Howard Hinnant's `days_from_civil`.)
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
/// (Howard Hinnant's `civil_from_days`.)
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// `YYYY-MM-DD` of days since 2000-01-01.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64 + PG_EPOCH_DAYS);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` of microseconds since 2000-01-01 UTC.
pub fn format_timestamp(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let of_day = micros.rem_euclid(86_400_000_000);
    let (s, us) = (of_day / 1_000_000, of_day % 1_000_000);
    format!("{}T{:02}:{:02}:{:02}.{us:06}Z", format_date(days as i32), s / 3600, s / 60 % 60, s % 60)
}

/// Days in month `m` of year `y` (proleptic Gregorian).
fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD` as (year, month, day), or why not: a day the calendar
/// has (2023-02-30 has none), in a year of `years`.
fn parse_date_part(s: &str, years: &RangeInclusive<i64>) -> Result<(i64, u32, u32), String> {
    let mut it = s.splitn(3, '-');
    let mut field = |what: &str| {
        let text = it.next().unwrap_or("");
        let digits = !text.is_empty() && text.len() <= 8 && text.bytes().all(|b| b.is_ascii_digit());
        if !digits {
            return Err(format!("invalid date `{s}`: expected YYYY-MM-DD ({what} `{text}`)"));
        }
        Ok(text.parse::<i64>().expect("digits"))
    };
    let (y, m, d) = (field("year")?, field("month")?, field("day")?);
    if !years.contains(&y) {
        return Err(format!("`{s}`: the year must be from {} to {}", years.start(), years.end()));
    }
    if !(1..=12).contains(&m) {
        return Err(format!("date `{s}`: there is no month {m}"));
    }
    let (m, d) = (m as u32, d as u32);
    if !(1..=days_in_month(y, m) as i64).contains(&i64::from(d)) {
        return Err(format!("date `{s}` does not exist: that month has {} days", days_in_month(y, m)));
    }
    Ok((y, m, d))
}

/// Days since 2000-01-01 of a `YYYY-MM-DD` date, in Postgres' range of
/// dates' years.
pub fn parse_date(s: &str) -> Result<i32, String> {
    let (y, m, d) = parse_date_part(s.trim(), &limits::DATE_YEARS)?;
    Ok((days_from_civil(y, m, d) - PG_EPOCH_DAYS) as i32)
}

/// Microseconds since 2000-01-01 00:00:00 UTC of a date or a date and time
/// (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]`, with `T` and a trailing `Z`
/// accepted). Times are taken as UTC.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let t = s.trim().trim_end_matches('Z');
    let bad = || format!("invalid timestamp `{s}`: expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS");
    let (date, time) = match t.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (t, None),
    };
    let (y, m, d) = parse_date_part(date, &limits::TIMESTAMP_YEARS)?;
    let mut micros_of_day = 0i64;
    if let Some(time) = time {
        let parts: Vec<&str> = time.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad());
        }
        let h: i64 = parts[0].parse().map_err(|_| bad())?;
        let mi: i64 = parts[1].parse().map_err(|_| bad())?;
        let se: f64 = parts.get(2).map_or(Ok(0.0), |p| p.parse()).map_err(|_| bad())?;
        if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0.0..60.0).contains(&se) {
            return Err(bad());
        }
        micros_of_day = (h * 3600 + mi * 60) * 1_000_000 + (se * 1e6) as i64;
    }
    Ok((days_from_civil(y, m, d) - PG_EPOCH_DAYS) * 86_400_000_000 + micros_of_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_epoch_is_zero() {
        assert_eq!(parse_date("2000-01-01").unwrap(), 0);
        assert_eq!(parse_timestamp("2000-01-01").unwrap(), 0);
    }

    #[test]
    fn formatting_inverts_parsing() {
        for d in ["1999-12-31", "2000-02-29", "2024-03-01", "2100-12-31"] {
            assert_eq!(format_date(parse_date(d).unwrap()), d);
        }
        let us = parse_timestamp("2024-02-29 23:59:58.5").unwrap();
        assert_eq!(format_timestamp(us), "2024-02-29T23:59:58.500000Z");
    }

    #[test]
    fn known_dates() {
        assert_eq!(parse_date("2000-03-01").unwrap(), 60); // 2000 is a leap year
        assert_eq!(parse_date("1999-12-31").unwrap(), -1);
        assert_eq!(parse_date("2024-01-01").unwrap(), 8766);
        assert_eq!(parse_timestamp("2000-01-02T01:00:30Z").unwrap(), (86_400 + 3600 + 30) * 1_000_000);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_date("2024-13-01").is_err());
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2024-01-01 25:00").is_err());
        assert!(parse_timestamp("2024-01-01 10:00:nan").is_err());
    }

    #[test]
    fn only_days_the_calendar_has() {
        assert!(parse_date("2023-02-30").unwrap_err().contains("does not exist"));
        assert!(parse_date("2023-02-29").is_err());
        assert!(parse_date("2024-02-29").is_ok(), "a leap year");
        assert!(parse_date("1900-02-29").is_err(), "not a leap year");
        assert!(parse_date("2000-02-29").is_ok());
        assert!(parse_date("2024-04-31").is_err());
        assert!(parse_timestamp("2023-02-30 10:00").unwrap_err().contains("does not exist"));
    }

    #[test]
    fn years_stay_within_postgres_range() {
        assert!(parse_timestamp("294276-12-31").is_ok());
        assert!(parse_timestamp("294277-01-01").unwrap_err().contains("year"));
        assert!(parse_timestamp("99999999-01-01").is_err());
        assert!(parse_date("5874897-12-31").is_ok());
        assert!(parse_date("99999999-01-01").is_err());
        assert!(parse_date("0000-01-01").is_err());
        assert!(parse_date("+2024-01-01").is_err());
    }
}
