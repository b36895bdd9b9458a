//! Given / when / then tests of re-timing a dispute's provisional
//! deadlines once the year they run into is loaded. The loaded 2027 is a
//! fictional test calendar (`recompute::test_services`), not the official
//! schedule.

use chrono::{DateTime, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::recompute::{RecomputedDeadline, test_services};
use crate::values::{Actor, AgencyId, MediationKind};

/// 上坪村, a village of the example jurisdiction.
const VILLAGE: &str = "990101101201";

/// Thursday 31 December 2026, 10:00 in Beijing: a grid report's one working
/// day runs into 2027.
const REPORTED: &str = "2026-12-31T02:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn engine() -> Actor {
    Actor::parse("deadline-recompute", "engine").unwrap()
}

fn ev_at(when: &str, change: DisputeChange) -> DisputeEvent {
    DisputeEvent {
        at: at(when),
        by: engine(),
        change,
    }
}

/// The services of a server without the 2027 file (`false`) or with the
/// fictional one (`true`), its clock at `now`.
fn framework(now: &str, with_2027: bool) -> TestFramework<Dispute> {
    TestFramework::<Dispute>::with(test_services(at(now), with_2027))
}

fn cmd(action: DisputeAction) -> DisputeCommand {
    DisputeCommand {
        by: engine(),
        action,
    }
}

/// A grid report of `REPORTED`, its registration deadline counted without
/// a 2027 schedule: Friday 1 January 2027 guessed a working day.
fn reported() -> Vec<DisputeEvent> {
    let registration_due =
        test_services(at(REPORTED), false).deadline(Stage::GridReport, at(REPORTED));
    assert!(registration_due.provisional);
    assert_eq!(registration_due.due, at("2027-01-01T16:00:00Z"));
    vec![ev_at(
        REPORTED,
        DisputeChange::DisputeReported {
            division: DivisionCode::parse(VILLAGE).unwrap(),
            grid: None,
            summary: Text::parse("邻里排水纠纷").unwrap(),
            registration_due,
        },
    )]
}

/// What loading the fictional 2027 does to [`reported`]: 1 and 4 January
/// are off, so the one working day is Tuesday 5 January.
fn grid_report_recomputed() -> RecomputedDeadline {
    RecomputedDeadline {
        stage: Stage::GridReport,
        old_due: at("2027-01-01T16:00:00Z"),
        new_due: at("2027-01-05T16:00:00Z"),
        last_day: "2027-01-05".parse().unwrap(),
        provisional: false,
    }
}

fn recomputed(when: &str) -> DisputeEvent {
    ev_at(
        when,
        DisputeChange::DeadlinesRecomputed {
            deadlines: vec![grid_report_recomputed()],
        },
    )
}

fn grid_holder() -> Holder {
    Holder {
        division: Some(DivisionCode::parse(VILLAGE).unwrap()),
        level: Some(Level::Grid),
        ..Holder::default()
    }
}

#[test]
fn a_provisional_deadline_is_re_timed_with_its_old_and_new_due_times() {
    framework("2027-01-01T03:00:00Z", true)
        .given(reported())
        .when(cmd(DisputeAction::RecomputeDeadlines {}))
        .then_expect_events(vec![recomputed("2027-01-01T03:00:00Z")]);
}

#[test]
fn the_re_timed_clock_runs_to_the_new_due_time_and_is_no_longer_provisional() {
    let mut dispute = Dispute::default();
    for event in reported() {
        dispute.apply(event);
    }
    dispute.apply(recomputed("2027-01-01T03:00:00Z"));
    let clocks = dispute.running_clocks();
    assert_eq!(clocks.len(), 1);
    assert_eq!(clocks[0].deadline, grid_report_recomputed().deadline());
    assert_eq!(clocks[0].started_at, at(REPORTED));
}

