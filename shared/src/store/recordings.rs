//! Recordings: rows in DynamoDB (PK userId, SK recordingId) and audio in S3 at
//! `{userId}/{recordingId}.{ext}`. Every access is keyed by the caller's own user id, so another
//! user's recording is simply not found.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::{
    Client,
    operation::update_item::builders::UpdateItemFluentBuilder,
    types::{AttributeValue, Put, ReturnValue, TransactWriteItem},
};
use base64::{Engine, prelude::BASE64_URL_SAFE_NO_PAD};
use serde::Serialize;

use crate::{
    domain::{
        allowance::Allowance,
        audio::{AudioConfig, AudioType, RecordingSource},
        ids::{RecordingId, UserId},
    },
    store::{
        dynamo::{self, Item, number, string},
        pending_uploads::{self, PendingUpload},
        users::{Removed, Units},
    },
};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    pub recording_id: RecordingId,
    #[serde(skip)]
    pub user_id: UserId,
    pub voice_id: Option<String>,
    pub voice_name: Option<String>,
    pub text: Option<String>,
    pub preset_used: Option<String>,
    pub audio_config: Option<AudioConfig>,
    pub content_type: AudioType,
    #[serde(skip)]
    pub s3_key: String,
    pub is_favorite: bool,
    pub created_at: String,
    /// Unix seconds; None while a favourite.
    pub expires_at: Option<i64>,
    pub source: RecordingSource,
    /// An upload's reserved bytes (the storage allowance), freed when the recording goes.
    #[serde(skip)]
    pub upload_bytes: Option<u64>,
}

impl Recording {
    pub fn s3_key_for(user: &UserId, id: &RecordingId, content_type: AudioType) -> String {
        format!("{user}/{id}.{}", content_type.extension())
    }

    fn to_item(&self) -> Item {
        let mut item = HashMap::from([
            ("userId".to_owned(), string(self.user_id.as_str())),
            ("recordingId".to_owned(), string(self.recording_id.as_str())),
            ("contentType".to_owned(), string(self.content_type.mime())),
            ("s3Key".to_owned(), string(&self.s3_key)),
            ("isFavorite".to_owned(), AttributeValue::Bool(self.is_favorite)),
            ("createdAt".to_owned(), string(&self.created_at)),
            ("source".to_owned(), string(self.source.as_str())),
        ]);
        let optional = [
            ("voiceId", &self.voice_id),
            ("voiceName", &self.voice_name),
            ("text", &self.text),
            ("presetUsed", &self.preset_used),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                item.insert(name.to_owned(), string(value));
            }
        }
        if let Some(expires_at) = self.expires_at {
            item.insert("expiresAt".to_owned(), number(expires_at));
        }
        if let Some(bytes) = self.upload_bytes {
            item.insert("uploadBytes".to_owned(), number(bytes));
        }
        if self.is_favorite {
            item.insert("favoriteRecordingId".to_owned(), string(self.recording_id.as_str()));
        }
        if let Some(config) = &self.audio_config {
            item.insert("audioConfig".to_owned(), string(serde_json::to_string(config).expect("configs serialize")));
        }
        item
    }

    fn from_item(item: &Item) -> anyhow::Result<Self> {
        let id = dynamo::str(item, "recordingId")?;
        Ok(Self {
            recording_id: RecordingId::parse(id).with_context(|| format!("stored recording id {id:?}"))?,
            user_id: UserId::parse(dynamo::str(item, "userId")?).context("stored user id")?,
            voice_id: dynamo::opt_str(item, "voiceId").map(String::from),
            voice_name: dynamo::opt_str(item, "voiceName").map(String::from),
            text: dynamo::opt_str(item, "text").map(String::from),
            preset_used: dynamo::opt_str(item, "presetUsed").map(String::from),
            audio_config: dynamo::opt_str(item, "audioConfig").map(serde_json::from_str).transpose()?,
            content_type: dynamo::str(item, "contentType")?.parse()?,
            s3_key: dynamo::str(item, "s3Key")?.to_owned(),
            is_favorite: item.get("isFavorite").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
            created_at: dynamo::str(item, "createdAt")?.to_owned(),
            expires_at: dynamo::opt_num(item, "expiresAt")?,
            source: dynamo::opt_str(item, "source").unwrap_or("tts").parse()?,
            upload_bytes: dynamo::opt_num(item, "uploadBytes")?,
        })
    }
}

