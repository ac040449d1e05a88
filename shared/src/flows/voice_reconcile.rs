//! Nightly: no clone exists at ElevenLabs that no row of ours owns. The account's added voices
//! are listed; ours carry the labels set when they were added (`voice_app_account` naming this
//! account, `voice_app_made`); one that no voice row holds (a clone whose creation failed after
//! ElevenLabs made it, a re-creation cut off, a delete that lost track) is deleted there. Voices
//! made in the last hour are left alone: their rows may still be on the way.

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    flows::voice_slots::{ACCOUNT_LABEL, MADE_LABEL},
    store::voices::Voices,
    upstream::elevenlabs::Account,
};

/// How old a voice of ours must be before it counts as left behind.
pub const GRACE_SECS: i64 = 3600;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceReport {
    /// Added voices of this account that carry our labels.
    pub ours: u64,
    /// Of those, left behind and deleted now.
    pub deleted: u64,
    /// Left behind, but too young to judge yet.
    pub young: u64,
}

/// One account's reconciliation (the nightly job runs one per account).
pub struct VoiceReconciler<'a> {
    pub voices: &'a Voices,
    pub account: &'a Account,
}

impl VoiceReconciler<'_> {
    pub async fn run(&self, now: OffsetDateTime) -> anyhow::Result<VoiceReport> {
        let mut report = VoiceReport::default();
        let elevenlabs = &self.account.client;
        for voice in elevenlabs.cloned_voices().await? {
            let label = |key: &str| voice.labels.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            if label(ACCOUNT_LABEL).as_deref() != Some(self.account.name.as_str()) {
                continue;
            }
            report.ours += 1;
            if self.voices.is_cloned_elevenlabs_id(&voice.voice_id).await? {
                continue;
            }
            let made = label(MADE_LABEL).and_then(|at| at.parse::<i64>().ok()).unwrap_or(0);
            if now.unix_timestamp() - made < GRACE_SECS {
                report.young += 1;
                continue;
            }
            elevenlabs.delete_voice(&voice.voice_id).await?;
            tracing::warn!(elevenlabs_voice_id = voice.voice_id, "deleted a clone no row of ours owns");
            report.deleted += 1;
        }
        let (account, ours, deleted, young) = (&self.account.name, report.ours, report.deleted, report.young);
        tracing::info!(account, ours, deleted, young, "voice reconciliation");
        Ok(report)
    }
}
