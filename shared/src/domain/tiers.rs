//! The tier table (SPEC §3): the one place that says what each plan allows. Enforcement, the
//! `features` object sent to the frontend and `GET /billing/plans` are all derived from it.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Tier {
    Free,
    Basic,
    Premium,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Standard,
    Priority,
    Fastest,
}

/// How many of the preset catalogue a tier may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetAccess {
    First(usize),
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierRules {
    pub tier: Tier,
    pub display_name: &'static str,
    /// US cents per month; the Stripe price itself comes from configuration.
    pub monthly_price_cents: u32,
    /// US cents per year, for yearly billing.
    pub yearly_price_cents: u32,
    /// None: unlimited.
    pub monthly_recordings: Option<u32>,
    pub presets: PresetAccess,
    pub custom_presets: bool,
    /// Custom ElevenLabs `voice_settings` (stability, similarity, style, speaker boost).
    pub advanced_sliders: bool,
    pub priority: Priority,
    /// Characters per generation; ElevenLabs' own ceiling is [`ELEVENLABS_MAX_TEXT_CHARS`].
    pub max_text_chars: usize,
    pub generations_per_minute: u32,
    /// Any authenticated request, per user.
    pub requests_per_minute: u32,
    /// Requests that call Stripe (portal, checkout, plan changes, invoices), per user.
    pub billing_calls_per_minute: u32,
    pub tts_model: &'static str,
    /// Cloned voices a user may keep at once.
    pub clone_slots: u32,
    /// Presigned uploads (recordings and voice samples) a user may request per month.
    pub uploads_per_month: u32,
    /// Bytes of uploaded recordings a user may keep (reserved when the upload URL is issued).
    pub storage_bytes: u64,
    /// Recordings a user may keep as favourites (favourites never expire).
    pub favourites: u32,
    /// API keys a user may hold at once (0: the feature is not part of the plan).
    pub api_keys: u32,
    /// US cents per generation past `monthly_recordings`, for a user who allows overage up to a
    /// cap of their own (`domain::overage`); None: the plan has no overage (FREE stops at its
    /// limit, PREMIUM has none).
    pub overage_unit_cents: Option<u32>,
}

const MB: u64 = 1_000_000;

/// The most characters any ElevenLabs model used here accepts in one request.
pub const ELEVENLABS_MAX_TEXT_CHARS: usize = 10_000;

pub const TIERS: [TierRules; 3] = [
    TierRules {
        tier: Tier::Free,
        display_name: "Free",
        monthly_price_cents: 0,
        yearly_price_cents: 0,
        monthly_recordings: Some(10),
        presets: PresetAccess::First(3),
        custom_presets: false,
        advanced_sliders: false,
        priority: Priority::Standard,
        max_text_chars: 500,
        generations_per_minute: 20,
        requests_per_minute: 60,
        billing_calls_per_minute: 10,
        tts_model: "eleven_multilingual_v2",
        clone_slots: 1,
        uploads_per_month: 20,
        storage_bytes: 200 * MB,
        favourites: 20,
        api_keys: 0,
        overage_unit_cents: None,
    },
    TierRules {
        tier: Tier::Basic,
        display_name: "Basic",
        monthly_price_cents: 999,
        yearly_price_cents: 9_990,
        monthly_recordings: Some(100),
        presets: PresetAccess::First(10),
        custom_presets: false,
        advanced_sliders: false,
        priority: Priority::Priority,
        max_text_chars: 2_500,
        generations_per_minute: 40,
        requests_per_minute: 120,
        billing_calls_per_minute: 10,
        tts_model: "eleven_turbo_v2_5",
        clone_slots: 5,
        uploads_per_month: 200,
        storage_bytes: 2_000 * MB,
        favourites: 200,
        api_keys: 2,
        overage_unit_cents: Some(10),
    },
    TierRules {
        tier: Tier::Premium,
        display_name: "Premium",
        monthly_price_cents: 2_999,
        yearly_price_cents: 29_990,
        monthly_recordings: None,
        presets: PresetAccess::All,
        custom_presets: true,
        advanced_sliders: true,
        priority: Priority::Fastest,
        max_text_chars: 5_000,
        generations_per_minute: 120,
        requests_per_minute: 300,
        billing_calls_per_minute: 20,
        tts_model: "eleven_flash_v2_5",
        clone_slots: 25,
        uploads_per_month: 2000,
        storage_bytes: 20_000 * MB,
        favourites: 2000,
        api_keys: 10,
        overage_unit_cents: None,
    },
];

/// A per-user rate limit (a Redis counter per one-minute window), its size set per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Every authenticated request.
    Requests,
    /// Text to speech (ElevenLabs costs money per character).
    Generations,
    /// Requests that call Stripe.
    Billing,
}

/// What a per-minute limit does when its counter (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncounted {
    /// The request goes through: it spends nothing (the monthly quotas still bound the rest).
    Open,
    /// A durable counter (DynamoDB) counts it instead: it spends money upstream.
    Durable,
    /// Refused (503): it guards something that needs the cache anyway (sign-in keeps its login
    /// state there).
    Closed,
}

impl Limit {
    /// Money is spent past the generation and billing limits: they never fail open.
    pub fn when_uncounted(self) -> Uncounted {
        match self {
            Self::Requests => Uncounted::Open,
            Self::Generations | Self::Billing => Uncounted::Durable,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "api",
            Self::Generations => "tts",
            Self::Billing => "billing",
        }
    }
}

