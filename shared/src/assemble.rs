//! Flows put together from the [`App`], for the functions that run them. The flows take their
//! parts explicitly (and may not see the `App`, which the layer rule keeps below them); a flow
//! run by more than one function is assembled here once.

use crate::{
    App,
    flows::{
        billing::Billing, billing_alerts::Notices, erase::Erasure, generate::Generator, overage::Metering, push::Push,
        voices::VoiceRemoval,
    },
};

/// Speech generation (`POST /tts`, `POST /tts/stream`). Waits for the ElevenLabs keys if they
/// are not fetched yet, and for the Stripe key when overage is offered.
pub async fn generator(app: &App) -> anyhow::Result<Generator<'_>> {
    let metering = match &app.config.billing.overage {
        Some(overage) => Some(metering(app, &overage.meter_event).await?),
        None => None,
    };
    Ok(Generator {
        users: &app.users,
        workspaces: &app.workspaces,
        voices: &app.voices,
        recordings: &app.recordings,
        audio: app.audio(),
        accounts: app.elevenlabs().await?,
        gates: &app.gates,
        settings: &app.config.voice,
        usage_events: &app.usage_events,
        api_keys: &app.api_keys,
        metering,
        notices: notices(app),
        account_url: app.config.billing.portal_return_url.as_str(),
        push: push(app),
    })
}

/// Stripe's meter for generations past the allowance (`event_name`). Waits for the Stripe key if
/// it is not fetched yet.
pub async fn metering<'a>(app: &'a App, event_name: &'a str) -> anyhow::Result<Metering<'a>> {
    Ok(Metering { stripe: app.stripe().await?, events: &app.usage_events, event_name })
}

/// Deleting voices (a workspace's library going with it). Waits for the ElevenLabs keys if
/// they are not fetched yet.
pub async fn voice_removal(app: &App) -> anyhow::Result<VoiceRemoval<'_>> {
    Ok(VoiceRemoval {
        users: &app.users,
        workspaces: &app.workspaces,
        voices: &app.voices,
        consent: &app.consent,
        audio: app.audio(),
        accounts: app.elevenlabs().await?,
    })
}

/// Account erasure (`DELETE /account`, and the sweep finishing interrupted ones). Waits for the
/// Stripe and ElevenLabs keys if they are not fetched yet.
pub async fn erasure(app: &App) -> anyhow::Result<Erasure<'_>> {
    Ok(Erasure {
        users: &app.users,
        sessions: &app.sessions,
        recordings: &app.recordings,
        voices: &app.voices,
        subscriptions: &app.subscriptions,
        consent: &app.consent,
        api_keys: &app.api_keys,
        audio: app.audio(),
        stripe: app.stripe().await?,
        accounts: app.elevenlabs().await?,
        usage_events: &app.usage_events,
        workspaces: &app.workspaces,
        push: push(app),
    })
}

/// Syncing subscriptions from Stripe (the webhook, the nightly reconciliation). Waits for the
/// Stripe key if it is not fetched yet.
pub async fn billing(app: &App) -> anyhow::Result<Billing<'_>> {
    Ok(Billing {
        stripe: app.stripe().await?,
        users: &app.users,
        subscriptions: &app.subscriptions,
        settings: &app.config.billing,
        notices: notices(app),
        workspaces: &app.workspaces,
    })
}

/// TEAM: workspaces' seats and their billing.
pub async fn seats(app: &App) -> anyhow::Result<crate::flows::seats::Seats<'_>> {
    Ok(crate::flows::seats::Seats {
        stripe: app.stripe().await?,
        workspaces: &app.workspaces,
        settings: &app.config.billing,
        audit: &app.audit,
    })
}

/// Workspaces: their members, roles and invitations.
pub fn teams(app: &App) -> crate::flows::workspaces::Teams<'_> {
    crate::flows::workspaces::Teams {
        workspaces: &app.workspaces,
        api_keys: &app.api_keys,
        users: &app.users,
        audit: &app.audit,
        mailer: app.mailer(),
        app_url: &app.config.web.app_url,
        push: push(app),
    }
}

/// Live updates; None where no WebSocket API is configured.
pub fn push(app: &App) -> Option<Push<'_>> {
    app.push.as_ref().map(|(connections, gateway)| Push { connections, gateway })
}

/// Billing emails, each sent once.
pub fn notices(app: &App) -> Notices<'_> {
    Notices { mailer: app.mailer(), events: &app.webhook_events, lease: app.config.billing.webhook_lease }
}
