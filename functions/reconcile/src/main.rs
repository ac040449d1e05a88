// The reconciliation is a deeply nested future (paged scans, a bounded stream of syncs).
#![recursion_limit = "256"]

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use voice_core::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    voice_core::telemetry::init();
    let app = App::from_env().await?;
    run(service_fn(|event: LambdaEvent<EventBridgeEvent>| async {
        reconcile::handle(&app, event.payload).await.map_err(Error::from)
    }))
    .await
}
