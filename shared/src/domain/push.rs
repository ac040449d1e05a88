//! Live updates: what is pushed to a person's open WebSocket connections, and the rules of
//! opening one. The shapes here are the contract the web client reads (openapi.yaml,
//! `x-push-events`).

use serde::Serialize;

use crate::domain::{subscription::SubscriptionStatus, tiers::Tier, usage::Usage};

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
}

impl Event {
    /// The event's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PlanChanged { .. } => "plan.changed",
            Self::UsageChanged { .. } => "usage.changed",
            Self::BillingAlert { .. } => "billing.alert",
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
