//! Given / when / then tests of the dispute aggregate: one test per rule.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::{Aggregate, DomainEvent};

use super::*;
use crate::services::ManualClock;
use crate::sla::{Holder, RunningClock};
use crate::values::{Actor, AgencyId, MediationKind};

/// 上坪村, a village of 青山镇 in the example jurisdiction.
const VILLAGE: &str = "990101101201";
/// 青山镇, the town above `VILLAGE`.
const TOWN: &str = "990101101000";
/// 示范区, the district above everything.
const DISTRICT: &str = "990101000000";
/// 东湖街道, a town that does not contain `VILLAGE`.
const OTHER_TOWN: &str = "990101001000";
/// 湖滨社区, a village of `OTHER_TOWN`.
const OTHER_VILLAGE: &str = "990101001001";

// ---- helpers ---------------------------------------------------------------

/// Monday 2 March 2026, 10:00 in Beijing: when the given events happened
/// and, unless a test says otherwise, when the command is handled.
fn t0() -> DateTime<Utc> {
    at("2026-03-02T02:00:00Z")
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn services_at(now: DateTime<Utc>) -> Services {
    Services::shipped_defaults(Arc::new(ManualClock::new(now)))
}

fn services() -> Services {
    services_at(t0())
}

/// The deadline of `stage` opened at `t0`.
fn due(stage: Stage) -> Deadline {
    services().deadline(stage, t0())
}

fn code(s: &str) -> DivisionCode {
    DivisionCode::parse(s).unwrap()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

fn actor() -> Actor {
    Actor::parse("mediator-7", "qingshan-committee").unwrap()
}

fn cmd(action: DisputeAction) -> DisputeCommand {
    DisputeCommand {
        by: actor(),
        action,
    }
}

fn ev_at(at: DateTime<Utc>, change: DisputeChange) -> DisputeEvent {
    DisputeEvent {
        at,
        by: actor(),
        change,
    }
}

fn ev(change: DisputeChange) -> DisputeEvent {
    ev_at(t0(), change)
}

/// Runs `action` against `given` at `t0`.
fn run(given: Vec<DisputeEvent>, action: DisputeAction) -> AggregateResultValidator<Dispute> {
    run_at(t0(), given, action)
}

/// Runs `action` against `given` with the clock showing `now`.
fn run_at(
    now: DateTime<Utc>,
    given: Vec<DisputeEvent>,
    action: DisputeAction,
) -> AggregateResultValidator<Dispute> {
    TestFramework::<Dispute>::with(services_at(now))
        .given(given)
        .when(cmd(action))
}

fn not_allowed(action: &DisputeAction, status: DisputeStatus) -> DisputeError {
    DisputeError::NotAllowed {
        action: action.name(),
        status,
    }
}

/// The state after `events`, for checks that look at the aggregate itself.
fn state(events: Vec<DisputeEvent>) -> Dispute {
    let mut dispute = Dispute::default();
    for event in events {
        dispute.apply(event);
    }
    dispute
}

fn parties() -> Vec<Party> {
    vec![
        Party {
            role: PartyRole::Applicant,
            name: name("张三"),
        },
        Party {
            role: PartyRole::Respondent,
            name: name("李四"),
        },
    ]
}

fn body() -> MediationBody {
    MediationBody {
        id: AgencyId::parse("shangping-pmc").unwrap(),
        name: name("上坪村人民调解委员会"),
        kind: MediationKind::Peoples,
    }
}

fn report_action() -> DisputeAction {
    DisputeAction::Report {
        division: code(VILLAGE),
        grid: Some(name("第三网格")),
        summary: text("邻里排水纠纷"),
    }
}

fn register_action(division: &str, level: Level, parties: Vec<Party>) -> DisputeAction {
    DisputeAction::Register {
        division: code(division),
        level,
        category: DisputeCategory::Neighbourhood,
        risk: Risk::Green,
        summary: text("两户因排水沟走向发生争执"),
        parties,
    }
}

fn reported() -> Vec<DisputeEvent> {
    vec![ev(DisputeChange::DisputeReported {
        division: code(VILLAGE),
        grid: Some(name("第三网格")),
        summary: text("邻里排水纠纷"),
        registration_due: due(Stage::GridReport),
    })]
}

fn registered_change(division: &str) -> DisputeChange {
    let division = code(division);
    let level = division.level();
    DisputeChange::DisputeRegistered {
        division,
        level,
        category: DisputeCategory::Neighbourhood,
        risk: Risk::Green,
        summary: text("两户因排水沟走向发生争执"),
        parties: parties(),
        handling_due: due(Stage::handling_at(level)),
    }
}

fn registered_at(division: &str) -> Vec<DisputeEvent> {
    vec![ev(registered_change(division))]
}

fn registered() -> Vec<DisputeEvent> {
    registered_at(VILLAGE)
}

fn dispatched_event() -> DisputeEvent {
    ev(DisputeChange::DisputeDispatched {
        body: body(),
        mediator: Some(name("王调解")),
        mediation_due: due(Stage::Mediation),
    })
}

fn dispatched() -> Vec<DisputeEvent> {
    let mut events = registered();
    events.push(dispatched_event());
    events
}

fn consented(party: PartyRole) -> DisputeEvent {
    ev(DisputeChange::PartyConsented { party })
}

fn mediating() -> Vec<DisputeEvent> {
    let mut events = dispatched();
    events.push(consented(PartyRole::Applicant));
    events.push(consented(PartyRole::Respondent));
    events.push(ev(DisputeChange::MediationStarted {}));
    events
}

fn agreement_event(form: AgreementForm) -> DisputeEvent {
    ev(DisputeChange::AgreementReached {
        form,
        terms: text("排水沟改道,费用各半"),
        confirmation_window: (form == AgreementForm::Written)
            .then(|| due(Stage::JudicialConfirmationWindow)),
    })
}

fn agreed(form: AgreementForm) -> Vec<DisputeEvent> {
    let mut events = mediating();
    events.push(agreement_event(form));
    events
}

fn terminated() -> Vec<DisputeEvent> {
    let mut events = mediating();
    events.push(ev(DisputeChange::MediationTerminated {
        reason: TerminationReason::NoAgreement,
        note: text("双方分歧过大"),
        legal_routes_explained: true,
    }));
    events
}

fn confirmation_requested() -> DisputeEvent {
    ev(DisputeChange::JudicialConfirmationRequested {
        court: name("示范区人民法院"),
        acceptance_due: Some(due(Stage::JudicialConfirmationAcceptance)),
    })
}

/// The court accepts the application at `t0`: its 15-day ruling period
/// starts (法释〔2011〕5号 Art 5).
fn confirmation_accepted() -> DisputeEvent {
    ev(DisputeChange::JudicialConfirmationAccepted {
        ruling_due: due(Stage::JudicialConfirmationRuling),
        note: None,
    })
}

/// A written agreement whose application the court has accepted.
fn awaiting_ruling() -> Vec<DisputeEvent> {
    let mut events = agreed(AgreementForm::Written);
    events.push(confirmation_requested());
    events.push(confirmation_accepted());
    events
}

fn review_event(approved: bool) -> DisputeEvent {
    ev(DisputeChange::DisputeReviewed {
        approved,
        note: None,
    })
}

fn reviewed() -> Vec<DisputeEvent> {
    let mut events = agreed(AgreementForm::Oral);
    events.push(review_event(true));
    events
}

fn closed() -> Vec<DisputeEvent> {
    let mut events = reviewed();
    events.push(ev(DisputeChange::DisputeClosed {
        outcome: Outcome::Agreement,
        intake_level: Level::Village,
        resolved_level: Level::Village,
        resolved_division: code(VILLAGE),
        resolved_at_or_below_intake: true,
    }));
    events
}

fn escalated(from: &str, to: &str) -> DisputeEvent {
    let (from, to) = (code(from), code(to));
    ev(DisputeChange::DisputeEscalated {
        reason: EscalationReason::MediationFailed,
        from_level: from.level(),
        from_division: from,
        to_level: to.level(),
        handling_due: due(Stage::handling_at(to.level())),
        to_division: to,
    })
}

/// A written agreement the court refused to confirm (Art 33).
fn confirmation_refused() -> Vec<DisputeEvent> {
    confirmation_refused_at(VILLAGE)
}

/// A written agreement, reached at `division`, that the court refused to
/// confirm.
fn confirmation_refused_at(division: &str) -> Vec<DisputeEvent> {
    let mut events = registered_at(division);
    events.extend(mediation_restarted());
    events.push(agreement_event(AgreementForm::Written));
    events.push(confirmation_requested());
    events.push(confirmation_accepted());
    events.push(ev(DisputeChange::JudicialConfirmationRuled {
        confirmed: false,
        note: Some(text("协议内容违反法律规定")),
    }));
    events
}

/// Dispatch at the new level, both consents, and mediation under way.
fn mediation_restarted() -> Vec<DisputeEvent> {
    vec![
        dispatched_event(),
        consented(PartyRole::Applicant),
        consented(PartyRole::Respondent),
        ev(DisputeChange::MediationStarted {}),
    ]
}

fn referred_change() -> DisputeChange {
    DisputeChange::DisputeReferred {
        channel: LegalChannel::Litigation,
        note: text("告知当事人向人民法院起诉"),
    }
}

fn evaluated() -> DisputeEvent {
    ev(DisputeChange::DisputeEvaluated {
        satisfaction: Satisfaction::Satisfied,
        note: None,
    })
}

// ---- report ----------------------------------------------------------------

#[test]
fn a_grid_report_must_be_registered_within_one_working_day() {
    let registration_due = due(Stage::GridReport);
    // Reported on Monday 2 March 2026: the next working day is Tuesday.
    assert_eq!(registration_due.last_day, date("2026-03-03"));
    assert_eq!(registration_due.due, at("2026-03-03T16:00:00Z"));
    run(vec![], report_action()).then_expect_events(vec![ev(DisputeChange::DisputeReported {
        division: code(VILLAGE),
        grid: Some(name("第三网格")),
        summary: text("邻里排水纠纷"),
        registration_due,
    })]);
}

#[test]
fn a_report_from_outside_the_jurisdiction_is_refused() {
    let action = DisputeAction::Report {
        division: code("990101101299"),
        grid: None,
        summary: text("邻里排水纠纷"),
    };
    run(vec![], action).then_expect_error(DisputeError::UnknownDivision {
        division: code("990101101299"),
    });
}

#[test]
fn a_dispute_is_reported_only_once() {
    let action = report_action();
    run(reported(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Reported));
}

// ---- register --------------------------------------------------------------

#[test]
fn registering_a_new_dispute_starts_the_village_handling_period() {
    let handling_due = due(Stage::VillageHandling);
    // Thirty calendar days from 2 March is Wednesday 1 April, a working day.
    assert_eq!(handling_due.last_day, date("2026-04-01"));
    run(vec![], register_action(VILLAGE, Level::Village, parties()))
        .then_expect_events(vec![ev(registered_change(VILLAGE))]);
}

#[test]
fn a_reported_dispute_can_be_registered() {
    run(
        reported(),
        register_action(VILLAGE, Level::Village, parties()),
    )
    .then_expect_events(vec![ev(registered_change(VILLAGE))]);
}

#[test]
fn registration_at_an_unknown_division_is_refused() {
    run(
        vec![],
        register_action("990101103000", Level::Town, parties()),
    )
    .then_expect_error(DisputeError::UnknownDivision {
        division: code("990101103000"),
    });
}

#[test]
fn registration_level_must_match_the_division() {
    run(vec![], register_action(VILLAGE, Level::Town, parties())).then_expect_error(
        DisputeError::LevelMismatch {
            level: Level::Town,
            division: code(VILLAGE),
        },
    );
}

#[test]
fn a_grid_is_not_a_handling_level() {
    run(vec![], register_action(VILLAGE, Level::Grid, parties())).then_expect_error(
        DisputeError::LevelMismatch {
            level: Level::Grid,
            division: code(VILLAGE),
        },
    );
}

#[test]
fn registration_needs_a_respondent() {
    let mut only_applicant = parties();
    only_applicant.retain(|p| p.role == PartyRole::Applicant);
    run(
        vec![],
        register_action(VILLAGE, Level::Village, only_applicant),
    )
    .then_expect_error(DisputeError::MissingParty {
        role: PartyRole::Respondent,
    });
}

#[test]
fn registration_needs_an_applicant() {
    run(vec![], register_action(VILLAGE, Level::Village, vec![])).then_expect_error(
        DisputeError::MissingParty {
            role: PartyRole::Applicant,
        },
    );
}

#[test]
fn a_registered_dispute_cannot_be_registered_again() {
    let action = register_action(VILLAGE, Level::Village, parties());
    run(registered(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Registered));
}

// ---- dispatch --------------------------------------------------------------

#[test]
fn dispatch_starts_the_mediation_period() {
    run(
        registered(),
        DisputeAction::Dispatch {
            body: body(),
            mediator: Some(name("王调解")),
        },
    )
    .then_expect_events(vec![dispatched_event()]);
}

#[test]
fn an_unregistered_dispute_cannot_be_dispatched() {
    let action = DisputeAction::Dispatch {
        body: body(),
        mediator: None,
    };
    run(reported(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Reported));
}

fn dispatch_action() -> DisputeAction {
    DisputeAction::Dispatch {
        body: body(),
        mediator: Some(name("王调解")),
    }
}

/// An agreement the review returned for rework.
fn agreement_returned() -> Vec<DisputeEvent> {
    let mut events = agreed(AgreementForm::Oral);
    events.push(review_event(false));
    events
}

#[test]
fn an_agreement_the_court_refused_to_confirm_can_be_mediated_again() {
    // Art 33: the parties may change it or reach a new one by mediation.
    run(confirmation_refused(), dispatch_action()).then_expect_events(vec![dispatched_event()]);
}

#[test]
fn a_district_agreement_the_court_refused_can_be_mediated_again() {
    // The district cannot escalate, but it need not refer either.
    run(confirmation_refused_at(DISTRICT), dispatch_action())
        .then_expect_events(vec![dispatched_event()]);
}

#[test]
fn an_agreement_returned_by_review_can_be_mediated_again() {
    assert!(state(agreement_returned()).returned_on_review());
    run(agreement_returned(), dispatch_action()).then_expect_events(vec![dispatched_event()]);
}

#[test]
fn an_agreement_the_court_confirmed_is_not_mediated_again() {
    let mut given = awaiting_ruling();
    given.push(ev(DisputeChange::JudicialConfirmationRuled {
        confirmed: true,
        note: None,
    }));
    let action = dispatch_action();
    run(given, action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::Agreed));
}

#[test]
fn an_agreement_neither_refused_nor_returned_is_not_mediated_again() {
    let action = dispatch_action();
    run(agreed(AgreementForm::Written), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Agreed));
}

