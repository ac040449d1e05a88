//! The monthly recording quota, kept on the user row: `recordingsThisMonth` counts generations in
//! `usagePeriod`. A generation reserves its unit before calling ElevenLabs and gives it back if
//! the call fails.
//!
//! The happy path is ONE conditional update: "same period and below the limit: add one". Only
//! when that fails is the row read (from the failed write itself), and if the stored period is an
//! earlier month, a second conditional update starts the new month at one. Two such updates
//! racing at the boundary: one wins, the other's condition fails and it retries as an increment,
//! so no generation is lost or counted twice.

use anyhow::Context;
use aws_sdk_dynamodb::{
    error::SdkError, operation::update_item::UpdateItemError, types::ReturnValuesOnConditionCheckFailure,
};

use super::{Users, attr};
use crate::{
    domain::{
        ids::UserId,
        tiers::Tier,
        usage::{Refusal, UsagePeriod, why_refused},
    },
    store::dynamo::{self, n, s},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub period: UsagePeriod,
    /// The count including this generation.
    pub used: u32,
    /// Characters this generation counted.
    pub characters: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("the monthly limit of {limit} recordings is reached")]
    LimitReached { limit: u32 },
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

enum Outcome {
    Done(u32),
    /// The condition failed; the row as it was.
    Refused(Option<dynamo::Item>),
}

impl Users {
    /// Reserves one generation (of `characters`) for `user` in `period` under the tier's limit
    /// plus `granted` (an admin's top-up for the month, as read: grants only grow, so an older
    /// read is never too generous). Starting a new month archives the old month's figures in the
    /// same write.
    pub async fn reserve_generation(
        &self,
        user: &UserId,
        tier: Tier,
        granted: u32,
        period: UsagePeriod,
        characters: u64,
    ) -> Result<Reservation, QuotaError> {
        self.changing(user, async {
            let limit = tier.rules().monthly_recordings.map(|limit| limit.saturating_add(granted));
            // Bounded: each retry follows another request's successful write.
            for _ in 0..5 {
                match self.increment(user, period, limit, characters).await? {
                    Outcome::Done(used) => return Ok(Reservation { period, used, characters }),
                    Outcome::Refused(row) => {
                        let stored: Option<UsagePeriod> = row
                            .as_ref()
                            .and_then(|r| dynamo::opt_str(r, attr::PERIOD))
                            .map(str::parse)
                            .transpose()
                            .context("stored usage period")?;
                        if why_refused(stored, period) == Refusal::LimitReached {
                            return Err(QuotaError::LimitReached { limit: limit.unwrap_or(u32::MAX) });
                        }
                        let old = row.as_ref().map(MonthFigures::from_row).transpose()?.flatten();
                        if let Outcome::Done(used) = self.start_period(user, period, characters, old).await? {
                            return Ok(Reservation { period, used, characters });
                        }
                    }
                }
            }
            Err(QuotaError::Store(anyhow::anyhow!("the usage counter kept changing under us")))
        })
        .await
    }

    /// Gives a reserved unit back (the generation failed). A reservation from a month that has
    /// since ended is left alone: the new month's counter is not this generation's.
    pub async fn release_generation(&self, user: &UserId, reservation: Reservation) -> anyhow::Result<()> {
        self.changing(user, async {
            let result = self
                .update(user)
                .update_expression(
                    "SET recordingsThisMonth = recordingsThisMonth - :one, \
                     charactersThisMonth = if_not_exists(charactersThisMonth, :chars) - :chars",
                )
                .condition_expression("usagePeriod = :period AND recordingsThisMonth > :zero")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":chars", n(reservation.characters))
                .expression_attribute_values(":period", s(reservation.period.to_string()))
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
                {
                    Ok(())
                }
                Err(error) => Err(anyhow::Error::new(error).context("giving the quota unit back")),
            }
        })
        .await
    }

    async fn increment(
        &self,
        user: &UserId,
        period: UsagePeriod,
        limit: Option<u32>,
        characters: u64,
    ) -> anyhow::Result<Outcome> {
        let mut update = self
            .update(user)
            .update_expression(
                "SET recordingsThisMonth = recordingsThisMonth + :one, \
                 charactersThisMonth = if_not_exists(charactersThisMonth, :zero) + :chars",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":chars", n(characters))
            .expression_attribute_values(":period", s(period.to_string()));
        update = match limit {
            Some(limit) => update
                .condition_expression("usagePeriod = :period AND recordingsThisMonth < :limit")
                .expression_attribute_values(":limit", n(limit)),
            None => update.condition_expression("usagePeriod = :period"),
        };
        self.conditional(update).await
    }

    /// Starts `period` at one generation, if the stored month is older (or there is none). `old`
    /// (the month being replaced, as read) is archived in the same write, unless that month is
    /// archived already (the reset, or a racing request, got there first).
    async fn start_period(
        &self,
        user: &UserId,
        period: UsagePeriod,
        characters: u64,
        old: Option<MonthFigures>,
    ) -> anyhow::Result<Outcome> {
        let mut update = self
            .update(user)
            .condition_expression(
                "attribute_exists(userId) AND (attribute_not_exists(usagePeriod) OR usagePeriod < :period)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":chars", n(characters))
            .expression_attribute_values(":period", s(period.to_string()));
        let start = "SET usagePeriod = :period, recordingsThisMonth = :one, charactersThisMonth = :chars";
        update = match old.filter(|old| old.period < period) {
            Some(old) => old
                .archive_values(update)
                .update_expression(format!("{start}, #month = if_not_exists(#month, :figures)")),
            None => update.update_expression(start),
        };
        self.conditional(update).await
    }

    async fn conditional(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> anyhow::Result<Outcome> {
        let result = update
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let attributes = output.attributes.context("DynamoDB returned no attributes")?;
                Ok(Outcome::Done(dynamo::num(&attributes, attr::COUNTER)?))
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => Ok(Outcome::Refused(failed.item)),
                other => Err(anyhow::Error::new(other).context("updating the usage counter")),
            },
            Err(error) => Err(anyhow::Error::new(error).context("updating the usage counter")),
        }
    }
}

/// One finished month's figures, as archived on the user row under `usage_{period}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthFigures {
    pub period: UsagePeriod,
    pub recordings: u32,
    pub characters: u64,
}

/// The attribute a month is archived under.
pub fn month_attribute(period: UsagePeriod) -> String {
    format!("{}{period}", attr::MONTH_PREFIX)
}

impl MonthFigures {
    /// The counters of a row as read (None before any generation).
    pub fn from_row(row: &dynamo::Item) -> anyhow::Result<Option<Self>> {
        let Some(period) = dynamo::opt_str(row, attr::PERIOD) else { return Ok(None) };
        Ok(Some(Self {
            period: period.parse().context("stored usage period")?,
            recordings: dynamo::opt_num(row, attr::COUNTER)?.unwrap_or(0),
            characters: dynamo::opt_num(row, attr::CHARACTERS)?.unwrap_or(0),
        }))
    }

    /// Adds `#month`, `:figures` and `:old_period` to an update (for the caller's expression).
    pub fn archive(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.archive_values(update).expression_attribute_values(":old_period", s(self.period.to_string()))
    }

    /// Adds `#month` and `:figures` to an update.
    fn archive_values(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let figures = aws_sdk_dynamodb::types::AttributeValue::M(std::collections::HashMap::from([
            ("recordings".to_owned(), n(self.recordings)),
            ("characters".to_owned(), n(self.characters)),
        ]));
        update
            .expression_attribute_names("#month", month_attribute(self.period))
            .expression_attribute_values(":figures", figures)
    }
}
