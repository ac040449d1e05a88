//! Erasing an account and everything it owns: the right to leave, for people whose voices we
//! keep.
//!
//! The erasure is a resumable job: the user row is marked `erasing` first, and every step is
//! idempotent (cancelling what is already cancelled, deleting what is already gone), so a crash
//! or an outside failure midway leaves the marker, and the next attempt — the user's retry, or
//! the sweep every 15 minutes — runs the steps again and finishes. Order: Stripe (open Checkout
//! Sessions expired, the subscription cancelled now with no proration refund, the customer
//! deleted: nothing can bill the account again, and a late payment of anything that slipped
//! through is cancelled and refunded by the billing sync), ElevenLabs (every clone deleted,
//! also those their samples made in workspaces' shared libraries), S3 (everything under
//! `{userId}/`), the rows (recordings, voices and samples,
//! subscriptions), the consent records' retention started (kept with their sample hashes, no
//! audio, for the documented retention), every session ended (Redis tombstone, then the durable
//! copy), and last the user row replaced by a tombstone (a hash of the id and when). A late
//! Stripe webhook then finds no user; signing in again makes a new FREE user.

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    domain::{ids::UserId, voices::CONSENT_RETENTION_SECS, workspaces::WorkspaceRole},
    error::ApiError,
    flows::{
        elevenlabs_accounts,
        push::Push,
        seats::{end_billing, keep_billing_contact},
        voices::VoiceRemoval,
    },
    store::{
        api_keys::ApiKeys,
        audio::AudioStore,
        consent::ConsentRecords,
        recordings::Recordings,
        sessions::Sessions,
        subscriptions::Subscriptions,
        usage_events::UsageEvents,
        users::Users,
        voices::Voices,
        workspaces::{Refused, Workspaces},
    },
    upstream::{elevenlabs::Accounts, stripe::Stripe},
};

/// How recent a sign-in must be to erase the account.
pub const REAUTHENTICATE_WITHIN_SECS: i64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ErasureStatus {
    /// Everything is gone.
    Erased,
    /// Started and not finished (a step failed): retried by the next attempt or the sweep.
    Deleting,
}

pub struct Erasure<'a> {
    pub users: &'a Users,
    pub sessions: &'a Sessions,
    pub recordings: &'a Recordings,
    pub voices: &'a Voices,
    pub subscriptions: &'a Subscriptions,
    pub consent: &'a ConsentRecords,
    pub api_keys: &'a ApiKeys,
    pub audio: &'a AudioStore,
    pub stripe: &'a Stripe,
    pub accounts: &'a Accounts,
    pub usage_events: &'a UsageEvents,
    pub workspaces: &'a Workspaces,
    /// Live updates: the person's open connections are closed and forgotten.
    pub push: Option<Push<'a>>,
}

