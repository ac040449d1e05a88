//! API keys: each one holds one of the plan's places (a FREE plan has none), taken with the key
//! and given back by the revoke that removed it.

use time::OffsetDateTime;

use crate::{
    clock::timestamp,
    domain::{allowance::Allowance, ids::Ulid, usage::UsagePeriod, user::User},
    error::ApiError,
    store::{
        api_keys::{ApiKeys, KeyCharacters, KeyMeta, MAX_CHARACTER_BUDGET, NewKey},
        users::Users,
    },
};

/// Makes a key named `name` for `user`, with an optional monthly character budget:
/// FEATURE_LOCKED on a plan without keys, LIMIT_REACHED when every place is taken.
pub async fn create(
    users: &Users,
    keys: &ApiKeys,
    user: &User,
    name: &str,
    monthly_character_limit: Option<u64>,
    now: OffsetDateTime,
) -> Result<NewKey, ApiError> {
    if user.tier.rules().api_keys == 0 {
        return Err(ApiError::locked(format!("API keys are not part of the {} plan", user.tier)));
    }
    let period = UsagePeriod::containing(now);
    let place = users.reserve_one(&user.id, user.tier, Allowance::ApiKeys, period).await?;
    match keys.create(&user.id, None, name, monthly_character_limit, timestamp(now), Ulid::generate(now)).await {
        Ok(made) => {
            place.commit();
            Ok(made)
        }
        Err(error) => {
            place.give_back().await?;
            Err(error.into())
        }
    }
}

/// Whether the plan lets this key be used now: a FREE plan none (after a downgrade, say), and
/// a plan holding fewer keys than the user has (a downgrade from PREMIUM's 10 to BASIC's 2)
/// only the newest it holds. Costs a key listing only while the user holds more than the plan.
pub async fn usable(keys: &ApiKeys, user: &User, key: &KeyMeta) -> Result<(), ApiError> {
    let allowed = user.tier.rules().api_keys;
    if allowed == 0 {
        return Err(ApiError::locked(format!("API keys are not part of the {} plan", user.tier)));
    }
    if user.api_keys <= allowed {
        return Ok(());
    }
    let mut held = keys.list(&user.id).await?;
    // Key ids are ULIDs: newest last.
    held.sort_by(|a, b| b.key_id.cmp(&a.key_id));
    if held.iter().take(allowed as usize).any(|k| k.key_id == key.key_id) {
        return Ok(());
    }
    Err(ApiError::locked(format!(
        "the {} plan keeps {allowed} API keys usable, the newest; revoke keys or upgrade to use this one",
        user.tier
    )))
}

/// A key's monthly character budget as asked for: 1 to [`MAX_CHARACTER_BUDGET`], or none.
pub fn character_budget(asked: Option<u64>) -> Result<Option<u64>, ApiError> {
    match asked {
        Some(limit) if !(1..=MAX_CHARACTER_BUDGET).contains(&limit) => Err(ApiError::validation(
            "monthlyCharacterLimit",
            format!("must be a whole number from 1 to {MAX_CHARACTER_BUDGET}, or null for no budget"),
        )),
        other => Ok(other),
    }
}

/// Takes the text's characters from the budget of the key the request came with, if it has
/// one: LIMIT_REACHED naming the key's budget when they do not fit (the account's other keys
/// and its web session are not touched).
pub async fn take_characters(
    keys: &ApiKeys,
    key: &KeyMeta,
    characters: u64,
    now: OffsetDateTime,
) -> Result<Option<KeyCharacters>, ApiError> {
    let Some(limit) = key.monthly_character_limit else { return Ok(None) };
    let period = UsagePeriod::containing(now);
    if let Some(held) = keys.take_characters(key, limit, characters, period).await? {
        return Ok(Some(held));
    }
    let counted = if key.characters_period.as_deref() == Some(period.to_string().as_str()) {
        key.characters_this_month
    } else {
        0
    };
    Err(ApiError::LimitReached(format!(
        "the API key {} has a budget of {limit} characters a month and {} left, and this text has {characters}; the \
         budget starts again on {}, or its owner can raise it (PATCH /api-keys/{})",
        key.prefix,
        limit.saturating_sub(counted),
        period.next().starts_at().date(),
        key.key_id
    )))
}

/// Revokes the user's key `key_id` at once (every request reads keys strongly consistent);
/// NOT_FOUND when they have no such key, or a concurrent revoke removed it first.
pub async fn revoke(users: &Users, keys: &ApiKeys, user: &User, key_id: &str) -> Result<KeyMeta, ApiError> {
    let removed = keys.revoke(&user.id, key_id).await?.ok_or_else(|| ApiError::not_found("API key"))?;
    Ok(users.give_back_held(removed).await?)
}
