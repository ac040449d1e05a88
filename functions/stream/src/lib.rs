//! DynamoDB stream consumer for the recordings and sessions tables: cleans up after TTL removals.

use aws_lambda_events::event::{dynamodb::Event, streams::DynamoDbEventResponse};
use shared::App;

pub async fn handle(app: &App, event: Event) -> DynamoDbEventResponse {
    shared::expiry::handle_batch(app, event).await
}
