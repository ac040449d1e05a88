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
    /// Licensed prices: how many are billed (TEAM: its seats). Metered items have none.
    #[serde(default)]
    pub quantity: Option<u32>,
    #[serde(default)]
    price: Option<ItemPrice>,
    #[serde(default)]
    plan: Option<ItemPrice>,
    /// Current API versions keep the period here.
    #[serde(default)]
    current_period_start: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
struct ItemPrice {
    id: String,
    /// Recurring prices: `usage_type` metered (billed by what a meter counted) or licensed.
    #[serde(default)]
    recurring: Option<Recurring>,
    /// localstripe's plans keep it here.
    #[serde(default)]
    usage_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Recurring {
    #[serde(default)]
    usage_type: Option<String>,
}

impl SubscriptionItem {
    pub fn price_id(&self) -> Option<&str> {
        self.price().map(|p| p.id.as_str())
    }

    fn price(&self) -> Option<&ItemPrice> {
        self.price.as_ref().or(self.plan.as_ref())
    }

    /// Billed by usage (a metered price) rather than per period.
    pub fn is_metered(&self) -> bool {
        self.price().is_some_and(|p| {
            p.recurring.as_ref().and_then(|r| r.usage_type.as_deref()).or(p.usage_type.as_deref()) == Some("metered")
        })
    }
}

impl Subscription {
    /// The item billed per period (the plan); a subscription also carries a metered item for
    /// overage.
    pub fn plan_item(&self) -> Option<&SubscriptionItem> {
        self.items.data.iter().find(|item| !item.is_metered())
    }

    /// The item billed by usage, if the subscription has one.
    pub fn metered_item(&self) -> Option<&SubscriptionItem> {
        self.items.data.iter().find(|item| item.is_metered())
    }

    /// The plan's price.
    pub fn price_id(&self) -> Option<&str> {
        self.plan_item().and_then(SubscriptionItem::price_id)
    }

    /// (start, end) of the current period: from the item (current API), else the subscription.
    pub fn current_period(&self) -> (Option<i64>, Option<i64>) {
        let item = self.plan_item();
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
    /// Its lines (Stripe embeds the first ten).
    #[serde(default = "no_lines")]
    pub lines: List<InvoiceLine>,
}

fn no_lines() -> List<InvoiceLine> {
    List { data: Vec::new(), has_more: false }
}

/// One line of an invoice: a period of the plan, a proration, or a metered price's usage.
#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceLine {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub quantity: Option<i64>,
    #[serde(default)]
    pub amount: i64,
    #[serde(default)]
    pub period: Option<LinePeriod>,
    /// Current API versions: `pricing.price_details.price`, the price it bills.
    #[serde(default)]
    pricing: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LinePeriod {
    pub start: i64,
    pub end: i64,
}

impl InvoiceLine {
    pub fn price_id(&self) -> Option<&str> {
        self.pricing.as_ref()?.pointer("/price_details/price")?.as_str()
    }
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
