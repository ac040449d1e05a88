//! The admin area: the role table on every admin route, suspension, usage top-ups, statistics,
//! and the audit log (written for every action, writable through no route).

use aws_sdk_dynamodb::types::AttributeValue;
use http::Method;
use integration_tests::{TEMPLATE, TestApp, TestResponse, User, VOICE, idp::Person, query_param, unique};
use local_api::routes_from_template;
use serde_json::{Value, json};
use voice_core::{
    domain::{ids::Email, roles::Role, tiers::Tier},
    flows::admin::grant_role,
};

async fn with_role(app: &TestApp, tier: Tier, role: &str) -> User {
    let user = app.sign_in(tier).await;
    app.set_user(&user.id, &[("role", AttributeValue::S(role.into()))]).await;
    user
}

fn encoded(user: &User) -> String {
    user.id.as_str().replace('|', "%7C")
}

async fn audit_entries(app: &TestApp, admin: &User) -> Vec<Value> {
    let page = app.get("/admin/audit?limit=200", admin).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body["entries"].as_array().cloned().unwrap()
}

/// Text of its own each time: an identical request would be served from the generation cache.
fn speak() -> Value {
    json!({ "text": format!("Hello there, {}", unique("")), "voiceId": VOICE })
}

/// Every admin route of the template, as a request with its `{id}` filled in.
fn admin_routes(target: &User) -> Vec<(Method, String)> {
    let routes = routes_from_template(&std::fs::read_to_string(TEMPLATE).unwrap()).unwrap();
    let admin: Vec<_> = routes
        .into_iter()
        .filter(|r| r.path.starts_with("/admin"))
        .map(|r| (r.method.clone(), r.path.replace("{id}", &encoded(target))))
        .collect();
    assert!(admin.len() >= 7, "the template routes the admin area: {admin:?}");
    admin
}

async fn send(app: &TestApp, who: &User, method: &Method, path: &str) -> TestResponse {
    let body = (method == Method::POST).then(|| json!({ "reason": "a support ticket", "recordings": 1 }));
    let headers = [("cookie", who.cookie()), ("x-csrf-token", who.csrf.clone())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.request(method.clone(), path, &headers, body.as_ref()).await
}

#[tokio::test]
async fn a_plain_user_is_forbidden_on_every_admin_route_of_the_template() {
    let app = TestApp::spawn().await;
    let target = app.sign_in(Tier::Free).await;
    for tier in [Tier::Free, Tier::Premium] {
        let plain = app.sign_in(tier).await;
        for (method, path) in admin_routes(&target) {
            let response = send(&app, &plain, &method, &path).await;
            assert_eq!((response.status, response.error_code()), (403, "FORBIDDEN"), "{method} {path}");
        }
    }
    let row = app.user_row(target.id.as_str()).await.unwrap();
    assert!(row.suspension.is_none() && row.usage_grants.is_empty(), "nothing a plain user sent took effect");
}

#[tokio::test]
async fn support_can_look_up_but_not_suspend_grant_or_read_the_audit_log() {
    let app = TestApp::spawn().await;
    let support = with_role(&app, Tier::Free, "support").await;
    let target = app.sign_in(Tier::Basic).await;

    let found = app.get(&format!("/admin/users?email={}", target.email), &support).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let users = found.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["userId"], target.id.as_str());

    let by_id = app.get(&format!("/admin/users?id={}", encoded(&target)), &support).await;
    assert_eq!(by_id.body["users"][0]["email"], target.email.as_str());

    let account = app.get(&format!("/admin/users/{}", encoded(&target)), &support).await;
    assert_eq!(account.status, 200, "{}", account.body);
    for field in ["tier", "usage", "voiceClones", "lastLogin", "role", "allowances"] {
        assert!(account.body.get(field).is_some(), "{field} in {}", account.body);
    }
    assert_eq!(account.body["tier"], "BASIC");
    let text = account.body.to_string();
    for secret in [target.token.expose().to_string(), target.session_key(), target.csrf.clone()] {
        assert!(!text.contains(&secret), "the summary leaks a session secret");
    }
    assert!(!text.contains("s3Key") && !text.contains("http"), "no audio or URLs: {text}");

    for action in ["suspend", "grant-usage"] {
        let path = format!("/admin/users/{}/{action}", encoded(&target));
        let refused = send(&app, &support, &Method::POST, &path).await;
        assert_eq!((refused.status, refused.error_code()), (403, "FORBIDDEN"), "{action}");
    }
    assert_eq!(app.get("/admin/audit", &support).await.status, 403);
    assert_eq!(app.get("/usage", &target).await.status, 200, "the target was not suspended");

    let stats = app.get("/admin/stats", &support).await;
    assert_eq!(stats.status, 200, "{}", stats.body);

    // The session says what the role allows, so the web client offers only that.
    let session = app.get("/auth/session", &support).await.body;
    assert_eq!(
        (&session["role"], &session["adminPermissions"]),
        (&json!("support"), &json!(["look-up-users", "view-stats"]))
    );
    let plain = app.get("/auth/session", &target).await.body;
    assert_eq!((&plain["role"], &plain["adminPermissions"]), (&json!("user"), &json!([])));
}

