//! The rules a text-to-speech request must pass for the caller's tier.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{
    domain::{
        audio::{AudioConfig, check_speed, unit_interval},
        ids::{ElevenLabsVoiceId, Ulid, UserId},
        presets::{self, CustomPreset},
        tiers::{PRESETS, Tier, TierRules},
    },
    error::ApiError,
};

/// The largest `POST /tts` body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `POST /tts` as the frontend sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TtsBody {
    pub voice_id: String,
    pub text: String,
    pub preset_id: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::json::object_or_null")]
    pub voice_settings: Option<SliderValues>,
    pub speed: Option<f32>,
    /// Speak as a member of this workspace, with its shared voices.
    pub workspace_id: Option<String>,
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
    pub voice_id: ElevenLabsVoiceId,
    pub text: String,
    pub preset_id: Option<String>,
    pub config: AudioConfig,
    /// The workspace the caller speaks in (their membership is checked with the voice).
    pub workspace: Option<Ulid>,
}

/// The audio format every generation asks ElevenLabs for.
pub const OUTPUT_FORMAT: &str = "mp3_44100_128";

impl Generation {
    /// What makes two generations the same audio: the user (a cache is never shared), the voice,
    /// the text, every setting, the model and the format, as a SHA-256 in hex. Floats are taken
    /// by their bits, so 0.5 and 0.50 agree and nothing is rounded.
    pub fn content_key(&self, user: &UserId, model: &str) -> String {
        let c = &self.config;
        let canonical = serde_json::json!([
            user.as_str(),
            self.voice_id.as_str(),
            self.text,
            [c.stability.to_bits(), c.similarity_boost.to_bits(), c.style.to_bits(), c.speed.to_bits()],
            c.use_speaker_boost,
            model,
            OUTPUT_FORMAT,
        ]);
        crate::domain::ids::hex(&Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// Applies the tier's rules. Sliders on a tier without them, or a preset outside the tier,
    /// are FEATURE_LOCKED: never silently downgraded.
    pub fn check(body: TtsBody, tier: Tier, custom: &[CustomPreset]) -> Result<Self, ApiError> {
        let rules: &TierRules = tier.rules();
        let locked = ApiError::FeatureLocked;

        let voice_id =
            ElevenLabsVoiceId::parse(&body.voice_id).map_err(|e| ApiError::validation("voiceId", e.to_string()))?;
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

        let workspace = match &body.workspace_id {
            None => None,
            Some(raw) => {
                Some(Ulid::parse(raw).ok_or_else(|| ApiError::validation("workspaceId", "is not a workspace id"))?)
            }
        };
        Ok(Self { voice_id, text: text.to_owned(), preset_id: body.preset_id, config, workspace })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> TtsBody {
        serde_json::from_value(json).unwrap()
    }

    fn check(json: serde_json::Value, tier: Tier) -> Result<Generation, ApiError> {
        Generation::check(body(json), tier, &[])
    }

    fn field(result: Result<Generation, ApiError>) -> String {
        match result {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn the_content_key_changes_with_every_input_and_only_with_them() {
        let ada = UserId::parse("auth0|ada").unwrap();
        let base = check(serde_json::json!({"voiceId": "v1", "text": "Hello"}), Tier::Premium).unwrap();
        let key = base.content_key(&ada, "m1");
        assert_eq!(key.len(), 64);
        assert_eq!(
            key,
            check(serde_json::json!({"voiceId": "v1", "text": " Hello "}), Tier::Premium)
                .unwrap()
                .content_key(&ada, "m1"),
            "the same request, trimmed alike"
        );
        let other = |json| check(json, Tier::Premium).unwrap().content_key(&ada, "m1");
        assert_ne!(key, other(serde_json::json!({"voiceId": "v2", "text": "Hello"})), "voice");
        assert_ne!(key, other(serde_json::json!({"voiceId": "v1", "text": "Hello!"})), "text");
        assert_ne!(key, other(serde_json::json!({"voiceId": "v1", "text": "Hello", "speed": 1.1})), "a setting");
        assert_ne!(key, base.content_key(&ada, "m2"), "model");
        assert_ne!(key, base.content_key(&UserId::parse("auth0|bob").unwrap(), "m1"), "never shared between users");
    }

    #[test]
    fn given_plain_text_when_checked_then_the_default_preset_applies() {
        let generation = check(serde_json::json!({"voiceId": "v1", "text": "  Hello  "}), Tier::Free).unwrap();
        assert_eq!(generation.text, "Hello");
        assert_eq!(generation.config, presets::default_config());
        assert_eq!(generation.voice_id.as_str(), "v1");
    }

    #[test]
    fn given_sliders_below_premium_when_checked_then_feature_locked_not_downgraded() {
        let sliders = serde_json::json!({"voiceId": "v1", "text": "Hi", "voiceSettings": {"stability": 0.2, "similarityBoost": 0.9}});
        for tier in [Tier::Free, Tier::Basic] {
            assert!(matches!(check(sliders.clone(), tier), Err(ApiError::FeatureLocked(_))), "{tier}");
        }
        let premium = check(sliders, Tier::Premium).unwrap();
        assert_eq!((premium.config.stability, premium.config.similarity_boost), (0.2, 0.9));
    }

    #[test]
    fn given_text_over_the_tier_limit_when_checked_then_text_is_named() {
        let text = "a".repeat(501);
        assert_eq!(field(check(serde_json::json!({"voiceId": "v1", "text": text}), Tier::Free)), "text");
        assert!(check(serde_json::json!({"voiceId": "v1", "text": text}), Tier::Basic).is_ok());
        assert_eq!(field(check(serde_json::json!({"voiceId": "v1", "text": "   "}), Tier::Free)), "text");
    }

    #[test]
    fn given_a_preset_of_a_higher_tier_when_checked_then_feature_locked() {
        let narrator = serde_json::json!({"voiceId": "v1", "text": "Hi", "presetId": "narrator"});
        assert!(matches!(check(narrator.clone(), Tier::Free), Err(ApiError::FeatureLocked(_))));
        assert!(check(narrator, Tier::Basic).is_ok());
        assert_eq!(
            field(check(serde_json::json!({"voiceId": "v1", "text": "Hi", "presetId": "nope"}), Tier::Premium)),
            "presetId"
        );
    }

    #[test]
    fn given_bad_values_when_checked_then_each_field_is_named() {
        assert_eq!(field(check(serde_json::json!({"voiceId": "../x", "text": "Hi"}), Tier::Free)), "voiceId");
        assert_eq!(field(check(serde_json::json!({"voiceId": "v", "text": "Hi", "speed": 3.0}), Tier::Free)), "speed");
        let slider = serde_json::json!({"voiceId": "v", "text": "Hi", "voiceSettings": {"stability": 2.0, "similarityBoost": 0.5}});
        assert_eq!(field(check(slider, Tier::Premium)), "voiceSettings.stability");
    }

    #[test]
    fn given_a_saved_preset_when_checked_then_only_premium_may_use_it() {
        let mine =
            presets::NewPreset { name: "Mine".into(), stability: 0.1, similarity_boost: 0.2, style: 0.3, speed: 0.8 }
                .validate()
                .unwrap();
        let request = serde_json::json!({"voiceId": "v1", "text": "Hi", "presetId": mine.id});
        let premium = Generation::check(body(request.clone()), Tier::Premium, std::slice::from_ref(&mine)).unwrap();
        assert_eq!(premium.config, mine.config());
        assert_eq!(field(Generation::check(body(request), Tier::Basic, &[mine])), "presetId");
    }
}
