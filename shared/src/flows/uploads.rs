//! The upload and favourite allowances as the API answers them.

use url::Url;

use crate::{
    domain::{usage::UsagePeriod, user::User},
    error::ApiError,
    store::users::{AllowanceError, UploadReservation, Users},
};

/// A refused allowance is LIMIT_REACHED (with where to upgrade); a storage failure is internal.
pub fn refused(error: AllowanceError, upgrade_url: &Url) -> ApiError {
    match error {
        AllowanceError::Store(source) => ApiError::Internal(source),
        limit => ApiError::LimitReached { message: limit.to_string(), upgrade_url: upgrade_url.to_string() },
    }
}

/// Reserves one upload this month (and `bytes` of storage) for `user`.
pub async fn reserve_upload(
    users: &Users,
    user: &User,
    bytes: u64,
    now: time::OffsetDateTime,
    upgrade_url: &Url,
) -> Result<UploadReservation, ApiError> {
    users
        .reserve_upload(&user.id, user.tier, UsagePeriod::containing(now), bytes)
        .await
        .map_err(|e| refused(e, upgrade_url))
}

/// Gives an upload back after a failure that left nothing to upload to.
pub async fn give_back(users: &Users, user: &User, reservation: UploadReservation) {
    if let Err(error) = users.release_upload(&user.id, reservation).await {
        tracing::error!(error = format!("{error:#}"), "could not give the upload back");
    }
}
