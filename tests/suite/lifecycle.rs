//! Whole case flows of the two domain aggregates, carried out through the
//! real store on each backend: every command is loaded, decided, committed
//! and read back as the server would do it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mediation_domain::dispute::{
    AgreementForm, Dispute, DisputeAction, DisputeChange, DisputeCommand, DisputeError,
    DisputeEvent, DisputeStatus, EscalationReason, MediationBody, Outcome, Party, PartyRole,
    Performance, Satisfaction, TerminationReason,
};
use mediation_domain::petition::{
    DeliveryMethod, FinalBasis, OpinionOutcome, Petition, PetitionAction, PetitionChange,
    PetitionCommand, PetitionError, PetitionEvent, PetitionStatus, Petitioner, Reply,
};
use mediation_domain::services::{Clock, ManualClock, Services};
use mediation_domain::values::{
    Actor, AgencyId, CaseId, DisputeCategory, DivisionCode, Level, MediationKind, Name,
    PetitionChannel, PetitionLevel, Risk, Text,
};
use mediation_projections::records::LogPetitionRecords;
use mediation_store::{Cases, CommandError, RecordedEvent};
use mediation_tests::{TestDb, read_all};

on_both_backends!(
    a_dispute_runs_its_whole_course_through_the_store,
    a_petition_runs_to_finality_and_is_not_received_again,
    a_forbidden_dispute_transition_writes_nothing,
    interleaved_disputes_and_petitions_share_one_log_in_commit_order,
    a_repeat_of_a_final_petition_is_not_accepted_under_a_new_id,
);

/// Monday 2 March 2026, 10:00 in Beijing.
const T0: &str = "2026-03-02T02:00:00Z";
/// Liu'an Village, under Donghu Subdistrict, in the example jurisdiction.
const VILLAGE: &str = "990101001201";
/// Donghu Subdistrict, the town above `VILLAGE`.
const TOWN: &str = "990101001000";

fn t0() -> DateTime<Utc> {
    T0.parse().unwrap()
}

