//! Value parsers: .NET time spans, numbers, booleans, nullable values.

use super::*;

/// Parse a time span: `[-][d.]hh:mm[:ss[.fffffff]]` as .NET writes it, or
/// plain seconds (`5`, `0.5`). Negative spans are refused.
pub fn parse_time_span(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty time span".into());
    }
    if t.starts_with('-') {
        return Err("a negative time span is not allowed".into());
    }
    if !t.contains(':') {
        let secs: f64 = t
            .parse()
            .map_err(|_| "expected seconds or [d.]hh:mm:ss[.fffffff]".to_string())?;
        if !secs.is_finite() || secs < 0.0 {
            return Err("expected a non-negative number of seconds".into());
        }
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    let bad = || "expected [d.]hh:mm:ss[.fffffff]".to_string();
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(bad());
    }
    let (days, hours) = match parts[0].split_once('.') {
        Some((d, h)) => (d, h),
        None => ("0", parts[0]),
    };
    let num = |s: &str, max: u64| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let v: u64 = s.parse().map_err(|_| bad())?;
        if v > max {
            return Err(bad());
        }
        Ok(v)
    };
    let days = num(days, 10_675_199)?;
    let hours = num(hours, 23)?;
    let minutes = num(parts[1], 59)?;
    let (secs, nanos) = match parts.get(2) {
        None => (0, 0),
        Some(s) => match s.split_once('.') {
            None => (num(s, 59)?, 0),
            Some((whole, frac)) => {
                if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let padded = format!("{frac:0<9}");
                (num(whole, 59)?, padded.parse::<u32>().map_err(|_| bad())?)
            }
        },
    };
    Ok(Duration::new(
        days * 86_400 + hours * 3_600 + minutes * 60 + secs,
        nanos,
    ))
}

pub(super) fn parse_time_key(key: &str, value: &str) -> Result<Duration, KestrelConfigError> {
    parse_time_span(value).map_err(|r| invalid(key, value, r))
}

pub(super) fn parse_num<T: std::str::FromStr>(
    key: &str,
    value: &str,
) -> Result<T, KestrelConfigError> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| invalid(key, value, "expected a non-negative integer"))
}

pub(super) fn parse_bool(key: &str, value: &str) -> Result<bool, KestrelConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// `null`/empty clears a nullable value.
pub(super) fn nullable<T>(
    key: &str,
    value: &str,
    parse: impl Fn(&str, &str) -> Result<T, KestrelConfigError>,
) -> Result<Option<T>, KestrelConfigError> {
    if value.trim().is_empty() || value.trim().eq_ignore_ascii_case("null") {
        Ok(None)
    } else {
        parse(key, value).map(Some)
    }
}
