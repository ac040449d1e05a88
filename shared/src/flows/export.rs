//! `GET /user/export`: everything we hold about the caller in one JSON document — profile,
//! subscription and invoices, usage and its history, recordings (with fresh download URLs),
//! voices, custom presets, consent records. Built only from the caller's own partitions and
//! their own Stripe customer. Past `INLINE_LIMIT` bytes it is stored in S3 (tagged temporary)
//! and handed out as a presigned URL instead.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{
    clock::timestamp,
    domain::user::User,
    error::ApiError,
    store::{audio::AudioStore, consent::ConsentRecords, recordings::Recordings, voices::Voices},
    upstream::stripe::{Stripe, StripeError},
};

/// Larger documents are handed out through S3.
pub const INLINE_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Export {
    Inline(Value),
    #[serde(rename_all = "camelCase")]
    Stored {
        export_url: String,
        expires_in: u64,
        size_bytes: usize,
    },
}

pub struct Exporter<'a> {
    pub recordings: &'a Recordings,
    pub voices: &'a Voices,
    pub consent: &'a ConsentRecords,
    pub audio: &'a AudioStore,
    pub stripe: &'a Stripe,
    pub api_keys: &'a crate::store::api_keys::ApiKeys,
    pub workspaces: &'a crate::store::workspaces::Workspaces,
    /// Documents larger than this go through S3 ([`INLINE_LIMIT`] in the API).
    pub inline_limit: usize,
}

impl Exporter<'_> {
    pub async fn export(&self, user: &User, now: OffsetDateTime) -> Result<Export, ApiError> {
        let document = self.document(user, now).await?;
        let bytes = serde_json::to_vec_pretty(&document).expect("JSON values serialize");
        if bytes.len() <= self.inline_limit {
            return Ok(Export::Inline(document));
        }
        let key = format!("{}/exports/{}.json", user.id, now.unix_timestamp());
        let size_bytes = bytes.len();
        self.audio.put_export(&key, bytes).await?;
        let export_url = self.audio.download_url(&key).await?;
        Ok(Export::Stored { export_url, expires_in: self.audio.presign_ttl().as_secs(), size_bytes })
    }

    /// The export document (public for tests of its content).
    pub async fn document(&self, user: &User, now: OffsetDateTime) -> Result<Value, ApiError> {
        let mut recordings = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.recordings.list(&user.id, 100, cursor.as_ref(), false, now.unix_timestamp()).await?;
            for recording in page.items {
                let audio_url = self.audio.audio_url(&recording.s3_key).await?;
                let mut entry = serde_json::to_value(&recording).expect("recordings serialize");
                entry["audioUrl"] = audio_url.into();
                recordings.push(entry);
            }
            match page.next_cursor.as_deref().and_then(crate::store::recordings::parse_cursor) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let invoices = match &user.stripe_customer_id {
            None => Vec::new(),
            Some(customer) => match self.stripe.invoices(customer, 100, None).await {
                Ok(list) => list
                    .data
                    .iter()
                    .map(|i| {
                        json!({ "invoiceId": i.id, "number": i.number, "amountDue": i.amount_due,
                                     "amountPaid": i.amount_paid, "currency": i.currency, "status": i.status,
                                     "created": i.created() })
                    })
                    .collect(),
                Err(StripeError::Refused(_)) => Vec::new(),
                Err(error) => return Err(error.into()),
            },
        };
        Ok(json!({
            "exportedAt": timestamp(now),
            "profile": user.view(now),
            "invoices": invoices,
            "usageHistory": user.usage_history,
            "recordings": recordings,
            "voices": self.voices.list(&user.id).await?,
            "customPresets": user.custom_presets,
            "consentRecords": self.consent.for_user(&user.id).await?,
            "apiKeys": self.api_keys.list(&user.id).await?,
            "workspaces": self.workspaces.of_user(&user.id).await?,
        }))
    }
}
