use lambda_http::{Error, run, service_fn};
use voice_core::{App, Warm, http::router};

#[tokio::main]
async fn main() -> Result<(), Error> {
    voice_core::telemetry::init();
    let app = App::from_env().await?.into_static();
    app.warm(&[Warm::Stripe, Warm::StripeWebhookSecrets]);
    run(service_fn(|req| async { Ok::<_, Error>(router::serve(app, webhook::ROUTES, req).await) })).await
}
