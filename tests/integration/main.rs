//! Integration tests against the local stack; one binary so it links once.

mod billing;
mod local_api;
mod recordings;
mod session;
mod signin;
mod usage;
mod voice;
