//! Integration tests against the local stack; one binary so it links once.

// The layout of some tests' futures (account::subscribe awaits a whole Stripe checkout) is deeper
// than rustc's default query depth.
#![recursion_limit = "256"]

mod account;
mod admin;
mod admission;
mod allowances;
mod api_keys;
mod billing;
mod cdn;
mod cost;
mod faults;
mod fuzz;
mod generation_cache;
mod health;
mod hot_path;
mod library;
mod limits;
mod local_api;
mod metrics;
mod money;
mod openapi;
mod overage;
mod pool;
mod push;
mod recordings;
mod seats;
mod session;
mod signin;
mod streaming;
mod template;
mod tts;
mod usage;
mod voices;
mod workspace_keys;
mod workspaces;
