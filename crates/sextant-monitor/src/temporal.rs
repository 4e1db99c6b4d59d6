//! Dates, times, timestamps and durations read from Parquet: their values
//! as integers on one scale (so they order and subtract as the instants
//! do), and their text as pandas prints them.

use arrow_schema::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

/// What a temporal column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstantKind {
    /// Calendar dates (`Date32`, `Date64`).
    Date,
    /// Points in time, `utc` when the column names a time zone (Arrow then
    /// stores UTC instants).
    Datetime { utc: bool },
    /// Times of day (`Time32`, `Time64`).
    Time,
    /// Lengths of time (`Duration`).
    Duration,
}

/// A temporal column's scale: `ticks_per_second` ticks since 1970-01-01
/// (dates and timestamps), since midnight (times) or since zero (durations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemporalScale {
    pub kind: InstantKind,
    pub ticks_per_second: i64,
}

/// A temporal column's values on its scale; rows without a value hold 0.
#[derive(Debug, Clone)]
pub struct Instants {
    pub scale: TemporalScale,
    pub ticks: Vec<i64>,
}

/// Seconds in a day: a `Date32` value counts days.
const SECONDS_PER_DAY: i64 = 86_400;

impl TemporalScale {
    /// The scale of an Arrow type, and by how much its stored integers are
    /// multiplied to reach it (only `Date32`'s days are rescaled); None
    /// for a type that is not temporal.
    pub fn of(data_type: &DataType) -> Option<(TemporalScale, i64)> {
        let per_second = |unit: &TimeUnit| match unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        };
        let scale = |kind, ticks_per_second| TemporalScale {
            kind,
            ticks_per_second,
        };
        Some(match data_type {
            DataType::Date32 => (scale(InstantKind::Date, 1), SECONDS_PER_DAY),
            DataType::Date64 => (scale(InstantKind::Date, 1_000), 1),
            DataType::Timestamp(unit, zone) => (
                scale(
                    InstantKind::Datetime {
                        utc: zone.is_some(),
                    },
                    per_second(unit),
                ),
                1,
            ),
            DataType::Time32(unit) | DataType::Time64(unit) => {
                (scale(InstantKind::Time, per_second(unit)), 1)
            }
            DataType::Duration(unit) => (scale(InstantKind::Duration, per_second(unit)), 1),
            _ => return None,
        })
    }

    /// The profile's name for the column's kind.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            InstantKind::Date => "date",
            InstantKind::Datetime { .. } => "datetime",
            InstantKind::Time => "time",
            InstantKind::Duration => "duration",
        }
    }

    /// `ticks` as pandas prints the value: `2026-01-31`,
    /// `2026-01-31 04:05:06.500000` (`+00:00` when the column has a time
    /// zone), `04:05:06`, `2 days 04:05:06`, `-1 days +23:59:59`.
    pub fn format(&self, ticks: i64) -> String {
        let seconds = ticks.div_euclid(self.ticks_per_second);
        let fraction = ticks.rem_euclid(self.ticks_per_second);
        let nanos = (fraction as i128 * 1_000_000_000 / self.ticks_per_second as i128) as u32;
        match self.kind {
            InstantKind::Date => {
                chrono::DateTime::from_timestamp(seconds, 0).map(|t| t.date_naive().to_string())
            }
            InstantKind::Datetime { utc } => {
                chrono::DateTime::from_timestamp(seconds, 0).map(|t| {
                    let zone = if utc { "+00:00" } else { "" };
                    format!(
                        "{}{}{zone}",
                        t.format("%Y-%m-%d %H:%M:%S"),
                        fraction_text(nanos)
                    )
                })
            }
            InstantKind::Time => (0..SECONDS_PER_DAY)
                .contains(&seconds)
                .then(|| format!("{}{}", clock_text(seconds), fraction_text(nanos))),
            InstantKind::Duration => {
                let days = seconds.div_euclid(SECONDS_PER_DAY);
                let sign = if days < 0 { "+" } else { "" };
                Some(format!(
                    "{days} days {sign}{}{}",
                    clock_text(seconds.rem_euclid(SECONDS_PER_DAY)),
                    fraction_text(nanos)
                ))
            }
        }
        // Out of chrono's range (years beyond ±262,143): the raw count.
        .unwrap_or_else(|| format!("{ticks} ticks of 1/{} s", self.ticks_per_second))
    }
}

