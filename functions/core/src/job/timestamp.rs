//! Timestamps in request bodies, as S3 Control's JSON and the AWS CLI write them.

use serde::{Deserialize, Serialize};

/// A point in time in a request body. S3 Control's JSON carries timestamps as ISO-8601 strings
/// (`2030-01-01T00:00:00Z`, or a bare date `2030-01-01`) or as Unix seconds, as the AWS CLI
/// accepts them; batchops writes them back as ISO-8601 UTC with milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub time::OffsetDateTime);

impl Timestamp {
    /// Parses an ISO-8601 / RFC 3339 date-time, or a bare `YYYY-MM-DD` (midnight UTC).
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(t) = crate::time::parse(s) {
            return Some(Self(t));
        }
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(s, &format)
            .ok()
            .map(|d| Self(d.midnight().assume_utc()))
    }

    /// Milliseconds since the epoch (always `Some`: parsing already refused what is not a
    /// timestamp; the `Option` keeps callers honest should that change).
    pub fn epoch_millis(&self) -> Option<i64> {
        i64::try_from(self.0.unix_timestamp_nanos() / 1_000_000).ok()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time::iso(self.0))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(f64),
        }
        let bad = |what: &dyn std::fmt::Display| {
            serde::de::Error::custom(format!(
                "invalid timestamp {what}: expected ISO-8601 like 2030-01-01T00:00:00Z or Unix seconds"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Text(s) => Self::parse(&s).ok_or_else(|| bad(&format!("{s:?}"))),
            Raw::Seconds(n) => time::OffsetDateTime::from_unix_timestamp_nanos((n * 1e9) as i128)
                .map(Self)
                .map_err(|_| bad(&n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_as_the_cli_writes_them() {
        let t: Timestamp = serde_json::from_value("2030-01-02T03:04:05Z".into()).unwrap();
        assert_eq!(serde_json::to_value(t).unwrap(), "2030-01-02T03:04:05.000Z");
        let d: Timestamp = serde_json::from_value("2030-01-02".into()).unwrap();
        assert_eq!(crate::time::iso(d.0), "2030-01-02T00:00:00.000Z");
        let n: Timestamp = serde_json::from_value(1_900_000_000.into()).unwrap();
        assert_eq!(n.0.unix_timestamp(), 1_900_000_000);
        assert_eq!(crate::ops::sdk_time(n).secs(), 1_900_000_000);
        assert!(serde_json::from_value::<Timestamp>("next tuesday".into()).is_err());
    }
}
