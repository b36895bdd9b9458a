//! A log written in the events' first versions (`tests/fixtures/first-versions.jsonl`:
//! the stored rows, in the shapes the first commits' events had and with
//! the metadata the first gRPC API wrote beside them, `rpc` and
//! `division`, inserted as they were stored) read by today's engine on
//! each backend: loaded
//! into today's aggregates, which take commands; rebuilt into read models
//! as `mediation replay` rebuilds them; exported; and read over
//! `ReadEvents`. Each shows the current shape, the application the first
//! versions stored with its ruling deadline (`JudicialConfirmationRequested`
//! version 1) as the application and its acceptance, both at that row's
//! position and sequence. And an event of a version newer than this engine
//! stops every reader with an error naming it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mediation_domain::dispute::{
    ConfirmationStep, Dispute, DisputeAction, DisputeCommand, DisputeStatus,
};
use mediation_domain::petition::{Petition, PetitionAction, PetitionCommand};
use mediation_domain::services::{ManualClock, Services};
use mediation_domain::values::{Actor, Name};
use mediation_export::{Format, Identities, Options};
use mediation_projections::history::case_as_of;
use mediation_projections::petitioners::PetitionerSecret;
use mediation_projections::replay::{REBUILD_BATCH, rebuild_together};
use mediation_proto::v1 as pb;
use mediation_store::{Backend, Cases, CommandError, RecordedEvent, Store, StoreError};
use mediation_tests::server::{DISTRICT_SUPERVISOR, TestServer};
use mediation_tests::{TestDb, read_all};
use serde_json::{Value, json};
use sqlx::Row;

on_both_backends!(
    a_log_of_first_versions_reads_in_the_current_shape_everywhere,
    an_event_of_a_future_version_stops_every_reader,
);

const FIXTURE: &str = include_str!("../fixtures/first-versions.jsonl");
const DISPUTE: &str = "D-first-1";
const PETITION: &str = "P-first-1";
/// The dispute's application for judicial confirmation, stored as
/// `JudicialConfirmationRequested` version 1 with its ruling deadline.
const APPLICATION: u64 = 8;

fn secret() -> PetitionerSecret {
    PetitionerSecret::new(b"upcasting-test-secret-0123456789ab").unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn officer() -> Actor {
    Actor::parse("officer-1", "990101001201-committee").unwrap()
}

/// Inserts `rows` into the log as they are, one statement each, the way
/// the engine of then stored them (the database fills in position, id and
/// recorded time).
async fn insert_rows(store: &Store, rows: &[Value]) {
    for row in rows {
        let text = |key: &str| row[key].as_str().unwrap().to_owned();
        let sequence = row["sequence"].as_i64().unwrap();
        match store.backend() {
            Backend::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(text("aggregate_type"))
                .bind(text("aggregate_id"))
                .bind(sequence)
                .bind(text("event_type"))
                .bind(text("event_version"))
                .bind(&row["payload"])
                .bind(&row["metadata"])
                .execute(pool)
                .await
                .unwrap();
            }
            Backend::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(text("aggregate_type"))
                .bind(text("aggregate_id"))
                .bind(sequence)
                .bind(text("event_type"))
                .bind(text("event_version"))
                .bind(row["payload"].to_string())
                .bind(row["metadata"].to_string())
                .execute(pool)
                .await
                .unwrap();
            }
        }
    }
}

