//! Voice cloning rules: the consent statement, what a clone request must carry, sample bounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        audio::AudioType,
        ids::{SampleId, Ulid},
    },
    error::ApiError,
};

/// The consent statement the client shows before a clone is made; its version id is what a
/// `POST /voices` must attest. A new wording gets a new version, and older versions are refused.
pub const CONSENT_VERSION: &str = "voice-consent-2026-11-23";
pub const CONSENT_TEXT: &str = "I confirm that the voice in these recordings is my own, or that I have the \
explicit permission of the person whose voice it is to create a synthetic copy of it. I will not use the \
cloned voice to deceive, impersonate or harm anyone. I understand that the provider keeps a record of this \
consent, with fingerprints of the recordings, for three years after the voice is deleted.";

/// How long a consent record outlives the voice it covers (three years).
pub const CONSENT_RETENTION_SECS: i64 = 3 * 365 * 24 * 3600;

pub const SAMPLE_MIN_BYTES: u64 = 1024;
pub const SAMPLE_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// All samples of one clone together.
pub const CLONE_MAX_BYTES: u64 = 40 * 1024 * 1024;
pub const MAX_SAMPLES: usize = 8;
pub const NAME_MAX_CHARS: usize = 50;
pub const DESCRIPTION_MAX_CHARS: usize = 500;
pub const MAX_LABELS: usize = 10;

/// `POST /voices/samples`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SampleRequest {
    pub content_type: String,
    #[serde(deserialize_with = "crate::domain::json::whole_number")]
    pub size_bytes: u64,
}

impl SampleRequest {
    pub fn check(&self) -> Result<(AudioType, u64), ApiError> {
        let kind = self
            .content_type
            .parse()
            .map_err(|e: crate::domain::audio::UnknownAudioType| ApiError::validation("contentType", e.to_string()))?;
        if !(SAMPLE_MIN_BYTES..=SAMPLE_MAX_BYTES).contains(&self.size_bytes) {
            return Err(ApiError::validation(
                "sizeBytes",
                format!("must be from {SAMPLE_MIN_BYTES} to {SAMPLE_MAX_BYTES} bytes"),
            ));
        }
        Ok((kind, self.size_bytes))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Consent {
    pub accepted: bool,
    pub statement: String,
}

/// `POST /voices` as the client sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewVoiceBody {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub sample_ids: Vec<String>,
    #[serde(default)]
    pub remove_background_noise: bool,
    #[serde(default, deserialize_with = "crate::domain::json::object_or_null")]
    pub consent: Option<Consent>,
}

/// A clone request that passed every rule that needs no storage.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVoice {
    pub name: String,
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub sample_ids: Vec<SampleId>,
    pub remove_background_noise: bool,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    crate::domain::text::printable("name", name, 1, NAME_MAX_CHARS)
}

fn check_description(description: Option<String>) -> Result<Option<String>, ApiError> {
    match description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()) {
        Some(d) if d.chars().count() > DESCRIPTION_MAX_CHARS => {
            Err(ApiError::validation("description", format!("must be at most {DESCRIPTION_MAX_CHARS} characters")))
        }
        other => Ok(other),
    }
}

impl NewVoiceBody {
    pub fn check(self) -> Result<NewVoice, ApiError> {
        match &self.consent {
            None => return Err(ApiError::validation("consent", "consent to cloning this voice is required")),
            Some(consent) if !consent.accepted => {
                return Err(ApiError::validation("consent.accepted", "must be true"));
            }
            Some(consent) if consent.statement != CONSENT_VERSION => {
                return Err(ApiError::validation(
                    "consent.statement",
                    format!("must be the current statement {CONSENT_VERSION:?} (GET /voices/consent)"),
                ));
            }
            Some(_) => {}
        }
        let name = check_name(&self.name)?;
        let description = check_description(self.description)?;
        if self.labels.len() > MAX_LABELS
            || self.labels.iter().any(|(k, v)| k.is_empty() || k.chars().count() > 30 || v.chars().count() > 50)
        {
            return Err(ApiError::validation(
                "labels",
                format!("at most {MAX_LABELS} labels, keys 1 to 30 and values up to 50 characters"),
            ));
        }
        if self.sample_ids.is_empty() || self.sample_ids.len() > MAX_SAMPLES {
            return Err(ApiError::validation("sampleIds", format!("must list 1 to {MAX_SAMPLES} samples")));
        }
        let mut sample_ids = Vec::with_capacity(self.sample_ids.len());
        for (i, raw) in self.sample_ids.iter().enumerate() {
            let id =
                Ulid::parse(raw).ok_or_else(|| ApiError::validation(format!("sampleIds[{i}]"), "no such sample"))?;
            if sample_ids.contains(&id) {
                return Err(ApiError::validation(format!("sampleIds[{i}]"), "listed twice"));
            }
            sample_ids.push(id);
        }
        Ok(NewVoice {
            name,
            description,
            labels: self.labels,
            sample_ids,
            remove_background_noise: self.remove_background_noise,
        })
    }
}

