//! Timestamps in the formats AWS uses: ISO-8601 UTC with milliseconds (`2019-04-05T17:48:39.725Z`).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn now_iso() -> String {
    iso(OffsetDateTime::now_utc())
}

/// Formats an instant as `YYYY-MM-DDTHH:MM:SS.mmmZ` (always milliseconds, always `Z`).
pub fn iso(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an RFC 3339 timestamp.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_millis_and_z() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_554_486_519_725_000_000).unwrap();
        assert_eq!(iso(t), "2019-04-05T17:48:39.725Z");
        assert_eq!(parse(&iso(t)), Some(t));
    }
}
