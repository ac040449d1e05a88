//! Sign-in state: server-side sessions, their cookie and the CSRF rule.

pub mod csrf;
pub mod session;

pub use session::{Session, SessionToken, Sessions};
