//! A workspace's pooled allowance: while its TEAM is live, generations made in the workspace
//! count on one pool (100 a month per billed seat) instead of each member's own plan, and the
//! pool shows what each member took of it.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{TestApp, User, VOICE, unique};
use serde_json::{Value, json};
use time::OffsetDateTime;
use voice_core::{
    domain::{allowance::Allowance, tiers::Tier, usage::UsagePeriod, workspaces::POOL_RECORDINGS_PER_SEAT},
    store::users::{Counters, Refused, Units},
};

use crate::{
    seats::buy_team,
    workspaces::{join, new_workspace},
};

fn speak(workspace: Option<&str>) -> Value {
    json!({ "voiceId": VOICE, "text": format!("Pooled {}.", unique("")), "workspaceId": workspace })
}

async fn usage(app: &TestApp, who: &User, workspace: &str) -> Value {
    let read = app.get(&format!("/workspaces/{workspace}/usage"), who).await;
    assert_eq!(read.status, 200, "{}", read.body);
    read.body
}

fn share(usage: &Value, who: &User) -> u64 {
    let members = usage["members"].as_array().unwrap();
    let member = members.iter().find(|m| m["userId"] == who.id.as_str()).expect("the member is listed");
    member["recordings"].as_u64().unwrap()
}

/// A workspace of `owner` (BASIC) and `member` (FREE), with TEAM live and synced.
async fn team_workspace(app: &TestApp, owner: &User, member: &User) -> String {
    let workspace = new_workspace(app, owner, "Pool").await;
    join(app, owner, &workspace, member, "MEMBER").await;
    let subscription = buy_team(app, owner, &workspace, 5).await;
    let billing = voice_core::assemble::billing(&app.app).await.unwrap();
    billing.sync_subscription(&subscription, OffsetDateTime::now_utc()).await.unwrap();
    workspace
}