#[test]
fn a_new_agreement_is_not_mediated_again_for_the_review_that_returned_the_old_one() {
    let mut given = agreement_returned();
    given.extend(mediation_restarted());
    given.push(agreement_event(AgreementForm::Oral));
    let action = dispatch_action();
    run(given, action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::Agreed));
}

#[test]
fn mediating_again_waits_for_a_pending_court_ruling() {
    // Even an agreement the review returned: the court has it now.
    let mut given = agreed(AgreementForm::Written);
    given.push(review_event(false));
    given.push(confirmation_requested());
    run(given, dispatch_action()).then_expect_error(DisputeError::ConfirmationPending);
}

#[test]
fn mediating_an_agreement_again_sets_it_aside() {
    let mut given = confirmation_refused();
    given.push(ev(DisputeChange::PerformanceFollowedUp {
        performance: Performance::NotPerformed,
        note: text("协议未履行"),
    }));
    given.push(review_event(false));
    given.push(dispatched_event());
    let dispute = state(given);
    assert_eq!(dispute.status(), DisputeStatus::Dispatched);
    assert_eq!(dispute.level(), Some(Level::Village));
    assert_eq!(dispute.agreement(), None);
    assert_eq!(dispute.judicial_confirmation(), None);
    assert_eq!(dispute.performance(), None);
    assert!(!dispute.returned_on_review());
    assert_eq!(dispute.outcome(), None);
    assert_eq!(dispute.consents().count(), 0);
    assert_eq!(dispute.session_count(), 0);
    assert_eq!(dispute.mediation_due(), Some(&due(Stage::Mediation)));
}

#[test]
fn a_refused_agreement_mediated_again_closes_as_the_new_agreement() {
    // Walks the round request by request, each on the events before it.
    let new_agreement = ev(DisputeChange::AgreementReached {
        form: AgreementForm::Oral,
        terms: text("排水沟改道,费用由李四承担"),
        confirmation_window: None,
    });
    let steps = vec![
        (dispatch_action(), vec![dispatched_event()]),
        (
            consent(PartyRole::Applicant),
            vec![consented(PartyRole::Applicant)],
        ),
        (
            consent(PartyRole::Respondent),
            vec![
                consented(PartyRole::Respondent),
                ev(DisputeChange::MediationStarted {}),
            ],
        ),
        (
            DisputeAction::ReachAgreement {
                form: AgreementForm::Oral,
                terms: text("排水沟改道,费用由李四承担"),
            },
            vec![new_agreement],
        ),
        (review_action(true), vec![review_event(true)]),
        (
            DisputeAction::Close {},
            vec![ev(DisputeChange::DisputeClosed {
                outcome: Outcome::Agreement,
                intake_level: Level::Village,
                resolved_level: Level::Village,
                resolved_division: code(VILLAGE),
                resolved_at_or_below_intake: true,
            })],
        ),
    ];
    let mut given = confirmation_refused();
    for (action, expected) in steps {
        run(given.clone(), action).then_expect_events(expected.clone());
        given.extend(expected);
    }
}

// ---- consent ---------------------------------------------------------------

fn consent(party: PartyRole) -> DisputeAction {
    DisputeAction::RecordConsent {
        party,
        consents: true,
        reason: None,
    }
}

#[test]
fn one_consent_does_not_start_mediation() {
    run(dispatched(), consent(PartyRole::Respondent))
        .then_expect_events(vec![consented(PartyRole::Respondent)]);
}

#[test]
fn the_second_consent_starts_mediation() {
    let mut given = dispatched();
    given.push(consented(PartyRole::Respondent));
    run(given, consent(PartyRole::Applicant)).then_expect_events(vec![
        consented(PartyRole::Applicant),
        ev(DisputeChange::MediationStarted {}),
    ]);
}

#[test]
fn a_party_consents_only_once() {
    let mut given = dispatched();
    given.push(consented(PartyRole::Applicant));
    run(given, consent(PartyRole::Applicant)).then_expect_error(DisputeError::AlreadyConsented {
        party: PartyRole::Applicant,
    });
}

#[test]
fn a_refusal_terminates_the_dispute() {
    let mut given = dispatched();
    given.push(consented(PartyRole::Applicant));
    run(
        given,
        DisputeAction::RecordConsent {
            party: PartyRole::Respondent,
            consents: false,
            reason: Some(text("不愿调解,要求起诉")),
        },
    )
    .then_expect_events(vec![ev(DisputeChange::MediationRefused {
        party: PartyRole::Respondent,
        reason: Some(text("不愿调解,要求起诉")),
    })]);
}

#[test]
fn a_new_dispatch_forgets_earlier_consents() {
    let mut given = dispatched();
    given.push(consented(PartyRole::Applicant));
    given.push(escalated(VILLAGE, TOWN));
    given.push(dispatched_event());
    run(given, consent(PartyRole::Applicant))
        .then_expect_events(vec![consented(PartyRole::Applicant)]);
}

#[test]
fn consent_is_recorded_only_after_dispatch() {
    let action = consent(PartyRole::Applicant);
    run(registered(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Registered));
}

// ---- sessions --------------------------------------------------------------

#[test]
fn sessions_are_numbered_from_one() {
    let mut given = mediating();
    given.push(ev(DisputeChange::MediationSessionHeld {
        session: 1,
        summary: text("听取双方意见"),
    }));
    run(
        given,
        DisputeAction::HoldSession {
            summary: text("现场查看排水沟"),
        },
    )
    .then_expect_events(vec![ev(DisputeChange::MediationSessionHeld {
        session: 2,
        summary: text("现场查看排水沟"),
    })]);
}

#[test]
fn sessions_need_both_consents() {
    let action = DisputeAction::HoldSession {
        summary: text("听取双方意见"),
    };
    run(dispatched(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Dispatched));
}

// ---- agreement -------------------------------------------------------------

#[test]
fn a_written_agreement_opens_the_judicial_confirmation_window() {
    // Friday 6 March: thirty days later is Sunday 5 April, inside the
    // Qingming holiday, so the window runs to Tuesday 7 April.
    let friday = at("2026-03-06T02:00:00Z");
    let window = services_at(friday).deadline(Stage::JudicialConfirmationWindow, friday);
    assert_eq!(window.last_day, date("2026-04-07"));
    run_at(
        friday,
        mediating(),
        DisputeAction::ReachAgreement {
            form: AgreementForm::Written,
            terms: text("排水沟改道,费用各半"),
        },
    )
    .then_expect_events(vec![ev_at(
        friday,
        DisputeChange::AgreementReached {
            form: AgreementForm::Written,
            terms: text("排水沟改道,费用各半"),
            confirmation_window: Some(window),
        },
    )]);
}

#[test]
fn an_oral_agreement_has_no_confirmation_window() {
    run(
        mediating(),
        DisputeAction::ReachAgreement {
            form: AgreementForm::Oral,
            terms: text("排水沟改道,费用各半"),
        },
    )
    .then_expect_events(vec![agreement_event(AgreementForm::Oral)]);
}

#[test]
fn an_agreement_needs_a_mediation() {
    let action = DisputeAction::ReachAgreement {
        form: AgreementForm::Oral,
        terms: text("排水沟改道"),
    };
    run(dispatched(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Dispatched));
}

