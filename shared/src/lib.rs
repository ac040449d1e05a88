//! The library every function shares, in layers that only look down:
//!
//! - [`http`]: the edge — the router (authentication, CSRF, rate limit, error mapping), request
//!   parsing and responses;
//! - [`flows`]: orchestration of one use case over the few adapters it needs;
//! - [`domain`]: the rules, as plain values and functions with no I/O;
//! - [`store`] and [`upstream`]: adapters — our tables, bucket and cache; Stripe, ElevenLabs, the IdP.
//!
//! [`app`] assembles the clients once per cold start, and [`assemble`] the flows that more than
//! one function runs from it; [`config`] is read once from the environment. `docs/architecture.md` walks a request through the layers.

pub mod app;
pub mod assemble;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod flows;
pub mod http;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod upstream;

pub use app::{App, Warm};
pub use error::ApiError;