/// Sets the pool's count this month, as if `used` generations had been made.
async fn pool_used(app: &TestApp, workspace: &str, used: u64) {
    let period = UsagePeriod::containing(OffsetDateTime::now_utc()).to_string();
    app.dynamodb
        .update_item()
        .table_name(&app.app.config.tables.workspaces)
        .key("workspaceId", AttributeValue::S(workspace.to_owned()))
        .key("item", AttributeValue::S("workspace".to_owned()))
        .update_expression("SET recordingsThisMonth = :used, usagePeriod = :period")
        .expression_attribute_values(":used", AttributeValue::N(used.to_string()))
        .expression_attribute_values(":period", AttributeValue::S(period))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn with_team_a_workspace_speaks_on_one_pool_shown_per_member() {
    let app = TestApp::spawn().await;
    let (owner, member) = (app.sign_in(Tier::Basic).await, app.sign_in(Tier::Free).await);
    let workspace = new_workspace(&app, &owner, "Before TEAM").await;
    join(&app, &owner, &workspace, &member, "MEMBER").await;
    // Without TEAM there is no pool: the member speaks on their own plan.
    let own = app.post("/tts", &member, Some(&speak(Some(&workspace)))).await;
    assert_eq!(own.status, 201, "{}", own.body);
    assert_eq!((&own.body["usage"]["used"], &own.body["pool"]), (&json!(1), &Value::Null));
    assert_eq!(usage(&app, &owner, &workspace).await["limit"], Value::Null);

    let workspace = team_workspace(&app, &owner, &member).await;
    let team = app.get(&format!("/workspaces/{workspace}"), &owner).await.body;
    let limit = u64::from(POOL_RECORDINGS_PER_SEAT) * team["team"]["billedSeats"].as_u64().unwrap();
    assert_eq!(usage(&app, &member, &workspace).await["limit"], limit, "100 a month per billed seat");

    let pooled = app.post("/tts", &member, Some(&speak(Some(&workspace)))).await;
    assert_eq!(pooled.status, 201, "{}", pooled.body);
    assert_eq!(
        pooled.body["pool"],
        json!({ "workspaceId": workspace, "period": pooled.body["pool"]["period"], "used": 1, "limit": limit })
    );
    assert_eq!(pooled.body["usage"]["used"], 1, "the member's own plan is untouched (its one earlier use)");
    assert_eq!(app.post("/tts", &owner, Some(&speak(Some(&workspace)))).await.body["pool"]["used"], 2);
    // Streamed, the same pool.
    let mut streamed = app.stream("/tts/stream", &owner, &speak(Some(&workspace))).await;
    assert_eq!(streamed.status, 200);
    while streamed.next_chunk().await.expect("the stream ends cleanly").is_some() {}
    // Outside the workspace, their own plan as ever.
    let personal = app.post("/tts", &member, Some(&speak(None))).await;
    assert_eq!((&personal.body["usage"]["used"], &personal.body["pool"]), (&json!(2), &Value::Null));

    let shown = usage(&app, &owner, &workspace).await;
    assert_eq!(shown["recordings"], 3, "{shown}");
    assert_eq!((share(&shown, &member), share(&shown, &owner)), (1, 2), "{shown}");
    assert!(shown["characters"].as_u64().unwrap() > 0, "{shown}");
    let outsider = app.sign_in(Tier::Premium).await;
    assert_eq!(app.get(&format!("/workspaces/{workspace}/usage"), &outsider).await.status, 404);
}

#[tokio::test]
async fn concurrent_generations_under_concurrency_never_overspend_the_pool() {
    let app = TestApp::spawn().await;
    let (owner, member) = (app.sign_in(Tier::Basic).await, app.sign_in(Tier::Free).await);
    let workspace = team_workspace(&app, &owner, &member).await;
    let limit = usage(&app, &owner, &workspace).await["limit"].as_u64().unwrap();
    pool_used(&app, &workspace, limit - 3).await;

    let bodies: Vec<Value> = (0..8).map(|_| speak(Some(&workspace))).collect();
    let requests = bodies.iter().map(|body| app.post("/tts", &member, Some(body)));
    let answers = futures_util::future::join_all(requests).await;
    let made = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(made, 3, "{:?}", answers.iter().map(|a| (a.status, a.body.to_string())).collect::<Vec<_>>());
    for refused in answers.iter().filter(|a| a.status != 201) {
        assert_eq!(refused.error_code(), "LIMIT_REACHED", "{}", refused.body);
        assert!(refused.body.to_string().contains("TEAM pool"), "{}", refused.body);
    }
    let shown = usage(&app, &owner, &workspace).await;
    assert_eq!(shown["recordings"], limit, "{shown}");
    assert_eq!(share(&shown, &member), 3, "a refused generation leaves no share: {shown}");
    assert_eq!(app.get("/usage", &member).await.body["used"], 0, "nothing on the member's own plan");
    assert_eq!(voice_core::store::users::allowance::forgotten(), 0, "every reservation was settled");
}

#[tokio::test]
async fn a_member_removed_while_generating_is_told_the_workspace_is_not_theirs_and_nothing_is_lost() {
    let app = TestApp::spawn().await;
    let (owner, member) = (app.sign_in(Tier::Basic).await, app.sign_in(Tier::Free).await);
    let workspace = team_workspace(&app, &owner, &member).await;
    let removal = format!("/workspaces/{workspace}/members/{}", member.id);

    // Their generations race their removal: each is made, or refused as a stranger's would be.
    let bodies: Vec<Value> = (0..6).map(|_| speak(Some(&workspace))).collect();
    let generations = futures_util::future::join_all(bodies.iter().map(|body| app.post("/tts", &member, Some(body))));
    let (answers, removed) = tokio::join!(generations, app.delete(&removal, &owner));
    assert_eq!(removed.status, 200, "{}", removed.body);
    for answer in &answers {
        assert!(
            answer.status == 201 || (answer.status == 404 && answer.error_code() == "NOT_FOUND"),
            "{} {}",
            answer.status,
            answer.body
        );
    }
    let made = answers.iter().filter(|a| a.status == 201).count() as u64;
    assert_eq!(usage(&app, &owner, &workspace).await["recordings"], made, "the pool counts what was made");
    assert_eq!(voice_core::store::users::allowance::forgotten(), 0, "every reservation was settled");

    // The window itself, held open: the membership read before the removal, the pool taken after.
    let id = voice_core::domain::ids::Ulid::parse(&workspace).unwrap();
    let period = UsagePeriod::containing(OffsetDateTime::now_utc());
    let units = [Units::one(Allowance::Recordings)];
    let taken = app.app.users.reserve_pooled(&id, &member.id, Tier::Free, 1_000, &units, period).await;
    assert!(matches!(taken, Err(Refused::Gone(Counters::Share(..)))), "{taken:?}");
    let after = app.post("/tts", &member, Some(&speak(Some(&workspace)))).await;
    assert_eq!((after.status, after.error_code()), (404, "NOT_FOUND"), "{}", after.body);
    assert_eq!(usage(&app, &owner, &workspace).await["recordings"], made, "a refused one takes nothing");
}
