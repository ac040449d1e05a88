//! The library every function shares: configuration, clients, the tier table, sessions, users,
//! usage, and the HTTP error mapping.

pub mod app;
pub mod auth;
pub mod aws;
pub mod billing;
pub mod cache;
pub mod clock;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod expiry;
pub mod http;
pub mod ids;
pub mod outbound;
pub mod presets;
pub mod quota;
pub mod ratelimit;
pub mod recordings;
pub mod secrets;
pub mod telemetry;
pub mod tiers;
pub mod tts;
pub mod usage;
pub mod users;

pub use app::{App, Caller};
pub use error::ApiError;