impl TierRules {
    pub fn per_minute(&self, limit: Limit) -> u32 {
        match limit {
            Limit::Requests => self.requests_per_minute,
            Limit::Generations => self.generations_per_minute,
            Limit::Billing => self.billing_calls_per_minute,
        }
    }
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Free, Tier::Basic, Tier::Premium];

    pub fn rules(self) -> &'static TierRules {
        &TIERS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "FREE",
            Tier::Basic => "BASIC",
            Tier::Premium => "PREMIUM",
        }
    }

    pub fn features(self) -> Features {
        let rules = self.rules();
        Features {
            monthly_recordings: rules.monthly_recordings,
            presets: rules.presets().map(|p| p.id).collect(),
            custom_presets: rules.custom_presets,
            advanced_sliders: rules.advanced_sliders,
            priority: rules.priority,
            max_text_length: rules.max_text_chars,
            clone_slots: rules.clone_slots,
            api_keys: rules.api_keys,
            overage_unit_cents: rules.overage_unit_cents,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown tier {0:?} (expected FREE, BASIC or PREMIUM)")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownTier(s.to_owned()))
    }
}

impl TierRules {
    pub fn presets(&self) -> impl Iterator<Item = &'static Preset> {
        let count = match self.presets {
            PresetAccess::First(n) => n,
            PresetAccess::All => PRESETS.len(),
        };
        PRESETS.iter().take(count)
    }

    pub fn allows_preset(&self, id: &str) -> bool {
        self.presets().any(|p| p.id == id)
    }
}

/// What the frontend needs to mirror the rules; the backend enforces them regardless.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// null: unlimited.
    pub monthly_recordings: Option<u32>,
    pub presets: Vec<&'static str>,
    pub custom_presets: bool,
    pub advanced_sliders: bool,
    pub priority: Priority,
    pub max_text_length: usize,
    pub clone_slots: u32,
    /// How many API keys the plan holds (0: none).
    pub api_keys: u32,
    /// US cents per generation past the month's allowance, for a user who allows overage; null:
    /// the plan has none.
    pub overage_unit_cents: Option<u32>,
}

/// A named set of ElevenLabs voice settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preset {
    pub id: &'static str,
    pub name: &'static str,
    pub stability: f32,
    pub similarity_boost: f32,
    pub style: f32,
    pub speed: f32,
}

const fn preset(
    id: &'static str,
    name: &'static str,
    stability: f32,
    similarity_boost: f32,
    style: f32,
    speed: f32,
) -> Preset {
    Preset { id, name, stability, similarity_boost, style, speed }
}

/// Ordered by tier: the first three are FREE's, the first ten BASIC's, PREMIUM has all.
pub const PRESETS: [Preset; 12] = [
    preset("natural", "Natural", 0.50, 0.75, 0.00, 1.00),
    preset("calm", "Calm", 0.75, 0.75, 0.00, 0.90),
    preset("expressive", "Expressive", 0.30, 0.75, 0.40, 1.00),
    preset("narrator", "Narrator", 0.65, 0.80, 0.15, 0.95),
    preset("newscaster", "Newscaster", 0.70, 0.85, 0.10, 1.05),
    preset("storyteller", "Storyteller", 0.40, 0.80, 0.50, 0.95),
    preset("energetic", "Energetic", 0.35, 0.70, 0.60, 1.10),
    preset("whisper", "Soft", 0.80, 0.60, 0.05, 0.85),
    preset("podcast", "Podcast", 0.55, 0.80, 0.20, 1.00),
    preset("audiobook", "Audiobook", 0.70, 0.80, 0.10, 0.90),
    preset("dramatic", "Dramatic", 0.25, 0.85, 0.75, 0.95),
    preset("studio", "Studio", 0.60, 0.95, 0.25, 1.00),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_indexed_by_tier() {
        for tier in Tier::ALL {
            assert_eq!(tier.rules().tier, tier);
            assert_eq!(tier.as_str().parse::<Tier>(), Ok(tier));
        }
        assert!("GOLD".parse::<Tier>().is_err());
    }

    #[test]
    fn limits_match_the_product_contract() {
        let quotas: Vec<_> = Tier::ALL.map(|t| t.rules().monthly_recordings).into();
        assert_eq!(quotas, [Some(10), Some(100), None]);
        let presets: Vec<_> = Tier::ALL.map(|t| t.rules().presets().count()).into();
        assert_eq!(presets, [3, 10, PRESETS.len()]);
        let sliders: Vec<_> = Tier::ALL.map(|t| t.rules().advanced_sliders).into();
        assert_eq!(sliders, [false, false, true]);
        assert!(TIERS.iter().all(|r| r.max_text_chars <= ELEVENLABS_MAX_TEXT_CHARS));
        let clones: Vec<_> = Tier::ALL.map(|t| t.rules().clone_slots).into();
        assert_eq!(clones, [1, 5, 25]);
    }

    #[test]
    fn features_mirror_the_rules() {
        let free = serde_json::to_value(Tier::Free.features()).unwrap();
        assert_eq!(free["monthlyRecordings"], 10);
        assert_eq!(free["presets"], serde_json::json!(["natural", "calm", "expressive"]));
        assert_eq!(free["advancedSliders"], false);
        let premium = serde_json::to_value(Tier::Premium.features()).unwrap();
        assert!(premium["monthlyRecordings"].is_null());
        assert_eq!(premium["customPresets"], true);
        assert_eq!(premium["priority"], "fastest");
    }

    #[test]
    fn a_basic_preset_is_not_free() {
        assert!(Tier::Basic.rules().allows_preset("narrator"));
        assert!(!Tier::Free.rules().allows_preset("narrator"));
        assert!(!Tier::Basic.rules().allows_preset("studio"));
        assert!(Tier::Premium.rules().allows_preset("studio"));
    }
}
