//! The caller's billing account: `POST /billing/portal` (a Stripe Billing Portal session),
//! `POST /billing/subscription` (a plan change in place) and `GET /billing/invoices` (their
//! invoices, from Stripe). The customer always comes from the session, never from the request.

use serde::Serialize;
use voice_core::{
    ApiError,
    domain::plans::PlanRequest,
    flows::{customers::ensure_customer, plan_change::PlanChanges},
    http::{Caller, Ctx, HttpResult, Route, json_body, ok, page_limit, query},
    route,
    upstream::stripe::types::Invoice,
};

pub const ROUTES: &[Route] = &[
    route!("POST /billing/portal", user: portal, rate_limit: Billing),
    route!("POST /billing/subscription", user: change_plan, rate_limit: Billing, body: PlanRequest),
    route!("GET /billing/invoices", user: invoices, rate_limit: Billing),
];

const DEFAULT_PAGE: u32 = 10;
const MAX_PAGE: u32 = 100;

#[tracing::instrument(skip_all)]
async fn portal(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let stripe = app.stripe().await?;
    let customer = ensure_customer(&app.users, stripe, &caller.user).await?;
    let session = stripe.create_portal_session(&customer, app.config.billing.portal_return_url.as_str()).await?;
    ok(&serde_json::json!({ "portalUrl": session.url }))
}

/// Up now with proration, down at the period's end (see `flows::plan_change`); the tier itself
/// follows Stripe's webhook.
#[tracing::instrument(skip_all)]
async fn change_plan(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let app = ctx.app;
    let body: PlanRequest = json_body(ctx.req, 1024)?;
    let price = body.price(&app.config.billing)?;
    let changes = PlanChanges { stripe: app.stripe().await?, settings: &app.config.billing };
    ok(&changes.change(&caller.user, price, app.clock.now()).await?)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InvoiceView {
    invoice_id: String,
    number: Option<String>,
    amount_due: i64,
    amount_paid: i64,
    currency: String,
    status: Option<String>,
    period_start: Option<i64>,
    period_end: Option<i64>,
    created: Option<i64>,
    hosted_invoice_url: Option<String>,
    invoice_pdf: Option<String>,
    lines: Vec<LineView>,
}

/// A line of an invoice: the plan's period, a proration, or overage usage (`usage` true: its
/// quantity is the generations past the allowance).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LineView {
    description: Option<String>,
    quantity: Option<i64>,
    amount: i64,
    period_start: Option<i64>,
    period_end: Option<i64>,
    usage: bool,
}

impl InvoiceView {
    fn new(invoice: Invoice, metered_price: Option<&str>) -> Self {
        let created = invoice.created();
        let lines = invoice
            .lines
            .data
            .into_iter()
            .map(|line| LineView {
                usage: metered_price.is_some_and(|price| line.price_id() == Some(price)),
                description: line.description,
                quantity: line.quantity,
                amount: line.amount,
                period_start: line.period.as_ref().map(|p| p.start),
                period_end: line.period.as_ref().map(|p| p.end),
            })
            .collect();
        Self {
            lines,
            created,
            invoice_id: invoice.id,
            number: invoice.number,
            amount_due: invoice.amount_due,
            amount_paid: invoice.amount_paid,
            currency: invoice.currency,
            status: invoice.status,
            period_start: invoice.period_start,
            period_end: invoice.period_end,
            hosted_invoice_url: invoice.hosted_invoice_url,
            invoice_pdf: invoice.invoice_pdf,
        }
    }
}

/// A cursor is the last invoice id of the previous page, as Stripe writes them.
fn invoice_cursor(raw: &str) -> Option<&str> {
    let rest = raw.strip_prefix("in_")?;
    (!rest.is_empty() && rest.len() <= 250 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(raw)
}

#[tracing::instrument(skip_all)]
async fn invoices(ctx: Ctx<'_>, caller: Caller) -> HttpResult {
    let (app, req) = (ctx.app, ctx.req);
    let limit = page_limit(req, DEFAULT_PAGE, MAX_PAGE)?;
    let cursor = query(req, "cursor")
        .map(|raw| invoice_cursor(raw).ok_or_else(|| ApiError::validation("cursor", "is not a cursor from this API")))
        .transpose()?;
    // A user without a Stripe customer has never been billed.
    let Some(customer) = &caller.user.stripe_customer_id else {
        return ok(&serde_json::json!({ "invoices": [], "nextCursor": null }));
    };
    let page = app.stripe().await?.invoices(customer, limit, cursor).await?;
    let next = if page.has_more { page.data.last().map(|i| i.id.clone()) } else { None };
    let metered = app.config.billing.overage.as_ref().map(|o| o.price.as_str());
    let invoices: Vec<InvoiceView> = page.data.into_iter().map(|invoice| InvoiceView::new(invoice, metered)).collect();
    ok(&serde_json::json!({ "invoices": invoices, "nextCursor": next }))
}

#[cfg(test)]
mod tests {
    use super::invoice_cursor;

    #[test]
    fn cursors_are_stripe_invoice_ids_only() {
        assert_eq!(invoice_cursor("in_1AbC_9"), Some("in_1AbC_9"));
        for bad in ["", "in_", "sub_123", "in_a&customer=cus_x", "in_é", &format!("in_{}", "a".repeat(251))] {
            assert_eq!(invoice_cursor(bad), None, "{bad}");
        }
    }
}
