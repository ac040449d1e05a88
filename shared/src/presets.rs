//! Presets: the catalogue of the tier table, and PREMIUM's saved custom presets (kept on the user
//! row as `customPresets`, a JSON list, replaced with optimistic concurrency).

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{
    ApiError, App, Caller,
    recordings::AudioConfig,
    tiers::{PRESETS, Preset, Tier},
    tts::{check_speed, unit_interval},
};

pub const MAX_CUSTOM_PRESETS: usize = 20;

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

fn require_custom_presets(app: &App, tier: Tier) -> Result<(), ApiError> {
    if tier.rules().custom_presets {
        return Ok(());
    }
    Err(ApiError::FeatureLocked {
        message: format!("saved custom presets are not part of the {tier} plan"),
        upgrade_url: app.config.voice.upgrade_url.to_string(),
    })
}

fn validate(new: NewPreset) -> Result<CustomPreset, ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 40 {
        return Err(ApiError::validation("name", "must be 1 to 40 characters"));
    }
    for (field, value) in
        [("stability", new.stability), ("similarityBoost", new.similarity_boost), ("style", new.style)]
    {
        unit_interval(field, value)?;
    }
    check_speed(new.speed)?;
    let mut random = [0u8; 6];
    rand::rng().fill_bytes(&mut random);
    let id = format!("custom-{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
    Ok(CustomPreset {
        id,
        name: name.to_owned(),
        stability: new.stability,
        similarity_boost: new.similarity_boost,
        style: new.style,
        speed: new.speed,
    })
}

/// Saves a custom preset (PREMIUM).
pub async fn save(app: &App, caller: &Caller, new: NewPreset) -> Result<CustomPreset, ApiError> {
    require_custom_presets(app, caller.user.tier)?;
    let preset = validate(new)?;
    change(app, caller, |list| {
        if list.len() >= MAX_CUSTOM_PRESETS {
            return Err(ApiError::Conflict(format!("at most {MAX_CUSTOM_PRESETS} custom presets; delete one first")));
        }
        list.push(preset.clone());
        Ok(())
    })
    .await?;
    Ok(preset)
}

/// Deletes a custom preset; NOT_FOUND if the caller has none with that id.
pub async fn delete(app: &App, caller: &Caller, id: &str) -> Result<(), ApiError> {
    require_custom_presets(app, caller.user.tier)?;
    change(app, caller, |list| {
        let before = list.len();
        list.retain(|p| p.id != id);
        if list.len() == before { Err(ApiError::not_found("preset")) } else { Ok(()) }
    })
    .await
}

/// Applies `edit` to the stored list, retrying if another request changed it meanwhile.
async fn change(
    app: &App,
    caller: &Caller,
    edit: impl Fn(&mut Vec<CustomPreset>) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut current = caller.user.custom_presets.clone();
    for _ in 0..3 {
        let mut next = current.clone();
        edit(&mut next)?;
        if app.users.replace_custom_presets(&caller.user.id, &current, &next).await? {
            return Ok(());
        }
        let fresh = app.users.get(&caller.user.id).await?.ok_or(ApiError::Unauthenticated)?;
        current = fresh.custom_presets;
    }
    Err(ApiError::Conflict("the presets changed meanwhile; try again".into()))
}
