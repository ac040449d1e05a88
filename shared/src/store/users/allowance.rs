//! Every per-user allowance is a counter on the user row, and this module is the only one that
//! moves them: ONE conditional write takes units ("this month, and room below each limit: add"),
//! and its give-back is conditional the same way. A workspace with TEAM has the same counters on
//! its own row (its pooled allowance), and each member their share of it on their member row:
//! the same writes move them ([`Counters`]).
//!
//! - **Taking** gives a [`Reservation`]: the caller commits it (the units now belong to what was
//!   made) or gives it back (the work failed). Dropping it unsettled is logged and counted
//!   ([`forgotten`]), so a test can fail on it; `#[must_use]` catches most at compile time.
//! - **Giving back what a thing held** (a deleted clone's slot, a revoked key's place, a removed
//!   recording's bytes) needs a [`Removed`]: only a conditional write that removed or transitioned
//!   the thing in THIS request makes one. N concurrent deletes of one thing make one `Removed`,
//!   so the units come back exactly once.
//! - **A new month**: a monthly counter's write is conditioned on its month; only when that
//!   fails is the row (as it was, from the failed write) looked at, and a second conditional
//!   write starts the month (archiving the finished one's figures for the usage history). Two
//!   such writes racing at the boundary: one wins, the other retries as an increment, so no unit
//!   is lost or counted twice.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use aws_sdk_dynamodb::{
    operation::update_item::builders::UpdateItemFluentBuilder,
    types::{AttributeValue, ReturnValue},
};

use super::{Users, attr};
use crate::{
    clock::Deadline,
    domain::{
        allowance::{Allowance, Refusal},
        ids::UserId,
        tiers::Tier,
        usage::UsagePeriod,
        workspaces::WorkspaceId,
    },
    error::ApiError,
    store::dynamo::{self, Item, number, string},
};

fn counter(allowance: Allowance) -> &'static str {
    match allowance {
        Allowance::Recordings => attr::COUNTER,
        Allowance::Characters => attr::CHARACTERS,
        Allowance::Uploads => attr::UPLOADS,
        Allowance::StorageBytes => attr::STORAGE,
        Allowance::Favourites => attr::FAVOURITES,
        Allowance::CloneSlots => attr::CLONES,
        Allowance::ApiKeys => attr::API_KEYS,
    }
}

/// The attribute holding the month a monthly counter counts.
fn month_of(allowance: Allowance) -> Option<&'static str> {
    match allowance {
        Allowance::Recordings | Allowance::Characters => Some(attr::PERIOD),
        Allowance::Uploads => Some(attr::UPLOAD_PERIOD),
        _ => None,
    }
}

/// Whose counters a take or a give-back moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counters {
    /// A person's allowances, on their user row.
    Person(UserId),
    /// A workspace's pooled allowance, on its workspace row.
    Pool(WorkspaceId),
    /// A member's share of that pool (unbounded: what the pool shows per member), on their
    /// member row; it is gone when they are.
    Share(WorkspaceId, UserId),
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Person(user) => write!(f, "user {user}"),
            Self::Pool(workspace) => write!(f, "workspace {workspace}"),
            Self::Share(workspace, user) => write!(f, "member {user} of workspace {workspace}"),
        }
    }
}

/// The workspaces table, where a workspace's pool and its members' shares are counted.
#[derive(Clone)]
pub struct PoolRows {
    pub(super) client: aws_sdk_dynamodb::Client,
    pub(super) table: String,
}

impl PoolRows {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }

    /// An update of the workspace's row, or of `member`'s row in it.
    fn update(&self, workspace: &WorkspaceId, member: Option<&UserId>) -> UpdateItemFluentBuilder {
        let key = crate::store::workspace_rows::row_key(workspace, member);
        self.client.update_item().table_name(&self.table).set_key(Some(key))
    }
}

/// A counter's value in `period` on a row as read: 0 when the row counts another month.
pub(in crate::store) fn counted_in(row: &Item, allowance: Allowance, period: UsagePeriod) -> anyhow::Result<u64> {
    let month = month_of(allowance).and_then(|m| dynamo::opt_str(row, m));
    if month_of(allowance).is_some() && month != Some(period.to_string().as_str()) {
        return Ok(0);
    }
    Ok(dynamo::opt_num(row, counter(allowance))?.unwrap_or(0))
}

/// One allowance's part of a take or a give-back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    pub allowance: Allowance,
    pub amount: u64,
}

impl Units {
    pub fn one(allowance: Allowance) -> Self {
        Self { allowance, amount: 1 }
    }

    pub fn of(allowance: Allowance, amount: u64) -> Self {
        Self { allowance, amount }
    }
}

