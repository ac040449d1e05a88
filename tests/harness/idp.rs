//! Drives the oidc-provider stand-in (local/idp) the way a browser would, without one: follows
//! its redirects by hand, keeps its cookies, and fills in its login form with the chosen person.

use std::collections::HashMap;

use reqwest::{StatusCode, redirect::Policy};
use url::Url;

pub struct Person<'a> {
    pub sub: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    /// What the IdP says about the address.
    pub email_verified: bool,
}

/// From the authorization URL our login handed out to the redirect back to our callback.
pub async fn sign_in(authorization_url: &Url, callback_url: &Url, person: &Person<'_>) -> Url {
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let mut jar: HashMap<String, String> = HashMap::new();
    let mut next = authorization_url.clone();
    for _ in 0..10 {
        if next.as_str().starts_with(callback_url.as_str()) {
            return next;
        }
        let request = if next.path().starts_with("/interaction/") {
            let verified = if person.email_verified { "true" } else { "false" };
            let form =
                [("sub", person.sub), ("email", person.email), ("name", person.name), ("email_verified", verified)];
            http.post(format!("{}/login", next.as_str().trim_end_matches('/'))).form(&form)
        } else {
            http.get(next.clone())
        };
        let cookies: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let response = request.header("cookie", cookies.join("; ")).send().await.expect("the IdP answers");
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        assert!(status.is_redirection() || status == StatusCode::OK, "IdP answered {status}");
        let location = response.headers().get("location").unwrap_or_else(|| panic!("IdP stopped at {next} ({status})"));
        next = next.join(location.to_str().unwrap()).unwrap();
    }
    panic!("the IdP never redirected back to {callback_url}");
}
