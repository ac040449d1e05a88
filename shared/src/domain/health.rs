//! Dependency health as values: each check's status and latency, and the rule that makes the
//! overall answer. The core (DynamoDB and S3) decides between up and down; anything else failing
//! only degrades the service (sessions fall back to DynamoDB, billing or speech wait).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Degraded,
    Down,
}

/// The dependencies checked, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Dependency {
    Dynamodb,
    S3,
    Redis,
    Secrets,
    Stripe,
    Elevenlabs,
    Auth0,
}

impl Dependency {
    pub const ALL: [Dependency; 7] =
        [Self::Dynamodb, Self::S3, Self::Redis, Self::Secrets, Self::Stripe, Self::Elevenlabs, Self::Auth0];

    /// Without these nothing works: the service is down when one is.
    pub const fn is_core(self) -> bool {
        matches!(self, Self::Dynamodb | Self::S3)
    }
}

/// One dependency's result. Deliberately no error text: the body is public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: Dependency,
    pub status: Status,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub status: Status,
    pub checks: Vec<Check>,
    /// When the checks ran (RFC 3339); a cached report keeps its time.
    pub checked_at: String,
}

impl Report {
    /// Down when a core dependency is down; degraded when anything else is not ok.
    pub fn new(checks: Vec<Check>, checked_at: String) -> Self {
        let core_down = checks.iter().any(|c| c.name.is_core() && c.status == Status::Down);
        let all_ok = checks.iter().all(|c| c.status == Status::Ok);
        let status = if core_down {
            Status::Down
        } else if all_ok {
            Status::Ok
        } else {
            Status::Degraded
        };
        Self { status, checks, checked_at }
    }

    /// 200 while the core works, 503 when it does not.
    pub fn http_status(&self) -> u16 {
        if self.status == Status::Down { 503 } else { 200 }
    }
}

/// A slow answer from an otherwise working dependency degrades it.
pub fn status_of(reachable: bool, latency: Duration, slow: Duration) -> Status {
    match (reachable, latency > slow) {
        (false, _) => Status::Down,
        (true, true) => Status::Degraded,
        (true, false) => Status::Ok,
    }
}

/// How long an instance reuses its last report.
pub const REUSE_FOR: Duration = Duration::from_secs(5);

/// The last report, reused for `ttl` so a burst of probes costs one round of checks per instance.
pub struct Cache {
    ttl: Duration,
    last: Mutex<Option<(Instant, Report)>>,
}

impl Cache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, last: Mutex::new(None) }
    }

    pub fn fresh(&self) -> Option<Report> {
        let last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        last.as_ref().filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, report)| report.clone())
    }

    pub fn store(&self, report: &Report) {
        *self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((Instant::now(), report.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(down: &[Dependency]) -> Vec<Check> {
        Dependency::ALL
            .iter()
            .map(|&name| Check {
                name,
                status: if down.contains(&name) { Status::Down } else { Status::Ok },
                latency_ms: 3,
            })
            .collect()
    }

    #[test]
    fn given_everything_up_then_ok_and_200() {
        let report = Report::new(checks(&[]), "t".into());
        assert_eq!((report.status, report.http_status()), (Status::Ok, 200));
    }

    #[test]
    fn given_redis_or_an_upstream_down_then_degraded_but_200() {
        for dependency in [Dependency::Redis, Dependency::Stripe, Dependency::Auth0, Dependency::Secrets] {
            let report = Report::new(checks(&[dependency]), "t".into());
            assert_eq!((report.status, report.http_status()), (Status::Degraded, 200), "{dependency:?}");
        }
    }

    #[test]
    fn given_a_core_dependency_down_then_down_and_503() {
        for dependency in [Dependency::Dynamodb, Dependency::S3] {
            let report = Report::new(checks(&[dependency, Dependency::Redis]), "t".into());
            assert_eq!((report.status, report.http_status()), (Status::Down, 503), "{dependency:?}");
        }
    }

    #[test]
    fn slow_answers_degrade() {
        let slow = Duration::from_millis(500);
        assert_eq!(status_of(true, Duration::from_millis(20), slow), Status::Ok);
        assert_eq!(status_of(true, Duration::from_millis(900), slow), Status::Degraded);
        assert_eq!(status_of(false, Duration::from_millis(1), slow), Status::Down);
    }

    #[test]
    fn the_cache_serves_within_its_ttl_only() {
        let cache = Cache::new(Duration::from_secs(60));
        assert!(cache.fresh().is_none());
        let report = Report::new(checks(&[]), "t".into());
        cache.store(&report);
        assert_eq!(cache.fresh(), Some(report.clone()));
        let expired = Cache::new(Duration::ZERO);
        expired.store(&report);
        assert!(expired.fresh().is_none());
    }
}
