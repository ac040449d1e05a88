//! What happens when DynamoDB's TTL removes an item (the stream consumer): an expired
//! recording's audio is deleted from S3, an expired session is dropped from Redis. Only TTL
//! removals count (user identity `dynamodb.amazonaws.com`); a user's own delete already cleaned
//! up. Every action is idempotent, because stream records can arrive more than once (an expired
//! upload's storage is freed under a once-only claim).

use anyhow::{Context, anyhow};
use aws_lambda_events::event::{
    dynamodb::{Event, EventRecord},
    streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse},
};
use serde_json::Value;

use crate::{
    clock::unix_ms,
    config::Tables,
    domain::ids::UserId,
    store::{
        audio::AudioStore,
        recordings::Recordings,
        sessions::Sessions,
        users::Users,
        webhook_events::{Claim, WebhookEvents},
    },
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    AudioDeleted(String),
    SessionDropped,
    Ignored(&'static str),
}

/// What the cleanup touches.
pub struct TtlCleanup<'a> {
    pub tables: &'a Tables,
    pub audio: &'a AudioStore,
    pub sessions: &'a Sessions,
    pub users: &'a Users,
    /// Claims each storage release once (stream records can arrive more than once).
    pub events: &'a WebhookEvents,
}

/// Handles a batch; the failed records are reported so that only they are retried.
pub async fn handle_batch(cleanup: &TtlCleanup<'_>, event: Event) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        match cleanup.on_record(record).await {
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

/// The table a stream record came from, by its event source ARN
/// (`arn:aws:dynamodb:…:table/NAME/stream/…`).
pub fn source_table(record: &EventRecord) -> Option<&str> {
    record.event_source_arn.as_deref()?.split(":table/").nth(1)?.split('/').next()
}

impl TtlCleanup<'_> {
    pub async fn on_record(&self, record: &EventRecord) -> anyhow::Result<Outcome> {
        if !is_ttl_removal(record) {
            return Ok(Outcome::Ignored("not a TTL removal"));
        }
        let table = source_table(record).context("the record has no table ARN")?;
        let tables = self.tables;
        if table == tables.recordings {
            let old = serde_json::to_value(&record.change.old_image)?;
            let keys = serde_json::to_value(&record.change.keys)?;
            let s3_key = string(&old, "s3Key")
                .map(String::from)
                .or_else(|| Some(format!("{}/{}.mp3", string(&keys, "userId")?, string(&keys, "recordingId")?)))
                .ok_or_else(|| anyhow!("the record names no audio object"))?;
            self.audio.delete(&s3_key).await?;
            // An expired upload frees its bytes of the owner's storage allowance.
            let bytes = old.get("uploadBytes").and_then(|v| v.get("N")).and_then(Value::as_str).map(str::parse::<u64>);
            let (user, recording) = (string(&keys, "userId"), string(&keys, "recordingId"));
            if let (Some(bytes), Some(user), Some(recording)) = (bytes.transpose()?, user, recording) {
                self.release_once(user, recording, bytes).await?;
            }
            Ok(Outcome::AudioDeleted(s3_key))
        } else if table == tables.sessions {
            let keys = serde_json::to_value(&record.change.keys)?;
            let old = serde_json::to_value(&record.change.old_image)?;
            let session = string(&keys, "sessionId").context("the record has no sessionId")?;
            let user = string(&old, "userId").context("the record's old image has no userId")?;
            let user = UserId::parse(user).map_err(|_| anyhow!("the record's userId is not a user id"))?;
            self.sessions.drop_cached(&user, session).await?;
            Ok(Outcome::SessionDropped)
        } else {
            Ok(Outcome::Ignored("not a table with TTL cleanup"))
        }
    }
}

impl TtlCleanup<'_> {
    /// Frees an expired upload's bytes exactly once, however often its record arrives.
    async fn release_once(&self, user: &str, recording: &str, bytes: u64) -> anyhow::Result<()> {
        let user = UserId::parse(user).map_err(|_| anyhow!("the record's userId is not a user id"))?;
        let claim_id = format!("storage-release:{user}:{recording}");
        let now_ms = unix_ms(time::OffsetDateTime::now_utc());
        match self.events.claim(&claim_id, "storage-release", now_ms, 60_000).await? {
            Claim::Done => Ok(()),
            Claim::InProgress => anyhow::bail!("the release of {recording} is under way elsewhere"),
            Claim::Leased { until_ms } => {
                match self.users.give_back_held(Recordings::removed_by_ttl(user, Some(bytes))).await {
                    Ok(()) => self.events.complete(&claim_id, "released", now_ms).await,
                    Err(error) => {
                        self.events.release(&claim_id, until_ms).await?;
                        Err(error)
                    }
                }
            }
        }
    }
}

/// A string attribute of an image in DynamoDB JSON (`{"name": {"S": "…"}}`).
fn string<'v>(image: &'v Value, name: &str) -> Option<&'v str> {
    image.get(name)?.get("S")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(file: &str) -> Vec<EventRecord> {
        serde_json::from_str::<Event>(file).unwrap().records
    }

    #[test]
    fn given_a_ttl_removal_then_it_counts_and_names_its_table() {
        let ttl = records(include_str!("../../../events/stream-recording-ttl.json"));
        assert!(ttl.iter().all(is_ttl_removal));
        assert_eq!(source_table(&ttl[0]), Some("voice-local-recordings"));
    }

    #[test]
    fn given_a_users_own_delete_then_it_is_not_a_ttl_removal() {
        let deleted = records(include_str!("../../../events/stream-recording-user-delete.json"));
        assert!(!deleted.is_empty() && !deleted.iter().any(is_ttl_removal));
    }
}
