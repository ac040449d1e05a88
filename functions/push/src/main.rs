//! The live updates' WebSocket function (see lib.rs).
#![recursion_limit = "256"]

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use voice_core::App;

#[tokio::main]
async fn main() -> Result<(), Error> {
    voice_core::telemetry::init();
    let app = App::from_env().await?;
    run(service_fn(|event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async {
        Ok::<_, Error>(push::handle(&app, event.payload).await)
    }))
    .await
}
