//! Upload and favourite allowances, kept on the user row beside the generation quota:
//! `uploadsThisMonth` (scoped by `uploadPeriod`), `storageBytes` (bytes of uploaded recordings
//! reserved or kept) and `favourites`.
//!
//! An upload is reserved with ONE conditional update when its URL is issued ("same month, below
//! the count, and room for its bytes"), like the generation quota: only when that fails is the
//! row (as it was, from the failed write) looked at, to start a new month or to say which limit
//! was reached.

use anyhow::Context;
use aws_sdk_dynamodb::{
    error::SdkError,
    operation::update_item::{UpdateItemError, builders::UpdateItemFluentBuilder},
    types::ReturnValuesOnConditionCheckFailure,
};

use super::{Users, attr};
use crate::{
    domain::{ids::UserId, tiers::Tier, usage::UsagePeriod},
    store::dynamo::{self, Item, n, s},
};

/// What a refused upload or favourite ran into.
#[derive(Debug, thiserror::Error)]
pub enum AllowanceError {
    #[error("you have requested all {limit} uploads of your plan this month")]
    Uploads { limit: u32 },
    #[error("your uploads would exceed the {limit_bytes} bytes of storage of your plan")]
    Storage { limit_bytes: u64 },
    #[error("you already keep {limit} favourites, the most your plan allows")]
    Favourites { limit: u32 },
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// An upload's reservation: given back if its URL is never used or the upload is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadReservation {
    pub period: UsagePeriod,
    pub bytes: u64,
}

enum Outcome {
    Done,
    Refused(Option<Item>),
}

async fn conditional(update: UpdateItemFluentBuilder, what: &'static str) -> anyhow::Result<Outcome> {
    let result =
        update.return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld).send().await;
    match result {
        Ok(_) => Ok(Outcome::Done),
        Err(SdkError::ServiceError(e)) => match e.into_err() {
            UpdateItemError::ConditionalCheckFailedException(failed) => Ok(Outcome::Refused(failed.item)),
            other => Err(anyhow::Error::new(other).context(what)),
        },
        Err(error) => Err(anyhow::Error::new(error).context(what)),
    }
}

impl Users {
    /// Reserves one upload of `bytes` in `period` under the tier's monthly count and storage.
    /// `bytes: 0` reserves only the count (voice samples, whose bytes the clone slots bound).
    pub async fn reserve_upload(
        &self,
        user: &UserId,
        tier: Tier,
        period: UsagePeriod,
        bytes: u64,
    ) -> Result<UploadReservation, AllowanceError> {
        self.changing(user, async {
            let rules = tier.rules();
            let Some(room) = rules.storage_bytes.checked_sub(bytes) else {
                return Err(AllowanceError::Storage { limit_bytes: rules.storage_bytes });
            };
            let storage_fits = "(attribute_not_exists(storageBytes) OR storageBytes <= :room)";
            // Bounded: each retry follows another request's successful write.
            for _ in 0..5 {
                let same_month = self
                    .update(user)
                    .update_expression(
                        "SET uploadsThisMonth = uploadsThisMonth + :one, \
                         storageBytes = if_not_exists(storageBytes, :zero) + :bytes",
                    )
                    .condition_expression(format!(
                        "uploadPeriod = :period AND uploadsThisMonth < :max AND {storage_fits}"
                    ))
                    .expression_attribute_values(":max", n(rules.uploads_per_month));
                let row = match conditional(self.upload_values(same_month, period, bytes, room), "reserving an upload")
                    .await?
                {
                    Outcome::Done => return Ok(UploadReservation { period, bytes }),
                    Outcome::Refused(row) => row,
                };
                let stored =
                    row.as_ref().and_then(|r| dynamo::opt_str(r, attr::UPLOAD_PERIOD)).map(str::parse).transpose();
                let stored: Option<UsagePeriod> = stored.context("stored upload period")?;
                let used_bytes: u64 =
                    row.as_ref().map(|r| dynamo::opt_num(r, attr::STORAGE)).transpose()?.flatten().unwrap_or(0);
                if used_bytes > room {
                    return Err(AllowanceError::Storage { limit_bytes: rules.storage_bytes });
                }
                if stored.is_some_and(|stored| stored >= period) {
                    return Err(AllowanceError::Uploads { limit: rules.uploads_per_month });
                }
                let new_month = self
                    .update(user)
                    .update_expression(
                        "SET uploadPeriod = :period, uploadsThisMonth = :one, \
                         storageBytes = if_not_exists(storageBytes, :zero) + :bytes",
                    )
                    .condition_expression(format!(
                        "attribute_exists(userId) AND (attribute_not_exists(uploadPeriod) OR uploadPeriod < :period) \
                         AND {storage_fits}"
                    ));
                if let Outcome::Done =
                    conditional(self.upload_values(new_month, period, bytes, room), "starting the upload month").await?
                {
                    return Ok(UploadReservation { period, bytes });
                }
            }
            Err(AllowanceError::Store(anyhow::anyhow!("the upload counters kept changing under us")))
        })
        .await
    }

