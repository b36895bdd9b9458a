//! Rebuilding read models (`projections::replay`) through the real store on
//! each backend: what the runner built incrementally while writers ran
//! equals, row for row, what a rebuild from position 0 builds; a rebuild may
//! run while writers and the live runner go on; and a rebuild stopped
//! half-way leaves the live tables as they were.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mediation_domain::dispute::{
    AgreementForm, Dispute, DisputeAction, DisputeCommand, MediationBody, Party, PartyRole,
    Performance, Satisfaction,
};
use mediation_domain::petition::{
    OpinionOutcome, Petition, PetitionAction, PetitionCommand, Petitioner,
};
use mediation_domain::services::{Clock as _, ManualClock, Services};
use mediation_domain::values::{
    Actor, AgencyId, DisputeCategory, DivisionCode, Level, MediationKind, Name, PetitionChannel,
    PetitionLevel, Risk, Text,
};
use mediation_projections::petitioners::PetitionerSecret;
use mediation_projections::replay::{self, Progress};
use mediation_projections::runner::{self, BATCH, Projection, ProjectionStatus};
use mediation_store::{Backend, Cases, REBUILD_SUFFIX, Store, rebuild_checkpoint};
use mediation_tests::{TestDb, read_all};
use serde_json::Value;
use sqlx::Row;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

on_both_backends!(
    read_models_built_while_writers_ran_equal_a_rebuild,
    a_rebuild_beside_writers_and_the_live_runner_loses_nothing,
    an_interrupted_rebuild_leaves_the_live_tables_and_the_next_succeeds,
);

/// Monday 2 March 2026, 10:00 in Beijing.
const T0: &str = "2026-03-02T02:00:00Z";
/// Villages of the example jurisdiction, under two towns.
const VILLAGES: [&str; 2] = ["990101001201", "990101101201"];
/// Concurrent writers, and the cases each writes.
const WRITERS: usize = 6;
const CASES_PER_WRITER: usize = 10;

fn t0() -> DateTime<Utc> {
    T0.parse().unwrap()
}

