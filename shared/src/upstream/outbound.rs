//! The HTTP client for outside services (Auth0, Stripe, ElevenLabs), built once per cold start.

use std::time::Duration;

/// Follows no redirects (a redirect from an IdP or API is an error here, never a new target) and
/// bounds both connecting and the whole exchange.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(8))
        .user_agent(concat!("voice-backend/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("static client settings are valid")
}
