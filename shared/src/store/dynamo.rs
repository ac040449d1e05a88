//! Reading and writing DynamoDB attribute maps without a mapping framework.

use std::{collections::HashMap, fmt::Display, str::FromStr};

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::{
    error::SdkError,
    operation::{
        delete_item::{DeleteItemError, builders::DeleteItemFluentBuilder},
        query::builders::QueryFluentBuilder,
        update_item::{UpdateItemError, UpdateItemOutput, builders::UpdateItemFluentBuilder},
    },
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};

pub type Item = HashMap<String, AttributeValue>;

/// A string attribute value.
pub fn string(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub fn number(value: impl Display) -> AttributeValue {
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
    Ok(update_or_current(update).await?.ok())
}

/// Sends a conditional update; when only its condition did not hold, the item as it was (None:
/// there is no such item) instead. The one place DynamoDB's refused condition is recognised for
/// updates.
pub async fn update_or_current(
    update: UpdateItemFluentBuilder,
) -> anyhow::Result<Result<UpdateItemOutput, Option<Item>>> {
    let sent =
        update.return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld).send().await;
    match sent {
        Ok(output) => Ok(Ok(output)),
        Err(SdkError::ServiceError(e)) => match e.into_err() {
            UpdateItemError::ConditionalCheckFailedException(failed) => Ok(Err(failed.item)),
            other => Err(other.into()),
        },
        Err(error) => Err(error.into()),
    }
}

/// Sends a conditional delete: the item it removed, or None when its condition did not hold (or
/// there was nothing to remove). Only the request that gets the item back removed it, so only
/// that one may give back what the item held.
pub async fn conditional_delete(delete: DeleteItemFluentBuilder) -> anyhow::Result<Option<Item>> {
    match delete.return_values(ReturnValue::AllOld).send().await {
        Ok(output) => Ok(output.attributes.filter(|old| !old.is_empty())),
        Err(SdkError::ServiceError(e)) if matches!(e.err(), DeleteItemError::ConditionalCheckFailedException(_)) => {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// A query of one user's items (`userId = :user`) in `table`, or in its `index`: refine it
/// (filter, projection, paging) and send it.
pub fn user_query(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    index: Option<&str>,
    user: &crate::domain::ids::UserId,
) -> QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .set_index_name(index.map(String::from))
        .key_condition_expression("userId = :user")
        .expression_attribute_values(":user", string(user.as_str()))
}

/// Every item `query` finds, page by page (`what` names it in an error). Each page's request is
/// boxed: callers deep in a handler (the sweep's erasure) would otherwise carry its whole future
/// in theirs, past the compiler's query depth in a debug build.
pub async fn all_pages(query: QueryFluentBuilder, what: &str) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let send = Box::pin(query.clone().set_exclusive_start_key(start).send());
        let page = send.await.with_context(|| format!("listing {what}"))?;
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// Every item of a sparse index whose partition is the marker `(name, value)` and whose sort key
/// `due` is before `before`, page by page: the rows a sweep has to finish (pending uploads,
/// retags, erasures).
pub async fn due_before(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    index: &str,
    (name, value): (&str, &str),
    (due, before): (&str, i64),
) -> anyhow::Result<Vec<Item>> {
    let query = client
        .query()
        .table_name(table)
        .index_name(index)
        .key_condition_expression("#marker = :marker AND #due < :before")
        .expression_attribute_names("#marker", name)
        .expression_attribute_names("#due", due)
        .expression_attribute_values(":marker", string(value))
        .expression_attribute_values(":before", number(before));
    all_pages(query, &format!("{index} of {table}")).await
}

/// Deletes every item of one partition (`pk_name = pk`), sort key `sk_name`: queried page by
/// page, deleted 25 at a time, unprocessed items retried. The count deleted.
pub async fn delete_partition(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    (pk_name, pk): (&str, &str),
    sk_name: &str,
) -> anyhow::Result<usize> {
    use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

    let mut deleted = 0;
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", pk_name)
            .expression_attribute_names("#sk", sk_name)
            .projection_expression("#pk, #sk")
            .expression_attribute_values(":pk", string(pk))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .with_context(|| format!("listing {table}"))?;
        for chunk in page.items.unwrap_or_default().chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder().set_key(Some(key.clone())).build().expect("a key is set");
                    WriteRequest::builder().delete_request(delete).build()
                })
                .collect();
            deleted += requests.len();
            for _ in 0..5 {
                let output = client
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .with_context(|| format!("deleting from {table}"))?;
                requests = output.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if !requests.is_empty() {
                anyhow::bail!("{} deletes from {table} stayed unprocessed", requests.len());
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(deleted);
        }
    }
}
