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

/// D-3 registered, mediated and settled by a written agreement at the
/// server's time: the parties' 30 days to apply for judicial confirmation
/// start then.
async fn settle(server: &TestServer) {
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let id = || "D-3".to_owned();
    let rid = || uuid::Uuid::new_v4().to_string();
    let party = |role: pb::PartyRole, name: &str| pb::Party {
        role: role.into(),
        name: name.into(),
    };
    disputes
        .register_dispute(pb::RegisterDisputeRequest {
            request_id: rid(),
            dispute_id: id(),
            actor_id: "clerk-1".into(),
            division_code: VILLAGE.into(),
            level: pb::Level::Village.into(),
            category: pb::DisputeCategory::Neighbourhood.into(),
            risk: pb::Risk::Green.into(),
            summary: "A wall between two yards".into(),
            parties: vec![
                party(pb::PartyRole::Applicant, "Zhang San"),
                party(pb::PartyRole::Respondent, "Li Si"),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    disputes
        .dispatch_dispute(pb::DispatchDisputeRequest {
            request_id: rid(),
            dispute_id: id(),
            actor_id: "clerk-1".into(),
            body: Some(pb::MediationBody {
                body_id: "committee-101201".into(),
                name: "Village Mediation Committee".into(),
                kind: pb::MediationKind::Peoples.into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    for party in [pb::PartyRole::Applicant, pb::PartyRole::Respondent] {
        disputes
            .record_consent(pb::RecordConsentRequest {
                request_id: rid(),
                dispute_id: id(),
                actor_id: "mediator-wu".into(),
                party: party.into(),
                consents: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    disputes
        .reach_agreement(pb::ReachAgreementRequest {
            request_id: rid(),
            dispute_id: id(),
            actor_id: "mediator-wu".into(),
            form: pb::AgreementForm::Written.into(),
            terms: "The wall moves 30 cm east".into(),
            ..Default::default()
        })
        .await
        .unwrap();
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

    // A server without 2027.
    // - D-3, settled on Saturday 5 December 2026: the parties' window to
    //   apply for judicial confirmation ends on Monday 4 January 2027 by
    //   guess. Its handling and mediation clocks, which ran to the same
    //   day, stopped with the agreement, keeping the flag they had.
    // - D-2, reported on Monday 21 December: one working day for
    //   registration, ending on the 22nd as published.
    // - D-1, reported on Thursday 31 December: its working day runs into
    //   2027, Friday 1 January guessed a working day, so it is provisional.
    let first = server(db, without_2027.path(), "2026-12-05T02:00:00Z").await;
    settle(&first).await;
    first.clock.set(at("2026-12-21T02:00:00Z"));
    report(&first, "D-2").await;
    first.clock.set(at("2026-12-31T02:00:00Z"));
    let reported = report(&first, "D-1").await;
    let d1_guessed = (
        "D-1".to_owned(),
        Some(timestamp("2027-01-01T16:00:00Z")),
        true,
    );
    let d2 = (
        "D-2".to_owned(),
        Some(timestamp("2026-12-22T16:00:00Z")),
        false,
    );
    let d3_stopped = (
        "D-3".to_owned(),
        Some(timestamp("2027-01-04T16:00:00Z")),
        true,
    );
    let listed = |filter| clocks(&first, filter, reported.position);
    assert_eq!(
        listed(pb::ProvisionalFilter::ProvisionalOnly).await,
        vec![d1_guessed, d3_stopped.clone(), d3_stopped.clone()]
    );
    assert_eq!(
        listed(pb::ProvisionalFilter::DefinitiveOnly).await,
        vec![d2.clone()]
    );
    assert_eq!(listed(pb::ProvisionalFilter::Unspecified).await.len(), 4);
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
    // D-1's clock and D-3's window in the background, each by an event of
    // its case, recorded by the engine.
    let second = server(db, with_2027.path(), "2027-01-01T03:00:00Z").await;
    let mut stream = second
        .events(&DISTRICT_SUPERVISOR)
        .subscribe_events(pb::SubscribeEventsRequest {
            after_position: reported.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut recounts = std::collections::BTreeMap::new();
    while recounts.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("the re-times are recorded soon after start")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        assert_eq!(event.event_type, "DeadlinesRecomputed", "{event:?}");
        recounts.insert(event.case_id.clone(), event);
    }
    drop(stream);
    let deadlines = |case: &str| {
        let payload: serde_json::Value =
            serde_json::from_str(&recounts[case].payload_json).unwrap();
        assert_eq!(payload["by"]["agency"], "engine");
        payload["change"]["DeadlinesRecomputed"]["deadlines"].clone()
    };
    // 1 and 4 January are off in the fictional year.
    assert_eq!(
        deadlines("D-1"),
        serde_json::json!([{
            "stage": "grid_report",
            "old_due": "2027-01-01T16:00:00Z",
            "new_due": "2027-01-05T16:00:00Z",
            "last_day": "2027-01-05",
            "provisional": false
        }])
    );
    assert_eq!(
        deadlines("D-3"),
        serde_json::json!([{
            "stage": "judicial_confirmation_window",
            "old_due": "2027-01-04T16:00:00Z",
            "new_due": "2027-01-05T16:00:00Z",
            "last_day": "2027-01-05",
            "provisional": false
        }])
    );
    let last = recounts.values().map(|e| e.position).max().unwrap();

    // The running clock is re-timed in the read model and no longer
    // provisional; the stopped ones keep their flag.
    let listed = |filter| clocks(&second, filter, last);
    assert_eq!(
        listed(pb::ProvisionalFilter::ProvisionalOnly).await,
        vec![d3_stopped.clone(), d3_stopped]
    );
    assert_eq!(
        listed(pb::ProvisionalFilter::DefinitiveOnly).await,
        vec![
            d2,
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
            min_position: last,
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
    // On Tuesday 5 January the guessed window had closed; the true one is
    // still open.
    second.clock.set(at("2027-01-05T03:00:00Z"));
    second
        .disputes(&DISTRICT_SUPERVISOR)
        .request_judicial_confirmation(pb::RequestJudicialConfirmationRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            dispute_id: "D-3".into(),
            actor_id: "mediator-wu".into(),
            court: "District People's Court".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    second.stop().await;
}