fn services(clock: &ManualClock) -> Services {
    Services::shipped_defaults(Arc::new(clock.clone()))
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

fn dispute(by: &Actor, action: DisputeAction) -> DisputeCommand {
    DisputeCommand {
        by: by.clone(),
        action,
    }
}

fn petition(by: &Actor, action: PetitionAction) -> PetitionCommand {
    PetitionCommand {
        by: by.clone(),
        action,
    }
}

fn event_types(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

fn report(code: &str) -> DisputeAction {
    DisputeAction::Report {
        division: division(code),
        grid: Some(name("Grid 3")),
        summary: text("Water from the upstairs flat leaks into the kitchen below."),
    }
}

fn register(code: &str, level: Level) -> DisputeAction {
    DisputeAction::Register {
        division: division(code),
        level,
        category: DisputeCategory::Neighbourhood,
        risk: Risk::Yellow,
        summary: text("Leak from flat 302 into flat 202; the owners disagree on repairs."),
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
    }
}

fn dispatch(agency: &str, body: &str) -> DisputeAction {
    DisputeAction::Dispatch {
        body: MediationBody {
            id: AgencyId::parse(agency).unwrap(),
            name: name(body),
            kind: MediationKind::Peoples,
        },
        mediator: Some(name("Zhao Liu")),
    }
}

fn consent(party: PartyRole) -> DisputeAction {
    DisputeAction::RecordConsent {
        party,
        consents: true,
        reason: None,
    }
}

fn petitioner() -> Petitioner {
    Petitioner {
        name: name("Zhang San"),
        contact: Some(name("13800000000")),
    }
}

fn receive(channel: PetitionChannel, visited_level: Option<Level>) -> PetitionAction {
    PetitionAction::Receive {
        channel,
        matter_type: None,
        petitioner: petitioner(),
        complained_unit: Some(name("Liu'an Village Committee")),
        complained_unit_id: None,
        facts: text("The village road has not been repaired since the floods."),
        division: division(VILLAGE),
        competent_level: Level::Village,
        visited_level: visited_level.map(Into::into),
        representatives: 3,
        repeat_of: None,
    }
}

async fn a_dispute_runs_its_whole_course_through_the_store(db: &TestDb) {
    let clock = ManualClock::new(t0());
    let cases = Cases::<Dispute>::new(&db.store, services(&clock));
    let id = "dispute-lifecycle";
    let grid_worker = actor("grid-worker-7", "liuan-village-grid");
    let village = actor("mediator-1", "liuan-village-committee");
    let town = actor("mediator-2", "donghu-mediation-centre");
    let court = actor("clerk-1", "district-court");

    // Each step is a day after the one before, with the actor who takes it.
    let steps = [
        (&grid_worker, report(VILLAGE)),
        (&village, register(VILLAGE, Level::Village)),
        (
            &village,
            dispatch("liuan-village-committee", "Liu'an Mediation Committee"),
        ),
        (&village, consent(PartyRole::Applicant)),
        (&village, consent(PartyRole::Respondent)),
        (
            &village,
            DisputeAction::HoldSession {
                summary: text("Both sides stated their case; no common ground on costs."),
            },
        ),
        (
            &village,
            DisputeAction::TerminateMediation {
                reason: TerminationReason::NoAgreement,
                note: text("The parties could not agree on who pays for the repairs."),
                legal_routes_explained: true,
            },
        ),
        (
            &village,
            DisputeAction::Escalate {
                reason: EscalationReason::MediationFailed,
            },
        ),
        (
            &town,
            dispatch("donghu-mediation-centre", "Donghu Mediation Centre"),
        ),
        (&town, consent(PartyRole::Respondent)),
        (&town, consent(PartyRole::Applicant)),
        (
            &town,
            DisputeAction::ReachAgreement {
                form: AgreementForm::Written,
                terms: text("Wang Wu repairs the pipe and pays 2,000 yuan for the ceiling."),
            },
        ),
        (
            &town,
            DisputeAction::RequestJudicialConfirmation {
                court: name("Example District People's Court"),
            },
        ),
        (
            &court,
            DisputeAction::AcceptJudicialConfirmation {
                accepted: true,
                note: None,
            },
        ),
        (
            &court,
            DisputeAction::RuleJudicialConfirmation {
                confirmed: true,
                note: Some(text("The agreement is lawful and voluntary.")),
            },
        ),
        (
            &town,
            DisputeAction::RecordFollowUp {
                performance: Performance::Performed,
                note: text("The pipe is repaired and the money paid."),
            },
        ),
        (
            &town,
            DisputeAction::Review {
                approved: true,
                note: None,
            },
        ),
        (&town, DisputeAction::Close {}),
        (
            &town,
            DisputeAction::Evaluate {
                satisfaction: Satisfaction::Satisfied,
                note: Some(text("Both parties satisfied.")),
            },
        ),
        (
            &town,
            DisputeAction::Reopen {
                reason: text("The leak has come back."),
            },
        ),
    ];
    let mut version = 0;
    for (by, action) in steps {
        clock.advance(Duration::days(1));
        let step = action.name();
        let committed = cases
            .execute(id, dispute(by, action), HashMap::new())
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        assert!(committed.version > version, "{step} wrote no event");
        assert_eq!(
            committed.version,
            version + committed.events.len() as u64,
            "{step}"
        );
        assert!(committed.position.is_some(), "{step}");
        version = committed.version;
    }

    let expected = [
        "DisputeReported",
        "DisputeRegistered",
        "DisputeDispatched",
        "PartyConsented",
        "PartyConsented",
        "MediationStarted",
        "MediationSessionHeld",
        "MediationTerminated",
        "DisputeEscalated",
        "DisputeDispatched",
        "PartyConsented",
        "PartyConsented",
        "MediationStarted",
        "AgreementReached",
        "JudicialConfirmationRequested",
        "JudicialConfirmationAccepted",
        "JudicialConfirmationRuled",
        "PerformanceFollowedUp",
        "DisputeReviewed",
        "DisputeClosed",
        "DisputeEvaluated",
        "DisputeReopened",
    ];
    assert_eq!(version, expected.len() as u64);

    // The case as loaded (through the snapshot taken at version 20): back
    // at the town that closed it, awaiting dispatch.
    let (state, loaded) = cases.load(id).await.unwrap().unwrap();
    assert_eq!(loaded, version);
    assert_eq!(state.status(), DisputeStatus::Registered);
    assert_eq!(state.level(), Some(Level::Town));
    assert_eq!(state.division(), Some(&division(TOWN)));
    assert_eq!(state.intake_level(), Some(Level::Village));
    assert_eq!(state.outcome(), None);
    assert_eq!(state.satisfaction(), None);
    assert_eq!(state.agreement(), None);

    let events = db.store.case_events("Dispute", id).await.unwrap();
    assert_eq!(event_types(&events), expected);
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=version).collect::<Vec<_>>()
    );
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    let decoded: Vec<DisputeEvent> = events
        .iter()
        .map(|e| {
            assert_eq!(e.aggregate_type, "Dispute");
            // Written at its type's current version: 2 for the application
            // for judicial confirmation, 1 for every other type so far.
            let current = mediation_domain::upcast::DISPUTE
                .current_version(&e.event_type)
                .unwrap();
            assert_eq!(e.event_version, current.to_string(), "{}", e.event_type);
            assert_eq!(
                e.event_version,
                if e.event_type == "JudicialConfirmationRequested" {
                    "2"
                } else {
                    "1"
                }
            );
            serde_json::from_value(e.payload.clone())
                .unwrap_or_else(|err| panic!("{} does not deserialise: {err}", e.event_type))
        })
        .collect();
    for (event, stored) in decoded.iter().zip(&events) {
        assert_eq!(event.change.name(), stored.event_type);
    }
    // Both events of the second consent carry the same instant and actor.
    assert_eq!(decoded[11].at, decoded[12].at);
    assert_eq!(decoded[12].by, town);
    assert_eq!(decoded[0].by, grid_worker);
    assert_eq!(decoded[0].at, t0() + Duration::days(1));

    match &decoded[8].change {
        DisputeChange::DisputeEscalated {
            from_division,
            from_level,
            to_division,
            to_level,
            ..
        } => {
            assert_eq!(
                (from_division, *from_level),
                (&division(VILLAGE), Level::Village)
            );
            assert_eq!((to_division, *to_level), (&division(TOWN), Level::Town));
        }
        other => panic!("expected DisputeEscalated, got {other:?}"),
    }
    let closed = decoded
        .iter()
        .find_map(|e| match &e.change {
            DisputeChange::DisputeClosed {
                outcome,
                intake_level,
                resolved_level,
                resolved_division,
                resolved_at_or_below_intake,
            } => Some((
                *outcome,
                *intake_level,
                *resolved_level,
                resolved_division.clone(),
                *resolved_at_or_below_intake,
            )),
            _ => None,
        })
        .expect("a DisputeClosed event");
    assert_eq!(
        closed,
        (
            Outcome::Agreement,
            Level::Village,
            Level::Town,
            division(TOWN),
            false
        ),
        "an escalated case is not resolved at or below its intake level"
    );
    assert_eq!(
        events[19].payload["change"]["DisputeClosed"]["resolved_at_or_below_intake"],
        false
    );
}

