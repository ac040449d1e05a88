//! Stripe: the one client module, and what the backend keeps in step with it.

pub mod customers;
pub mod plans;
pub mod signature;
pub mod stripe;
pub mod sync;
pub mod types;

pub use stripe::{Stripe, StripeError};
