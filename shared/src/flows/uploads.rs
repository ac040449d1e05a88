//! An upload's allowance: one of the month's uploads and, for a recording, its bytes of storage.

use time::OffsetDateTime;

use crate::{
    domain::{allowance::Allowance, usage::UsagePeriod, user::User},
    error::ApiError,
    store::users::{Reservation, Units, Users},
};

/// Reserves one upload this month and `bytes` of storage (none for a voice sample, whose bytes
/// the clone slots bound) for `user`: LIMIT_REACHED naming the allowance that has no room.
pub async fn reserve<'u>(
    users: &'u Users,
    user: &User,
    bytes: u64,
    now: OffsetDateTime,
) -> Result<Reservation<'u>, ApiError> {
    let mut units = vec![Units::one(Allowance::Uploads)];
    if bytes > 0 {
        units.insert(0, Units::of(Allowance::StorageBytes, bytes));
    }
    Ok(users.reserve(&user.id, user.tier, 0, &units, UsagePeriod::containing(now)).await?)
}
