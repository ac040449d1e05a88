//! DynamoDB stream consumer for the recordings and sessions tables: cleans up after TTL removals.

use aws_lambda_events::event::{dynamodb::Event, streams::DynamoDbEventResponse};
use voice_core::{
    App,
    flows::ttl_cleanup::{TtlCleanup, handle_batch},
};

pub async fn handle(app: &App, event: Event) -> DynamoDbEventResponse {
    let cleanup = TtlCleanup {
        tables: &app.config.tables,
        audio: app.audio(),
        sessions: &app.sessions,
        users: &app.users,
        events: &app.webhook_events,
    };
    handle_batch(&cleanup, event).await
}
