//! Every user gets exactly one Stripe customer.

use crate::{domain::user::User, error::ApiError, store::users::Users, upstream::stripe::Stripe};

/// The user's Stripe customer id, creating the customer if the user has none yet. The stored id
/// is checked first, creation carries an idempotency key derived from the account (its user id
/// and when it was made: an account made again after an erasure never gets the erased one's
/// customer back from Stripe's idempotency cache), and the id is stored only if none was stored
/// meanwhile, so retries and races never make two.
#[tracing::instrument(skip_all, fields(user_id = %user.id), err)]
pub async fn ensure_customer(users: &Users, stripe: &Stripe, user: &User) -> Result<String, ApiError> {
    if let Some(id) = &user.stripe_customer_id {
        return Ok(id.clone());
    }
    let key = format!("customer-{}-{}", user.id, user.created_at);
    let customer = stripe.create_customer(("userId", user.id.as_str()), user.email.as_str(), &key).await?;
    Ok(users.set_stripe_customer(&user.id, &customer.id).await?)
}
