//! Reading and writing DynamoDB attribute maps without a mapping framework.

use std::{collections::HashMap, fmt::Display, str::FromStr};

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::{
    error::SdkError,
    operation::update_item::{UpdateItemError, UpdateItemOutput, builders::UpdateItemFluentBuilder},
    types::AttributeValue,
};

pub type Item = HashMap<String, AttributeValue>;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn opt_str<'i>(item: &'i Item, name: &str) -> Option<&'i str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// A boolean attribute; absent is false.
pub fn flag(item: &Item, name: &str) -> bool {
    item.get(name).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false)
}

pub fn str<'i>(item: &'i Item, name: &str) -> anyhow::Result<&'i str> {
    opt_str(item, name).ok_or_else(|| anyhow!("attribute {name} is missing or not a string"))
}

pub fn opt_num<T: FromStr>(item: &Item, name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    item.get(name)
        .filter(|v| !v.is_null())
        .map(|v| {
            let raw = v.as_n().map_err(|_| anyhow!("attribute {name} is not a number"))?;
            raw.parse().with_context(|| format!("attribute {name} is out of range"))
        })
        .transpose()
}

pub fn num<T: FromStr>(item: &Item, name: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    opt_num(item, name)?.ok_or_else(|| anyhow!("attribute {name} is missing"))
}

/// Sends a conditional update: `None` when only its condition did not hold.
pub async fn conditional_update(update: UpdateItemFluentBuilder) -> anyhow::Result<Option<UpdateItemOutput>> {
    match update.send().await {
        Ok(output) => Ok(Some(output)),
        Err(SdkError::ServiceError(e)) if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) => {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}
