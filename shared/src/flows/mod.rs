//! Use cases: each takes the few adapters it needs and applies the domain's rules in order,
//! leaving nothing half-done.

pub mod admin;
pub mod api_keys;
pub mod billing;
pub mod billing_alerts;
pub mod checkout;
pub mod customers;
pub mod elevenlabs_accounts;
pub mod erase;
pub mod export;
pub mod generate;
pub mod health;
pub mod overage;
pub mod plan_change;
pub mod presets;
pub mod push;
pub mod reconcile;
pub mod recordings;
pub mod seats;
pub mod signin;
pub mod stripe_events;
pub mod ttl_cleanup;
pub mod upload_sweep;
pub mod uploads;
pub mod usage_reset;
pub mod voice_reconcile;
pub mod voice_slots;
pub mod voices;
pub mod workspaces;
