//! Uploads whose object has not been seen yet. A row made when an upload URL is issued carries
//! `pendingUpload` and `uploadDeadline` (when the URL expires); the sparse `pending-uploads-index`
//! of its table lists them by deadline, so a sweep finds the ones whose URL expired and either
//! confirms them (the object is there) or abandons them (it never came) and gives the allowance
//! back. Confirming and abandoning are conditional on the marker, so each happens once.

use anyhow::Context;
use aws_sdk_dynamodb::Client;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    domain::{allowance::Allowance, ids::UserId, usage::UsagePeriod},
    store::{
        dynamo::{self, Item, number, string},
        users::{Removed, Units},
    },
};

const INDEX: &str = "pending-uploads-index";
const PENDING: &str = "pending";

/// Marks a new row as waiting for its upload until `deadline` (unix seconds).
pub fn mark(item: &mut Item, deadline: i64) {
    item.insert("pendingUpload".to_owned(), string(PENDING));
    item.insert("uploadDeadline".to_owned(), number(deadline));
}

/// A row whose upload URL has expired, as the index shows it.
#[derive(Debug, Clone)]
pub struct PendingUpload {
    /// The row's key (the table's two key attributes).
    pub key: Item,
    pub s3_key: String,
    pub bytes: u64,
    pub created_at: String,
}

/// The table's rows whose upload URL expired before `before` (unix seconds).
pub async fn due(
    client: &Client,
    table: &str,
    key_names: [&str; 2],
    before: i64,
) -> anyhow::Result<Vec<PendingUpload>> {
    let items =
        dynamo::due_before(client, table, INDEX, ("pendingUpload", PENDING), ("uploadDeadline", before)).await?;
    items
        .into_iter()
        .map(|item| {
            let key = key_names.iter().filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone()))).collect();
            Ok(PendingUpload {
                key,
                s3_key: dynamo::str(&item, "s3Key")?.to_owned(),
                bytes: dynamo::opt_num(&item, "uploadBytes")?.unwrap_or(0),
                created_at: dynamo::str(&item, "createdAt")?.to_owned(),
            })
        })
        .collect()
}

/// The object arrived: the row is an ordinary one now. False if someone else settled it first.
pub async fn confirm(client: &Client, table: &str, key: &Item) -> anyhow::Result<bool> {
    let update = client
        .update_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .update_expression("REMOVE pendingUpload, uploadDeadline")
        .condition_expression("attribute_exists(pendingUpload)");
    Ok(dynamo::conditional_update(update).await.context("confirming an upload")?.is_some())
}

/// The object never came: the row goes, and with it the month's upload (and the bytes) it held,
/// for the one caller whose delete removed it. None if someone else settled it first.
pub async fn abandon(
    client: &Client,
    table: &str,
    pending: &PendingUpload,
) -> anyhow::Result<Option<Removed<PendingUpload>>> {
    let delete = client
        .delete_item()
        .table_name(table)
        .set_key(Some(pending.key.clone()))
        .condition_expression("attribute_exists(pendingUpload)");
    let Some(old) = dynamo::conditional_delete(delete).await.context("removing an abandoned upload")? else {
        return Ok(None);
    };
    let user = UserId::parse(dynamo::str(&old, "userId")?).context("stored userId")?;
    let created = OffsetDateTime::parse(&pending.created_at, &Rfc3339).context("stored createdAt")?;
    let mut units = vec![Units::one(Allowance::Uploads)];
    if pending.bytes > 0 {
        units.push(Units::of(Allowance::StorageBytes, pending.bytes));
    }
    Ok(Some(Removed::new(pending.clone(), user, units, Some(UsagePeriod::containing(created)))))
}