/// Why units could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Limit(Refusal),
    /// The row holding the counters is gone: a person erased, a member removed, a workspace
    /// deleted, since the caller read it.
    #[error("there is no {0}")]
    Gone(Counters),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Limit(refusal) => ApiError::LimitReached(refusal.to_string()),
            gone @ Refused::Gone(_) => ApiError::Internal(gone.into()),
            Refused::Store(source) => ApiError::Internal(source),
        }
    }
}

static FORGOTTEN: AtomicUsize = AtomicUsize::new(0);

/// How many reservations (or removals' give-backs) were dropped unsettled in this process: each
/// is a unit lost until the next month, or for good. Tests assert it stays zero.
pub fn forgotten() -> usize {
    FORGOTTEN.load(Ordering::SeqCst)
}

/// Units that must be settled: counted and logged if dropped unsettled.
struct Unsettled {
    counters: Counters,
    units: Vec<Units>,
    settled: bool,
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        if !self.settled {
            FORGOTTEN.fetch_add(1, Ordering::SeqCst);
            tracing::error!(counters = %self.counters, units = ?self.units, "allowance units dropped without being settled");
        }
    }
}

/// Units taken for work under way: [`Reservation::commit`] them when the work is done, or
/// [`Reservation::give_back`] when it failed.
#[must_use = "a reservation is committed or given back"]
pub struct Reservation<'a> {
    users: &'a Users,
    /// The month the monthly units were counted in.
    period: UsagePeriod,
    /// Each counter's value including these units, in the order taken.
    counts: Vec<u64>,
    units: Unsettled,
}

impl std::fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("units", &self.units.units).field("period", &self.period).finish()
    }
}

impl Reservation<'_> {
    /// The month the units were counted in.
    pub fn period(&self) -> UsagePeriod {
        self.period
    }

    /// The counter's value including this reservation (the first allowance taken: the one the
    /// reservation is about).
    pub fn used(&self) -> u64 {
        self.counts.first().copied().unwrap_or(0)
    }

    /// The work is done: the units stay counted (what was made holds them until it is removed).
    pub fn commit(mut self) {
        self.units.settled = true;
    }

    /// The work failed: the units are given back. A monthly unit of a month that has since ended
    /// stays where it is (the new month's counter is not this reservation's).
    pub async fn give_back(mut self) -> anyhow::Result<()> {
        self.units.settled = true;
        self.users.give(&self.units.counters, &self.units.units, Some(self.period)).await
    }

    /// [`Reservation::give_back`], retried while the store is unreachable (it may be back within
    /// the invocation's budget); only a deadline reached first leaves the units taken, and that
    /// is logged.
    pub async fn give_back_within(mut self, deadline: Deadline) {
        const PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
        const LAST_TRY: std::time::Duration = std::time::Duration::from_secs(1);
        self.units.settled = true;
        let Unsettled { counters, units, .. } = &self.units;
        loop {
            let attempt = self.users.give(counters, units, Some(self.period));
            let error = match tokio::time::timeout(deadline.remaining().max(LAST_TRY), attempt).await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => format!("{error:#}"),
                Err(_) => "timed out".to_owned(),
            };
            if deadline.remaining() < PAUSE * 2 {
                tracing::error!(error, %counters, ?units, "could not give the units back before the deadline");
                return;
            }
            tracing::warn!(error, "giving the units back failed; retrying");
            tokio::time::sleep(PAUSE).await;
        }
    }
}

/// Something THIS request's conditional write removed (or moved out of the state that held
/// units): the only proof on which a thing's units are given back. Made by the store modules'
/// conditional deletes and transitions.
#[must_use = "what a removed thing held is given back with Users::give_back_held"]
pub struct Removed<T> {
    item: T,
    units: Unsettled,
    /// The month its monthly units were counted in.
    period: Option<UsagePeriod>,
}

impl<T> Removed<T> {
    /// `item`, removed by the caller's own conditional write, held `units` of `user`'s allowances.
    pub(in crate::store) fn new(item: T, user: UserId, units: Vec<Units>, period: Option<UsagePeriod>) -> Self {
        Self { item, units: Unsettled { counters: Counters::Person(user), units, settled: false }, period }
    }

    pub fn item(&self) -> &T {
        &self.item
    }

    /// What it held of its owner's allowances.
    pub fn units(&self) -> &[Units] {
        &self.units.units
    }

    /// The removed thing, its owner and what it held, for an owner whose counters are not on a
    /// user row (a workspace library's): the caller gives the units back there.
    pub(in crate::store) fn settle(mut self) -> (T, Counters, Vec<Units>) {
        self.units.settled = true;
        (self.item, self.units.counters.clone(), std::mem::take(&mut self.units.units))
    }
}