fn division(code: &str) -> DivisionCode {
    DivisionCode::parse(code).unwrap()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

fn actor(id: &str, agency: &str) -> Actor {
    Actor::parse(id, agency).unwrap()
}

/// The steps of a dispute from its report to a mediation session.
fn dispute_steps(village: &str, n: usize) -> Vec<DisputeCommand> {
    let grid = actor("grid-worker-7", "liuan-village-grid");
    let mediator = actor("mediator-1", "liuan-village-committee");
    let by = |by: &Actor, action| DisputeCommand {
        by: by.clone(),
        action,
    };
    let consent = |party| DisputeAction::RecordConsent {
        party,
        consents: true,
        reason: None,
    };
    let mut steps = vec![
        by(
            &grid,
            DisputeAction::Report {
                division: division(village),
                grid: Some(name("Grid 3")),
                summary: text("Water from the upstairs flat leaks into the kitchen below."),
            },
        ),
        by(
            &mediator,
            DisputeAction::Register {
                division: division(village),
                level: Level::Village,
                category: DisputeCategory::Neighbourhood,
                risk: Risk::Yellow,
                summary: text("Leak from flat 302 into flat 202; the owners disagree."),
                parties: vec![
                    Party {
                        role: PartyRole::Applicant,
                        name: name("Li Si"),
                    },
                    Party {
                        role: PartyRole::Respondent,
                        name: name("Wang Wu"),
                    },
                ],
            },
        ),
        by(
            &mediator,
            DisputeAction::Dispatch {
                body: MediationBody {
                    id: AgencyId::parse("liuan-village-committee").unwrap(),
                    name: name("Liu'an Mediation Committee"),
                    kind: MediationKind::Peoples,
                },
                mediator: Some(name(if n.is_multiple_of(2) {
                    "Zhao Liu"
                } else {
                    "Qian Qi"
                })),
            },
        ),
    ];
    // Some cases stop at dispatch, so that the read models hold cases in
    // several states.
    if !n.is_multiple_of(3) {
        steps.push(by(&mediator, consent(PartyRole::Applicant)));
        steps.push(by(&mediator, consent(PartyRole::Respondent)));
        steps.push(by(
            &mediator,
            DisputeAction::HoldSession {
                summary: text("Both sides stated their case."),
            },
        ));
        // Some agree and are followed up, for the statistics' agreement
        // columns.
        if n % 4 == 2 {
            steps.push(by(
                &mediator,
                DisputeAction::ReachAgreement {
                    form: AgreementForm::Oral,
                    terms: text("The owner of 302 repairs the pipe."),
                },
            ));
            steps.push(by(
                &mediator,
                DisputeAction::RecordFollowUp {
                    performance: Performance::Performed,
                    note: text("The pipe is repaired."),
                },
            ));
        }
    }
    steps
}

/// The steps of a petition from its receipt to its acceptance.
fn petition_steps(village: &str, n: usize) -> Vec<PetitionCommand> {
    let office = actor("officer-1", "district-petition-bureau");
    let unit = actor("clerk-2", "donghu-subdistrict-office");
    let by = |by: &Actor, action| PetitionCommand {
        by: by.clone(),
        action,
    };
    let mut steps = vec![by(
        &office,
        PetitionAction::Receive {
            channel: if n.is_multiple_of(2) {
                PetitionChannel::Letter
            } else {
                PetitionChannel::Visit
            },
            matter_type: None,
            petitioner: Petitioner {
                // Some petitioners come more than once.
                name: name(&format!("Petitioner {}", n % 4)),
                contact: Some(name("13800000000")),
            },
            complained_unit: Some(name("Liu'an Village Committee")),
            complained_unit_id: None,
            facts: text("The village road has not been repaired since the floods."),
            division: division(village),
            competent_level: Level::Village,
            visited_level: (n % 2 == 1).then_some(PetitionLevel::District),
            representatives: 1,
            repeat_of: None,
        },
    )];
    if !n.is_multiple_of(3) {
        steps.push(by(
            &office,
            PetitionAction::Forward {
                to_unit: name("Donghu Subdistrict Office"),
            },
        ));
        steps.push(by(&unit, PetitionAction::Accept {}));
        // Some are answered and evaluated, for the petition statistics.
        if n % 5 == 1 {
            steps.push(by(
                &unit,
                PetitionAction::IssueOpinion {
                    outcome: OpinionOutcome::Support,
                    summary: text("The road is repaired next month."),
                },
            ));
            steps.push(by(
                &office,
                PetitionAction::Evaluate {
                    satisfaction: Satisfaction::BasicallySatisfied,
                    note: None,
                },
            ));
        }
    }
    steps
}

/// Runs every projection of the server with the real runner until `stop`.
struct Runners {
    stop: CancellationToken,
    wake: watch::Sender<u64>,
    statuses: Vec<watch::Receiver<ProjectionStatus>>,
    handles: Vec<JoinHandle<()>>,
}

impl Runners {
    fn start(store: &Store) -> Self {
        let stop = CancellationToken::new();
        let (wake, woken) = watch::channel(0);
        let mut statuses = Vec::new();
        let mut handles = Vec::new();
        for projection in mediation_projections::all(&PetitionerSecret::development()) {
            let (report, status) = watch::channel(ProjectionStatus::default());
            statuses.push(status);
            handles.push(tokio::spawn(runner::run(
                store.clone(),
                projection,
                woken.clone(),
                report,
                stop.clone(),
            )));
        }
        Self {
            stop,
            wake,
            statuses,
            handles,
        }
    }

    /// Waits until the log holds all `events` written (on PostgreSQL,
    /// another test's open transaction may hold readers back for a moment)
    /// and every projection has applied them. Returns the log head.
    async fn caught_up(&mut self, store: &Store, events: u64) -> u64 {
        let log = read_all(store, usize::try_from(events).unwrap()).await;
        let head = log.last().unwrap().position;
        for status in &mut self.statuses {
            tokio::time::timeout(
                Duration::from_secs(60),
                status.wait_for(|s| s.position >= head),
            )
            .await
            .unwrap_or_else(|_| panic!("a projection did not reach the log head {head}"))
            .unwrap();
        }
        for projection in mediation_projections::all(&PetitionerSecret::development()) {
            assert_eq!(store.checkpoint(projection.name()).await.unwrap(), head);
        }
        head
    }

    async fn stop(self) {
        self.stop.cancel();
        for handle in self.handles {
            handle.await.unwrap();
        }
    }
}

/// Writes disputes and petitions from `WRITERS` concurrent tasks; each
/// commit wakes the runners. With `pace`, each command waits for a permit
/// from it, until it is closed. Returns the number of events written.
async fn write_concurrently(
    store: &Store,
    tag: &str,
    wake: &watch::Sender<u64>,
    pace: Option<Arc<Semaphore>>,
) -> u64 {
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let clock = ManualClock::new(t0() + chrono::Duration::hours(w as i64));
        let services = Services::shipped_defaults(Arc::new(clock.clone()));
        let disputes = Cases::<Dispute>::new(store, services.clone());
        let petitions = Cases::<Petition>::new(store, services);
        let (wake, pace) = (wake.clone(), pace.clone());
        let paced = move || {
            let pace = pace.clone();
            async move {
                if let Some(pace) = pace
                    && let Ok(permit) = pace.acquire().await
                {
                    permit.forget();
                }
            }
        };
        let tag = tag.to_owned();
        writers.push(tokio::spawn(async move {
            let mut events = 0u64;
            for c in 0..CASES_PER_WRITER {
                let n = w * CASES_PER_WRITER + c;
                let village = VILLAGES[n % VILLAGES.len()];
                let version = if n.is_multiple_of(2) {
                    let id = format!("{tag}-dispute-{n}");
                    let mut version = 0;
                    for step in dispute_steps(village, n) {
                        paced().await;
                        version = disputes
                            .execute(&id, step, HashMap::new())
                            .await
                            .unwrap_or_else(|e| panic!("{id}: {e}"))
                            .version;
                        wake.send_modify(|_| {});
                    }
                    // Some cases overrun their mediation, so that the read
                    // models hold breaches (recorded as the timers would),
                    // and the clock goes back for the next case.
                    if n.is_multiple_of(6) {
                        let (dispute, _) = disputes.load(&id).await.unwrap().unwrap();
                        let due = dispute.running_clocks()[0].deadline;
                        let started = clock.now();
                        clock.set(due.due + chrono::Duration::hours(1));
                        let breach = DisputeCommand {
                            by: actor("engine", "deadline-timers"),
                            action: DisputeAction::RecordDeadlineBreach {
                                stage: due.stage,
                                due: due.due,
                            },
                        };
                        paced().await;
                        version = disputes
                            .execute(&id, breach, HashMap::new())
                            .await
                            .unwrap_or_else(|e| panic!("{id}: {e}"))
                            .version;
                        wake.send_modify(|_| {});
                        clock.set(started);
                    }
                    version
                } else {
                    let id = format!("{tag}-petition-{n}");
                    let mut version = 0;
                    for step in petition_steps(village, n) {
                        paced().await;
                        version = petitions
                            .execute(&id, step, HashMap::new())
                            .await
                            .unwrap_or_else(|e| panic!("{id}: {e}"))
                            .version;
                        wake.send_modify(|_| {});
                    }
                    version
                };
                events += version;
            }
            events
        }));
    }
    let mut total = 0;
    for writer in writers {
        total += writer.await.unwrap();
    }
    total
}