#[test]
fn nothing_is_written_when_nothing_changed() {
    // The year is still unpublished: the same guess again.
    framework("2027-01-01T03:00:00Z", false)
        .given(reported())
        .when(cmd(DisputeAction::RecomputeDeadlines {}))
        .then_expect_events(vec![]);
    // Already re-timed: a second command (a restart, another server)
    // finds nothing provisional.
    let mut history = reported();
    history.push(recomputed("2027-01-01T03:00:00Z"));
    framework("2027-01-01T04:00:00Z", true)
        .given(history)
        .when(cmd(DisputeAction::RecomputeDeadlines {}))
        .then_expect_events(vec![]);
}

#[test]
fn a_breached_clock_stays_breached_after_it_is_re_timed() {
    let breached = ev_at(
        "2027-01-01T16:00:00Z",
        DisputeChange::DeadlineBreached {
            stage: Stage::GridReport,
            due: at("2027-01-01T16:00:00Z"),
            holder: grid_holder(),
        },
    );
    let mut history = reported();
    history.push(breached);
    // The breach does not stop the re-time: the new due time stands beside it.
    framework("2027-01-02T01:00:00Z", true)
        .given(history.clone())
        .when(cmd(DisputeAction::RecomputeDeadlines {}))
        .then_expect_events(vec![recomputed("2027-01-02T01:00:00Z")]);
    // The breach stays recorded: a timer for the new due time, once it has
    // passed, records nothing more.
    history.push(recomputed("2027-01-02T01:00:00Z"));
    framework("2027-01-06T00:00:00Z", true)
        .given(history)
        .when(cmd(DisputeAction::RecordDeadlineBreach {
            stage: Stage::GridReport,
            due: at("2027-01-05T16:00:00Z"),
        }))
        .then_expect_events(vec![]);
    // Without the earlier breach, the new due time is breached as usual.
    let mut history = reported();
    history.push(recomputed("2027-01-01T03:00:00Z"));
    framework("2027-01-06T00:00:00Z", true)
        .given(history)
        .when(cmd(DisputeAction::RecordDeadlineBreach {
            stage: Stage::GridReport,
            due: at("2027-01-05T16:00:00Z"),
        }))
        .then_expect_events(vec![ev_at(
            "2027-01-06T00:00:00Z",
            DisputeChange::DeadlineBreached {
                stage: Stage::GridReport,
                due: at("2027-01-05T16:00:00Z"),
                holder: grid_holder(),
            },
        )]);
}

#[test]
fn a_warning_already_recorded_is_not_recorded_again_for_the_new_due_time() {
    let mut history = reported();
    history.push(ev_at(
        "2027-01-01T09:00:00Z",
        DisputeChange::DeadlineWarned {
            stage: Stage::GridReport,
            threshold_percent: 50,
            due: at("2027-01-01T16:00:00Z"),
            holder: grid_holder(),
        },
    ));
    history.push(recomputed("2027-01-01T10:00:00Z"));
    // Half of the new allowed time has passed by 4 January.
    framework("2027-01-04T00:00:00Z", true)
        .given(history)
        .when(cmd(DisputeAction::RecordDeadlineWarning {
            stage: Stage::GridReport,
            threshold_percent: 50,
            due: at("2027-01-05T16:00:00Z"),
        }))
        .then_expect_events(vec![]);
}

