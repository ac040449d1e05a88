//! Email to users through Amazon SES: templated messages (the templates are resources in
//! template.yaml), sent from the one configured sender identity.

use anyhow::Context;
use serde::Serialize;

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

pub struct Mailer {
    ses: aws_sdk_ses::Client,
    sender: String,
    payment_failed_template: String,
}

impl Mailer {
    pub fn new(ses: aws_sdk_ses::Client, sender: String, payment_failed_template: String) -> Self {
        Self { ses, sender, payment_failed_template }
    }

    /// Tells `to` that a payment failed; the SES message id.
    pub async fn payment_failed(&self, to: &str, data: &PaymentFailed<'_>) -> anyhow::Result<String> {
        let destination = aws_sdk_ses::types::Destination::builder().to_addresses(to).build();
        let output = self
            .ses
            .send_templated_email()
            .source(&self.sender)
            .destination(destination)
            .template(&self.payment_failed_template)
            .template_data(serde_json::to_string(data).expect("template data serializes"))
            .send()
            .await
            .context("sending the payment-failed email")?;
        Ok(output.message_id)
    }
}