/// Every row of every table of every projection, as JSON objects ordered by
/// the table's primary key, by table name.
async fn dump(store: &Store) -> BTreeMap<&'static str, Vec<Value>> {
    let mut tables = BTreeMap::new();
    for projection in mediation_projections::all(&PetitionerSecret::development()) {
        for &table in projection.tables() {
            tables.insert(table, dump_table(store, table).await);
        }
    }
    tables
}

async fn dump_table(store: &Store, table: &str) -> Vec<Value> {
    match store.backend() {
        Backend::Postgres(pool) => {
            let key: Vec<String> = sqlx::query_scalar(
                "SELECT a.attname::text FROM pg_index i \
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n",
            )
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap();
            assert!(!key.is_empty(), "{table} has no primary key");
            sqlx::query_scalar(&format!(
                "SELECT to_jsonb(t) FROM {table} t ORDER BY {}",
                key.join(", ")
            ))
            .fetch_all(pool)
            .await
            .unwrap()
        }
        Backend::Sqlite(pool) => {
            let columns = sqlx::query("SELECT name, pk FROM pragma_table_info(?)")
                .bind(table)
                .fetch_all(pool)
                .await
                .unwrap();
            let mut key: Vec<(i64, String)> = columns
                .iter()
                .map(|row| (row.get::<i64, _>("pk"), row.get::<String, _>("name")))
                .filter(|(pk, _)| *pk > 0)
                .collect();
            key.sort();
            assert!(!key.is_empty(), "{table} has no primary key");
            let object: Vec<String> = columns
                .iter()
                .map(|row| {
                    let column: String = row.get("name");
                    format!("'{column}', \"{column}\"")
                })
                .collect();
            let order: Vec<&str> = key.iter().map(|(_, c)| c.as_str()).collect();
            let rows: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT json_object({}) FROM {table} ORDER BY {}",
                object.join(", "),
                order.join(", ")
            ))
            .fetch_all(pool)
            .await
            .unwrap();
            rows.iter()
                .map(|r| serde_json::from_str(r).unwrap())
                .collect()
        }
    }
}

