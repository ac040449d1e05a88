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
        ids::{ElevenLabsVoiceId, SampleId, Ulid, UserId, VoiceId},
        session::ClientInfo,
        usage::UsagePeriod,
        user::User,
        voices::{CLONE_MAX_BYTES, CONSENT_RETENTION_SECS, CONSENT_VERSION, NewVoice, SampleRequest},
        workspaces::WorkspaceId,
    },
    error::ApiError,
    flows::{
        elevenlabs_accounts, uploads,
        voice_slots::{Added, VoiceSlots, sample_files},
    },
    store::{
        audio::AudioStore,
        consent::{ConsentRecord, ConsentRecords},
        users::{Reservation, Users},
        voices::{Sample, Voice, Voices},
        workspaces::{Held, Slot as WorkspaceSlot, Workspace, Workspaces},
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

/// Whose a new clone is.
#[derive(Clone, Copy)]
pub enum Library<'w> {
    /// The caller's own.
    Own,
    /// The shared library of a workspace (the caller may manage its voices: the route checks).
    Workspace(&'w Workspace),
}

/// The slot a clone being made holds: of the person's allowance, or of the workspace's library.
enum Slot<'a> {
    Own(Reservation<'a>),
    Library(WorkspaceSlot<'a>),
}

impl Slot<'_> {
    fn commit(self) {
        match self {
            Self::Own(reservation) => reservation.commit(),
            Self::Library(slot) => slot.commit(),
        }
    }

    async fn give_back(self) -> anyhow::Result<()> {
        match self {
            Self::Own(reservation) => reservation.give_back().await,
            Self::Library(slot) => slot.give_back().await,
        }
    }
}

/// What cloning reads and writes: what deleting a voice does (a failed clone, the caller's
/// delete), and the voice settings a clone is added with.
pub struct Cloning<'a> {
    pub removal: VoiceRemoval<'a>,
    pub settings: &'a VoiceSettings,
}

