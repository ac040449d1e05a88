//! Generating speech: one conditional write reserving the quota unit, then ElevenLabs, S3 and the
//! recording row. Any failure after the reservation gives the unit back and removes what was
//! already written.

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    clock::timestamp,
    config::VoiceSettings,
    domain::{
        audio::{AudioType, RecordingSource},
        generation::Generation,
        ids::{ElevenLabsVoiceId, RecordingId},
        usage::{Usage, UsagePeriod},
        user::User,
    },
    error::ApiError,
    flows::voices::resolve_for_speech,
    store::{
        audio::AudioStore,
        recordings::{Recording, Recordings},
        users::{QuotaError, Users},
        voices::{Voice, Voices},
    },
    upstream::elevenlabs::ElevenLabs,
};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Generated {
    pub recording_id: RecordingId,
    pub audio_url: String,
    pub usage: Usage,
}

/// What a generation reads and writes.
pub struct Generator<'a> {
    pub users: &'a Users,
    pub voices: &'a Voices,
    pub recordings: &'a Recordings,
    pub audio: &'a AudioStore,
    pub elevenlabs: &'a ElevenLabs,
    pub settings: &'a VoiceSettings,
}

impl Generator<'_> {
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn generate(&self, user: &User, request: Generation, now: OffsetDateTime) -> Result<Generated, ApiError> {
        // Before the quota: a voice the caller may not use costs nothing and reaches no one.
        let (speak_as, clone) = resolve_for_speech(self.voices, user, &request.voice_id).await?;
        let reservation =
            self.users.reserve_generation(&user.id, user.tier, UsagePeriod::containing(now)).await.map_err(
                |e| match e {
                    QuotaError::LimitReached { limit } => ApiError::LimitReached {
                        message: format!("you have used all {limit} recordings of the {} plan this month", user.tier),
                        upgrade_url: self.settings.upgrade_url.to_string(),
                    },
                    QuotaError::Store(source) => ApiError::Internal(source),
                },
            )?;

        match self.produce(user, &request, &speak_as, clone.as_ref(), now).await {
            Ok((recording_id, audio_url)) => Ok(Generated {
                recording_id,
                audio_url,
                usage: Usage::new(user.tier, reservation.used, reservation.period),
            }),
            Err(error) => {
                if let Err(release) = self.users.release_generation(&user.id, reservation).await {
                    tracing::error!(error = format!("{release:#}"), "could not give the quota unit back");
                }
                Err(error)
            }
        }
    }

    async fn produce(
        &self,
        user: &User,
        request: &Generation,
        speak_as: &ElevenLabsVoiceId,
        clone: Option<&Voice>,
        now: OffsetDateTime,
    ) -> Result<(RecordingId, String), ApiError> {
        // The voice list (for the recording's voice name) is cached; on a cold instance it is
        // fetched alongside the generation rather than after it.
        let (audio, voices) = tokio::join!(
            self.elevenlabs.speak(speak_as, &request.text, user.tier.rules().tts_model, &request.config),
            self.elevenlabs.voices(),
        );
        let audio = audio?;

        let recording_id = RecordingId::generate(now);
        let content_type = AudioType::Mpeg;
        let s3_key = Recording::s3_key_for(&user.id, &recording_id, content_type);
        self.audio.put(&s3_key, content_type, audio).await?;

        let voice_name = match clone {
            Some(clone) => Some(clone.name.clone()),
            None => voices.ok().and_then(|voices| {
                voices.into_iter().find(|v| v.voice_id == request.voice_id.as_str()).map(|v| v.name)
            }),
        };
        if let Some(clone) = clone
            && let Err(error) = self.voices.touch(&user.id, &clone.voice_id, now.unix_timestamp()).await
        {
            tracing::warn!(error = format!("{error:#}"), "could not record the clone's use");
        }
        let recording = Recording {
            recording_id: recording_id.clone(),
            user_id: user.id.clone(),
            voice_id: Some(request.voice_id.to_string()),
            voice_name,
            text: Some(request.text.clone()),
            preset_used: request.preset_id.clone(),
            audio_config: Some(request.config),
            content_type,
            s3_key: s3_key.clone(),
            is_favorite: false,
            created_at: timestamp(now),
            expires_at: Some(now.unix_timestamp() + self.settings.recording_ttl.as_secs() as i64),
            source: RecordingSource::Tts,
        };
        if let Err(error) = self.recordings.put(&recording).await {
            if let Err(cleanup) = self.audio.delete(&s3_key).await {
                tracing::error!(error = format!("{cleanup:#}"), s3_key, "orphaned audio left for the lifecycle rule");
            }
            return Err(error.into());
        }
        let audio_url = self.audio.download_url(&s3_key).await.context("presigning the new recording")?;
        Ok((recording_id, audio_url))
    }
}
