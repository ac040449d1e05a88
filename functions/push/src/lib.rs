//! The WebSocket API of live updates: `$connect` keeps a connection whose `Origin` is allowed and
//! whose `ticket` (from `POST /push/tickets`) is good; `$disconnect` forgets it. Messages from
//! clients are not taken (`$default` answers 400): updates flow one way.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use voice_core::{
    App,
    flows::push::{Opening, Refused},
};

pub async fn handle(app: &App, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let route = context.route_key.as_deref().unwrap_or_default();
    let Some(connection_id) = context.connection_id.as_deref() else { return answer(400) };
    let Some(push) = voice_core::assemble::push(app) else {
        tracing::warn!(route, "a WebSocket event reached a function with no push configuration");
        return answer(503);
    };
    match route {
        "$connect" => {
            let opening = Opening {
                connection_id,
                origin: event.headers.get("origin").and_then(|v| v.to_str().ok()),
                ticket: event.query_string_parameters.first("ticket"),
            };
            let now = app.clock.now().unix_timestamp();
            match push.connect(&app.users, &app.config.web.allowed_origins, &opening, now).await {
                Ok(Ok(holder)) => {
                    tracing::info!(user_id = %holder.user_id, "connected");
                    answer(200)
                }
                Ok(Err(refused)) => {
                    let why = match refused {
                        Refused::Origin => "origin",
                        Refused::Ticket => "ticket",
                    };
                    tracing::info!(why, "connection refused");
                    answer(refused.status())
                }
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "connecting failed");
                    answer(500)
                }
            }
        }
        "$disconnect" => match push.disconnect(connection_id).await {
            Ok(()) => answer(200),
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "forgetting a connection failed; its TTL will");
                answer(500)
            }
        },
        _ => answer(400),
    }
}

fn answer(status: u16) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response
}