impl Users {
    /// Takes `units` for `user` on `tier` (plus `granted` recordings this month) in `period`, with
    /// one conditional write (a second one when the month starts).
    pub async fn reserve(
        &self,
        user: &UserId,
        tier: Tier,
        granted: u32,
        units: &[Units],
        period: UsagePeriod,
    ) -> Result<Reservation<'_>, Refused> {
        let limits: Vec<_> = units.iter().map(|u| u.allowance.limit(tier.rules(), granted)).collect();
        for (unit, limit) in units.iter().zip(&limits) {
            if limit.is_some_and(|limit| unit.amount > limit) {
                return Err(Refused::Limit(Refusal { allowance: unit.allowance, limit: limit.unwrap_or(0), tier }));
            }
        }
        self.reserve_on(Counters::Person(user.clone()), tier, units, &limits, period).await
    }

    /// Takes `units` from workspace `workspace`'s pool (at most `recordings` this month) and
    /// counts them in `member`'s share, speaking on `tier`: the share first (its row is their
    /// membership: a member removed meanwhile takes nothing, [`Refused::Gone`]), then the pool;
    /// the share is given back when the pool has no room. Both are settled together by the
    /// caller.
    pub async fn reserve_pooled(
        &self,
        workspace: &WorkspaceId,
        member: &UserId,
        tier: Tier,
        recordings: u64,
        units: &[Units],
        period: UsagePeriod,
    ) -> Result<(Reservation<'_>, Reservation<'_>), Refused> {
        let unbounded = vec![None; units.len()];
        let share = Counters::Share(workspace.clone(), member.clone());
        let share = self.reserve_on(share, tier, units, &unbounded, period).await?;
        let limits: Vec<_> =
            units.iter().map(|u| (u.allowance == Allowance::Recordings).then_some(recordings)).collect();
        match self.reserve_on(Counters::Pool(workspace.clone()), tier, units, &limits, share.period()).await {
            Ok(pool) => Ok((pool, share)),
            Err(refused) => {
                if let Err(error) = share.give_back().await {
                    tracing::warn!(error = format!("{error:#}"), "a member's share could not be given back");
                }
                Err(refused)
            }
        }
    }

    async fn reserve_on(
        &self,
        counters: Counters,
        tier: Tier,
        units: &[Units],
        limits: &[Option<u64>],
        period: UsagePeriod,
    ) -> Result<Reservation<'_>, Refused> {
        // Boxed: the take (DynamoDB's futures) would otherwise be copied through every frame
        // that passes it on, past a debug build's 2 MiB thread stack.
        let take = Box::pin(self.take(&counters, tier, units, limits, period));
        let (period, counts) = self.changing_counters(&counters, take).await?;
        Ok(Reservation {
            users: self,
            period,
            counts,
            units: Unsettled { counters, units: units.to_vec(), settled: false },
        })
    }

    /// [`Users::changing`] for a person's counters; a workspace's rows have no snapshot.
    async fn changing_counters<T>(&self, counters: &Counters, write: impl Future<Output = T>) -> T {
        match counters {
            Counters::Person(user) => self.changing(user, write).await,
            _ => write.await,
        }
    }

    /// An update of the row holding `counters`, and the attribute every such row has.
    fn counters_update(&self, counters: &Counters) -> (UpdateItemFluentBuilder, &'static str) {
        match counters {
            Counters::Person(user) => (self.update(user), attr::USER_ID),
            Counters::Pool(workspace) => (self.pools.update(workspace, None), "workspaceId"),
            Counters::Share(workspace, member) => (self.pools.update(workspace, Some(member)), "workspaceId"),
        }
    }

    /// [`Users::reserve`] of one unit of one allowance.
    pub async fn reserve_one(
        &self,
        user: &UserId,
        tier: Tier,
        allowance: Allowance,
        period: UsagePeriod,
    ) -> Result<Reservation<'_>, Refused> {
        self.reserve(user, tier, 0, &[Units::one(allowance)], period).await
    }

    /// Gives back what a removed thing held.
    pub async fn give_back_held<T>(&self, mut removed: Removed<T>) -> anyhow::Result<T> {
        removed.units.settled = true;
        if !removed.units.units.is_empty() {
            self.give(&removed.units.counters, &removed.units.units, removed.period).await?;
        }
        Ok(removed.item)
    }

    async fn take(
        &self,
        counters: &Counters,
        tier: Tier,
        units: &[Units],
        limits: &[Option<u64>],
        mut period: UsagePeriod,
    ) -> Result<(UsagePeriod, Vec<u64>), Refused> {
        let month = units.iter().find_map(|u| month_of(u.allowance));
        // Bounded: each retry follows another request's successful write.
        for _ in 0..5 {
            let row = match dynamo::update_or_current(self.take_write(counters, units, limits, period, None)?).await? {
                Ok(output) => return Ok((period, counts(units, output.attributes)?)),
                Err(Some(row)) => row,
                Err(None) => return Err(Refused::Gone(counters.clone())),
            };
            let stored = month.and_then(|m| dynamo::opt_str(&row, m)).map(str::parse::<UsagePeriod>);
            let stored = stored.transpose().context("the counter's stored month")?;
            if let Some(later) = stored.filter(|stored| *stored > period) {
                // Another instance's clock is already in the next month: count there.
                period = later;
                continue;
            }
            let new_month = month.is_some() && stored.is_none_or(|stored| stored < period);
            if let Some(refusal) = refusal(&row, units, limits, tier, new_month)? {
                return Err(Refused::Limit(refusal));
            }
            if !new_month {
                continue; // the row changed between the write and its refusal
            }
            if let Ok(output) =
                dynamo::update_or_current(self.take_write(counters, units, limits, period, Some(&row))?).await?
            {
                return Ok((period, counts(units, output.attributes)?));
            }
        }
        Err(Refused::Store(anyhow::anyhow!("the allowance counters kept changing under us")))
    }

    /// The write taking `units` in `period`: "this month, and room below every limit". With
    /// `new_month` (the row as read, its month an earlier one) it starts `period` instead: the
    /// monthly counters at these units, the finished month archived.
    fn take_write(
        &self,
        counters: &Counters,
        units: &[Units],
        limits: &[Option<u64>],
        period: UsagePeriod,
        new_month: Option<&Item>,
    ) -> anyhow::Result<UpdateItemFluentBuilder> {
        let (update, key) = self.counters_update(counters);
        let mut update = update.return_values(ReturnValue::UpdatedNew);
        let (mut sets, mut conditions) = (Vec::new(), vec![format!("attribute_exists({key})")]);
        if let Some(month) = units.iter().find_map(|u| month_of(u.allowance)) {
            update = update
                .expression_attribute_names("#period", month)
                .expression_attribute_values(":period", string(period.to_string()));
            match new_month {
                None => conditions.push("#period = :period".into()),
                Some(row) => {
                    sets.push("#period = :period".to_owned());
                    conditions.push("(attribute_not_exists(#period) OR #period < :period)".into());
                    let finished = (month == attr::PERIOD).then(|| MonthFigures::from_row(row)).transpose()?.flatten();
                    if let Some(old) = finished.filter(|old| old.period < period) {
                        update = old.archive_values(update);
                        sets.push("#month = if_not_exists(#month, :figures)".into());
                    }
                }
            }
        }
        let mut zero = false;
        for (i, (unit, limit)) in units.iter().zip(limits).enumerate() {
            let (name, amount) = (format!("#c{i}"), format!(":a{i}"));
            update = update
                .expression_attribute_names(&name, counter(unit.allowance))
                .expression_attribute_values(&amount, number(unit.amount));
            if new_month.is_some() && unit.allowance.monthly() {
                sets.push(format!("{name} = {amount}"));
                continue;
            }
            zero = true;
            sets.push(format!("{name} = if_not_exists({name}, :zero) + {amount}"));
            if let Some(limit) = limit {
                let room = format!(":r{i}");
                update = update.expression_attribute_values(&room, number(limit - unit.amount));
                conditions.push(format!("(attribute_not_exists({name}) OR {name} <= {room})"));
            }
        }
        if zero {
            update = update.expression_attribute_values(":zero", number(0));
        }
        Ok(update.update_expression(format!("SET {}", sets.join(", "))).condition_expression(conditions.join(" AND ")))
    }

    /// Gives `units` back, all in one conditional write when each counter still holds them (a
    /// monthly one only in `period`); else each on its own, never below zero.
    async fn give(&self, counters: &Counters, units: &[Units], period: Option<UsagePeriod>) -> anyhow::Result<()> {
        // A monthly unit whose month is unknown is not given back: it may be another month's.
        let units: Vec<Units> =
            units.iter().copied().filter(|u| u.amount > 0 && (period.is_some() || !u.allowance.monthly())).collect();
        if units.is_empty() {
            return Ok(());
        }
        self.changing_counters(
            counters,
            Box::pin(async {
                let all = dynamo::conditional_update(self.give_write(counters, &units, period, false));
                if all.await.context("giving allowance units back")?.is_some() {
                    return Ok(());
                }
                for unit in &units {
                    let one = dynamo::conditional_update(self.give_write(counters, &[*unit], period, false));
                    if one.await.context("giving allowance units back")?.is_none() {
                        // Less is counted than these units (an older row): what is counted goes.
                        let rest = self.give_write(counters, &[*unit], period, true);
                        dynamo::conditional_update(rest).await.context("giving allowance units back")?;
                    }
                }
                Ok(())
            }),
        )
        .await
    }

    /// "In `period` (monthly counters), and at least these units counted: subtract them", or with
    /// `to_zero`, "fewer counted: set to zero".
    fn give_write(
        &self,
        counters: &Counters,
        units: &[Units],
        period: Option<UsagePeriod>,
        to_zero: bool,
    ) -> UpdateItemFluentBuilder {
        let mut update = self.counters_update(counters).0;
        let (mut sets, mut conditions) = (Vec::new(), Vec::new());
        if let (Some(month), Some(period)) = (units.iter().find_map(|u| month_of(u.allowance)), period) {
            update = update
                .expression_attribute_names("#period", month)
                .expression_attribute_values(":period", string(period.to_string()));
            conditions.push("#period = :period".to_owned());
        }
        for (i, unit) in units.iter().enumerate() {
            let (name, amount) = (format!("#c{i}"), format!(":a{i}"));
            update = update
                .expression_attribute_names(&name, counter(unit.allowance))
                .expression_attribute_values(&amount, number(unit.amount));
            if to_zero {
                sets.push(format!("{name} = :zero"));
                conditions.push(format!("{name} < {amount}"));
            } else {
                sets.push(format!("{name} = {name} - {amount}"));
                conditions.push(format!("{name} >= {amount}"));
            }
        }
        if to_zero {
            update = update.expression_attribute_values(":zero", number(0));
        }
        update.update_expression(format!("SET {}", sets.join(", "))).condition_expression(conditions.join(" AND "))
    }
}