// ---- mediation extended by the parties' agreement ---------------------------

fn extend_mediation(days: u32) -> DisputeAction {
    DisputeAction::ExtendMediation {
        days,
        reason: text("双方同意延长调解期限,待现场测量"),
    }
}

/// The mediation deadline opened at `t0` (last day Wednesday 1 April)
/// moved on by 20 calendar days: Tuesday 21 April, a working day.
fn mediation_due_extended() -> Deadline {
    Deadline {
        stage: Stage::Mediation,
        due: at("2026-04-21T16:00:00Z"),
        last_day: date("2026-04-21"),
        provisional: false,
    }
}

fn mediation_extended() -> DisputeChange {
    DisputeChange::MediationExtended {
        days: 20,
        extension: 1,
        reason: text("双方同意延长调解期限,待现场测量"),
        old_due: due(Stage::Mediation),
        new_due: mediation_due_extended(),
    }
}

/// Services whose policy file is the shipped one with `overrides` on top.
fn services_with(now: DateTime<Utc>, overrides: &str) -> Services {
    let mut calendar = crate::calendar::BusinessCalendar::new();
    for (_, text) in crate::STATUTORY_HOLIDAYS {
        calendar.load_year_json(text).unwrap();
    }
    Services::new(
        Arc::new(ManualClock::new(now)),
        crate::policy::DeadlinePolicy::statutory()
            .with_overrides(overrides)
            .unwrap(),
        calendar,
        crate::jurisdiction::Jurisdiction::from_toml(crate::EXAMPLE_JURISDICTION).unwrap(),
    )
}

#[test]
fn the_parties_extend_mediation_from_its_due_time_not_from_now() {
    // Agreed on day 20 of 30: the 20 days run on from the end of 1 April,
    // not from the day of the agreement.
    assert_eq!(due(Stage::Mediation).last_day, date("2026-04-01"));
    let day_20 = at("2026-03-22T02:00:00Z");
    run_at(day_20, mediating(), extend_mediation(20))
        .then_expect_events(vec![ev_at(day_20, mediation_extended())]);
}

#[test]
fn an_extension_moves_the_mediation_clock_but_not_its_start() {
    let mut events = mediating();
    events.push(ev(mediation_extended()));
    let dispute = state(events);
    assert_eq!(dispute.mediation_due(), Some(&mediation_due_extended()));
    assert_eq!(dispute.mediation_extensions(), 1);
    let mediation = dispute
        .running_clocks()
        .into_iter()
        .find(|c| c.stage == Stage::Mediation)
        .unwrap();
    assert_eq!(mediation.deadline, mediation_due_extended());
    assert_eq!(mediation.started_at, t0());
    // The level's own handling clock is not the parties' to extend.
    assert_eq!(dispute.handling_due(), Some(&due(Stage::VillageHandling)));
}

#[test]
fn mediation_is_extended_only_as_often_as_the_policy_allows() {
    let mut given = mediating();
    given.push(ev(mediation_extended()));
    run(given, extend_mediation(5)).then_expect_error(DisputeError::ExtensionsUsedUp {
        stage: Stage::Mediation,
        max: 1,
    });
}

#[test]
fn a_jurisdiction_may_allow_more_extensions_of_its_own_length() {
    let policy = "[extensions.mediation]\ndays = 15\ntimes = 2\n";
    let mut given = mediating();
    given.push(ev(DisputeChange::MediationExtended {
        days: 15,
        extension: 1,
        reason: text("第一次延长"),
        old_due: due(Stage::Mediation),
        new_due: services().deadline_for(
            Stage::Mediation,
            crate::policy::StageRule {
                days: 15,
                counting: crate::policy::Counting::Calendar,
            },
            due(Stage::Mediation).due - Duration::seconds(1),
        ),
    }));
    let dispute = state(given.clone());
    let first = *dispute.mediation_due().unwrap();
    assert_eq!(first.last_day, date("2026-04-16"));
    let second = Deadline {
        stage: Stage::Mediation,
        due: at("2026-04-30T16:00:00Z"),
        last_day: date("2026-04-30"),
        provisional: false,
    };
    TestFramework::<Dispute>::with(services_with(t0(), policy))
        .given(given.clone())
        .when(cmd(extend_mediation(14)))
        .then_expect_events(vec![ev(DisputeChange::MediationExtended {
            days: 14,
            extension: 2,
            reason: text("双方同意延长调解期限,待现场测量"),
            old_due: first,
            new_due: second,
        })]);
    TestFramework::<Dispute>::with(services_with(t0(), policy))
        .given(given)
        .when(cmd(extend_mediation(16)))
        .then_expect_error(DisputeError::ExtensionTooLong {
            stage: Stage::Mediation,
            days: 16,
            max: 15,
        });
}

#[test]
fn a_mediation_extension_is_at_most_the_policy_length_and_at_least_a_day() {
    for days in [0, 31] {
        run(mediating(), extend_mediation(days)).then_expect_error(
            DisputeError::ExtensionTooLong {
                stage: Stage::Mediation,
                days,
                max: 30,
            },
        );
    }
}

#[test]
fn a_mediation_extension_may_be_agreed_until_the_last_moment() {
    let last_moment = due(Stage::Mediation).due - Duration::seconds(1);
    run_at(last_moment, mediating(), extend_mediation(20))
        .then_expect_events(vec![ev_at(last_moment, mediation_extended())]);
}

#[test]
fn a_mediation_extension_after_the_deadline_is_refused_and_the_breach_stays() {
    let mediation_due = due(Stage::Mediation);
    let mut history = mediating();
    history.push(ev_at(
        mediation_due.due + Duration::hours(1),
        DisputeChange::DeadlineBreached {
            stage: Stage::Mediation,
            due: mediation_due.due,
            holder: Holder {
                body: Some("shangping-pmc".to_owned()),
                person: Some("王调解".to_owned()),
                ..village_holder()
            },
        },
    ));
    let later = mediation_due.due + Duration::days(1);
    run_at(later, history.clone(), extend_mediation(20)).then_expect_error(
        DisputeError::ExtensionTooLate {
            stage: Stage::Mediation,
            due: mediation_due.due,
        },
    );
    // Still due when it was, unextended; the breach is not recorded again.
    let dispute = state(history.clone());
    assert_eq!(dispute.mediation_due(), Some(&mediation_due));
    assert_eq!(dispute.mediation_extensions(), 0);
    run_at(later, history, breach(Stage::Mediation, mediation_due.due)).then_expect_events(vec![]);
    // At the due time itself the period has run out.
    run_at(mediation_due.due, mediating(), extend_mediation(20)).then_expect_error(
        DisputeError::ExtensionTooLate {
            stage: Stage::Mediation,
            due: mediation_due.due,
        },
    );
}

#[test]
fn only_a_running_mediation_is_extended() {
    let action = extend_mediation(20);
    for (given, status) in [
        // Dispatched but not consented to: there is no mediation yet.
        (dispatched(), DisputeStatus::Dispatched),
        (agreed(AgreementForm::Written), DisputeStatus::Agreed),
        (terminated(), DisputeStatus::Terminated),
        (registered(), DisputeStatus::Registered),
    ] {
        run(given, action.clone()).then_expect_error(not_allowed(&action, status));
    }
}

#[test]
fn a_new_mediation_has_its_own_extensions() {
    let mut given = mediating();
    given.push(ev(mediation_extended()));
    given.push(ev(DisputeChange::MediationTerminated {
        reason: TerminationReason::NoAgreement,
        note: text("双方分歧过大"),
        legal_routes_explained: true,
    }));
    given.push(escalated(VILLAGE, TOWN));
    given.extend(mediation_restarted());
    assert_eq!(state(given.clone()).mediation_extensions(), 0);
    run(given, extend_mediation(20)).then_expect_events(vec![ev(mediation_extended())]);
}

// ---- termination -----------------------------------------------------------

fn terminate_action() -> DisputeAction {
    DisputeAction::TerminateMediation {
        reason: TerminationReason::NoAgreement,
        note: text("双方分歧过大"),
        legal_routes_explained: true,
    }
}

#[test]
fn a_mediation_without_agreement_is_terminated() {
    run(mediating(), terminate_action()).then_expect_events(vec![ev(
        DisputeChange::MediationTerminated {
            reason: TerminationReason::NoAgreement,
            note: text("双方分歧过大"),
            legal_routes_explained: true,
        },
    )]);
}

#[test]
fn a_dispatched_dispute_can_be_terminated_before_mediation_starts() {
    let action = DisputeAction::TerminateMediation {
        reason: TerminationReason::PartyWithdrew,
        note: text("申请人撤回"),
        legal_routes_explained: false,
    };
    run(dispatched(), action).then_expect_events(vec![ev(DisputeChange::MediationTerminated {
        reason: TerminationReason::PartyWithdrew,
        note: text("申请人撤回"),
        legal_routes_explained: false,
    })]);
}

#[test]
fn an_agreed_dispute_cannot_be_terminated() {
    let action = terminate_action();
    run(agreed(AgreementForm::Oral), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Agreed));
}

// ---- escalation ------------------------------------------------------------

fn escalate_action() -> DisputeAction {
    DisputeAction::Escalate {
        reason: EscalationReason::MediationFailed,
    }
}

#[test]
fn escalation_moves_a_terminated_dispute_to_the_town() {
    run(terminated(), escalate_action()).then_expect_events(vec![escalated(VILLAGE, TOWN)]);
}

#[test]
fn an_escalated_dispute_waits_for_a_new_dispatch() {
    let mut given = terminated();
    given.push(escalated(VILLAGE, TOWN));
    let dispute = state(given.clone());
    assert_eq!(dispute.status(), DisputeStatus::Registered);
    assert_eq!(dispute.level(), Some(Level::Town));
    assert_eq!(dispute.intake_level(), Some(Level::Village));
    assert_eq!(dispute.body(), None);
    assert_eq!(dispute.outcome(), None);
    assert_eq!(dispute.session_count(), 0);
    run(
        given,
        DisputeAction::Dispatch {
            body: body(),
            mediator: Some(name("王调解")),
        },
    )
    .then_expect_events(vec![dispatched_event()]);
}

#[test]
fn a_district_case_cannot_escalate() {
    run(registered_at(DISTRICT), escalate_action()).then_expect_error(DisputeError::AtTopLevel);
}

#[test]
fn escalation_from_a_division_outside_the_tree_is_refused() {
    // As if the configuration had dropped the village after registration.
    run(registered_at("990101101299"), escalate_action()).then_expect_error(
        DisputeError::UnknownDivision {
            division: code("990101101299"),
        },
    );
}

#[test]
fn an_agreement_the_court_refused_to_confirm_can_escalate() {
    run(confirmation_refused(), escalate_action())
        .then_expect_events(vec![escalated(VILLAGE, TOWN)]);
}

#[test]
fn an_agreement_returned_by_review_can_escalate() {
    let mut given = agreed(AgreementForm::Oral);
    given.push(review_event(false));
    run(given, escalate_action()).then_expect_events(vec![escalated(VILLAGE, TOWN)]);
}