async fn a_petition_runs_to_finality_and_is_not_received_again(db: &TestDb) {
    let clock = ManualClock::new(t0());
    let cases = Cases::<Petition>::new(&db.store, services(&clock));
    let id = "petition-lifecycle";
    let office = actor("officer-1", "district-petition-bureau");
    let unit = actor("clerk-2", "donghu-subdistrict-office");
    let reviewer = actor("reviewer-1", "district-government");

    // A visit to the district about a village matter skips the town.
    let received = cases
        .execute(
            id,
            petition(
                &office,
                receive(PetitionChannel::Visit, Some(Level::District)),
            ),
            HashMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(received.version, 2);

    // Each step waits the days given before it is taken. The handling
    // opinion comes 80 days after acceptance, inside the 60-day period only
    // because of the 30-day extension; each window to ask again runs from
    // the reply's delivery (Art 35-36); the re-review opinion comes 35 days
    // after the request, inside the 30-day period only because the 10-day
    // hearing, held in re-review (Art 36), does not count.
    let steps = [
        (
            3,
            &office,
            PetitionAction::Forward {
                to_unit: name("Donghu Subdistrict Office"),
            },
        ),
        (5, &unit, PetitionAction::Accept {}),
        (
            50,
            &unit,
            PetitionAction::ExtendHandling {
                days: 30,
                reason: text("The road survey needs the dry season."),
                approved_by: name("Director Chen"),
            },
        ),
        (
            30,
            &unit,
            PetitionAction::IssueOpinion {
                outcome: OpinionOutcome::Explain,
                summary: text("The road is scheduled for repair next year."),
            },
        ),
        (2, &unit, delivery(Reply::Opinion, DeliveryMethod::Post)),
        (
            20,
            &office,
            PetitionAction::RequestReview {
                reason: text("Next year is too late."),
            },
        ),
        (
            25,
            &reviewer,
            PetitionAction::IssueReviewOpinion {
                outcome: OpinionOutcome::NotSupport,
                decision: None,
                summary: text("The schedule is reasonable."),
            },
        ),
        (
            3,
            &reviewer,
            delivery(Reply::ReviewOpinion, DeliveryMethod::InPerson),
        ),
        (
            25,
            &office,
            PetitionAction::RequestReReview {
                reason: text("The review ignored the school bus route."),
            },
        ),
        (5, &reviewer, PetitionAction::RecordHearing { days: 10 }),
        (
            30,
            &reviewer,
            PetitionAction::IssueReReviewOpinion {
                outcome: OpinionOutcome::Support,
                decision: None,
                summary: text("The stretch on the school bus route is repaired this year."),
            },
        ),
    ];
    let mut version = received.version;
    for (days, by, action) in steps {
        clock.advance(Duration::days(days));
        let action = delivered_today(action, clock.now());
        let step = format!("{action:?}");
        let committed = cases
            .execute(id, petition(by, action), HashMap::new())
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        assert!(committed.version > version, "{step} wrote no event");
        version = committed.version;
    }
    let finalised_at = clock.now();

    let (state, loaded) = cases.load(id).await.unwrap().unwrap();
    assert_eq!(loaded, version);
    assert_eq!(state.status(), PetitionStatus::Final);
    assert_eq!(state.final_basis(), Some(FinalBasis::ReReviewed));
    assert_eq!(state.finalised_at(), Some(finalised_at));
    assert!(state.skipped_level());
    assert!(state.extended());
    assert_eq!(state.competent_level(), Some(Level::Village));
    assert_eq!(state.visited_level(), Some(PetitionLevel::District));
    assert_eq!(state.re_review_outcome(), Some(OpinionOutcome::Support));

    let events = db.store.case_events("Petition", id).await.unwrap();
    assert_eq!(
        event_types(&events),
        [
            "PetitionReceived",
            "SkippedLevelVisitRecorded",
            "PetitionForwarded",
            "PetitionAccepted",
            "HandlingExtended",
            "OpinionIssued",
            "ReplyDelivered",
            "ReviewRequested",
            "ReviewOpinionIssued",
            "ReplyDelivered",
            "ReReviewRequested",
            "HearingHeld",
            "ReReviewOpinionIssued",
            "PetitionFinalised",
        ]
    );
    assert_eq!(events.len() as u64, version);
    let decoded: Vec<PetitionEvent> = events
        .iter()
        .map(|e| serde_json::from_value(e.payload.clone()).unwrap())
        .collect();
    for event in &decoded {
        match &event.change {
            PetitionChange::SkippedLevelVisitRecorded {
                competent_level,
                visited_level,
            } => assert_eq!(
                (*competent_level, *visited_level),
                (Level::Village, PetitionLevel::District)
            ),
            PetitionChange::PetitionForwarded { late, .. }
            | PetitionChange::OpinionIssued { late, .. }
            | PetitionChange::ReviewOpinionIssued { late, .. }
            | PetitionChange::ReReviewOpinionIssued { late, .. } => {
                assert!(!late, "{} was on time", event.change.name());
            }
            PetitionChange::PetitionAccepted { late_notice, .. } => assert!(!late_notice),
            _ => {}
        }
    }

    // Art 37: a final petition is not received again, and nothing is written.
    clock.advance(Duration::days(1));
    let err = cases
        .execute(
            id,
            petition(&office, receive(PetitionChannel::Letter, None)),
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Domain(PetitionError::AlreadyFinal { finalised_at: at })
                if at == finalised_at
        ),
        "{err:?}"
    );
    let (_, after) = cases.load(id).await.unwrap().unwrap();
    assert_eq!(after, version);
    assert_eq!(
        db.store.case_events("Petition", id).await.unwrap(),
        events,
        "the refused command wrote nothing"
    );
}