/// One page of a user's recordings, newest first.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub items: Vec<Recording>,
    pub next_cursor: Option<String>,
}

#[derive(Clone)]
pub struct Recordings {
    client: Client,
    table: String,
}

const FAVORITES_INDEX: &str = "favorites-index";

impl Recordings {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    pub async fn put(&self, recording: &Recording) -> anyhow::Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(recording.to_item()))
            .condition_expression("attribute_not_exists(recordingId)")
            .send()
            .await
            .context("storing the recording")?;
        Ok(())
    }

    /// Stores the recording and, in the same transaction, `with` (an overage generation's usage
    /// event): both are written or neither.
    pub async fn put_with(&self, recording: &Recording, with: TransactWriteItem) -> anyhow::Result<()> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(recording.to_item()))
            .condition_expression("attribute_not_exists(recordingId)")
            .build()
            .context("building the recording's put")?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(with)
            .send()
            .await
            .context("storing the recording and its usage event")?;
        Ok(())
    }

    /// Stores an uploaded recording whose object is still to come (its URL expires at
    /// `deadline`, unix seconds).
    pub async fn put_upload(&self, recording: &Recording, deadline: i64) -> anyhow::Result<()> {
        let mut item = recording.to_item();
        pending_uploads::mark(&mut item, deadline);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(recordingId)")
            .send()
            .await
            .context("storing the upload")?;
        Ok(())
    }

    /// Uploads whose URL expired before `before`, object seen or not.
    pub async fn pending_uploads(&self, before: i64) -> anyhow::Result<Vec<PendingUpload>> {
        pending_uploads::due(&self.client, &self.table, ["userId", "recordingId"], before).await
    }

    pub async fn confirm_upload(&self, pending: &PendingUpload) -> anyhow::Result<bool> {
        pending_uploads::confirm(&self.client, &self.table, &pending.key).await
    }

    /// The upload's URL expired unused: its row goes, and the month's upload and the bytes it
    /// held with it.
    pub async fn abandon_upload(&self, pending: &PendingUpload) -> anyhow::Result<Option<Removed<PendingUpload>>> {
        pending_uploads::abandon(&self.client, &self.table, pending).await
    }

    pub async fn get(&self, user: &UserId, id: &RecordingId) -> anyhow::Result<Option<Recording>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("userId", string(user.as_str()))
            .key("recordingId", string(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .context("reading the recording")?;
        output.item.as_ref().map(Recording::from_item).transpose()
    }

    /// Newest first. The cursor carries only the last recording id; the user id always comes from
    /// the caller, so a cursor can never page into someone else's recordings. Expired rows that
    /// DynamoDB's TTL has not removed yet are left out (a page may then hold fewer than `limit`).
    pub async fn list(
        &self,
        user: &UserId,
        limit: u32,
        cursor: Option<&RecordingId>,
        favourites_only: bool,
        now: i64,
    ) -> anyhow::Result<Page> {
        let sort_key = if favourites_only { "favoriteRecordingId" } else { "recordingId" };
        let mut query = dynamo::user_query(&self.client, &self.table, None, user)
            .filter_expression("attribute_not_exists(expiresAt) OR expiresAt > :now")
            .expression_attribute_values(":now", number(now))
            .scan_index_forward(false)
            .limit(limit as i32);
        if favourites_only {
            query = query.index_name(FAVORITES_INDEX);
        }
        if let Some(after) = cursor {
            let mut start = HashMap::from([
                ("userId".to_owned(), string(user.as_str())),
                ("recordingId".to_owned(), string(after.as_str())),
            ]);
            if favourites_only {
                start.insert(sort_key.to_owned(), string(after.as_str()));
            }
            query = query.set_exclusive_start_key(Some(start));
        }
        let output = query.send().await.context("listing recordings")?;
        let items =
            output.items.unwrap_or_default().iter().map(Recording::from_item).collect::<anyhow::Result<Vec<_>>>()?;
        let next_cursor = output
            .last_evaluated_key
            .as_ref()
            .and_then(|key| dynamo::opt_str(key, "recordingId"))
            .map(|id| BASE64_URL_SAFE_NO_PAD.encode(id));
        Ok(Page { items, next_cursor })
    }

    /// Makes the recording a favourite: kept for good (no expiresAt) and listed in the sparse
    /// index. None when the caller has no such recording, or it already is one (of concurrent
    /// identical requests, exactly one makes the change).
    pub async fn favourite(&self, user: &UserId, id: &RecordingId, at: i64) -> anyhow::Result<Option<Recording>> {
        let update = self
            .set_favourite(user, id, true, at)
            .update_expression(
                "SET isFavorite = :favorite, favoriteRecordingId = :id, retag = :due, retagAt = :at REMOVE expiresAt",
            )
            .expression_attribute_values(":id", string(id.as_str()));
        let output = dynamo::conditional_update(update).await.context("updating the recording")?;
        output.and_then(|o| o.attributes).as_ref().map(Recording::from_item).transpose()
    }

    /// Makes a favourite an ordinary recording again, expiring at `expires_at`: the favourite
    /// place it held is freed, for the one caller whose write made the change. None when the
    /// caller has no such recording, or it is not a favourite.
    pub async fn unfavourite(
        &self,
        user: &UserId,
        id: &RecordingId,
        expires_at: i64,
        at: i64,
    ) -> anyhow::Result<Option<Removed<Recording>>> {
        let update = self
            .set_favourite(user, id, false, at)
            .update_expression(UNFAVOURITE)
            .expression_attribute_values(":expires", number(expires_at));
        let output = dynamo::conditional_update(update).await.context("updating the recording")?;
        let Some(recording) = output.and_then(|o| o.attributes).as_ref().map(Recording::from_item).transpose()? else {
            return Ok(None);
        };
        Ok(Some(Removed::new(recording, user.clone(), vec![Units::one(Allowance::Favourites)], None)))
    }

    /// Takes back a favourite change that got no place of the plan (it held none, so it frees
    /// none).
    pub async fn undo_favourite(
        &self,
        user: &UserId,
        id: &RecordingId,
        expires_at: i64,
        at: i64,
    ) -> anyhow::Result<()> {
        let update = self
            .set_favourite(user, id, false, at)
            .update_expression(UNFAVOURITE)
            .expression_attribute_values(":expires", number(expires_at));
        dynamo::conditional_update(update).await.context("undoing a favourite")?;
        Ok(())
    }

    /// The conditional half of a favourite change: only a change, of an existing recording. It
    /// also marks the recording due for a retag (`retag-index`) until its object's tag agrees.
    fn set_favourite(&self, user: &UserId, id: &RecordingId, favorite: bool, at: i64) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("userId", string(user.as_str()))
            .key("recordingId", string(id.as_str()))
            .condition_expression("attribute_exists(recordingId) AND NOT (isFavorite = :favorite)")
            .expression_attribute_values(":favorite", AttributeValue::Bool(favorite))
            .expression_attribute_values(":due", string(RETAG_DUE))
            .expression_attribute_values(":at", number(at))
            .return_values(ReturnValue::AllNew)
    }

    /// The object's tag now agrees with the recording being (or not) a `favourite`: the retag
    /// mark goes, unless the recording changed again meanwhile (false: tag it again).
    pub async fn retag_settled(&self, user: &UserId, id: &RecordingId, favourite: bool) -> anyhow::Result<bool> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("userId", string(user.as_str()))
            .key("recordingId", string(id.as_str()))
            .update_expression("REMOVE retag, retagAt")
            .condition_expression("attribute_exists(retag) AND isFavorite = :favorite")
            .expression_attribute_values(":favorite", AttributeValue::Bool(favourite));
        Ok(dynamo::conditional_update(update).await.context("settling a retag")?.is_some())
    }

    /// Recordings marked for a retag before `before` (unix seconds): (user, recording).
    pub async fn retags_due(&self, before: i64) -> anyhow::Result<Vec<(UserId, RecordingId)>> {
        let items =
            dynamo::due_before(&self.client, &self.table, "retag-index", ("retag", RETAG_DUE), ("retagAt", before))
                .await?;
        items
            .iter()
            .map(|item| {
                let user = UserId::parse(dynamo::str(item, "userId")?).context("stored userId")?;
                let id = RecordingId::parse(dynamo::str(item, "recordingId")?).context("stored recordingId")?;
                Ok((user, id))
            })
            .collect()
    }

    /// Deletes every recording row of the user.
    pub async fn delete_all(&self, user: &UserId) -> anyhow::Result<usize> {
        dynamo::delete_partition(&self.client, &self.table, ("userId", user.as_str()), "recordingId").await
    }

    /// Deletes the caller's recording: with it go the favourite place and the uploaded bytes it
    /// held (as its row said when it was removed), for the one caller whose delete removed it.
    /// None for every other, and when there is no such recording.
    pub async fn delete(&self, user: &UserId, id: &RecordingId) -> anyhow::Result<Option<Removed<Recording>>> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("userId", string(user.as_str()))
            .key("recordingId", string(id.as_str()))
            .condition_expression("attribute_exists(recordingId)");
        let Some(old) = dynamo::conditional_delete(delete).await.context("deleting the recording")? else {
            return Ok(None);
        };
        let recording = Recording::from_item(&old)?;
        let units = held(recording.is_favorite, recording.upload_bytes);
        Ok(Some(Removed::new(recording, user.clone(), units, None)))
    }

    /// What DynamoDB's TTL removed (a record of the table's stream): the uploaded bytes the
    /// recording held. The caller claims each record once (stream records can repeat); an
    /// expired recording is never a favourite.
    pub fn removed_by_ttl(user: UserId, upload_bytes: Option<u64>) -> Removed<()> {
        Removed::new((), user, held(false, upload_bytes), None)
    }
}