#[test]
fn escalation_waits_for_a_pending_court_ruling() {
    let mut given = agreed(AgreementForm::Written);
    given.push(confirmation_requested());
    run(given, escalate_action()).then_expect_error(DisputeError::ConfirmationPending);
}

#[test]
fn escalating_an_agreement_sets_it_aside() {
    let mut given = confirmation_refused();
    given.push(ev(DisputeChange::PerformanceFollowedUp {
        performance: Performance::NotPerformed,
        note: text("协议未履行"),
    }));
    given.push(escalated(VILLAGE, TOWN));
    let dispute = state(given);
    assert_eq!(dispute.status(), DisputeStatus::Registered);
    assert_eq!(dispute.level(), Some(Level::Town));
    assert_eq!(dispute.agreement(), None);
    assert_eq!(dispute.judicial_confirmation(), None);
    assert_eq!(dispute.performance(), None);
    assert_eq!(dispute.outcome(), None);
    assert_eq!(dispute.body(), None);
}

#[test]
fn a_closed_dispute_cannot_escalate() {
    let action = escalate_action();
    run(closed(), action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::Closed));
}

// ---- take-over -------------------------------------------------------------

#[test]
fn the_district_can_take_over_a_village_case() {
    run(
        dispatched(),
        DisputeAction::TakeOver {
            division: code(DISTRICT),
        },
    )
    .then_expect_events(vec![ev(DisputeChange::DisputeTakenOver {
        from_division: code(VILLAGE),
        from_level: Level::Village,
        to_division: code(DISTRICT),
        to_level: Level::District,
        handling_due: due(Stage::DistrictHandling),
    })]);
}

#[test]
fn a_town_cannot_take_over_a_case_outside_it() {
    run(
        registered(),
        DisputeAction::TakeOver {
            division: code(OTHER_TOWN),
        },
    )
    .then_expect_error(DisputeError::NotAbove {
        division: code(OTHER_TOWN),
    });
}

#[test]
fn a_division_cannot_take_over_its_own_case() {
    run(
        registered_at(TOWN),
        DisputeAction::TakeOver {
            division: code(TOWN),
        },
    )
    .then_expect_error(DisputeError::NotAbove {
        division: code(TOWN),
    });
}

#[test]
fn an_agreed_dispute_cannot_be_taken_over() {
    // Escalation, not a take-over, moves a failed agreement up.
    let action = DisputeAction::TakeOver {
        division: code(DISTRICT),
    };
    run(confirmation_refused(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Agreed));
}

#[test]
fn a_closed_dispute_cannot_be_taken_over() {
    let action = DisputeAction::TakeOver {
        division: code(DISTRICT),
    };
    run(closed(), action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::Closed));
}

// ---- send down -------------------------------------------------------------

#[test]
fn a_town_can_send_a_case_down_to_one_of_its_villages() {
    run(
        registered_at(TOWN),
        DisputeAction::SendDown {
            division: code(VILLAGE),
        },
    )
    .then_expect_events(vec![ev(DisputeChange::DisputeSentDown {
        from_division: code(TOWN),
        from_level: Level::Town,
        to_division: code(VILLAGE),
        to_level: Level::Village,
        handling_due: due(Stage::VillageHandling),
    })]);
}

#[test]
fn a_case_is_sent_down_only_inside_the_current_division() {
    run(
        registered_at(TOWN),
        DisputeAction::SendDown {
            division: code(OTHER_VILLAGE),
        },
    )
    .then_expect_error(DisputeError::NotBelow {
        division: code(OTHER_VILLAGE),
    });
}

#[test]
fn a_case_in_mediation_cannot_be_sent_down() {
    let action = DisputeAction::SendDown {
        division: code(VILLAGE),
    };
    run(mediating(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Mediating));
}

// ---- referral --------------------------------------------------------------

fn refer_action() -> DisputeAction {
    DisputeAction::ReferToLegalChannel {
        channel: LegalChannel::Litigation,
        note: text("告知当事人向人民法院起诉"),
    }
}

#[test]
fn a_terminated_dispute_can_be_referred_to_court() {
    run(terminated(), refer_action()).then_expect_events(vec![ev(referred_change())]);
}

#[test]
fn an_agreement_the_court_refused_to_confirm_can_be_referred_to_court() {
    // Art 33: without confirmation the parties may sue.
    run(confirmation_refused(), refer_action()).then_expect_events(vec![ev(referred_change())]);
}

#[test]
fn referral_waits_for_a_pending_court_ruling() {
    let mut given = agreed(AgreementForm::Written);
    given.push(confirmation_requested());
    run(given, refer_action()).then_expect_error(DisputeError::ConfirmationPending);
}

#[test]
fn referring_an_agreement_sets_it_aside() {
    let mut given = confirmation_refused();
    given.push(ev(referred_change()));
    let dispute = state(given);
    assert_eq!(dispute.status(), DisputeStatus::Referred);
    assert_eq!(dispute.agreement(), None);
    assert_eq!(dispute.judicial_confirmation(), None);
    assert_eq!(dispute.outcome(), Some(Outcome::Referred));
}

#[test]
fn a_dispute_in_mediation_cannot_be_referred() {
    let action = refer_action();
    run(mediating(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Mediating));
}

// ---- judicial confirmation -------------------------------------------------

fn request_action() -> DisputeAction {
    DisputeAction::RequestJudicialConfirmation {
        court: name("示范区人民法院"),
    }
}

#[test]
fn judicial_confirmation_can_be_requested_for_a_written_agreement() {
    run(agreed(AgreementForm::Written), request_action())
        .then_expect_events(vec![confirmation_requested()]);
}

#[test]
fn judicial_confirmation_can_be_requested_until_the_last_moment() {
    let last_moment = due(Stage::JudicialConfirmationWindow).due - Duration::seconds(1);
    run_at(
        last_moment,
        agreed(AgreementForm::Written),
        request_action(),
    )
    .then_expect_events(vec![ev_at(
        last_moment,
        DisputeChange::JudicialConfirmationRequested {
            court: name("示范区人民法院"),
            acceptance_due: Some(
                services().deadline(Stage::JudicialConfirmationAcceptance, last_moment),
            ),
        },
    )]);
}

#[test]
fn judicial_confirmation_is_refused_once_the_window_has_closed() {
    let window = due(Stage::JudicialConfirmationWindow);
    run_at(window.due, agreed(AgreementForm::Written), request_action()).then_expect_error(
        DisputeError::WindowClosed {
            stage: Stage::JudicialConfirmationWindow,
            due: window.due,
        },
    );
}

#[test]
fn an_oral_agreement_cannot_be_judicially_confirmed() {
    run(agreed(AgreementForm::Oral), request_action())
        .then_expect_error(DisputeError::OralAgreement);
}

#[test]
fn judicial_confirmation_is_requested_once() {
    let mut given = agreed(AgreementForm::Written);
    given.push(confirmation_requested());
    run(given, request_action()).then_expect_error(DisputeError::ConfirmationAlreadyRequested);
}

#[test]
fn judicial_confirmation_needs_an_agreement() {
    let action = request_action();
    run(terminated(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Terminated));
}

fn ruling_action() -> DisputeAction {
    DisputeAction::RuleJudicialConfirmation {
        confirmed: true,
        note: Some(text("协议有效")),
    }
}

#[test]
fn the_court_rules_on_an_accepted_application() {
    run(awaiting_ruling(), ruling_action()).then_expect_events(vec![ev(
        DisputeChange::JudicialConfirmationRuled {
            confirmed: true,
            note: Some(text("协议有效")),
        },
    )]);
}

#[test]
fn a_ruling_needs_a_request() {
    run(agreed(AgreementForm::Written), ruling_action())
        .then_expect_error(DisputeError::NoConfirmationPending);
}

#[test]
fn the_court_rules_only_once() {
    let mut given = awaiting_ruling();
    given.push(ev(DisputeChange::JudicialConfirmationRuled {
        confirmed: false,
        note: None,
    }));
    run(given, ruling_action()).then_expect_error(DisputeError::NoConfirmationPending);
}

#[test]
fn a_ruling_is_recorded_only_while_agreed() {
    let action = ruling_action();
    run(reviewed(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Reviewed));
}

#[test]
fn an_application_gives_the_court_three_days_to_accept_and_no_ruling_deadline_yet() {
    // Art 4: applied for on Monday 2 March, accepted by the end of Thursday
    // 5 March; the ruling period starts only with the acceptance.
    let acceptance = due(Stage::JudicialConfirmationAcceptance);
    assert_eq!(acceptance.last_day, date("2026-03-05"));
    let mut given = agreed(AgreementForm::Written);
    given.push(confirmation_requested());
    let confirmation = state(given).judicial_confirmation().cloned().unwrap();
    assert_eq!(confirmation.step(), ConfirmationStep::AwaitingAcceptance);
    assert_eq!(confirmation.acceptance_due, Some(acceptance));
    assert_eq!(confirmation.ruling_due, None);
}

fn accept_action(accepted: bool) -> DisputeAction {
    DisputeAction::AcceptJudicialConfirmation {
        accepted,
        note: (!accepted).then(|| text("确认婚姻关系,不予受理")),
    }
}

fn acceptance_awaited() -> Vec<DisputeEvent> {
    let mut events = agreed(AgreementForm::Written);
    events.push(confirmation_requested());
    events
}

#[test]
fn acceptance_starts_fifteen_days_for_the_ruling() {
    // Art 5: accepted on 2 March, the ruling is due by the end of 17 March.
    assert_eq!(
        due(Stage::JudicialConfirmationRuling).last_day,
        date("2026-03-17")
    );
    run(acceptance_awaited(), accept_action(true))
        .then_expect_events(vec![confirmation_accepted()]);
    let confirmation = state(awaiting_ruling()).judicial_confirmation().cloned();
    assert_eq!(
        confirmation.map(|c| (c.step(), c.accepted)),
        Some((ConfirmationStep::AwaitingRuling, Some(true)))
    );
}

#[test]
fn a_late_acceptance_is_recorded_and_its_ruling_period_runs_from_it() {
    // The court's time is its own to keep; the engine records what it did.
    let late = at("2026-03-09T02:00:00Z");
    run_at(late, acceptance_awaited(), accept_action(true)).then_expect_events(vec![ev_at(
        late,
        DisputeChange::JudicialConfirmationAccepted {
            ruling_due: services_at(late).deadline(Stage::JudicialConfirmationRuling, late),
            note: None,
        },
    )]);
}

