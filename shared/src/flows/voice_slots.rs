//! An ElevenLabs account's custom-voice slots, used as a least-recently-used cache over the
//! samples we keep (each account has its own: `flows::elevenlabs_accounts`).
//!
//! An account holds far fewer custom voices (`ELEVENLABS_VOICE_SLOTS`) than our users have
//! clones. A clone is *resident* while its voice exists at ElevenLabs. Adding a voice to a full
//! account first evicts the least recently used resident clone (its ElevenLabs voice is deleted,
//! our row and samples stay); a clone that is not resident is re-created from its stored samples
//! on its next use, under a lease so that concurrent uses create it once. ElevenLabs'
//! `voice_limit_reached` (slots used outside our records, or a race) triggers one eviction and
//! one retry. A generation with a resident clone costs nothing beyond the usual reads.
//!
//! Fair use of the pool: one user keeps at most a third of the slots resident; past that, making
//! one of their clones resident evicts their own least recently used one, never someone else's.
//!
//! No clone is left behind: a re-creation runs as a task of its own, so a request that gives up
//! (its deadline) never abandons it midway: the task records the new voice, or deletes it (a
//! voice deleted or taken over meanwhile) and gives its lease back. Every voice we add carries
//! the labels `voice_app_account` and `voice_app_made`, by which the nightly reconciliation
//! (`flows::voice_reconcile`) recognises ours among the account's voices.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{
    clock::unix_ms,
    config::VoiceSettings,
    domain::{
        audio::AudioType,
        ids::{ElevenLabsVoiceId, UserId, hex},
    },
    error::ApiError,
    store::{
        audio::AudioStore,
        voices::{Resident, Sample, Voice, Voices},
    },
    upstream::elevenlabs::{Account, CloneError, ElevenLabs, NewClone, VoiceFile},
};

/// How often a use that found another one re-creating the clone looks again.
const REBUILD_POLL: Duration = Duration::from_millis(250);
/// How many least-recently-used candidates one eviction considers (others may take some first).
const EVICTION_CANDIDATES: i32 = 5;

/// A sample as sent to ElevenLabs: its object and type.
pub struct SampleFile {
    pub key: String,
    pub content_type: AudioType,
}

/// The uploaded samples a new clone is made from.
pub fn sample_files(samples: &[Sample]) -> Vec<SampleFile> {
    samples.iter().map(|s| SampleFile { key: s.s3_key.clone(), content_type: s.content_type }).collect()
}

/// The label keys that mark a voice as ours at ElevenLabs.
pub const ACCOUNT_LABEL: &str = "voice_app_account";
pub const MADE_LABEL: &str = "voice_app_made";

/// A clone's ElevenLabs voice as made: its id and the hex SHA-256 of every sample sent.
pub struct Added {
    pub elevenlabs_voice_id: String,
    pub sample_sha256: Vec<String>,
}

/// One account's slots.
pub struct VoiceSlots<'a> {
    pub voices: &'a Voices,
    pub audio: &'a AudioStore,
    pub account: &'a Account,
    pub settings: &'a VoiceSettings,
}

