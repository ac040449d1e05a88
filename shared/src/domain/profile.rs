//! What a user may edit about themselves: a display name and preferences the app applies by
//! default, each typed, bounded and checked against the tier.

use serde::{Deserialize, Serialize};

use crate::{
    domain::{ids::ElevenLabsVoiceId, presets::CustomPreset, tiers::Tier},
    error::ApiError,
};

pub const MAX_NAME_CHARS: usize = 100;

/// Audio formats a user may prefer; the higher bitrate is PREMIUM's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormat {
    #[serde(rename = "mp3_44100_128")]
    Mp3Standard,
    #[serde(rename = "mp3_44100_192")]
    Mp3High,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferences {
    /// A premade voice id or one of the user's clone ids.
    pub default_voice_id: Option<String>,
    pub default_preset_id: Option<String>,
    pub output_format: Option<OutputFormat>,
}

/// `PATCH /user/profile`: absent fields stay as they are; `name: null` removes the name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfilePatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::json::object_or_null")]
    pub preferences: Option<Preferences>,
}

/// Distinguishes a field sent as `null` (Some(None)) from one not sent (None).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl ProfilePatch {
    /// The patch with a trimmed name, after the tier's rules; errors name the field.
    pub fn check(mut self, tier: Tier, custom: &[CustomPreset]) -> Result<Self, ApiError> {
        if let Some(Some(name)) = &mut self.name {
            *name = crate::domain::text::printable("name", name, 1, MAX_NAME_CHARS)?;
        }
        if let Some(preferences) = &self.preferences {
            if let Some(voice) = &preferences.default_voice_id {
                ElevenLabsVoiceId::parse(voice)
                    .map_err(|_| ApiError::validation("preferences.defaultVoiceId", "is not a voice id"))?;
            }
            if let Some(preset) = &preferences.default_preset_id {
                let rules = tier.rules();
                let ours = custom.iter().any(|p| p.id == *preset) && rules.custom_presets;
                if !rules.allows_preset(preset) && !ours {
                    return Err(ApiError::locked(format!("the preset {preset:?} is not part of the {tier} plan")));
                }
            }
            if preferences.output_format == Some(OutputFormat::Mp3High) && tier != Tier::Premium {
                return Err(ApiError::locked("192 kbps audio is part of the PREMIUM plan"));
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: &str) -> Result<ProfilePatch, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn names_are_trimmed_bounded_and_removable() {
        let ok = patch(r#"{"name": "  Ada  "}"#).unwrap().check(Tier::Free, &[]).unwrap();
        assert_eq!(ok.name, Some(Some("Ada".into())));
        assert_eq!(patch(r#"{"name": null}"#).unwrap().name, Some(None));
        assert_eq!(patch("{}").unwrap().name, None);
        for bad in [r#"{"name": "   "}"#, r#"{"name": "a\u0007b"}"#] {
            assert!(patch(bad).unwrap().check(Tier::Free, &[]).is_err(), "{bad}");
        }
        let long = format!(r#"{{"name": "{}"}}"#, "x".repeat(101));
        assert!(patch(&long).unwrap().check(Tier::Free, &[]).is_err());
        assert!(patch(r#"{"nickname": "x"}"#).is_err(), "unknown fields are refused");
    }

    #[test]
    fn preferences_follow_the_tier() {
        let high = patch(r#"{"preferences": {"outputFormat": "mp3_44100_192"}}"#).unwrap();
        assert!(matches!(high.check(Tier::Basic, &[]), Err(ApiError::FeatureLocked(_))));
        let high = patch(r#"{"preferences": {"outputFormat": "mp3_44100_192"}}"#).unwrap();
        assert!(high.check(Tier::Premium, &[]).is_ok());
        assert!(patch(r#"{"preferences": {"outputFormat": "wav"}}"#).is_err());
        let voice = patch(r#"{"preferences": {"defaultVoiceId": "../../etc"}}"#).unwrap();
        assert!(matches!(voice.check(Tier::Free, &[]), Err(ApiError::Validation { .. })));
    }
}