#[test]
fn a_court_may_refuse_to_accept_and_the_agreement_stands_unconfirmed() {
    run(acceptance_awaited(), accept_action(false)).then_expect_events(vec![ev(
        DisputeChange::JudicialConfirmationNotAccepted {
            note: Some(text("确认婚姻关系,不予受理")),
        },
    )]);
    let mut events = acceptance_awaited();
    events.push(ev(DisputeChange::JudicialConfirmationNotAccepted {
        note: None,
    }));
    let dispute = state(events.clone());
    assert_eq!(
        dispute
            .judicial_confirmation()
            .map(JudicialConfirmation::step),
        Some(ConfirmationStep::NotAccepted)
    );
    assert!(dispute.running_clocks().is_empty());
    // Nothing is pending before the court: the case may be reviewed...
    run(events.clone(), review_action(true)).then_expect_events(vec![review_event(true)]);
    // ...or the parties may apply again, to another court, in their window.
    run(events, request_action()).then_expect_events(vec![confirmation_requested()]);
}

#[test]
fn the_court_decides_on_acceptance_once() {
    let action = accept_action(true);
    run(awaiting_ruling(), action.clone())
        .then_expect_error(DisputeError::NoConfirmationAwaitingAcceptance);
    let mut not_accepted = acceptance_awaited();
    not_accepted.push(ev(DisputeChange::JudicialConfirmationNotAccepted {
        note: None,
    }));
    run(not_accepted, action).then_expect_error(DisputeError::NoConfirmationAwaitingAcceptance);
}

#[test]
fn acceptance_needs_an_application() {
    run(agreed(AgreementForm::Written), accept_action(true))
        .then_expect_error(DisputeError::NoConfirmationAwaitingAcceptance);
    let action = accept_action(true);
    run(mediating(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Mediating));
}

#[test]
fn the_court_rules_only_after_accepting() {
    run(acceptance_awaited(), ruling_action())
        .then_expect_error(DisputeError::ConfirmationNotAccepted);
    let mut not_accepted = acceptance_awaited();
    not_accepted.push(ev(DisputeChange::JudicialConfirmationNotAccepted {
        note: None,
    }));
    run(not_accepted, ruling_action()).then_expect_error(DisputeError::NoConfirmationPending);
}

fn extend_ruling(days: u32) -> DisputeAction {
    DisputeAction::ExtendJudicialConfirmation {
        days,
        reason: text("案情复杂,经院长批准延长"),
    }
}

/// The ruling deadline of an acceptance at `t0` (17 March) moved on by 10
/// days: the end of Friday 27 March.
fn ruling_due_extended() -> Deadline {
    Deadline {
        stage: Stage::JudicialConfirmationRuling,
        due: at("2026-03-27T16:00:00Z"),
        last_day: date("2026-03-27"),
        provisional: false,
    }
}

fn ruling_extended() -> DisputeChange {
    DisputeChange::JudicialConfirmationExtended {
        days: 10,
        extension: 1,
        reason: text("案情复杂,经院长批准延长"),
        old_due: due(Stage::JudicialConfirmationRuling),
        new_due: ruling_due_extended(),
    }
}

#[test]
fn the_court_may_extend_its_ruling_period_by_ten_days_from_its_due_time() {
    let day_14 = at("2026-03-16T02:00:00Z");
    run_at(day_14, awaiting_ruling(), extend_ruling(10))
        .then_expect_events(vec![ev_at(day_14, ruling_extended())]);
}

#[test]
fn the_ruling_clock_follows_the_extension() {
    let mut events = awaiting_ruling();
    events.push(ev(ruling_extended()));
    let clocks = state(events.clone()).running_clocks();
    assert_eq!(clocks.len(), 1);
    assert_eq!(clocks[0].stage, Stage::JudicialConfirmationRuling);
    assert_eq!(clocks[0].deadline, ruling_due_extended());
    assert_eq!(clocks[0].started_at, t0());
    // The court rules in the extended period.
    let day_24 = at("2026-03-26T02:00:00Z");
    run_at(day_24, events, ruling_action()).then_expect_events(vec![ev_at(
        day_24,
        DisputeChange::JudicialConfirmationRuled {
            confirmed: true,
            note: Some(text("协议有效")),
        },
    )]);
}

#[test]
fn the_ruling_period_is_extended_once_by_at_most_ten_days() {
    let mut extended = awaiting_ruling();
    extended.push(ev(ruling_extended()));
    run(extended, extend_ruling(5)).then_expect_error(DisputeError::ExtensionsUsedUp {
        stage: Stage::JudicialConfirmationRuling,
        max: 1,
    });
    run(awaiting_ruling(), extend_ruling(11)).then_expect_error(DisputeError::ExtensionTooLong {
        stage: Stage::JudicialConfirmationRuling,
        days: 11,
        max: 10,
    });
}

#[test]
fn the_ruling_period_is_not_extended_once_it_has_run_out() {
    let ruling_due = due(Stage::JudicialConfirmationRuling);
    run_at(ruling_due.due, awaiting_ruling(), extend_ruling(10)).then_expect_error(
        DisputeError::ExtensionTooLate {
            stage: Stage::JudicialConfirmationRuling,
            due: ruling_due.due,
        },
    );
}

#[test]
fn the_ruling_period_is_extended_only_between_acceptance_and_ruling() {
    run(acceptance_awaited(), extend_ruling(10))
        .then_expect_error(DisputeError::ConfirmationNotAccepted);
    run(agreed(AgreementForm::Written), extend_ruling(10))
        .then_expect_error(DisputeError::NoConfirmationPending);
    let mut ruled = awaiting_ruling();
    ruled.push(ev(DisputeChange::JudicialConfirmationRuled {
        confirmed: true,
        note: None,
    }));
    run(ruled, extend_ruling(10)).then_expect_error(DisputeError::NoConfirmationPending);
}

/// An application as histories recorded it before acceptance was a step of
/// its own (version 1): one 18-day ruling deadline from the application, no
/// acceptance deadline. Read from its stored JSON through the registry, as
/// every reader of the log reads it: the application and, at the same
/// moment, the acceptance it implied.
fn old_confirmation_requested() -> Vec<DisputeEvent> {
    let stored = crate::upcast::StoredEvent {
        event_type: "JudicialConfirmationRequested".into(),
        event_version: "1".into(),
        payload: serde_json::json!({
            "at": "2026-03-02T02:00:00Z",
            "by": serde_json::to_value(actor()).unwrap(),
            "change": {"JudicialConfirmationRequested": {
                "court": "示范区人民法院",
                "ruling_due": {
                    "stage": "judicial_confirmation_ruling",
                    "due": "2026-03-20T16:00:00Z",
                    "last_day": "2026-03-20",
                    "provisional": false
                }
            }}
        }),
    };
    crate::upcast::DISPUTE.decode(stored).unwrap()
}

fn old_ruling_due() -> Deadline {
    Deadline {
        stage: Stage::JudicialConfirmationRuling,
        due: at("2026-03-20T16:00:00Z"),
        last_day: date("2026-03-20"),
        provisional: false,
    }
}

#[test]
fn an_old_application_is_read_as_the_application_and_its_acceptance() {
    assert_eq!(
        old_confirmation_requested(),
        vec![
            ev(DisputeChange::JudicialConfirmationRequested {
                court: name("示范区人民法院"),
                acceptance_due: None,
            }),
            ev(DisputeChange::JudicialConfirmationAccepted {
                ruling_due: old_ruling_due(),
                note: None,
            }),
        ]
    );
    // An application stored as version 1 after acceptance became a step
    // (with an acceptance deadline, no ruling deadline) is already in
    // version 2's shape, and stays one event.
    let stored = crate::upcast::StoredEvent {
        event_type: "JudicialConfirmationRequested".into(),
        event_version: "1".into(),
        payload: serde_json::to_value(confirmation_requested()).unwrap(),
    };
    assert_eq!(
        crate::upcast::DISPUTE
            .decode::<DisputeEvent>(stored)
            .unwrap(),
        vec![confirmation_requested()]
    );
}

#[test]
fn an_old_application_awaits_its_ruling_with_its_own_deadline() {
    let mut events = agreed(AgreementForm::Written);
    events.extend(old_confirmation_requested());
    let dispute = state(events.clone());
    assert_eq!(
        dispute.judicial_confirmation(),
        Some(&JudicialConfirmation {
            court: name("示范区人民法院"),
            acceptance_due: None,
            accepted: Some(true),
            ruling_due: Some(old_ruling_due()),
            extensions: 0,
            confirmed: None,
        })
    );
    let clocks = dispute.running_clocks();
    assert_eq!(clocks.len(), 1);
    assert_eq!(clocks[0].deadline, old_ruling_due());
    assert_eq!(clocks[0].started_at, t0());
    // The court rules on it directly, as it did; there is no acceptance
    // left to record for it.
    run(events.clone(), ruling_action()).then_expect_events(vec![ev(
        DisputeChange::JudicialConfirmationRuled {
            confirmed: true,
            note: Some(text("协议有效")),
        },
    )]);
    run(events, accept_action(true))
        .then_expect_error(DisputeError::NoConfirmationAwaitingAcceptance);
}

#[test]
fn an_old_request_and_ruling_replay_to_the_same_state() {
    // The two-event shape of histories recorded before acceptance was a
    // step: request, then ruling, with nothing between.
    let mut events = agreed(AgreementForm::Written);
    events.extend(old_confirmation_requested());
    events.push(
        serde_json::from_value(serde_json::json!({
            "at": "2026-03-10T02:00:00Z",
            "by": serde_json::to_value(actor()).unwrap(),
            "change": {"JudicialConfirmationRuled": {"confirmed": false, "note": "协议内容违反法律规定"}}
        }))
        .unwrap(),
    );
    let dispute = state(events);
    let confirmation = dispute.judicial_confirmation().unwrap();
    assert_eq!(confirmation.step(), ConfirmationStep::Ruled);
    assert_eq!(confirmation.confirmed, Some(false));
    assert_eq!(confirmation.ruling_due, Some(old_ruling_due()));
    assert_eq!(dispute.status(), DisputeStatus::Agreed);
    // As before: the court refused, so the level's handling clock runs
    // again and the agreement may be mediated afresh.
    assert_eq!(
        dispute
            .running_clocks()
            .iter()
            .map(|c| c.stage)
            .collect::<Vec<_>>(),
        vec![Stage::VillageHandling]
    );
    run(
        {
            let mut again = agreed(AgreementForm::Written);
            again.extend(old_confirmation_requested());
            again.push(ev(DisputeChange::JudicialConfirmationRuled {
                confirmed: false,
                note: None,
            }));
            again
        },
        dispatch_action(),
    )
    .then_expect_events(vec![dispatched_event()]);
}

#[test]
fn every_event_is_written_at_its_current_version() {
    let request = confirmation_requested();
    assert_eq!(request.event_version(), "2");
    assert_eq!(confirmation_accepted().event_version(), "1");
    for (event_type, version) in crate::dispute::EVENT_VERSIONS {
        assert_eq!(
            crate::upcast::DISPUTE.current_version(event_type),
            Some(*version)
        );
    }
}

