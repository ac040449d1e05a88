//! A user's own recordings: uploads of their audio (a presigned PUT, within the upload and
//! storage allowances), favourites (capped per plan, never expiring) and deletion (which frees
//! what the recording held). Every rule here runs against the caller's own recordings only.

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    clock::timestamp,
    config::VoiceSettings,
    domain::{
        allowance::Allowance,
        audio::{AudioType, RecordingSource},
        ids::RecordingId,
        usage::UsagePeriod,
        user::User,
    },
    error::ApiError,
    flows::uploads,
    store::{
        audio::AudioStore,
        recordings::{Recording, Recordings},
        users::Users,
    },
};

/// An upload the caller asked for, checked at the edge.
pub struct NewUpload {
    pub content_type: AudioType,
    pub size_bytes: u64,
    pub voice_name: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    pub recording_id: RecordingId,
    pub upload_url: String,
    pub method: &'static str,
    pub headers: serde_json::Value,
    pub expires_in: u64,
}

/// What the recording flows read and write.
#[derive(Clone, Copy)]
pub struct Library<'a> {
    pub users: &'a Users,
    pub recordings: &'a Recordings,
    pub audio: &'a AudioStore,
    pub settings: &'a VoiceSettings,
}

impl Library<'_> {
    /// Reserves the upload (one of the month's, and its bytes), then registers the recording and
    /// presigns a PUT for exactly that object, type and size. A failure after the reservation
    /// gives it back.
    pub async fn create_upload(&self, user: &User, upload: NewUpload, now: OffsetDateTime) -> Result<Upload, ApiError> {
        let reservation = uploads::reserve(self.users, user, upload.size_bytes, now).await?;
        let id = RecordingId::generate(now);
        let content_type = upload.content_type;
        match self.register_upload(user, &id, upload, now).await {
            Ok(upload_url) => {
                reservation.commit();
                Ok(Upload {
                    recording_id: id,
                    upload_url,
                    method: "PUT",
                    headers: serde_json::json!({ "content-type": content_type, "x-amz-tagging": "retention=temporary" }),
                    expires_in: self.audio.presign_ttl().as_secs(),
                })
            }
            Err(error) => {
                reservation.give_back().await?;
                Err(error)
            }
        }
    }

    async fn register_upload(
        &self,
        user: &User,
        id: &RecordingId,
        upload: NewUpload,
        now: OffsetDateTime,
    ) -> Result<String, ApiError> {
        let s3_key = Recording::s3_key_for(&user.id, id, upload.content_type);
        let upload_url = self.audio.upload_url(&s3_key, upload.content_type, upload.size_bytes).await?;
        let recording = Recording {
            recording_id: id.clone(),
            user_id: user.id.clone(),
            voice_id: None,
            voice_name: upload.voice_name,
            text: upload.text,
            preset_used: None,
            audio_config: None,
            content_type: upload.content_type,
            s3_key,
            is_favorite: false,
            created_at: timestamp(now),
            expires_at: Some(self.expiry(now)),
            source: RecordingSource::Upload,
            upload_bytes: Some(upload.size_bytes),
        };
        let deadline = now.unix_timestamp() + self.audio.presign_ttl().as_secs() as i64;
        self.recordings.put_upload(&recording, deadline).await?;
        Ok(upload_url)
    }

    /// Makes the caller's recording a favourite or an ordinary one again. Favourites never
    /// expire, so each holds one of the plan's places. The change is made first, conditionally
    /// (of N identical requests, one makes it): the request that made a recording a favourite
    /// takes a place, and undoes its change when none is left; the one that undid a favourite
    /// frees its place. So N identical requests at once move the count once.
    pub async fn set_favourite(
        &self,
        user: &User,
        id: &RecordingId,
        favourite: bool,
        now: OffsetDateTime,
    ) -> Result<Recording, ApiError> {
        let at = now.unix_timestamp();
        let changed = if favourite {
            match self.recordings.favourite(&user.id, id, at).await? {
                Some(recording) => {
                    let period = UsagePeriod::containing(now);
                    match self.users.reserve_one(&user.id, user.tier, Allowance::Favourites, period).await {
                        Ok(place) => place.commit(),
                        Err(refused) => {
                            self.recordings.undo_favourite(&user.id, id, self.expiry(now), at).await?;
                            return Err(refused.into());
                        }
                    }
                    Some(recording)
                }
                None => None,
            }
        } else {
            match self.recordings.unfavourite(&user.id, id, self.expiry(now), at).await? {
                Some(removed) => Some(self.users.give_back_held(removed).await?),
                None => None,
            }
        };
        let Some(recording) = changed else {
            // Already so (another request made the change), or no such recording.
            return self.recordings.get(&user.id, id).await?.ok_or_else(|| ApiError::not_found("recording"));
        };
        if let Err(error) = retag(self.recordings, self.audio, &recording).await {
            // The recording stays marked: the sweep retags it.
            tracing::warn!(error = format!("{error:#}"), "could not retag the audio; the sweep will");
        }
        Ok(recording)
    }

    /// Deletes the caller's recording and its audio; the favourite place and uploaded bytes it
    /// held are given back by the one request whose delete removed the row. NOT_FOUND when there
    /// is no such recording (or a concurrent delete removed it first).
    pub async fn delete(&self, user: &User, id: &RecordingId) -> Result<RecordingId, ApiError> {
        let recording = self.recordings.get(&user.id, id).await?.ok_or_else(|| ApiError::not_found("recording"))?;
        self.audio.delete(&recording.s3_key).await?;
        let removed = self.recordings.delete(&user.id, id).await?.ok_or_else(|| ApiError::not_found("recording"))?;
        Ok(self.users.give_back_held(removed).await?.recording_id)
    }

    /// When a recording that is not a favourite expires, from `now`.
    fn expiry(&self, now: OffsetDateTime) -> i64 {
        now.unix_timestamp() + self.settings.recording_ttl.as_secs() as i64
    }
}

