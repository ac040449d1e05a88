//! Text to speech: the ElevenLabs client, the rules a generation request must pass, and the
//! generation itself (rate limit, quota, ElevenLabs, S3, DynamoDB) with nothing left half-done.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use crate::{
    ApiError, App, Caller,
    config::Secret,
    presets::{self, CustomPreset},
    quota::{Quota, QuotaError},
    ratelimit,
    recordings::{AudioConfig, Recording, RecordingId, timestamp},
    tiers::{PRESETS, Tier, TierRules},
    usage::{Usage, UsagePeriod},
};

const VOICES_TTL: Duration = Duration::from_secs(300);
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Voice {
    pub voice_id: String,
    pub name: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub labels: serde_json::Value,
    #[serde(default)]
    pub preview_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("ElevenLabs: {source:#}")]
pub struct UpstreamError {
    /// A timeout, 5xx or 429: worth retrying later.
    pub temporary: bool,
    source: anyhow::Error,
}

impl From<UpstreamError> for ApiError {
    fn from(error: UpstreamError) -> Self {
        ApiError::Upstream { service: "ElevenLabs", temporary: error.temporary, source: error.source }
    }
}

pub struct ElevenLabs {
    http: reqwest::Client,
    base: Url,
    key: Secret<String>,
    timeout: Duration,
    voices: Mutex<Option<(Instant, Vec<Voice>)>>,
}

impl ElevenLabs {
    pub fn new(http: reqwest::Client, base: Url, key: Secret<String>, timeout: Duration) -> Self {
        Self { http, base, key, timeout, voices: Mutex::new(None) }
    }

    /// MP3 audio for `text` in `voice_id`.
    pub async fn speak(
        &self,
        voice_id: &str,
        text: &str,
        model: &str,
        config: &AudioConfig,
    ) -> Result<Vec<u8>, UpstreamError> {
        let mut url = self.url(&format!("v1/text-to-speech/{voice_id}"))?;
        url.query_pairs_mut().append_pair("output_format", "mp3_44100_128");
        let body = serde_json::json!({
            "text": text,
            "model_id": model,
            "voice_settings": {
                "stability": config.stability,
                "similarity_boost": config.similarity_boost,
                "style": config.style,
                "use_speaker_boost": config.use_speaker_boost,
                "speed": config.speed,
            },
        });
        let response = self.send(self.http.post(url).json(&body).header("accept", "audio/mpeg")).await?;
        let bytes = response.bytes().await.map_err(|e| UpstreamError { temporary: true, source: e.into() })?;
        if bytes.is_empty() {
            return Err(UpstreamError { temporary: true, source: anyhow!("empty audio") });
        }
        Ok(bytes.to_vec())
    }

    /// The account's voices, kept for five minutes per warm instance.
    pub async fn voices(&self) -> Result<Vec<Voice>, UpstreamError> {
        let mut cached = self.voices.lock().await;
        if let Some((at, voices)) = cached.as_ref()
            && at.elapsed() < VOICES_TTL
        {
            return Ok(voices.clone());
        }
        #[derive(Deserialize)]
        struct List {
            voices: Vec<Voice>,
        }
        let response = self.send(self.http.get(self.url("v1/voices")?)).await?;
        let list: List = response.json().await.map_err(|e| UpstreamError { temporary: false, source: e.into() })?;
        *cached = Some((Instant::now(), list.voices.clone()));
        Ok(list.voices)
    }

