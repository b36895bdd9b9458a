//! A deadline counted by guess over a year with no holiday file is re-timed
//! once the server starts with that year's file: end to end over gRPC, on
//! each backend.
//!
//! The 2027 file written here is a fictional test calendar (1 and 4 January
//! off), made up for this test in a temporary directory. It is not the
//! official 2027 schedule, which has not been published.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mediation_api::config::{ConfigFiles, load_services};
use mediation_domain::services::{ManualClock, Services};
use mediation_proto::v1 as pb;
use mediation_proto::v1::sla_service_client::SlaServiceClient;
use mediation_tests::TestDb;
use mediation_tests::server::{Bearer, DISTRICT_SUPERVISOR, TestServer};

on_both_backends!(a_provisional_deadline_is_re_timed_when_its_year_is_loaded);

/// 上坪村, a village of the example jurisdiction.
const VILLAGE: &str = "990101101201";

/// A made-up schedule for 2027, for this test only.
const FICTIONAL_2027: &str = r#"{"year": 2027, "days": [
    {"name": "fictional test day off", "date": "2027-01-01", "isOffDay": true},
    {"name": "fictional test day off", "date": "2027-01-04", "isOffDay": true}
]}"#;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn timestamp(s: &str) -> prost_types::Timestamp {
    let t = at(s);
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

/// A server over `db` whose holiday files are the shipped ones and those
/// in `holidays`, its clock at `now`.
async fn server(db: &TestDb, holidays: &Path, now: &str) -> TestServer {
    let clock = ManualClock::new(at(now));
    let files = ConfigFiles {
        holidays: Some(holidays.to_owned()),
        ..ConfigFiles::default()
    };
    let services: Services = load_services(&files, Arc::new(clock.clone())).unwrap();
    TestServer::start_with_services(db, false, clock, services).await
}

async fn report(server: &TestServer, id: &str) -> pb::CommandOutcome {
    server
        .disputes(&DISTRICT_SUPERVISOR)
        .report_dispute(pb::ReportDisputeRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            dispute_id: id.into(),
            actor_id: "grid-worker-3".into(),
            division_code: VILLAGE.into(),
            grid: "Grid 3".into(),
            summary: "A drain was dug across the neighbour's path.".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
}

/// The clocks ListClocks returns with the `provisional` filter, as
/// (case, due time, provisional).
async fn clocks(
    server: &TestServer,
    filter: pb::ProvisionalFilter,
    min_position: u64,
) -> Vec<(String, Option<prost_types::Timestamp>, bool)> {
    let mut sla =
        SlaServiceClient::with_interceptor(server.channel(), Bearer::of(&DISTRICT_SUPERVISOR));
    let page = sla
        .list_clocks(pb::ListClocksRequest {
            provisional: filter.into(),
            min_position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    page.clocks
        .into_iter()
        .map(|c| (c.case_id, c.due_time, c.provisional))
        .collect()
}

async fn a_provisional_deadline_is_re_timed_when_its_year_is_loaded(db: &TestDb) {
    let without_2027 = tempfile::tempdir().unwrap();
    let with_2027 = tempfile::tempdir().unwrap();
    std::fs::write(with_2027.path().join("2027.json"), FICTIONAL_2027).unwrap();

    // A server without 2027. Reported on Monday 21 December 2026, D-2's
    // one working day for registration ends on the 22nd, as published.
    // Reported on Thursday 31 December, D-1's runs into 2027: Friday
    // 1 January is guessed a working day and the deadline is provisional.
    let first = server(db, without_2027.path(), "2026-12-21T02:00:00Z").await;
    report(&first, "D-2").await;
    first.clock.set(at("2026-12-31T02:00:00Z"));
    let reported = report(&first, "D-1").await;
    let guessed = Some(timestamp("2027-01-01T16:00:00Z"));
    let definitive_d2 = (
        "D-2".to_owned(),
        Some(timestamp("2026-12-22T16:00:00Z")),
        false,
    );
    assert_eq!(
        clocks(
            &first,
            pb::ProvisionalFilter::ProvisionalOnly,
            reported.position
        )
        .await,
        vec![("D-1".to_owned(), guessed, true)]
    );
    assert_eq!(
        clocks(
            &first,
            pb::ProvisionalFilter::DefinitiveOnly,
            reported.position
        )
        .await,
        vec![definitive_d2.clone()]
    );
    assert_eq!(
        clocks(
            &first,
            pb::ProvisionalFilter::Unspecified,
            reported.position
        )
        .await
        .len(),
        2
    );
    // An unknown filter value is refused, naming the field.
    let mut sla =
        SlaServiceClient::with_interceptor(first.channel(), Bearer::of(&DISTRICT_SUPERVISOR));
    let refused = sla
        .list_clocks(pb::ListClocksRequest {
            provisional: 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("provisional"), "{refused:?}");
    first.stop().await;

    // The same database, a server with the 2027 file: at start it re-times
    // D-1 in the background, by an event of the case.
    let second = server(db, with_2027.path(), "2027-01-01T03:00:00Z").await;
    let mut stream = second
        .events(&DISTRICT_SUPERVISOR)
        .subscribe_events(pb::SubscribeEventsRequest {
            after_position: reported.position,
            case_id: "D-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("the re-time is recorded soon after start")
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    drop(stream);
    assert_eq!(event.event_type, "DeadlinesRecomputed");
    let payload: serde_json::Value = serde_json::from_str(&event.payload_json).unwrap();
    assert_eq!(
        payload["change"]["DeadlinesRecomputed"]["deadlines"],
        serde_json::json!([{
            "stage": "grid_report",
            "old_due": "2027-01-01T16:00:00Z",
            "new_due": "2027-01-05T16:00:00Z",
            "last_day": "2027-01-05",
            "provisional": false
        }])
    );
    assert_eq!(payload["by"]["agency"], "engine");

    // The clock is re-timed in the read model: nothing provisional is left.
    assert_eq!(
        clocks(
            &second,
            pb::ProvisionalFilter::ProvisionalOnly,
            event.position
        )
        .await,
        vec![]
    );
    assert_eq!(
        clocks(
            &second,
            pb::ProvisionalFilter::DefinitiveOnly,
            event.position
        )
        .await,
        vec![
            definitive_d2,
            (
                "D-1".to_owned(),
                Some(timestamp("2027-01-05T16:00:00Z")),
                false
            ),
        ]
    );
    // The event is in the case's history as ReadEvents returns it.
    let history = second
        .events(&DISTRICT_SUPERVISOR)
        .read_events(pb::ReadEventsRequest {
            case_id: "D-1".into(),
            min_position: event.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let types: Vec<&str> = history
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, ["DisputeReported", "DeadlinesRecomputed"]);
    second.stop().await;
}
