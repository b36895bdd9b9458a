//! One test per rule of the petition flow, as given / when / then.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};

use super::*;
use crate::dispute::Satisfaction;
use crate::policy::{Counting, Deadline, Stage, StageRule};
use crate::services::{Finality, ManualClock, PetitionRecords, RecordsUnavailable, Services};
use crate::sla::{Holder, RunningClock};
use crate::values::{
    Actor, CaseId, DivisionCode, LegalChannel, Level, Name, PetitionChannel, PetitionLevel, Text,
    UnitRef,
};

use PetitionAction as A;
use PetitionChange as C;

/// Monday 2 March 2026, 10:00 in Beijing: when the given histories happen.
const T0: &str = "2026-03-02T02:00:00Z";
const TOWN: &str = "990101001000";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn services_at(now: &str) -> Services {
    Services::shipped_defaults(Arc::new(ManualClock::new(at(now))))
}

/// A deadline of `stage` opened at T0, as the given histories carry.
fn due(stage: Stage) -> Deadline {
    services_at(T0).deadline(stage, at(T0))
}

fn officer() -> Actor {
    Actor::parse("officer-1", "district-petition-bureau").unwrap()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

fn cmd(action: PetitionAction) -> PetitionCommand {
    PetitionCommand {
        by: officer(),
        action,
    }
}

fn event_at(when: &str, change: PetitionChange) -> PetitionEvent {
    PetitionEvent {
        at: at(when),
        by: officer(),
        change,
    }
}

fn event(change: PetitionChange) -> PetitionEvent {
    event_at(T0, change)
}

fn petitioner() -> Petitioner {
    Petitioner {
        name: name("张三"),
        contact: Some(name("13800000000")),
    }
}

fn receive(
    channel: PetitionChannel,
    visited_level: Option<Level>,
    representatives: u32,
) -> PetitionAction {
    A::Receive {
        channel,
        matter_type: None,
        petitioner: petitioner(),
        complained_unit: Some(name("东湖街道城管科")),
        complained_unit_id: None,
        facts: text("Street stalls block the lane every evening."),
        division: DivisionCode::parse(TOWN).unwrap(),
        competent_level: Level::Town,
        visited_level: visited_level.map(Into::into),
        representatives,
        repeat_of: None,
    }
}

fn received_change(
    channel: PetitionChannel,
    visited_level: Option<Level>,
    representatives: u32,
) -> PetitionChange {
    C::PetitionReceived {
        channel,
        matter_type: None,
        petitioner: petitioner(),
        complained_unit: Some(name("东湖街道城管科")),
        complained_unit_id: None,
        facts: text("Street stalls block the lane every evening."),
        division: DivisionCode::parse(TOWN).unwrap(),
        competent_level: Level::Town,
        visited_level: visited_level.map(Into::into),
        representatives,
        triage_due: due(Stage::PetitionTriage),
        repeat_of: None,
    }
}

fn forwarded() -> PetitionChange {
    C::PetitionForwarded {
        to_unit: unit(),
        notice_due: due(Stage::PetitionAcceptanceNotice),
        objection_due: due(Stage::PetitionObjection),
        late: false,
    }
}

fn unit() -> Name {
    name("东湖街道办事处")
}

fn opinion(outcome: OpinionOutcome) -> (OpinionOutcome, Text) {
    (outcome, text("The stalls will move to the market square."))
}

// Histories, each one step further along the flow, all at T0.

fn received() -> Vec<PetitionEvent> {
    vec![event(received_change(PetitionChannel::Letter, None, 1))]
}

fn routed() -> Vec<PetitionEvent> {
    let mut history = received();
    history.push(event(forwarded()));
    history
}

fn accepted() -> Vec<PetitionEvent> {
    let mut history = routed();
    history.push(event(C::PetitionAccepted {
        unit: unit(),
        opinion_due: due(Stage::PetitionOpinion),
        late_notice: false,
    }));
    history
}

fn answered() -> Vec<PetitionEvent> {
    let mut history = accepted();
    let (outcome, summary) = opinion(OpinionOutcome::Explain);
    history.push(event(C::OpinionIssued {
        outcome,
        summary,
        review_request_due: None,
        late: false,
    }));
    history.push(event(delivered(
        Reply::Opinion,
        Some(due(Stage::ReviewRequest)),
    )));
    history
}

/// `reply` handed to the petitioner on the day of T0, opening `request_due`.
fn delivered(reply: Reply, request_due: Option<Deadline>) -> PetitionChange {
    C::ReplyDelivered {
        reply,
        delivered_on: day("2026-03-02"),
        method: DeliveryMethod::InPerson,
        request_due,
    }
}

fn under_review() -> Vec<PetitionEvent> {
    let mut history = answered();
    history.push(event(C::ReviewRequested {
        reason: text("The square is too far away."),
        review_due: due(Stage::Review),
    }));
    history
}

fn reviewed() -> Vec<PetitionEvent> {
    let mut history = under_review();
    let (outcome, summary) = opinion(OpinionOutcome::NotSupport);
    history.push(event(C::ReviewOpinionIssued {
        outcome,
        decision: None,
        summary,
        re_review_request_due: None,
        late: false,
    }));
    history.push(event(delivered(
        Reply::ReviewOpinion,
        Some(due(Stage::ReReviewRequest)),
    )));
    history
}

fn under_re_review() -> Vec<PetitionEvent> {
    let mut history = reviewed();
    history.push(event(C::ReReviewRequested {
        reason: text("The review ignored the noise."),
        re_review_due: due(Stage::ReReview),
    }));
    history
}

fn finalised() -> Vec<PetitionEvent> {
    let mut history = answered();
    history.push(event_at(
        "2026-04-02T02:00:00Z",
        C::PetitionFinalised {
            basis: FinalBasis::ReviewWindowLapsed,
        },
    ));
    history
}

fn framework(now: &str) -> TestFramework<Petition> {
    TestFramework::with(services_at(now))
}

fn not_allowed(action: &'static str, status: PetitionStatus) -> PetitionError {
    PetitionError::NotAllowed { action, status }
}

fn replay(history: Vec<PetitionEvent>) -> Petition {
    let mut petition = Petition::default();
    for event in history {
        petition.apply(event);
    }
    petition
}

// --- Receive -----------------------------------------------------------------

#[test]
fn receiving_a_letter_opens_the_triage_period() {
    framework(T0)
        .given_no_previous_events()
        .when(cmd(receive(PetitionChannel::Letter, None, 1)))
        .then_expect_events(received());
    // Received Monday 2 March: 15 days end Tuesday 17 March, at midnight in
    // Beijing.
    let triage = replay(received()).triage_due().unwrap();
    assert_eq!(triage.last_day, day("2026-03-17"));
    assert_eq!(triage.due, at("2026-03-17T16:00:00Z"));
}

#[test]
fn a_visit_to_the_level_directly_above_is_not_a_skipped_level() {
    framework(T0)
        .given_no_previous_events()
        .when(cmd(receive(
            PetitionChannel::Visit,
            Some(Level::District),
            3,
        )))
        .then_expect_events(vec![event(received_change(
            PetitionChannel::Visit,
            Some(Level::District),
            3,
        ))]);
}

#[test]
fn a_visit_two_levels_up_is_received_and_recorded_as_a_skipped_level() {
    // A village matter taken straight to the district skips the town.
    let village = DivisionCode::parse("990101001001").unwrap();
    let received = C::PetitionReceived {
        channel: PetitionChannel::Visit,
        matter_type: None,
        petitioner: petitioner(),
        complained_unit: None,
        complained_unit_id: None,
        facts: text("The village committee withholds land compensation."),
        division: village.clone(),
        competent_level: Level::Village,
        visited_level: Some(PetitionLevel::District),
        representatives: 2,
        triage_due: due(Stage::PetitionTriage),
        repeat_of: None,
    };
    let expected = vec![
        event(received),
        event(C::SkippedLevelVisitRecorded {
            competent_level: Level::Village,
            visited_level: PetitionLevel::District,
        }),
    ];
    framework(T0)
        .given_no_previous_events()
        .when(cmd(A::Receive {
            channel: PetitionChannel::Visit,
            matter_type: None,
            petitioner: petitioner(),
            complained_unit: None,
            complained_unit_id: None,
            facts: text("The village committee withholds land compensation."),
            division: village,
            competent_level: Level::Village,
            visited_level: Some(PetitionLevel::District),
            representatives: 2,
            repeat_of: None,
        }))
        .then_expect_events(expected.clone());
    assert!(replay(expected).skipped_level());
}

#[test]
fn receiving_refuses_a_division_outside_the_jurisdiction() {
    let mut action = receive(PetitionChannel::Letter, None, 1);
    let unknown = DivisionCode::parse("990101009000").unwrap();
    if let A::Receive { division, .. } = &mut action {
        *division = unknown.clone();
    }
    framework(T0)
        .given_no_previous_events()
        .when(cmd(action))
        .then_expect_error(PetitionError::UnknownDivision { division: unknown });
}

#[test]
fn the_unit_complained_about_is_recorded_by_id_beside_its_name() {
    let unit = UnitRef::parse("990101001000").unwrap();
    let with_id = |mut change: PetitionChange| {
        if let C::PetitionReceived {
            complained_unit_id, ..
        } = &mut change
        {
            *complained_unit_id = Some(unit.clone());
        }
        change
    };
    let mut action = receive(PetitionChannel::Letter, None, 1);
    if let A::Receive {
        complained_unit_id, ..
    } = &mut action
    {
        *complained_unit_id = Some(unit.clone());
    }
    framework(T0)
        .given_no_previous_events()
        .when(cmd(action))
        .then_expect_events(vec![event(with_id(received_change(
            PetitionChannel::Letter,
            None,
            1,
        )))]);
    let petition = replay(vec![event(with_id(received_change(
        PetitionChannel::Letter,
        None,
        1,
    )))]);
    assert_eq!(petition.complained_unit_id(), Some(&unit));
    assert_eq!(petition.complained_unit(), Some(&name("东湖街道城管科")));
}

#[test]
fn a_complained_unit_outside_the_jurisdiction_is_refused() {
    let unknown = DivisionCode::parse("990101009000").unwrap();
    let mut action = receive(PetitionChannel::Letter, None, 1);
    if let A::Receive {
        complained_unit_id, ..
    } = &mut action
    {
        *complained_unit_id = Some(UnitRef::Division(unknown.clone()));
    }
    framework(T0)
        .given_no_previous_events()
        .when(cmd(action))
        .then_expect_error(PetitionError::UnknownComplainedUnit { unit: unknown });
}

#[test]
fn a_receipt_stored_before_unit_ids_reads_without_one_and_is_stored_as_it_was() {
    let old = event(received_change(PetitionChannel::Letter, None, 1));
    let stored = serde_json::to_value(&old).unwrap();
    assert!(
        stored["change"]["PetitionReceived"]
            .get("complained_unit_id")
            .is_none(),
        "{stored}"
    );
    let read: PetitionEvent = serde_json::from_value(stored).unwrap();
    assert_eq!(read, old);
    assert_eq!(replay(vec![read]).complained_unit_id(), None);
    let agency: UnitRef = serde_json::from_value(serde_json::json!("town-101")).unwrap();
    assert!(matches!(agency, UnitRef::Agency(_)));
    assert_eq!(serde_json::to_value(&agency).unwrap(), "town-101");
}

#[test]
fn a_visit_must_name_the_level_visited() {
    framework(T0)
        .given_no_previous_events()
        .when(cmd(receive(PetitionChannel::Visit, None, 1)))
        .then_expect_error(PetitionError::MissingVisitedLevel);
}

fn group_headcount(headcount: u32) -> PetitionAction {
    A::RecordGroupHeadcount { headcount }
}

/// A group visit to the town received with its five representatives.
fn group_received() -> Vec<PetitionEvent> {
    vec![event(received_change(
        PetitionChannel::Visit,
        Some(Level::Town),
        5,
    ))]
}

#[test]
fn a_group_of_30_is_registered_with_its_headcount_and_five_representatives() {
    // Art 20: any number of people; at most five of them represent it.
    framework(T0)
        .given(group_received())
        .when(cmd(group_headcount(30)))
        .then_expect_events(vec![event(C::GroupHeadcountRecorded { headcount: 30 })]);
    let mut history = group_received();
    history.push(event(C::GroupHeadcountRecorded { headcount: 30 }));
    let petition = replay(history);
    assert_eq!(petition.headcount(), Some(30));
    assert_eq!(petition.representatives(), 5);
    assert_eq!(petition.status(), PetitionStatus::Received);
}

#[test]
fn a_headcount_is_never_below_the_representatives() {
    framework(T0)
        .given(group_received())
        .when(cmd(group_headcount(4)))
        .then_expect_error(not_allowed(
            "record a headcount below the number of representatives",
            PetitionStatus::Received,
        ));
}

#[test]
fn only_a_visit_has_a_headcount() {
    framework(T0)
        .given(received())
        .when(cmd(group_headcount(30)))
        .then_expect_error(not_allowed(
            "record a group's headcount for a non-visit",
            PetitionStatus::Received,
        ));
}

#[test]
fn a_headcount_is_recorded_at_receipt_before_triage() {
    framework(T0)
        .given(routed())
        .when(cmd(group_headcount(30)))
        .then_expect_error(not_allowed(
            "record a group's headcount",
            PetitionStatus::Routed,
        ));
}

#[test]
fn a_group_visit_sends_at_most_five_representatives() {
    framework(T0)
        .given_no_previous_events()
        .when(cmd(receive(PetitionChannel::Visit, Some(Level::Town), 6)))
        .then_expect_error(PetitionError::TooManyRepresentatives { representatives: 6 });
}

#[test]
fn a_visit_sends_at_least_one_representative() {
    framework(T0)
        .given_no_previous_events()
        .when(cmd(receive(PetitionChannel::Visit, Some(Level::Town), 0)))
        .then_expect_error(PetitionError::NoRepresentatives);
}

#[test]
fn a_petition_is_received_only_once() {
    framework(T0)
        .given(received())
        .when(cmd(receive(PetitionChannel::Letter, None, 1)))
        .then_expect_error(not_allowed("receive", PetitionStatus::Received));
}

#[test]
fn a_final_petition_is_not_received_again() {
    framework("2026-05-01T02:00:00Z")
        .given(finalised())
        .when(cmd(receive(PetitionChannel::Letter, None, 1)))
        .then_expect_error(PetitionError::AlreadyFinal {
            finalised_at: at("2026-04-02T02:00:00Z"),
        });
}

// --- Forward -----------------------------------------------------------------

#[test]
fn forwarding_opens_the_notice_and_objection_periods() {
    framework(T0)
        .given(received())
        .when(cmd(A::Forward { to_unit: unit() }))
        .then_expect_events(vec![event(forwarded())]);
}

#[test]
fn forwarding_after_the_triage_deadline_is_recorded_as_late() {
    let now = "2026-03-17T16:00:00Z";
    let services = services_at(now);
    framework(now)
        .given(received())
        .when(cmd(A::Forward { to_unit: unit() }))
        .then_expect_events(vec![event_at(
            now,
            C::PetitionForwarded {
                to_unit: unit(),
                notice_due: services.deadline(Stage::PetitionAcceptanceNotice, at(now)),
                objection_due: services.deadline(Stage::PetitionObjection, at(now)),
                late: true,
            },
        )]);
}

#[test]
fn forwarding_needs_a_received_petition() {
    framework(T0)
        .given_no_previous_events()
        .when(cmd(A::Forward { to_unit: unit() }))
        .then_expect_error(not_allowed("forward", PetitionStatus::New));
}

#[test]
fn the_objection_window_counts_working_days_across_the_spring_festival() {
    // Forwarded Thursday 12 February 2026: 13, the make-up Saturday 14,
    // then 24, 25 and 26 February after the 15–23 February holiday.
    let now = "2026-02-12T02:00:00Z";
    let events = TestFramework::<Petition>::with(services_at(now))
        .given(vec![event_at(
            "2026-02-10T02:00:00Z",
            received_change(PetitionChannel::Letter, None, 1),
        )])
        .when(cmd(A::Forward { to_unit: unit() }))
        .inspect_result()
        .unwrap();
    let [
        PetitionEvent {
            change: C::PetitionForwarded { objection_due, .. },
            ..
        },
    ] = events.as_slice()
    else {
        panic!("expected one PetitionForwarded, got {events:?}");
    };
    assert_eq!(objection_due.last_day, day("2026-02-26"));
    assert_eq!(objection_due.due, at("2026-02-26T16:00:00Z"));
}

// --- Assign ------------------------------------------------------------------

#[test]
fn assigning_sets_a_report_deadline_of_the_given_days() {
    // 20 calendar days from Monday 2 March 2026; tagged as the assigned
    // report, not as the statutory opinion period.
    let report_due = Deadline {
        stage: Stage::AssignedReport,
        due: at("2026-03-23T16:00:00Z"),
        last_day: day("2026-03-23"),
        provisional: false,
    };
    assert_eq!(
        services_at(T0).deadline_for(
            Stage::AssignedReport,
            StageRule {
                days: 20,
                counting: Counting::Calendar,
            },
            at(T0),
        ),
        report_due
    );
    framework(T0)
        .given(received())
        .when(cmd(A::Assign {
            to_unit: unit(),
            report_within_days: 20,
        }))
        .then_expect_events(vec![event(C::PetitionAssigned {
            to_unit: unit(),
            notice_due: due(Stage::PetitionAcceptanceNotice),
            objection_due: due(Stage::PetitionObjection),
            report_due,
            late: false,
            report_within_days: Some(20),
        })]);
}

#[test]
fn assigning_needs_between_1_and_365_days() {
    for days in [0, 366] {
        framework(T0)
            .given(received())
            .when(cmd(A::Assign {
                to_unit: unit(),
                report_within_days: days,
            }))
            .then_expect_error(PetitionError::InvalidDeadline { days, max: 365 });
    }
}

#[test]
fn assigning_needs_a_petition_awaiting_triage() {
    framework(T0)
        .given(routed())
        .when(cmd(A::Assign {
            to_unit: unit(),
            report_within_days: 20,
        }))
        .then_expect_error(not_allowed("assign", PetitionStatus::Routed));
}

// --- Divert and NotAccept ----------------------------------------------------

#[test]
fn diverting_sends_a_legal_matter_to_its_channel() {
    framework(T0)
        .given(received())
        .when(cmd(A::Divert {
            channel: LegalChannel::Litigation,
            note: text("A contract debt: file a civil suit."),
        }))
        .then_expect_events(vec![event(C::PetitionDiverted {
            channel: LegalChannel::Litigation,
            note: text("A contract debt: file a civil suit."),
            late: false,
        })]);
}

#[test]
fn diverting_needs_a_petition_awaiting_triage() {
    framework(T0)
        .given(accepted())
        .when(cmd(A::Divert {
            channel: LegalChannel::Litigation,
            note: text("A contract debt: file a civil suit."),
        }))
        .then_expect_error(not_allowed("divert", PetitionStatus::Accepted));
}

#[test]
fn not_accepting_after_the_triage_deadline_is_recorded_as_late() {
    let now = "2026-03-20T02:00:00Z";
    framework(now)
        .given(received())
        .when(cmd(A::NotAccept {
            reason: text("The matter was settled by a court judgment."),
            repeats_final: None,
        }))
        .then_expect_events(vec![event_at(
            now,
            C::PetitionNotAccepted {
                reason: text("The matter was settled by a court judgment."),
                late: true,
                repeats_final: None,
            },
        )]);
}

#[test]
fn not_accepting_needs_a_petition_awaiting_triage() {
    framework(T0)
        .given(routed())
        .when(cmd(A::NotAccept {
            reason: text("The matter was settled by a court judgment."),
            repeats_final: None,
        }))
        .then_expect_error(not_allowed("refuse to accept", PetitionStatus::Routed));
}

// --- Object ------------------------------------------------------------------

#[test]
fn an_objection_sends_the_petition_back_to_triage() {
    let history = routed();
    let objected = event(C::PetitionObjected {
        unit: unit(),
        reason: text("The lane belongs to Qingshan Town."),
    });
    framework(T0)
        .given(history.clone())
        .when(cmd(A::Object {
            reason: text("The lane belongs to Qingshan Town."),
        }))
        .then_expect_events(vec![objected.clone()]);
    let petition = replay(history.into_iter().chain([objected]).collect());
    assert_eq!(petition.status(), PetitionStatus::Received);
    assert_eq!(petition.unit(), None);
}

#[test]
fn an_objection_is_allowed_on_the_last_working_day_after_the_holiday() {
    // Forwarded 12 February: a count of calendar days would have closed the
    // window during the Spring Festival, but the last day is 26 February.
    let forwarded_at = "2026-02-12T02:00:00Z";
    let services = services_at(forwarded_at);
    let history = vec![
        event_at(
            "2026-02-10T02:00:00Z",
            received_change(PetitionChannel::Letter, None, 1),
        ),
        event_at(
            forwarded_at,
            C::PetitionForwarded {
                to_unit: unit(),
                notice_due: services.deadline(Stage::PetitionAcceptanceNotice, at(forwarded_at)),
                objection_due: services.deadline(Stage::PetitionObjection, at(forwarded_at)),
                late: false,
            },
        ),
    ];
    let now = "2026-02-26T15:59:59Z";
    framework(now)
        .given(history)
        .when(cmd(A::Object {
            reason: text("Not ours."),
        }))
        .then_expect_events(vec![event_at(
            now,
            C::PetitionObjected {
                unit: unit(),
                reason: text("Not ours."),
            },
        )]);
}

#[test]
fn an_objection_after_the_window_is_refused() {
    let objection = due(Stage::PetitionObjection);
    assert_eq!(objection.last_day, day("2026-03-09"));
    framework("2026-03-09T16:00:00Z")
        .given(routed())
        .when(cmd(A::Object {
            reason: text("Not ours."),
        }))
        .then_expect_error(PetitionError::WindowClosed {
            stage: Stage::PetitionObjection,
            due: objection.due,
        });
}

#[test]
fn objecting_needs_a_routed_petition() {
    framework(T0)
        .given(received())
        .when(cmd(A::Object {
            reason: text("Not ours."),
        }))
        .then_expect_error(not_allowed("object", PetitionStatus::Received));
}

// --- Accept ------------------------------------------------------------------

#[test]
fn accepting_opens_the_opinion_period() {
    framework(T0)
        .given(routed())
        .when(cmd(A::Accept {}))
        .then_expect_events(accepted()[2..].to_vec());
    // 60 days from 2 March is 1 May, in the Labour Day holiday (1–5 May):
    // the period rolls to Wednesday 6 May.
    let opinion = replay(accepted()).opinion_due().unwrap();
    assert_eq!(opinion.last_day, day("2026-05-06"));
}

#[test]
fn accepting_after_the_notice_deadline_is_recorded_as_late() {
    let now = "2026-03-18T02:00:00Z";
    framework(now)
        .given(routed())
        .when(cmd(A::Accept {}))
        .then_expect_events(vec![event_at(
            now,
            C::PetitionAccepted {
                unit: unit(),
                opinion_due: services_at(now).deadline(Stage::PetitionOpinion, at(now)),
                late_notice: true,
            },
        )]);
}

#[test]
fn accepting_needs_a_routed_petition() {
    framework(T0)
        .given(received())
        .when(cmd(A::Accept {}))
        .then_expect_error(not_allowed("accept", PetitionStatus::Received));
}

// --- ExtendHandling ----------------------------------------------------------

fn extension(days: u32) -> PetitionAction {
    A::ExtendHandling {
        days,
        reason: text("An expert survey of the lane is needed."),
        approved_by: name("李四"),
    }
}

fn extended() -> PetitionChange {
    C::HandlingExtended {
        days: 30,
        reason: text("An expert survey of the lane is needed."),
        approved_by: name("李四"),
        opinion_due: Deadline {
            stage: Stage::PetitionOpinion,
            due: at("2026-06-05T16:00:00Z"),
            last_day: day("2026-06-05"),
            provisional: false,
        },
    }
}

#[test]
fn extending_moves_the_opinion_deadline_by_the_days_granted() {
    // The opinion was due 6 May; 30 more days end on Friday 5 June.
    framework(T0)
        .given(accepted())
        .when(cmd(extension(30)))
        .then_expect_events(vec![event(extended())]);
}

#[test]
fn handling_is_extended_only_once() {
    let mut history = accepted();
    history.push(event(extended()));
    framework(T0)
        .given(history)
        .when(cmd(extension(5)))
        .then_expect_error(PetitionError::AlreadyExtended);
}

#[test]
fn an_extension_is_at_most_the_policy_length() {
    framework(T0)
        .given(accepted())
        .when(cmd(extension(31)))
        .then_expect_error(PetitionError::ExtensionTooLong { days: 31, max: 30 });
}

#[test]
fn an_extension_on_the_last_day_counts_from_the_original_due_date() {
    // The opinion is due at the end of Wednesday 6 May; granted at 23:00
    // that evening in Beijing, 30 days still end on Friday 5 June.
    let last_hour = "2026-05-06T15:00:00Z";
    framework(last_hour)
        .given(accepted())
        .when(cmd(extension(30)))
        .then_expect_events(vec![event_at(last_hour, extended())]);
}

#[test]
fn an_extension_after_the_handling_deadline_is_refused_and_the_breach_stays() {
    // Art 34 extends a period still running; once it has run out the
    // breach is on record and a late extension would hide it.
    let opinion_due = due(Stage::PetitionOpinion);
    let mut history = accepted();
    history.push(event_at(
        "2026-05-07T00:00:00Z",
        C::DeadlineBreached {
            stage: Stage::PetitionOpinion,
            due: opinion_due.due,
            holder: unit_holder(),
        },
    ));
    framework("2026-05-08T02:00:00Z")
        .given(history.clone())
        .when(cmd(extension(30)))
        .then_expect_error(PetitionError::WindowClosed {
            stage: Stage::PetitionExtension,
            due: opinion_due.due,
        });
    // Still unextended and still due when it was; the breach is not
    // recorded again.
    let petition = replay(history.clone());
    assert!(!petition.extended());
    assert_eq!(petition.opinion_due(), Some(opinion_due));
    framework("2026-05-08T02:00:00Z")
        .given(history)
        .when(cmd(breach(Stage::PetitionOpinion, opinion_due.due)))
        .then_expect_events(vec![]);
}

#[test]
fn extending_needs_an_accepted_petition() {
    framework(T0)
        .given(answered())
        .when(cmd(extension(30)))
        .then_expect_error(not_allowed("extend handling", PetitionStatus::Answered));
}

// --- IssueOpinion ------------------------------------------------------------

#[test]
fn the_opinion_opens_no_review_window_until_it_is_delivered() {
    let (outcome, summary) = opinion(OpinionOutcome::Explain);
    let issued = answered()[3..4].to_vec();
    framework(T0)
        .given(accepted())
        .when(cmd(A::IssueOpinion { outcome, summary }))
        .then_expect_events(issued.clone());
    let petition = replay(accepted().into_iter().chain(issued).collect());
    assert_eq!(petition.status(), PetitionStatus::Answered);
    assert_eq!(petition.review_request_due(), None);
}

#[test]
fn an_opinion_after_its_deadline_is_recorded_as_late() {
    let now = "2026-05-06T16:00:00Z";
    let (outcome, summary) = opinion(OpinionOutcome::Support);
    framework(now)
        .given(accepted())
        .when(cmd(A::IssueOpinion {
            outcome,
            summary: summary.clone(),
        }))
        .then_expect_events(vec![event_at(
            now,
            C::OpinionIssued {
                outcome,
                summary,
                review_request_due: None,
                late: true,
            },
        )]);
}

#[test]
fn an_opinion_needs_an_accepted_petition() {
    let (outcome, summary) = opinion(OpinionOutcome::Support);
    framework(T0)
        .given(routed())
        .when(cmd(A::IssueOpinion { outcome, summary }))
        .then_expect_error(not_allowed("issue an opinion", PetitionStatus::Routed));
}

// --- RequestReview -----------------------------------------------------------

#[test]
fn requesting_review_opens_the_review_period() {
    framework(T0)
        .given(answered())
        .when(cmd(A::RequestReview {
            reason: text("The square is too far away."),
        }))
        .then_expect_events(under_review()[5..].to_vec());
}

#[test]
fn review_is_refused_once_the_request_window_has_closed() {
    let window = due(Stage::ReviewRequest);
    framework("2026-04-01T16:00:00Z")
        .given(answered())
        .when(cmd(A::RequestReview {
            reason: text("Late."),
        }))
        .then_expect_error(PetitionError::WindowClosed {
            stage: Stage::ReviewRequest,
            due: window.due,
        });
}

#[test]
fn review_needs_an_answered_petition() {
    framework(T0)
        .given(accepted())
        .when(cmd(A::RequestReview {
            reason: text("Too slow."),
        }))
        .then_expect_error(not_allowed("request review", PetitionStatus::Accepted));
}

// --- RecordDelivery ----------------------------------------------------------

/// The opinion issued at T0, not yet delivered.
fn undelivered() -> Vec<PetitionEvent> {
    answered()[..4].to_vec()
}

fn deliver(reply: Reply, delivered_on: &str, method: DeliveryMethod) -> PetitionAction {
    A::RecordDelivery {
        reply,
        delivered_on: day(delivered_on),
        method,
    }
}

/// The opinion issued at T0 and received by post on Thursday 12 March.
fn delivered_by_post() -> Vec<PetitionEvent> {
    let mut history = undelivered();
    history.push(event_at(
        "2026-03-14T02:00:00Z",
        C::ReplyDelivered {
            reply: Reply::Opinion,
            delivered_on: day("2026-03-12"),
            method: DeliveryMethod::Post,
            request_due: Some(services_at(T0).deadline_on(Stage::ReviewRequest, day("2026-03-12"))),
        },
    ));
    history
}

#[test]
fn the_review_window_runs_30_days_from_the_day_the_opinion_was_received() {
    // Art 35: 自收到书面答复之日起. Received 12 March by post: 30 days end on
    // Saturday 11 April, a day off, so the window runs to Monday 13 April.
    framework("2026-03-14T02:00:00Z")
        .given(undelivered())
        .when(cmd(deliver(
            Reply::Opinion,
            "2026-03-12",
            DeliveryMethod::Post,
        )))
        .then_expect_events(delivered_by_post()[4..].to_vec());
    let petition = replay(delivered_by_post());
    let window = petition.review_request_due().unwrap();
    assert_eq!(window.stage, Stage::ReviewRequest);
    assert_eq!(window.last_day, day("2026-04-13"));
    assert_eq!(
        petition.delivery(Reply::Opinion),
        Some(Delivery {
            delivered_on: day("2026-03-12"),
            method: DeliveryMethod::Post,
        })
    );
}

#[test]
fn a_review_request_after_a_postal_delay_is_accepted_within_30_days_of_delivery() {
    // 8 April is 37 days after the opinion was issued but 27 after it was
    // received.
    let now = "2026-04-08T02:00:00Z";
    framework(now)
        .given(delivered_by_post())
        .when(cmd(A::RequestReview {
            reason: text("The square is too far away."),
        }))
        .then_expect_events(vec![event_at(
            now,
            C::ReviewRequested {
                reason: text("The square is too far away."),
                review_due: services_at(now).deadline(Stage::Review, at(now)),
            },
        )]);
}

#[test]
fn a_review_request_after_30_days_from_delivery_is_refused() {
    let window = replay(delivered_by_post()).review_request_due().unwrap();
    framework("2026-04-13T16:00:00Z")
        .given(delivered_by_post())
        .when(cmd(A::RequestReview {
            reason: text("Late."),
        }))
        .then_expect_error(PetitionError::WindowClosed {
            stage: Stage::ReviewRequest,
            due: window.due,
        });
}

#[test]
fn a_review_request_before_the_delivery_is_recorded_is_not_late() {
    // The window has not started, so it cannot have closed.
    let now = "2026-06-01T02:00:00Z";
    framework(now)
        .given(undelivered())
        .when(cmd(A::RequestReview {
            reason: text("The square is too far away."),
        }))
        .then_expect_events(vec![event_at(
            now,
            C::ReviewRequested {
                reason: text("The square is too far away."),
                review_due: services_at(now).deadline(Stage::Review, at(now)),
            },
        )]);
}

#[test]
fn an_undelivered_opinion_is_not_made_final() {
    framework("2026-12-01T02:00:00Z")
        .given(undelivered())
        .when(cmd(A::Finalise {}))
        .then_expect_error(not_allowed(
            "finalise before the reply is delivered",
            PetitionStatus::Answered,
        ));
}

#[test]
fn the_review_window_lapses_30_days_after_delivery_not_after_issue() {
    // Open on 2 April, when a window counted from the issue would have
    // closed; lapsed after 13 April.
    let window = replay(delivered_by_post()).review_request_due().unwrap();
    framework("2026-04-02T02:00:00Z")
        .given(delivered_by_post())
        .when(cmd(A::Finalise {}))
        .then_expect_error(PetitionError::WindowStillOpen {
            stage: Stage::ReviewRequest,
            due: window.due,
        });
    framework("2026-04-14T02:00:00Z")
        .given(delivered_by_post())
        .when(cmd(A::Finalise {}))
        .then_expect_events(vec![event_at(
            "2026-04-14T02:00:00Z",
            C::PetitionFinalised {
                basis: FinalBasis::ReviewWindowLapsed,
            },
        )]);
}

#[test]
fn the_review_opinions_delivery_opens_the_re_review_window() {
    // Art 36: the re-review window too runs from delivery.
    let mut history = under_review();
    history.extend(reviewed()[6..7].to_vec());
    let now = "2026-03-20T02:00:00Z";
    framework(now)
        .given(history)
        .when(cmd(deliver(
            Reply::ReviewOpinion,
            "2026-03-19",
            DeliveryMethod::Electronic,
        )))
        .then_expect_events(vec![event_at(
            now,
            C::ReplyDelivered {
                reply: Reply::ReviewOpinion,
                delivered_on: day("2026-03-19"),
                method: DeliveryMethod::Electronic,
                request_due: Some(
                    services_at(now).deadline_on(Stage::ReReviewRequest, day("2026-03-19")),
                ),
            },
        )]);
}

#[test]
fn the_final_re_review_opinions_delivery_opens_no_window() {
    let mut history = under_re_review();
    let (outcome, summary) = opinion(OpinionOutcome::Support);
    history.push(event(C::ReReviewOpinionIssued {
        outcome,
        decision: None,
        summary,
        late: false,
    }));
    history.push(event(C::PetitionFinalised {
        basis: FinalBasis::ReReviewed,
    }));
    framework(T0)
        .given(history)
        .when(cmd(deliver(
            Reply::ReReviewOpinion,
            "2026-03-02",
            DeliveryMethod::InPerson,
        )))
        .then_expect_events(vec![event(delivered(Reply::ReReviewOpinion, None))]);
}

#[test]
fn a_reply_not_yet_issued_cannot_be_delivered() {
    framework(T0)
        .given(accepted())
        .when(cmd(deliver(
            Reply::Opinion,
            "2026-03-02",
            DeliveryMethod::InPerson,
        )))
        .then_expect_error(not_allowed(
            "record the delivery of a reply not yet issued",
            PetitionStatus::Accepted,
        ));
    framework(T0)
        .given(answered())
        .when(cmd(deliver(
            Reply::ReviewOpinion,
            "2026-03-02",
            DeliveryMethod::InPerson,
        )))
        .then_expect_error(not_allowed(
            "record the delivery of a reply not yet issued",
            PetitionStatus::Answered,
        ));
}

#[test]
fn a_reply_is_delivered_once() {
    framework("2026-03-20T02:00:00Z")
        .given(delivered_by_post())
        .when(cmd(deliver(
            Reply::Opinion,
            "2026-03-19",
            DeliveryMethod::InPerson,
        )))
        .then_expect_error(not_allowed(
            "record a second delivery of the same reply",
            PetitionStatus::Answered,
        ));
}

#[test]
fn a_delivery_is_dated_between_the_reply_and_today() {
    // The opinion was issued on 2 March; today is 14 March in Beijing.
    for (delivered_on, action) in [
        (
            "2026-03-01",
            "record a delivery dated before the reply was issued",
        ),
        ("2026-03-15", "record a delivery dated after today"),
    ] {
        framework("2026-03-14T02:00:00Z")
            .given(undelivered())
            .when(cmd(deliver(
                Reply::Opinion,
                delivered_on,
                DeliveryMethod::Post,
            )))
            .then_expect_error(not_allowed(action, PetitionStatus::Answered));
    }
}

#[test]
fn an_opinion_stored_before_deliveries_were_recorded_still_replays() {
    // The shape OpinionIssued had when its window ran from the issue.
    let stored = serde_json::json!({
        "at": T0,
        "by": serde_json::to_value(officer()).unwrap(),
        "change": {"OpinionIssued": {
            "outcome": "explain",
            "summary": "The stalls will move to the market square.",
            "review_request_due": {
                "stage": "review_request",
                "due": "2026-04-01T16:00:00Z",
                "last_day": "2026-04-01",
                "provisional": false
            },
            "late": false
        }}
    });
    let event: PetitionEvent = serde_json::from_value(stored).unwrap();
    let mut history = accepted();
    history.push(event);
    let petition = replay(history.clone());
    // Its window stands as stored: counted from the issue.
    assert_eq!(
        petition.review_request_due(),
        Some(due(Stage::ReviewRequest))
    );
    framework("2026-04-01T16:00:00Z")
        .given(history.clone())
        .when(cmd(A::Finalise {}))
        .then_expect_events(vec![event_at(
            "2026-04-01T16:00:00Z",
            C::PetitionFinalised {
                basis: FinalBasis::ReviewWindowLapsed,
            },
        )]);
    // A delivery recorded now re-times it from the day received.
    framework("2026-03-14T02:00:00Z")
        .given(history)
        .when(cmd(deliver(
            Reply::Opinion,
            "2026-03-12",
            DeliveryMethod::Post,
        )))
        .then_expect_events(delivered_by_post()[4..].to_vec());
}

// --- RecordHearing -----------------------------------------------------------

#[test]
fn a_hearing_during_review_is_refused_since_only_re_review_leaves_hearing_time_out() {
    // Art 36 leaves hearing time out of the re-review period; Art 35 leaves
    // nothing out of a review's.
    framework(T0)
        .given(under_review())
        .when(cmd(A::RecordHearing { days: 10 }))
        .then_expect_error(not_allowed("record a hearing", PetitionStatus::UnderReview));
}

#[test]
fn a_hearing_during_re_review_moves_the_re_review_deadline() {
    let services = services_at(T0);
    let re_review = due(Stage::ReReview);
    let moved = services.deadline_for(
        Stage::ReReview,
        StageRule {
            days: 7,
            counting: Counting::Calendar,
        },
        at("2026-04-01T15:59:59Z"),
    );
    assert_eq!(re_review.last_day, day("2026-04-01"));
    let held = event(C::HearingHeld {
        days: 7,
        due: moved,
    });
    framework(T0)
        .given(under_re_review())
        .when(cmd(A::RecordHearing { days: 7 }))
        .then_expect_events(vec![held.clone()]);
    let petition = replay(under_re_review().into_iter().chain([held]).collect());
    assert_eq!(petition.re_review_due(), Some(moved));
    assert_eq!(petition.review_due(), Some(due(Stage::Review)));
}

#[test]
fn a_hearing_lasts_between_1_and_90_days() {
    for days in [0, 91] {
        framework(T0)
            .given(under_re_review())
            .when(cmd(A::RecordHearing { days }))
            .then_expect_error(PetitionError::InvalidDeadline { days, max: 90 });
    }
}

#[test]
fn a_hearing_needs_a_re_review_under_way() {
    framework(T0)
        .given(answered())
        .when(cmd(A::RecordHearing { days: 5 }))
        .then_expect_error(not_allowed("record a hearing", PetitionStatus::Answered));
}

// --- IssueReviewOpinion ------------------------------------------------------

#[test]
fn the_review_opinion_opens_the_re_review_request_window() {
    let (outcome, summary) = opinion(OpinionOutcome::NotSupport);
    framework(T0)
        .given(under_review())
        .when(cmd(A::IssueReviewOpinion {
            outcome,
            decision: None,
            summary,
        }))
        .then_expect_events(reviewed()[6..7].to_vec());
}

#[test]
fn a_review_opinion_needs_a_review_under_way() {
    let (outcome, summary) = opinion(OpinionOutcome::NotSupport);
    framework(T0)
        .given(answered())
        .when(cmd(A::IssueReviewOpinion {
            outcome,
            decision: None,
            summary,
        }))
        .then_expect_error(not_allowed(
            "issue a review opinion",
            PetitionStatus::Answered,
        ));
}

// --- RequestReReview ---------------------------------------------------------

#[test]
fn requesting_re_review_opens_the_re_review_period() {
    framework(T0)
        .given(reviewed())
        .when(cmd(A::RequestReReview {
            reason: text("The review ignored the noise."),
        }))
        .then_expect_events(under_re_review()[8..].to_vec());
}

#[test]
fn re_review_is_refused_once_the_request_window_has_closed() {
    let window = due(Stage::ReReviewRequest);
    framework("2026-04-02T02:00:00Z")
        .given(reviewed())
        .when(cmd(A::RequestReReview {
            reason: text("Late."),
        }))
        .then_expect_error(PetitionError::WindowClosed {
            stage: Stage::ReReviewRequest,
            due: window.due,
        });
}

#[test]
fn re_review_needs_a_reviewed_petition() {
    framework(T0)
        .given(under_review())
        .when(cmd(A::RequestReReview {
            reason: text("Too early."),
        }))
        .then_expect_error(not_allowed(
            "request re-review",
            PetitionStatus::UnderReview,
        ));
}

// --- IssueReReviewOpinion ----------------------------------------------------

#[test]
fn the_re_review_opinion_makes_the_petition_final() {
    let (outcome, summary) = opinion(OpinionOutcome::NotSupport);
    let expected = vec![
        event(C::ReReviewOpinionIssued {
            outcome,
            decision: None,
            summary: summary.clone(),
            late: false,
        }),
        event(C::PetitionFinalised {
            basis: FinalBasis::ReReviewed,
        }),
    ];
    framework(T0)
        .given(under_re_review())
        .when(cmd(A::IssueReReviewOpinion {
            outcome,
            decision: None,
            summary,
        }))
        .then_expect_events(expected.clone());
    let petition = replay(under_re_review().into_iter().chain(expected).collect());
    assert_eq!(petition.status(), PetitionStatus::Final);
    assert_eq!(petition.final_basis(), Some(FinalBasis::ReReviewed));
    assert_eq!(petition.finalised_at(), Some(at(T0)));
}

#[test]
fn a_re_review_opinion_needs_a_re_review_under_way() {
    let (outcome, summary) = opinion(OpinionOutcome::Support);
    framework(T0)
        .given(reviewed())
        .when(cmd(A::IssueReReviewOpinion {
            outcome,
            decision: None,
            summary,
        }))
        .then_expect_error(not_allowed(
            "issue a re-review opinion",
            PetitionStatus::Reviewed,
        ));
}

// --- Evaluate ----------------------------------------------------------------

fn evaluate(satisfaction: Satisfaction) -> PetitionAction {
    A::Evaluate {
        satisfaction,
        note: Some(text("The stalls have gone.")),
    }
}

fn evaluated(satisfaction: Satisfaction) -> PetitionChange {
    C::PetitionEvaluated {
        satisfaction,
        note: Some(text("The stalls have gone.")),
    }
}

#[test]
fn an_answered_petition_records_the_petitioners_satisfaction() {
    framework(T0)
        .given(answered())
        .when(cmd(evaluate(Satisfaction::BasicallySatisfied)))
        .then_expect_events(vec![event(evaluated(Satisfaction::BasicallySatisfied))]);
    let mut history = answered();
    history.push(event(evaluated(Satisfaction::BasicallySatisfied)));
    let petition = replay(history);
    assert_eq!(
        petition.satisfaction(),
        Some(Satisfaction::BasicallySatisfied)
    );
    // The evaluation is a record, not a step: the petition stays answered,
    // and the petitioner may still ask for review.
    assert_eq!(petition.status(), PetitionStatus::Answered);
}

#[test]
fn a_petition_may_be_evaluated_under_review_and_once_final() {
    for history in [under_review(), reviewed(), under_re_review(), finalised()] {
        framework(T0)
            .given(history)
            .when(cmd(evaluate(Satisfaction::Dissatisfied)))
            .then_expect_events(vec![event(evaluated(Satisfaction::Dissatisfied))]);
    }
}

#[test]
fn a_petition_without_an_opinion_cannot_be_evaluated() {
    let not_accepted = {
        let mut history = received();
        history.push(event(C::PetitionNotAccepted {
            reason: text("A court has ruled on the matter."),
            late: false,
            repeats_final: None,
        }));
        history
    };
    for (history, status) in [
        (vec![], PetitionStatus::New),
        (received(), PetitionStatus::Received),
        (routed(), PetitionStatus::Routed),
        (accepted(), PetitionStatus::Accepted),
        (not_accepted, PetitionStatus::NotAccepted),
    ] {
        framework(T0)
            .given(history)
            .when(cmd(evaluate(Satisfaction::Satisfied)))
            .then_expect_error(not_allowed("evaluate", status));
    }
}

#[test]
fn a_petition_is_evaluated_once() {
    let mut history = answered();
    history.push(event(evaluated(Satisfaction::Satisfied)));
    framework(T0)
        .given(history)
        .when(cmd(evaluate(Satisfaction::Dissatisfied)))
        .then_expect_error(PetitionError::AlreadyEvaluated);
}

// --- Finalise ----------------------------------------------------------------

#[test]
fn a_lapsed_review_window_makes_the_opinion_final() {
    let now = "2026-04-01T16:00:00Z";
    framework(now)
        .given(answered())
        .when(cmd(A::Finalise {}))
        .then_expect_events(vec![event_at(
            now,
            C::PetitionFinalised {
                basis: FinalBasis::ReviewWindowLapsed,
            },
        )]);
}

#[test]
fn a_lapsed_re_review_window_makes_the_review_opinion_final() {
    let now = "2026-04-02T02:00:00Z";
    framework(now)
        .given(reviewed())
        .when(cmd(A::Finalise {}))
        .then_expect_events(vec![event_at(
            now,
            C::PetitionFinalised {
                basis: FinalBasis::ReReviewWindowLapsed,
            },
        )]);
}

#[test]
fn finalising_waits_for_the_review_window_to_lapse() {
    framework("2026-04-01T15:59:59Z")
        .given(answered())
        .when(cmd(A::Finalise {}))
        .then_expect_error(PetitionError::WindowStillOpen {
            stage: Stage::ReviewRequest,
            due: due(Stage::ReviewRequest).due,
        });
}

#[test]
fn finalising_waits_for_the_re_review_window_to_lapse() {
    framework(T0)
        .given(reviewed())
        .when(cmd(A::Finalise {}))
        .then_expect_error(PetitionError::WindowStillOpen {
            stage: Stage::ReReviewRequest,
            due: due(Stage::ReReviewRequest).due,
        });
}

#[test]
fn finalising_needs_an_answered_or_reviewed_petition() {
    framework("2026-12-01T02:00:00Z")
        .given(accepted())
        .when(cmd(A::Finalise {}))
        .then_expect_error(not_allowed("finalise", PetitionStatus::Accepted));
}

// --- SLA clocks and deadline timers ------------------------------------------

fn warn(stage: Stage, threshold_percent: u8, due: DateTime<Utc>) -> PetitionAction {
    A::RecordDeadlineWarning {
        stage,
        threshold_percent,
        due,
    }
}

fn breach(stage: Stage, due: DateTime<Utc>) -> PetitionAction {
    A::RecordDeadlineBreach { stage, due }
}

/// The stages whose clocks run after `history`.
fn running(history: Vec<PetitionEvent>) -> Vec<Stage> {
    replay(history)
        .running_clocks()
        .into_iter()
        .map(|c| c.stage)
        .collect()
}

/// The petition's division and competent level, with no body named.
fn town_holder() -> Holder {
    Holder {
        division: Some(DivisionCode::parse(TOWN).unwrap()),
        level: Some(Level::Town),
        body: None,
        person: None,
        official: None,
    }
}

/// The receiving unit's holder.
fn unit_holder() -> Holder {
    Holder {
        body: Some(unit().to_string()),
        ..town_holder()
    }
}

fn assigned() -> Vec<PetitionEvent> {
    let mut history = received();
    history.push(event(C::PetitionAssigned {
        to_unit: unit(),
        notice_due: due(Stage::PetitionAcceptanceNotice),
        objection_due: due(Stage::PetitionObjection),
        report_due: services_at(T0).deadline_for(
            Stage::AssignedReport,
            StageRule {
                days: 20,
                counting: Counting::Calendar,
            },
            at(T0),
        ),
        late: false,
        report_within_days: Some(20),
    }));
    history
}

fn assigned_and_accepted() -> Vec<PetitionEvent> {
    let mut history = assigned();
    history.push(event(C::PetitionAccepted {
        unit: unit(),
        opinion_due: due(Stage::PetitionOpinion),
        late_notice: false,
    }));
    history
}

fn assigned_and_answered() -> Vec<PetitionEvent> {
    let mut history = assigned_and_accepted();
    let (outcome, summary) = opinion(OpinionOutcome::Support);
    history.push(event(C::OpinionIssued {
        outcome,
        summary,
        review_request_due: None,
        late: false,
    }));
    history
}

#[test]
fn the_assigned_report_clock_runs_from_assignment_to_the_result_report() {
    let report_due = replay(assigned()).report_due().unwrap();
    let clocks = replay(assigned_and_accepted()).running_clocks();
    let report = clocks
        .iter()
        .find(|c| c.stage == Stage::AssignedReport)
        .unwrap();
    // Started at assignment, not restarted at acceptance; owed by the unit.
    assert_eq!(report.started_at, at(T0));
    assert_eq!(report.deadline, report_due);
    assert_eq!(report.holder, unit_holder());
    // A breach of the report deadline can be recorded after acceptance.
    framework("2026-03-24T00:00:00Z")
        .given(assigned_and_accepted())
        .when(cmd(breach(Stage::AssignedReport, report_due.due)))
        .then_expect_events(vec![event_at(
            "2026-03-24T00:00:00Z",
            C::DeadlineBreached {
                stage: Stage::AssignedReport,
                due: report_due.due,
                holder: unit_holder(),
            },
        )]);
}

/// A hearing stored during a review, as histories recorded before the
/// re-review-only rule (Art 36) hold: review due 1 April, moved by a 10-day hearing to Saturday 11 April and
/// rolled to Monday 13 April.
fn hearing_10_days() -> PetitionChange {
    C::HearingHeld {
        days: 10,
        due: Deadline {
            stage: Stage::Review,
            due: at("2026-04-13T16:00:00Z"),
            last_day: day("2026-04-13"),
            provisional: false,
        },
    }
}

#[test]
fn clocks_run_for_what_the_holder_owes_in_each_status() {
    use Stage as S;
    let mut extended_history = accepted();
    extended_history.push(event(extended()));
    let mut objected = routed();
    objected.push(event(C::PetitionObjected {
        unit: unit(),
        reason: text("Not our street."),
    }));
    let mut diverted = received();
    diverted.push(event(C::PetitionDiverted {
        channel: LegalChannel::Litigation,
        note: text("A contract matter for the courts."),
        late: false,
    }));
    let cases: Vec<(&str, Vec<PetitionEvent>, Vec<Stage>)> = vec![
        ("new", vec![], vec![]),
        ("received", received(), vec![S::PetitionTriage]),
        // The objection window is the unit's right, not its duty.
        ("forwarded", routed(), vec![S::PetitionAcceptanceNotice]),
        (
            "assigned",
            assigned(),
            vec![S::PetitionAcceptanceNotice, S::AssignedReport],
        ),
        ("objected", objected, vec![S::PetitionTriage]),
        ("diverted", diverted, vec![]),
        ("accepted", accepted(), vec![S::PetitionOpinion]),
        // An assigned item is done at its result report (the opinion),
        // not at acceptance.
        (
            "assigned and accepted",
            assigned_and_accepted(),
            vec![S::PetitionOpinion, S::AssignedReport],
        ),
        ("assigned and answered", assigned_and_answered(), vec![]),
        ("extended", extended_history, vec![S::PetitionOpinion]),
        // The review request window is the petitioner's, not an obligation.
        ("answered", answered(), vec![]),
        ("under review", under_review(), vec![S::Review]),
        ("reviewed", reviewed(), vec![]),
        ("under re-review", under_re_review(), vec![S::ReReview]),
        ("final", finalised(), vec![]),
    ];
    for (status, history, expected) in cases {
        assert_eq!(running(history), expected, "{status}");
    }
}

#[test]
fn each_clock_names_its_start_its_deadline_and_who_owes_it() {
    assert_eq!(
        replay(received()).running_clocks(),
        vec![RunningClock {
            stage: Stage::PetitionTriage,
            deadline: due(Stage::PetitionTriage),
            started_at: at(T0),
            paused: chrono::Duration::zero(),
            holder: town_holder(),
        }]
    );
    let notice = replay(routed()).running_clocks();
    assert_eq!(notice[0].deadline, due(Stage::PetitionAcceptanceNotice));
    assert_eq!(notice[0].holder, unit_holder());
    // The opinion clock starts at acceptance, not at receipt.
    let accepted_at = "2026-03-05T02:00:00Z";
    let mut history = routed();
    history.push(event_at(
        accepted_at,
        C::PetitionAccepted {
            unit: unit(),
            opinion_due: services_at(accepted_at).deadline(Stage::PetitionOpinion, at(accepted_at)),
            late_notice: false,
        },
    ));
    let opinion = replay(history).running_clocks();
    assert_eq!(opinion[0].started_at, at(accepted_at));
    assert_eq!(opinion[0].holder, unit_holder());
}

#[test]
fn an_extension_moves_the_opinion_due_time_but_not_its_start() {
    let old_due = due(Stage::PetitionOpinion).due;
    assert_eq!(old_due, at("2026-05-06T16:00:00Z"));
    let mut history = accepted();
    history.push(event(extended()));
    let clocks = replay(history.clone()).running_clocks();
    assert_eq!(clocks[0].started_at, at(T0));
    assert_eq!(clocks[0].deadline.due, at("2026-06-05T16:00:00Z"));
    // A timer set for the old due time is stale.
    framework("2026-05-07T00:00:00Z")
        .given(history)
        .when(cmd(breach(Stage::PetitionOpinion, old_due)))
        .then_expect_error(PetitionError::ClockNotRunning {
            stage: Stage::PetitionOpinion,
            due: old_due,
        });
}

#[test]
fn a_stored_hearing_still_pauses_the_review_clock() {
    let mut history = under_review();
    history.push(event(hearing_10_days()));
    let clocks = replay(history.clone()).running_clocks();
    assert_eq!(clocks.len(), 1);
    assert_eq!(clocks[0].paused, chrono::Duration::days(10));
    assert_eq!(clocks[0].started_at, at(T0));
    let review_due = at("2026-04-13T16:00:00Z");
    assert_eq!(clocks[0].deadline.due, review_due);
    // 42 days 14 hours to the moved due time, less 10 paused days: 32 days
    // 14 hours allowed, half of which have run 16 days 7 hours before the
    // due time. Without the pause, half would have run on 23 March.
    let half = at("2026-03-28T09:00:00Z");
    framework("2026-03-28T08:59:59Z")
        .given(history.clone())
        .when(cmd(warn(Stage::Review, 50, review_due)))
        .then_expect_error(PetitionError::ThresholdNotReached {
            stage: Stage::Review,
            threshold_percent: 50,
            reached_at: half,
        });
    framework("2026-03-28T09:00:00Z")
        .given(history)
        .when(cmd(warn(Stage::Review, 50, review_due)))
        .then_expect_events(vec![event_at(
            "2026-03-28T09:00:00Z",
            C::DeadlineWarned {
                stage: Stage::Review,
                threshold_percent: 50,
                due: review_due,
                holder: town_holder(),
            },
        )]);
}

#[test]
fn hearings_pause_only_the_period_they_were_held_in() {
    let mut history = under_review();
    history.push(event(hearing_10_days()));
    let (outcome, summary) = opinion(OpinionOutcome::NotSupport);
    history.push(event(C::ReviewOpinionIssued {
        outcome,
        decision: None,
        summary,
        re_review_request_due: Some(due(Stage::ReReviewRequest)),
        late: false,
    }));
    history.push(event(C::ReReviewRequested {
        reason: text("The review ignored the noise."),
        re_review_due: due(Stage::ReReview),
    }));
    let clocks = replay(history).running_clocks();
    assert_eq!(clocks[0].stage, Stage::ReReview);
    assert_eq!(clocks[0].paused, chrono::Duration::zero());
}

#[test]
fn a_triage_clock_ends_on_a_make_up_saturday_or_after_the_spring_festival() {
    // Received Friday 13 February 2026: 15 days end Saturday 28 February,
    // a make-up working day, so the deadline stays there.
    let friday = "2026-02-13T02:00:00Z";
    let on_make_up_day = services_at(friday).deadline(Stage::PetitionTriage, at(friday));
    assert_eq!(on_make_up_day.due, at("2026-02-28T16:00:00Z"));
    // Received Thursday 5 February: 15 days end Friday 20 February, inside
    // the 15–23 February holiday, so the deadline rolls to Tuesday 24th.
    let thursday = "2026-02-05T02:00:00Z";
    let rolled = services_at(thursday).deadline(Stage::PetitionTriage, at(thursday));
    assert_eq!(rolled.due, at("2026-02-24T16:00:00Z"));
    let history = vec![event_at(
        thursday,
        C::PetitionReceived {
            channel: PetitionChannel::Letter,
            matter_type: None,
            petitioner: petitioner(),
            complained_unit: None,
            complained_unit_id: None,
            facts: text("Street stalls block the lane every evening."),
            division: DivisionCode::parse(TOWN).unwrap(),
            competent_level: Level::Town,
            visited_level: None,
            representatives: 1,
            triage_due: rolled,
            repeat_of: None,
        },
    )];
    assert_eq!(replay(history.clone()).running_clocks()[0].deadline, rolled);
    // Friday 20th would have been the due time without the holiday.
    framework("2026-02-21T00:00:00Z")
        .given(history.clone())
        .when(cmd(breach(Stage::PetitionTriage, rolled.due)))
        .then_expect_error(PetitionError::ThresholdNotReached {
            stage: Stage::PetitionTriage,
            threshold_percent: 100,
            reached_at: rolled.due,
        });
    framework("2026-02-24T16:00:00Z")
        .given(history)
        .when(cmd(breach(Stage::PetitionTriage, rolled.due)))
        .then_expect_events(vec![event_at(
            "2026-02-24T16:00:00Z",
            C::DeadlineBreached {
                stage: Stage::PetitionTriage,
                due: rolled.due,
                holder: town_holder(),
            },
        )]);
}

#[test]
fn a_warning_before_half_the_allowed_time_is_refused() {
    // 65 days 14 hours from acceptance to the opinion due time.
    let opinion_due = due(Stage::PetitionOpinion).due;
    framework("2026-04-03T20:59:59Z")
        .given(accepted())
        .when(cmd(warn(Stage::PetitionOpinion, 50, opinion_due)))
        .then_expect_error(PetitionError::ThresholdNotReached {
            stage: Stage::PetitionOpinion,
            threshold_percent: 50,
            reached_at: at("2026-04-03T21:00:00Z"),
        });
}

#[test]
fn a_warning_at_half_the_allowed_time_names_the_unit() {
    let opinion_due = due(Stage::PetitionOpinion).due;
    framework("2026-04-03T21:00:00Z")
        .given(accepted())
        .when(cmd(warn(Stage::PetitionOpinion, 50, opinion_due)))
        .then_expect_events(vec![event_at(
            "2026-04-03T21:00:00Z",
            C::DeadlineWarned {
                stage: Stage::PetitionOpinion,
                threshold_percent: 50,
                due: opinion_due,
                holder: unit_holder(),
            },
        )]);
}

#[test]
fn a_warning_already_recorded_writes_nothing() {
    let opinion_due = due(Stage::PetitionOpinion).due;
    let mut history = accepted();
    history.push(event_at(
        "2026-04-03T21:00:00Z",
        C::DeadlineWarned {
            stage: Stage::PetitionOpinion,
            threshold_percent: 50,
            due: opinion_due,
            holder: unit_holder(),
        },
    ));
    framework("2026-04-04T00:00:00Z")
        .given(history)
        .when(cmd(warn(Stage::PetitionOpinion, 50, opinion_due)))
        .then_expect_events(vec![]);
}

#[test]
fn a_warning_is_recorded_only_at_50_or_75_percent() {
    let opinion_due = due(Stage::PetitionOpinion).due;
    framework("2026-05-06T00:00:00Z")
        .given(accepted())
        .when(cmd(warn(Stage::PetitionOpinion, 90, opinion_due)))
        .then_expect_error(PetitionError::InvalidThreshold {
            threshold_percent: 90,
        });
}

#[test]
fn a_breach_after_the_notice_due_time_records_the_receiving_unit() {
    let notice_due = due(Stage::PetitionAcceptanceNotice).due;
    framework("2026-03-18T01:00:00Z")
        .given(routed())
        .when(cmd(breach(Stage::PetitionAcceptanceNotice, notice_due)))
        .then_expect_events(vec![event_at(
            "2026-03-18T01:00:00Z",
            C::DeadlineBreached {
                stage: Stage::PetitionAcceptanceNotice,
                due: notice_due,
                holder: unit_holder(),
            },
        )]);
}

#[test]
fn a_breach_already_recorded_writes_nothing() {
    let notice_due = due(Stage::PetitionAcceptanceNotice).due;
    let mut history = routed();
    history.push(event(C::DeadlineBreached {
        stage: Stage::PetitionAcceptanceNotice,
        due: notice_due,
        holder: unit_holder(),
    }));
    framework("2026-03-20T00:00:00Z")
        .given(history)
        .when(cmd(breach(Stage::PetitionAcceptanceNotice, notice_due)))
        .then_expect_events(vec![]);
}

#[test]
fn a_stopped_clock_is_not_breached() {
    // Acceptance met the notice obligation.
    let notice_due = due(Stage::PetitionAcceptanceNotice).due;
    framework("2026-03-20T00:00:00Z")
        .given(accepted())
        .when(cmd(breach(Stage::PetitionAcceptanceNotice, notice_due)))
        .then_expect_error(PetitionError::ClockNotRunning {
            stage: Stage::PetitionAcceptanceNotice,
            due: notice_due,
        });
}

#[test]
fn the_objection_window_is_not_a_clock() {
    let objection_due = due(Stage::PetitionObjection).due;
    framework("2026-03-20T00:00:00Z")
        .given(routed())
        .when(cmd(breach(Stage::PetitionObjection, objection_due)))
        .then_expect_error(PetitionError::ClockNotRunning {
            stage: Stage::PetitionObjection,
            due: objection_due,
        });
}

#[test]
fn the_petitioners_request_window_runs_no_clock() {
    let window = due(Stage::ReviewRequest).due;
    framework("2026-04-20T00:00:00Z")
        .given(answered())
        .when(cmd(breach(Stage::ReviewRequest, window)))
        .then_expect_error(not_allowed(
            "record a deadline breach",
            PetitionStatus::Answered,
        ));
}

#[test]
fn warnings_and_breaches_leave_the_status_alone() {
    let mut history = routed();
    let before = replay(history.clone());
    history.push(event(C::DeadlineBreached {
        stage: Stage::PetitionAcceptanceNotice,
        due: due(Stage::PetitionAcceptanceNotice).due,
        holder: unit_holder(),
    }));
    let after = replay(history.clone());
    assert_eq!(after.status(), PetitionStatus::Routed);
    assert_eq!(after.running_clocks(), before.running_clocks());
    let snapshot = serde_json::to_string(&after).unwrap();
    assert_eq!(serde_json::from_str::<Petition>(&snapshot).unwrap(), after);
    let last = history.pop().unwrap();
    assert_eq!(last.event_type(), "DeadlineBreached");
    let stored = serde_json::to_string(&last).unwrap();
    assert_eq!(
        serde_json::from_str::<PetitionEvent>(&stored).unwrap(),
        last
    );
}

#[test]
fn timer_events_are_typed_by_variant_name() {
    let warned = event(C::DeadlineWarned {
        stage: Stage::Review,
        threshold_percent: 75,
        due: due(Stage::Review).due,
        holder: town_holder(),
    });
    assert_eq!(warned.event_type(), "DeadlineWarned");
    assert_eq!(warned.event_version(), "1");
}

// --- State, storage and messages ---------------------------------------------

#[test]
fn replaying_a_history_exposes_what_a_query_shows() {
    let mut history = accepted();
    history.push(event(extended()));
    let petition = replay(history);
    assert_eq!(petition.status(), PetitionStatus::Accepted);
    assert_eq!(petition.channel(), Some(PetitionChannel::Letter));
    assert_eq!(petition.petitioner(), Some(&petitioner()));
    assert_eq!(petition.division().map(DivisionCode::as_str), Some(TOWN));
    assert_eq!(petition.competent_level(), Some(Level::Town));
    assert_eq!(petition.unit(), Some(&unit()));
    assert_eq!(petition.triage_due(), Some(due(Stage::PetitionTriage)));
    assert!(petition.extended());
    assert_eq!(
        petition.opinion_due().map(|d| d.last_day),
        Some(day("2026-06-05"))
    );
    assert!(!petition.skipped_level());
    assert_eq!(petition.finalised_at(), None);
}

#[test]
fn snapshots_and_events_round_trip_through_json() {
    let history = under_re_review();
    let petition = replay(history.clone());
    let snapshot = serde_json::to_string(&petition).unwrap();
    assert_eq!(
        serde_json::from_str::<Petition>(&snapshot).unwrap(),
        petition
    );
    for event in history {
        let stored = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<PetitionEvent>(&stored).unwrap(),
            event
        );
    }
}

