//! `GET /health`: every dependency checked at once, each bounded in time, the report cached per
//! instance for a few seconds. Nothing secret, no host name and no error text is reported: the
//! causes go to the log.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use futures_util::FutureExt;
use time::format_description::well_known::Rfc3339;
use url::Url;

use crate::{
    domain::health::{Cache, Check, Dependency, Report, status_of},
    store::{audio::AudioStore, redis::Redis, secrets, users::Users},
};

/// The most one check may take before it counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);
/// An answer slower than this degrades its dependency.
pub const SLOW: Duration = Duration::from_millis(500);

/// What the checks reach.
pub struct Probes<'a> {
    pub users: &'a Users,
    pub audio: &'a AudioStore,
    pub redis: &'a Redis,
    pub ssm: &'a aws_sdk_ssm::Client,
    /// A parameter holding nothing secret: reading it proves the parameter store answers, and
    /// the check needs no permission on any secret.
    pub probe_parameter: Option<String>,
    pub http: &'a reqwest::Client,
    /// Any HTTP answer below 500 proves these reachable (no key is sent).
    pub stripe: Url,
    pub elevenlabs: Url,
    /// OIDC discovery must answer 200.
    pub auth0_discovery: Url,
}

/// The cached report, or a fresh one.
pub async fn report(cache: &Cache, probes: Probes<'_>, now: time::OffsetDateTime) -> Report {
    if let Some(report) = cache.fresh() {
        return report;
    }
    let report = check_all(probes, now).await;
    cache.store(&report);
    report
}

async fn check_all(probes: Probes<'_>, now: time::OffsetDateTime) -> Report {
    let p = &probes;
    let checks = futures_util::future::join_all([
        timed(Dependency::Dynamodb, p.users.ping()).boxed(),
        timed(Dependency::S3, p.audio.ping()).boxed(),
        timed(Dependency::Redis, p.redis.reachable()).boxed(),
        timed(Dependency::Secrets, async {
            let probe = p.probe_parameter.clone().into_iter().collect();
            anyhow::ensure!(secrets::present(p.ssm, probe).await?, "the health probe parameter is missing");
            Ok(())
        })
        .boxed(),
        timed(Dependency::Stripe, reachable(p.http, &p.stripe, false)).boxed(),
        timed(Dependency::Elevenlabs, reachable(p.http, &p.elevenlabs, false)).boxed(),
        timed(Dependency::Auth0, reachable(p.http, &p.auth0_discovery, true)).boxed(),
    ])
    .await;
    Report::new(checks, now.format(&Rfc3339).unwrap_or_default())
}

/// Runs one check within [`CHECK_TIMEOUT`]; a failure is logged with its cause, reported as down.
async fn timed(name: Dependency, check: impl Future<Output = anyhow::Result<()>>) -> Check {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(dependency = ?name, error = format!("{error:#}"), "health check failed");
            false
        }
        Err(_) => {
            tracing::warn!(dependency = ?name, "health check timed out");
            false
        }
    };
    let latency = started.elapsed();
    Check { name, status: status_of(outcome, latency, SLOW), latency_ms: latency.as_millis() as u64 }
}

/// A GET answered by the service itself: below 500 (or exactly 200 when `must_succeed`).
async fn reachable(http: &reqwest::Client, url: &Url, must_succeed: bool) -> anyhow::Result<()> {
    let status = http.get(url.clone()).timeout(CHECK_TIMEOUT).send().await?.status();
    let healthy = if must_succeed { status.is_success() } else { !status.is_server_error() };
    anyhow::ensure!(healthy, "answered {status}");
    Ok(())
}
