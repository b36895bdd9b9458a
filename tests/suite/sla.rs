//! SLA clocks and deadline timers through the real store: clocks start and
//! stop with the case, are met or breached, warnings and breaches become
//! events in the case's history exactly once however many watchers fire,
//! and a jurisdiction's policy may escalate a case whose level ran out of
//! time.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Days;
use mediation_api::config::{ConfigFiles, load_services};
use mediation_app::App;
use mediation_app::access::Caller;
use mediation_app::command::{CaseRef, Envelope, RequestId, fingerprint};
use mediation_domain::dispute::{AgreementForm, DisputeAction, MediationBody, Party, PartyRole};
use mediation_domain::services::ManualClock;
use mediation_domain::values::{
    ActorId, AgencyId, CaseId, DisputeCategory, DivisionCode, Level, MediationKind, Name, Risk,
    Text,
};
use mediation_projections::sla::{ClockQuery, ClockRow, ClockStatus, clocks};
use mediation_tests::TestDb;
use mediation_tests::server::start_time;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

on_both_backends!(
    clocks_start_and_stop_with_the_case,
    timers_record_each_warning_and_the_breach_once,
    two_watchers_record_each_timer_once,
    a_breach_escalates_where_the_policy_says_so,
    a_projection_moves_to_another_process_when_its_holder_stops,
);

const VILLAGE: &str = "990101101201";
const TOWN: &str = "990101101000";

struct Engine {
    app: App,
    clock: ManualClock,
    stop: CancellationToken,
    worker: JoinHandle<()>,
}

impl Engine {
    async fn start(db: &TestDb, policy: Option<&str>) -> Self {
        let clock = ManualClock::new(start_time());
        let dir = tempfile::tempdir().unwrap();
        let files = match policy {
            Some(text) => {
                let path = dir.path().join("policy.toml");
                std::fs::write(&path, text).unwrap();
                ConfigFiles {
                    policy: Some(path),
                    ..ConfigFiles::default()
                }
            }
            None => ConfigFiles::default(),
        };
        let services = load_services(&files, Arc::new(clock.clone())).unwrap();
        let stop = CancellationToken::new();
        let (app, worker) = App::start(db.store.clone(), services, stop.clone());
        Self {
            app,
            clock,
            stop,
            worker,
        }
    }

    async fn run(&self, id: &str, action: DisputeAction) -> u64 {
        let request_id = uuid::Uuid::new_v4().to_string();
        let id = CaseId::parse(id).unwrap();
        let case = if matches!(action, DisputeAction::Register { .. }) {
            CaseRef::New {
                id: Some(id),
                expected_version: None,
            }
        } else {
            CaseRef::Existing {
                id,
                expected_version: None,
            }
        };
        let rpc = rpc_of(&action);
        let envelope = Envelope {
            rpc,
            request_id: RequestId::parse("request_id", &request_id).unwrap(),
            actor: ActorId::parse("clerk").unwrap(),
            case,
            action,
            fingerprint: fingerprint(rpc, request_id.as_bytes()),
        };
        self.app
            .dispute_command(&Caller::local(), rpc, || Ok(envelope))
            .await
            .unwrap()
            .position
    }

    /// Waits until the read models have applied every event of `cases`.
    /// (Not the log's settled head: on PostgreSQL a concurrent transaction
    /// anywhere on the server may hold it below the latest commit.)
    async fn settle(&self, cases: &[&str]) {
        let mut last = 0;
        for case in cases {
            let events = self.app.store().case_events("Dispute", case).await.unwrap();
            last = last.max(events.last().map_or(0, |e| e.position));
        }
        if !self.app.caught_up(last, Duration::from_secs(30)).await {
            panic!(
                "the case projection did not reach {last}; {}",
                mediation_tests::holders(self.app.store()).await
            );
        }
    }

    async fn clocks(&self, case: &str) -> Vec<ClockRow> {
        self.settle(&[case]).await;
        let mut rows = clocks(
            self.app.store(),
            &ClockQuery {
                limit: 100,
                ..ClockQuery::default()
            },
        )
        .await
        .unwrap();
        rows.retain(|c| c.case_id == case);
        rows
    }

    async fn stop(self) {
        self.stop.cancel();
        self.worker.await.unwrap();
    }
}

fn rpc_of(action: &DisputeAction) -> &'static str {
    match action {
        DisputeAction::Register { .. } => "RegisterDispute",
        DisputeAction::Dispatch { .. } => "DispatchDispute",
        DisputeAction::RecordConsent { .. } => "RecordConsent",
        DisputeAction::ReachAgreement { .. } => "ReachAgreement",
        DisputeAction::Escalate { .. } => "EscalateDispute",
        _ => "HoldSession",
    }
}