#[test]
fn events_are_typed_by_variant_name_at_version_1() {
    let event = event(forwarded());
    assert_eq!(event.event_type(), "PetitionForwarded");
    assert_eq!(event.event_version(), "1");
}

#[test]
fn a_refusal_names_the_action_and_the_status() {
    let error = not_allowed("forward", PetitionStatus::New);
    assert_eq!(
        error.to_string(),
        "cannot forward: the petition is not yet received"
    );
}

// Repeats of earlier petitions (Art 37 across cases).

/// Petition records for these tests: a fixed answer per id.
#[derive(Debug)]
struct Records(Vec<(&'static str, Result<Finality, ()>)>);

#[async_trait::async_trait]
impl PetitionRecords for Records {
    async fn finality(&self, id: &CaseId) -> Result<Finality, RecordsUnavailable> {
        self.0
            .iter()
            .find(|(known, _)| *known == id.as_str())
            .map_or(Ok(Finality::Unknown), |(_, answer)| {
                answer.map_err(|()| RecordsUnavailable)
            })
    }
}

fn with_records(records: Records) -> TestFramework<Petition> {
    TestFramework::with(services_at(T0).with_petition_records(Arc::new(records)))
}

fn repeat_of(id: &str) -> PetitionAction {
    let mut action = receive(PetitionChannel::Letter, None, 1);
    if let A::Receive { repeat_of, .. } = &mut action {
        *repeat_of = Some(CaseId::parse(id).unwrap());
    }
    action
}

#[test]
fn a_repeat_of_a_final_petition_is_received_and_not_accepted() {
    // Art 37: recorded as 不予受理, naming the final petition, so that the
    // visit counts; not refused as an error, which would leave no trace.
    let finalised_at = at("2026-01-15T08:00:00Z");
    let earlier = CaseId::parse("P-earlier").unwrap();
    let mut received = received_change(PetitionChannel::Letter, None, 1);
    if let C::PetitionReceived { repeat_of, .. } = &mut received {
        *repeat_of = Some(earlier.clone());
    }
    let expected = vec![
        event(received),
        event(C::PetitionNotAccepted {
            reason: text(
                "不予受理: the matter was made final in petition P-earlier at \
                 2026-01-15T08:00:00Z and is not accepted again (信访工作条例 Art 37)",
            ),
            late: false,
            repeats_final: Some(earlier.clone()),
        }),
    ];
    with_records(Records(vec![(
        "P-earlier",
        Ok(Finality::Final(finalised_at)),
    )]))
    .given_no_previous_events()
    .when(cmd(repeat_of("P-earlier")))
    .then_expect_events(expected.clone());
    let petition = replay(expected);
    assert_eq!(petition.status(), PetitionStatus::NotAccepted);
    assert_eq!(petition.repeats_final(), Some(&earlier));
    assert_eq!(petition.repeat_of(), Some(&earlier));
    // Nothing is owed on it: no clock runs.
    assert!(petition.running_clocks().is_empty());
}

#[test]
fn a_final_petition_itself_is_not_received_again() {
    framework(T0)
        .given(finalised())
        .when(cmd(receive(PetitionChannel::Letter, None, 1)))
        .then_expect_error(PetitionError::AlreadyFinal {
            finalised_at: at("2026-04-02T02:00:00Z"),
        });
}

#[test]
fn a_registrar_may_refuse_a_received_petition_as_a_repeat_of_a_final_one() {
    let finalised_at = at("2026-01-15T08:00:00Z");
    let earlier = CaseId::parse("P-earlier").unwrap();
    let reason = text("The compensation was settled in P-earlier.");
    with_records(Records(vec![(
        "P-earlier",
        Ok(Finality::Final(finalised_at)),
    )]))
    .given(received())
    .when(cmd(A::NotAccept {
        reason: reason.clone(),
        repeats_final: Some(earlier.clone()),
    }))
    .then_expect_events(vec![event(C::PetitionNotAccepted {
        reason,
        late: false,
        repeats_final: Some(earlier),
    })]);
}

#[test]
fn a_refusal_as_a_repeat_needs_the_earlier_petition_final() {
    let open = CaseId::parse("P-open").unwrap();
    with_records(Records(vec![("P-open", Ok(Finality::Open))]))
        .given(received())
        .when(cmd(A::NotAccept {
            reason: text("Same as P-open."),
            repeats_final: Some(open.clone()),
        }))
        .then_expect_error(PetitionError::RepeatNotFinal { id: open });
    with_records(Records(vec![]))
        .given(received())
        .when(cmd(A::NotAccept {
            reason: text("Same as P-nowhere."),
            repeats_final: Some(CaseId::parse("P-nowhere").unwrap()),
        }))
        .then_expect_error(PetitionError::UnknownPetition {
            id: CaseId::parse("P-nowhere").unwrap(),
        });
}

#[test]
fn a_not_accepted_event_stored_before_repeats_were_named_still_reads() {
    let stored = serde_json::json!({
        "at": T0,
        "by": serde_json::to_value(officer()).unwrap(),
        "change": {"PetitionNotAccepted": {"reason": "Anonymous.", "late": false}}
    });
    let event: PetitionEvent = serde_json::from_value(stored).unwrap();
    assert_eq!(
        event.change,
        C::PetitionNotAccepted {
            reason: text("Anonymous."),
            late: false,
            repeats_final: None,
        }
    );
}

#[test]
fn a_repeat_of_an_open_petition_is_received_and_linked() {
    let mut received = received_change(PetitionChannel::Letter, None, 1);
    if let C::PetitionReceived { repeat_of, .. } = &mut received {
        *repeat_of = Some(CaseId::parse("P-open").unwrap());
    }
    let expected = vec![event(received)];
    with_records(Records(vec![("P-open", Ok(Finality::Open))]))
        .given_no_previous_events()
        .when(cmd(repeat_of("P-open")))
        .then_expect_events(expected.clone());
    assert_eq!(
        replay(expected).repeat_of().map(|id| id.as_str()),
        Some("P-open")
    );
}

#[test]
fn a_repeat_of_an_unknown_petition_is_refused() {
    with_records(Records(vec![]))
        .given_no_previous_events()
        .when(cmd(repeat_of("P-nowhere")))
        .then_expect_error(PetitionError::UnknownPetition {
            id: CaseId::parse("P-nowhere").unwrap(),
        });
}

#[test]
fn a_repeat_is_refused_when_the_records_cannot_be_consulted() {
    with_records(Records(vec![("P-earlier", Err(()))]))
        .given_no_previous_events()
        .when(cmd(repeat_of("P-earlier")))
        .then_expect_error(PetitionError::RecordsUnavailable);
}

// Matter types (Art 31) and review decisions.

/// A history received as `matter_type`, then answered and delivered.
fn answered_as(matter_type: MatterType) -> Vec<PetitionEvent> {
    let mut history = answered();
    if let C::PetitionReceived { matter_type: m, .. } = &mut history[0].change {
        *m = Some(matter_type);
    }
    history
}

#[test]
fn the_matter_type_is_recorded_at_receipt() {
    let mut action = receive(PetitionChannel::Letter, None, 1);
    if let A::Receive { matter_type, .. } = &mut action {
        *matter_type = Some(MatterType::Accusation);
    }
    let mut expected = received();
    if let C::PetitionReceived { matter_type, .. } = &mut expected[0].change {
        *matter_type = Some(MatterType::Accusation);
    }
    framework(T0)
        .given_no_previous_events()
        .when(cmd(action))
        .then_expect_events(expected.clone());
    assert_eq!(replay(expected).matter_type(), Some(MatterType::Accusation));
}

#[test]
fn a_suggestion_or_an_accusation_has_no_review() {
    for matter_type in [MatterType::Suggestion, MatterType::Accusation] {
        framework(T0)
            .given(answered_as(matter_type))
            .when(cmd(A::RequestReview {
                reason: text("I disagree."),
            }))
            .then_expect_error(PetitionError::NoReviewForMatter { matter_type });
    }
}

#[test]
fn an_appeal_or_an_unclassed_matter_may_be_reviewed() {
    let expected = vec![event(C::ReviewRequested {
        reason: text("I disagree."),
        review_due: due(Stage::Review),
    })];
    for history in [answered_as(MatterType::Appeal), answered()] {
        framework(T0)
            .given(history)
            .when(cmd(A::RequestReview {
                reason: text("I disagree."),
            }))
            .then_expect_events(expected.clone());
    }
}

#[test]
fn an_accusation_has_no_re_review_either() {
    let mut history = reviewed();
    if let C::PetitionReceived { matter_type, .. } = &mut history[0].change {
        *matter_type = Some(MatterType::Accusation);
    }
    framework(T0)
        .given(history)
        .when(cmd(A::RequestReReview {
            reason: text("I disagree."),
        }))
        .then_expect_error(PetitionError::NoReviewForMatter {
            matter_type: MatterType::Accusation,
        });
}

#[test]
fn review_and_re_review_decisions_are_recorded_as_the_law_names_them() {
    let (outcome, summary) = opinion(OpinionOutcome::Support);
    let review = C::ReviewOpinionIssued {
        outcome,
        decision: Some(ReviewDecision::Revoke),
        summary: summary.clone(),
        re_review_request_due: None,
        late: false,
    };
    framework(T0)
        .given(under_review())
        .when(cmd(A::IssueReviewOpinion {
            outcome,
            decision: Some(ReviewDecision::Revoke),
            summary: summary.clone(),
        }))
        .then_expect_events(vec![event(review)]);

    let re_review = vec![
        event(C::ReReviewOpinionIssued {
            outcome,
            decision: Some(ReviewDecision::Uphold),
            summary: summary.clone(),
            late: false,
        }),
        event(C::PetitionFinalised {
            basis: FinalBasis::ReReviewed,
        }),
    ];
    framework(T0)
        .given(under_re_review())
        .when(cmd(A::IssueReReviewOpinion {
            outcome,
            decision: Some(ReviewDecision::Uphold),
            summary,
        }))
        .then_expect_events(re_review.clone());
    let mut history = under_re_review();
    history.extend(re_review);
    let petition = replay(history);
    assert_eq!(petition.re_review_decision(), Some(ReviewDecision::Uphold));
    assert_eq!(petition.review_decision(), None);
}

#[test]
fn events_stored_without_matter_type_or_decision_still_read() {
    let stored = serde_json::json!({
        "at": T0,
        "by": serde_json::to_value(officer()).unwrap(),
        "change": {"ReviewOpinionIssued": {
            "outcome": "support", "summary": "Paid.", "late": false
        }}
    });
    let event: PetitionEvent = serde_json::from_value(stored).unwrap();
    let C::ReviewOpinionIssued { decision, .. } = event.change else {
        panic!("{event:?}");
    };
    assert_eq!(decision, None);
    // And a new field left unset is not written, so stored events of
    // unclassed petitions look as they did.
    let json = serde_json::to_value(&received()[0]).unwrap();
    assert!(
        json["change"]["PetitionReceived"]
            .get("matter_type")
            .is_none()
    );
    for matter in MatterType::ALL {
        assert_eq!(MatterType::parse(matter.as_str()), Ok(*matter));
    }
    for decision in ReviewDecision::ALL {
        assert_eq!(ReviewDecision::parse(decision.as_str()), Ok(*decision));
    }
}

// Visits above the district (赴省, 进京).

fn district_matter_visiting(level: PetitionLevel) -> PetitionAction {
    let mut action = receive(PetitionChannel::Visit, None, 1);
    if let A::Receive {
        competent_level,
        visited_level,
        division,
        ..
    } = &mut action
    {
        *competent_level = Level::District;
        *visited_level = Some(level);
        *division = DivisionCode::parse("990101000000").unwrap();
    }
    action
}

fn district_matter_received(level: PetitionLevel) -> PetitionChange {
    let mut change = received_change(PetitionChannel::Visit, None, 1);
    if let C::PetitionReceived {
        competent_level,
        visited_level,
        division,
        ..
    } = &mut change
    {
        *competent_level = Level::District;
        *visited_level = Some(level);
        *division = DivisionCode::parse("990101000000").unwrap();
    }
    change
}

#[test]
fn a_district_matter_taken_to_the_city_skips_no_level() {
    framework(T0)
        .given_no_previous_events()
        .when(cmd(district_matter_visiting(PetitionLevel::City)))
        .then_expect_events(vec![event(district_matter_received(PetitionLevel::City))]);
}

#[test]
fn a_district_matter_taken_to_the_province_or_to_beijing_skips_levels() {
    for level in [PetitionLevel::Province, PetitionLevel::National] {
        let expected = vec![
            event(district_matter_received(level)),
            event(C::SkippedLevelVisitRecorded {
                competent_level: Level::District,
                visited_level: level,
            }),
        ];
        framework(T0)
            .given_no_previous_events()
            .when(cmd(district_matter_visiting(level)))
            .then_expect_events(expected.clone());
        let petition = replay(expected);
        assert!(petition.skipped_level());
        assert_eq!(petition.visited_level(), Some(level));
    }
}

#[test]
fn a_level_stored_before_higher_levels_existed_reads_the_same() {
    for level in &[Level::Village, Level::Town, Level::District] {
        let stored = serde_json::to_value(level).unwrap();
        let read: PetitionLevel = serde_json::from_value(stored).unwrap();
        assert_eq!(read, PetitionLevel::from(*level));
        assert_eq!(read.as_str(), level.as_str());
        assert_eq!(read.within_jurisdiction(), Some(*level));
    }
    assert_eq!(
        PetitionLevel::parse("province"),
        Ok(PetitionLevel::Province)
    );
    assert_eq!(PetitionLevel::parse("town"), Ok(PetitionLevel::Town));
    assert_eq!(PetitionLevel::National.within_jurisdiction(), None);
}

fn official_assigned(official: &str, previous: Option<&str>) -> PetitionEvent {
    event(C::OfficialAssigned {
        official: name(official),
        previous: previous.map(name),
    })
}

#[test]
fn a_responsible_official_is_named_on_every_clock_until_the_petition_is_final() {
    framework(T0)
        .given(routed())
        .when(cmd(A::AssignOfficial {
            official: name("孙主任"),
        }))
        .then_expect_events(vec![official_assigned("孙主任", None)]);
    let mut history = routed();
    history.push(official_assigned("孙主任", None));
    framework(T0)
        .given(history.clone())
        .when(cmd(A::AssignOfficial {
            official: name("孙主任"),
        }))
        .then_expect_events(vec![]);
    // The receiving unit owes the step; the official answers for it and
    // is the person in charge (Art 44–46).
    for clock in replay(history).running_clocks() {
        assert_eq!(
            clock.holder,
            Holder {
                person: Some("孙主任".into()),
                official: Some("孙主任".into()),
                ..unit_holder()
            },
            "{:?}",
            clock.stage
        );
    }
    framework(T0)
        .given(finalised())
        .when(cmd(A::AssignOfficial {
            official: name("孙主任"),
        }))
        .then_expect_error(not_allowed(
            "assign a responsible official",
            PetitionStatus::Final,
        ));
}

// Re-timing provisional deadlines, with the helpers above.
#[path = "recompute_tests.rs"]
mod recompute_tests;

// --- Erasure (PIPL Art 47) ---------------------------------------------------

#[test]
fn an_erased_petitioner_has_no_name_or_contact_and_the_petition_goes_on() {
    framework(T0)
        .given(received())
        .when(cmd(PetitionAction::ErasePetitioner {}))
        .then_expect_events(vec![event(PetitionChange::PetitionerErased {})]);
    let mut history = received();
    history.push(event(PetitionChange::PetitionerErased {}));
    let petition = replay(history.clone());
    let petitioner = petition.petitioner().unwrap();
    assert!(petitioner.name.is_erased());
    assert_eq!(petitioner.contact, None);
    assert_eq!(petition.status(), replay(received()).status());
    // Once erased, again writes nothing.
    framework(T0)
        .given(history)
        .when(cmd(PetitionAction::ErasePetitioner {}))
        .then_expect_events(vec![]);
}