async fn a_forbidden_dispute_transition_writes_nothing(db: &TestDb) {
    let clock = ManualClock::new(t0());
    let cases = Cases::<Dispute>::new(&db.store, services(&clock));
    let worker = actor("grid-worker-7", "liuan-village-grid");
    let id = "dispute-forbidden";
    cases
        .execute(id, dispute(&worker, report(VILLAGE)), HashMap::new())
        .await
        .unwrap();
    let before = db.store.case_events("Dispute", id).await.unwrap();
    assert_eq!(event_types(&before), ["DisputeReported"]);

    // A reported dispute must be registered before it can be dispatched.
    let err = cases
        .execute(
            id,
            dispute(&worker, dispatch("liuan-village-committee", "Committee")),
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Domain(DisputeError::NotAllowed {
                action: "dispatch",
                status: DisputeStatus::Reported,
            })
        ),
        "{err:?}"
    );
    let (state, version) = cases.load(id).await.unwrap().unwrap();
    assert_eq!((state.status(), version), (DisputeStatus::Reported, 1));
    assert_eq!(db.store.case_events("Dispute", id).await.unwrap(), before);

    // Nor can a case that does not exist be closed; it stays nonexistent.
    let err = cases
        .execute(
            "dispute-never",
            dispute(&worker, DisputeAction::Close {}),
            HashMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Domain(DisputeError::NotAllowed {
                action: "close",
                status: DisputeStatus::New,
            })
        ),
        "{err:?}"
    );
    assert!(cases.load("dispute-never").await.unwrap().is_none());
    assert_eq!(read_all(&db.store, 1).await, before);
}

