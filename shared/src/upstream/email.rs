//! Email to users through Amazon SES: templated messages (the templates are resources in
//! template.yaml), sent from the one configured sender identity.

use anyhow::Context;
use serde::Serialize;

use crate::config::BillingEmail;

/// What the payment-failed template fills in.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFailed<'a> {
    pub invoice: &'a str,
    /// e.g. "9.99 USD".
    pub amount: String,
    /// Where the user updates their card.
    pub account_url: &'a str,
}

/// What the subscription-refunded template fills in.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionRefunded<'a> {
    /// e.g. "9.99 USD".
    pub amount: String,
    /// Where the user changes the plan of the subscription they kept.
    pub account_url: &'a str,
}

/// What the usage-alert template fills in.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageAlertEmail<'a> {
    /// 80 or 100.
    pub percent: u8,
    /// What is that far used: e.g. "the 100 recordings of your BASIC plan this month".
    pub what: String,
    /// What happens at 100 %: e.g. "generations stop until next month".
    pub then: &'a str,
    /// Where the user raises the cap or changes the plan.
    pub account_url: &'a str,
}

/// What the workspace-invitation template fills in.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceInvitationEmail<'a> {
    pub workspace: &'a str,
    /// Who invites: their name, else their address.
    pub inviter: &'a str,
    pub role: &'a str,
    /// The single-use link (the token in its fragment).
    pub accept_url: &'a str,
    /// The last day it works, e.g. "2026-12-12".
    pub expires: String,
}

pub struct Mailer {
    ses: aws_sdk_ses::Client,
    settings: BillingEmail,
}

impl Mailer {
    pub fn new(ses: aws_sdk_ses::Client, settings: BillingEmail) -> Self {
        Self { ses, settings }
    }

    /// Tells `to` that a payment failed; the SES message id.
    pub async fn payment_failed(&self, to: &str, data: &PaymentFailed<'_>) -> anyhow::Result<String> {
        self.send(to, &self.settings.payment_failed_template, data).await.context("sending the payment-failed email")
    }

    /// Tells `to` that a second subscription was cancelled and refunded; the SES message id.
    pub async fn subscription_refunded(&self, to: &str, data: &SubscriptionRefunded<'_>) -> anyhow::Result<String> {
        let template = &self.settings.subscription_refunded_template;
        self.send(to, template, data).await.context("sending the subscription-refunded email")
    }

    /// Tells `to` how close the month's usage is to a wall; the SES message id.
    pub async fn usage_alert(&self, to: &str, data: &UsageAlertEmail<'_>) -> anyhow::Result<String> {
        let template = &self.settings.usage_alert_template;
        self.send(to, template, data).await.context("sending the usage-alert email")
    }

    /// Invites `to` into a workspace; the SES message id.
    pub async fn workspace_invitation(&self, to: &str, data: &WorkspaceInvitationEmail<'_>) -> anyhow::Result<String> {
        let template = &self.settings.workspace_invitation_template;
        self.send(to, template, data).await.context("sending the workspace invitation")
    }

    async fn send(&self, to: &str, template: &str, data: &impl Serialize) -> anyhow::Result<String> {
        let destination = aws_sdk_ses::types::Destination::builder().to_addresses(to).build();
        let output = self
            .ses
            .send_templated_email()
            .source(&self.settings.sender)
            .destination(destination)
            .template(template)
            .template_data(serde_json::to_string(data).expect("template data serializes"))
            .send()
            .await?;
        Ok(output.message_id)
    }
}
