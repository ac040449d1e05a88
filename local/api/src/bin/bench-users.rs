//! `make bench` and `tests/e2e.sh` helper: signs in `N` PREMIUM users on the local stack (the same
//! library call the sign-in callback makes) and prints one JSON line per user: `{userId, email,
//! cookie, csrf}`. With `--admin`, they also get the admin role (for the admin function's figures
//! and schemathesis' admin routes); with `--tier FREE|BASIC`, that tier instead.

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
    let usage = "usage: bench-users N [--admin] [--tier FREE|BASIC|PREMIUM]";
    let count: usize = args.next().context(usage)?.parse()?;
    let (mut admin, mut tier) = (false, Tier::Premium);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--admin" => admin = true,
            "--tier" => {
                let name = args.next().context(usage)?;
                tier = *Tier::ALL.iter().find(|t| t.as_str() == name).with_context(|| format!("no tier {name:?}"))?;
            }
            _ => anyhow::bail!(usage),
        }
    }
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
            .update_expression("SET subscriptionTier = :tier")
            .expression_attribute_values(":tier", AttributeValue::S(tier.as_str().into()))
            .send()
            .await
            .context("setting the user's tier")?;
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
