//! Adapters for our own storage. Each table has one module that owns every read and write of it
//! (and so its attribute names): [`users`], [`sessions`], [`recordings`], [`subscriptions`],
//! [`webhook_events`]; [`audio`] owns the bucket, [`redis`] the cache connection.

pub mod admission;
pub mod api_keys;
pub mod audio;
pub mod audit;
pub mod aws;
pub mod cloudfront;
pub mod connections;
pub mod consent;
pub mod dynamo;
pub mod login_attempts;
pub mod pending_uploads;
pub mod rate_limit;
pub mod recordings;
pub mod redis;
pub mod secrets;
pub mod sessions;
pub mod subscriptions;
pub mod usage_events;
pub mod users;
pub mod voices;
pub mod webhook_events;
pub mod workspace_rows;
pub mod workspaces;
