use lambda_http::{Error, run, service_fn};
use shared::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    if let Err(error) = app.idp.metadata().await {
        tracing::warn!(%error, "OIDC discovery failed during init; retrying on first use");
    }
    run(service_fn(|req| async { Ok::<_, Error>(login::handle(&app, req).await) })).await
}
