//! Live updates: what is pushed to a person's open WebSocket connections, and the rules of
//! opening one. The shapes here are the contract the web client reads (openapi.yaml,
//! `x-push-events`).

use serde::Serialize;

use crate::domain::{
    ids::UserId,
    subscription::SubscriptionStatus,
    tiers::Tier,
    usage::Usage,
    workspaces::{WorkspaceId, WorkspaceRole},
};

/// How long a connection ticket may wait before it is used. A ticket is asked for just before
/// the socket opens, so a few seconds are plenty; 30 leaves room for a slow network.
pub const TICKET_TTL_SECONDS: u64 = 30;

/// API Gateway closes a WebSocket connection after two hours whatever happens; its row lives
/// that long and a little more, then DynamoDB's TTL removes it if `$disconnect` never came.
pub const CONNECTION_TTL_SECONDS: i64 = 2 * 3600 + 600;

/// One update, as the client receives it: a JSON text message with a `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    /// The person's plan or its status changed (Stripe's webhook, an admin's change).
    #[serde(rename = "plan.changed", rename_all = "camelCase")]
    PlanChanged { tier: Tier, status: Option<SubscriptionStatus> },
    /// A generation counted (or was given back): the month's usage as `GET /usage` shows it.
    #[serde(rename = "usage.changed")]
    UsageChanged { usage: Usage },
    /// A payment failed (`raised`), or the invoice that failed is settled: the client reads the
    /// billing alert again (`GET /billing/subscription`).
    #[serde(rename = "billing.alert")]
    BillingAlert { raised: bool },
    /// A voice clone was made (in another tab, or by a program with the person's session).
    #[serde(rename = "voice.ready", rename_all = "camelCase")]
    VoiceReady { voice_id: String, name: String },
    /// Making a clone failed: the error code its request was answered with.
    #[serde(rename = "voice.failed")]
    VoiceFailed { code: &'static str },
    /// A workspace the person is (or was, until this) a member of changed: `userId` joined,
    /// left or was removed, got a new `role`, or was made OWNER; or the workspace was deleted.
    /// Sent to every member, and to the one who left.
    #[serde(rename = "workspace.changed", rename_all = "camelCase")]
    WorkspaceChanged {
        workspace_id: WorkspaceId,
        change: WorkspaceChange,
        user_id: UserId,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<WorkspaceRole>,
    },
    /// A workspace's TEAM subscription changed (Stripe's webhook): its seats now, and what is
    /// billed. Sent to every member.
    #[serde(rename = "workspace.seats", rename_all = "camelCase")]
    SeatsChanged { workspace_id: WorkspaceId, status: SubscriptionStatus, seats: u32, billed_seats: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WorkspaceChange {
    Joined,
    Left,
    Removed,
    Role,
    Transferred,
    Deleted,
}

impl Event {
    /// The event's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PlanChanged { .. } => "plan.changed",
            Self::UsageChanged { .. } => "usage.changed",
            Self::BillingAlert { .. } => "billing.alert",
            Self::VoiceReady { .. } => "voice.ready",
            Self::VoiceFailed { .. } => "voice.failed",
            Self::WorkspaceChanged { .. } => "workspace.changed",
            Self::SeatsChanged { .. } => "workspace.seats",
        }
    }
}

/// Whether a WebSocket handshake's `Origin` may open a connection: one of the allowed origins,
/// exactly. A browser always sends it; a request without one is no page of ours.
pub fn origin_allowed(origin: Option<&str>, allowed: &[String]) -> bool {
    origin.is_some_and(|origin| allowed.iter().any(|a| a == origin.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_type_beside_their_fields() {
        let event = Event::PlanChanged { tier: Tier::Premium, status: Some(SubscriptionStatus::Active) };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json, serde_json::json!({ "type": "plan.changed", "tier": "PREMIUM", "status": "active" }));
        assert_eq!(event.name(), "plan.changed");
    }

    #[test]
    fn only_an_allowed_origin_opens_a_connection() {
        let allowed = vec!["https://app.example.com".to_owned()];
        assert!(origin_allowed(Some("https://app.example.com"), &allowed));
        assert!(origin_allowed(Some("https://app.example.com/"), &allowed));
        assert!(!origin_allowed(Some("https://app.example.com.evil.test"), &allowed));
        assert!(!origin_allowed(Some("http://app.example.com"), &allowed));
        assert!(!origin_allowed(None, &allowed));
    }
}
