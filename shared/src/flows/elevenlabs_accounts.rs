//! The ElevenLabs accounts speech and clones are spread over: how the pool grows past one
//! account's voice slots and concurrency. Each account has its own key, its own slots (with
//! their least-recently-used cache, `flows::voice_slots`) and its own admission gate.
//!
//! A clone is placed when it is made, on the account with the most free slots by our records,
//! and stays there: it is spoken with there, re-created there after an eviction, deleted there.
//! A premade voice exists on every account: a generation with one goes to the account with the
//! most free places at that moment. A clone placed on an account that is no longer configured
//! falls to the primary one (the first): ElevenLabs there does not know its voice, so it is
//! re-created there from its samples on its next use.

use futures_util::future::join_all;

use crate::{
    store::{admission::Gates, voices::Voice, voices::Voices},
    upstream::elevenlabs::{Account, Accounts},
};

/// The account `voice` is placed on.
pub fn of<'a>(accounts: &'a Accounts, voice: &Voice) -> &'a Account {
    if voice.account.is_empty() {
        return accounts.primary();
    }
    accounts.named(&voice.account).unwrap_or_else(|| {
        let (account, voice_id) = (&voice.account, &voice.voice_id);
        tracing::warn!(account, %voice_id, "a clone's account is no longer configured; using the primary one");
        accounts.primary()
    })
}

/// Where a generation with a premade voice goes: the account with the most free places now
/// (the first of equals). An account whose gate cannot be read counts as full.
pub async fn for_premade<'a>(accounts: &'a Accounts, gates: &Gates) -> &'a Account {
    if accounts.all().len() == 1 {
        return accounts.primary();
    }
    let free = join_all(accounts.all().iter().map(|a| gates.of(&a.name).free_places())).await;
    first_of_most(accounts, free.into_iter().map(|f| f.unwrap_or(i64::MIN)))
}

/// Where a new clone is placed: the account with the most free slots by our records; among
/// equals (every one full, say) the one with the most slots, whose least recently used clone
/// then makes room; then the first.
pub async fn for_new_clone<'a>(accounts: &'a Accounts, voices: &Voices) -> anyhow::Result<&'a Account> {
    if accounts.all().len() == 1 {
        return Ok(accounts.primary());
    }
    let counts = join_all(accounts.all().iter().map(|a| voices.resident_count(&a.name))).await;
    let mut keys = Vec::with_capacity(counts.len());
    for (account, resident) in accounts.all().iter().zip(counts) {
        let free = (i64::from(account.voice_slots) - i64::from(resident?)).max(0);
        keys.push((free, account.voice_slots));
    }
    Ok(first_of_most(accounts, keys))
}

/// The first account with the greatest of `keys` (one per account, in order).
fn first_of_most<K: Ord>(accounts: &Accounts, keys: impl IntoIterator<Item = K>) -> &Account {
    let mut best: Option<(usize, K)> = None;
    for (i, key) in keys.into_iter().enumerate() {
        if best.as_ref().is_none_or(|(_, most)| key > *most) {
            best = Some((i, key));
        }
    }
    &accounts.all()[best.map_or(0, |(i, _)| i)]
}