fn register() -> DisputeAction {
    DisputeAction::Register {
        division: DivisionCode::parse(VILLAGE).unwrap(),
        level: Level::Village,
        category: DisputeCategory::Neighbourhood,
        risk: Risk::Green,
        summary: Text::parse("A wall between two yards").unwrap(),
        parties: vec![
            Party {
                role: PartyRole::Applicant,
                name: Name::parse("Zhang San").unwrap(),
            },
            Party {
                role: PartyRole::Respondent,
                name: Name::parse("Li Si").unwrap(),
            },
        ],
    }
}

fn dispatch() -> DisputeAction {
    DisputeAction::Dispatch {
        body: MediationBody {
            id: AgencyId::parse("committee-101201").unwrap(),
            name: Name::parse("Village Mediation Committee").unwrap(),
            kind: MediationKind::Peoples,
        },
        mediator: Some(Name::parse("Mediator Wu").unwrap()),
    }
}

fn consent(party: PartyRole) -> DisputeAction {
    DisputeAction::RecordConsent {
        party,
        consents: true,
        reason: None,
    }
}

async fn clocks_start_and_stop_with_the_case(db: &TestDb) {
    let engine = Engine::start(db, None).await;
    engine.run("d-1", register()).await;
    let started = engine.clocks("d-1").await;
    assert_eq!(started.len(), 1, "{started:?}");
    let handling = &started[0];
    assert_eq!(handling.stage, "village_handling");
    assert_eq!(handling.status, ClockStatus::Running);
    assert_eq!(handling.division.as_deref(), Some(VILLAGE));
    assert_eq!(handling.started_at, start_time());
    // Thirty calendar days, to the end of the local day.
    assert!(handling.due_at > start_time() + Days::days(30));
    assert!(handling.due_at <= start_time() + Days::days(31));

    engine.run("d-1", dispatch()).await;
    engine.run("d-1", consent(PartyRole::Applicant)).await;
    engine.run("d-1", consent(PartyRole::Respondent)).await;
    let running = engine.clocks("d-1").await;
    let mediation = running.iter().find(|c| c.stage == "mediation").unwrap();
    assert_eq!(mediation.body.as_deref(), Some("committee-101201"));
    assert_eq!(mediation.person.as_deref(), Some("Mediator Wu"));
    assert_eq!(mediation.status, ClockStatus::Running);

    engine.clock.advance(Days::days(3));
    engine
        .run(
            "d-1",
            DisputeAction::ReachAgreement {
                form: AgreementForm::Written,
                terms: Text::parse("The wall moves").unwrap(),
            },
        )
        .await;
    let after = engine.clocks("d-1").await;
    let mediation = after.iter().find(|c| c.stage == "mediation").unwrap();
    assert_eq!(mediation.status, ClockStatus::Met);
    assert_eq!(mediation.stopped_at, Some(start_time() + Days::days(3)));

    // A second case that stays too long at the village: its clock stops
    // breached when the case finally moves up, and the town's starts.
    engine.run("d-2", register()).await;
    engine.clock.advance(Days::days(40));
    engine
        .run(
            "d-2",
            DisputeAction::Escalate {
                reason: mediation_domain::dispute::EscalationReason::TimeExpired,
            },
        )
        .await;
    let moved = engine.clocks("d-2").await;
    let village = moved
        .iter()
        .find(|c| c.stage == "village_handling")
        .unwrap();
    assert_eq!(village.status, ClockStatus::Breached);
    assert!(village.stopped_at.is_some());
    let town = moved.iter().find(|c| c.stage == "town_handling").unwrap();
    assert_eq!(town.status, ClockStatus::Running);
    assert_eq!(town.division.as_deref(), Some(TOWN));
    engine.stop().await;
}

async fn timer_events(db: &TestDb, case: &str) -> Vec<(String, serde_json::Value)> {
    db.store
        .case_events("Dispute", case)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type.starts_with("Deadline"))
        .map(|e| (e.event_type.clone(), e.payload))
        .collect()
}

