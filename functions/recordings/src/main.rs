use lambda_http::Error;
use voice_core::{App, http::router};

#[tokio::main]
async fn main() -> Result<(), Error> {
    voice_core::telemetry::init();
    let app = App::from_env().await?;
    router::run(&app, recordings::ROUTES).await
}
