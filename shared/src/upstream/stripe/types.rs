//! The few Stripe fields we read, in types that accept both the current API (periods on the
//! subscription item, `price` objects, invoice `parent.subscription_details`) and localstripe's
//! older one (periods on the subscription, `plan` objects, `invoice.subscription`).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::subscription::SubscriptionStatus;

#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    pub status: SubscriptionStatus,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    pub items: List<SubscriptionItem>,
    /// The subscription schedule attached to it (a change planned for a later date), by id.
    #[serde(default, deserialize_with = "id_or_object")]
    pub schedule: Option<String>,
    /// When it was made (unix seconds): of several live ones, the first made is the one kept.
    #[serde(default)]
    pub created: Option<i64>,
    /// A change that waits for its payment (`payment_behavior=pending_if_incomplete`): present
    /// while the invoice for it is unpaid; the subscription is unchanged until then.
    #[serde(default)]
    pub pending_update: Option<Value>,
    /// Older API versions only.
    #[serde(default)]
    current_period_start: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
}

/// An expandable field: Stripe sends the id, or the object when expanded.
fn id_or_object<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::String(id)) => Some(id),
        Some(Value::Object(object)) => object.get("id").and_then(Value::as_str).map(String::from),
        _ => None,
    })
}

/// A subscription schedule: phases of prices over time.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionSchedule {
    pub id: String,
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
    #[serde(default)]
    price: Option<IdOnly>,
    #[serde(default)]
    plan: Option<IdOnly>,
    /// Current API versions keep the period here.
    #[serde(default)]
    current_period_start: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
struct IdOnly {
    id: String,
}

impl SubscriptionItem {
    pub fn price_id(&self) -> Option<&str> {
        self.price.as_ref().or(self.plan.as_ref()).map(|p| p.id.as_str())
    }
}

impl Subscription {
    pub fn price_id(&self) -> Option<&str> {
        self.items.data.first().and_then(SubscriptionItem::price_id)
    }

    /// (start, end) of the current period: from the item (current API), else the subscription.
    pub fn current_period(&self) -> (Option<i64>, Option<i64>) {
        let item = self.items.data.first();
        (
            item.and_then(|i| i.current_period_start).or(self.current_period_start),
            item.and_then(|i| i.current_period_end).or(self.current_period_end),
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: Value,
}

impl Event {
    /// The subscription this event is about, wherever the object type keeps it.
    pub fn subscription_id(&self) -> Option<&str> {
        let object = &self.data.object;
        match object.get("object").and_then(Value::as_str)? {
            "subscription" => object.get("id")?.as_str(),
            "checkout.session" => object.get("subscription")?.as_str(),
            "invoice" => object
                .get("subscription")
                .and_then(Value::as_str)
                .or_else(|| object.pointer("/parent/subscription_details/subscription")?.as_str()),
            _ => None,
        }
    }
}

/// An invoice. Current API versions have `created`, `number` and the hosted and PDF links;
/// localstripe's has `date` and neither link.
#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    pub id: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub amount_due: i64,
    #[serde(default)]
    pub amount_paid: i64,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub period_start: Option<i64>,
    #[serde(default)]
    pub period_end: Option<i64>,
    #[serde(default)]
    created: Option<i64>,
    #[serde(default)]
    date: Option<i64>,
    #[serde(default)]
    pub hosted_invoice_url: Option<String>,
    #[serde(default)]
    pub invoice_pdf: Option<String>,
    /// Older API versions only: the payment that paid it (current ones list invoice payments).
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
}

/// A payment of an invoice (current API versions): which PaymentIntent paid it.
#[derive(Debug, Clone, Deserialize)]
pub struct InvoicePayment {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
    pub payment: InvoicePaymentSource,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoicePaymentSource {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    pub id: String,
    #[serde(default)]
    pub amount: i64,
    #[serde(default)]
    pub status: Option<String>,
}

impl Invoice {
    pub fn created(&self) -> Option<i64> {
        self.created.or(self.date)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: Option<String>,
    /// open, complete or expired.
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PortalSession {
    pub id: String,
    pub url: String,
}
