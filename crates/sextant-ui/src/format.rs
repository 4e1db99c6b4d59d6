//! How values read on a page: times, durations, numbers.

/// Milliseconds since the epoch as `2026-12-06 14:03:07` (UTC).
pub fn time(ms: i64) -> String {
    if ms <= 0 {
        return "—".to_string();
    }
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        in_day / 3600,
        (in_day / 60) % 60,
        in_day % 60
    )
}

/// Days since 1970-01-01 to a Gregorian date (Howard Hinnant's
/// `civil_from_days`, chrono-compatible algorithms).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A Gregorian date to days since 1970-01-01 (Howard Hinnant's
/// `days_from_civil`, the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-12-06`, `2026-12-06 14:03`, `2026-12-06T14:03:07` (what a
/// `datetime-local` input sends, read as UTC) to milliseconds since the
/// epoch; `None` for anything else.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((date, clock)) => (date, clock),
        None => (text, ""),
    };
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut seconds = 0;
    if !clock.is_empty() {
        let parts: Vec<&str> = clock.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let hour: i64 = parts[0].parse().ok()?;
        let minute: i64 = parts[1].parse().ok()?;
        let second: i64 = parts.get(2).map_or(Some(0), |s| s.parse().ok())?;
        if hour > 23 || minute > 59 || second > 59 || hour < 0 || minute < 0 || second < 0 {
            return None;
        }
        seconds = hour * 3600 + minute * 60 + second;
    }
    Some((days_from_civil(year, month, day) * 86_400 + seconds) * 1000)
}

/// A duration in milliseconds as `3h 04m`, `12m 05s`, `4.2s`.
pub fn duration(ms: i64) -> String {
    if ms < 0 {
        return "—".to_string();
    }
    let seconds = ms / 1000;
    match seconds {
        0..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        3600..=86_399 => format!("{}h {:02}m", seconds / 3600, (seconds / 60) % 60),
        _ => format!("{}d {:02}h", seconds / 86_400, (seconds / 3600) % 24),
    }
}

/// A metric value: up to 6 significant digits, exponent form when large or tiny.
pub fn number(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "∞".into()
        } else {
            "-∞".into()
        };
    }
    if value == value.trunc() && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    let magnitude = value.abs();
    if !(1e-4..1e9).contains(&magnitude) {
        return format!("{value:.4e}");
    }
    // Six significant digits, trailing zeros dropped.
    let decimals = (5 - magnitude.log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// At most `max` characters, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Bytes as `1.2 MB`.
pub fn bytes(size: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{size} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_durations_and_numbers_read_well() {
        assert_eq!(time(0), "—");
        assert_eq!(time(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(duration(4_200), "4.2s");
        assert_eq!(duration(725_000), "12m 05s");
        assert_eq!(duration(11_040_000), "3h 04m");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.123456789), "0.123457");
        assert_eq!(number(123.456789), "123.457");
        assert_eq!(number(1.5e-7), "1.5000e-7");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(bytes(1_234_567), "1.2 MB");
    }

    #[test]
    fn typed_times_read_back_as_the_times_shown() {
        for ms in [
            951_782_400_000_i64,
            1_700_000_000_000,
            4_102_444_799_000,
            86_400_000,
        ] {
            assert_eq!(parse_time(&time(ms)), Some(ms), "{}", time(ms));
        }
        assert_eq!(parse_time("2023-11-14T22:13"), Some(1_699_999_980_000));
        assert_eq!(parse_time("2023-11-14"), Some(1_699_920_000_000));
        for bad in [
            "",
            "yesterday",
            "2023-13-01",
            "2023-11-14T25:00",
            "2023-11-14T10",
            "2023-11-14-01",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
