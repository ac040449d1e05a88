//! Sign-in: GET /auth/login and GET /auth/callback against the oidc-provider stand-in (and, for
//! tokens no honest IdP issues, the fake IdP), moto, Redis and localstripe.

use aws_sdk_dynamodb::types::AttributeValue;
use http::Method;
use integration_tests::{
    DEAD_ENDPOINT, Login, TestApp, TestResponse,
    fake_idp::{self, FakeIdp, KID},
    idp::{self, Person},
    query_param, unique,
};
use serde_json::Value;
use voice_core::domain::tiers::Tier;

const APP: &str = "http://127.0.0.1:3001/";

fn person<'a>(sub: &'a str, email: &'a str) -> Person<'a> {
    Person { sub, email, name: "Ada Lovelace", email_verified: true }
}

/// The refusal every failed callback gives: back to the app with a code, and no session.
fn assert_refused(response: &TestResponse, code: &str) {
    assert_eq!(response.status, 302, "{}", response.body);
    let location = response.location();
    assert_eq!(query_param(&location, "authError").as_deref(), Some(code), "{location}");
    assert!(location.as_str().starts_with(APP), "{location}");
    assert_eq!(response.cookie_pair("sid"), None, "a refused sign-in set a session cookie");
    let cleared = response.cookie_line("oidc_state").expect("the state cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn login_redirects_to_the_idp_with_state_nonce_and_pkce() {
    let app = TestApp::spawn().await;
    let response = app.request(Method::GET, "/auth/login?returnTo=/library", &[], None).await;

    assert_eq!(response.status, 302);
    let to = response.location();
    let issuer = app.app.config.idp.issuer.as_str();
    assert!(to.as_str().starts_with(&format!("{issuer}authorize?")), "{to}");
    for (name, value) in [
        ("response_type", "code"),
        ("scope", "openid email profile"),
        ("code_challenge_method", "S256"),
        ("client_id", "voice-local"),
        ("redirect_uri", app.app.config.idp.callback_url.as_str()),
    ] {
        assert_eq!(query_param(&to, name).as_deref(), Some(value), "{name}");
    }
    for name in ["state", "nonce", "code_challenge"] {
        assert_eq!(query_param(&to, name).map(|v| v.len()), Some(43), "{name} carries 256 bits");
    }
    let cookie = response.cookie_line("oidc_state").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/auth/callback") && cookie.contains("Max-Age=600"), "{cookie}");
}

#[tokio::test]
async fn the_full_flow_signs_a_new_user_in_as_free_with_one_stripe_customer() {
    let app = TestApp::spawn().await;
    let sub = unique("auth0|flow-");
    let email = format!("{}@example.test", unique("ada-"));

    let response = app.sign_in_through_idp(&person(&sub, &email), Some("http://localhost:5173/library?tab=2")).await;

    assert_eq!(response.status, 302, "{}", response.body);
    assert_eq!(response.location().as_str(), "http://localhost:5173/library?tab=2");
    let cookie = response.cookie_line("sid").expect("a session cookie");
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(
        attributes,
        ["Max-Age=43200", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"],
        "no Domain unless configured"
    );
    assert!(response.cookie_line("oidc_state").unwrap().contains("Max-Age=0"));

    let sid = response.cookie_pair("sid").unwrap();
    let session = app.request(Method::GET, "/auth/session", &[("cookie", &sid)], None).await;
    assert_eq!(session.status, 200, "{}", session.body);
    assert_eq!(session.body["userId"], sub.as_str());
    assert_eq!(session.body["email"], email.as_str());
    assert_eq!(session.body["name"], "Ada Lovelace");
    assert_eq!(session.body["tier"], "FREE");

    let user = app.user_row(&sub).await.expect("the user row exists");
    let customer_id = user.stripe_customer_id.expect("a Stripe customer");
    let customer = app.app.stripe().await.unwrap().customer(&customer_id).await.unwrap();
    assert_eq!(customer.metadata.get("userId"), Some(&sub));
    assert_eq!(customer.email.as_deref(), Some(email.as_str()));
}

#[tokio::test]
async fn retrying_the_callback_or_replaying_its_code_creates_nothing() {
    let app = TestApp::spawn().await;
    let sub = unique("auth0|replay-");
    let login = app.start_login(None).await;
    let back =
        idp::sign_in(&login.authorization_url, &app.app.config.idp.callback_url, &person(&sub, "r@example.test")).await;
    let query = back.query().unwrap().to_owned();
    assert_eq!(app.callback(&query, Some(&login.state_cookie)).await.status, 302);
    let before = app.user_row(&sub).await.unwrap();

    // The very same request again: its state is spent.
    assert_refused(&app.callback(&query, Some(&login.state_cookie)).await, "invalid_state");

    // The old code under a fresh, valid state: the IdP refuses the code.
    let fresh = app.start_login(None).await;
    let code = query_param(&back, "code").unwrap();
    let replay = format!("code={code}&state={}", fresh.state);
    assert_refused(&app.callback(&replay, Some(&fresh.state_cookie)).await, "invalid_grant");

    let after = app.user_row(&sub).await.unwrap();
    assert_eq!(after.last_login, before.last_login, "nothing was written");
    assert_eq!(after.stripe_customer_id, before.stripe_customer_id);
}

#[tokio::test]
async fn a_second_login_gets_a_new_session_and_keeps_user_customer_and_tier() {
    let app = TestApp::spawn().await;
    let sub = unique("auth0|again-");
    let who = person(&sub, "again@example.test");

    let first = app.sign_in_through_idp(&who, None).await;
    let user = app.user_row(&sub).await.unwrap();
    app.set_user(&user.id, &[("subscriptionTier", AttributeValue::S("BASIC".into()))]).await;
    let second = app.sign_in_through_idp(&who, None).await;

    let (first_sid, second_sid) = (first.cookie_pair("sid").unwrap(), second.cookie_pair("sid").unwrap());
    assert_ne!(first_sid, second_sid, "a new session id at every login");
    let again = app.user_row(&sub).await.unwrap();
    assert_eq!(again.created_at, user.created_at, "the same user row");
    assert_eq!(again.stripe_customer_id, user.stripe_customer_id, "the same Stripe customer");
    assert_eq!(again.tier, Tier::Basic, "the tier is kept");
    let session = app.request(Method::GET, "/auth/session", &[("cookie", &second_sid)], None).await;
    assert_eq!(session.body["tier"], "BASIC");
}

#[tokio::test]
async fn a_missing_mismatched_or_foreign_state_is_refused() {
    let app = TestApp::spawn().await;
    let sub = unique("auth0|state-");
    let login = app.start_login(None).await;
    let back =
        idp::sign_in(&login.authorization_url, &app.app.config.idp.callback_url, &person(&sub, "s@example.test")).await;
    let code = query_param(&back, "code").unwrap();
    let other = app.start_login(None).await;

    for (query, cookie) in [
        (format!("code={code}"), Some(login.state_cookie.clone())),
        (format!("code={code}&state={}", login.state), None),
        (format!("code={code}&state={}", login.state), Some(other.state_cookie.clone())),
        (format!("code={code}&state={}", other.state), Some(login.state_cookie.clone())),
    ] {
        assert_refused(&app.callback(&query, cookie.as_deref()).await, "invalid_state");
    }
    assert!(app.user_row(&sub).await.is_none(), "no user was created");
}

#[tokio::test]
async fn an_idp_error_returns_to_the_app_with_its_code() {
    let app = TestApp::spawn().await;
    let login = app.start_login(None).await;
    let query = format!("error=access_denied&error_description=User%20cancelled&state={}", login.state);
    assert_refused(&app.callback(&query, Some(&login.state_cookie)).await, "access_denied");

    let login = app.start_login(None).await;
    let query = format!("error=%3Cscript%3E&state={}", login.state);
    assert_refused(&app.callback(&query, Some(&login.state_cookie)).await, "idp_error");
}

#[tokio::test]
async fn return_to_on_a_foreign_origin_goes_to_the_default_url() {
    let app = TestApp::spawn().await;
    for foreign in ["https://evil.example/steal", "//evil.example", "http://localhost:5173.evil.example/"] {
        let sub = unique("auth0|redirect-");
        let response = app.sign_in_through_idp(&person(&sub, "x@example.test"), Some(foreign)).await;
        assert_eq!(response.status, 302);
        assert_eq!(response.location().as_str(), APP, "{foreign}");
        assert!(response.cookie_pair("sid").is_some());
    }
}

#[tokio::test]
async fn with_stripe_unreachable_sign_in_succeeds_and_the_customer_comes_at_the_next_login() {
    let stripe_down = TestApp::builder().config(|c| c.stripe.api_base = DEAD_ENDPOINT.parse().unwrap()).spawn().await;
    let app = TestApp::spawn().await;
    let sub = unique("auth0|nostripe-");
    let who = person(&sub, "nostripe@example.test");

    let response = stripe_down.sign_in_through_idp(&who, None).await;
    assert_eq!(response.status, 302);
    assert!(response.cookie_pair("sid").is_some(), "sign-in does not depend on Stripe");
    assert_eq!(app.user_row(&sub).await.unwrap().stripe_customer_id, None);

    app.sign_in_through_idp(&who, None).await;
    let customer = app.user_row(&sub).await.unwrap().stripe_customer_id.expect("created once Stripe is back");
    app.sign_in_through_idp(&who, None).await;
    assert_eq!(app.user_row(&sub).await.unwrap().stripe_customer_id, Some(customer));
}

#[tokio::test]
async fn a_configured_cookie_domain_is_set() {
    let app = TestApp::builder().config(|c| c.session.cookie_domain = Some("example.test".into())).spawn().await;
    let response = app.sign_in_through_idp(&person(&unique("auth0|domain-"), "d@example.test"), None).await;
    assert!(response.cookie_line("sid").unwrap().ends_with("; Domain=example.test"));
}

// ------------------------------------------------------------------ forged ID tokens

/// A login against the fake IdP, up to the callback, with `token` as the IdP's ID token.
async fn callback_with(app: &TestApp, fake: &FakeIdp, token: impl FnOnce(&Login) -> String) -> TestResponse {
    let login = app.start_login(None).await;
    fake.issue(token(&login));
    app.callback(&format!("code=any&state={}", login.state), Some(&login.state_cookie)).await
}

async fn fake_app() -> (TestApp, FakeIdp) {
    let fake = FakeIdp::start().await;
    let issuer = fake.issuer.clone();
    let app = TestApp::builder().config(move |c| c.idp.issuer = issuer.clone()).spawn().await;
    (app, fake)
}

#[tokio::test]
async fn an_honest_token_from_the_fake_idp_signs_in() {
    let (app, fake) = fake_app().await;
    let sub = unique("auth0|honest-");
    let response =
        callback_with(&app, &fake, |l| fake_idp::sign_rs256(&fake.claims(&sub, "voice-local", &l.nonce), KID)).await;
    assert_eq!(response.status, 302, "{}", response.body);
    assert!(response.cookie_pair("sid").is_some(), "{:?}", response.location());
    assert!(app.user_row(&sub).await.is_some());
}

#[tokio::test]
async fn forged_or_wrong_id_tokens_are_rejected_and_leave_nothing() {
    let (app, fake) = fake_app().await;
    type Forge = Box<dyn Fn(&FakeIdp, &str, &Login) -> String>;
    let set = |key: &'static str, value: Value| -> Forge {
        Box::new(move |fake, sub, login| {
            let mut claims = fake.claims(sub, "voice-local", &login.nonce);
            claims[key] = value.clone();
            fake_idp::sign_rs256(&claims, KID)
        })
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cases: Vec<(&str, Forge)> = vec![
        ("wrong iss", set("iss", "https://other-tenant.auth0.com/".into())),
        ("wrong aud", set("aud", "another-client".into())),
        ("expired", set("exp", (now - 120).into())),
        ("wrong nonce", set("nonce", "not-the-nonce".into())),
        ("no nonce", set("nonce", Value::Null)),
        ("alg none", Box::new(|fake, sub, login| fake_idp::unsigned(&fake.claims(sub, "voice-local", &login.nonce)))),
        (
            "HS256 keyed with the public key",
            Box::new(|fake, sub, login| {
                fake_idp::sign_hs256_with_public_key(&fake.claims(sub, "voice-local", &login.nonce))
            }),
        ),
        (
            "signature of another payload",
            Box::new(|fake, sub, login| {
                let honest = fake_idp::sign_rs256(&fake.claims(sub, "voice-local", &login.nonce), KID);
                let forged = fake_idp::unsigned(&fake.claims("auth0|someone-else", "voice-local", &login.nonce));
                let mut parts: Vec<&str> = honest.split('.').collect();
                parts[1] = forged.split('.').nth(1).unwrap();
                parts.join(".")
            }),
        ),
    ];

    for (case, forge) in cases {
        let sub = unique("auth0|forged-");
        let response = callback_with(&app, &fake, |login| forge(&fake, &sub, login)).await;
        assert_eq!(query_param(&response.location(), "authError").as_deref(), Some("invalid_token"), "{case}");
        assert_refused(&response, "invalid_token");
        assert!(app.user_row(&sub).await.is_none(), "{case} created a user");
    }
}

#[tokio::test]
async fn a_reauthentication_is_taken_only_when_the_token_shows_fresh_credentials() {
    let (app, fake) = fake_app().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sub = unique("auth0|again-");
    for (case, auth_time) in [("credentials given an hour ago", Value::from(now - 3600)), ("no auth_time", Value::Null)]
    {
        let login = app.start_reauthentication().await;
        assert_eq!(query_param(&login.authorization_url, "prompt").as_deref(), Some("login"));
        assert_eq!(query_param(&login.authorization_url, "max_age").as_deref(), Some("0"));
        let mut claims = fake.claims(&sub, "voice-local", &login.nonce);
        claims["auth_time"] = auth_time;
        fake.issue(fake_idp::sign_rs256(&claims, KID));
        let response = app.callback(&format!("code=any&state={}", login.state), Some(&login.state_cookie)).await;
        assert_refused(&response, "invalid_token");
        assert!(app.user_row(&sub).await.is_none(), "{case} created a user");
    }
    let login = app.start_reauthentication().await;
    let mut claims = fake.claims(&sub, "voice-local", &login.nonce);
    claims["auth_time"] = Value::from(now);
    fake.issue(fake_idp::sign_rs256(&claims, KID));
    let response = app.callback(&format!("code=any&state={}", login.state), Some(&login.state_cookie)).await;
    assert!(response.cookie_pair("sid").is_some(), "credentials just given: signed in ({})", response.status);
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_once_then_is_rejected() {
    let (app, fake) = fake_app().await;
    let sub = unique("auth0|kid-");
    let honest =
        callback_with(&app, &fake, |l| fake_idp::sign_rs256(&fake.claims(&sub, "voice-local", &l.nonce), KID)).await;
    assert!(honest.cookie_pair("sid").is_some());
    assert_eq!(fake.jwks_fetches(), 1, "keys are fetched once and kept");

    let stranger = unique("auth0|kid-");
    let forged = |l: &Login| fake_idp::sign_rs256(&fake.claims(&stranger, "voice-local", &l.nonce), "rotated-away");
    assert_refused(&callback_with(&app, &fake, forged).await, "invalid_token");
    assert_eq!(fake.jwks_fetches(), 2, "one refetch for the unknown kid");

    assert_refused(&callback_with(&app, &fake, forged).await, "invalid_token");
    assert_eq!(fake.jwks_fetches(), 2, "no refetch storm within the cooldown");
    assert!(app.user_row(&stranger).await.is_none());
}

#[tokio::test]
async fn the_idp_client_follows_no_redirects() {
    let (app, fake) = fake_app().await;
    fake.redirect_token_endpoint();
    let sub = unique("auth0|redirected-");
    let response =
        callback_with(&app, &fake, |l| fake_idp::sign_rs256(&fake.claims(&sub, "voice-local", &l.nonce), KID)).await;
    assert_refused(&response, "idp_unavailable");
    assert_eq!(fake.redirect_target_hits(), 0, "the redirect was followed");
}

#[tokio::test]
async fn without_an_end_session_endpoint_logout_uses_auth0s_v2_logout() {
    let (app, _fake) = fake_app().await;
    let user = app.sign_in(Tier::Free).await;
    let response = app.post("/auth/logout", &user, None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let url: url::Url = response.body["logoutUrl"].as_str().unwrap().parse().unwrap();
    assert_eq!(url.path(), "/v2/logout");
    assert_eq!(query_param(&url, "client_id").as_deref(), Some("voice-local"));
    assert_eq!(query_param(&url, "returnTo").as_deref(), Some(APP));
}

#[tokio::test]
async fn an_unverified_email_is_refused_unless_configured_otherwise() {
    let app = TestApp::spawn().await;
    let sub = unique("auth0|unverified-");
    let email = format!("{}@example.com", unique("unverified-"));
    let unverified = Person { email_verified: false, ..person(&sub, &email) };

    let refused = app.sign_in_through_idp(&unverified, None).await;
    assert_refused(&refused, "email_not_verified");
    assert!(app.user_row(&sub).await.is_none(), "no account was made for an unverified address");

    let lenient = TestApp::builder().config(|c| c.idp.require_verified_email = false).spawn().await;
    let response = lenient.sign_in_through_idp(&unverified, None).await;
    assert_eq!(response.status, 302, "{}", response.body);
    assert!(response.cookie_pair("sid").is_some(), "REQUIRE_VERIFIED_EMAIL=false lets it in");
    assert!(lenient.user_row(&sub).await.is_some());
}
