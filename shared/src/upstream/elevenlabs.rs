//! The ElevenLabs client: speech and the voice list.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use crate::{
    config::Secret,
    domain::{audio::AudioConfig, ids::ElevenLabsVoiceId},
    error::ApiError,
};

const VOICES_TTL: Duration = Duration::from_secs(300);

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
        voice_id: &ElevenLabsVoiceId,
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