#[tokio::test]
async fn suspension_ends_cookie_and_api_key_at_once_and_refuses_sign_in_until_lifted() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, Tier::Free, "admin").await;
    let target = app.sign_in(Tier::Basic).await;
    let key = app.post("/api-keys", &target, Some(&json!({ "name": "ci" }))).await;
    assert_eq!(key.status, 201, "{}", key.body);
    let bearer = format!("Bearer {}", key.body["key"].as_str().unwrap());
    let headers = [("authorization", bearer.as_str())];
    let with_key = || app.request(Method::GET, "/usage", &headers, None);
    assert_eq!(with_key().await.status, 200);

    let path = format!("/admin/users/{}/suspend", encoded(&target));
    let missing_reason = app.post(&path, &admin, Some(&json!({}))).await;
    assert_eq!(missing_reason.status, 400, "{}", missing_reason.body);
    assert!(app.user_row(target.id.as_str()).await.unwrap().suspension.is_none());

    let suspended = app.post(&path, &admin, Some(&json!({ "reason": "chargeback fraud" }))).await;
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    assert_eq!(suspended.body["suspension"]["reason"], "chargeback fraud");

    let cookie = app.get("/usage", &target).await;
    assert_eq!((cookie.status, cookie.error_code()), (401, "UNAUTHENTICATED"));
    assert_eq!(app.get("/auth/session", &target).await.status, 401);
    assert_eq!(with_key().await.status, 401, "the API key stops with the account");
    assert!(app.session_item(&target).await.is_none(), "the durable session is gone");

    // Signing in again, through the IdP, is refused with a clear code and no session.
    let person = Person { sub: target.id.as_str(), email: &target.email, name: "Suspended", email_verified: true };
    let refused = app.sign_in_through_idp(&person, None).await;
    assert_eq!(refused.status, 302, "{}", refused.body);
    assert_eq!(query_param(&refused.location(), "authError").as_deref(), Some("account_suspended"));
    assert_eq!(refused.cookie_pair("sid"), None);

    let lifted = app
        .post(&format!("/admin/users/{}/unsuspend", encoded(&target)), &admin, Some(&json!({ "reason": "resolved" })))
        .await;
    assert_eq!(lifted.status, 200, "{}", lifted.body);
    assert!(lifted.body["suspension"].is_null());
    let back = app.sign_in_through_idp(&person, None).await;
    assert!(back.cookie_pair("sid").is_some(), "sign-in works again: {:?}", back.location());
    assert_eq!(with_key().await.status, 200, "the key works again once the account is back");

    let own_path = format!("/admin/users/{}/suspend", encoded(&admin));
    let own = app.post(&own_path, &admin, Some(&json!({ "reason": "oops" }))).await;
    assert_eq!(own.status, 409, "an admin cannot lock themselves out");
}

#[tokio::test]
async fn a_grant_adds_to_this_months_limit_and_generations_use_it() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, Tier::Free, "admin").await;
    let target = app.sign_in(Tier::Free).await;
    let month = time::OffsetDateTime::now_utc();
    let period = format!("{:04}-{:02}", month.year(), month.month() as u8);
    app.set_user(
        &target.id,
        &[("recordingsThisMonth", AttributeValue::N("10".into())), ("usagePeriod", AttributeValue::S(period))],
    )
    .await;
    assert_eq!(app.post("/tts", &target, Some(&speak())).await.error_code(), "LIMIT_REACHED");

    let path = format!("/admin/users/{}/grant-usage", encoded(&target));
    for bad in [
        json!({ "recordings": 0, "reason": "x ticket" }),
        json!({ "recordings": 2 }),
        json!({ "recordings": 5000, "reason": "ticket" }),
    ] {
        assert_eq!(app.post(&path, &admin, Some(&bad)).await.status, 400, "{bad}");
    }
    let granted = app.post(&path, &admin, Some(&json!({ "recordings": 2, "reason": "outage refund" }))).await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(granted.body["usage"]["limit"], 12);

    let usage = app.get("/usage", &target).await.body;
    assert_eq!((usage["limit"].as_u64(), usage["remaining"].as_u64()), (Some(12), Some(2)), "{usage}");
    for _ in 0..2 {
        let spoken = app.post("/tts", &target, Some(&speak())).await;
        assert_eq!(spoken.status, 201, "{}", spoken.body);
    }
    assert_eq!(app.post("/tts", &target, Some(&speak())).await.error_code(), "LIMIT_REACHED");
    assert_eq!(app.counter(&target).await.0, 12);
}