impl TemporalScale {
    /// A bound written as pandas or ISO 8601 writes it, on this scale: a
    /// date (`2026-01-31`, its midnight) or a date and time
    /// (`2026-01-31 04:05:06.5`, `T` too, with an optional `Z` or
    /// `±HH:MM` offset; without one a zoned column reads it as UTC) for
    /// dates and timestamps, `04:05:06[.5]` for times of day, and for
    /// durations what `pandas.Timedelta` reads (see [`duration_nanos`]). A
    /// bound finer than the column's unit is cut to it.
    pub fn parse(&self, text: &str) -> Result<i64, String> {
        use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
        let text = text.trim();
        let nanos_to_ticks = |seconds: i64, nanos: u32| {
            seconds
                .checked_mul(self.ticks_per_second)
                .and_then(|t| {
                    t.checked_add(i64::from(nanos) * self.ticks_per_second / 1_000_000_000)
                })
                .ok_or_else(|| format!("'{text}' is out of the column's range"))
        };
        match self.kind {
            InstantKind::Date | InstantKind::Datetime { .. } => {
                let instant = if let Ok(zoned) = chrono::DateTime::parse_from_rfc3339(text) {
                    zoned.naive_utc()
                } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                    date.and_time(NaiveTime::MIN)
                } else {
                    [
                        "%Y-%m-%d %H:%M:%S%.f",
                        "%Y-%m-%dT%H:%M:%S%.f",
                        "%Y-%m-%d %H:%M",
                        "%Y-%m-%dT%H:%M",
                    ]
                    .iter()
                    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                    .ok_or_else(|| {
                        format!(
                            "'{text}' is not a date or a timestamp (2026-01-31, \
                                 2026-01-31 04:05:06, 2026-01-31T04:05:06Z)"
                        )
                    })?
                };
                let utc = instant.and_utc();
                nanos_to_ticks(utc.timestamp(), utc.timestamp_subsec_nanos())
            }
            InstantKind::Time => {
                let time = NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
                    .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
                    .map_err(|_| format!("'{text}' is not a time of day (04:05:06)"))?;
                nanos_to_ticks(
                    i64::from(time.num_seconds_from_midnight()),
                    time.nanosecond(),
                )
            }
            InstantKind::Duration => {
                let nanos = duration_nanos(text).map_err(|why| {
                    format!(
                        "'{text}' is not a duration ({why}; write e.g. '2 days 04:05:06', \
                         '90s', '1h30m' or 'PT1H30M')"
                    )
                })?;
                nanos
                    .checked_mul(i128::from(self.ticks_per_second))
                    .and_then(|scaled| i64::try_from(scaled / 1_000_000_000).ok())
                    .ok_or_else(|| format!("'{text}' is out of the column's range"))
            }
        }
    }
}

