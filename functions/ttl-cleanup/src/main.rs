use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use voice_core::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    voice_core::telemetry::init();
    let app = App::from_env().await?;
    run(service_fn(|event: LambdaEvent<_>| async { Ok::<_, Error>(ttl_cleanup::handle(&app, event.payload).await) }))
        .await
}
