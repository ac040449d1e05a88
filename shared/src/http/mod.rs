//! The HTTP edge: the router every HTTP function runs behind, request parsing, responses and
//! cookies.

pub mod body;
pub mod cookies;
pub mod csrf;
pub mod request;
pub mod response;
pub mod router;

pub use request::{cookie, header, json_body, page_limit, path_param, query, source_ip};
pub use response::{HttpResult, created, json, ok, redirect};
pub use router::{Access, Caller, Credential, Ctx, Route};