async fn timers_record_each_warning_and_the_breach_once(db: &TestDb) {
    let engine = Engine::start(db, None).await;
    engine.run("d-1", register()).await;
    engine.settle(&["d-1"]).await;

    // Fourteen days into thirty: nothing yet.
    engine.clock.advance(Days::days(14));
    let swept = engine.app.sweep_timers(engine.clock_now()).await.unwrap();
    assert_eq!(swept.recorded, 0, "{swept:?}");

    // Past half the time: the 50% warning, naming who held the case.
    engine.clock.advance(Days::days(2));
    let swept = engine.app.sweep_timers(engine.clock_now()).await.unwrap();
    assert_eq!(swept.recorded, 1, "{swept:?}");
    let events = timer_events(db, "d-1").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "DeadlineWarned");
    let warned = &events[0].1["change"]["DeadlineWarned"];
    assert_eq!(warned["threshold_percent"], 50);
    assert_eq!(warned["holder"]["division"], VILLAGE);
    // The event is filed under the village, like every event of the case.
    let log = db.store.case_events("Dispute", "d-1").await.unwrap();
    assert_eq!(log.last().unwrap().metadata["division"], VILLAGE);

    // Sweeping again records nothing new.
    engine.settle(&["d-1"]).await;
    let swept = engine.app.sweep_timers(engine.clock_now()).await.unwrap();
    assert_eq!(swept.recorded, 0, "{swept:?}");

    engine.clock.advance(Days::days(8));
    engine.settle(&["d-1"]).await;
    assert_eq!(
        engine
            .app
            .sweep_timers(engine.clock_now())
            .await
            .unwrap()
            .recorded,
        1
    );
    engine.clock.advance(Days::days(8));
    engine.settle(&["d-1"]).await;
    assert_eq!(
        engine
            .app
            .sweep_timers(engine.clock_now())
            .await
            .unwrap()
            .recorded,
        1
    );
    let kinds: Vec<String> = timer_events(db, "d-1")
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        kinds,
        ["DeadlineWarned", "DeadlineWarned", "DeadlineBreached"]
    );
    let clock = engine.clocks("d-1").await;
    assert_eq!(clock[0].status, ClockStatus::Breached);
    assert!(clock[0].warned_50_at.is_some() && clock[0].warned_75_at.is_some());
    assert!(clock[0].breached_at.is_some() && clock[0].stopped_at.is_none());
    engine.stop().await;
}

async fn two_watchers_record_each_timer_once(db: &TestDb) {
    let first = Engine::start(db, None).await;
    let second = Engine::start(db, None).await;
    for i in 0..5 {
        first.run(&format!("d-{i}"), register()).await;
    }
    let all = ["d-0", "d-1", "d-2", "d-3", "d-4"];
    first.settle(&all).await;
    second.settle(&all).await;
    first.clock.advance(Days::days(16));
    second.clock.advance(Days::days(16));
    let (a, b) = tokio::join!(
        first.app.sweep_timers(first.clock_now()),
        second.app.sweep_timers(second.clock_now()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.recorded + b.recorded, 5, "{a:?} {b:?}");
    for i in 0..5 {
        let events = timer_events(db, &format!("d-{i}")).await;
        assert_eq!(events.len(), 1, "d-{i}: {events:?}");
    }
    first.stop().await;
    second.stop().await;
}

async fn a_breach_escalates_where_the_policy_says_so(db: &TestDb) {
    let engine = Engine::start(
        db,
        Some("auto_escalate_on_breach = [\"village_handling\"]\n"),
    )
    .await;
    engine.run("d-1", register()).await;
    engine.settle(&["d-1"]).await;
    engine.clock.advance(Days::days(31));
    let swept = engine.app.sweep_timers(engine.clock_now()).await.unwrap();
    assert_eq!((swept.recorded, swept.escalated), (1, 1), "{swept:?}");
    let dispute = engine
        .app
        .get_dispute(&Caller::local(), "d-1")
        .await
        .unwrap();
    assert_eq!(dispute.case.level(), Some(Level::Town));
    let moved = engine.clocks("d-1").await;
    assert!(
        moved
            .iter()
            .any(|c| c.stage == "town_handling" && c.status == ClockStatus::Running)
    );
    engine.stop().await;
}

impl Engine {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use mediation_domain::services::Clock as _;
        self.clock.now()
    }
}

/// Waits, for at most 30 s, until `app` reports the case projection as
/// running in its process or not, as asked.
async fn until_active(app: &App, active: bool) -> bool {
    app.wait_for_projection("case_index", Duration::from_secs(30), |s| {
        s.active == active
    })
    .await
}

async fn a_projection_moves_to_another_process_when_its_holder_stops(db: &TestDb) {
    let first = Engine::start(db, None).await;
    assert!(
        until_active(&first.app, true).await,
        "the first process runs it"
    );
    let second = Engine::start(db, None).await;
    if matches!(db.kind, mediation_tests::Kind::Postgres) {
        // One holder at a time on a shared PostgreSQL.
        assert!(until_active(&second.app, false).await);
        assert!(
            !second
                .app
                .projections()
                .iter()
                .any(|s| s.name == "case_index" && s.active)
        );
    }
    first.stop().await;
    assert!(
        until_active(&second.app, true).await,
        "the second process takes the projection over"
    );
    // And keeps it up to date.
    second.run("d-after", register()).await;
    second.settle(&["d-after"]).await;
    assert_eq!(second.clocks("d-after").await.len(), 1);
    second.stop().await;
}