#[tokio::test]
async fn every_admin_action_is_audited_with_who_what_whom_why_and_the_request() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, Tier::Free, "admin").await;
    let target = app.sign_in(Tier::Free).await;
    let id = encoded(&target);
    app.get(&format!("/admin/users?email={}", target.email), &admin).await;
    app.get(&format!("/admin/users/{id}"), &admin).await;
    app.post(
        &format!("/admin/users/{id}/grant-usage"),
        &admin,
        Some(&json!({ "recordings": 3, "reason": "ticket 42" })),
    )
    .await;
    app.post(&format!("/admin/users/{id}/suspend"), &admin, Some(&json!({ "reason": "abuse report" }))).await;
    app.post(&format!("/admin/users/{id}/unsuspend"), &admin, Some(&json!({ "reason": "appeal upheld" }))).await;
    let stats = app.get("/admin/stats", &admin).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let s = &stats.body;
    let per_tier = s["free"].as_u64().unwrap() + s["basic"].as_u64().unwrap() + s["premium"].as_u64().unwrap();
    assert_eq!(per_tier, s["users"].as_u64().unwrap(), "{s}");
    assert!(s["users"].as_u64().unwrap() >= 2 && s.get("mrrCents").is_some() && s.get("failedPayments").is_some());

    let mine: Vec<Value> =
        audit_entries(&app, &admin).await.into_iter().filter(|e| e["actorId"] == admin.id.as_str()).collect();
    let actions: Vec<&str> = mine.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["stats", "unsuspend", "suspend", "grant-usage", "view", "lookup"], "newest first");
    let grant = &mine[3];
    assert_eq!(grant["targetUserId"], target.id.as_str());
    assert_eq!(grant["reason"], "ticket 42");
    assert_eq!(grant["detail"]["recordings"], 3);
    assert_eq!(grant["actorRole"], "admin");
    assert!(mine.iter().all(|e| !e["requestId"].as_str().unwrap().is_empty() && e["at"].is_string()));
    assert_eq!(mine[4]["targetUserId"], target.id.as_str(), "a view names whom");
}

#[tokio::test]
async fn the_audit_log_cannot_be_written_through_any_route_or_policy() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, Tier::Free, "admin").await;
    let routes = routes_from_template(&std::fs::read_to_string(TEMPLATE).unwrap()).unwrap();
    let audit: Vec<_> = routes.iter().filter(|r| r.path.starts_with("/admin/audit")).collect();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].method, Method::GET, "the audit log is only ever read through the API");
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let response = send(&app, &admin, &method, "/admin/audit").await;
        assert_eq!(response.status, 404, "{method}");
    }

    // IAM: only the admin function (its actions), the account function (workspace changes) and
    // the voices function (a workspace's shared voices) touch the table, and nothing may change
    // or delete a row.
    let template: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(TEMPLATE).unwrap()).unwrap();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        let text = format!("{:?}", resource["Properties"]["Policies"])
            + &format!("{:?}", resource["Properties"]["PolicyDocument"]);
        if !text.contains("AuditTable") {
            continue;
        }
        let name = name.as_str().unwrap_or_default();
        let writers = ["AdminFunction", "AccountFunction", "VoicesFunction"];
        assert!(writers.contains(&name), "{name} may not reach the audit table");
        for forbidden in ["UpdateItem\"", "DeleteItem\"", "BatchWriteItem"] {
            let statements = resource["Properties"]["Policies"].as_sequence().unwrap();
            for statement in statements.iter().filter_map(|p| p["Statement"].as_sequence()).flatten() {
                let on_audit = format!("{:?}", statement["Resource"]).contains("AuditTable");
                let actions = format!("{:?}", statement["Action"]);
                assert!(!(on_audit && actions.contains(forbidden)), "{forbidden} on the audit table: {actions}");
            }
        }
    }
}