/// A length of time in nanoseconds, from the text `pandas.Timedelta`
/// reads: its own printing (`2 days 04:05:06.5`, `-1 days +23:59:59`,
/// `04:05:06`), amounts with units (`90s`, `1h30m`, `2 days`, `1.5 hours`,
/// `500ms`, `-3 min`), or ISO 8601 (`P2DT4H`, `PT30M`, `-PT1.5S`). As in
/// pandas, a leading minus negates every amount with a unit, and a clock
/// (`hh:mm:ss`) only when it comes first (`-1 days 23:59:59` is a second
/// short of zero); no other minus is allowed. Where pandas guesses, the text
/// is refused: a number without a unit (pandas counts nanoseconds) and ISO
/// 8601 months (`P1M`, a minute to pandas).
pub fn duration_nanos(text: &str) -> Result<i128, String> {
    let text = text.trim();
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'-') => (-1, text[1..].trim_start()),
        Some(b'+') => (1, text[1..].trim_start()),
        _ => (1, text),
    };
    if rest.starts_with(['P', 'p']) {
        return iso_duration_nanos(&rest[1..]).map(|n| sign * n);
    }
    let too_large = || format!("'{text}' is too large");
    let mut total: i128 = 0;
    let mut rest = rest;
    let mut amounts = 0;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let after_sign = match rest.as_bytes()[0] {
            b'-' => return Err("only a leading minus is allowed".into()),
            b'+' => rest[1..].trim_start(),
            _ => rest,
        };
        let (whole, fraction, after_number) = decimal(after_sign)?;
        rest = after_number.trim_start();
        let nanos = if let Some(clock) = rest.strip_prefix(':') {
            // hh:mm:ss[.f]: the number read was the hours.
            let (minutes, minute_fraction, after_minutes) = decimal(clock)?;
            let Some(seconds) = after_minutes.strip_prefix(':') else {
                return Err("a clock is hh:mm:ss".into());
            };
            if fraction.is_some() || minute_fraction.is_some() {
                return Err("a clock is hh:mm:ss".into());
            }
            let (seconds, fraction, after_seconds) = decimal(seconds)?;
            rest = after_seconds;
            let clock = whole
                .checked_mul(3_600)
                .and_then(|h| h.checked_add(minutes.checked_mul(60)?))
                .and_then(|s| s.checked_add(seconds))
                .and_then(|s| amount_nanos(s, fraction, NANOS_PER_SECOND))
                .ok_or_else(too_large)?;
            // A leading minus reaches a clock only when nothing precedes it.
            if amounts == 0 {
                sign * clock
            } else {
                clock
            }
        } else {
            let unit_length = rest
                .find(|c: char| !c.is_alphabetic())
                .unwrap_or(rest.len());
            let (unit, after_unit) = rest.split_at(unit_length);
            if unit.is_empty() {
                return Err(format!("'{}' has no unit", after_sign.trim()));
            }
            rest = after_unit;
            sign * amount_nanos(whole, fraction, unit_nanos(unit)?).ok_or_else(too_large)?
        };
        total = total.checked_add(nanos).ok_or_else(too_large)?;
        amounts += 1;
    }
    if amounts == 0 {
        return Err("it is empty".into());
    }
    Ok(total)
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// ISO 8601's `[nW][nD][T[nH][nM][nS]]`, after its `P`.
fn iso_duration_nanos(text: &str) -> Result<i128, String> {
    let mut total: i128 = 0;
    let mut in_time = false;
    let mut amounts = 0;
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(['T', 't']) {
            in_time = true;
            rest = after;
            continue;
        }
        let (whole, fraction, after) = decimal(rest)?;
        let designator = after
            .chars()
            .next()
            .ok_or("an ISO 8601 amount needs its letter")?;
        let unit = match (designator.to_ascii_uppercase(), in_time) {
            ('W', false) => 7 * 86_400 * NANOS_PER_SECOND,
            ('D', false) => 86_400 * NANOS_PER_SECOND,
            ('H', true) => 3_600 * NANOS_PER_SECOND,
            ('M', true) => 60 * NANOS_PER_SECOND,
            ('S', true) => NANOS_PER_SECOND,
            ('Y' | 'M', false) => return Err("years and months have no fixed length".into()),
            (other, _) => return Err(format!("'{other}' is not an ISO 8601 unit here")),
        };
        total = amount_nanos(whole, fraction, unit)
            .and_then(|nanos| total.checked_add(nanos))
            .ok_or("it is too large")?;
        amounts += 1;
        rest = &after[designator.len_utf8()..];
    }
    if amounts == 0 {
        return Err("'P' names no amount".into());
    }
    Ok(total)
}

/// A decimal number's whole part and fraction digits (up to nine are
/// kept), and the text after it.
fn decimal(text: &str) -> Result<(i128, Option<&str>, &str), String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (whole, rest) = text.split_at(digits);
    let (fraction, rest) = match rest.strip_prefix('.') {
        Some(after) => {
            let length = after.bytes().take_while(u8::is_ascii_digit).count();
            (Some(&after[..length]), &after[length..])
        }
        None => (None, rest),
    };
    if whole.is_empty() && fraction.is_none_or(str::is_empty) {
        return Err(format!("a number is missing before '{text}'"));
    }
    let whole = if whole.is_empty() {
        0
    } else {
        whole
            .parse::<i128>()
            .map_err(|_| format!("'{whole}' is too large"))?
    };
    Ok((whole, fraction, rest))
}

