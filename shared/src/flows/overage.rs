//! Sending overage generations to Stripe's meter. A generation past the allowance is stored with
//! its usage event in one transaction (`store::usage_events`); it is then sent at once, and what
//! could not be sent (Stripe away, the instance gone between the two) is sent by the sweep once
//! it is [`SWEEP_AFTER`] old. Stripe counts one identifier once, so an event sent by both is
//! billed once; a generation whose unit was given back has no event and reaches no meter.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    domain::usage::UsagePeriod,
    store::usage_events::{UsageEvent, UsageEvents},
    upstream::stripe::Stripe,
};

/// Stripe keeps an event's identifier for at least a day: a missing event younger than this is
/// sent again (one Stripe has is not counted twice); an older one is left to a person.
const RESEND_WITHIN: i64 = 24 * 3600;

/// What one nightly comparison with Stripe's meter found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReconcileReport {
    /// Customer-months compared.
    pub compared: usize,
    /// Of those, where Stripe's meter held less than we sent.
    pub short: usize,
    /// Events sent again.
    pub resent: usize,
    /// Events of a short month too old to send again safely.
    pub unrepaired: usize,
}

/// How old an unsent event must be before the sweep sends it (the generation's own send first).
pub const SWEEP_AFTER: i64 = 60;

#[derive(Clone, Copy)]
pub struct Metering<'a> {
    pub stripe: &'a Stripe,
    pub events: &'a UsageEvents,
    /// The meter's event name.
    pub event_name: &'a str,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub sent: usize,
    pub failed: usize,
}

impl Metering<'_> {
    /// Sends the event and records it sent.
    pub async fn send(&self, event: &UsageEvent, now: OffsetDateTime) -> anyhow::Result<()> {
        let identifier = event.identifier();
        self.stripe.meter_event(self.event_name, &event.customer, &identifier, event.timestamp, event.value).await?;
        self.events.sent(event, now.unix_timestamp()).await?;
        Ok(())
    }

    /// [`Metering::send`] for a generation just stored: a failure is left to the sweep.
    pub async fn send_now(&self, event: &UsageEvent, now: OffsetDateTime) {
        if let Err(error) = self.send(event, now).await {
            let recording_id = &event.recording_id;
            tracing::warn!(error = format!("{error:#}"), %recording_id, "a usage event waits for the sweep");
        }
    }

    /// Nightly: each customer's sent events of this month and the last against what Stripe's
    /// meter aggregated for them over the same minutes. Where Stripe holds less, the customer's
    /// events of the last day are sent again under their own identifiers, and older ones are
    /// logged for a person to repair.
    pub async fn reconcile(&self, now: OffsetDateTime) -> anyhow::Result<UsageReconcileReport> {
        let meter = self.stripe.meter_id(self.event_name).await?;
        let meter = meter.with_context(|| format!("no active Stripe meter counts {}", self.event_name))?;
        let mut report = UsageReconcileReport::default();
        // Summaries cover whole minutes: up to the start of the next one.
        let until = (now.unix_timestamp().div_euclid(60) + 1) * 60;
        let current = UsagePeriod::containing(now);
        for period in [current.previous(), current] {
            let (start, end) = (period.starts_at().unix_timestamp(), period.next().starts_at().unix_timestamp());
            let end = end.min(until);
            let mut by_customer: BTreeMap<String, Vec<UsageEvent>> = BTreeMap::new();
            for stored in self.events.of_month(period).await? {
                if stored.sent_at.is_some() && (start..end).contains(&stored.event.timestamp) {
                    by_customer.entry(stored.event.customer.clone()).or_default().push(stored.event);
                }
            }
            for (customer, events) in by_customer {
                report.compared += 1;
                let ours: f64 = events.iter().map(|e| f64::from(e.value)).sum();
                let theirs = self.stripe.meter_usage(&meter, &customer, start, end).await?;
                if theirs >= ours {
                    continue;
                }
                report.short += 1;
                let (recent, older): (Vec<_>, Vec<_>) =
                    events.iter().partition(|e| now.unix_timestamp() - e.timestamp <= RESEND_WITHIN);
                for event in &recent {
                    let identifier = event.identifier();
                    let (name, value) = (self.event_name, event.value);
                    self.stripe.meter_event(name, &customer, &identifier, event.timestamp, value).await?;
                }
                report.resent += recent.len();
                report.unrepaired += older.len();
                let (resent, older) = (recent.len(), older.len());
                tracing::warn!(customer, %period, ours, theirs, resent, older, "Stripe's meter held less than we sent");
                if older > 0 {
                    tracing::error!(customer, %period, older, "usage events too old to send again: repair by hand");
                }
            }
        }
        tracing::info!(?report, "usage reconciliation");
        Ok(report)
    }

    /// The sweep's part: `due` (the unsent events [`SWEEP_AFTER`] old, [`UsageEvents::due`]) sent,
    /// each on its own (one that fails stays for the next run).
    pub async fn send_all(&self, due: Vec<UsageEvent>, now: OffsetDateTime) -> SweepReport {
        let mut report = SweepReport::default();
        for event in due {
            match self.send(&event, now).await {
                Ok(()) => report.sent += 1,
                Err(error) => {
                    report.failed += 1;
                    let recording_id = &event.recording_id;
                    tracing::warn!(error = format!("{error:#}"), %recording_id, "a usage event could not be sent");
                }
            }
        }
        if report.failed > 0 {
            tracing::error!(
                sent = report.sent,
                failed = report.failed,
                "usage events left unsent until the next sweep"
            );
        }
        report
    }
}
