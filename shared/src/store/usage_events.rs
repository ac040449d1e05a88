//! Overage generations on their way to Stripe's meter: a durable outbox, and the record of what
//! was sent. One row per generation past the allowance (PK `userId`, SK `eventKey` =
//! `{period}#{recordingId}`), written in ONE transaction with the recording's row: a stored
//! overage generation always has its row, a failed one never does. A row still to send carries
//! `outbox` = "due" and `dueAt` (the sparse `outbox-index`); once Stripe has taken the event a
//! conditional write removes them and sets `sentAt`. The event's identifier comes from the
//! recording (`gen_{recordingId}`), so an event sent twice (a crash between Stripe's answer and
//! our write) is counted once by Stripe.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use aws_sdk_dynamodb::{
    Client,
    types::{Put, TransactWriteItem},
};

use crate::{
    domain::{
        ids::{RecordingId, UserId},
        usage::UsagePeriod,
    },
    store::dynamo::{self, Item, number, string},
};

const INDEX: &str = "outbox-index";
const DUE: &str = "due";

/// One generation past the allowance, as Stripe's meter is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    pub user_id: UserId,
    pub period: UsagePeriod,
    pub recording_id: RecordingId,
    /// The Stripe customer billed.
    pub customer: String,
    /// Unix seconds: when the generation was made.
    pub timestamp: i64,
    /// Generations (always 1 today).
    pub value: u32,
    /// The price of one, in cents, when it was made (the usage history's cost).
    pub unit_cents: u32,
}

/// A month's generations past the allowance and what they cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthOverage {
    pub units: u32,
    pub cents: u64,
}

impl UsageEvent {
    /// Stripe's de-duplication key: the same generation is the same event, however often sent.
    pub fn identifier(&self) -> String {
        format!("gen_{}", self.recording_id)
    }

    fn key(&self) -> String {
        format!("{}#{}", self.period, self.recording_id)
    }

    fn to_item(&self, due_at: i64) -> Item {
        HashMap::from([
            ("userId".to_owned(), string(self.user_id.as_str())),
            ("eventKey".to_owned(), string(self.key())),
            ("customer".to_owned(), string(&self.customer)),
            ("timestamp".to_owned(), number(self.timestamp)),
            ("value".to_owned(), number(self.value)),
            ("unitCents".to_owned(), number(self.unit_cents)),
            ("outbox".to_owned(), string(DUE)),
            ("dueAt".to_owned(), number(due_at)),
        ])
    }

    fn from_item(item: &Item) -> anyhow::Result<Self> {
        let key = dynamo::str(item, "eventKey")?;
        let (period, recording) = key.split_once('#').context("stored eventKey")?;
        Ok(Self {
            user_id: UserId::parse(dynamo::str(item, "userId")?).context("stored userId")?,
            period: period.parse().context("stored eventKey's period")?,
            recording_id: RecordingId::parse(recording).context("stored eventKey's recording")?,
            customer: dynamo::str(item, "customer")?.to_owned(),
            timestamp: dynamo::num(item, "timestamp")?,
            value: dynamo::num(item, "value")?,
            unit_cents: dynamo::num(item, "unitCents")?,
        })
    }
}

/// A usage event as stored, with whether Stripe has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub event: UsageEvent,
    /// Unix seconds; None while it is still to send.
    pub sent_at: Option<i64>,
}

#[derive(Clone)]
pub struct UsageEvents {
    client: Client,
    table: String,
}

impl UsageEvents {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// The transaction item that stores `event`, due to be sent from `due_at` (unix seconds).
    pub fn put(&self, event: &UsageEvent, due_at: i64) -> anyhow::Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(event.to_item(due_at)))
            .condition_expression("attribute_not_exists(eventKey)")
            .build()
            .context("building the usage event's put")?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The events still to send whose time came before `before` (unix seconds).
    pub async fn due(&self, before: i64) -> anyhow::Result<Vec<UsageEvent>> {
        let items = dynamo::due_before(&self.client, &self.table, INDEX, ("outbox", DUE), ("dueAt", before)).await?;
        items.iter().map(UsageEvent::from_item).collect()
    }

    /// Records that Stripe has `event`; false when another sender recorded it first.
    pub async fn sent(&self, event: &UsageEvent, at: i64) -> anyhow::Result<bool> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("userId", string(event.user_id.as_str()))
            .key("eventKey", string(event.key()))
            .update_expression("SET sentAt = :at REMOVE outbox, dueAt")
            .condition_expression("attribute_exists(outbox)")
            .expression_attribute_values(":at", number(at));
        Ok(dynamo::conditional_update(update).await.context("recording a sent usage event")?.is_some())
    }

    /// The user's events of `period`, sent or not.
    pub async fn of_period(&self, user: &UserId, period: UsagePeriod) -> anyhow::Result<Vec<Stored>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("userId = :user AND begins_with(eventKey, :period)")
            .expression_attribute_values(":user", string(user.as_str()))
            .expression_attribute_values(":period", string(format!("{period}#")))
            .consistent_read(true)
            .send()
            .await
            .context("listing usage events")?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| Ok(Stored { event: UsageEvent::from_item(item)?, sent_at: dynamo::opt_num(item, "sentAt")? }))
            .collect()
    }

    /// The user's overage per month from `from` to `to`, both included (months without any are
    /// absent).
    pub async fn by_month(
        &self,
        user: &UserId,
        from: UsagePeriod,
        to: UsagePeriod,
    ) -> anyhow::Result<BTreeMap<UsagePeriod, MonthOverage>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            // `#` sorts before every digit, `~` after: the whole of both months.
            .key_condition_expression("userId = :user AND eventKey BETWEEN :from AND :to")
            .expression_attribute_values(":user", string(user.as_str()))
            .expression_attribute_values(":from", string(format!("{from}#")))
            .expression_attribute_values(":to", string(format!("{to}#~")))
            .projection_expression("eventKey, #value, unitCents")
            .expression_attribute_names("#value", "value");
        let mut months = BTreeMap::new();
        for item in dynamo::all_pages(query, "usage events").await? {
            let key = dynamo::str(&item, "eventKey")?;
            let period: UsagePeriod = key.split('#').next().unwrap_or_default().parse().context("stored eventKey")?;
            let value: u32 = dynamo::num(&item, "value")?;
            let unit: u32 = dynamo::num(&item, "unitCents")?;
            let month: &mut MonthOverage = months.entry(period).or_default();
            month.units += value;
            month.cents += u64::from(value) * u64::from(unit);
        }
        Ok(months)
    }

    /// Every user's events of `period` (a scan: nightly, of the overage users' rows only).
    pub async fn of_month(&self, period: UsagePeriod) -> anyhow::Result<Vec<Stored>> {
        let mut stored = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(eventKey, :period)")
                .expression_attribute_values(":period", string(format!("{period}#")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("scanning usage events")?;
            for item in page.items.unwrap_or_default() {
                stored
                    .push(Stored { event: UsageEvent::from_item(&item)?, sent_at: dynamo::opt_num(&item, "sentAt")? });
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(stored);
            }
        }
    }

    /// Deletes every event of the user (erasure).
    pub async fn delete_all(&self, user: &UserId) -> anyhow::Result<usize> {
        dynamo::delete_partition(&self.client, &self.table, ("userId", user.as_str()), "eventKey").await
    }
}