/// `whole.fraction` units of `unit` nanoseconds each, None when too large.
fn amount_nanos(whole: i128, fraction: Option<&str>, unit: i128) -> Option<i128> {
    let mut nanos = whole.checked_mul(unit)?;
    if let Some(digits) = fraction {
        // Eighteen digits are finer than any unit's nanosecond; more are cut.
        let kept = &digits[..digits.len().min(18)];
        if let Ok(numerator) = kept.parse::<i128>() {
            let part = numerator.checked_mul(unit)? / 10i128.pow(kept.len() as u32);
            nanos = nanos.checked_add(part)?;
        }
    }
    Some(nanos)
}

/// Nanoseconds in a unit as pandas spells it (`M` alone, months, has no
/// fixed length and is refused).
fn unit_nanos(unit: &str) -> Result<i128, String> {
    const SECOND: i128 = NANOS_PER_SECOND;
    if unit == "M" || unit == "Y" || unit == "y" {
        return Err(format!("'{unit}' has no fixed length"));
    }
    Ok(match unit.to_lowercase().as_str() {
        "w" | "week" | "weeks" => 7 * 86_400 * SECOND,
        "d" | "day" | "days" => 86_400 * SECOND,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600 * SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" | "t" => 60 * SECOND,
        "s" | "sec" | "secs" | "second" | "seconds" => SECOND,
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" | "l" => 1_000_000,
        "us" | "µs" | "μs" | "micro" | "micros" | "microsecond" | "microseconds" | "u" => 1_000,
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" | "n" => 1,
        _ => return Err(format!("'{unit}' is not a unit of time")),
    })
}