fn fixture() -> Vec<Value> {
    FIXTURE
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every read model rebuilt from the log, as `mediation replay` does.
async fn replay(store: &Store) -> Result<(), StoreError> {
    let all = mediation_projections::all(&secret());
    rebuild_together(store, &all, REBUILD_BATCH, |_| {})
        .await
        .map(|_| ())
}

/// The case index's version and state of the dispute.
async fn indexed_dispute(store: &Store) -> (i64, Value) {
    let row = match store.backend() {
        Backend::Postgres(pool) => {
            let row = sqlx::query(
                "SELECT version, state::text AS state FROM case_index \
                 WHERE aggregate_type = 'Dispute' AND case_id = $1",
            )
            .bind(DISPUTE)
            .fetch_one(pool)
            .await
            .unwrap();
            (row.get::<i64, _>("version"), row.get::<String, _>("state"))
        }
        Backend::Sqlite(pool) => {
            let row = sqlx::query(
                "SELECT version, state FROM case_index \
                 WHERE aggregate_type = 'Dispute' AND case_id = ?",
            )
            .bind(DISPUTE)
            .fetch_one(pool)
            .await
            .unwrap();
            (row.get::<i64, _>("version"), row.get::<String, _>("state"))
        }
    };
    (row.0, serde_json::from_str(&row.1).unwrap())
}

/// The dispute's SLA clocks as (stage, status), in stage order.
async fn dispute_clocks(store: &Store) -> Vec<(String, String)> {
    let sql_pg = "SELECT stage, status FROM sla_clocks \
                  WHERE aggregate_type = 'Dispute' AND case_id = $1 ORDER BY stage";
    let sql_lite = "SELECT stage, status FROM sla_clocks \
                    WHERE aggregate_type = 'Dispute' AND case_id = ? ORDER BY stage";
    let rows: Vec<(String, String)> = match store.backend() {
        Backend::Postgres(pool) => sqlx::query_as(sql_pg)
            .bind(DISPUTE)
            .fetch_all(pool)
            .await
            .unwrap(),
        Backend::Sqlite(pool) => sqlx::query_as(sql_lite)
            .bind(DISPUTE)
            .fetch_all(pool)
            .await
            .unwrap(),
    };
    rows
}

/// The two events the stored application reads as, checked: the
/// application without a ruling deadline (version 2) and the acceptance
/// carrying it (version 1), at the same moment, by the same actor.
fn assert_application_split(application: &Value, acceptance: &Value) {
    let request = &application["change"]["JudicialConfirmationRequested"];
    assert_eq!(request["court"], "示范区人民法院", "{application}");
    assert!(request.get("ruling_due").is_none(), "{application}");
    let accepted = &acceptance["change"]["JudicialConfirmationAccepted"];
    assert_eq!(
        accepted["ruling_due"],
        json!({
            "stage": "judicial_confirmation_ruling",
            "due": "2026-03-30T16:00:00Z",
            "last_day": "2026-03-30",
            "provisional": false
        }),
        "{acceptance}"
    );
    assert_eq!(application["at"], "2026-03-12T02:00:00Z");
    assert_eq!(acceptance["at"], application["at"]);
    assert_eq!(acceptance["by"], application["by"]);
}

/// The log's events of the stored application, checked: two, sharing the
/// row's position, id and sequence, told apart by `part`.
fn assert_split_in_log(events: &[RecordedEvent]) {
    let split: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| e.aggregate_id == DISPUTE && e.sequence == APPLICATION)
        .collect();
    assert_eq!(split.len(), 2, "{split:?}");
    assert_eq!(
        split
            .iter()
            .map(|e| (
                e.event_type.as_str(),
                e.event_version.as_str(),
                e.part,
                e.parts
            ))
            .collect::<Vec<_>>(),
        vec![
            ("JudicialConfirmationRequested", "2", 0, 2),
            ("JudicialConfirmationAccepted", "1", 1, 2),
        ]
    );
    assert_eq!(split[0].position, split[1].position);
    assert_eq!(split[0].event_id, split[1].event_id);
    assert!(!split[0].ends_row() && split[1].ends_row());
    assert_application_split(&split[0].payload, &split[1].payload);
}

