// The AWS SDK's config loader nests deeply.
#![recursion_limit = "256"]

use lambda_http::{Error, run_with_streaming_response, service_fn};
use voice_core::{App, Warm, http::router};

#[tokio::main]
async fn main() -> Result<(), Error> {
    voice_core::telemetry::init();
    let app = App::from_env().await?.into_static();
    app.warm(&[Warm::ElevenLabs]);
    if app.config.billing.overage.is_some() {
        app.warm(&[Warm::Stripe]); // overage generations report to Stripe's meter
    }
    run_with_streaming_response(service_fn(|req| async {
        Ok::<_, Error>(router::serve_streaming(app, tts_stream::ROUTES, req).await)
    }))
    .await
}
