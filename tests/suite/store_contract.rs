//! The store contract: what every backend must do, run on each of them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mediation_store::{
    Backend, Cases, CommandError, RecordedEvent, SNAPSHOT_EVERY, Store, StoreError,
};
use mediation_tests::probe::{Append, Appended, Gate, Probe};
use mediation_tests::{TestDb, read_all};
use tokio::sync::{Barrier, oneshot, watch};

on_both_backends!(
    append_and_load,
    two_writers_on_one_case_one_wins_and_nothing_is_half_written,
    the_log_is_in_commit_order_across_cases,
    paged_reads_equal_one_read,
    long_histories_load_through_snapshots,
    migrations_are_idempotent,
    the_log_is_append_only,
    a_missing_database_is_created,
    a_reader_sees_every_event_once_while_writers_append,
    processes_with_stale_caches_still_write_in_order,
    a_conflict_reports_the_version_that_won,
    rows_from_other_paths_get_a_position_or_are_refused,
);

fn append(count: u32, writer: &str) -> Append {
    Append {
        count,
        writer: writer.into(),
    }
}

fn probes(db: &TestDb) -> Cases<Probe> {
    Cases::new(&db.store, Gate::default())
}

async fn append_and_load(db: &TestDb) {
    let cases = probes(db);
    let before = Utc::now() - chrono::Duration::seconds(5);
    let committed = cases
        .execute("case-1", append(3, "w"), HashMap::new())
        .await
        .unwrap();
    let after = Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(committed.version, 3);
    assert_eq!(committed.events.len(), 3);

    let (state, version) = cases.load("case-1").await.unwrap().unwrap();
    assert_eq!(version, 3);
    assert_eq!(state.count, 3);
    assert!(cases.load("no-such-case").await.unwrap().is_none());

    let events = db.store.case_events("Probe", "case-1").await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(committed.position, Some(events[2].position));
    let ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 3, "event ids are unique");
    for (index, event) in events.iter().enumerate() {
        assert!(event.recorded_at > before && event.recorded_at < after);
        assert_eq!(event.event_type, "Appended");
        assert_eq!(event.event_version, "1");
        let payload: Appended = serde_json::from_value(event.payload.clone()).unwrap();
        assert_eq!(payload.index, index as u32);
    }
    assert_eq!(read_all(&db.store, 3).await, events);
    assert_eq!(db.store.log_head().await.unwrap(), events[2].position);
}

async fn two_writers_on_one_case_one_wins_and_nothing_is_half_written(db: &TestDb) {
    probes(db)
        .execute("race", append(2, "seed"), HashMap::new())
        .await
        .unwrap();
    // Both commands load version 2 and meet at the barrier before either
    // commits, so they race for sequence 3.
    let gate = Gate(Some(Arc::new(Barrier::new(2))));
    let cases = Arc::new(Cases::<Probe>::new(&db.store, gate));
    let a = tokio::spawn({
        let cases = cases.clone();
        async move { cases.execute("race", append(2, "a"), HashMap::new()).await }
    });
    let b = tokio::spawn({
        let cases = cases.clone();
        async move { cases.execute("race", append(3, "b"), HashMap::new()).await }
    });
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let (winner, loser, won) = match (&a, &b) {
        (Ok(c), Err(CommandError::Conflict { .. })) => ("a", "b", c.version),
        (Err(CommandError::Conflict { .. }), Ok(c)) => ("b", "a", c.version),
        other => panic!("expected one success and one conflict, got {other:?}"),
    };

    let (state, version) = probes(db).load("race").await.unwrap().unwrap();
    assert_eq!(version, won);
    assert_eq!(state.writers, ["seed", winner]);
    let events = db.store.case_events("Probe", "race").await.unwrap();
    assert_eq!(events.len() as u64, won);
    assert!(
        events.iter().all(|e| e.payload["writer"] != loser),
        "no event of the losing command was written"
    );
    assert_eq!(read_all(&db.store, events.len()).await.len(), events.len());
}

