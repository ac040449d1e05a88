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

/// When the current invocation must have answered: Lambda's deadline for it. Work that cannot
/// finish before it is not started, and what was reserved is given back in time.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: tokio::time::Instant,
}

impl Deadline {
    pub fn after(budget: std::time::Duration) -> Self {
        Self { at: tokio::time::Instant::now() + budget }
    }

    /// From Lambda's context (ms since the epoch); None when it carries none.
    pub fn from_epoch_ms(deadline_ms: u64) -> Option<Self> {
        if deadline_ms == 0 {
            return None;
        }
        let now_ms = u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        Some(Self::after(std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms))))
    }

    pub fn remaining(&self) -> std::time::Duration {
        self.at.saturating_duration_since(tokio::time::Instant::now())
    }

    /// The time left once `reserve` is kept back for what must still happen after.
    pub fn leaving(&self, reserve: std::time::Duration) -> std::time::Duration {
        self.remaining().saturating_sub(reserve)
    }
}
