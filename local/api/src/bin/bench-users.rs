//! `make bench` and `tests/e2e.sh` helper: signs in `N` PREMIUM users on the local stack (the same
//! library call the sign-in callback makes) and prints one JSON line per user: `{userId, email,
//! cookie, csrf}`. With `--admin`, they also get the admin role (for the admin function's figures
//! and schemathesis' admin routes).

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use voice_core::{
    App,
    domain::{
        ids::{Email, UserId, random_hex},
        roles::Role,
        session::{COOKIE_NAME, ClientInfo},
        tiers::Tier,
        user::Profile,
    },
    flows::signin::open_session,
    store::aws,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().context("usage: bench-users N [--admin]")?.parse()?;
    let admin = args.next().as_deref() == Some("--admin");
    let app = App::from_env().await?;
    // The tier is Stripe's to set; the bench user gets it directly, as the tests' harness does.
    let dynamodb = aws::dynamodb(&aws::sdk_config(&app.config.aws));
    let client = ClientInfo { ip_address: Some("127.0.0.1".into()), user_agent: Some("bench".into()) };
    for _ in 0..count {
        let id = UserId::parse(format!("auth0|bench-{}", random_hex::<8>())).expect("a valid id");
        let email = Email::parse(&format!("bench-{}@example.test", random_hex::<6>())).expect("a valid email");
        let profile = Profile { user_id: id.clone(), email: email.clone(), name: Some("Bench".into()) };
        let signed = open_session(&app.users, &app.sessions, &profile, &client, None, app.clock.now()).await?;
        dynamodb
            .update_item()
            .table_name(&app.config.tables.users)
            .key("userId", AttributeValue::S(id.to_string()))
            .update_expression("SET subscriptionTier = :premium")
            .expression_attribute_values(":premium", AttributeValue::S(Tier::Premium.as_str().into()))
            .send()
            .await
            .context("making the user PREMIUM")?;
        // Written past the store: the hot path's snapshot of the row must go too.
        app.users.snapshots().forget(&id).await;
        if admin {
            app.users.set_role(&id, Role::Admin).await?;
        }
        let line = serde_json::json!({
            "userId": id.as_str(),
            "email": email.as_str(),
            "cookie": format!("{COOKIE_NAME}={}", signed.token.expose()),
            "csrf": signed.token.csrf_token(),
        });
        println!("{line}");
    }
    Ok(())
}
