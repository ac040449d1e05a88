//! `POST /billing/webhook`: Stripe's signed events. Verified over the raw body, recorded once by
//! event id, then applied by syncing the subscription from Stripe. A transient failure answers
//! 5xx (and releases the event) so that Stripe retries.

use lambda_http::{Body, Request, Response, http::Method};
use shared::{
    ApiError, App,
    billing::{
        signature,
        sync::{ProcessedEvents, apply_event},
        types::Event,
    },
    http::{self, HttpResult},
};

/// Stripe's events are far smaller; anything larger is not from Stripe.
const MAX_BODY: usize = 256 * 1024;

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let result = match (req.method(), req.uri().path()) {
        (&Method::POST, "/billing/webhook") => webhook(app, &req).await,
        _ => Err(http::no_route(&req)),
    };
    http::finish(&request_id, result)
}

#[tracing::instrument(skip_all)]
async fn webhook(app: &App, req: &Request) -> HttpResult {
    let payload: &[u8] = req.body().as_ref();
    if payload.len() > MAX_BODY {
        return Err(ApiError::validation("body", format!("larger than {MAX_BODY} bytes")));
    }
    let secrets = app.stripe_webhook_secrets().await?;
    let now = app.clock.now().unix_timestamp();
    signature::verify(payload, http::header(req, "stripe-signature"), secrets, now)
        .map_err(|e| ApiError::validation("Stripe-Signature", e.to_string()))?;
    let event: Event = serde_json::from_slice(payload).map_err(|e| ApiError::validation("body", e.to_string()))?;

    let processed = ProcessedEvents { client: &app.dynamodb, table: &app.config.tables.webhook_events };
    if !processed.claim(&event, now).await? {
        tracing::info!(event_id = event.id, kind = event.kind, "duplicate delivery ignored");
        return http::ok(&serde_json::json!({ "received": true, "duplicate": true }));
    }
    let stripe = app.stripe().await?;
    match apply_event(app, stripe, &event).await {
        Ok(applied) => {
            tracing::info!(event_id = event.id, kind = event.kind, ?applied, "event applied");
            http::ok(&serde_json::json!({ "received": true, "duplicate": false, "applied": applied }))
        }
        Err(error) => {
            if let Err(release) = processed.release(&event).await {
                tracing::error!(error = format!("{release:#}"), "could not release the event for a retry");
            }
            Err(ApiError::Upstream { service: "Stripe", temporary: true, source: error })
        }
    }
}
