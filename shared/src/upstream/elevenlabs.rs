//! The ElevenLabs client: speech, the voice list, and adding and deleting instant clones.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use crate::{
    config::Secret,
    domain::{audio::AudioConfig, ids::ElevenLabsVoiceId},
    error::ApiError,
    telemetry::metrics,
    upstream::outbound,
};

const VOICES_TTL: Duration = Duration::from_secs(300);

/// ElevenLabs' code for an account whose character quota is used up (sent with HTTP 401).
const QUOTA_EXCEEDED: &str = "quota_exceeded";

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
    /// A timeout, 5xx, 429 (`too_many_concurrent_requests`, or rate limiting) or a used-up
    /// quota: worth retrying later (our user gets 503), never the user's own fault.
    pub temporary: bool,
    /// ElevenLabs' own error code (`detail.status`), when it answered with one.
    pub code: Option<String>,
    source: anyhow::Error,
}

impl UpstreamError {
    fn new(temporary: bool, source: impl Into<anyhow::Error>) -> Self {
        Self { temporary, code: None, source: source.into() }
    }

    /// ElevenLabs does not (or no longer) hold the voice.
    pub fn is_voice_missing(&self) -> bool {
        matches!(self.code.as_deref(), Some("voice_not_found" | "voice_does_not_exist"))
    }
}

impl From<UpstreamError> for ApiError {
    fn from(error: UpstreamError) -> Self {
        ApiError::Upstream { service: "ElevenLabs", temporary: error.temporary, source: error.source }
    }
}

/// Cheap to clone: the clones share the connection pool and the cached voice list.
#[derive(Clone)]
pub struct ElevenLabs {
    http: reqwest::Client,
    base: Url,
    key: Secret<String>,
    timeout: Duration,
    voices: std::sync::Arc<Mutex<Option<Listed>>>,
}

/// One ElevenLabs account, ready to call: its client and how many custom voices it holds.
#[derive(Clone)]
pub struct Account {
    pub name: String,
    pub voice_slots: u32,
    pub client: ElevenLabs,
}

/// The accounts speech and clones are spread over (`flows::elevenlabs_accounts` chooses).
pub struct Accounts {
    /// Never empty; the first is the primary.
    all: Vec<Account>,
}

impl Accounts {
    /// # Panics
    /// When `all` is empty (the configuration always holds the primary account).
    pub fn new(all: Vec<Account>) -> Self {
        assert!(!all.is_empty(), "at least one ElevenLabs account");
        Self { all }
    }

    /// The first account: it lists the premade voices.
    pub fn primary(&self) -> &Account {
        &self.all[0]
    }

    pub fn all(&self) -> &[Account] {
        &self.all
    }

    /// The account called `name`, if it is configured.
    pub fn named(&self, name: &str) -> Option<&Account> {
        self.all.iter().find(|a| a.name == name)
    }
}

/// What to say, in which voice, with which model and settings.
pub struct Speech<'a> {
    pub voice: &'a ElevenLabsVoiceId,
    pub text: &'a str,
    pub model: &'a str,
    pub audio: &'a AudioConfig,
}

/// The voice list as fetched, and when.
type Listed = (Instant, Vec<Voice>);

impl ElevenLabs {
    pub fn new(http: reqwest::Client, base: Url, key: Secret<String>, timeout: Duration) -> Self {
        Self { http, base, key, timeout, voices: Default::default() }
    }

    /// The speech's MP3 audio, within `within` (or the client's own timeout, if shorter).
    pub async fn speak(&self, speech: &Speech<'_>, within: Duration) -> Result<Vec<u8>, UpstreamError> {
        let request = self.speech_request(&format!("v1/text-to-speech/{}", speech.voice), speech)?;
        let response = self.send_within(request, "speech", within.min(self.timeout)).await?;
        let bytes = response.bytes().await.map_err(|e| UpstreamError::new(true, e))?;
        if bytes.is_empty() {
            return Err(UpstreamError::new(true, anyhow!("empty audio")));
        }
        Ok(bytes.to_vec())
    }

    /// The same speech from ElevenLabs' streaming endpoint: the answer once its status is in,
    /// its MP3 to be read chunk by chunk as it is produced (`Response::chunk`). The whole stream
    /// must end within `within` (or the client's own timeout).
    pub async fn speak_streamed(
        &self,
        speech: &Speech<'_>,
        within: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = self.speech_request(&format!("v1/text-to-speech/{}/stream", speech.voice), speech)?;
        self.send_within(request, "streamed speech", within.min(self.timeout)).await
    }

    fn speech_request(&self, path: &str, speech: &Speech<'_>) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let mut url = self.url(path)?;
        url.query_pairs_mut().append_pair("output_format", "mp3_44100_128");
        let config = speech.audio;
        let body = serde_json::json!({
            "text": speech.text,
            "model_id": speech.model,
            "voice_settings": {
                "stability": config.stability,
                "similarity_boost": config.similarity_boost,
                "style": config.style,
                "use_speaker_boost": config.use_speaker_boost,
                "speed": config.speed,
            },
        });
        Ok(self.http.post(url).json(&body).header("accept", "audio/mpeg"))
    }

    /// The account's voices, kept for five minutes per warm instance.
    pub async fn voices(&self) -> Result<Vec<Voice>, UpstreamError> {
        let voices = self.account_voices().await?;
        // Clones live in the account too; they are listed per user from our own table.
        Ok(voices.into_iter().filter(|v| v.category.as_deref() != Some("cloned")).collect())
    }

