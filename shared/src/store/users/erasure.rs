//! Erasing an account: the `erasing` marker (listed by the sparse `erasing-index`, so an erasure
//! that stopped midway is found and finished), and the end, where the user row is replaced by a
//! minimal tombstone: the SHA-256 of the user id and when, nothing else.

use anyhow::Context;
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};
use sha2::{Digest, Sha256};

use super::{Users, attr};
use crate::{
    domain::ids::{UserId, hex},
    store::dynamo::{self, number, string},
};

const ERASING: &str = "erasing";

impl Users {
    /// Marks the account as being erased (kept if already marked); false if there is no user.
    pub async fn mark_erasing(&self, id: &UserId, now: i64) -> anyhow::Result<bool> {
        self.changing(id, async {
            let update = self
                .update(id)
                .update_expression(
                    "SET erasureState = :erasing, erasureStartedAt = if_not_exists(erasureStartedAt, :now)",
                )
                .condition_expression("attribute_exists(userId)")
                .expression_attribute_values(":erasing", string(ERASING))
                .expression_attribute_values(":now", number(now));
            Ok(dynamo::conditional_update(update).await.context("marking the account for erasure")?.is_some())
        })
        .await
    }

    /// A transaction's check that the person has an account whose erasure has not begun. What
    /// makes someone a member of a workspace carries it, so a membership either commits before
    /// the erasure's mark (and the erasure, which lists memberships after it, removes it) or is
    /// refused.
    pub fn not_erasing(&self, id: &UserId) -> anyhow::Result<TransactWriteItem> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key(attr::USER_ID, string(id.as_str()))
            .condition_expression("attribute_exists(userId) AND attribute_not_exists(erasureState)")
            .build()?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Accounts whose erasure started before `before` (unix seconds) and has not finished.
    pub async fn erasing(&self, before: i64) -> anyhow::Result<Vec<UserId>> {
        let items = dynamo::due_before(
            &self.client,
            &self.table,
            "erasing-index",
            ("erasureState", ERASING),
            ("erasureStartedAt", before),
        )
        .await?;
        items.iter().map(|item| UserId::parse(dynamo::str(item, attr::USER_ID)?).context("stored userId")).collect()
    }

    /// The last step: the tombstone is written, then the user row deleted.
    pub async fn replace_with_tombstone(&self, id: &UserId, now: i64) -> anyhow::Result<()> {
        self.changing(id, async {
            self.client
                .put_item()
                .table_name(&self.table)
                .item(attr::USER_ID, string(tombstone_key(id)))
                .item("erasedAt", number(now))
                .send()
                .await
                .context("writing the erasure tombstone")?;
            self.client
                .delete_item()
                .table_name(&self.table)
                .key(attr::USER_ID, string(id.as_str()))
                .send()
                .await
                .context("deleting the user row")?;
            Ok(())
        })
        .await
    }

    /// Whether the account with this id was erased.
    pub async fn was_erased(&self, id: &UserId) -> anyhow::Result<bool> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::USER_ID, string(tombstone_key(id)))
            .consistent_read(true)
            .send()
            .await
            .context("reading the erasure tombstone")?;
        Ok(output.item.is_some())
    }
}

/// The tombstone's key (the hash of the user id, so the tombstone does not hold the id itself).
fn tombstone_key(id: &UserId) -> String {
    format!("erased#{}", hex(&Sha256::digest(id.as_str().as_bytes())))
}
