//! Voice cloning: samples uploaded by presigned PUT, instant clones made from the caller's own
//! samples with consent recorded, and deletion that leaves no slot, voice or sample behind.
//!
//! A clone's slot is reserved with one conditional write before ElevenLabs is called and given
//! back on any failure after it, so N concurrent creates with k slots left succeed exactly k
//! times and a failure leaves no row, no consent record and no used slot.

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    clock::{timestamp, unix_ms},
    config::VoiceSettings,
    domain::{
        allowance::Allowance,
        ids::{ElevenLabsVoiceId, SampleId, Ulid, VoiceId},
        session::ClientInfo,
        usage::UsagePeriod,
        user::User,
        voices::{CLONE_MAX_BYTES, CONSENT_RETENTION_SECS, CONSENT_VERSION, NewVoice, SampleRequest},
    },
    error::ApiError,
    flows::{
        elevenlabs_accounts, uploads,
        voice_slots::{Added, VoiceSlots, sample_files},
    },
    store::{
        audio::AudioStore,
        consent::{ConsentRecord, ConsentRecords},
        users::Users,
        voices::{Sample, Voice, Voices},
    },
    upstream::elevenlabs::{Accounts, ElevenLabs, NewClone},
};

/// How long an uploaded sample that no clone uses is kept (its row's TTL; the bucket's lifecycle
/// rule removes the object as a safety net).
pub const SAMPLE_TTL_SECS: i64 = 24 * 3600;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleUpload {
    pub sample_id: SampleId,
    pub upload_url: String,
    pub method: &'static str,
    pub headers: serde_json::Value,
    pub expires_in: u64,
}

/// Registers a sample and presigns its upload (type and length signed, tagged temporary). It
/// counts as one of the month's uploads; its bytes are bounded by the clone slots instead of the
/// storage allowance.
pub async fn upload_sample(
    users: &Users,
    voices: &Voices,
    audio: &AudioStore,
    user: &User,
    request: &SampleRequest,
    now: OffsetDateTime,
) -> Result<SampleUpload, ApiError> {
    let (content_type, size) = request.check()?;
    let reservation = uploads::reserve(users, user, 0, now).await?;
    match register_sample(voices, audio, user, content_type, size, now).await {
        Ok(upload) => {
            reservation.commit();
            Ok(upload)
        }
        Err(error) => {
            reservation.give_back().await?;
            Err(error)
        }
    }
}

async fn register_sample(
    voices: &Voices,
    audio: &AudioStore,
    user: &User,
    content_type: crate::domain::audio::AudioType,
    size: u64,
    now: OffsetDateTime,
) -> Result<SampleUpload, ApiError> {
    let id = Ulid::generate(now);
    let s3_key = Sample::s3_key_for(&user.id, &id, content_type);
    let upload_url = audio.upload_url(&s3_key, content_type, size).await?;
    let sample = Sample {
        sample_id: id.clone(),
        user_id: user.id.clone(),
        content_type,
        size_bytes: size,
        s3_key,
        created_at: timestamp(now),
        expires_at: Some(now.unix_timestamp() + SAMPLE_TTL_SECS),
    };
    voices.put_sample(&sample, now.unix_timestamp() + audio.presign_ttl().as_secs() as i64).await?;
    Ok(SampleUpload {
        sample_id: id,
        upload_url,
        method: "PUT",
        headers: serde_json::json!({ "content-type": content_type, "x-amz-tagging": "retention=temporary" }),
        expires_in: audio.presign_ttl().as_secs(),
    })
}

/// What cloning reads and writes.
pub struct Cloning<'a> {
    pub users: &'a Users,
    pub voices: &'a Voices,
    pub consent: &'a ConsentRecords,
    pub audio: &'a AudioStore,
    pub accounts: &'a Accounts,
    pub settings: &'a VoiceSettings,
}

