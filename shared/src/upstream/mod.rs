//! Adapters for outside services: Stripe, ElevenLabs and the identity provider, all over the one
//! outbound HTTP client (no redirects, timeouts).

pub mod elevenlabs;
pub mod oidc;
pub mod outbound;
pub mod stripe;