async fn the_log_is_in_commit_order_across_cases(db: &TestDb) {
    let cases = probes(db);
    let script = [("a", 1), ("b", 2), ("a", 1), ("c", 3), ("b", 1), ("a", 2)];
    let mut expected = Vec::new();
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for (case, count) in script {
        cases
            .execute(case, append(count, case), HashMap::new())
            .await
            .unwrap();
        for _ in 0..count {
            let v = versions.entry(case).or_default();
            *v += 1;
            expected.push((case.to_owned(), *v));
        }
    }
    let log = read_all(&db.store, expected.len()).await;
    let order: Vec<_> = log
        .iter()
        .map(|e| (e.aggregate_id.clone(), e.sequence))
        .collect();
    assert_eq!(order, expected);
    assert!(log.windows(2).all(|w| w[0].position < w[1].position));
}

async fn paged_reads_equal_one_read(db: &TestDb) {
    let cases = probes(db);
    for i in 0..12 {
        cases
            .execute(
                &format!("case-{}", i % 4),
                append(1 + i % 3, "w"),
                HashMap::new(),
            )
            .await
            .unwrap();
    }
    let all = read_all(&db.store, 24).await;
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = db.store.read_log(after, 5).await.unwrap();
        assert!(page.len() <= 5);
        let Some(last) = page.last() else { break };
        after = last.position;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(db.store.read_log(after, 5).await.unwrap().is_empty());
}

