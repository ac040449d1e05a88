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
    /// Reserves one generation for `user` in `period` under the tier's limit.
    pub async fn reserve_generation(
        &self,
        user: &UserId,
        tier: Tier,
        period: UsagePeriod,
    ) -> Result<Reservation, QuotaError> {
        let limit = tier.rules().monthly_recordings;
        // Bounded: each retry follows another request's successful write.
        for _ in 0..5 {
            match self.increment(user, period, limit).await? {
                Outcome::Done(used) => return Ok(Reservation { period, used }),
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
                    if let Outcome::Done(used) = self.start_period(user, period).await? {
                        return Ok(Reservation { period, used });
                    }
                }
            }
        }
        Err(QuotaError::Store(anyhow::anyhow!("the usage counter kept changing under us")))
    }

    /// Gives a reserved unit back (the generation failed). A reservation from a month that has
    /// since ended is left alone: the new month's counter is not this generation's.
    pub async fn release_generation(&self, user: &UserId, reservation: Reservation) -> anyhow::Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::USER_ID, s(user.as_str()))
            .update_expression("SET recordingsThisMonth = recordingsThisMonth - :one")
            .condition_expression("usagePeriod = :period AND recordingsThisMonth > :zero")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
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
    }

    async fn increment(&self, user: &UserId, period: UsagePeriod, limit: Option<u32>) -> anyhow::Result<Outcome> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::USER_ID, s(user.as_str()))
            .update_expression("SET recordingsThisMonth = recordingsThisMonth + :one")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":period", s(period.to_string()));
        update = match limit {
            Some(limit) => update
                .condition_expression("usagePeriod = :period AND recordingsThisMonth < :limit")
                .expression_attribute_values(":limit", n(limit)),
            None => update.condition_expression("usagePeriod = :period"),
        };
        self.conditional(update).await
    }

    async fn start_period(&self, user: &UserId, period: UsagePeriod) -> anyhow::Result<Outcome> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::USER_ID, s(user.as_str()))
            .update_expression("SET usagePeriod = :period, recordingsThisMonth = :one")
            .condition_expression(
                "attribute_exists(userId) AND (attribute_not_exists(usagePeriod) OR usagePeriod < :period)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":period", s(period.to_string()));
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