impl Cloning<'_> {
    /// Makes a clone of the caller's samples. Every sample must be the caller's and uploaded;
    /// then a slot is reserved, ElevenLabs clones, and the voice and its consent record are stored.
    pub async fn create(
        &self,
        user: &User,
        request: NewVoice,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Voice, ApiError> {
        let mut samples = Vec::with_capacity(request.sample_ids.len());
        let mut total = 0;
        for (i, id) in request.sample_ids.iter().enumerate() {
            let field = format!("sampleIds[{i}]");
            let sample = self
                .voices
                .sample(&user.id, id, now.unix_timestamp())
                .await?
                .ok_or_else(|| ApiError::validation(&field, "no such sample"))?;
            let uploaded = self.audio.head(&sample.s3_key).await?;
            let size = uploaded.ok_or_else(|| ApiError::validation(&field, "the sample was never uploaded"))?;
            total += size;
            samples.push(sample);
        }
        if total > CLONE_MAX_BYTES {
            return Err(ApiError::validation(
                "sampleIds",
                format!("the samples exceed {CLONE_MAX_BYTES} bytes together"),
            ));
        }

        let period = UsagePeriod::containing(now);
        let slot = self.users.reserve_one(&user.id, user.tier, Allowance::CloneSlots, period).await?;
        match self.clone_and_store(user, &request, &samples, client, now).await {
            Ok(voice) => {
                slot.commit();
                Ok(voice)
            }
            Err(error) => {
                if let Err(release) = slot.give_back().await {
                    tracing::error!(error = format!("{release:#}"), "could not give the clone slot back");
                }
                Err(error)
            }
        }
    }

    async fn clone_and_store(
        &self,
        user: &User,
        request: &NewVoice,
        samples: &[Sample],
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Voice, ApiError> {
        let clone = NewClone {
            name: &request.name,
            description: request.description.as_deref(),
            labels: &request.labels,
            remove_background_noise: request.remove_background_noise,
        };
        // Placed for good on the account with the most room.
        let account = elevenlabs_accounts::for_new_clone(self.accounts, self.voices).await?;
        let slots = VoiceSlots { voices: self.voices, audio: self.audio, account, settings: self.settings };
        let voice_id = Ulid::generate(now);
        let Added { elevenlabs_voice_id: elevenlabs_id, sample_sha256: hashes } =
            slots.add(&clone, &user.id, &sample_files(samples)).await?;
        let copies: Vec<String> = samples.iter().map(|s| s.copy_key_for(&voice_id)).collect();
        let voice = Voice {
            voice_id,
            user_id: user.id.clone(),
            name: request.name.clone(),
            description: request.description.clone(),
            labels: request.labels.clone(),
            sample_ids: request.sample_ids.clone(),
            elevenlabs_voice_id: Some(elevenlabs_id.clone()),
            account: account.name.clone(),
            sample_keys: copies.clone(),
            consent_id: Ulid::generate(now),
            created_at: timestamp(now),
            last_used_at: Some(now.unix_timestamp()),
            last_used_ms: unix_ms(now),
            remove_background_noise: request.remove_background_noise,
            deleting: false,
        };
        let record = ConsentRecord {
            consent_id: voice.consent_id.clone(),
            user_id: user.id.clone(),
            voice_id: voice.voice_id.clone(),
            statement_version: CONSENT_VERSION.to_owned(),
            accepted_at: timestamp(now),
            ip_address: client.ip_address.clone(),
            user_agent: client.user_agent.clone(),
            sample_sha256: hashes,
        };
        // The clone keeps its own copies of its samples (tagged kept as they are made), which
        // rebuild it after an eviction; the uploads themselves expire as unused samples do.
        let stored = async {
            for (sample, copy) in samples.iter().zip(&copies) {
                self.audio.copy_kept(&sample.s3_key, copy).await?;
            }
            self.consent.put(&record).await?;
            self.voices.put_voice(&voice).await
        }
        .await;
        if let Err(error) = stored {
            // Nothing of ours points at the clone: remove it at ElevenLabs, and its copies.
            if let Err(cleanup) = account.client.delete_voice(&elevenlabs_id).await {
                tracing::error!(error = %cleanup, "an orphaned clone is left at ElevenLabs");
            }
            for copy in &copies {
                if let Err(cleanup) = self.audio.delete(copy).await {
                    tracing::warn!(error = format!("{cleanup:#}"), "a sample copy is left for the lifecycle rule");
                }
            }
            return Err(error.into());
        }
        Ok(voice)
    }

    /// Deletes the caller's voice: at ElevenLabs, its samples, its row; frees the slot and starts
    /// the consent record's retention. The row is marked first, and the ElevenLabs id read from
    /// the mark: no re-creation can record an id after it. A failure at ElevenLabs leaves the row
    /// marked for a retry. Of N concurrent deletes, the one whose delete removed the row gives
    /// the slot back; the others answer NOT_FOUND once it is gone.
    pub async fn delete(&self, user: &User, id: &VoiceId, now: OffsetDateTime) -> Result<(), ApiError> {
        let voice = self.voices.mark_deleting(&user.id, id).await?.ok_or_else(|| ApiError::not_found("voice"))?;
        if let Some(elevenlabs_id) = &voice.elevenlabs_voice_id {
            elevenlabs_accounts::of(self.accounts, &voice).client.delete_voice(elevenlabs_id).await?;
        }
        // Its own copies of the samples (another clone made from the same uploads has its own).
        for key in &voice.sample_keys {
            self.audio.delete(key).await?;
        }
        self.consent.retain_until(&user.id, &voice.consent_id, now.unix_timestamp() + CONSENT_RETENTION_SECS).await?;
        let removed = self.voices.delete_voice(&user.id, id).await?.ok_or_else(|| ApiError::not_found("voice"))?;
        self.users.give_back_held(removed).await?;
        Ok(())
    }
}

/// Who a generation speaks as.
pub enum Speaker {
    /// One of ElevenLabs' premade voices.
    Premade(ElevenLabsVoiceId),
    /// One of the caller's own clones (resident at ElevenLabs or not).
    Clone(Box<Voice>),
}

/// The voice a generation speaks with: a premade ElevenLabs id, or one of the caller's own
/// clones by our id. Another user's clone, a deleted one, or an ElevenLabs id behind anyone's
/// clone is NOT_FOUND, before any request reaches ElevenLabs.
pub async fn resolve_for_speech(
    voices: &Voices,
    elevenlabs: &ElevenLabs,
    user: &User,
    requested: &ElevenLabsVoiceId,
) -> Result<Speaker, ApiError> {
    if let Some(ours) = Ulid::parse(requested.as_str()) {
        let voice = voices.voice(&user.id, &ours).await?.filter(|v| !v.deleting);
        return voice.map(|v| Speaker::Clone(Box::new(v))).ok_or_else(|| ApiError::not_found("voice"));
    }
    // One of ElevenLabs' premade voices (as this instance last listed them) is nobody's clone:
    // no need to ask the table.
    if elevenlabs.is_listed_premade(requested.as_str()).await {
        return Ok(Speaker::Premade(requested.clone()));
    }
    if voices.is_cloned_elevenlabs_id(requested.as_str()).await? {
        return Err(ApiError::not_found("voice"));
    }
    Ok(Speaker::Premade(requested.clone()))
}
