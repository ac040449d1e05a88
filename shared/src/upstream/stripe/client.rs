//! A small Stripe client over the shared HTTP client. It reads few fields and tolerates the rest,
//! so it works with current Stripe and with localstripe's older API version alike.

use anyhow::anyhow;
use serde::{Deserialize, de::DeserializeOwned};
use url::Url;

use crate::{
    config::Secret,
    error::ApiError,
    upstream::outbound,
    upstream::stripe::types::{
        CheckoutSession, Invoice, InvoicePayment, List, PortalSession, Refund, Subscription, SubscriptionItem,
        SubscriptionSchedule,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("Stripe is unreachable or failed")]
    Unavailable(#[source] anyhow::Error),
    #[error("Stripe refused the request: {0}")]
    Refused(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    pub id: String,
    pub email: Option<String>,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
}

impl From<StripeError> for ApiError {
    /// Stripe's own refusal of a request we built is our fault (502); the rest is temporary (503).
    fn from(error: StripeError) -> Self {
        let temporary = matches!(error, StripeError::Unavailable(_));
        ApiError::Upstream { service: "Stripe", temporary, source: error.into() }
    }
}

/// What a Checkout Session sells, and to whom.
pub struct Purchase<'a> {
    pub price: &'a str,
    /// How many of `price` (TEAM: seats; a personal plan: 1).
    pub quantity: u32,
    /// The metered price that bills overage, a second item of the subscription (no quantity).
    pub metered_price: Option<&'a str>,
    /// Whose it is, as metadata on the session and the subscription: `("userId", id)` or
    /// `("workspaceId", id)`.
    pub owner: (&'a str, &'a str),
    pub tier: &'a str,
    /// Where the browser goes back to, paid or not.
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

pub struct NewCheckout<'a> {
    pub customer: &'a str,
    /// When the session stops taking payment (unix seconds; Stripe takes 30 minutes to 24 hours).
    pub expires_at: i64,
    pub purchase: &'a Purchase<'a>,
    pub idempotency_key: &'a str,
}

/// The Stripe API version every request is written for, sent as `Stripe-Version` (so the
/// account's default version never changes what we send or read). The webhook endpoint is
/// created with the same version (README, "Build and deploy"); `make test` checks every request against
/// this version's contract (local/contracts/).
pub const API_VERSION: &str = "2026-10-28.endive";

pub struct Stripe {
    http: reqwest::Client,
    base: Url,
    key: Secret<String>,
}

impl Stripe {
    pub fn new(http: reqwest::Client, base: Url, key: Secret<String>) -> Self {
        Self { http, base, key }
    }

    /// Creates a customer for `owner` (`("userId", id)` or `("workspaceId", id)`, kept as
    /// metadata). The idempotency key makes a retried request return the same customer.
    pub async fn create_customer(
        &self,
        owner: (&str, &str),
        email: &str,
        idempotency_key: &str,
    ) -> Result<Customer, StripeError> {
        let metadata = format!("metadata[{}]", owner.0);
        let form = [("email", email), (metadata.as_str(), owner.1)];
        self.send(self.http.post(self.url("v1/customers")?).form(&form).header("idempotency-key", idempotency_key))
            .await
    }

    /// The subscription as Stripe holds it now.
    pub async fn subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        self.send(self.http.get(self.url(&format!("v1/subscriptions/{id}"))?)).await
    }

    /// The customer's subscriptions that are not over (Stripe's default list: not canceled or
    /// expired), newest first; at most 100 (a customer has one, or a few made by hand).
    pub async fn open_subscriptions(&self, customer: &str) -> Result<Vec<Subscription>, StripeError> {
        Ok(self.subscriptions_page(Some(customer), None).await?.data)
    }

    /// One page (100) of the subscriptions that are not over, of one customer or of the account.
    pub async fn subscriptions_page(
        &self,
        customer: Option<&str>,
        starting_after: Option<&str>,
    ) -> Result<List<Subscription>, StripeError> {
        let mut url = self.url("v1/subscriptions")?;
        url.query_pairs_mut().append_pair("limit", "100");
        if let Some(customer) = customer {
            url.query_pairs_mut().append_pair("customer", customer);
        }
        if let Some(after) = starting_after {
            url.query_pairs_mut().append_pair("starting_after", after);
        }
        self.send(self.http.get(url)).await
    }

    pub async fn invoice(&self, id: &str) -> Result<Invoice, StripeError> {
        self.send(self.http.get(self.url(&format!("v1/invoices/{id}"))?)).await
    }

    /// Moves the subscription's one item to `price` now, only once paid: the difference for
    /// the rest of the period (the unused time of the old price credited) is invoiced and charged
    /// at once, and the change applies only if that payment succeeds (else the subscription is
    /// unchanged and carries a `pending_update`).
    pub async fn upgrade_price(
        &self,
        subscription: &str,
        item: &str,
        price: &str,
        idempotency_key: &str,
    ) -> Result<Subscription, StripeError> {
        let form = [
            ("items[0][id]", item),
            ("items[0][price]", price),
            ("proration_behavior", "always_invoice"),
            ("payment_behavior", "pending_if_incomplete"),
        ];
        let request = self.http.post(self.url(&format!("v1/subscriptions/{subscription}"))?).form(&form);
        self.send(request.header("idempotency-key", idempotency_key)).await
    }

    /// Bills `quantity` of the subscription's licensed item from now, prorated: the difference
    /// for the rest of the period goes on the next invoice (TEAM's seats, as members come and go).
    pub async fn set_quantity(
        &self,
        subscription: &str,
        item: &str,
        quantity: u32,
    ) -> Result<Subscription, StripeError> {
        let quantity = quantity.to_string();
        let form = [
            ("items[0][id]", item),
            ("items[0][quantity]", quantity.as_str()),
            ("proration_behavior", "create_prorations"),
        ];
        // Idempotent by nature (an absolute quantity), so no key: the latest call wins.
        self.send(self.http.post(self.url(&format!("v1/subscriptions/{subscription}"))?).form(&form)).await
    }

    /// Adds a metered price to a subscription (it bills what its meter counts, no quantity).
    pub async fn add_metered_item(
        &self,
        subscription: &str,
        price: &str,
        idempotency_key: &str,
    ) -> Result<SubscriptionItem, StripeError> {
        let form = [("subscription", subscription), ("price", price)];
        let request = self.http.post(self.url("v1/subscription_items")?).form(&form);
        self.send(request.header("idempotency-key", idempotency_key)).await
    }

    /// Plans a move to `price` at `at` (the period's end): a schedule with the current price until
    /// then and the new one after, released to an ordinary subscription once it starts. A phase
    /// lists every item the subscription has then: `metered` is the metered price it keeps or
    /// gains (the current phase keeps the one it has).
    pub async fn schedule_price(
        &self,
        subscription: &Subscription,
        at: i64,
        price: &str,
        metered: Option<&str>,
    ) -> Result<SubscriptionSchedule, StripeError> {
        let current = subscription.price_id().unwrap_or_default();
        let metered_now = subscription.metered_item().and_then(SubscriptionItem::price_id);
        let (start, _) = subscription.current_period();
        let schedule: SubscriptionSchedule = match &subscription.schedule {
            Some(id) => self.send(self.http.get(self.url(&format!("v1/subscription_schedules/{id}"))?)).await?,
            None => {
                let form = [("from_subscription", subscription.id.as_str())];
                self.send(self.http.post(self.url("v1/subscription_schedules")?).form(&form)).await?
            }
        };
        let (start, at) = (start.unwrap_or(at).to_string(), at.to_string());
        let mut form = vec![
            ("end_behavior", "release"),
            ("phases[0][items][0][price]", current),
            ("phases[0][start_date]", start.as_str()),
            ("phases[0][end_date]", at.as_str()),
            ("phases[1][items][0][price]", price),
            ("phases[1][start_date]", at.as_str()),
            // A phase must end; once it has started the schedule is released anyway.
            ("phases[1][duration][interval]", "month"),
            ("phases[1][duration][interval_count]", "1"),
            ("proration_behavior", "none"),
        ];
        if let Some(metered) = metered_now {
            form.push(("phases[0][items][1][price]", metered));
        }
        if let Some(metered) = metered {
            form.push(("phases[1][items][1][price]", metered));
        }
        let url = self.url(&format!("v1/subscription_schedules/{}", schedule.id))?;
        self.send(self.http.post(url).form(&form)).await
    }

    /// Drops a planned change: the subscription stays as it is now.
    pub async fn release_schedule(&self, id: &str) -> Result<SubscriptionSchedule, StripeError> {
        self.send(self.http.post(self.url(&format!("v1/subscription_schedules/{id}/release"))?)).await
    }

    /// Ends a subscription now (no proration refund).
    pub async fn cancel_subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        self.send(self.http.delete(self.url(&format!("v1/subscriptions/{id}"))?)).await
    }

    /// Ends a subscription now unless it is over already; the subscription as it is then.
    pub async fn cancel_if_live(&self, id: &str) -> Result<Subscription, StripeError> {
        match self.cancel_subscription(id).await {
            Err(StripeError::Refused(_)) => self.subscription(id).await,
            other => other,
        }
    }

    /// One page of the customer's invoices, newest first, after the invoice `starting_after`.
    pub async fn invoices(
        &self,
        customer: &str,
        limit: u32,
        starting_after: Option<&str>,
    ) -> Result<List<Invoice>, StripeError> {
        let mut url = self.url("v1/invoices")?;
        url.query_pairs_mut().append_pair("customer", customer).append_pair("limit", &limit.to_string());
        if let Some(after) = starting_after {
            url.query_pairs_mut().append_pair("starting_after", after);
        }
        self.send(self.http.get(url)).await
    }

    /// A subscription-mode Checkout Session for one price.
    pub async fn create_checkout_session(&self, checkout: &NewCheckout<'_>) -> Result<CheckoutSession, StripeError> {
        let (purchase, expires_at) = (checkout.purchase, checkout.expires_at.to_string());
        let quantity = purchase.quantity.to_string();
        let (owner_key, owner) = purchase.owner;
        let (metadata, subscription_metadata) =
            (format!("metadata[{owner_key}]"), format!("subscription_data[metadata][{owner_key}]"));
        let mut form = vec![
            ("mode", "subscription"),
            ("expires_at", expires_at.as_str()),
            ("customer", checkout.customer),
            ("line_items[0][price]", purchase.price),
            ("line_items[0][quantity]", quantity.as_str()),
            ("client_reference_id", owner),
            (metadata.as_str(), owner),
            ("metadata[tier]", purchase.tier),
            (subscription_metadata.as_str(), owner),
            ("success_url", purchase.success_url),
            ("cancel_url", purchase.cancel_url),
        ];
        if let Some(metered) = purchase.metered_price {
            form.push(("line_items[1][price]", metered));
        }
        let request = self.http.post(self.url("v1/checkout/sessions")?).form(&form);
        self.send(request.header("idempotency-key", checkout.idempotency_key)).await
    }

    /// The customer's Checkout Sessions that can still be paid (at most 100).
    pub async fn open_checkout_sessions(&self, customer: &str) -> Result<Vec<CheckoutSession>, StripeError> {
        let mut url = self.url("v1/checkout/sessions")?;
        url.query_pairs_mut()
            .append_pair("customer", customer)
            .append_pair("status", "open")
            .append_pair("limit", "100");
        Ok(self.send::<List<CheckoutSession>>(self.http.get(url)).await?.data)
    }

    /// Ends a Checkout Session so that it can no longer be paid. One that was completed or
    /// expired meanwhile is refused, and that is the same outcome: it takes no payment now.
    pub async fn expire_checkout_session(&self, id: &str) -> Result<(), StripeError> {
        let url = self.url(&format!("v1/checkout/sessions/{id}/expire"))?;
        match self.send::<CheckoutSession>(self.http.post(url)).await {
            Ok(_) | Err(StripeError::Refused(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Every invoice of a subscription (at most 100: one a month).
    pub async fn subscription_invoices(&self, subscription: &str) -> Result<Vec<Invoice>, StripeError> {
        let mut url = self.url("v1/invoices")?;
        url.query_pairs_mut().append_pair("subscription", subscription).append_pair("limit", "100");
        Ok(self.send::<List<Invoice>>(self.http.get(url)).await?.data)
    }

    /// The PaymentIntents that paid an invoice: its payments (current API versions), or its
    /// `payment_intent` (older ones).
    pub async fn invoice_payment_intents(&self, invoice: &Invoice) -> Result<Vec<String>, StripeError> {
        if let Some(intent) = &invoice.payment_intent {
            return Ok(vec![intent.clone()]);
        }
        let mut url = self.url("v1/invoice_payments")?;
        url.query_pairs_mut().append_pair("invoice", &invoice.id).append_pair("status", "paid");
        let payments: List<InvoicePayment> = self.send(self.http.get(url)).await?;
        Ok(payments.data.into_iter().filter_map(|p| p.payment.payment_intent).collect())
    }

    /// Refunds a PaymentIntent in full. The idempotency key makes a repeat the same refund.
    pub async fn refund(
        &self,
        payment_intent: &str,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<Refund, StripeError> {
        let form = [("payment_intent", payment_intent), ("metadata[reason]", reason)];
        let request = self.http.post(self.url("v1/refunds")?).form(&form);
        self.send(request.header("idempotency-key", idempotency_key)).await
    }

    /// Deletes a customer: Stripe cancels its subscriptions and nothing new can start on it; its
    /// invoices stay in Stripe's records. One already deleted is the same outcome.
    pub async fn delete_customer(&self, id: &str) -> Result<(), StripeError> {
        match self.send::<serde_json::Value>(self.http.delete(self.url(&format!("v1/customers/{id}"))?)).await {
            Ok(_) | Err(StripeError::Refused(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    pub async fn create_portal_session(&self, customer: &str, return_url: &str) -> Result<PortalSession, StripeError> {
        let form = [("customer", customer), ("return_url", return_url)];
        self.send(self.http.post(self.url("v1/billing_portal/sessions")?).form(&form)).await
    }

    /// Reports `value` of the meter `event_name` for `customer` at `timestamp` (unix seconds,
    /// within Stripe's window: the past 35 days to 5 minutes ahead). Stripe counts one
    /// `identifier` once; it is the idempotency key too, so a retried request is the same request.
    pub async fn meter_event(
        &self,
        event_name: &str,
        customer: &str,
        identifier: &str,
        timestamp: i64,
        value: u32,
    ) -> Result<(), StripeError> {
        let (timestamp, value) = (timestamp.to_string(), value.to_string());
        let form = [
            ("event_name", event_name),
            ("identifier", identifier),
            ("timestamp", timestamp.as_str()),
            ("payload[stripe_customer_id]", customer),
            ("payload[value]", value.as_str()),
        ];
        let request = self.http.post(self.url("v1/billing/meter_events")?).form(&form);
        self.send::<serde_json::Value>(request.header("idempotency-key", identifier)).await.map(drop)
    }

    /// The id of the active meter counting `event_name` (None: no such meter).
    pub async fn meter_id(&self, event_name: &str) -> Result<Option<String>, StripeError> {
        #[derive(Deserialize)]
        struct Meter {
            id: String,
            event_name: String,
        }
        let mut url = self.url("v1/billing/meters")?;
        url.query_pairs_mut().append_pair("status", "active").append_pair("limit", "100");
        let meters: List<Meter> = self.send(self.http.get(url)).await?;
        Ok(meters.data.into_iter().find(|m| m.event_name == event_name).map(|m| m.id))
    }

    /// What `meter` aggregated for `customer` from `start` to `end` (unix seconds, whole minutes).
    pub async fn meter_usage(&self, meter: &str, customer: &str, start: i64, end: i64) -> Result<f64, StripeError> {
        #[derive(Deserialize)]
        struct Summary {
            aggregated_value: f64,
        }
        let mut url = self.url(&format!("v1/billing/meters/{meter}/event_summaries"))?;
        url.query_pairs_mut()
            .append_pair("customer", customer)
            .append_pair("start_time", &start.to_string())
            .append_pair("end_time", &end.to_string());
        let summaries: List<Summary> = self.send(self.http.get(url)).await?;
        Ok(summaries.data.iter().map(|s| s.aggregated_value).sum())
    }

    /// Sets the customer's email (where Stripe sends its invoices and receipts).
    pub async fn set_customer_email(&self, id: &str, email: &str) -> Result<Customer, StripeError> {
        self.send(self.http.post(self.url(&format!("v1/customers/{id}"))?).form(&[("email", email)])).await
    }

    pub async fn customer(&self, id: &str) -> Result<Customer, StripeError> {
        self.send(self.http.get(self.url(&format!("v1/customers/{id}"))?)).await
    }

    fn url(&self, path: &str) -> Result<Url, StripeError> {
        self.base.join(path).map_err(|e| StripeError::Unavailable(e.into()))
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, StripeError> {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: ErrorDetail,
        }
        #[derive(Deserialize)]
        struct ErrorDetail {
            message: Option<String>,
        }

        let request = request
            .bearer_auth(self.key.expose())
            .header("stripe-version", API_VERSION)
            .timeout(outbound::timeout(outbound::EXCHANGE_TIMEOUT));
        let response = outbound::observed("stripe", request)
            .await
            .map_err(|e| StripeError::Unavailable(anyhow::Error::new(e).context("calling Stripe")))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| StripeError::Unavailable(anyhow::Error::new(e).context("Stripe's answer")));
        }
        // 4xx other than rate limiting is Stripe's considered refusal; the rest is transient.
        if status.is_client_error() && status.as_u16() != 429 {
            let message = response.json::<ErrorBody>().await.ok().and_then(|b| b.error.message);
            return Err(StripeError::Refused(message.unwrap_or_else(|| status.to_string())));
        }
        Err(StripeError::Unavailable(anyhow!("Stripe answered {status}")))
    }
}
