//! The voices table (PK userId, SK itemId): the user's cloned voices (`voice#{id}`) and their
//! uploaded samples (`sample#{id}`). Every key starts with the caller's own user id, so another
//! user's voice or sample is simply not found. The sparse `elevenlabs-index` finds a clone by
//! its ElevenLabs id.
//!
//! Placement and residency: a clone is placed on one ElevenLabs account when it is made and
//! stays there (`account`). While its voice exists at ElevenLabs it carries `elevenLabsVoiceId`
//! and `residentIn` (that account's name). The sparse `resident-index` (PK `residentIn`, SK
//! `lastUsedMs`) therefore lists exactly the clones occupying one account's slots, least
//! recently used first. A clone being re-created holds a lease (`rebuildUntil`, ms) so two
//! concurrent uses create it once.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use aws_sdk_dynamodb::{
    Client,
    types::{AttributeValue, ReturnValue},
};
use serde::Serialize;

use crate::{
    domain::{
        allowance::Allowance,
        audio::AudioType,
        ids::{SampleId, Ulid, UserId, VoiceId},
    },
    store::{
        dynamo::{self, Item, number, string},
        pending_uploads::{self, PendingUpload},
        users::{Removed, Units},
    },
};

const VOICE: &str = "voice#";
const SAMPLE: &str = "sample#";
const ELEVENLABS_INDEX: &str = "elevenlabs-index";
const RESIDENT_INDEX: &str = "resident-index";

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub sample_id: SampleId,
    pub user_id: UserId,
    pub content_type: AudioType,
    pub size_bytes: u64,
    pub s3_key: String,
    pub created_at: String,
    /// Unix seconds; None once a clone uses it.
    pub expires_at: Option<i64>,
}

impl Sample {
    pub fn s3_key_for(user: &UserId, id: &SampleId, content_type: AudioType) -> String {
        format!("{user}/voice-samples/{id}.{}", content_type.extension())
    }