/// Every table and index of the database, by name, with its definition
/// (PostgreSQL: columns, constraints and index definitions; SQLite: the
/// stored SQL, quotes aside, since a rename quotes the table's name).
async fn schema(store: &Store) -> Vec<String> {
    let mut objects: Vec<String> = match store.backend() {
        Backend::Postgres(pool) => sqlx::query_scalar(
            "SELECT c.relname || ' (' || c.relpersistence::text || '): ' || CASE c.relkind \
               WHEN 'i' THEN pg_get_indexdef(c.oid) \
               ELSE (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
                                       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END \
                                       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''), \
                                       ', ' ORDER BY a.attnum) \
                     FROM pg_attribute a \
                     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) \
                    || coalesce((SELECT '; ' || string_agg(o.conname || ' ' || pg_get_constraintdef(o.oid), \
                                                 ', ' ORDER BY o.conname) \
                                 FROM pg_constraint o WHERE o.conrelid = c.oid), '') \
               END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Backend::Sqlite(pool) => sqlx::query_scalar(
            "SELECT name || ': ' || coalesce(replace(sql, '\"', ''), '') FROM sqlite_master \
             WHERE type IN ('table', 'index')",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    objects.sort();
    objects
}

/// Fails naming the tables and indexes that differ from `before`.
fn assert_same_schema(before: &[String], after: &[String]) {
    let gone: Vec<&String> = before.iter().filter(|o| !after.contains(o)).collect();
    let new: Vec<&String> = after.iter().filter(|o| !before.contains(o)).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "the schema changed: before only {gone:#?}\nafter only {new:#?}"
    );
}

fn assert_same(
    live: &BTreeMap<&'static str, Vec<Value>>,
    rebuilt: &BTreeMap<&'static str, Vec<Value>>,
) {
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        rebuilt.keys().collect::<Vec<_>>()
    );
    for (table, rows) in live {
        let other = &rebuilt[table];
        assert_eq!(
            rows.len(),
            other.len(),
            "{table}: {} rows live, {} rebuilt",
            rows.len(),
            other.len()
        );
        for (i, (a, b)) in rows.iter().zip(other).enumerate() {
            assert_eq!(
                a, b,
                "{table}, row {i}: live (left) and rebuilt (right) differ"
            );
        }
    }
}

