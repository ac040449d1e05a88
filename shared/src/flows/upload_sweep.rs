//! Giving back the allowance of upload URLs that expired unused. Every 15 minutes the sweep looks
//! at the uploads (recordings and voice samples) whose URL expired more than a grace period ago:
//! an object that arrived makes its row an ordinary one; a missing one means the URL was never
//! used, so the row goes and the upload (its monthly count and, for a recording, its bytes) is
//! given back. Each row is settled once (conditional on its pending marker), so overlapping runs
//! are harmless.

use serde::Serialize;
use time::OffsetDateTime;

use crate::store::{
    audio::AudioStore,
    pending_uploads::PendingUpload,
    recordings::Recordings,
    users::{Removed, Users},
    voices::Voices,
};

/// An upload still in flight when its URL expired may finish a little later.
pub const GRACE_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub confirmed: u64,
    pub given_back: u64,
    /// Account erasures resumed that are still unfinished (each also a metric that alarms).
    pub unfinished_erasures: u64,
    /// Recordings whose retention tag the sweep brought in line with their favourite state.
    pub retagged: u64,
    /// Overage usage events sent to Stripe's meter that their generation could not send.
    pub usage_events_sent: u64,
}

pub struct UploadSweep<'a> {
    pub recordings: &'a Recordings,
    pub voices: &'a Voices,
    pub audio: &'a AudioStore,
    pub users: &'a Users,
}

impl UploadSweep<'_> {
    pub async fn run(&self, now: OffsetDateTime) -> anyhow::Result<SweepReport> {
        let before = now.unix_timestamp() - GRACE_SECS;
        let mut report = SweepReport::default();
        for pending in self.recordings.pending_uploads(before).await? {
            if self.audio.head(&pending.s3_key).await?.is_some() {
                report.confirmed += u64::from(self.recordings.confirm_upload(&pending).await?);
            } else if let Some(abandoned) = self.recordings.abandon_upload(&pending).await? {
                self.give_back(abandoned).await?;
                report.given_back += 1;
            }
        }
        for pending in self.voices.pending_samples(before).await? {
            if self.audio.head(&pending.s3_key).await?.is_some() {
                report.confirmed += u64::from(self.voices.confirm_sample(&pending).await?);
            } else if let Some(abandoned) = self.voices.abandon_sample(&pending).await? {
                self.give_back(abandoned).await?;
                report.given_back += 1;
            }
        }
        Ok(report)
    }

    async fn give_back(&self, abandoned: Removed<PendingUpload>) -> anyhow::Result<()> {
        let s3_key = &abandoned.item().s3_key;
        tracing::info!(s3_key, "an upload URL expired unused; its allowance is given back");
        self.users.give_back_held(abandoned).await?;
        Ok(())
    }
}