    fn url(&self, path: &str) -> Result<Url, UpstreamError> {
        self.base.join(path).map_err(|e| UpstreamError { temporary: false, source: e.into() })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, UpstreamError> {
        let response =
            request.header("xi-api-key", self.key.expose()).timeout(self.timeout).send().await.map_err(|e| {
                UpstreamError { temporary: true, source: anyhow::Error::new(e).context("calling ElevenLabs") }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let temporary = status.is_server_error() || status.as_u16() == 429;
        Err(UpstreamError { temporary, source: anyhow!("ElevenLabs answered {status}") })
    }
}

/// `POST /tts` as the frontend sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TtsBody {
    pub voice_id: String,
    pub text: String,
    pub preset_id: Option<String>,
    pub voice_settings: Option<SliderValues>,
    pub speed: Option<f32>,
}

/// The advanced sliders (PREMIUM).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SliderValues {
    pub stability: f32,
    pub similarity_boost: f32,
    #[serde(default)]
    pub style: f32,
    #[serde(default = "default_true")]
    pub use_speaker_boost: bool,
}

fn default_true() -> bool {
    true
}

/// A request that passed every rule of the caller's tier.
#[derive(Debug, Clone)]
pub struct Generation {
    pub voice_id: String,
    pub text: String,
    pub preset_id: Option<String>,
    pub config: AudioConfig,
}

pub const SPEED_RANGE: (f32, f32) = (0.7, 1.2);

pub fn valid_voice_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A speaking speed ElevenLabs accepts.
pub fn check_speed(speed: f32) -> Result<f32, ApiError> {
    if (SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed) {
        Ok(speed)
    } else {
        Err(ApiError::validation("speed", format!("must be between {} and {}", SPEED_RANGE.0, SPEED_RANGE.1)))
    }
}

/// A slider value (stability, similarity, style): 0 to 1.
pub fn unit_interval(field: &str, value: f32) -> Result<f32, ApiError> {
    if (0.0..=1.0).contains(&value) { Ok(value) } else { Err(ApiError::validation(field, "must be between 0 and 1")) }
}

impl Generation {
    /// Applies the tier's rules. Sliders on a tier without them, or a preset outside the tier,
    /// are FEATURE_LOCKED: never silently downgraded.
    pub fn check(body: TtsBody, tier: Tier, custom: &[CustomPreset], upgrade_url: &Url) -> Result<Self, ApiError> {
        let rules: &TierRules = tier.rules();
        let locked = |message: String| ApiError::FeatureLocked { message, upgrade_url: upgrade_url.to_string() };

        if !valid_voice_id(&body.voice_id) {
            return Err(ApiError::validation("voiceId", "must be 1 to 64 letters, digits, '-' or '_'"));
        }
        let text = body.text.trim();
        if text.is_empty() {
            return Err(ApiError::validation("text", "must not be empty"));
        }
        let length = text.chars().count();
        if length > rules.max_text_chars {
            return Err(ApiError::validation(
                "text",
                format!("must be at most {} characters on the {} plan (got {length})", rules.max_text_chars, tier),
            ));
        }

        let mut config = match &body.preset_id {
            None => presets::default_config(),
            Some(id) => match (PRESETS.iter().find(|p| p.id == id), custom.iter().find(|p| p.id == *id)) {
                (Some(preset), _) if rules.allows_preset(id) => presets::config_of(preset),
                (Some(_), _) => return Err(locked(format!("the preset {id:?} is not part of the {tier} plan"))),
                (None, Some(mine)) if rules.custom_presets => mine.config(),
                _ => return Err(ApiError::validation("presetId", format!("unknown preset {id:?}"))),
            },
        };

        if let Some(sliders) = body.voice_settings {
            if !rules.advanced_sliders {
                return Err(locked(format!("custom voice settings are not part of the {tier} plan")));
            }
            config.stability = unit_interval("voiceSettings.stability", sliders.stability)?;
            config.similarity_boost = unit_interval("voiceSettings.similarityBoost", sliders.similarity_boost)?;
            config.style = unit_interval("voiceSettings.style", sliders.style)?;
            config.use_speaker_boost = sliders.use_speaker_boost;
        }
        if let Some(speed) = body.speed {
            config.speed = check_speed(speed)?;
        }

        Ok(Self { voice_id: body.voice_id, text: text.to_owned(), preset_id: body.preset_id, config })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Generated {
    pub recording_id: RecordingId,
    pub audio_url: String,
    pub usage: Usage,
}

/// Generates speech for the caller: rate limit, then one conditional write reserving the unit,
/// then ElevenLabs, S3 and the recording row. Any failure after the reservation gives the unit
/// back and removes what was already written.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn generate(app: &App, caller: &Caller, request: Generation) -> Result<Generated, ApiError> {
    let user = &caller.user;
    let rules = user.tier.rules();
    let now = app.clock.now();
    ratelimit::check(&app.redis, "tts", user.id.as_str(), rules.generations_per_minute, now.unix_timestamp()).await?;

    let quota = Quota { client: &app.dynamodb, table: &app.config.tables.users };
    let reservation = quota.reserve(&user.id, user.tier, UsagePeriod::containing(now)).await.map_err(|e| match e {
        QuotaError::LimitReached { limit } => ApiError::LimitReached {
            message: format!("you have used all {limit} recordings of the {} plan this month", user.tier),
            upgrade_url: app.config.voice.upgrade_url.to_string(),
        },
        QuotaError::Store(source) => ApiError::Internal(source),
    })?;

    match produce(app, caller, &request, now).await {
        Ok((recording_id, audio_url)) => Ok(Generated {
            recording_id,
            audio_url,
            usage: Usage::new(user.tier, reservation.used, reservation.period),
        }),
        Err(error) => {
            if let Err(release) = quota.release(&user.id, reservation).await {
                tracing::error!(error = format!("{release:#}"), "could not give the quota unit back");
            }
            Err(error)
        }
    }
}

async fn produce(
    app: &App,
    caller: &Caller,
    request: &Generation,
    now: time::OffsetDateTime,
) -> Result<(RecordingId, String), ApiError> {
    let user = &caller.user;
    let elevenlabs = app.elevenlabs().await?;
    // The voice list (for the recording's voice name) is cached; on a cold instance it is fetched
    // alongside the generation rather than after it.
    let (audio, voices) = tokio::join!(
        elevenlabs.speak(&request.voice_id, &request.text, user.tier.rules().tts_model, &request.config),
        elevenlabs.voices(),
    );
    let audio = audio?;

    let recording_id = RecordingId::generate(now);
    let content_type = "audio/mpeg";
    let s3_key = Recording::s3_key_for(&user.id, &recording_id, content_type);
    app.audio.put(&s3_key, content_type, audio).await?;

    let voice_name =
        voices.ok().and_then(|voices| voices.into_iter().find(|v| v.voice_id == request.voice_id).map(|v| v.name));
    let recording = Recording {
        recording_id: recording_id.clone(),
        user_id: user.id.clone(),
        voice_id: Some(request.voice_id.clone()),
        voice_name,
        text: Some(request.text.clone()),
        preset_used: request.preset_id.clone(),
        audio_config: Some(request.config),
        content_type: content_type.to_owned(),
        s3_key: s3_key.clone(),
        is_favorite: false,
        created_at: timestamp(now),
        expires_at: Some(now.unix_timestamp() + app.config.voice.recording_ttl.as_secs() as i64),
        source: "tts".to_owned(),
    };
    if let Err(error) = app.recordings.put(&recording).await {
        if let Err(cleanup) = app.audio.delete(&s3_key).await {
            tracing::error!(error = format!("{cleanup:#}"), s3_key, "orphaned audio left for the lifecycle rule");
        }
        return Err(error.into());
    }
    let audio_url = app.audio.download_url(&s3_key).await.context("presigning the new recording")?;
    Ok((recording_id, audio_url))
}