/// The first limit the row (as read) leaves no room under, if any; in a `new_month` the monthly
/// counters start from zero.
fn refusal(
    row: &Item,
    units: &[Units],
    limits: &[Option<u64>],
    tier: Tier,
    new_month: bool,
) -> anyhow::Result<Option<Refusal>> {
    for (unit, limit) in units.iter().zip(limits) {
        let Some(limit) = *limit else { continue };
        let counted: u64 = if new_month && unit.allowance.monthly() {
            0
        } else {
            dynamo::opt_num(row, counter(unit.allowance))?.unwrap_or(0)
        };
        if counted.saturating_add(unit.amount) > limit {
            return Ok(Some(Refusal { allowance: unit.allowance, limit, tier }));
        }
    }
    Ok(None)
}

/// Each taken counter's new value, from an update's `UPDATED_NEW` attributes.
fn counts(units: &[Units], attributes: Option<Item>) -> anyhow::Result<Vec<u64>> {
    let attributes = attributes.context("DynamoDB returned no attributes")?;
    units.iter().map(|u| dynamo::num(&attributes, counter(u.allowance))).collect()
}

/// One finished month's figures, as archived on the user row under `usage_{period}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthFigures {
    pub period: UsagePeriod,
    pub recordings: u32,
    pub characters: u64,
}

