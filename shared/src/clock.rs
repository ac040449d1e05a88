use time::{Duration, OffsetDateTime};

/// The time source. Production reads the system clock; tests shift it forward to see what a
/// session or a usage period looks like later, while real time (and Redis' own TTLs) keep flowing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    shift: Duration,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    pub fn shifted(by: Duration) -> Self {
        Self { shift: by }
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.shift
    }
}

/// An instant as RFC 3339 (`2026-11-23T12:00:00Z`), the way every stored timestamp is written.
pub fn timestamp(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).expect("UTC timestamps format")
}

/// Unix milliseconds.
pub fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
