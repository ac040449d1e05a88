//! `make admin-grant EMAIL=… [ROLE=admin|support|user]`: the operator's way to grant a role (no
//! API route can). Runs against whatever the environment names (the local stack through
//! `local/with-env.sh`); the grant is written to the audit log with the operator as the actor.

use anyhow::Context;
use voice_core::{App, domain::ids::Email, flows::admin::grant_role};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: admin-grant EMAIL [admin|support|user]";
    let email = Email::parse(&args.next().context(usage)?).map_err(|_| anyhow::anyhow!("{usage}: not an email"))?;
    let role = args.next().unwrap_or_else(|| "admin".into()).parse()?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let app = App::from_env().await?;
    let ids = grant_role(&app.users, &app.audit, &email, role, &operator, app.clock.now()).await?;
    for id in ids {
        println!("{id}: role {role}");
    }
    Ok(())
}