/// `PATCH /voices/{id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoicePatchBody {
    #[serde(default, deserialize_with = "crate::domain::json::absent_or_value")]
    pub name: Option<String>,
    /// Empty clears it.
    #[serde(default, deserialize_with = "crate::domain::json::absent_or_value")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VoicePatch {
    pub name: Option<String>,
    /// Some(None): clear it.
    pub description: Option<Option<String>>,
}

impl VoicePatchBody {
    pub fn check(self) -> Result<VoicePatch, ApiError> {
        if self.name.is_none() && self.description.is_none() {
            return Err(ApiError::validation("body", "name or description is required"));
        }
        Ok(VoicePatch {
            name: self.name.as_deref().map(check_name).transpose()?,
            description: match self.description {
                None => None,
                Some(d) => Some(check_description(Some(d))?),
            },
        })
    }
}

/// The consent statement as `GET /voices/consent` shows it.
#[derive(Debug, Serialize)]
pub struct ConsentStatement {
    pub version: &'static str,
    pub text: &'static str,
}

pub const CONSENT: ConsentStatement = ConsentStatement { version: CONSENT_VERSION, text: CONSENT_TEXT };

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    fn sample() -> String {
        Ulid::generate(OffsetDateTime::now_utc()).to_string()
    }

    fn body(json: serde_json::Value) -> NewVoiceBody {
        serde_json::from_value(json).unwrap()
    }

    fn field(result: Result<NewVoice, ApiError>) -> String {
        match result {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn valid() -> serde_json::Value {
        serde_json::json!({
            "name": " My voice ",
            "sampleIds": [sample(), sample()],
            "consent": {"accepted": true, "statement": CONSENT_VERSION}
        })
    }

    #[test]
    fn given_a_complete_request_when_checked_then_it_is_trimmed_and_typed() {
        let voice = body(valid()).check().unwrap();
        assert_eq!(voice.name, "My voice");
        assert_eq!(voice.sample_ids.len(), 2);
        assert!(!voice.remove_background_noise);
    }

    #[test]
    fn given_missing_or_stale_consent_when_checked_then_consent_is_named() {
        let mut none = valid();
        none.as_object_mut().unwrap().remove("consent");
        assert_eq!(field(body(none).check()), "consent");
        let mut refused = valid();
        refused["consent"]["accepted"] = false.into();
        assert_eq!(field(body(refused).check()), "consent.accepted");
        let mut old = valid();
        old["consent"]["statement"] = "voice-consent-2020-01-01".into();
        assert_eq!(field(body(old).check()), "consent.statement");
    }

    #[test]
    fn given_bad_samples_or_name_when_checked_then_the_field_is_named() {
        let mut nine = valid();
        nine["sampleIds"] = (0..9).map(|_| sample()).collect::<Vec<_>>().into();
        assert_eq!(field(body(nine).check()), "sampleIds");
        let mut empty = valid();
        empty["sampleIds"] = serde_json::json!([]);
        assert_eq!(field(body(empty).check()), "sampleIds");
        let mut junk = valid();
        junk["sampleIds"] = serde_json::json!([sample(), "../../other"]);
        assert_eq!(field(body(junk).check()), "sampleIds[1]");
        let twice = sample();
        let mut repeated = valid();
        repeated["sampleIds"] = serde_json::json!([twice, twice]);
        assert_eq!(field(body(repeated).check()), "sampleIds[1]");
        let mut blank = valid();
        blank["name"] = "   ".into();
        assert_eq!(field(body(blank).check()), "name");
        let mut long = valid();
        long["name"] = "x".repeat(51).into();
        assert_eq!(field(body(long).check()), "name");
    }

    #[test]
    fn sample_uploads_are_bounded() {
        let ok = SampleRequest { content_type: "audio/wav".into(), size_bytes: 2048 };
        assert_eq!(ok.check().unwrap(), (AudioType::Wav, 2048));
        for (kind, size, field) in [("audio/flac", 2048, "contentType"), ("audio/wav", 10, "sizeBytes")] {
            let request = SampleRequest { content_type: kind.into(), size_bytes: size };
            assert!(matches!(request.check(), Err(ApiError::Validation { field: f, .. }) if f == field));
        }
        let big = SampleRequest { content_type: "audio/wav".into(), size_bytes: SAMPLE_MAX_BYTES + 1 };
        assert!(big.check().is_err());
    }

    #[test]
    fn a_patch_needs_something_to_change() {
        assert!(VoicePatchBody { name: None, description: None }.check().is_err());
        let patch = VoicePatchBody { name: Some(" New ".into()), description: Some("".into()) }.check().unwrap();
        assert_eq!(patch, VoicePatch { name: Some("New".into()), description: Some(None) });
    }
}