#[test]
fn a_new_application_is_stored_without_a_ruling_deadline() {
    let json = serde_json::to_value(confirmation_requested()).unwrap();
    let request = &json["change"]["JudicialConfirmationRequested"];
    assert!(request.get("ruling_due").is_none(), "{request}");
    assert_eq!(
        request["acceptance_due"]["stage"],
        "judicial_confirmation_acceptance"
    );
    for event in [
        confirmation_requested(),
        confirmation_accepted(),
        ev(ruling_extended()),
        ev(DisputeChange::JudicialConfirmationNotAccepted { note: None }),
        ev(mediation_extended()),
    ] {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<DisputeEvent>(&json).unwrap(), event);
    }
    assert_eq!(
        confirmation_accepted().event_type(),
        "JudicialConfirmationAccepted"
    );
    assert_eq!(
        ev(ruling_extended()).event_type(),
        "JudicialConfirmationExtended"
    );
    assert_eq!(
        ev(DisputeChange::JudicialConfirmationNotAccepted { note: None }).event_type(),
        "JudicialConfirmationNotAccepted"
    );
    assert_eq!(ev(mediation_extended()).event_type(), "MediationExtended");
    assert_eq!(ev(mediation_extended()).event_version(), "1");
}

// ---- follow-up -------------------------------------------------------------

fn follow_up_action() -> DisputeAction {
    DisputeAction::RecordFollowUp {
        performance: Performance::PartlyPerformed,
        note: text("已改道,费用尚未结清"),
    }
}

#[test]
fn a_follow_up_records_performance() {
    run(agreed(AgreementForm::Oral), follow_up_action()).then_expect_events(vec![ev(
        DisputeChange::PerformanceFollowedUp {
            performance: Performance::PartlyPerformed,
            note: text("已改道,费用尚未结清"),
        },
    )]);
}

fn followed_up() -> DisputeEvent {
    ev(DisputeChange::PerformanceFollowedUp {
        performance: Performance::PartlyPerformed,
        note: text("已改道,费用尚未结清"),
    })
}

#[test]
fn a_reviewed_agreement_can_be_followed_up() {
    run(reviewed(), follow_up_action()).then_expect_events(vec![followed_up()]);
}

#[test]
fn a_closed_agreement_can_be_followed_up_and_stays_closed() {
    run(closed(), follow_up_action()).then_expect_events(vec![followed_up()]);
    let mut events = closed();
    events.push(followed_up());
    let dispute = state(events);
    assert_eq!(dispute.status(), DisputeStatus::Closed);
    assert_eq!(dispute.performance(), Some(Performance::PartlyPerformed));
}

#[test]
fn a_follow_up_needs_an_agreement() {
    let action = follow_up_action();
    run(terminated(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Terminated));
}

#[test]
fn a_reviewed_case_without_an_agreement_cannot_be_followed_up() {
    let mut given = terminated();
    given.push(review_event(true));
    let action = follow_up_action();
    run(given, action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::Reviewed));
}

#[test]
fn a_closed_case_without_an_agreement_cannot_be_followed_up() {
    let mut given = terminated();
    given.push(review_event(true));
    given.push(ev(DisputeChange::DisputeClosed {
        outcome: Outcome::Terminated,
        intake_level: Level::Village,
        resolved_level: Level::Village,
        resolved_division: code(VILLAGE),
        resolved_at_or_below_intake: true,
    }));
    let action = follow_up_action();
    run(given, action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::Closed));
}

#[test]
fn an_agreement_set_aside_by_escalation_is_not_followed_up() {
    let mut given = confirmation_refused();
    given.push(escalated(VILLAGE, TOWN));
    given.extend(mediation_restarted());
    given.push(ev(DisputeChange::MediationTerminated {
        reason: TerminationReason::NoAgreement,
        note: text("双方分歧过大"),
        legal_routes_explained: true,
    }));
    given.push(review_event(true));
    let action = follow_up_action();
    run(given, action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::Reviewed));
}

// ---- review ----------------------------------------------------------------

fn review_action(approved: bool) -> DisputeAction {
    DisputeAction::Review {
        approved,
        note: None,
    }
}

#[test]
fn an_agreed_dispute_can_be_reviewed() {
    run(agreed(AgreementForm::Oral), review_action(true))
        .then_expect_events(vec![review_event(true)]);
}

#[test]
fn a_referred_dispute_can_be_reviewed() {
    let mut given = terminated();
    given.push(ev(DisputeChange::DisputeReferred {
        channel: LegalChannel::Litigation,
        note: text("告知当事人向人民法院起诉"),
    }));
    run(given, review_action(true)).then_expect_events(vec![review_event(true)]);
}

#[test]
fn a_rejected_review_sends_the_case_back_for_rework() {
    let mut given = agreed(AgreementForm::Oral);
    given.push(review_event(false));
    assert_eq!(state(given.clone()).status(), DisputeStatus::Agreed);
    let action = DisputeAction::Close {};
    run(given, action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::Agreed));
}

#[test]
fn review_waits_for_a_pending_court_ruling() {
    let mut given = agreed(AgreementForm::Written);
    given.push(confirmation_requested());
    run(given, review_action(true)).then_expect_error(DisputeError::ConfirmationPending);
}

#[test]
fn a_dispute_in_mediation_cannot_be_reviewed() {
    let action = review_action(true);
    run(mediating(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Mediating));
}

// ---- close -----------------------------------------------------------------

#[test]
fn closing_an_agreement_at_the_intake_level_counts_as_resolved_low() {
    run(reviewed(), DisputeAction::Close {}).then_expect_events(vec![ev(
        DisputeChange::DisputeClosed {
            outcome: Outcome::Agreement,
            intake_level: Level::Village,
            resolved_level: Level::Village,
            resolved_division: code(VILLAGE),
            resolved_at_or_below_intake: true,
        },
    )]);
}

#[test]
fn closing_above_the_intake_level_does_not_count_as_resolved_low() {
    let mut given = terminated();
    given.push(escalated(VILLAGE, TOWN));
    given.push(dispatched_event());
    given.push(consented(PartyRole::Applicant));
    given.push(consented(PartyRole::Respondent));
    given.push(ev(DisputeChange::MediationStarted {}));
    given.push(agreement_event(AgreementForm::Oral));
    given.push(review_event(true));
    run(given, DisputeAction::Close {}).then_expect_events(vec![ev(
        DisputeChange::DisputeClosed {
            outcome: Outcome::Agreement,
            intake_level: Level::Village,
            resolved_level: Level::Town,
            resolved_division: code(TOWN),
            resolved_at_or_below_intake: false,
        },
    )]);
}

#[test]
fn closing_after_a_referral_records_the_referral() {
    let mut given = terminated();
    given.push(ev(DisputeChange::DisputeReferred {
        channel: LegalChannel::Arbitration,
        note: text("劳动争议,告知申请仲裁"),
    }));
    given.push(review_event(true));
    run(given, DisputeAction::Close {}).then_expect_events(vec![ev(
        DisputeChange::DisputeClosed {
            outcome: Outcome::Referred,
            intake_level: Level::Village,
            resolved_level: Level::Village,
            resolved_division: code(VILLAGE),
            resolved_at_or_below_intake: true,
        },
    )]);
}

#[test]
fn closing_after_a_termination_records_the_termination() {
    let mut given = terminated();
    given.push(review_event(true));
    run(given, DisputeAction::Close {}).then_expect_events(vec![ev(
        DisputeChange::DisputeClosed {
            outcome: Outcome::Terminated,
            intake_level: Level::Village,
            resolved_level: Level::Village,
            resolved_division: code(VILLAGE),
            resolved_at_or_below_intake: true,
        },
    )]);
}

#[test]
fn closing_after_an_escalated_agreement_reports_the_new_round() {
    // The refused agreement must not count as this case's outcome.
    let mut given = confirmation_refused();
    given.push(escalated(VILLAGE, TOWN));
    given.extend(mediation_restarted());
    given.push(ev(DisputeChange::MediationTerminated {
        reason: TerminationReason::NoAgreement,
        note: text("双方分歧过大"),
        legal_routes_explained: true,
    }));
    given.push(review_event(true));
    run(given, DisputeAction::Close {}).then_expect_events(vec![ev(
        DisputeChange::DisputeClosed {
            outcome: Outcome::Terminated,
            intake_level: Level::Village,
            resolved_level: Level::Town,
            resolved_division: code(TOWN),
            resolved_at_or_below_intake: false,
        },
    )]);
}

#[test]
fn closing_after_an_agreement_was_referred_records_the_referral() {
    let mut given = agreed(AgreementForm::Oral);
    given.push(review_event(false));
    given.push(ev(referred_change()));
    given.push(review_event(true));
    run(given, DisputeAction::Close {}).then_expect_events(vec![ev(
        DisputeChange::DisputeClosed {
            outcome: Outcome::Referred,
            intake_level: Level::Village,
            resolved_level: Level::Village,
            resolved_division: code(VILLAGE),
            resolved_at_or_below_intake: true,
        },
    )]);
}

#[test]
fn a_dispute_is_closed_only_after_review() {
    let action = DisputeAction::Close {};
    run(terminated(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Terminated));
}

// ---- evaluation ------------------------------------------------------------

fn evaluate_action() -> DisputeAction {
    DisputeAction::Evaluate {
        satisfaction: Satisfaction::Satisfied,
        note: None,
    }
}

#[test]
fn a_closed_dispute_is_evaluated() {
    run(closed(), evaluate_action()).then_expect_events(vec![evaluated()]);
}

#[test]
fn a_dispute_is_evaluated_once() {
    let mut given = closed();
    given.push(evaluated());
    run(given, evaluate_action()).then_expect_error(DisputeError::AlreadyEvaluated);
}

#[test]
fn evaluation_waits_for_closure() {
    let action = evaluate_action();
    run(reviewed(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Reviewed));
}

// ---- reopen ----------------------------------------------------------------

fn reopen_action() -> DisputeAction {
    DisputeAction::Reopen {
        reason: text("协议未履行,申请人再次求助"),
    }
}

#[test]
fn reopening_restarts_the_handling_period_where_the_case_was_closed() {
    run(closed(), reopen_action()).then_expect_events(vec![ev(DisputeChange::DisputeReopened {
        reason: text("协议未履行,申请人再次求助"),
        division: code(VILLAGE),
        level: Level::Village,
        handling_due: due(Stage::VillageHandling),
    })]);
}

#[test]
fn reopening_clears_the_previous_round_but_keeps_the_intake_level() {
    let mut events = closed();
    events.push(evaluated());
    events.push(ev(DisputeChange::DisputeReopened {
        reason: text("协议未履行"),
        division: code(VILLAGE),
        level: Level::Village,
        handling_due: due(Stage::VillageHandling),
    }));
    let dispute = state(events.clone());
    assert_eq!(dispute.status(), DisputeStatus::Registered);
    assert_eq!(dispute.intake_level(), Some(Level::Village));
    assert_eq!(dispute.agreement(), None);
    assert_eq!(dispute.outcome(), None);
    assert_eq!(dispute.satisfaction(), None);
    assert_eq!(dispute.body(), None);
    assert_eq!(dispute.consents().count(), 0);
    // The next round is evaluated afresh once it closes again.
    events.extend(closed().into_iter().skip(1));
    run(events, evaluate_action()).then_expect_events(vec![evaluated()]);
}

