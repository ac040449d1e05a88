//! Sign-in state: server-side sessions, their cookie and the CSRF rule.

pub mod csrf;
pub mod oidc;
pub mod session;
pub mod signin;

pub use session::{Session, SessionToken, Sessions};