/// `HH:MM:SS` of a second within a day.
fn clock_text(second_of_day: i64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// pandas' fraction of a second: none when whole, six digits when whole
/// microseconds, else nine.
fn fraction_text(nanos: u32) -> String {
    match nanos {
        0 => String::new(),
        _ if nanos % 1_000 == 0 => format!(".{:06}", nanos / 1_000),
        _ => format!(".{nanos:09}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_pandas_prints_them() {
        // Each expected text is `str()` of the pandas or datetime value.
        let (date, days_to_seconds) = TemporalScale::of(&DataType::Date32).unwrap();
        assert_eq!(date.format(20_454 * days_to_seconds), "2026-01-01");
        let (micros, _) =
            TemporalScale::of(&DataType::Timestamp(TimeUnit::Microsecond, None)).unwrap();
        assert_eq!(
            micros.format(1_767_225_600_500_000),
            "2026-01-01 00:00:00.500000"
        );
        assert_eq!(micros.format(-1), "1969-12-31 23:59:59.999999");
        let (nanos, _) =
            TemporalScale::of(&DataType::Timestamp(TimeUnit::Nanosecond, None)).unwrap();
        assert_eq!(
            nanos.format(1_767_225_600_000_000_001),
            "2026-01-01 00:00:00.000000001"
        );
        let (zoned, _) = TemporalScale::of(&DataType::Timestamp(
            TimeUnit::Second,
            Some("Europe/Paris".into()),
        ))
        .unwrap();
        assert_eq!(zoned.format(0), "1970-01-01 00:00:00+00:00");
        let (time, _) = TemporalScale::of(&DataType::Time64(TimeUnit::Nanosecond)).unwrap();
        assert_eq!(time.format(3_723_000_000_000), "01:02:03");
        assert_eq!(time.format(3_723_250_000_000), "01:02:03.250000");
        let (duration, _) = TemporalScale::of(&DataType::Duration(TimeUnit::Millisecond)).unwrap();
        assert_eq!(
            duration.format(2 * 86_400_000 + 14_706_500),
            "2 days 04:05:06.500000"
        );
        assert_eq!(duration.format(-1), "-1 days +23:59:59.999000");
        assert_eq!(duration.format(0), "0 days 00:00:00");
        assert!(TemporalScale::of(&DataType::Utf8).is_none());
    }

    /// A bound reads back to the ticks its text came from.
    #[test]
    fn bounds_parse_on_the_column_scale() {
        let (micros, _) =
            TemporalScale::of(&DataType::Timestamp(TimeUnit::Microsecond, None)).unwrap();
        for ticks in [1_767_225_600_500_000, -1, 0, 1_767_225_600_000_000] {
            assert_eq!(micros.parse(&micros.format(ticks)), Ok(ticks));
        }
        assert_eq!(micros.parse("2026-01-01"), Ok(1_767_225_600_000_000));
        assert_eq!(
            micros.parse("2026-01-01T01:00:00+01:00"),
            Ok(1_767_225_600_000_000)
        );
        assert_eq!(
            micros.parse("2026-01-01T00:00:00Z"),
            Ok(1_767_225_600_000_000)
        );
        assert!(micros
            .parse("January 1st")
            .unwrap_err()
            .contains("not a date"));
        let (date, days) = TemporalScale::of(&DataType::Date32).unwrap();
        assert_eq!(date.parse("2026-01-01"), Ok(20_454 * days));
        let (time, _) = TemporalScale::of(&DataType::Time64(TimeUnit::Nanosecond)).unwrap();
        assert_eq!(time.parse("01:02:03.25"), Ok(3_723_250_000_000));
        let (duration, _) = TemporalScale::of(&DataType::Duration(TimeUnit::Millisecond)).unwrap();
        for ticks in [2 * 86_400_000 + 14_706_500, -1, 0, 86_399_999] {
            assert_eq!(duration.parse(&duration.format(ticks)), Ok(ticks));
        }
        assert!(duration
            .parse("forever")
            .unwrap_err()
            .contains("not a duration"));
        let (nanos, _) = TemporalScale::of(&DataType::Duration(TimeUnit::Nanosecond)).unwrap();
        assert!(nanos
            .parse("1000000000000000000000000000000ns")
            .unwrap_err()
            .contains("out of the column's range"));
    }

    /// Each text and its length as `pandas.Timedelta(text).value` gives it.
    #[test]
    fn durations_read_as_pandas_reads_them() {
        let cases: [(&str, i128); 16] = [
            ("2 days 04:05:06.5", 187_506_500_000_000),
            ("-1 days +23:59:59", -1_000_000_000),
            ("04:05:06", 14_706_000_000_000),
            ("1 days", 86_400_000_000_000),
            ("90s", 90_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5 hours", 5_400_000_000_000),
            ("500ms", 500_000_000),
            ("-3 min", -180_000_000_000),
            ("2W", 1_209_600_000_000_000),
            ("10us", 10_000),
            ("7ns", 7),
            ("P2DT4H", 187_200_000_000_000),
            ("PT30M", 1_800_000_000_000),
            ("-PT1.5S", -1_500_000_000),
            ("P1W", 604_800_000_000_000),
        ];
        for (text, nanos) in cases {
            assert_eq!(duration_nanos(text), Ok(nanos), "{text}");
        }
        // A leading minus negates every amount with a unit, and a clock only
        // when it comes first.
        for (text, nanos) in [
            ("-1h30m", -5_400_000_000_000),
            ("-1 days 2 hours", -93_600_000_000_000),
            ("-1 days 23:59:59", -1_000_000_000),
            ("-23:59:59", -86_399_000_000_000),
            ("- 1h", -3_600_000_000_000),
            ("-P1DT1H", -90_000_000_000_000),
        ] {
            assert_eq!(duration_nanos(text), Ok(nanos), "{text}");
        }
        // Refused where pandas refuses or guesses: a later minus, a clock
        // without seconds, a bare number (pandas: nanoseconds), `P1M`
        // (pandas: a minute), an empty text (pandas: NaT); and numbers too
        // large for the arithmetic.
        for bad in [
            "",
            "10",
            "3 M",
            "P1M",
            "1 fortnight",
            "P",
            "PT",
            "1 days -1 hours",
            "1h -30m",
            "10:00",
            "1:30.5",
            "99999999999999999999999999999:00:00",
            "170141183460469231731687303715884105727.5s",
            "170141183460469231731687303715884105727w 1w",
        ] {
            assert!(duration_nanos(bad).is_err(), "{bad}");
        }
    }
}
