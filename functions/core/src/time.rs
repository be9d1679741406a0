//! Timestamps in the formats AWS uses: ISO-8601 UTC with milliseconds (`2019-04-05T17:48:39.725Z`).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now by the system's clock, as `YYYY-MM-DDTHH:MM:SS.mmmZ` (the pipeline asks its
/// [`Clock`] instead).
pub fn now_iso() -> String {
    iso(OffsetDateTime::now_utc())
}

/// Where the pipeline's "now" comes from: the system's clock ([`Clock::system`], the
/// default), or one that follows tokio's ([`Clock::following_tokio`]): it starts at a given
/// instant and moves as the runtime's time does, so under paused time (the model's schedules)
/// hours of leases and timeouts pass in a call to `tokio::time::advance`; or one that stands
/// still ([`Clock::fixed`]: two runs of one sequence stamp alike).
#[derive(Clone, Copy, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    /// `base` at `start`, moving with tokio's time since.
    Tokio {
        base: OffsetDateTime,
        start: tokio::time::Instant,
    },
    Fixed(OffsetDateTime),
}

impl Clock {
    pub fn system() -> Self {
        Clock::System
    }

    /// A clock at `base` now, moving with tokio's time from here.
    pub fn following_tokio(base: OffsetDateTime) -> Self {
        Clock::Tokio {
            base,
            start: tokio::time::Instant::now(),
        }
    }

    /// A clock that always reads `at`.
    pub fn fixed(at: OffsetDateTime) -> Self {
        Clock::Fixed(at)
    }

    pub fn now(&self) -> OffsetDateTime {
        match *self {
            Clock::System => OffsetDateTime::now_utc(),
            Clock::Tokio { base, start } => base + (tokio::time::Instant::now() - start),
            Clock::Fixed(at) => at,
        }
    }

    /// Now, as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn now_iso(&self) -> String {
        iso(self.now())
    }

    /// Milliseconds since the epoch.
    pub fn unix_ms(&self) -> i128 {
        self.now().unix_timestamp_nanos() / 1_000_000
    }

    /// Seconds since the epoch.
    pub fn unix_secs(&self) -> i64 {
        self.now().unix_timestamp()
    }
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

    #[tokio::test(start_paused = true)]
    async fn a_clock_following_tokio_moves_only_when_the_runtimes_time_does() {
        let base = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let clock = Clock::following_tokio(base);
        assert_eq!(clock.now(), base);
        tokio::time::advance(std::time::Duration::from_secs(3 * 3600)).await;
        assert_eq!(clock.unix_secs(), 1_900_000_000 + 3 * 3600);
        assert_eq!(clock.now_iso(), "2030-03-17T20:46:40.000Z");
        let system = Clock::system().unix_secs();
        assert!((system - OffsetDateTime::now_utc().unix_timestamp()).abs() <= 1);
    }

    #[test]
    fn iso_has_millis_and_z() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_554_486_519_725_000_000).unwrap();
        assert_eq!(iso(t), "2019-04-05T17:48:39.725Z");
        assert_eq!(parse(&iso(t)), Some(t));
    }
}
