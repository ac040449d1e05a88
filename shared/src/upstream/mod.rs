//! Adapters for outside services: Stripe, ElevenLabs and the identity provider, all over the one
//! outbound HTTP client (no redirects, timeouts); and email through Amazon SES.

pub mod elevenlabs;
pub mod email;
pub mod oidc;
pub mod outbound;
pub mod push;
pub mod stripe;