/// Rebuilds every projection together, as `mediation replay` does,
/// checking what the rebuild reports. With `pace`, lets writers take
/// three more steps after every batch.
async fn rebuild_all(store: &Store, batch_size: u32, pace: Option<&Semaphore>) {
    let head = store.log_head().await.unwrap();
    let all = mediation_projections::all(&PetitionerSecret::development());
    let mut reports: Vec<Progress> = Vec::new();
    let rebuilt = replay::rebuild_together(store, &all, batch_size, |p| {
        if let Some(pace) = pace {
            pace.add_permits(3);
        }
        reports.push(p);
    })
    .await
    .unwrap();
    assert!(
        rebuilt.events > 0 && rebuilt.rate_per_second > 0.0,
        "{rebuilt:?}"
    );
    let last = reports.last().unwrap();
    assert_eq!(last.events, rebuilt.events);
    assert!(last.position >= head, "rebuilt to {}", last.position);
    assert!(
        reports.windows(2).all(|w| w[0].events <= w[1].events),
        "progress went backwards"
    );
    for name in all.iter().map(|p| p.name()) {
        // The live checkpoint stands where the rebuilt tables do, and the
        // rebuild's own checkpoint is gone.
        let live = store.checkpoint(name).await.unwrap();
        // (Beside a live runner, it may have moved on already.)
        assert!(live >= head, "{name}: live at {live}");
        assert!(!checkpoint_exists(store, &rebuild_checkpoint(name)).await);
    }
}

/// Rebuilds each projection on its own, as `mediation replay --projection`
/// does.
async fn rebuild_each(store: &Store, batch_size: u32) {
    let head = store.log_head().await.unwrap();
    for projection in mediation_projections::all(&PetitionerSecret::development()) {
        let name = projection.name();
        let rebuilt = replay::rebuild_in_batches(store, &projection, batch_size, |_| {})
            .await
            .unwrap();
        assert!(rebuilt.events > 0, "{name}: {rebuilt:?}");
        assert!(store.checkpoint(name).await.unwrap() >= head, "{name}");
    }
}

/// Waits until readers of the log see at least `events` events: on
/// PostgreSQL, a transaction open anywhere on the server (another test
/// creating its database, say) holds them back for a moment.
async fn settled(store: &Store, events: u32) {
    let started = std::time::Instant::now();
    while store.read_log(0, events).await.unwrap().len() < events as usize {
        if started.elapsed() > Duration::from_secs(60) {
            panic!(
                "the log did not settle; {}",
                mediation_tests::holders(store).await
            );
        }
        tokio::task::yield_now().await;
    }
}

async fn clear(store: &Store, table: &str) {
    let sql = format!("DELETE FROM {table}");
    match store.backend() {
        Backend::Postgres(pool) => {
            sqlx::query(&sql).execute(pool).await.unwrap();
        }
        Backend::Sqlite(pool) => {
            sqlx::query(&sql).execute(pool).await.unwrap();
        }
    }
}

async fn checkpoint_exists(store: &Store, name: &str) -> bool {
    let count: i64 = match store.backend() {
        Backend::Postgres(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
                .unwrap()
        }
        Backend::Sqlite(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints WHERE name = ?")
                .bind(name)
                .fetch_one(pool)
                .await
                .unwrap()
        }
    };
    count > 0
}

async fn read_models_built_while_writers_ran_equal_a_rebuild(db: &TestDb) {
    let store = &db.store;
    let mut runners = Runners::start(store);
    let events = write_concurrently(store, "a", &runners.wake, None).await;
    assert!(events >= 200, "only {events} events written");
    runners.caught_up(store, events).await;
    runners.stop().await;

    let schema_before = schema(store).await;
    let live = dump(store).await;
    assert_eq!(
        live["case_index"].len(),
        WRITERS * CASES_PER_WRITER,
        "every case is indexed"
    );
    for (table, rows) in &live {
        assert!(
            !rows.is_empty(),
            "{table} is empty: the test proves nothing for it"
        );
    }

    rebuild_all(store, BATCH, None).await;
    assert_same(&live, &dump(store).await);
    // The same tables and indexes under the same names, and no copies left.
    assert_same_schema(&schema_before, &schema(store).await);

    // A second rebuild finds the names as the first left them; and what it
    // swaps in comes from the log, not from the tables it replaces.
    for projection in mediation_projections::all(&PetitionerSecret::development()) {
        for table in projection.tables() {
            clear(store, table).await;
        }
    }
    rebuild_all(store, 50, None).await;
    assert_same(&live, &dump(store).await);
    assert_same_schema(&schema_before, &schema(store).await);

    // One projection at a time, as `mediation replay --projection` does,
    // in batches that split most cases' events.
    rebuild_each(store, 7).await;
    assert_same(&live, &dump(store).await);
    assert_same_schema(&schema_before, &schema(store).await);
}

