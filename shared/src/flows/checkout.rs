//! Starting a subscription: a Stripe Checkout Session for one configured price.
//!
//! A customer has at most one live subscription. Checkout is refused while the user holds one
//! (our mirror, or Stripe's own list: a checkout paid a moment ago may not have reached us);
//! every session expires 30 to 40 minutes after it is made; and making one expires every other
//! open session of the customer, so a session left open in another tab can no longer be paid.
//! What still slips through (two sessions paid in the same instant) is cancelled and refunded
//! by the billing sync (`flows::billing`).

use time::OffsetDateTime;

use crate::{
    config::{BillingSettings, PriceConfig},
    domain::user::User,
    error::ApiError,
    flows::customers::ensure_customer,
    store::users::Users,
    upstream::stripe::{
        Stripe,
        client::{NewCheckout, Purchase},
    },
};

/// A double click within this window reuses the same session (one idempotency key).
const REUSE_WINDOW_SECS: i64 = 600;
/// Stripe's shortest session lifetime.
const MIN_LIFETIME_SECS: i64 = 30 * 60;

/// The new session's URL, the user's other open sessions expired.
#[tracing::instrument(skip_all, fields(user_id = %user.id, price = price.id), err)]
pub async fn start(
    users: &Users,
    stripe: &Stripe,
    settings: &BillingSettings,
    user: &User,
    price: &PriceConfig,
    now: OffsetDateTime,
) -> Result<String, ApiError> {
    let live_in_stripe = match &user.stripe_customer_id {
        Some(customer) => stripe.open_subscriptions(customer).await?.iter().any(|s| s.status.may_bill()),
        None => false,
    };
    if user.has_live_subscription() || live_in_stripe {
        return Err(ApiError::Conflict(
            "you already have a subscription; change its plan with POST /billing/subscription, or manage it in \
             the billing portal (POST /billing/portal)"
                .to_owned(),
        ));
    }
    let customer = ensure_customer(users, stripe, user).await?;
    let purchase = Purchase {
        price: &price.id,
        quantity: 1,
        metered_price: settings.metered_price_for(price.tier),
        owner: ("userId", user.id.as_str()),
        tier: price.tier.as_str(),
        success_url: settings.checkout_success_url.as_str(),
        cancel_url: settings.checkout_cancel_url.as_str(),
    };
    open_session(stripe, &customer, &purchase, now).await
}

/// A session for `purchase` on `customer`: the same one for a repeat within the reuse window,
/// every other open session of the customer expired; its URL.
pub async fn open_session(
    stripe: &Stripe,
    customer: &str,
    purchase: &Purchase<'_>,
    now: OffsetDateTime,
) -> Result<String, ApiError> {
    // One session per owner, price, quantity and window: a repeat within it is the same request
    // to Stripe, expiry included.
    let window = now.unix_timestamp().div_euclid(REUSE_WINDOW_SECS);
    let expires_at = (window + 1) * REUSE_WINDOW_SECS + MIN_LIFETIME_SECS;
    let key = format!("checkout-{}-{}-{}-{window}", purchase.owner.1, purchase.price, purchase.quantity);
    let mut checkout = NewCheckout { customer, expires_at, purchase, idempotency_key: &key };
    let mut session = stripe.create_checkout_session(&checkout).await?;
    if session.status.as_deref().is_some_and(|s| s != "open") {
        // The window's session was expired meanwhile (another plan chosen in between): a new one.
        let fresh = format!("{key}-{}", now.unix_timestamp());
        checkout.idempotency_key = &fresh;
        session = stripe.create_checkout_session(&checkout).await?;
    }
    for other in stripe.open_checkout_sessions(customer).await? {
        if other.id != session.id {
            stripe.expire_checkout_session(&other.id).await?;
            tracing::info!(session = other.id, "an earlier open checkout session was expired");
        }
    }
    Ok(session.url.ok_or_else(|| anyhow::anyhow!("Stripe returned a session without a URL"))?)
}