async fn a_log_of_first_versions_reads_in_the_current_shape_everywhere(db: &TestDb) {
    let store = &db.store;
    let rows = fixture();
    insert_rows(store, &rows).await;
    // Nine rows; the application reads as two events.
    let events = read_all(store, rows.len() + 1).await;
    assert_split_in_log(&events);
    assert!(
        events
            .iter()
            .all(|e| e.event_version == "1" || e.event_type == "JudicialConfirmationRequested")
    );
    let own = store.case_events("Dispute", DISPUTE).await.unwrap();
    assert_eq!(own.len(), 9);
    assert_split_in_log(&own);

    // The read models, rebuilt: the case index holds the dispute at the
    // application's sequence with the acceptance applied, not dropped as
    // an event at a sequence it already holds.
    replay(store).await.unwrap();
    let (version, state) = indexed_dispute(store).await;
    assert_eq!(version, 8);
    let confirmation = &state["confirmation"];
    assert_eq!(confirmation["accepted"], true, "{state}");
    assert_eq!(
        confirmation["ruling_due"]["last_day"], "2026-03-30",
        "{state}"
    );
    let clocks = dispute_clocks(store).await;
    assert!(
        clocks.contains(&("judicial_confirmation_ruling".into(), "running".into())),
        "{clocks:?}"
    );

    // Today's aggregates: the application awaits its ruling, accepted on
    // arrival as the first versions took it, and commands go through.
    let clock = ManualClock::new(at("2026-03-20T02:00:00Z"));
    let services = Services::shipped_defaults(Arc::new(clock.clone()));
    let disputes = Cases::<Dispute>::new(store, services.clone());
    let petitions = Cases::<Petition>::new(store, services.clone());
    let (dispute, version) = disputes.load(DISPUTE).await.unwrap().unwrap();
    assert_eq!(version, 8);
    assert_eq!(dispute.status(), DisputeStatus::Agreed);
    let confirmation = dispute.judicial_confirmation().unwrap();
    assert_eq!(confirmation.step(), ConfirmationStep::AwaitingRuling);
    assert_eq!(confirmation.accepted, Some(true));
    let ruled = disputes
        .execute(
            DISPUTE,
            DisputeCommand {
                by: officer(),
                action: DisputeAction::RuleJudicialConfirmation {
                    confirmed: true,
                    note: None,
                },
            },
            HashMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(ruled.version, 9);
    let assigned = petitions
        .execute(
            PETITION,
            PetitionCommand {
                by: officer(),
                action: PetitionAction::AssignOfficial {
                    official: Name::parse("Zhao Lei").unwrap(),
                },
            },
            HashMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(assigned.version, 2);
    // Loaded afresh (no cache), the ruling stands on the upcast history.
    let fresh = Cases::<Dispute>::new(store, services).with_cache(0);
    let (dispute, version) = fresh.load(DISPUTE).await.unwrap().unwrap();
    assert_eq!(version, 9);
    assert_eq!(
        dispute.judicial_confirmation().unwrap().step(),
        ConfirmationStep::Ruled
    );

    let events = read_all(store, rows.len() + 3).await;
    replay(store).await.unwrap();
    let (version, state) = indexed_dispute(store).await;
    assert_eq!(version, 9);
    assert_eq!(state["confirmation"]["confirmed"], true, "{state}");
    let clocks = dispute_clocks(store).await;
    assert!(
        clocks.contains(&("judicial_confirmation_ruling".into(), "met".into())),
        "{clocks:?}"
    );

    // The export: the same events, the application as two rows.
    let out = tempfile::tempdir().unwrap();
    let options = Options {
        out: out.path().to_owned(),
        format: Format::Jsonl,
        since_position: None,
        until: None,
        with_read_models: false,
        identities: Identities::Clear,
        batch_size: 4,
    };
    let exported = mediation_export::export(store, &options, |_| {})
        .await
        .unwrap();
    assert_eq!(exported.events, events.len() as u64);
    let mut lines = Vec::new();
    jsonl_rows(&out.path().join("events"), &mut lines);
    assert_eq!(lines.len(), events.len());
    let mut split: Vec<&Value> = lines
        .iter()
        .filter(|r| r["case_id"] == DISPUTE && r["sequence"] == APPLICATION)
        .collect();
    split.sort_by_key(|r| r["part"].as_i64());
    assert_eq!(split.len(), 2);
    assert_eq!(
        split
            .iter()
            .map(|r| (
                r["event_type"].clone(),
                r["event_version"].clone(),
                r["part"].clone()
            ))
            .collect::<Vec<_>>(),
        vec![
            (json!("JudicialConfirmationRequested"), json!("2"), json!(0)),
            (json!("JudicialConfirmationAccepted"), json!("1"), json!(1)),
        ]
    );
    assert_eq!(split[0]["position"], split[1]["position"]);
    let payload =
        |r: &Value| -> Value { serde_json::from_str(r["payload"].as_str().unwrap()).unwrap() };
    assert_application_split(&payload(split[0]), &payload(split[1]));

    // ReadEvents: the current shape, the version, and the part.
    let server = TestServer::start(db, false).await;
    let mut client = server.events(&DISTRICT_SUPERVISOR);
    let page = client
        .read_events(pb::ReadEventsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events.len(), events.len());
    let split: Vec<&pb::Event> = page
        .events
        .iter()
        .filter(|e| e.case_id == DISPUTE && e.sequence == APPLICATION)
        .collect();
    assert_eq!(
        split
            .iter()
            .map(|e| (e.event_type.as_str(), e.event_version.as_str(), e.part))
            .collect::<Vec<_>>(),
        vec![
            ("JudicialConfirmationRequested", "2", 0),
            ("JudicialConfirmationAccepted", "1", 1),
        ]
    );
    assert_eq!(split[0].position, split[1].position);
    assert_eq!(split[0].event_id, split[1].event_id);
    let payload = |e: &pb::Event| -> Value { serde_json::from_str(&e.payload_json).unwrap() };
    assert_application_split(&payload(split[0]), &payload(split[1]));

    // The timeline shows the acceptance beside the application, with the
    // ruling deadline it carries.
    let timeline = client
        .get_case_history(pb::GetCaseHistoryRequest {
            aggregate_type: pb::AggregateType::Dispute.into(),
            case_id: DISPUTE.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let steps: Vec<(String, u64, u32, Vec<String>)> = timeline
        .iter()
        .map(|entry| {
            let event = entry.event.as_ref().unwrap();
            let deadlines = entry.deadlines.iter().map(|d| d.stage.clone()).collect();
            (
                event.event_type.clone(),
                event.sequence,
                event.part,
                deadlines,
            )
        })
        .filter(|(_, sequence, _, _)| *sequence == APPLICATION)
        .collect();
    assert_eq!(
        steps,
        vec![
            (
                "JudicialConfirmationRequested".into(),
                APPLICATION,
                0,
                vec![]
            ),
            (
                "JudicialConfirmationAccepted".into(),
                APPLICATION,
                1,
                vec!["judicial_confirmation_ruling".into()]
            ),
        ]
    );
    server.stop().await;

    // As it stood the day after the application: both of the row's events
    // folded, at the row's sequence.
    let then = case_as_of::<Dispute>(store, DISPUTE, at("2026-03-13T00:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(then.version, APPLICATION);
    let confirmation = then.case.judicial_confirmation().unwrap();
    assert_eq!(confirmation.step(), ConfirmationStep::AwaitingRuling);
    assert_eq!(confirmation.accepted, Some(true));
}

/// Every exported JSON line under `dir`.
fn jsonl_rows(dir: &Path, into: &mut Vec<Value>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            jsonl_rows(&path, into);
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(&path).unwrap();
            into.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
    }
}

async fn an_event_of_a_future_version_stops_every_reader(db: &TestDb) {
    let store = &db.store;
    let mut rows = fixture();
    // The court's ruling, as an engine with a version 2 of it would store
    // it.
    let future = json!({
        "aggregate_type": "Dispute",
        "aggregate_id": DISPUTE,
        "sequence": 9,
        "event_type": "JudicialConfirmationRuled",
        "event_version": "2",
        "payload": {
            "at": "2026-03-20T02:00:00Z",
            "by": {"id": "clerk-7", "agency": "990101001201-committee"},
            "change": {"JudicialConfirmationRuled": {"confirmed": true, "note": null, "ruling_no": "(2026)示确字第1号"}}
        },
        "metadata": {}
    });
    rows.push(future);
    insert_rows(store, &rows).await;

    // The log's reader: an error naming the event once the row is
    // readable (on PostgreSQL another test's open transaction may hold
    // readers below it for a moment), never the rows before it alone.
    let started = Instant::now();
    let error = loop {
        match store.read_log(0, 100).await {
            Err(e) => break e,
            Ok(events) => {
                assert!(
                    events.iter().all(|e| e.sequence < 9),
                    "a future version was read: {events:?}"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the log did not settle"
                );
                tokio::task::yield_now().await;
            }
        }
    };
    let StoreError::Unreadable(message) = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.contains("JudicialConfirmationRuled version 2 is newer than this engine reads"),
        "{message}"
    );
    assert!(message.contains(DISPUTE), "{message}");
    assert!(matches!(
        store.case_events("Dispute", DISPUTE).await,
        Err(StoreError::Unreadable(_))
    ));

    // The aggregate: its load fails, and so does a command on it.
    let clock = ManualClock::new(at("2026-03-21T02:00:00Z"));
    let disputes = Cases::<Dispute>::new(store, Services::shipped_defaults(Arc::new(clock)));
    assert!(matches!(
        disputes.load(DISPUTE).await,
        Err(CommandError::Store(StoreError::Unreadable(_)))
    ));
    // The rebuild and the export stop at it rather than skip it.
    assert!(matches!(
        replay(store).await,
        Err(StoreError::Unreadable(_))
    ));
    let out = tempfile::tempdir().unwrap();
    let options = Options {
        out: out.path().to_owned(),
        format: Format::Jsonl,
        since_position: None,
        until: None,
        with_read_models: false,
        identities: Identities::Clear,
        batch_size: 100,
    };
    let exported = mediation_export::export(store, &options, |_| {}).await;
    assert!(
        exported
            .as_ref()
            .is_err_and(|e| e.to_string().contains("newer than this engine")),
        "{exported:?}"
    );

    // ReadEvents: a clear error, not a page without the event.
    let server = TestServer::start(db, false).await;
    let mut client = server.events(&DISTRICT_SUPERVISOR);
    let status = client
        .read_events(pb::ReadEventsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status
            .message()
            .contains("JudicialConfirmationRuled version 2 is newer than this engine reads"),
        "{status:?}"
    );
    server.stop().await;
}
