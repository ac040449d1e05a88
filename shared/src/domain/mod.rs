//! The rules, as plain values and functions: no I/O, no clients. Parsed once at the edge, then
//! trusted.

pub mod allowance;
pub mod audio;
pub mod generation;
pub mod health;
pub mod ids;
pub mod json;
pub mod overage;
pub mod plans;
pub mod presets;
pub mod profile;
pub mod push;
pub mod roles;
pub mod session;
pub mod subscription;
pub mod text;
pub mod tiers;
pub mod usage;
pub mod user;
pub mod voices;
pub mod workspaces;
