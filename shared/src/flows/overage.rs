//! Sending overage generations to Stripe's meter. A generation past the allowance is stored with
//! its usage event in one transaction (`store::usage_events`); it is then sent at once, and what
//! could not be sent (Stripe away, the instance gone between the two) is sent by the sweep once
//! it is [`SWEEP_AFTER`] old. Stripe counts one identifier once, so an event sent by both is
//! billed once; a generation whose unit was given back has no event and reaches no meter.

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    store::usage_events::{UsageEvent, UsageEvents},
    upstream::stripe::Stripe,
};

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