#[test]
fn an_open_dispute_cannot_be_reopened() {
    let action = reopen_action();
    run(reviewed(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Reviewed));
}

// ---- SLA clocks and deadline timers -----------------------------------------

fn warn(stage: Stage, threshold_percent: u8, due: DateTime<Utc>) -> DisputeAction {
    DisputeAction::RecordDeadlineWarning {
        stage,
        threshold_percent,
        due,
    }
}

fn breach(stage: Stage, due: DateTime<Utc>) -> DisputeAction {
    DisputeAction::RecordDeadlineBreach { stage, due }
}

/// The stages whose clocks run after `events`.
fn running(events: Vec<DisputeEvent>) -> Vec<Stage> {
    state(events)
        .running_clocks()
        .into_iter()
        .map(|c| c.stage)
        .collect()
}

/// The village that holds a registered case, with no body named.
fn village_holder() -> Holder {
    Holder {
        division: Some(code(VILLAGE)),
        level: Some(Level::Village),
        body: None,
        person: None,
        official: None,
    }
}

/// The village handling period opened at `t0`: due at the end of Wednesday
/// 1 April (16:00 UTC), 30 days 14 hours after the start.
fn village_due() -> DateTime<Utc> {
    due(Stage::VillageHandling).due
}

fn village_warned(threshold_percent: u8) -> DisputeEvent {
    ev(DisputeChange::DeadlineWarned {
        stage: Stage::VillageHandling,
        threshold_percent,
        due: village_due(),
        holder: village_holder(),
    })
}

#[test]
fn clocks_run_for_what_the_holder_owes_in_each_status() {
    use Stage as S;
    let handling = S::VillageHandling;
    let mut acceptance_awaited = agreed(AgreementForm::Written);
    acceptance_awaited.push(confirmation_requested());
    let mut not_accepted = acceptance_awaited.clone();
    not_accepted.push(ev(DisputeChange::JudicialConfirmationNotAccepted {
        note: None,
    }));
    let ruling_awaited = awaiting_ruling();
    let mut referred = terminated();
    referred.push(ev(referred_change()));
    let cases: Vec<(&str, Vec<DisputeEvent>, Vec<Stage>)> = vec![
        ("new", vec![], vec![]),
        ("reported", reported(), vec![S::GridReport]),
        ("registered", registered(), vec![handling]),
        ("dispatched", dispatched(), vec![handling, S::Mediation]),
        ("mediating", mediating(), vec![handling, S::Mediation]),
        // A standing agreement meets the level's obligation; the parties'
        // confirmation window is theirs, not the holder's.
        ("agreed", agreed(AgreementForm::Written), vec![]),
        (
            "awaiting the court's acceptance",
            acceptance_awaited,
            vec![S::JudicialConfirmationAcceptance],
        ),
        (
            "awaiting a ruling",
            ruling_awaited,
            vec![S::JudicialConfirmationRuling],
        ),
        // Not accepted, the agreement stands unconfirmed: nobody owes a step.
        ("not accepted", not_accepted, vec![]),
        // An agreement that cannot stand puts the level back on the clock.
        (
            "confirmation refused",
            confirmation_refused(),
            vec![handling],
        ),
        ("agreement returned", agreement_returned(), vec![handling]),
        ("terminated", terminated(), vec![handling]),
        ("referred", referred, vec![]),
        ("reviewed", reviewed(), vec![]),
        ("closed", closed(), vec![]),
    ];
    for (status, events, expected) in cases {
        assert_eq!(running(events), expected, "{status}");
    }
}

#[test]
fn each_clock_names_its_start_its_deadline_and_who_owes_it() {
    let grid = state(reported()).running_clocks();
    assert_eq!(
        grid,
        vec![RunningClock {
            stage: Stage::GridReport,
            deadline: due(Stage::GridReport),
            started_at: t0(),
            paused: Duration::zero(),
            holder: Holder {
                level: Some(Level::Grid),
                ..village_holder()
            },
        }]
    );
    let mediation = state(dispatched()).running_clocks();
    assert_eq!(mediation[0].holder, village_holder());
    assert_eq!(mediation[1].deadline, due(Stage::Mediation));
    assert_eq!(
        mediation[1].holder,
        Holder {
            body: Some("shangping-pmc".to_owned()),
            person: Some("王调解".to_owned()),
            ..village_holder()
        }
    );
    let mut given = agreed(AgreementForm::Written);
    given.push(confirmation_requested());
    let acceptance = state(given.clone()).running_clocks();
    assert_eq!(
        acceptance[0].deadline,
        due(Stage::JudicialConfirmationAcceptance)
    );
    assert_eq!(acceptance[0].holder.body.as_deref(), Some("示范区人民法院"));
    given.push(confirmation_accepted());
    let ruling = state(given).running_clocks();
    assert_eq!(ruling[0].deadline, due(Stage::JudicialConfirmationRuling));
    assert_eq!(ruling[0].holder.body.as_deref(), Some("示范区人民法院"));
}

#[test]
fn an_escalation_restarts_the_handling_clock_at_the_new_level() {
    let t1 = at("2026-03-10T02:00:00Z");
    let town_due = services_at(t1).deadline(Stage::TownHandling, t1);
    let mut given = terminated();
    given.push(ev_at(
        t1,
        DisputeChange::DisputeEscalated {
            reason: EscalationReason::MediationFailed,
            from_division: code(VILLAGE),
            from_level: Level::Village,
            to_division: code(TOWN),
            to_level: Level::Town,
            handling_due: town_due,
        },
    ));
    let clocks = state(given.clone()).running_clocks();
    assert_eq!(clocks.len(), 1);
    assert_eq!(clocks[0].stage, Stage::TownHandling);
    assert_eq!(clocks[0].deadline, town_due);
    assert_eq!(clocks[0].started_at, t1);
    assert_eq!(
        clocks[0].holder,
        Holder {
            division: Some(code(TOWN)),
            level: Some(Level::Town),
            body: None,
            person: None,
            official: None,
        }
    );
    // The village's clock stopped with the move: its timers are stale.
    run_at(
        town_due.due,
        given,
        breach(Stage::VillageHandling, village_due()),
    )
    .then_expect_error(DisputeError::ClockNotRunning {
        stage: Stage::VillageHandling,
        due: village_due(),
    });
}

#[test]
fn a_grid_report_clock_runs_across_the_spring_festival() {
    // Reported on Friday 13 February 2026: one working day is the make-up
    // Saturday 14th.
    let friday = at("2026-02-13T02:00:00Z");
    let make_up = services_at(friday).deadline(Stage::GridReport, friday);
    assert_eq!(make_up.last_day, date("2026-02-14"));
    // Reported on that Saturday: 15–23 February are off, so the next working
    // day is Tuesday 24th.
    let saturday = at("2026-02-14T02:00:00Z");
    let registration_due = services_at(saturday).deadline(Stage::GridReport, saturday);
    assert_eq!(registration_due.due, at("2026-02-24T16:00:00Z"));
    let given = vec![ev_at(
        saturday,
        DisputeChange::DisputeReported {
            division: code(VILLAGE),
            grid: None,
            summary: text("春节期间邻里纠纷"),
            registration_due,
        },
    )];
    let clocks = state(given.clone()).running_clocks();
    assert_eq!(clocks[0].started_at, saturday);
    assert_eq!(clocks[0].deadline, registration_due);
    // Ten days fourteen hours allowed: half have run at 09:00 UTC on the
    // 19th, in the middle of the holiday, because the clock counts elapsed
    // time and only the deadline follows the calendar.
    assert_eq!(clocks[0].reached_at(50), at("2026-02-19T09:00:00Z"));
    let grid_holder = Holder {
        level: Some(Level::Grid),
        ..village_holder()
    };
    run_at(
        at("2026-02-24T15:59:59Z"),
        given.clone(),
        breach(Stage::GridReport, registration_due.due),
    )
    .then_expect_error(DisputeError::ThresholdNotReached {
        stage: Stage::GridReport,
        threshold_percent: 100,
        reached_at: registration_due.due,
    });
    run_at(
        registration_due.due,
        given,
        breach(Stage::GridReport, registration_due.due),
    )
    .then_expect_events(vec![ev_at(
        registration_due.due,
        DisputeChange::DeadlineBreached {
            stage: Stage::GridReport,
            due: registration_due.due,
            holder: grid_holder,
        },
    )]);
}

#[test]
fn a_warning_before_half_the_allowed_time_is_refused() {
    // 30 days 14 hours allowed from t0: half have run 15 days 7 hours in,
    // at 09:00 UTC on 17 March.
    run_at(
        at("2026-03-17T08:59:59Z"),
        registered(),
        warn(Stage::VillageHandling, 50, village_due()),
    )
    .then_expect_error(DisputeError::ThresholdNotReached {
        stage: Stage::VillageHandling,
        threshold_percent: 50,
        reached_at: at("2026-03-17T09:00:00Z"),
    });
}

#[test]
fn a_warning_at_half_the_allowed_time_names_the_holder() {
    run_at(
        at("2026-03-17T09:00:00Z"),
        registered(),
        warn(Stage::VillageHandling, 50, village_due()),
    )
    .then_expect_events(vec![ev_at(
        at("2026-03-17T09:00:00Z"),
        DisputeChange::DeadlineWarned {
            stage: Stage::VillageHandling,
            threshold_percent: 50,
            due: village_due(),
            holder: village_holder(),
        },
    )]);
}

#[test]
fn the_second_warning_comes_at_three_quarters() {
    let mut given = registered();
    given.push(village_warned(50));
    // A quarter of 30 days 14 hours before the due time.
    let reached_at = at("2026-03-25T00:30:00Z");
    run_at(
        at("2026-03-25T00:29:59Z"),
        given.clone(),
        warn(Stage::VillageHandling, 75, village_due()),
    )
    .then_expect_error(DisputeError::ThresholdNotReached {
        stage: Stage::VillageHandling,
        threshold_percent: 75,
        reached_at,
    });
    run_at(
        reached_at,
        given,
        warn(Stage::VillageHandling, 75, village_due()),
    )
    .then_expect_events(vec![ev_at(
        reached_at,
        DisputeChange::DeadlineWarned {
            stage: Stage::VillageHandling,
            threshold_percent: 75,
            due: village_due(),
            holder: village_holder(),
        },
    )]);
}

#[test]
fn a_warning_already_recorded_writes_nothing() {
    let mut given = registered();
    given.push(village_warned(50));
    run_at(
        at("2026-03-20T00:00:00Z"),
        given,
        warn(Stage::VillageHandling, 50, village_due()),
    )
    .then_expect_events(vec![]);
}

#[test]
fn a_warning_is_recorded_only_at_50_or_75_percent() {
    for threshold_percent in [0, 60, 100] {
        run_at(
            village_due(),
            registered(),
            warn(Stage::VillageHandling, threshold_percent, village_due()),
        )
        .then_expect_error(DisputeError::InvalidThreshold { threshold_percent });
    }
}