async fn long_histories_load_through_snapshots(db: &TestDb) {
    let cases = probes(db);
    let commands = (2 * SNAPSHOT_EVERY / 5 + 1) as u32;
    for i in 0..commands {
        cases
            .execute("long", append(5, &format!("w{i}")), HashMap::new())
            .await
            .unwrap();
    }
    let total = u64::from(commands) * 5;
    let (state, version) = cases.load("long").await.unwrap().unwrap();
    assert_eq!((state.count, version), (total, total));
    assert_eq!(state.writers.len(), commands as usize);

    let snapshots: Vec<i64> = match db.store.backend() {
        Backend::Postgres(pool) => sqlx::query_scalar("SELECT version FROM case_snapshots")
            .fetch_all(pool)
            .await
            .unwrap(),
        Backend::Sqlite(pool) => sqlx::query_scalar("SELECT version FROM case_snapshots")
            .fetch_all(pool)
            .await
            .unwrap(),
    };
    let expected_snapshot = (total / SNAPSHOT_EVERY * SNAPSHOT_EVERY) as i64;
    assert_eq!(
        snapshots,
        [expected_snapshot],
        "one snapshot per case, moved forward"
    );
    // A snapshot of another revision of the state is ignored, however
    // plausible its content: loading replays the events instead.
    let forged = r#"{"count": 1000, "writers": []}"#;
    match db.store.backend() {
        Backend::Postgres(pool) => {
            sqlx::query("UPDATE case_snapshots SET revision = 99, payload = $1::jsonb")
                .bind(forged)
                .execute(pool)
                .await
                .unwrap();
        }
        Backend::Sqlite(pool) => {
            sqlx::query("UPDATE case_snapshots SET revision = 99, payload = ?")
                .bind(forged)
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let (state, version) = cases.load("long").await.unwrap().unwrap();
    assert_eq!((state.count, version), (total, total));

    // A command after the snapshot still sees the whole history.
    let committed = cases
        .execute("long", append(1, "after"), HashMap::new())
        .await
        .unwrap();
    assert_eq!(committed.version, total + 1);
}

async fn migrations_are_idempotent(db: &TestDb) {
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    db.store.ping().await.unwrap();
    let err = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert!(matches!(err, StoreError::BadUrl(_)), "{err}");
}

async fn the_log_is_append_only(db: &TestDb) {
    probes(db)
        .execute("kept", append(2, "w"), HashMap::new())
        .await
        .unwrap();
    for statement in [
        "UPDATE events SET event_type = 'Forged'",
        "DELETE FROM events",
    ] {
        let refused = match db.store.backend() {
            Backend::Postgres(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
            Backend::Sqlite(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
        };
        let err = refused.expect_err("changing the log must be refused");
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    let events = db.store.case_events("Probe", "kept").await.unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.event_type == "Appended"));
}

async fn a_missing_database_is_created(db: &TestDb) {
    // A SQLite file that does not exist yet, or a PostgreSQL database that
    // does not: connecting creates it, as `mediation migrate` relies on.
    let url = db.sibling_url("created");
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Cases::<Probe>::new(&store, Gate::default())
        .execute("x", append(1, "w"), HashMap::new())
        .await
        .unwrap();
    store.close().await;
    // Not dropped here: on PostgreSQL, DROP DATABASE holds a transaction id
    // through a checkpoint, which would hold every other test's readers
    // back. The first PostgreSQL test of a run an hour or more later drops
    // it with the other stale databases, before any test there reads a log.
}

/// Progress that slow writers wait on: reader polls and fast commits so far.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    polls: usize,
    fast_commits: usize,
    fast_done: bool,
}

/// Appends `events` events to its own case in one transaction, which it
/// holds open until the reader has polled 20 more times and (on PostgreSQL)
/// faster writers have committed past it. Returns how many events with a
/// higher position were committed while it held its transaction open.
async fn slow_writer(
    store: Store,
    case: &'static str,
    events: u32,
    progress: watch::Receiver<Progress>,
    inserted: oneshot::Sender<()>,
) -> i64 {
    let insert_pg = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let insert_lite = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                       event_version, payload, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)";
    let payload = |index: u32| serde_json::json!({ "writer": case, "index": index });
    let wait = |mut progress: watch::Receiver<Progress>, is_pg: bool| async move {
        let start = *progress.borrow();
        progress
            .wait_for(|p| {
                p.polls >= start.polls + 20
                    && (!is_pg || p.fast_done || p.fast_commits >= start.fast_commits + 10)
            })
            .await
            .unwrap();
    };
    match store.backend() {
        Backend::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            for index in 0..events {
                sqlx::query(insert_pg)
                    .bind("Probe")
                    .bind(case)
                    .bind(i64::from(index) + 1)
                    .bind("Appended")
                    .bind("1")
                    .bind(payload(index))
                    .bind(serde_json::json!({}))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            let mine: i64 =
                sqlx::query_scalar("SELECT max(position) FROM events WHERE aggregate_id = $1")
                    .bind(case)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
            inserted.send(()).unwrap();
            wait(progress, true).await;
            let overtaken: i64 =
                sqlx::query_scalar("SELECT count(*) FROM events WHERE position > $1")
                    .bind(mine)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            tx.commit().await.unwrap();
            overtaken
        }
        Backend::Sqlite(pool) => {
            let mut tx = pool.begin().await.unwrap();
            for index in 0..events {
                sqlx::query(insert_lite)
                    .bind("Probe")
                    .bind(case)
                    .bind(i64::from(index) + 1)
                    .bind("Appended")
                    .bind("1")
                    .bind(payload(index).to_string())
                    .bind("{}")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            inserted.send(()).unwrap();
            wait(progress, false).await;
            tx.commit().await.unwrap();
            0
        }
    }
}

async fn a_reader_sees_every_event_once_while_writers_append(db: &TestDb) {
    const FAST_WRITERS: usize = 8;
    const COMMANDS: usize = 24;
    const SLOW_EVENTS: u32 = 4;
    let (progress_tx, progress) = watch::channel(Progress::default());
    let progress_tx = Arc::new(progress_tx);
    // Set to the number of events written once all writers are done.
    let (total_tx, total) = watch::channel(None::<u64>);

    // The reader tails the log for as long as writers run, then to its end.
    let reader = tokio::spawn({
        let store = db.store.clone();
        let progress_tx = progress_tx.clone();
        async move {
            let started = Instant::now();
            let mut seen: Vec<RecordedEvent> = Vec::new();
            let mut after = 0;
            loop {
                let page = store.read_log(after, 50).await.unwrap();
                progress_tx.send_modify(|p| p.polls += 1);
                for event in &page {
                    assert!(event.position > after, "positions only increase");
                    after = event.position;
                }
                let empty = page.is_empty();
                seen.extend(page);
                // An empty page does not mean the end on PostgreSQL: any
                // transaction open on the server holds the settled log back.
                // So the reader runs until it has as many events as were
                // written; the assertions below catch any excess.
                if let Some(total) = *total.borrow()
                    && seen.len() as u64 >= total
                {
                    return seen;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "reader stalled: it missed events or the log never settled"
                );
                if empty {
                    tokio::task::yield_now().await;
                }
            }
        }
    });

    // The first slow writer opens its transaction before any fast writer.
    let (first_inserted, first_ready) = oneshot::channel();
    let slow_a = tokio::spawn(slow_writer(
        db.store.clone(),
        "slow-a",
        SLOW_EVENTS,
        progress.clone(),
        first_inserted,
    ));
    first_ready.await.unwrap();

    let fast: Vec<_> = (0..FAST_WRITERS)
        .map(|w| {
            let cases = Cases::<Probe>::new(&db.store, Gate::default());
            let progress_tx = progress_tx.clone();
            tokio::spawn(async move {
                let mut written = 0u64;
                for i in 0..COMMANDS {
                    let count = 1 + (i % 3) as u32;
                    let case = format!("w{w}-{}", i % 3);
                    cases
                        .execute(&case, append(count, &case), HashMap::new())
                        .await
                        .unwrap();
                    written += u64::from(count);
                    progress_tx.send_modify(|p| p.fast_commits += 1);
                }
                written
            })
        })
        .collect();

    // The second slow writer starts once fast writers are under way.
    let mut watcher = progress.clone();
    watcher
        .wait_for(|p| p.fast_commits >= FAST_WRITERS * 2)
        .await
        .unwrap();
    let (second_inserted, second_ready) = oneshot::channel();
    let slow_b = tokio::spawn(slow_writer(
        db.store.clone(),
        "slow-b",
        SLOW_EVENTS,
        progress.clone(),
        second_inserted,
    ));
    second_ready.await.unwrap();

    let mut expected = 2 * u64::from(SLOW_EVENTS);
    for writer in fast {
        expected += writer.await.unwrap();
    }
    progress_tx.send_modify(|p| p.fast_done = true);
    let overtaken = [slow_a.await.unwrap(), slow_b.await.unwrap()];
    total_tx.send(Some(expected)).unwrap();
    let seen = reader.await.unwrap();
    assert!(
        db.store
            .read_log(seen.last().unwrap().position, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing after the last event read"
    );

    if db.store.kind() == "postgres" {
        assert!(
            overtaken.iter().any(|n| *n > 0),
            "the test must commit later transactions before an earlier one"
        );
    }
    assert_eq!(seen.len() as u64, expected, "every event exactly once");
    let ids: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), seen.len(), "no event twice");
    let keys: HashSet<_> = seen
        .iter()
        .map(|e| (e.aggregate_id.clone(), e.sequence))
        .collect();
    assert_eq!(keys.len(), seen.len());
    // Per case, the log keeps the case's own order.
    let mut last_seq: HashMap<&str, u64> = HashMap::new();
    for e in &seen {
        let prev = last_seq.insert(&e.aggregate_id, e.sequence).unwrap_or(0);
        assert_eq!(e.sequence, prev + 1, "case {} out of order", e.aggregate_id);
    }
    // Re-reading, in pages of another size, gives the same log.
    let mut again = Vec::new();
    let mut after = 0;
    loop {
        let page = db.store.read_log(after, 37).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        again.extend(page);
    }
    assert_eq!(again, seen);
}

/// Two `Cases` with caches on one database stand for two server processes:
/// each commits on a state the other has made stale. The database's key on
/// (case, sequence) must catch every stale decision, and the retry after
/// reloading must make it, so that neither caller sees a conflict and the
/// case's history has every write once, in order.
async fn processes_with_stale_caches_still_write_in_order(db: &TestDb) {
    let one = Cases::<Probe>::new(&db.store, Gate::default());
    let two = Cases::<Probe>::new(&db.store, Gate::default());
    let mut expected = Vec::new();
    let mut version = 0;
    for round in 0..6 {
        for (name, cases) in [("one", &one), ("two", &two)] {
            let writer = format!("{name}-{round}");
            let committed = cases
                .execute("shared", append(1 + round % 2, &writer), HashMap::new())
                .await
                .unwrap_or_else(|e| panic!("{writer}: {e}"));
            version += u64::from(1 + round % 2);
            assert_eq!(committed.version, version, "{writer}");
            expected.push(writer);
        }
    }
    let (state, loaded) = one.load("shared").await.unwrap().unwrap();
    assert_eq!(loaded, version);
    assert_eq!(state.writers, expected);
    let events = db.store.case_events("Probe", "shared").await.unwrap();
    assert_eq!(events.len() as u64, version);
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=version).collect::<Vec<_>>()
    );
}

