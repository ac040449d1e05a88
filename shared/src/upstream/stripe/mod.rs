//! Stripe: a small client that reads only the fields we use, the object shapes, and webhook
//! signatures.

pub mod client;
pub mod signature;
pub mod types;

pub use client::{Stripe, StripeError};