#[tokio::test]
async fn roles_are_granted_by_the_operator_command_only_and_audited() {
    let app = TestApp::spawn().await;
    let app_ref = &app.app;
    let nobody = Email::parse(&format!("{}@example.test", unique("nobody-"))).unwrap();
    let now = app_ref.clock.now();
    assert!(grant_role(&app_ref.users, &app_ref.audit, &nobody, Role::Admin, "ops", now).await.is_err());

    let person = app.sign_in(Tier::Free).await;
    assert_eq!(app.get("/admin/stats", &person).await.status, 403);
    let email = Email::parse(&person.email).unwrap();
    let granted = grant_role(&app_ref.users, &app_ref.audit, &email, Role::Support, "ops", now).await.unwrap();
    assert_eq!(granted, std::slice::from_ref(&person.id));
    assert_eq!(app.get("/admin/stats", &person).await.status, 200, "the next request sees the role");
    assert_eq!(app.get("/admin/audit", &person).await.status, 403, "support reads no audit log");

    // No profile edit can carry a role.
    let edit = app.patch("/user/profile", &person, &json!({ "role": "admin" })).await;
    assert_eq!(edit.status, 400);

    let admin = with_role(&app, Tier::Free, "admin").await;
    let entry = audit_entries(&app, &admin)
        .await
        .into_iter()
        .find(|e| e["action"] == "role-grant" && e["targetUserId"] == person.id.as_str())
        .expect("the grant is audited");
    assert_eq!((entry["actorId"].as_str(), entry["detail"]["role"].as_str()), (Some("operator:ops"), Some("support")));
}

#[tokio::test]
async fn a_removed_admin_is_refused_on_the_very_next_request() {
    let app = TestApp::spawn().await;
    let core = &app.app;
    let person = app.sign_in(Tier::Free).await;
    let email = Email::parse(&person.email).unwrap();
    grant_role(&core.users, &core.audit, &email, Role::Admin, "ops", core.clock.now()).await.unwrap();
    // Served from the cached snapshot from here on.
    for _ in 0..3 {
        assert_eq!(app.get("/admin/audit", &person).await.status, 200);
    }
    grant_role(&core.users, &core.audit, &email, Role::User, "ops", core.clock.now()).await.unwrap();
    assert_eq!(app.get("/admin/audit", &person).await.status, 403, "the removal applies at once");
    let grant = json!({ "recordings": 5, "reason": "goodwill" });
    let path = format!(
        "/admin/users/{}/grant-usage",
        url::form_urlencoded::byte_serialize(person.id.as_str().as_bytes()).collect::<String>()
    );
    assert_eq!(app.post(&path, &person, Some(&grant)).await.status, 403);
}

#[tokio::test]
async fn an_admin_following_a_link_from_another_site_records_nothing() {
    let app = TestApp::spawn().await;
    let admin = with_role(&app, Tier::Free, "admin").await;
    let target = app.sign_in(Tier::Free).await;
    let path = format!("/admin/users/{}", encoded(&target));
    // A top-level navigation from another site: the SameSite=Lax cookie comes along, no header.
    let navigated = app.request(Method::GET, &path, &[("cookie", &admin.cookie())], None).await;
    assert_eq!((navigated.status, navigated.error_code()), (403, "CSRF_FAILED"), "{}", navigated.body);
    let lookup = format!("/admin/users?id={}", encoded(&target));
    let navigated = app.request(Method::GET, &lookup, &[("cookie", &admin.cookie())], None).await;
    assert_eq!(navigated.error_code(), "CSRF_FAILED");
    let recorded = audit_entries(&app, &admin).await;
    assert!(
        !recorded.iter().any(|e| e["targetUserId"] == target.id.as_str()),
        "no lookup recorded in the admin's name: {recorded:?}"
    );
    // The admin area itself sends the header.
    assert_eq!(app.get(&path, &admin).await.status, 200);
}

#[tokio::test]
async fn an_audit_record_is_never_overwritten() {
    let app = TestApp::spawn().await;
    let audit = &app.app.audit;
    let now = app.app.clock.now();
    let entry = |action: &str| voice_core::store::audit::AuditEntry {
        audit_id: voice_core::domain::ids::Ulid::generate(now),
        at: "2026-12-04T00:00:00Z".into(),
        actor_id: unique("auth0|actor-"),
        actor_role: "admin".into(),
        action: action.into(),
        target_user_id: None,
        reason: None,
        request_id: "test".into(),
        detail: json!({}),
    };
    let first = entry("lookup");
    audit.append(&first).await.unwrap();
    let rewrite = voice_core::store::audit::AuditEntry { action: "nothing-happened".into(), ..first.clone() };
    assert!(audit.append(&rewrite).await.is_err(), "a second put under the same id is refused");
}
