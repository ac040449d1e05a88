//! Stripe: the one client module, and what the backend keeps in step with it.

pub mod customers;
pub mod stripe;

pub use stripe::{Stripe, StripeError};