    /// Where the clone `voice` of `owner` (the uploader, or a workspace's library) keeps its own
    /// copy of this sample: a clone owns its samples, so deleting one clone never takes
    /// another's, and a library's copies are under the workspace's prefix, not the uploader's.
    pub fn copy_key_for(&self, owner: &UserId, voice: &VoiceId) -> String {
        format!("{owner}/voice-samples/{voice}/{}.{}", self.sample_id, self.content_type.extension())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Voice {
    pub voice_id: VoiceId,
    #[serde(skip)]
    pub user_id: UserId,
    pub name: String,
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub sample_ids: Vec<SampleId>,
    /// Never leaves the backend.
    #[serde(skip)]
    pub elevenlabs_voice_id: Option<String>,
    /// The ElevenLabs account the clone is placed on, for good; empty for a clone stored before
    /// there were several accounts and not resident now (it belongs to the primary one).
    #[serde(skip)]
    pub account: String,
    #[serde(skip)]
    pub sample_keys: Vec<String>,
    #[serde(skip)]
    pub consent_id: Ulid,
    pub created_at: String,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
    /// Unix milliseconds: the least-recently-used order of resident clones.
    #[serde(skip)]
    pub last_used_ms: i64,
    pub remove_background_noise: bool,
    /// A delete that failed at ElevenLabs and waits for a retry.
    #[serde(skip)]
    pub deleting: bool,
    /// Whose samples a workspace library's voice was made of (their consent; their erasure
    /// takes it). None for a person's own clone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uploaded_by: Option<UserId>,
}

fn sample_item(sample: &Sample) -> Item {
    let mut item = HashMap::from([
        ("userId".to_owned(), string(sample.user_id.as_str())),
        ("itemId".to_owned(), string(format!("{SAMPLE}{}", sample.sample_id))),
        ("contentType".to_owned(), string(sample.content_type.mime())),
        ("sizeBytes".to_owned(), number(sample.size_bytes)),
        ("s3Key".to_owned(), string(&sample.s3_key)),
        ("createdAt".to_owned(), string(&sample.created_at)),
    ]);
    if let Some(at) = sample.expires_at {
        item.insert("expiresAt".to_owned(), number(at));
    }
    item
}

fn sample_from(item: &Item) -> anyhow::Result<Sample> {
    let raw = dynamo::str(item, "itemId")?;
    Ok(Sample {
        sample_id: raw.strip_prefix(SAMPLE).and_then(Ulid::parse).context("stored sample id")?,
        user_id: UserId::parse(dynamo::str(item, "userId")?).context("stored user id")?,
        content_type: dynamo::str(item, "contentType")?.parse()?,
        size_bytes: dynamo::num(item, "sizeBytes")?,
        s3_key: dynamo::str(item, "s3Key")?.to_owned(),
        created_at: dynamo::str(item, "createdAt")?.to_owned(),
        expires_at: dynamo::opt_num(item, "expiresAt")?,
    })
}

fn strings(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(string).collect())
}

fn string_list(item: &Item, name: &str) -> Vec<String> {
    item.get(name)
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

/// A clone occupying one of the account's ElevenLabs slots.
#[derive(Debug, Clone, PartialEq)]
pub struct Resident {
    pub user_id: UserId,
    pub voice_id: VoiceId,
    pub elevenlabs_voice_id: String,
}

fn voice_item(voice: &Voice) -> Item {
    let ids: Vec<String> = voice.sample_ids.iter().map(ToString::to_string).collect();
    let mut item = HashMap::from([
        ("userId".to_owned(), string(voice.user_id.as_str())),
        ("itemId".to_owned(), string(format!("{VOICE}{}", voice.voice_id))),
        ("name".to_owned(), string(&voice.name)),
        ("labels".to_owned(), string(serde_json::to_string(&voice.labels).expect("labels serialize"))),
        ("sampleIds".to_owned(), strings(&ids)),
        ("sampleKeys".to_owned(), strings(&voice.sample_keys)),
        ("consentId".to_owned(), string(voice.consent_id.as_str())),
        ("createdAt".to_owned(), string(&voice.created_at)),
        ("lastUsedMs".to_owned(), number(voice.last_used_ms)),
        ("removeBackgroundNoise".to_owned(), AttributeValue::Bool(voice.remove_background_noise)),
    ]);
    if let Some(description) = &voice.description {
        item.insert("description".to_owned(), string(description));
    }
    if !voice.account.is_empty() {
        item.insert("account".to_owned(), string(&voice.account));
    }
    if let Some(id) = &voice.elevenlabs_voice_id {
        item.insert("elevenLabsVoiceId".to_owned(), string(id));
        item.insert("residentIn".to_owned(), string(&voice.account));
    }
    if let Some(at) = voice.last_used_at {
        item.insert("lastUsedAt".to_owned(), number(at));
    }
    if let Some(uploader) = &voice.uploaded_by {
        item.insert("uploadedBy".to_owned(), string(uploader.as_str()));
    }
    item
}

fn voice_from(item: &Item) -> anyhow::Result<Voice> {
    let raw = dynamo::str(item, "itemId")?;
    Ok(Voice {
        voice_id: raw.strip_prefix(VOICE).and_then(Ulid::parse).context("stored voice id")?,
        user_id: UserId::parse(dynamo::str(item, "userId")?).context("stored user id")?,
        name: dynamo::str(item, "name")?.to_owned(),
        description: dynamo::opt_str(item, "description").map(String::from),
        labels: dynamo::opt_str(item, "labels").map(serde_json::from_str).transpose()?.unwrap_or_default(),
        sample_ids: string_list(item, "sampleIds").iter().filter_map(|id| Ulid::parse(id)).collect(),
        elevenlabs_voice_id: dynamo::opt_str(item, "elevenLabsVoiceId").map(String::from),
        account: dynamo::opt_str(item, "account")
            .or(dynamo::opt_str(item, "residentIn"))
            .unwrap_or_default()
            .to_owned(),
        sample_keys: string_list(item, "sampleKeys"),
        consent_id: Ulid::parse(dynamo::str(item, "consentId")?).context("stored consent id")?,
        created_at: dynamo::str(item, "createdAt")?.to_owned(),
        last_used_at: dynamo::opt_num(item, "lastUsedAt")?,
        last_used_ms: dynamo::opt_num(item, "lastUsedMs")?.unwrap_or_default(),
        remove_background_noise: dynamo::flag(item, "removeBackgroundNoise"),
        deleting: dynamo::flag(item, "deleting"),
        uploaded_by: dynamo::opt_str(item, "uploadedBy").map(UserId::parse).transpose().context("stored uploadedBy")?,
    })
}

#[derive(Clone)]
pub struct Voices {
    client: Client,
    table: String,
}

impl Voices {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn update_voice(
        &self,
        user: &UserId,
        id: &VoiceId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("userId", string(user.as_str()))
            .key("itemId", string(format!("{VOICE}{id}")))
    }

    async fn get(&self, user: &UserId, item_id: String) -> anyhow::Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("userId", string(user.as_str()))
            .key("itemId", string(item_id))
            .consistent_read(true)
            .send()
            .await
            .context("reading the voices table")?;
        Ok(output.item)
    }

    /// Stores a sample whose object is still to come (its URL expires at `deadline`).
    pub async fn put_sample(&self, sample: &Sample, deadline: i64) -> anyhow::Result<()> {
        let mut item = sample_item(sample);
        pending_uploads::mark(&mut item, deadline);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(itemId)")
            .send()
            .await
            .context("storing the sample")?;
        Ok(())
    }

    /// Samples whose URL expired before `before`, object seen or not.
    pub async fn pending_samples(&self, before: i64) -> anyhow::Result<Vec<PendingUpload>> {
        pending_uploads::due(&self.client, &self.table, ["userId", "itemId"], before).await
    }

    pub async fn confirm_sample(&self, pending: &PendingUpload) -> anyhow::Result<bool> {
        pending_uploads::confirm(&self.client, &self.table, &pending.key).await
    }

    /// The sample's URL expired unused: its row goes, and the month's upload it held with it.
    pub async fn abandon_sample(&self, pending: &PendingUpload) -> anyhow::Result<Option<Removed<PendingUpload>>> {
        pending_uploads::abandon(&self.client, &self.table, pending).await
    }

    /// The caller's sample, unless it expired (TTL removal can lag).
    pub async fn sample(&self, user: &UserId, id: &SampleId, now: i64) -> anyhow::Result<Option<Sample>> {
        let sample = self.get(user, format!("{SAMPLE}{id}")).await?.as_ref().map(sample_from).transpose()?;
        Ok(sample.filter(|s| s.expires_at.is_none_or(|at| at > now)))
    }

    pub async fn put_voice(&self, voice: &Voice) -> anyhow::Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(voice_item(voice)))
            .condition_expression("attribute_not_exists(itemId)")
            .send()
            .await
            .context("storing the voice")?;
        Ok(())
    }

    pub async fn voice(&self, user: &UserId, id: &VoiceId) -> anyhow::Result<Option<Voice>> {
        self.get(user, format!("{VOICE}{id}")).await?.as_ref().map(voice_from).transpose()
    }

    /// Every voice row of the user, those being deleted included.
    pub async fn all_voices(&self, user: &UserId) -> anyhow::Result<Vec<Voice>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("userId = :user AND begins_with(itemId, :voice)")
            .expression_attribute_values(":user", string(user.as_str()))
            .expression_attribute_values(":voice", string(VOICE))
            .consistent_read(true)
            .send()
            .await
            .context("listing voices")?;
        output.items.unwrap_or_default().iter().map(voice_from).collect()
    }

    /// Deletes every row of the user: voices and samples.
    pub async fn delete_all(&self, user: &UserId) -> anyhow::Result<usize> {
        dynamo::delete_partition(&self.client, &self.table, ("userId", user.as_str()), "itemId").await
    }

    /// The caller's voices, oldest first (a user holds at most their tier's slots), without
    /// those being deleted.
    pub async fn list(&self, user: &UserId) -> anyhow::Result<Vec<Voice>> {
        let mut voices = self.all_voices(user).await?;
        voices.retain(|v| !v.deleting);
        Ok(voices)
    }

    /// Renames or re-describes the caller's voice; None when there is no such voice.
    pub async fn update(
        &self,
        user: &UserId,
        id: &VoiceId,
        name: Option<&str>,
        description: Option<Option<&str>>,
    ) -> anyhow::Result<Option<Voice>> {
        let mut sets = Vec::new();
        let mut update = self
            .update_voice(user, id)
            .condition_expression("attribute_exists(itemId) AND attribute_not_exists(deleting)")
            .return_values(ReturnValue::AllNew);
        if let Some(name) = name {
            sets.push("#name = :name");
            update =
                update.expression_attribute_names("#name", "name").expression_attribute_values(":name", string(name));
        }
        let mut expression = String::new();
        match description {
            Some(Some(text)) => {
                sets.push("description = :description");
                update = update.expression_attribute_values(":description", string(text));
            }
            Some(None) => expression.push_str(" REMOVE description"),
            None => {}
        }
        let expression = if sets.is_empty() { expression } else { format!("SET {}{expression}", sets.join(", ")) };
        let output =
            dynamo::conditional_update(update.update_expression(expression)).await.context("updating the voice")?;
        output.and_then(|o| o.attributes).as_ref().map(voice_from).transpose()
    }

    /// Records a use, for the least-recently-used order of resident clones.
    pub async fn touch(&self, user: &UserId, id: &VoiceId, now_ms: i64) -> anyhow::Result<()> {
        self.update_voice(user, id)
            .update_expression("SET lastUsedAt = :seconds, lastUsedMs = :ms")
            .condition_expression("attribute_exists(itemId)")
            .expression_attribute_values(":seconds", number(now_ms.div_euclid(1000)))
            .expression_attribute_values(":ms", number(now_ms))
            .send()
            .await
            .context("recording the voice's use")?;
        Ok(())
    }

    /// A query of `account`'s resident clones, least recently used first.
    fn residents(&self, account: &str) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(RESIDENT_INDEX)
            .key_condition_expression("residentIn = :account")
            .expression_attribute_values(":account", string(account))
            .scan_index_forward(true)
    }

    /// `account`'s resident clones, least recently used first (at most `limit`).
    pub async fn least_recently_used(&self, account: &str, limit: i32) -> anyhow::Result<Vec<Resident>> {
        let output = self.residents(account).limit(limit).send().await.context("listing resident clones")?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let raw = dynamo::str(item, "itemId")?;
                Ok(Resident {
                    user_id: UserId::parse(dynamo::str(item, "userId")?).context("stored user id")?,
                    voice_id: raw.strip_prefix(VOICE).and_then(Ulid::parse).context("stored voice id")?,
                    elevenlabs_voice_id: dynamo::str(item, "elevenLabsVoiceId")?.to_owned(),
                })
            })
            .collect()
    }

    /// The user's clones resident in `account`, least recently used first.
    pub async fn resident_of(&self, account: &str, user: &UserId) -> anyhow::Result<Vec<Resident>> {
        let mut voices = self.all_voices(user).await?;
        voices.retain(|v| v.elevenlabs_voice_id.is_some() && !v.deleting && v.account == account);
        voices.sort_by_key(|v| v.last_used_ms);
        Ok(voices
            .into_iter()
            .filter_map(|v| {
                Some(Resident { user_id: v.user_id, voice_id: v.voice_id, elevenlabs_voice_id: v.elevenlabs_voice_id? })
            })
            .collect())
    }

    /// How many clones occupy `account`'s slots, by our records.
    pub async fn resident_count(&self, account: &str) -> anyhow::Result<u32> {
        let mut count = 0;
        let mut start = None;
        loop {
            let output = self
                .residents(account)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("counting resident clones")?;
            count += u32::try_from(output.count).unwrap_or(0);
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(count);
            }
        }
    }

    /// Records that the clone's ElevenLabs voice `elevenlabs_id` is gone; false when the row
    /// already says otherwise (someone else evicted or re-created it first).
    pub async fn evict(&self, user: &UserId, id: &VoiceId, elevenlabs_id: &str) -> anyhow::Result<bool> {
        let update = self
            .update_voice(user, id)
            .update_expression("REMOVE elevenLabsVoiceId, residentIn")
            .condition_expression("elevenLabsVoiceId = :old")
            .expression_attribute_values(":old", string(elevenlabs_id));
        Ok(dynamo::conditional_update(update).await.context("evicting a clone")?.is_some())
    }

    /// Takes the lease to re-create a clone that is not resident: true for exactly one of any
    /// number of concurrent callers (until `until_ms`, after which a new caller may take it over).
    pub async fn claim_rebuild(&self, user: &UserId, id: &VoiceId, now_ms: i64, until_ms: i64) -> anyhow::Result<bool> {
        let update = self
            .update_voice(user, id)
            .update_expression("SET rebuildUntil = :until")
            .condition_expression(
                "attribute_exists(itemId) AND attribute_not_exists(deleting) \
                 AND attribute_not_exists(elevenLabsVoiceId) \
                 AND (attribute_not_exists(rebuildUntil) OR rebuildUntil < :now)",
            )
            .expression_attribute_values(":until", number(until_ms))
            .expression_attribute_values(":now", number(now_ms));
        Ok(dynamo::conditional_update(update).await.context("claiming a clone's re-creation")?.is_some())
    }

    /// Records the clone's ElevenLabs id re-created at `account`, if the lease `until_ms` is
    /// still ours and the voice is not being deleted; false otherwise (the caller removes what
    /// it created).
    pub async fn make_resident(
        &self,
        account: &str,
        user: &UserId,
        id: &VoiceId,
        elevenlabs_id: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let update = self
            .update_voice(user, id)
            .update_expression(
                "SET elevenLabsVoiceId = :id, residentIn = :account, account = :account, lastUsedMs = :ms, lastUsedAt = :seconds \
                 REMOVE rebuildUntil",
            )
            .condition_expression("rebuildUntil = :until AND attribute_not_exists(deleting)")
            .expression_attribute_values(":id", string(elevenlabs_id))
            .expression_attribute_values(":account", string(account))
            .expression_attribute_values(":ms", number(now_ms))
            .expression_attribute_values(":seconds", number(now_ms.div_euclid(1000)))
            .expression_attribute_values(":until", number(until_ms));
        Ok(dynamo::conditional_update(update).await.context("recording a re-created clone")?.is_some())
    }

    /// Gives a re-creation lease back after a failure, so the next use may try at once.
    pub async fn release_rebuild(&self, user: &UserId, id: &VoiceId, until_ms: i64) -> anyhow::Result<()> {
        let update = self
            .update_voice(user, id)
            .update_expression("REMOVE rebuildUntil")
            .condition_expression("rebuildUntil = :until")
            .expression_attribute_values(":until", number(until_ms));
        dynamo::conditional_update(update).await.context("releasing a clone's re-creation")?;
        Ok(())
    }

    /// Marks a voice whose deletion is under way (hidden from lists, never made resident again;
    /// a retried DELETE finishes it): the voice as marked, so its ElevenLabs id is the one read
    /// AFTER the mark (a re-creation that finished before it is included; none can finish after
    /// it). None when there is no such voice.
    pub async fn mark_deleting(&self, user: &UserId, id: &VoiceId) -> anyhow::Result<Option<Voice>> {
        let update = self
            .update_voice(user, id)
            .update_expression("SET deleting = :yes")
            .condition_expression("attribute_exists(itemId)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .return_values(ReturnValue::AllNew);
        let marked = dynamo::conditional_update(update).await.context("marking the voice for deletion")?;
        marked.and_then(|o| o.attributes).as_ref().map(voice_from).transpose()
    }

    /// Removes the voice's row: the voice and the clone slot it held, for the one caller whose
    /// delete removed it (None for every other, and when there is no such voice).
    pub async fn delete_voice(&self, user: &UserId, id: &VoiceId) -> anyhow::Result<Option<Removed<Voice>>> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("userId", string(user.as_str()))
            .key("itemId", string(format!("{VOICE}{id}")))
            .condition_expression("attribute_exists(itemId)");
        let Some(old) = dynamo::conditional_delete(delete).await.context("deleting the voice")? else {
            return Ok(None);
        };
        let units = vec![Units::one(Allowance::CloneSlots)];
        Ok(Some(Removed::new(voice_from(&old)?, user.clone(), units, None)))
    }

    /// Whether some user's clone has this ElevenLabs id (such an id is never a premade voice).
    pub async fn is_cloned_elevenlabs_id(&self, elevenlabs_voice_id: &str) -> anyhow::Result<bool> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ELEVENLABS_INDEX)
            .key_condition_expression("elevenLabsVoiceId = :id")
            .expression_attribute_values(":id", string(elevenlabs_voice_id))
            .limit(1)
            .send()
            .await
            .context("looking up a voice id")?;
        Ok(output.count > 0)
    }
}