impl Cloning<'_> {
    /// Makes a clone of the caller's samples, for `library`. Every sample must be the caller's
    /// and uploaded; then a slot is reserved, ElevenLabs clones, and the voice and its consent
    /// record (the caller's, naming the workspace for a library's voice) are stored.
    pub async fn create(
        &self,
        user: &User,
        library: Library<'_>,
        request: NewVoice,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Voice, ApiError> {
        let VoiceRemoval { users, workspaces, voices, audio, .. } = self.removal;
        let mut samples = Vec::with_capacity(request.sample_ids.len());
        let mut total = 0;
        for (i, id) in request.sample_ids.iter().enumerate() {
            let field = format!("sampleIds[{i}]");
            let sample = voices
                .sample(&user.id, id, now.unix_timestamp())
                .await?
                .ok_or_else(|| ApiError::validation(&field, "no such sample"))?;
            let uploaded = audio.head(&sample.s3_key).await?;
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

        let (slot, owner) = match library {
            Library::Own => {
                let period = UsagePeriod::containing(now);
                let reserved = users.reserve_one(&user.id, user.tier, Allowance::CloneSlots, period).await?;
                (Slot::Own(reserved), user.id.clone())
            }
            Library::Workspace(workspace) => {
                let taken = workspaces.take_slot(workspace, Held::LibraryVoices).await?;
                let slot = taken.ok_or_else(|| {
                    ApiError::LimitReached(format!(
                        "the workspace's shared library holds {} voices at most now; delete one first",
                        workspace.slots(Held::LibraryVoices)
                    ))
                })?;
                (Slot::Library(slot), UserId::library_of(&workspace.workspace_id))
            }
        };
        match self.clone_and_store(user, &owner, &request, &samples, client, now).await {
            Ok(voice) => {
                slot.commit();
                // Stored while the workspace was being deleted, maybe after the deletion listed
                // its library: deleted here (its slot with it), as the deletion would have.
                if let Library::Workspace(workspace) = library
                    && !workspaces.is_open(&workspace.workspace_id).await?
                {
                    match Box::pin(self.removal.delete(&owner, &voice.voice_id, now)).await {
                        Ok(()) | Err(ApiError::NotFound(_)) => {}
                        Err(error) => return Err(error),
                    }
                    return Err(ApiError::not_found("workspace"));
                }
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

    #[allow(clippy::too_many_arguments)]
    async fn clone_and_store(
        &self,
        user: &User,
        owner: &UserId,
        request: &NewVoice,
        samples: &[Sample],
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Voice, ApiError> {
        let VoiceRemoval { voices, consent, audio, accounts, .. } = self.removal;
        let clone = NewClone {
            name: &request.name,
            description: request.description.as_deref(),
            labels: &request.labels,
            remove_background_noise: request.remove_background_noise,
        };
        // Placed for good on the account with the most room.
        let account = elevenlabs_accounts::for_new_clone(accounts, voices).await?;
        let slots = VoiceSlots { voices, audio, account, settings: self.settings };
        let voice_id = Ulid::generate(now);
        let Added { elevenlabs_voice_id: elevenlabs_id, sample_sha256: hashes } =
            slots.add(&clone, owner, &sample_files(samples)).await?;
        let copies: Vec<String> = samples.iter().map(|s| s.copy_key_for(owner, &voice_id)).collect();
        let workspace = owner.library_workspace();
        let voice = Voice {
            voice_id,
            user_id: owner.clone(),
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
            uploaded_by: workspace.is_some().then(|| user.id.clone()),
        };
        let record = ConsentRecord {
            consent_id: voice.consent_id.clone(),
            user_id: user.id.clone(),
            voice_id: voice.voice_id.clone(),
            workspace_id: workspace,
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
                audio.copy_kept(&sample.s3_key, copy).await?;
            }
            consent.put(&record).await?;
            voices.put_voice(&voice).await
        }
        .await;
        if let Err(error) = stored {
            // Nothing of ours points at the clone: remove it at ElevenLabs, and its copies.
            if let Err(cleanup) = account.client.delete_voice(&elevenlabs_id).await {
                tracing::error!(error = %cleanup, "an orphaned clone is left at ElevenLabs");
            }
            for copy in &copies {
                if let Err(cleanup) = audio.delete(copy).await {
                    tracing::warn!(error = format!("{cleanup:#}"), "a sample copy is left for the lifecycle rule");
                }
            }
            return Err(error.into());
        }
        Ok(voice)
    }
}

/// What deleting a voice reads and writes.
#[derive(Clone, Copy)]
pub struct VoiceRemoval<'a> {
    pub users: &'a Users,
    pub workspaces: &'a Workspaces,
    pub voices: &'a Voices,
    pub consent: &'a ConsentRecords,
    pub audio: &'a AudioStore,
    pub accounts: &'a Accounts,
}

impl VoiceRemoval<'_> {
    /// Deletes `owner`'s voice (a person's own, or a workspace library's): at ElevenLabs, its
    /// samples, its row; frees the slot and starts the consent record's retention (its
    /// uploader's). The row is marked first, and the ElevenLabs id read from the mark: no
    /// re-creation can record an id after it. A failure at ElevenLabs leaves the row marked for
    /// a retry. Of N concurrent deletes, the one whose delete removed the row gives the slot
    /// back; the others answer NOT_FOUND once it is gone.
    pub async fn delete(&self, owner: &UserId, id: &VoiceId, now: OffsetDateTime) -> Result<(), ApiError> {
        let voice = self.voices.mark_deleting(owner, id).await?.ok_or_else(|| ApiError::not_found("voice"))?;
        if let Some(elevenlabs_id) = &voice.elevenlabs_voice_id {
            elevenlabs_accounts::of(self.accounts, &voice).client.delete_voice(elevenlabs_id).await?;
        }
        // Its own copies of the samples (another clone made from the same uploads has its own).
        for key in &voice.sample_keys {
            self.audio.delete(key).await?;
        }
        let uploader = voice.uploaded_by.as_ref().unwrap_or(owner);
        self.consent.retain_until(uploader, &voice.consent_id, now.unix_timestamp() + CONSENT_RETENTION_SECS).await?;
        let removed = self.voices.delete_voice(owner, id).await?.ok_or_else(|| ApiError::not_found("voice"))?;
        if owner.library_workspace().is_some() {
            self.workspaces.give_back_library_slot(removed).await?;
        } else {
            self.users.give_back_held(removed).await?;
        }
        Ok(())
    }

    /// Deletes every voice of workspace `id`'s library, and whatever else is under its prefix.
    pub async fn delete_library(&self, id: &WorkspaceId, now: OffsetDateTime) -> Result<(), ApiError> {
        let owner = UserId::library_of(id);
        for voice in self.voices.all_voices(&owner).await? {
            match self.delete(&owner, &voice.voice_id, now).await {
                Ok(()) | Err(ApiError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        self.audio.delete_prefix(&format!("{owner}/")).await?;
        Ok(())
    }

    /// Deletes the voices `uploader`'s samples made in workspaces' libraries (their erasure:
    /// a clone of their voice is theirs, whichever workspace holds it).
    pub async fn delete_uploaded_by(&self, uploader: &UserId, now: OffsetDateTime) -> Result<(), ApiError> {
        for (workspace, voice) in self.consent.library_voices(uploader).await? {
            let owner = UserId::library_of(&workspace);
            let theirs =
                self.voices.voice(&owner, &voice).await?.is_some_and(|v| v.uploaded_by.as_ref() == Some(uploader));
            if !theirs {
                continue;
            }
            match self.delete(&owner, &voice, now).await {
                Ok(()) | Err(ApiError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
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

/// The voice a generation speaks with: a premade ElevenLabs id, or by our id a clone of one of
/// `owners` (the caller; in a workspace, its shared library first). Anyone else's clone, a
/// deleted one, or an ElevenLabs id behind anyone's clone is NOT_FOUND, before any request
/// reaches ElevenLabs.
pub async fn resolve_for_speech(
    voices: &Voices,
    elevenlabs: &ElevenLabs,
    owners: &[&UserId],
    requested: &ElevenLabsVoiceId,
) -> Result<Speaker, ApiError> {
    if let Some(ours) = Ulid::parse(requested.as_str()) {
        for owner in owners {
            if let Some(voice) = voices.voice(owner, &ours).await?.filter(|v| !v.deleting) {
                return Ok(Speaker::Clone(Box::new(voice)));
            }
        }
        return Err(ApiError::not_found("voice"));
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
