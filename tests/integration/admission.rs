//! The admission gate in front of ElevenLabs (store::admission), on the stack's Redis: the order
//! in which waiting requests get in, and the places of requests whose Lambda died.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use integration_tests::{TestApp, eventually, unique};
use voice_core::{
    clock::{Clock, Deadline},
    domain::tiers::Priority,
    error::ApiError,
    store::admission::Gate,
};

/// A gate of one place on an account of the test's own, seen from `clock`.
fn gate(app: &TestApp, account: &str, clock: Clock) -> Gate {
    Gate::new(app.app.redis.clone(), clock, account, 1)
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn soon() -> Deadline {
    Deadline::after(Duration::from_secs(20))
}

/// Queues `waiters` (a priority and when the request arrived), in this order, behind the
/// gate's one place held; then frees it. The order in which they got in.
async fn order_of_entry(gate: &Gate, waiters: &[(Priority, time::OffsetDateTime)]) -> Vec<Priority> {
    let holder = gate.enter(Priority::Standard, now(), soon(), Duration::ZERO).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, &(priority, arrived)) in waiters.iter().enumerate() {
        let (waiter, order) = (gate.clone(), order.clone());
        tasks.spawn(async move {
            let place = waiter.enter(priority, arrived, soon(), Duration::ZERO).await.unwrap();
            order.lock().unwrap().push(priority);
            place.release().await;
        });
        let queued = eventually(Duration::from_secs(5), || async { gate.waiting().await.unwrap() == n as u64 + 1 });
        assert!(queued.await, "waiter {n} is queued");
    }
    assert_eq!(gate.held().await.unwrap(), 1);
    holder.release().await;
    tasks.join_all().await;
    Arc::into_inner(order).unwrap().into_inner().unwrap()
}

#[tokio::test]
async fn waiting_requests_get_in_premium_first_then_basic_then_free() {
    let app = TestApp::spawn().await;
    let gate = gate(&app, &unique("acct-"), Clock::system());

    // FREE asks first, then BASIC, then PREMIUM, while the one place is held.
    let order =
        order_of_entry(&gate, &[Priority::Standard, Priority::Priority, Priority::Fastest].map(|p| (p, now()))).await;

    assert_eq!(order, [Priority::Fastest, Priority::Priority, Priority::Standard]);
    assert_eq!((gate.held().await.unwrap(), gate.waiting().await.unwrap()), (0, 0), "nothing left behind");
}

#[tokio::test]
async fn free_is_delayed_never_starved_a_long_wait_goes_before_a_new_premium() {
    let app = TestApp::spawn().await;
    let gate = gate(&app, &unique("acct-"), Clock::system());

    // A FREE request that arrived 9 s ago (more than PREMIUM's 8 s head start), then a PREMIUM
    // one arriving now.
    let long_ago = now() - time::Duration::seconds(9);
    let order = order_of_entry(&gate, &[(Priority::Standard, long_ago), (Priority::Fastest, now())]).await;

    assert_eq!(order, [Priority::Standard, Priority::Fastest]);
}

#[tokio::test]
async fn a_request_the_queue_cannot_serve_in_time_is_turned_away_at_once_unless_it_ranks_ahead() {
    let app = TestApp::spawn().await;
    let gate = gate(&app, &unique("acct-"), Clock::system());
    let holder = gate.enter(Priority::Standard, now(), soon(), Duration::ZERO).await.unwrap();
    // With 2.5 s left, one place turns over at most twice: two may wait.
    let short = || Deadline::after(Duration::from_millis(2500));
    let mut waiters = tokio::task::JoinSet::new();
    for n in 1..=2 {
        let waiter = gate.clone();
        waiters.spawn(async move { waiter.enter(Priority::Standard, now(), short(), Duration::ZERO).await.map(drop) });
        let queued = eventually(Duration::from_secs(5), || async { gate.waiting().await.unwrap() == n });
        assert!(queued.await, "waiter {n} is queued");
    }

    let started = tokio::time::Instant::now();
    let third = gate.enter(Priority::Standard, now(), short(), Duration::ZERO).await.err().expect("turned away");
    assert!(matches!(third, ApiError::Busy { retry_after_secs: 1.., .. }), "{third:?}");
    assert!(started.elapsed() < Duration::from_millis(500), "at once, not at its deadline");
    assert_eq!(gate.waiting().await.unwrap(), 2);

    // PREMIUM ranks before the last one queued: it joins, and goes first.
    let premium = tokio::spawn({
        let gate = gate.clone();
        async move { gate.enter(Priority::Fastest, now(), short(), Duration::ZERO).await.map(drop) }
    });
    let queued = eventually(Duration::from_secs(5), || async { gate.waiting().await.unwrap() == 3 });
    assert!(queued.await, "PREMIUM is queued past the limit");
    holder.release().await;
    premium.await.unwrap().expect("PREMIUM got in");
    for waited in waiters.join_all().await {
        waited.expect("each FREE waiter got in once the place turned over");
    }
}

#[tokio::test]
async fn nobody_waits_past_their_deadline_and_a_holder_that_dies_frees_its_place() {
    let app = TestApp::spawn().await;
    let account = unique("acct-");
    let present = gate(&app, &account, Clock::system());
    // A request takes the only place with a second left, and its Lambda dies: never released.
    let dead =
        present.enter(Priority::Fastest, now(), Deadline::after(Duration::from_secs(1)), Duration::ZERO).await.unwrap();
    std::mem::forget(dead);

    // Meanwhile another waits as long as its deadline leaves, then is told when to come back.
    let started = tokio::time::Instant::now();
    let refused = present.enter(
        Priority::Fastest,
        now(),
        Deadline::after(Duration::from_millis(600)),
        Duration::from_millis(300),
    );
    let refused = refused.await.err().expect("no place while the dead request's lease runs");
    assert!(matches!(refused, ApiError::Busy { retry_after_secs: 1.., .. }), "{refused:?}");
    assert!(started.elapsed() < Duration::from_millis(600), "it gave up leaving its work its time");
    assert_eq!(present.waiting().await.unwrap(), 0, "it left the queue");

    // Once the dead request's deadline (and the margin after it) has passed, its place is free.
    admitted_at_once(&gate(&app, &account, Clock::shifted(time::Duration::seconds(3)))).await;
}

/// A FREE request on `gate` gets in within half a second.
async fn admitted_at_once(gate: &Gate) {
    let entry = gate.enter(Priority::Standard, now(), soon(), Duration::ZERO);
    let place = tokio::time::timeout(Duration::from_millis(500), entry).await.expect("admitted at once").unwrap();
    assert_eq!(gate.waiting().await.unwrap(), 0, "nobody left in the queue");
    place.release().await;
}

#[tokio::test]
async fn a_waiter_that_dies_leaves_the_queue() {
    let app = TestApp::spawn().await;
    let account = unique("acct-");
    let present = gate(&app, &account, Clock::system());
    let holder = present.enter(Priority::Standard, now(), soon(), Duration::ZERO).await.unwrap();
    // PREMIUM queues first, then its Lambda dies while it waits.
    let doomed = tokio::spawn({
        let present = present.clone();
        async move { present.enter(Priority::Fastest, now(), soon(), Duration::ZERO).await.map(std::mem::forget) }
    });
    let queued = eventually(Duration::from_secs(5), || async { present.waiting().await.unwrap() == 1 });
    assert!(queued.await);
    doomed.abort();
    holder.release().await;

    // A FREE request a few seconds on: the dead waiter no longer ranks ahead of it.
    admitted_at_once(&gate(&app, &account, Clock::shifted(time::Duration::seconds(3)))).await;
}