/// The retag mark's partition value (`retag-index`).
const RETAG_DUE: &str = "due";

const UNFAVOURITE: &str =
    "SET isFavorite = :favorite, expiresAt = :expires, retag = :due, retagAt = :at REMOVE favoriteRecordingId";

/// The allowance units a recording holds while it exists.
fn held(favourite: bool, upload_bytes: Option<u64>) -> Vec<Units> {
    let mut units = Vec::new();
    if favourite {
        units.push(Units::one(Allowance::Favourites));
    }
    if let Some(bytes) = upload_bytes.filter(|b| *b > 0) {
        units.push(Units::of(Allowance::StorageBytes, bytes));
    }
    units
}

/// Decodes a list cursor back to the recording id it carries.
pub fn parse_cursor(raw: &str) -> Option<RecordingId> {
    let bytes = BASE64_URL_SAFE_NO_PAD.decode(raw).ok()?;
    RecordingId::parse(std::str::from_utf8(&bytes).ok()?)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::OffsetDateTime;

    use super::*;

    proptest! {
        /// Any `cursor` query value: no panic, and only a real recording id gets through.
        #[test]
        fn cursors_parse_only_recording_ids(raw in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,60}"]) {
            if let Some(id) = parse_cursor(&raw) {
                prop_assert!(RecordingId::parse(id.as_str()).is_some());
            }
        }
    }

    #[test]
    fn cursors_carry_only_a_recording_id() {
        let id = RecordingId::generate(OffsetDateTime::now_utc());
        assert_eq!(parse_cursor(&BASE64_URL_SAFE_NO_PAD.encode(id.as_str())), Some(id));
        assert_eq!(parse_cursor("not base64!"), None);
        assert_eq!(parse_cursor(&BASE64_URL_SAFE_NO_PAD.encode("auth0|other#01ARZ")), None);
    }
}
