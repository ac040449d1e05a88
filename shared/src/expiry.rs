//! What happens when DynamoDB's TTL removes an item (the stream consumer): an expired
//! recording's audio is deleted from S3, an expired session is dropped from Redis. Only TTL
//! removals count (user identity `dynamodb.amazonaws.com`); a user's own delete already cleaned
//! up. Every action is idempotent, because stream records can arrive more than once.

use anyhow::{Context, anyhow};
use aws_lambda_events::event::{
    dynamodb::{Event, EventRecord},
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use redis::AsyncCommands;
use serde_json::Value;

use crate::{App, auth::session::redis_key};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    AudioDeleted(String),
    SessionDropped,
    Ignored(&'static str),
}

/// Handles a batch; the failed records are reported so that only they are retried.
pub async fn handle_batch(app: &App, event: Event) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        match on_record(app, record).await {
            Ok(outcome) => tracing::info!(event_id = record.event_id, ?outcome, "stream record"),
            Err(error) => {
                tracing::error!(event_id = record.event_id, error = format!("{error:#}"), "stream record failed");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}

pub fn is_ttl_removal(record: &EventRecord) -> bool {
    record.event_name == "REMOVE"
        && record
            .user_identity
            .as_ref()
            .is_some_and(|u| u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com")
}

pub async fn on_record(app: &App, record: &EventRecord) -> anyhow::Result<Outcome> {
    if !is_ttl_removal(record) {
        return Ok(Outcome::Ignored("not a TTL removal"));
    }
    let table = record
        .event_source_arn
        .as_deref()
        .and_then(|arn| arn.split(":table/").nth(1))
        .and_then(|rest| rest.split('/').next())
        .context("the record has no table ARN")?;
    let tables = &app.config.tables;
    if table == tables.recordings {
        let old = serde_json::to_value(&record.change.old_image)?;
        let keys = serde_json::to_value(&record.change.keys)?;
        let s3_key = string(&old, "s3Key")
            .map(String::from)
            .or_else(|| Some(format!("{}/{}.mp3", string(&keys, "userId")?, string(&keys, "recordingId")?)))
            .ok_or_else(|| anyhow!("the record names no audio object"))?;
        app.audio.delete(&s3_key).await?;
        Ok(Outcome::AudioDeleted(s3_key))
    } else if table == tables.sessions {
        let keys = serde_json::to_value(&record.change.keys)?;
        let session = string(&keys, "sessionId").context("the record has no sessionId")?;
        let mut redis = app.redis.conn();
        let _: () = redis.del(redis_key(session)).await.context("dropping the session from Redis")?;
        Ok(Outcome::SessionDropped)
    } else {
        Ok(Outcome::Ignored("not a table with TTL cleanup"))
    }
}

/// A string attribute of an image in DynamoDB JSON (`{"name": {"S": "…"}}`).
fn string<'v>(image: &'v Value, name: &str) -> Option<&'v str> {
    image.get(name)?.get("S")?.as_str()
}
