use lambda_http::Error;
use voice_core::{App, Warm, http::router};

#[tokio::main]
async fn main() -> Result<(), Error> {
    voice_core::telemetry::init();
    let app = App::from_env().await?.into_static();
    app.warm(&[Warm::ElevenLabs]);
    if app.config.billing.overage.is_some() {
        app.warm(&[Warm::Stripe]); // overage generations report to Stripe's meter
    }
    router::run(app, tts::ROUTES).await
}