impl Erasure<'_> {
    fn voice_removal(&self) -> VoiceRemoval<'_> {
        VoiceRemoval {
            users: self.users,
            workspaces: self.workspaces,
            voices: self.voices,
            consent: self.consent,
            audio: self.audio,
            accounts: self.accounts,
        }
    }

    /// Starts (or resumes) the erasure and runs it as far as it gets.
    pub async fn erase(&self, user: &UserId, now: OffsetDateTime) -> Result<ErasureStatus, ApiError> {
        if !self.users.mark_erasing(user, now.unix_timestamp()).await? {
            // No user row: erased already (or never existed).
            return Ok(ErasureStatus::Erased);
        }
        match self.steps(user, now).await {
            Ok(()) => {
                tracing::info!(user_id = %user, "account erased");
                Ok(ErasureStatus::Erased)
            }
            Err(error) => {
                tracing::warn!(user_id = %user, error = format!("{error:#}"), "erasure stopped midway; it will be resumed");
                Ok(ErasureStatus::Deleting)
            }
        }
    }

    /// Each step's future is boxed: together they are too large for a thread's stack in a
    /// debug build.
    async fn steps(&self, id: &UserId, now: OffsetDateTime) -> anyhow::Result<()> {
        let Some(user) = Box::pin(self.users.get(id)).await? else { return Ok(()) };
        if let Some(customer) = &user.stripe_customer_id {
            // Nothing new can be paid for: open checkouts first, then what bills now, then the
            // customer itself (its invoices stay in Stripe's records, as the law requires).
            for session in Box::pin(self.stripe.open_checkout_sessions(customer)).await? {
                Box::pin(self.stripe.expire_checkout_session(&session.id)).await?;
            }
            for subscription in Box::pin(self.stripe.open_subscriptions(customer)).await? {
                Box::pin(self.stripe.cancel_if_live(&subscription.id)).await?;
            }
            Box::pin(self.stripe.delete_customer(customer)).await?;
        }
        // Each clone marked first, its ElevenLabs id read from the mark: no re-creation can
        // record a voice after it, and one that finishes before it is in the mark.
        for voice in Box::pin(self.voices.all_voices(id)).await? {
            let marked = Box::pin(self.voices.mark_deleting(id, &voice.voice_id)).await?;
            if let Some(marked) = marked
                && let Some(elevenlabs_id) = &marked.elevenlabs_voice_id
            {
                Box::pin(elevenlabs_accounts::of(self.accounts, &marked).client.delete_voice(elevenlabs_id)).await?;
            }
        }
        // Clones of their voice in workspaces' libraries go too (the workspaces' other data stays).
        Box::pin(self.voice_removal().delete_uploaded_by(id, now)).await?;
        Box::pin(self.audio.delete_prefix(&format!("{id}/"))).await?;
        Box::pin(self.recordings.delete_all(id)).await?;
        Box::pin(self.voices.delete_all(id)).await?;
        Box::pin(self.subscriptions.delete_all(id)).await?;
        // Unsent usage is not billed: the customer was deleted above, its subscription with it.
        Box::pin(self.usage_events.delete_all(id)).await?;
        Box::pin(self.consent.retain_all(id, now.unix_timestamp() + CONSENT_RETENTION_SECS)).await?;
        Box::pin(self.api_keys.revoke_all(id)).await?;
        Box::pin(leave_workspaces(self.workspaces, self.api_keys, self.stripe, &self.voice_removal(), id, now)).await?;
        Box::pin(self.sessions.end_all(id)).await?;
        if let Some(push) = &self.push {
            Box::pin(push.close_all(id, now.unix_timestamp())).await?;
        }
        Box::pin(self.users.replace_with_tombstone(id, now.unix_timestamp())).await
    }
}

/// Takes the person out of every workspace. One they became the only OWNER of after the erasure
/// was asked for (it checks first) stops the erasure, unless they are its only member: then the
/// workspace goes with them, its TEAM ended and its shared voices deleted first. Where they were an OWNER and the billing
/// contact, the contact moves to another OWNER.
async fn leave_workspaces(
    workspaces: &Workspaces,
    keys: &ApiKeys,
    stripe: &Stripe,
    voices: &VoiceRemoval<'_>,
    id: &UserId,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    for listed in workspaces.of_user(id).await? {
        // Strongly consistent: the index may lag a role change.
        let Some(member) = workspaces.member(&listed.workspace_id, id).await? else { continue };
        let workspace = &member.workspace_id;
        match workspaces.remove(&member).await? {
            Ok(()) => {
                // Their keys there are gone with their own (revoked above); their listings go too.
                workspaces.revoke_keys(keys, workspace, Some(id)).await?;
                if member.role == WorkspaceRole::Owner
                    && let Some(left) = workspaces.get(workspace).await?
                {
                    keep_billing_contact(stripe, workspaces, &left).await?;
                }
            }
            Err(Refused::LastOwner) if workspaces.get(workspace).await?.is_none_or(|w| w.members <= 1) => {
                workspaces.mark_deleting(workspace).await?;
                end_billing(stripe, workspaces, workspace).await?;
                voices.delete_library(workspace, now).await?;
                workspaces.revoke_keys(keys, workspace, None).await?;
                workspaces.delete(workspace).await?;
            }
            Err(refused) => anyhow::bail!("leaving workspace {workspace}: {refused:?}"),
        }
    }
    Ok(())
}