#[test]
fn a_breach_is_refused_before_the_due_time() {
    let one_second_early = village_due() - Duration::seconds(1);
    run_at(
        one_second_early,
        registered(),
        breach(Stage::VillageHandling, village_due()),
    )
    .then_expect_error(DisputeError::ThresholdNotReached {
        stage: Stage::VillageHandling,
        threshold_percent: 100,
        reached_at: village_due(),
    });
}

#[test]
fn a_breach_after_the_due_time_records_who_held_the_mediation() {
    let mediation_due = due(Stage::Mediation).due;
    let late = mediation_due + Duration::hours(3);
    run_at(late, mediating(), breach(Stage::Mediation, mediation_due)).then_expect_events(vec![
        ev_at(
            late,
            DisputeChange::DeadlineBreached {
                stage: Stage::Mediation,
                due: mediation_due,
                holder: Holder {
                    body: Some("shangping-pmc".to_owned()),
                    person: Some("王调解".to_owned()),
                    ..village_holder()
                },
            },
        ),
    ]);
}

#[test]
fn a_breach_already_recorded_writes_nothing() {
    let mut given = registered();
    given.push(ev_at(
        village_due(),
        DisputeChange::DeadlineBreached {
            stage: Stage::VillageHandling,
            due: village_due(),
            holder: village_holder(),
        },
    ));
    run_at(
        village_due() + Duration::days(1),
        given,
        breach(Stage::VillageHandling, village_due()),
    )
    .then_expect_events(vec![]);
}

#[test]
fn a_stopped_clock_is_neither_warned_nor_breached() {
    // The agreement met the village's obligation before its time ran out.
    let given = agreed(AgreementForm::Oral);
    let stopped = DisputeError::ClockNotRunning {
        stage: Stage::VillageHandling,
        due: village_due(),
    };
    run_at(
        village_due(),
        given.clone(),
        breach(Stage::VillageHandling, village_due()),
    )
    .then_expect_error(stopped.clone());
    run_at(
        village_due(),
        given,
        warn(Stage::VillageHandling, 75, village_due()),
    )
    .then_expect_error(stopped);
}

#[test]
fn a_clock_stops_with_the_obligation_it_measures() {
    // Mediation ended in an agreement: the mediation clock stops, and so
    // does the level's, since the agreement stands.
    let mediation_due = due(Stage::Mediation).due;
    run_at(
        mediation_due,
        agreed(AgreementForm::Oral),
        breach(Stage::Mediation, mediation_due),
    )
    .then_expect_error(DisputeError::ClockNotRunning {
        stage: Stage::Mediation,
        due: mediation_due,
    });
}

#[test]
fn a_timer_with_a_stale_due_time_is_refused() {
    let stale = village_due() - Duration::days(1);
    run_at(
        village_due(),
        registered(),
        breach(Stage::VillageHandling, stale),
    )
    .then_expect_error(DisputeError::ClockNotRunning {
        stage: Stage::VillageHandling,
        due: stale,
    });
}

#[test]
fn a_closed_dispute_records_no_timers() {
    let action = breach(Stage::VillageHandling, village_due());
    run_at(village_due(), closed(), action.clone())
        .then_expect_error(not_allowed(&action, DisputeStatus::Closed));
}

#[test]
fn warnings_and_breaches_leave_the_status_and_the_clocks_alone() {
    let mut events = dispatched();
    let before = state(events.clone());
    events.push(village_warned(50));
    let after = state(events);
    assert_eq!(after.status(), DisputeStatus::Dispatched);
    assert_eq!(after.running_clocks(), before.running_clocks());
    let json = serde_json::to_string(&after).unwrap();
    assert_eq!(serde_json::from_str::<Dispute>(&json).unwrap(), after);
    assert_ne!(after, before, "the mark is kept in the state");
}

#[test]
fn timer_events_are_typed_by_variant_name() {
    assert_eq!(village_warned(50).event_type(), "DeadlineWarned");
    let breached = ev(DisputeChange::DeadlineBreached {
        stage: Stage::VillageHandling,
        due: village_due(),
        holder: village_holder(),
    });
    assert_eq!(breached.event_type(), "DeadlineBreached");
    assert_eq!(breached.event_version(), "1");
}

// ---- the aggregate as a whole ----------------------------------------------

#[test]
fn state_answers_the_questions_a_query_asks() {
    let mut events = agreed(AgreementForm::Written);
    events.push(ev(DisputeChange::MediationSessionHeld {
        session: 1,
        summary: text("听取双方意见"),
    }));
    let dispute = state(events);
    assert_eq!(dispute.status(), DisputeStatus::Agreed);
    assert_eq!(dispute.division(), Some(&code(VILLAGE)));
    assert_eq!(dispute.level(), Some(Level::Village));
    assert_eq!(dispute.category(), Some(DisputeCategory::Neighbourhood));
    assert_eq!(dispute.risk(), Some(Risk::Green));
    assert_eq!(dispute.parties(), parties().as_slice());
    assert_eq!(dispute.body(), Some(&body()));
    assert_eq!(dispute.mediator(), Some(&name("王调解")));
    assert_eq!(dispute.agreement_form(), Some(AgreementForm::Written));
    assert_eq!(dispute.handling_due(), Some(&due(Stage::VillageHandling)));
    assert_eq!(dispute.mediation_due(), Some(&due(Stage::Mediation)));
    assert_eq!(dispute.outcome(), Some(Outcome::Agreement));
    assert_eq!(dispute.session_count(), 1);
    assert_eq!(
        dispute.consents().collect::<Vec<_>>(),
        vec![PartyRole::Applicant, PartyRole::Respondent]
    );
}

#[test]
fn snapshots_and_events_round_trip_through_json() {
    let mut events = closed();
    events.push(evaluated());
    let dispute = state(events.clone());
    let json = serde_json::to_string(&dispute).unwrap();
    assert_eq!(serde_json::from_str::<Dispute>(&json).unwrap(), dispute);
    for event in events {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<DisputeEvent>(&json).unwrap(), event);
    }
}

#[test]
fn events_are_typed_by_variant_name_at_version_one() {
    let event = closed().pop().unwrap();
    assert_eq!(event.event_type(), "DisputeClosed");
    assert_eq!(event.event_version(), "1");
    assert_eq!(
        ev(DisputeChange::MediationStarted {}).event_type(),
        "MediationStarted"
    );
}

#[test]
fn refusals_name_the_action_and_the_status() {
    let error = not_allowed(
        &DisputeAction::Dispatch {
            body: body(),
            mediator: None,
        },
        DisputeStatus::Mediating,
    );
    assert_eq!(
        error.to_string(),
        "cannot dispatch: the dispute is in mediation"
    );
    assert_eq!(DisputeStatus::Mediating.as_str(), "mediating");
    assert_eq!(
        serde_json::to_string(&DisputeStatus::Mediating).unwrap(),
        "\"mediating\""
    );
}

fn official_assigned(official: &str, previous: Option<&str>) -> DisputeEvent {
    ev(DisputeChange::OfficialAssigned {
        official: name(official),
        previous: previous.map(name),
    })
}

fn assign(official: &str) -> DisputeAction {
    DisputeAction::AssignOfficial {
        official: name(official),
    }
}

#[test]
fn a_responsible_official_is_named_and_renamed() {
    run(registered(), assign("刘副镇长"))
        .then_expect_events(vec![official_assigned("刘副镇长", None)]);
    let mut given = registered();
    given.push(official_assigned("刘副镇长", None));
    run(given.clone(), assign("王镇长"))
        .then_expect_events(vec![official_assigned("王镇长", Some("刘副镇长"))]);
    // Naming the same official again writes nothing.
    run(given, assign("刘副镇长")).then_expect_events(vec![]);
}

#[test]
fn a_closed_or_new_case_takes_no_official() {
    let action = assign("刘副镇长");
    run(closed(), action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::Closed));
    run(vec![], action.clone()).then_expect_error(not_allowed(&action, DisputeStatus::New));
}

#[test]
fn every_clock_and_breach_names_the_official_and_the_person_in_charge() {
    let mut given = dispatched();
    given.push(official_assigned("刘副镇长", None));
    let clocks = state(given.clone()).running_clocks();
    let holder = |stage| {
        clocks
            .iter()
            .find(|c| c.stage == stage)
            .map(|c| c.holder.clone())
            .unwrap()
    };
    // The level's clock: the official is the person in charge.
    assert_eq!(
        holder(Stage::VillageHandling),
        Holder {
            person: Some("刘副镇长".into()),
            official: Some("刘副镇长".into()),
            ..village_holder()
        }
    );
    // Mediation: the mediator is, and the official still answers for it.
    let mediation = holder(Stage::Mediation);
    assert_eq!(mediation.person.as_deref(), Some("王调解"));
    assert_eq!(mediation.official.as_deref(), Some("刘副镇长"));
    assert_eq!(mediation.body.as_deref(), Some(body().id.as_str()));
    run_at(
        village_due(),
        given,
        breach(Stage::VillageHandling, village_due()),
    )
    .then_expect_events(vec![ev_at(
        village_due(),
        DisputeChange::DeadlineBreached {
            stage: Stage::VillageHandling,
            due: village_due(),
            holder: Holder {
                person: Some("刘副镇长".into()),
                official: Some("刘副镇长".into()),
                ..village_holder()
            },
        },
    )]);
}

#[test]
fn a_holder_stored_before_officials_reads_without_one() {
    let stored = serde_json::json!({
        "division": VILLAGE, "level": "village", "body": null, "person": null
    });
    let holder: Holder = serde_json::from_value(stored.clone()).unwrap();
    assert_eq!(holder, village_holder());
    assert_eq!(serde_json::to_value(&holder).unwrap(), stored);
}

// --- Erasure (PIPL Art 47) ---------------------------------------------------

fn erase(parties: Vec<u32>) -> DisputeAction {
    DisputeAction::EraseParties { parties }
}

#[test]
fn erased_parties_are_named_erased_and_the_others_kept() {
    run(registered(), erase(vec![0, 0, 7]))
        .then_expect_events(vec![ev(DisputeChange::PartiesErased { parties: vec![0] })]);
    let mut given = registered();
    given.push(ev(DisputeChange::PartiesErased { parties: vec![0] }));
    let dispute = state(given.clone());
    let names: Vec<&str> = dispute.parties().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, [crate::values::ERASED_NAME, "李四"]);
    // Erasing again, or beyond the list, writes nothing.
    run(given.clone(), erase(vec![0, 9])).then_expect_events(vec![]);
    // The case goes on afterwards, in every status, closed included.
    let mut closed_then = closed();
    closed_then.push(ev(DisputeChange::PartiesErased { parties: vec![1] }));
    assert!(
        state(closed_then)
            .parties()
            .iter()
            .any(|p| p.name.is_erased())
    );
    run(closed(), erase(vec![1]))
        .then_expect_events(vec![ev(DisputeChange::PartiesErased { parties: vec![1] })]);
}

#[test]
fn a_dispute_not_yet_registered_has_no_party_to_erase() {
    run(vec![], erase(vec![0])).then_expect_events(vec![]);
}