async fn interleaved_disputes_and_petitions_share_one_log_in_commit_order(db: &TestDb) {
    let clock = ManualClock::new(t0());
    let disputes = Cases::<Dispute>::new(&db.store, services(&clock));
    let petitions = Cases::<Petition>::new(&db.store, services(&clock));
    let worker = actor("grid-worker-7", "liuan-village-grid");
    let officer = actor("officer-1", "district-petition-bureau");

    // One dispute and one petition, their commands taking turns.
    clock.advance(Duration::hours(1));
    let reported = disputes
        .execute("d-1", dispute(&worker, report(VILLAGE)), HashMap::new())
        .await
        .unwrap();
    clock.advance(Duration::hours(1));
    let received = petitions
        .execute(
            "p-1",
            petition(
                &officer,
                receive(PetitionChannel::Visit, Some(Level::District)),
            ),
            HashMap::new(),
        )
        .await
        .unwrap();
    clock.advance(Duration::hours(1));
    let registered = disputes
        .execute(
            "d-1",
            dispute(&worker, register(VILLAGE, Level::Village)),
            HashMap::new(),
        )
        .await
        .unwrap();
    clock.advance(Duration::hours(1));
    let forwarded = petitions
        .execute(
            "p-1",
            petition(
                &officer,
                PetitionAction::Forward {
                    to_unit: name("Liu'an Village Committee"),
                },
            ),
            HashMap::new(),
        )
        .await
        .unwrap();
    let positions = [
        reported.position,
        received.position,
        registered.position,
        forwarded.position,
    ];

    let expected = [
        ("Dispute", "d-1", 1, "DisputeReported"),
        ("Petition", "p-1", 1, "PetitionReceived"),
        ("Petition", "p-1", 2, "SkippedLevelVisitRecorded"),
        ("Dispute", "d-1", 2, "DisputeRegistered"),
        ("Petition", "p-1", 3, "PetitionForwarded"),
    ];
    let log = read_all(&db.store, expected.len()).await;
    let order: Vec<_> = log
        .iter()
        .map(|e| {
            (
                e.aggregate_type.as_str(),
                e.aggregate_id.as_str(),
                e.sequence,
                e.event_type.as_str(),
            )
        })
        .collect();
    assert_eq!(order, expected);
    assert!(log.windows(2).all(|w| w[0].position < w[1].position));
    // Each commit reported the position of its last event.
    assert_eq!(positions, [0, 2, 3, 4].map(|i| Some(log[i].position)),);
    // Each case's own events are the log's events of that case.
    let of = |kind: &str| -> Vec<RecordedEvent> {
        log.iter()
            .filter(|e| e.aggregate_type == kind)
            .cloned()
            .collect()
    };
    assert_eq!(
        db.store.case_events("Dispute", "d-1").await.unwrap(),
        of("Dispute")
    );
    assert_eq!(
        db.store.case_events("Petition", "p-1").await.unwrap(),
        of("Petition")
    );
    for event in &log {
        match event.aggregate_type.as_str() {
            "Dispute" => {
                serde_json::from_value::<DisputeEvent>(event.payload.clone()).unwrap();
            }
            _ => {
                serde_json::from_value::<PetitionEvent>(event.payload.clone()).unwrap();
            }
        }
    }
}

