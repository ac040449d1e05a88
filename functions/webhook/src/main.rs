use lambda_http::{Error, run, service_fn};
use shared::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    tokio::try_join!(app.stripe(), app.stripe_webhook_secrets())?;
    run(service_fn(|req| async { Ok::<_, Error>(webhook::handle(&app, req).await) })).await
}
