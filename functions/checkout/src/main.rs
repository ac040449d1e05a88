use lambda_http::{Error, run, service_fn};
use shared::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    app.stripe().await?;
    run(service_fn(|req| async { Ok::<_, Error>(checkout::handle(&app, req).await) })).await
}