async fn a_rebuild_beside_writers_and_the_live_runner_loses_nothing(db: &TestDb) {
    let store = &db.store;
    let mut runners = Runners::start(store);
    // The writers take 40 steps, then one more for every permit the
    // rebuild's batches hand out, so that they write while it runs.
    let pace = Arc::new(Semaphore::new(40));
    let writing = {
        let (store, wake, pace) = (store.clone(), runners.wake.clone(), pace.clone());
        tokio::spawn(async move { write_concurrently(&store, "b", &wake, Some(pace)).await })
    };
    // Rebuild in small batches while the writers and the runners go on.
    settled(store, 40).await;
    rebuild_all(store, 10, Some(&pace)).await;
    pace.close();
    let events = writing.await.unwrap();
    assert!(events >= 200, "only {events} events written");

    // The runners carry on from where the swap left the checkpoints.
    runners.wake.send_modify(|_| {});
    runners.caught_up(store, events).await;
    runners.stop().await;
    let live = dump(store).await;
    assert_eq!(
        live["case_index"].len(),
        WRITERS * CASES_PER_WRITER,
        "every case is indexed"
    );

    rebuild_all(store, BATCH, None).await;
    assert_same(&live, &dump(store).await);
}

async fn an_interrupted_rebuild_leaves_the_live_tables_and_the_next_succeeds(db: &TestDb) {
    let store = &db.store;
    let mut runners = Runners::start(store);
    let events = write_concurrently(store, "c", &runners.wake, None).await;
    let head = runners.caught_up(store, events).await;
    runners.stop().await;
    let schema_before = schema(store).await;
    let live = dump(store).await;

    for shared in mediation_projections::all(&PetitionerSecret::development()) {
        let projection: &dyn Projection = shared.as_ref();
        let name = projection.name();

        // Stopped after one batch of the copies: the live tables and the
        // live checkpoint are untouched.
        replay::prepare(store, projection).await.unwrap();
        assert_eq!(
            runner::run_once(store, projection, true, 5).await.unwrap(),
            5
        );
        assert_eq!(store.checkpoint(name).await.unwrap(), head, "{name}");
        assert_same(&live, &dump(store).await);

        // A rebuild dropped in the middle (its future is not polled again
        // after the first batch) leaves them untouched too.
        let first_batch = tokio::sync::Notify::new();
        let rebuilding = replay::rebuild_in_batches(store, &shared, 1, |p| {
            if p.events > 0 {
                first_batch.notify_one();
            }
        });
        tokio::select! {
            biased;
            () = first_batch.notified() => {}
            done = rebuilding => panic!("{name}: the rebuild was to be stopped, not to finish: {done:?}"),
        }
        assert_eq!(store.checkpoint(name).await.unwrap(), head, "{name}");
        assert_same(&live, &dump(store).await);
    }

    // The next rebuild starts over, drops the leftovers and succeeds.
    rebuild_all(store, BATCH, None).await;
    assert_same(&live, &dump(store).await);
    assert_same_schema(&schema_before, &schema(store).await);
    for projection in mediation_projections::all(&PetitionerSecret::development()) {
        assert_eq!(store.checkpoint(projection.name()).await.unwrap(), head);
    }
    let leftovers: Vec<String> = schema(store)
        .await
        .into_iter()
        .filter(|n| n.contains(REBUILD_SUFFIX))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
