//! The HTTP client for outside services (Auth0, Stripe, ElevenLabs), built once per cold start.

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use crate::{clock::Deadline, telemetry::metrics};

/// The client's own limit on one exchange (connect included).
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(8);
/// Kept back from the invocation's deadline for answering after a call timed out.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

tokio::task_local! {
    static DEADLINE: Deadline;
}

/// Runs `work` with the invocation's deadline in scope: every outbound call made inside it is
/// bounded by what is left of it ([`timeout`]).
pub async fn within<F: Future>(deadline: Deadline, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The time limit for one outbound call: `default`, or less when the invocation's deadline is
/// nearer (never zero: a call with no time left fails at once as a timeout).
pub fn timeout(default: Duration) -> Duration {
    DEADLINE
        .try_with(|deadline| deadline.leaving(ANSWER_MARGIN))
        .map_or(default, |left| left.min(default))
        .max(Duration::from_millis(1))
}

/// Follows no redirects and bounds both connecting and the whole exchange (the shared base,
/// `crate::tls::http_client_builder`, plus a limit on the exchange and our user agent).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let client = crate::tls::http_client_builder()
        .timeout(EXCHANGE_TIMEOUT)
        .user_agent(concat!("voice-backend/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(client)
}

/// Sends one request to `service`, recording its latency and whether it failed (no answer, 5xx
/// or 429) as the `UpstreamLatency` and `UpstreamErrors` metrics.
pub async fn observed(service: &str, request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let started = Instant::now();
    let result = request.send().await;
    let failed = result.as_ref().map_or(true, |r| r.status().is_server_error() || r.status().as_u16() == 429);
    metrics::upstream(service, started.elapsed(), failed);
    result
}

/// The one HTTP client of a function's upstream clients, built on first use: a function that
/// never calls out (most of them, on most requests) never builds it.
#[derive(Clone, Default)]
pub struct LazyClient(Arc<OnceLock<reqwest::Client>>);

impl LazyClient {
    pub fn get(&self) -> anyhow::Result<&reqwest::Client> {
        if let Some(client) = self.0.get() {
            return Ok(client);
        }
        let built = http_client()?;
        Ok(self.0.get_or_init(|| built))
    }
}
