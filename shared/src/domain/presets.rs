//! Presets: the catalogue of the tier table, and the rules for PREMIUM's saved custom presets.

use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        audio::{AudioConfig, check_speed, unit_interval},
        ids::random_hex,
        tiers::{PRESETS, Preset, Tier},
    },
    error::ApiError,
};

pub const MAX_CUSTOM_PRESETS: usize = 20;
/// The most characters of a custom preset's name.
pub const NAME_MAX_CHARS: usize = 40;

pub fn default_config() -> AudioConfig {
    config_of(&PRESETS[0])
}

pub fn config_of(preset: &Preset) -> AudioConfig {
    AudioConfig {
        stability: preset.stability,
        similarity_boost: preset.similarity_boost,
        style: preset.style,
        use_speaker_boost: true,
        speed: preset.speed,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomPreset {
    pub id: String,
    pub name: String,
    pub stability: f32,
    pub similarity_boost: f32,
    pub style: f32,
    pub speed: f32,
}

impl CustomPreset {
    pub fn config(&self) -> AudioConfig {
        AudioConfig {
            stability: self.stability,
            similarity_boost: self.similarity_boost,
            style: self.style,
            use_speaker_boost: true,
            speed: self.speed,
        }
    }
}

/// `POST /presets`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPreset {
    pub name: String,
    pub stability: f32,
    pub similarity_boost: f32,
    #[serde(default)]
    pub style: f32,
    #[serde(default = "one")]
    pub speed: f32,
}

fn one() -> f32 {
    1.0
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    #[serde(flatten)]
    pub preset: &'static Preset,
    /// Part of a higher tier: shown, but refused by POST /tts.
    pub locked: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresetList {
    pub presets: Vec<CatalogEntry>,
    pub custom_presets: Vec<CustomPreset>,
}

pub fn list(tier: Tier, custom: &[CustomPreset]) -> PresetList {
    let rules = tier.rules();
    PresetList {
        presets: PRESETS
            .iter()
            .map(|preset| CatalogEntry { preset, locked: !rules.allows_preset(preset.id) })
            .collect(),
        custom_presets: if rules.custom_presets { custom.to_vec() } else { Vec::new() },
    }
}

/// Saving and deleting custom presets is PREMIUM's; other tiers get FEATURE_LOCKED.
pub fn require_custom_presets(tier: Tier) -> Result<(), ApiError> {
    if tier.rules().custom_presets {
        return Ok(());
    }
    Err(ApiError::locked(format!("saved custom presets are not part of the {tier} plan")))
}

impl NewPreset {
    /// A preset with bounded name and values, under a fresh id.
    pub fn validate(self) -> Result<CustomPreset, ApiError> {
        let name = crate::domain::text::printable("name", &self.name, 1, NAME_MAX_CHARS)?;
        for (field, value) in
            [("stability", self.stability), ("similarityBoost", self.similarity_boost), ("style", self.style)]
        {
            unit_interval(field, value)?;
        }
        check_speed(self.speed)?;
        Ok(CustomPreset {
            id: format!("custom-{}", random_hex::<6>()),
            name,
            stability: self.stability,
            similarity_boost: self.similarity_boost,
            style: self.style,
            speed: self.speed,
        })
    }
}

/// Adds `preset` to the list, within [`MAX_CUSTOM_PRESETS`].
pub fn add(list: &mut Vec<CustomPreset>, preset: &CustomPreset) -> Result<(), ApiError> {
    if list.len() >= MAX_CUSTOM_PRESETS {
        return Err(ApiError::Conflict(format!("at most {MAX_CUSTOM_PRESETS} custom presets; delete one first")));
    }
    list.push(preset.clone());
    Ok(())
}

/// `PATCH /presets/{id}`: a saved preset's new name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetRename {
    pub name: String,
}

/// Renames the preset `id` to `name` (trimmed, bounded), returning it; NOT_FOUND when the list
/// has none.
pub fn rename(list: &mut [CustomPreset], id: &str, name: &str) -> Result<CustomPreset, ApiError> {
    let name = crate::domain::text::printable("name", name, 1, NAME_MAX_CHARS)?;
    let preset = list.iter_mut().find(|p| p.id == id).ok_or_else(|| ApiError::not_found("preset"))?;
    preset.name = name;
    Ok(preset.clone())
}

/// Removes the preset `id`; NOT_FOUND when the list has none.
pub fn remove(list: &mut Vec<CustomPreset>, id: &str) -> Result<(), ApiError> {
    let before = list.len();
    list.retain(|p| p.id != id);
    if list.len() == before { Err(ApiError::not_found("preset")) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, stability: f32, speed: f32) -> NewPreset {
        NewPreset { name: name.into(), stability, similarity_boost: 0.5, style: 0.0, speed }
    }

    #[test]
    fn given_valid_values_when_validated_then_a_fresh_id_is_given() {
        let a = new(" Warm ", 0.4, 1.0).validate().unwrap();
        let b = new("Warm", 0.4, 1.0).validate().unwrap();
        assert_eq!(a.name, "Warm");
        assert!(a.id.starts_with("custom-") && a.id.len() == 19);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn given_bad_values_when_validated_then_the_field_is_named() {
        let field = |p: NewPreset| match p.validate() {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(new("", 0.4, 1.0)), "name");
        assert_eq!(field(new(&"x".repeat(41), 0.4, 1.0)), "name");
        assert_eq!(field(new("ok", 1.5, 1.0)), "stability");
        assert_eq!(field(new("ok", 0.4, 2.0)), "speed");
    }

    #[test]
    fn the_list_is_capped_and_removal_needs_a_match() {
        let preset = new("p", 0.5, 1.0).validate().unwrap();
        let mut list = Vec::new();
        for _ in 0..MAX_CUSTOM_PRESETS {
            add(&mut list, &preset).unwrap();
        }
        assert!(matches!(add(&mut list, &preset), Err(ApiError::Conflict(_))));
        assert!(matches!(remove(&mut list, "custom-none"), Err(ApiError::NotFound(_))));
        remove(&mut list, &preset.id).unwrap();
        assert!(list.is_empty(), "every copy with that id goes");
    }

    #[test]
    fn a_rename_keeps_id_and_values_and_names_what_was_wrong() {
        let preset = new("Warm", 0.4, 1.1).validate().unwrap();
        let mut list = vec![preset.clone()];
        let renamed = rename(&mut list, &preset.id, "  Warmer ").unwrap();
        assert_eq!((renamed.id.as_str(), renamed.name.as_str()), (preset.id.as_str(), "Warmer"));
        assert_eq!((list[0].stability, list[0].speed), (0.4, 1.1));
        assert!(matches!(rename(&mut list, "custom-none", "x"), Err(ApiError::NotFound(_))));
        assert!(
            matches!(rename(&mut list, &preset.id, " "), Err(ApiError::Validation { field, .. }) if field == "name")
        );
        assert_eq!(list[0].name, "Warmer", "a refused rename changes nothing");
    }

    #[test]
    fn only_premium_saves_presets_and_lower_tiers_see_the_catalogue_locked() {
        assert!(matches!(require_custom_presets(Tier::Basic), Err(ApiError::FeatureLocked(_))));
        assert!(require_custom_presets(Tier::Premium).is_ok());
        let free = list(Tier::Free, &[]);
        assert_eq!(free.presets.iter().filter(|p| !p.locked).count(), 3);
        let saved = new("p", 0.5, 1.0).validate().unwrap();
        assert!(list(Tier::Basic, std::slice::from_ref(&saved)).custom_presets.is_empty());
        assert_eq!(list(Tier::Premium, &[saved]).custom_presets.len(), 1);
    }
}