/// Art 37 across cases: the registrar files the petitioner's new visit as a
/// repeat of the earlier petition, and the engine looks that one up in the
/// log. Final: received and not accepted (Art 37). Still open: received
/// and linked.
async fn a_repeat_of_a_final_petition_is_not_accepted_under_a_new_id(db: &TestDb) {
    let office = actor("officer-1", "district-petition-bureau");
    let unit = actor("clerk-2", "donghu-subdistrict-office");
    let clock = ManualClock::new(t0());
    let records = Arc::new(LogPetitionRecords::new(db.store.clone()));
    let cases = Cases::<Petition>::new(&db.store, services(&clock).with_petition_records(records));
    let run = |id: &'static str, by: &Actor, action: PetitionAction| {
        let cases = &cases;
        let command = petition(by, action);
        async move { cases.execute(id, command, HashMap::new()).await }
    };

    // P-1 runs to an opinion, and the review window lapses unused.
    run("P-1", &office, receive(PetitionChannel::Letter, None))
        .await
        .unwrap();
    run(
        "P-1",
        &office,
        PetitionAction::Forward {
            to_unit: name("Donghu Subdistrict Office"),
        },
    )
    .await
    .unwrap();
    run("P-1", &unit, PetitionAction::Accept {}).await.unwrap();
    run(
        "P-1",
        &unit,
        PetitionAction::IssueOpinion {
            outcome: OpinionOutcome::NotSupport,
            summary: text("The road is maintained by the county."),
        },
    )
    .await
    .unwrap();
    run(
        "P-1",
        &unit,
        delivered_today(
            delivery(Reply::Opinion, DeliveryMethod::Electronic),
            clock.now(),
        ),
    )
    .await
    .unwrap();
    // P-2, on other facts, stays open.
    run("P-2", &office, receive(PetitionChannel::Letter, None))
        .await
        .unwrap();

    clock.advance(Duration::days(40));
    run("P-1", &office, PetitionAction::Finalise {})
        .await
        .unwrap();
    let finalised_at = clock.now();

    let repeat = |of: &str| {
        let mut action = receive(PetitionChannel::Visit, Some(Level::Town));
        if let PetitionAction::Receive { repeat_of, .. } = &mut action {
            *repeat_of = Some(CaseId::parse(of).unwrap());
        }
        action
    };
    // Recorded and not accepted (不予受理), naming P-1: the visit counts.
    let not_accepted = run("P-3", &office, repeat("P-1")).await.unwrap();
    assert_eq!(not_accepted.version, 2);
    let (p3, _) = cases.load("P-3").await.unwrap().unwrap();
    assert_eq!(p3.status(), PetitionStatus::NotAccepted);
    assert_eq!(p3.repeats_final().map(CaseId::as_str), Some("P-1"));
    let events = db.store.case_events("Petition", "P-3").await.unwrap();
    let reason = &events[1].payload["change"]["PetitionNotAccepted"]["reason"];
    assert!(
        reason.as_str().is_some_and(
            |r| r.contains(&finalised_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        ),
        "{reason}"
    );

    let linked = run("P-4", &office, repeat("P-2")).await.unwrap();
    assert_eq!(linked.version, 1);
    let (p4, _) = cases.load("P-4").await.unwrap().unwrap();
    assert_eq!(p4.repeat_of().map(CaseId::as_str), Some("P-2"));

    let unknown = run("P-5", &office, repeat("P-404")).await.unwrap_err();
    assert!(
        matches!(
            unknown,
            CommandError::Domain(PetitionError::UnknownPetition { .. })
        ),
        "{unknown:?}"
    );
}

/// The delivery of `reply` by `method`; the day is set when the step is
/// taken ([`delivered_today`]).
fn delivery(reply: Reply, method: DeliveryMethod) -> PetitionAction {
    PetitionAction::RecordDelivery {
        reply,
        delivered_on: chrono::NaiveDate::MIN,
        method,
    }
}

/// `action`, with a delivery dated the local day (Beijing time) of `now`.
fn delivered_today(action: PetitionAction, now: chrono::DateTime<chrono::Utc>) -> PetitionAction {
    match action {
        PetitionAction::RecordDelivery { reply, method, .. } => PetitionAction::RecordDelivery {
            reply,
            delivered_on: (now + Duration::hours(8)).date_naive(),
            method,
        },
        other => other,
    }
}