/// A command that loses a race (uncached: it decides on a fresh load and
/// still loses) answers `Conflict` with the version of the winner.
async fn a_conflict_reports_the_version_that_won(db: &TestDb) {
    probes(db)
        .execute("race", append(2, "seed"), HashMap::new())
        .await
        .unwrap();
    let gate = Gate(Some(Arc::new(Barrier::new(2))));
    let cases = Arc::new(Cases::<Probe>::new(&db.store, gate).with_cache(0));
    let run = |count: u32, writer: &'static str| {
        let cases = cases.clone();
        tokio::spawn(async move {
            cases
                .execute("race", append(count, writer), HashMap::new())
                .await
        })
    };
    let (a, b) = (run(3, "a"), run(1, "b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let (won, actual) = match (&a, &b) {
        (Ok(c), Err(CommandError::Conflict { actual })) => (c.version, *actual),
        (Err(CommandError::Conflict { actual }), Ok(c)) => (c.version, *actual),
        other => panic!("expected one success and one conflict, got {other:?}"),
    };
    assert_eq!(actual, Some(won));
}

/// The engine's append positions its own rows; rows inserted any other way
/// get a position from the database, and on PostgreSQL a position that the
/// inserting transaction could not have been given is refused, since
/// readers rely on every position lying above the horizon of the
/// transaction that wrote it.
async fn rows_from_other_paths_get_a_position_or_are_refused(db: &TestDb) {
    probes(db)
        .execute("engine", append(2, "w"), HashMap::new())
        .await
        .unwrap();
    match db.store.backend() {
        Backend::Postgres(pool) => {
            let insert = |position: Option<i64>| {
                sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata, position) \
                     VALUES ('Probe', 'other', 1, 'Appended', '1', '{}', '{}', $1)",
                )
                .bind(position)
                .execute(pool)
            };
            let err = insert(Some(5))
                .await
                .expect_err("a forged position is refused");
            assert!(
                err.to_string().contains("not assigned by this transaction"),
                "{err}"
            );
            insert(None).await.unwrap();
        }
        Backend::Sqlite(pool) => {
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) \
                 VALUES ('Probe', 'other', 1, 'Appended', '1', '{}', '{}')",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
    let log = read_all(&db.store, 3).await;
    assert_eq!(
        log.iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        ["engine", "engine", "other"]
    );
    assert!(log.windows(2).all(|w| w[0].position < w[1].position));
}