impl VoiceSlots<'_> {
    /// Adds a voice of `owner` made of `samples` at ElevenLabs (labelled ours), making room when
    /// the account is full, or when the owner already holds their share of it.
    pub async fn add(&self, clone: &NewClone<'_>, owner: &UserId, samples: &[SampleFile]) -> Result<Added, ApiError> {
        let account = self.account;
        let share = (account.voice_slots / 3).max(1);
        let theirs = self.voices.resident_of(&account.name, owner).await?;
        if theirs.len() as u32 >= share {
            self.evict(&theirs).await?;
        } else if self.voices.resident_count(&account.name).await? >= account.voice_slots {
            self.evict_one().await?;
        }
        let mut labels = clone.labels.clone();
        labels.insert(ACCOUNT_LABEL.to_owned(), account.name.clone());
        labels.insert(MADE_LABEL.to_owned(), OffsetDateTime::now_utc().unix_timestamp().to_string());
        let ours = NewClone { labels: &labels, ..*clone };
        match self.open(samples).await?.send(&account.client, &ours).await {
            Err(CloneError::VoiceLimitReached) => {
                tracing::warn!("ElevenLabs' voice slots are full beyond our records; evicting and retrying once");
                if !self.evict_one().await? {
                    return Err(CloneError::VoiceLimitReached.into());
                }
                Ok(self.open(samples).await?.send(&account.client, &ours).await?)
            }
            other => Ok(other?),
        }
    }

    /// The ElevenLabs id to speak with `voice`: its resident one, or one re-created now from the
    /// stored samples (or by a concurrent use, which this one waits for).
    pub async fn resident_id(&self, voice: &Voice, now: OffsetDateTime) -> Result<ElevenLabsVoiceId, ApiError> {
        let started = tokio::time::Instant::now();
        let mut current = voice.clone();
        loop {
            if let Some(id) = &current.elevenlabs_voice_id {
                return ElevenLabsVoiceId::parse(id).map_err(|e| ApiError::Internal(e.into()));
            }
            let now_ms = unix_ms(now) + i64::try_from(started.elapsed().as_millis()).unwrap_or(0);
            let lease = now_ms + 2 * i64::try_from(self.settings.elevenlabs_timeout.as_millis()).unwrap_or(60_000);
            if self.voices.claim_rebuild(&voice.user_id, &voice.voice_id, now_ms, lease).await? {
                // A task of its own: a request that stops waiting (its deadline) does not stop
                // it halfway, with a voice made at ElevenLabs and recorded nowhere.
                let task = Rebuild {
                    voices: self.voices.clone(),
                    audio: self.audio.clone(),
                    account: self.account.clone(),
                    settings: self.settings.clone(),
                };
                let voice = current.clone();
                let rebuilt = tokio::spawn(async move { task.slots().rebuild(&voice, lease, now_ms).await });
                return rebuilt
                    .await
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the re-creation task failed: {e}")))?;
            }
            if started.elapsed() > self.settings.elevenlabs_timeout {
                return Err(ApiError::Upstream {
                    service: "ElevenLabs",
                    temporary: true,
                    source: anyhow::anyhow!("voice {} is still being re-created", voice.voice_id),
                });
            }
            tokio::time::sleep(REBUILD_POLL).await;
            current = self
                .voices
                .voice(&voice.user_id, &voice.voice_id)
                .await?
                .filter(|v| !v.deleting)
                .ok_or_else(|| ApiError::not_found("voice"))?;
        }
    }

    /// Records that ElevenLabs no longer holds `voice` under `gone` (deleted there behind our
    /// back, or evicted while a generation was under way), so the next use re-creates it.
    pub async fn forget(&self, voice: &Voice, gone: &ElevenLabsVoiceId) -> Result<(), ApiError> {
        tracing::warn!(voice_id = %voice.voice_id, "ElevenLabs no longer holds a resident clone");
        self.voices.evict(&voice.user_id, &voice.voice_id, gone.as_str()).await?;
        Ok(())
    }

    async fn rebuild(&self, voice: &Voice, lease: i64, now_ms: i64) -> Result<ElevenLabsVoiceId, ApiError> {
        let made = async {
            // The clone's own copies of its samples.
            let samples = voice
                .sample_keys
                .iter()
                .map(|key| {
                    let content_type =
                        AudioType::of_key(key).ok_or_else(|| anyhow::anyhow!("sample {key} has no type"))?;
                    Ok(SampleFile { key: key.clone(), content_type })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let clone = NewClone {
                name: &voice.name,
                description: voice.description.as_deref(),
                labels: &voice.labels,
                remove_background_noise: voice.remove_background_noise,
            };
            let added = self.add(&clone, &voice.user_id, &samples).await?;
            let id = added.elevenlabs_voice_id;
            let recorded =
                self.voices.make_resident(&self.account.name, &voice.user_id, &voice.voice_id, &id, lease, now_ms);
            if recorded.await? {
                tracing::info!(voice_id = %voice.voice_id, "re-created a clone at ElevenLabs from its samples");
                return ElevenLabsVoiceId::parse(&id).map_err(|e| ApiError::Internal(e.into()));
            }
            // Deleted meanwhile, or the lease ran out and another use took over: ours is surplus.
            if let Err(error) = self.account.client.delete_voice(&id).await {
                tracing::error!(error = %error, "a surplus re-created clone is left at ElevenLabs");
            }
            Err(ApiError::Upstream {
                service: "ElevenLabs",
                temporary: true,
                source: anyhow::anyhow!("voice {} changed while it was re-created", voice.voice_id),
            })
        }
        .await;
        if made.is_err()
            && let Err(error) = self.voices.release_rebuild(&voice.user_id, &voice.voice_id, lease).await
        {
            tracing::warn!(error = format!("{error:#}"), "could not release a re-creation lease");
        }
        made
    }

    /// Frees one slot: deletes the least recently used resident clone at ElevenLabs, then records
    /// it as not resident (only if no one re-created or evicted it meanwhile). False when no
    /// clone of ours is resident.
    async fn evict_one(&self) -> Result<bool, ApiError> {
        let candidates = self.voices.least_recently_used(&self.account.name, EVICTION_CANDIDATES).await?;
        let evicted = self.evict(&candidates).await?;
        if !evicted {
            tracing::error!("ElevenLabs' voice slots are full and none holds a clone of ours");
        }
        Ok(evicted)
    }

    /// Evicts the first of `candidates` (least recently used first) that is still resident as
    /// listed; false when none was.
    async fn evict(&self, candidates: &[Resident]) -> Result<bool, ApiError> {
        for resident in candidates {
            self.account.client.delete_voice(&resident.elevenlabs_voice_id).await?;
            if self.voices.evict(&resident.user_id, &resident.voice_id, &resident.elevenlabs_voice_id).await? {
                tracing::info!(voice_id = %resident.voice_id, user_id = %resident.user_id, "evicted a clone from ElevenLabs");
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Opens the samples in S3 as streams, each hashed as it is read.
    async fn open(&self, samples: &[SampleFile]) -> Result<Upload, ApiError> {
        let mut upload =
            Upload { files: Vec::with_capacity(samples.len()), hashers: Vec::with_capacity(samples.len()) };
        for sample in samples {
            let object = self.audio.open(&sample.key).await?;
            let hasher = Arc::new(Mutex::new(Sha256::new()));
            let feed = hasher.clone();
            let stream = futures_util::stream::unfold(object.body, |mut body| async move {
                body.next().await.map(|chunk| (chunk, body))
            })
            .inspect_ok(move |chunk| feed.lock().expect("hasher lock").update(chunk));
            upload.files.push(VoiceFile {
                filename: sample.key.rsplit('/').next().unwrap_or("sample").to_owned(),
                content_type: sample.content_type.mime(),
                length: object.length,
                body: reqwest::Body::wrap_stream(stream),
            });
            upload.hashers.push(hasher);
        }
        Ok(upload)
    }
}

/// What a re-creation task owns (cheap clones of the clients), so that it outlives its request.
struct Rebuild {
    voices: Voices,
    audio: AudioStore,
    account: Account,
    settings: VoiceSettings,
}

impl Rebuild {
    fn slots(&self) -> VoiceSlots<'_> {
        VoiceSlots { voices: &self.voices, audio: &self.audio, account: &self.account, settings: &self.settings }
    }
}

/// The samples of one add, streamed from S3 to ElevenLabs (never held whole in memory).
struct Upload {
    files: Vec<VoiceFile>,
    hashers: Vec<Arc<Mutex<Sha256>>>,
}

impl Upload {
    async fn send(self, elevenlabs: &ElevenLabs, clone: &NewClone<'_>) -> Result<Added, CloneError> {
        let elevenlabs_voice_id = elevenlabs.add_voice(clone, self.files).await?;
        let sample_sha256 = self
            .hashers
            .into_iter()
            .map(|h| hex(&std::mem::take(&mut *h.lock().expect("hasher lock")).finalize()))
            .collect();
        Ok(Added { elevenlabs_voice_id, sample_sha256 })
    }
}