    /// Gives an unused upload back: its count (if its month is still the current one) and bytes.
    pub async fn release_upload(&self, user: &UserId, reservation: UploadReservation) -> anyhow::Result<()> {
        self.changing(user, async {
            let count = self
                .update(user)
                .update_expression("SET uploadsThisMonth = uploadsThisMonth - :one")
                .condition_expression("uploadPeriod = :period AND uploadsThisMonth > :zero")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":period", s(reservation.period.to_string()));
            dynamo::conditional_update(count).await.context("giving an upload back")?;
            self.release_storage(user, reservation.bytes).await
        })
        .await
    }

    /// Frees the bytes of a removed upload; never below zero.
    pub async fn release_storage(&self, user: &UserId, bytes: u64) -> anyhow::Result<()> {
        self.changing(user, async {
            if bytes == 0 {
                return Ok(());
            }
            let update = self
                .update(user)
                .update_expression("SET storageBytes = storageBytes - :bytes")
                .condition_expression("storageBytes >= :bytes")
                .expression_attribute_values(":bytes", n(bytes));
            if dynamo::conditional_update(update).await.context("freeing storage")?.is_none() {
                // Less is recorded than this upload held (an older row): free what there is.
                let update = self
                    .update(user)
                    .update_expression("SET storageBytes = :zero")
                    .condition_expression("storageBytes < :bytes")
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":bytes", n(bytes));
                dynamo::conditional_update(update).await.context("freeing storage")?;
            }
            Ok(())
        })
        .await
    }

    /// Takes one of the tier's favourite places.
    pub async fn reserve_favourite(&self, user: &UserId, tier: Tier) -> Result<(), AllowanceError> {
        self.changing(user, async {
            let limit = tier.rules().favourites;
            let update = self
                .update(user)
                .update_expression("SET favourites = if_not_exists(favourites, :zero) + :one")
                .condition_expression(
                    "attribute_exists(userId) AND (attribute_not_exists(favourites) OR favourites < :max)",
                )
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":max", n(limit));
            match dynamo::conditional_update(update).await.context("reserving a favourite")? {
                Some(_) => Ok(()),
                None => Err(AllowanceError::Favourites { limit }),
            }
        })
        .await
    }

    /// Gives a favourite place back; never below zero.
    pub async fn release_favourite(&self, user: &UserId) -> anyhow::Result<()> {
        self.changing(user, async {
            let update = self
                .update(user)
                .update_expression("SET favourites = favourites - :one")
                .condition_expression("favourites > :zero")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1));
            dynamo::conditional_update(update).await.context("giving a favourite back")?;
            Ok(())
        })
        .await
    }

    fn upload_values(
        &self,
        update: UpdateItemFluentBuilder,
        period: UsagePeriod,
        bytes: u64,
        room: u64,
    ) -> UpdateItemFluentBuilder {
        update
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":bytes", n(bytes))
            .expression_attribute_values(":room", n(room))
            .expression_attribute_values(":period", s(period.to_string()))
    }
}
