use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use voice_core::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    voice_core::telemetry::init();
    let app = App::from_env().await?;
    run(service_fn(|event: LambdaEvent<EventBridgeEvent>| async {
        sweep::handle(&app, event.payload).await.map_err(Error::from)
    }))
    .await
}