#[test]
fn a_deadline_that_is_not_provisional_is_left_alone() {
    let guessed = test_services(at("2026-11-02T02:00:00Z"), false);
    // Registered on 2 November 2026: its 30 days end in 2026.
    let handling_due = guessed.deadline(Stage::VillageHandling, at("2026-11-02T02:00:00Z"));
    assert!(!handling_due.provisional);
    // Dispatched on 10 December: 30 days end on Saturday 9 January 2027,
    // rolled to a guessed Monday 11.
    let mediation_due = guessed.deadline(Stage::Mediation, at("2026-12-10T02:00:00Z"));
    assert!(mediation_due.provisional);
    assert_eq!(mediation_due.due, at("2027-01-11T16:00:00Z"));
    let history = vec![
        ev_at(
            "2026-11-02T02:00:00Z",
            DisputeChange::DisputeRegistered {
                division: DivisionCode::parse(VILLAGE).unwrap(),
                level: Level::Village,
                category: crate::values::DisputeCategory::Neighbourhood,
                risk: crate::values::Risk::Green,
                summary: Text::parse("两户因排水沟走向发生争执").unwrap(),
                parties: vec![],
                handling_due,
            },
        ),
        ev_at(
            "2026-12-10T02:00:00Z",
            DisputeChange::DisputeDispatched {
                body: MediationBody {
                    id: AgencyId::parse("shangping-pmc").unwrap(),
                    name: Name::parse("上坪村人民调解委员会").unwrap(),
                    kind: MediationKind::Peoples,
                },
                mediator: None,
                mediation_due,
            },
        ),
    ];
    // The registration's handling deadline is not touched; the mediation's
    // keeps its day (11 January is a working day in the fictional year)
    // and is no longer provisional.
    framework("2027-01-02T00:00:00Z", true)
        .given(history)
        .when(cmd(DisputeAction::RecomputeDeadlines {}))
        .then_expect_events(vec![ev_at(
            "2027-01-02T00:00:00Z",
            DisputeChange::DeadlinesRecomputed {
                deadlines: vec![RecomputedDeadline {
                    stage: Stage::Mediation,
                    old_due: mediation_due.due,
                    new_due: mediation_due.due,
                    last_day: mediation_due.last_day,
                    provisional: false,
                }],
            },
        )]);
}

#[test]
fn an_extended_mediation_is_counted_again_with_its_extension() {
    let guessed = test_services(at("2026-12-01T02:00:00Z"), false);
    // Dispatched on Tuesday 1 December 2026: 30 days end on Thursday
    // 31 December, as published.
    let mediation_due = guessed.deadline(Stage::Mediation, at("2026-12-01T02:00:00Z"));
    assert!(!mediation_due.provisional);
    let mut history = vec![ev_at(
        "2026-12-01T02:00:00Z",
        DisputeChange::DisputeDispatched {
            body: MediationBody {
                id: AgencyId::parse("shangping-pmc").unwrap(),
                name: Name::parse("上坪村人民调解委员会").unwrap(),
                kind: MediationKind::Peoples,
            },
            mediator: None,
            mediation_due,
        },
    )];
    history.push(ev_at(
        "2026-12-01T03:00:00Z",
        DisputeChange::MediationStarted {},
    ));
    // The parties agree to 4 more days: Monday 4 January 2027, by guess.
    let extended = framework("2026-12-10T02:00:00Z", false)
        .given(history.clone())
        .when(cmd(DisputeAction::ExtendMediation {
            days: 4,
            reason: Text::parse("Both parties asked for a site visit.").unwrap(),
        }))
        .inspect_result()
        .unwrap();
    history.extend(extended);
    // Counted again: 31 December as before, then 4 days to 4 January,
    // off in the loaded year, so Tuesday 5 January.
    framework("2026-12-11T02:00:00Z", true)
        .given(history)
        .when(cmd(DisputeAction::RecomputeDeadlines {}))
        .then_expect_events(vec![ev_at(
            "2026-12-11T02:00:00Z",
            DisputeChange::DeadlinesRecomputed {
                deadlines: vec![RecomputedDeadline {
                    stage: Stage::Mediation,
                    old_due: at("2027-01-04T16:00:00Z"),
                    new_due: at("2027-01-05T16:00:00Z"),
                    last_day: "2027-01-05".parse().unwrap(),
                    provisional: false,
                }],
            },
        )]);
}

#[test]
fn a_stored_recompute_event_replays() {
    // The shape the event is stored in, as a reader of the log sees it.
    let stored = serde_json::json!({
        "at": "2027-01-01T03:00:00Z",
        "by": {"id": "deadline-recompute", "agency": "engine"},
        "change": {"DeadlinesRecomputed": {"deadlines": [{
            "stage": "grid_report",
            "old_due": "2027-01-01T16:00:00Z",
            "new_due": "2027-01-05T16:00:00Z",
            "last_day": "2027-01-05",
            "provisional": false
        }]}}
    });
    let event: DisputeEvent = serde_json::from_value(stored).unwrap();
    assert_eq!(event, recomputed("2027-01-01T03:00:00Z"));
    assert_eq!(
        cqrs_es::DomainEvent::event_type(&event),
        "DeadlinesRecomputed"
    );
}