    /// Whether `voice_id` is a premade voice in the list this instance holds (never fetches it:
    /// false when there is no fresh list).
    pub async fn is_listed_premade(&self, voice_id: &str) -> bool {
        let cached = self.voices.lock().await;
        cached.as_ref().is_some_and(|(at, voices)| {
            at.elapsed() < VOICES_TTL
                && voices.iter().any(|v| v.voice_id == voice_id && v.category.as_deref() == Some("premade"))
        })
    }

    /// The account's added (cloned) voices as ElevenLabs holds them now, not as cached.
    pub async fn cloned_voices(&self) -> Result<Vec<Voice>, UpstreamError> {
        let voices = self.fetch_voices().await?;
        Ok(voices.into_iter().filter(|v| v.category.as_deref() == Some("cloned")).collect())
    }

    async fn fetch_voices(&self) -> Result<Vec<Voice>, UpstreamError> {
        #[derive(Deserialize)]
        struct List {
            voices: Vec<Voice>,
        }
        let response = self.send(self.http.get(self.url("v1/voices")?), "the voice list").await?;
        let list: List = response.json().await.map_err(|e| UpstreamError::new(false, e))?;
        Ok(list.voices)
    }

    async fn account_voices(&self) -> Result<Vec<Voice>, UpstreamError> {
        let mut cached = self.voices.lock().await;
        if let Some((at, voices)) = cached.as_ref()
            && at.elapsed() < VOICES_TTL
        {
            return Ok(voices.clone());
        }
        let voices = self.fetch_voices().await?;
        *cached = Some((Instant::now(), voices.clone()));
        Ok(voices)
    }

    fn url(&self, path: &str) -> Result<Url, UpstreamError> {
        self.base.join(path).map_err(|e| UpstreamError::new(false, e))
    }

    /// Sends one request with the key and the time limit; any answer but a success becomes an
    /// error carrying ElevenLabs' code. `what` names the request in the error.
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response, UpstreamError> {
        self.send_within(request, what, self.timeout).await
    }

    async fn send_within(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = request.header("xi-api-key", self.key.expose()).timeout(outbound::timeout(timeout));
        let response = outbound::observed("elevenlabs", request)
            .await
            .map_err(|e| UpstreamError::new(true, anyhow::Error::new(e).context("calling ElevenLabs")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let code = body.pointer("/detail/status").and_then(|s| s.as_str()).map(String::from);
        // ElevenLabs answers a used-up character quota with 401: it is not our user's sign-in,
        // and nothing speaks until the plan is raised, so it is an alarm, and "try later" for them.
        let quota_exceeded = code.as_deref() == Some(QUOTA_EXCEEDED);
        if quota_exceeded {
            tracing::error!(service = "elevenlabs", what, "ElevenLabs' character quota is used up: raise the plan");
            metrics::count("ElevenLabsQuotaExceeded", ("Service", "elevenlabs"));
        }
        Err(UpstreamError {
            temporary: status.is_server_error() || status.as_u16() == 429 || quota_exceeded,
            code,
            source: anyhow!("ElevenLabs answered {status} to {what}"),
        })
    }
}

/// One audio file of an instant-clone request, streamed.
pub struct VoiceFile {
    pub filename: String,
    pub content_type: &'static str,
    pub length: u64,
    pub body: reqwest::Body,
}

/// `POST /v1/voices/add` fields besides the files.
pub struct NewClone<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub labels: &'a std::collections::BTreeMap<String, String>,
    pub remove_background_noise: bool,
}

/// Why ElevenLabs refused or failed a clone.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    /// The account holds as many custom voices as its plan allows.
    #[error("ElevenLabs' voice slots are full")]
    VoiceLimitReached,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl From<CloneError> for ApiError {
    fn from(error: CloneError) -> Self {
        match error {
            CloneError::Upstream(upstream) => upstream.into(),
            full @ CloneError::VoiceLimitReached => {
                ApiError::Upstream { service: "ElevenLabs", temporary: true, source: full.into() }
            }
        }
    }
}

impl ElevenLabs {
    /// Instant voice cloning: the files are streamed as they are read, never held whole.
    pub async fn add_voice(&self, clone: &NewClone<'_>, files: Vec<VoiceFile>) -> Result<String, CloneError> {
        #[derive(Deserialize)]
        struct Added {
            voice_id: String,
        }
        let mut form = reqwest::multipart::Form::new()
            .text("name", clone.name.to_owned())
            .text("remove_background_noise", if clone.remove_background_noise { "true" } else { "false" });
        if let Some(description) = clone.description {
            form = form.text("description", description.to_owned());
        }
        if !clone.labels.is_empty() {
            form = form.text("labels", serde_json::to_string(clone.labels).expect("labels serialize"));
        }
        for file in files {
            let part = reqwest::multipart::Part::stream_with_length(file.body, file.length)
                .file_name(file.filename)
                .mime_str(file.content_type)
                .map_err(|e| UpstreamError::new(false, e))?;
            form = form.part("files", part);
        }
        let request = self.http.post(self.url("v1/voices/add")?).multipart(form);
        match self.send(request, "a clone").await {
            Ok(response) => {
                let added: Added = response.json().await.map_err(|e| UpstreamError::new(false, e))?;
                Ok(added.voice_id)
            }
            Err(error) if error.code.as_deref() == Some("voice_limit_reached") => Err(CloneError::VoiceLimitReached),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes an added voice; one ElevenLabs no longer has counts as deleted.
    pub async fn delete_voice(&self, voice_id: &str) -> Result<(), UpstreamError> {
        let url = self.url(&format!("v1/voices/{voice_id}"))?;
        match self.send(self.http.delete(url), "a voice deletion").await {
            Err(error) if !error.is_voice_missing() => Err(error),
            _ => Ok(()),
        }
    }
}
