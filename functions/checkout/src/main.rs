use lambda_http::Error;
use voice_core::{App, Warm, http::router};

#[tokio::main]
async fn main() -> Result<(), Error> {
    voice_core::telemetry::init();
    let app = App::from_env().await?.into_static();
    app.warm(&[Warm::Stripe]);
    router::run(app, checkout::ROUTES).await
}