/// The attribute a month is archived under.
pub fn month_attribute(period: UsagePeriod) -> String {
    format!("{}{period}", attr::MONTH_PREFIX)
}

impl MonthFigures {
    /// The counters of a row as read (None before any generation).
    pub fn from_row(row: &Item) -> anyhow::Result<Option<Self>> {
        let Some(period) = dynamo::opt_str(row, attr::PERIOD) else { return Ok(None) };
        Ok(Some(Self {
            period: period.parse().context("stored usage period")?,
            recordings: dynamo::opt_num(row, attr::COUNTER)?.unwrap_or(0),
            characters: dynamo::opt_num(row, attr::CHARACTERS)?.unwrap_or(0),
        }))
    }

    /// Adds `#month`, `:figures` and `:old_period` to an update (for the caller's expression).
    pub fn archive(&self, update: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        self.archive_values(update).expression_attribute_values(":old_period", string(self.period.to_string()))
    }

    /// Adds `#month` and `:figures` to an update.
    fn archive_values(&self, update: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        let figures = AttributeValue::M(std::collections::HashMap::from([
            ("recordings".to_owned(), number(self.recordings)),
            ("characters".to_owned(), number(self.characters)),
        ]));
        update
            .expression_attribute_names("#month", month_attribute(self.period))
            .expression_attribute_values(":figures", figures)
    }
}
