//! One way to write and read times: RFC 3339 in UTC with a `Z`, millisecond precision.
//!
//! Fixed width means the strings sort the same way the instants do, so SQLite can
//! compare and index them as TEXT (the `since`/`until` filters rely on this).

use chrono::{DateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now()
}

/// `2025-01-09T14:28:45.000Z`
pub fn format(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Accepts any RFC 3339 time (any offset) and returns it in UTC. Also accepts the
/// seed's offset-less form (`2025-01-09T14:28:45` or with fractions), read as UTC.
pub fn parse(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|n| n.and_utc())
        .map_err(|_| format!("{s:?} is not an RFC 3339 time; write it like 2025-01-09T14:28:45Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_utc() {
        let t = parse("2025-01-09T15:28:45+01:00").unwrap();
        assert_eq!(format(t), "2025-01-09T14:28:45.000Z");
        assert_eq!(
            format(parse("2025-01-09T14:28:45.123456").unwrap()),
            "2025-01-09T14:28:45.123Z"
        );
        assert!(parse("yesterday").is_err());
    }
}