/// Makes the object's retention tag agree with the recording (the bucket's lifecycle rule expires
/// objects tagged temporary, so a favourite tagged so would lose its audio): tags it as the row
/// says, then clears the row's retag mark only if the row still says so, else looks again. A
/// failure leaves the mark, and the sweep finishes it ([`settle_retags`]).
async fn retag(recordings: &Recordings, audio: &AudioStore, recording: &Recording) -> anyhow::Result<()> {
    let mut current = recording.clone();
    for _ in 0..3 {
        audio.set_retention(&current.s3_key, current.is_favorite).await?;
        if recordings.retag_settled(&current.user_id, &current.recording_id, current.is_favorite).await? {
            return Ok(());
        }
        // Changed again meanwhile (or settled by someone else): as it is now.
        match recordings.get(&current.user_id, &current.recording_id).await? {
            Some(now) => current = now,
            None => return Ok(()),
        }
    }
    anyhow::bail!("the recording kept changing while it was retagged")
}

/// Retags every recording marked before `before` (unix seconds) as its row says now; how many.
pub async fn settle_retags(recordings: &Recordings, audio: &AudioStore, before: i64) -> anyhow::Result<u64> {
    let mut settled = 0;
    for (user, id) in recordings.retags_due(before).await? {
        let Some(recording) = recordings.get(&user, &id).await? else { continue };
        // One that fails keeps its mark for the next sweep; the others go on.
        match retag(recordings, audio, &recording).await {
            Ok(()) => settled += 1,
            Err(error) => tracing::warn!(error = format!("{error:#}"), recording_id = %id, "a retag failed again"),
        }
    }
    Ok(settled)
}

/// The upload body's content type, or VALIDATION_FAILED naming `contentType`.
pub fn upload_type(raw: &str) -> Result<AudioType, ApiError> {
    raw.parse().map_err(|e: crate::domain::audio::UnknownAudioType| ApiError::validation("contentType", e.to_string()))
}
