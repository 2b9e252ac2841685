//! Cron expressions, zones and times: parsed once, at the edge of the service.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use cron::Schedule;

/// A cron expression as users write it: 5 fields (minute hour day month weekday), or 6 with
/// seconds first. `@daily`-style names are accepted too.
pub fn parse_cron(expression: &str) -> Result<Schedule, String> {
    let trimmed = expression.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.len() > 256 {
        return Err("must be at most 256 characters".into());
    }
    let fields = trimmed.split_whitespace().count();
    let full = match fields {
        _ if trimmed.starts_with('@') => trimmed.to_owned(),
        5 => format!("0 {trimmed}"),
        6 => trimmed.to_owned(),
        n => {
            return Err(format!(
                "has {n} fields; write 5 (minute hour day month weekday)"
            ));
        }
    };
    let schedule =
        Schedule::from_str(&full).map_err(|e| format!("is not a cron expression: {e}"))?;
    if schedule.upcoming(Utc).next().is_none() {
        return Err("never fires".into());
    }
    Ok(schedule)
}

/// An IANA zone name (`Asia/Shanghai`, `UTC`).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name.trim()).map_err(|_| format!("`{name}` is not an IANA time zone"))
}

/// A time as RFC 3339 with an offset (kept as that instant), or without an offset (read as
/// wall-clock time in `zone`; a time the zone skips is refused, an ambiguous one is the
/// earlier).
pub fn parse_time(text: &str, zone: Tz) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .ok_or_else(|| format!("`{text}` is not an RFC 3339 time"))?;
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Ok(at.with_timezone(&Utc)),
        LocalResult::None => Err(format!("`{text}` does not exist in {zone}")),
    }
}

/// The latest fire of `schedule` in `zone` at or before `now`.
pub(crate) fn latest_fire(
    schedule: &Schedule,
    zone: Tz,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let probe = (now + Duration::seconds(1)).with_timezone(&zone);
    schedule
        .after(&probe)
        .next_back()
        .map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_field_cron_is_read_with_a_zero_seconds_field() {
        let every_morning = parse_cron("0 9 * * *").unwrap();
        let zone = parse_zone("Asia/Shanghai").unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-04T03:30:00Z")
            .unwrap()
            .to_utc();
        // 09:00 in Shanghai is 01:00 UTC.
        let fire = latest_fire(&every_morning, zone, now).unwrap();
        assert_eq!(fire.to_rfc3339(), "2026-12-04T01:00:00+00:00");
        // A fire exactly at `now` counts.
        assert_eq!(latest_fire(&every_morning, zone, fire), Some(fire));
    }

    #[test]
    fn bad_cron_and_zones_are_refused_with_a_reason() {
        assert!(parse_cron("").is_err());
        assert!(parse_cron("* * *").unwrap_err().contains("3 fields"));
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("30 */5 * * * *").is_ok());
        assert!(parse_zone("Mars/Olympus").is_err());
        assert_eq!(parse_zone("UTC").unwrap(), Tz::UTC);
    }

    #[test]
    fn times_keep_their_offset_or_are_read_in_the_zone() {
        let shanghai = parse_zone("Asia/Shanghai").unwrap();
        let with_offset = parse_time("2026-12-05T09:00:00+08:00", Tz::UTC).unwrap();
        assert_eq!(with_offset.to_rfc3339(), "2026-12-05T01:00:00+00:00");
        let local = parse_time("2026-12-05T09:00:00", shanghai).unwrap();
        assert_eq!(local, with_offset);
        assert_eq!(
            parse_time("2026-12-05 09:00", shanghai).unwrap(),
            with_offset
        );
        assert!(parse_time("tomorrow", shanghai).is_err());
        // 02:30 on the spring-forward night does not exist in Berlin.
        let berlin = parse_zone("Europe/Berlin").unwrap();
        assert!(parse_time("2026-03-29T02:30:00", berlin).is_err());
    }
}
