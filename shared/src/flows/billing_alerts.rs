//! Telling a user their payment failed: `billingAlert` on their session and profile until the
//! invoice is paid (or the subscription is healthy again), and exactly one email per failed
//! invoice.
//!
//! Stripe sends `invoice.payment_failed` once per failed attempt (each a new event id) and may
//! deliver each several times, so the email is deduplicated by INVOICE: its send is claimed in
//! the webhook-events table as `notice:payment_failed:{invoice}`, with the same lease as events
//! (a send that crashed is retried by the next delivery; a sent one is never repeated).

use anyhow::Context;
use time::OffsetDateTime;

use crate::{
    clock::{timestamp, unix_ms},
    config::BillingSettings,
    domain::{push, user::BillingAlert},
    flows::push::Push,
    store::{
        users::Users,
        webhook_events::{Claim, WebhookEvents},
    },
    upstream::{
        email::{Mailer, PaymentFailed},
        stripe::{Stripe, StripeError, types::Event},
    },
};

pub struct BillingAlerts<'a> {
    pub stripe: &'a Stripe,
    pub users: &'a Users,
    pub events: &'a WebhookEvents,
    pub mailer: Option<&'a Mailer>,
    pub settings: &'a BillingSettings,
    /// Where the email sends the user to update their card.
    pub account_url: &'a url::Url,
    /// Live updates: the person's open pages show (or drop) the banner at once.
    pub push: Option<Push<'a>>,
}

/// What an invoice event did to the user's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOutcome {
    /// Set, and the email sent now (true) or earlier (false).
    Raised {
        emailed: bool,
    },
    Cleared,
    /// Not about a user of ours, or the invoice no longer needs attention.
    Nothing,
}

impl BillingAlerts<'_> {
    pub async fn apply_event(&self, event: &Event, now: OffsetDateTime) -> anyhow::Result<AlertOutcome> {
        let failed = match event.kind.as_str() {
            "invoice.payment_failed" => true,
            "invoice.paid" | "invoice.payment_succeeded" => false,
            _ => return Ok(AlertOutcome::Nothing),
        };
        let Some(invoice_id) = event.data.object.get("id").and_then(|v| v.as_str()) else {
            return Ok(AlertOutcome::Nothing);
        };
        // The invoice as Stripe holds it now: events arrive late and out of order.
        let invoice = match self.stripe.invoice(invoice_id).await {
            Ok(invoice) => invoice,
            Err(StripeError::Refused(message)) => {
                tracing::warn!(invoice_id, message, "Stripe refused the invoice");
                return Ok(AlertOutcome::Nothing);
            }
            Err(error) => return Err(error).context("fetching the invoice"),
        };
        let Some(customer) = invoice.customer.as_deref() else { return Ok(AlertOutcome::Nothing) };
        let Some(user_id) = self.users.by_stripe_customer(customer).await? else {
            return Ok(AlertOutcome::Nothing);
        };
        let settled = matches!(invoice.status.as_deref(), Some("paid" | "void" | "uncollectible"));
        if !failed || settled {
            let cleared = self.users.clear_billing_alert(&user_id, &invoice.id).await?;
            if cleared && let Some(push) = &self.push {
                push.notify(&user_id, &push::Event::BillingAlert { raised: false }, now.unix_timestamp()).await;
            }
            return Ok(if cleared { AlertOutcome::Cleared } else { AlertOutcome::Nothing });
        }

        let since = OffsetDateTime::from_unix_timestamp(event.created).unwrap_or(now);
        self.users.set_billing_alert(&user_id, &BillingAlert::payment_failed(&invoice.id, timestamp(since))).await?;
        if let Some(push) = &self.push {
            push.notify(&user_id, &push::Event::BillingAlert { raised: true }, now.unix_timestamp()).await;
        }

        let user = self.users.get(&user_id).await?.with_context(|| format!("user {user_id} vanished"))?;
        let data = PaymentFailed {
            invoice: invoice.number.as_deref().unwrap_or(&invoice.id),
            amount: amount(invoice.amount_due, &invoice.currency),
            account_url: self.account_url.as_str(),
        };
        let notices = Notices { mailer: self.mailer, events: self.events, lease: self.settings.webhook_lease };
        let notice = format!("notice:payment_failed:{}", invoice.id);
        let emailed = notices
            .once(&notice, now, async |mailer: &Mailer| mailer.payment_failed(user.email.as_str(), &data).await)
            .await?;
        Ok(AlertOutcome::Raised { emailed })
    }
}

/// "9.99 USD" for 999 cents of `usd`.
pub fn amount(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {}", cents / 100, cents % 100, currency.to_uppercase())
}

/// Emails sent at most once each: the send is claimed in the webhook-events table under the
/// notice's id, with the same lease as events (a send that crashed is retried by the next
/// delivery or run; a sent one is never repeated).
#[derive(Clone, Copy)]
pub struct Notices<'a> {
    pub mailer: Option<&'a Mailer>,
    pub events: &'a WebhookEvents,
    pub lease: std::time::Duration,
}

impl Notices<'_> {
    /// Sends the notice `id` unless it was sent already; whether it was sent now.
    pub async fn once(
        &self,
        id: &str,
        now: OffsetDateTime,
        send: impl AsyncFnOnce(&Mailer) -> anyhow::Result<String>,
    ) -> anyhow::Result<bool> {
        let Some(mailer) = self.mailer else {
            tracing::warn!(notice = id, "no billing email sender is configured: the email is not sent");
            return Ok(false);
        };
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let lease = match self.events.claim(id, "email", unix_ms(now), lease_ms).await? {
            Claim::Leased { until_ms } => until_ms,
            Claim::Done => return Ok(false),
            Claim::InProgress => anyhow::bail!("the email {id} is being sent"),
        };
        match send(mailer).await {
            Ok(message_id) => {
                tracing::info!(notice = id, message_id, "email sent");
                self.events.complete(id, "sent", unix_ms(now)).await?;
                Ok(true)
            }
            Err(error) => {
                if let Err(release) = self.events.release(id, lease).await {
                    tracing::error!(error = format!("{release:#}"), "could not release the email claim");
                }
                Err(error)
            }
        }
    }
}
