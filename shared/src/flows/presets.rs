//! Saving, renaming and deleting PREMIUM's custom presets, kept on the user row as one list and replaced
//! with optimistic concurrency.

use crate::{
    domain::{
        presets::{self, CustomPreset, NewPreset},
        user::User,
    },
    error::ApiError,
    store::users::Users,
};

/// Saves a custom preset (PREMIUM).
pub async fn save(users: &Users, user: &User, new: NewPreset) -> Result<CustomPreset, ApiError> {
    presets::require_custom_presets(user.tier)?;
    let preset = new.validate()?;
    change(users, user, |list| presets::add(list, &preset)).await?;
    Ok(preset)
}

/// Renames a custom preset, keeping its id and values; NOT_FOUND if the caller has none with that
/// id.
pub async fn rename(users: &Users, user: &User, id: &str, name: &str) -> Result<CustomPreset, ApiError> {
    presets::require_custom_presets(user.tier)?;
    change(users, user, |list| presets::rename(list, id, name)).await
}

/// Deletes a custom preset; NOT_FOUND if the caller has none with that id.
pub async fn delete(users: &Users, user: &User, id: &str) -> Result<(), ApiError> {
    presets::require_custom_presets(user.tier)?;
    change(users, user, |list| presets::remove(list, id)).await
}

/// Applies `edit` to the stored list, retrying if another request changed it meanwhile; what the
/// written edit returned.
async fn change<T>(
    users: &Users,
    user: &User,
    edit: impl Fn(&mut Vec<CustomPreset>) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut current = user.custom_presets.clone();
    for _ in 0..3 {
        let mut next = current.clone();
        let edited = edit(&mut next)?;
        if users.replace_custom_presets(&user.id, &current, &next).await? {
            return Ok(edited);
        }
        let fresh = users.get(&user.id).await?.ok_or(ApiError::Unauthenticated)?;
        current = fresh.custom_presets;
    }
    Err(ApiError::Conflict("the presets changed meanwhile; try again".into()))
}
