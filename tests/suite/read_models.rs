//! The supervisors' read models — escalation and resolution statistics,
//! caseload, petitioner history — built by the projection runner from
//! cases written through the real store, on each backend, and checked
//! exactly against small hand-made scenarios.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use mediation_domain::dispute::{
    AgreementForm, Dispute, DisputeAction, DisputeCommand, EscalationReason, MediationBody, Party,
    PartyRole, Performance, Satisfaction, TerminationReason,
};
use mediation_domain::petition::{
    OpinionOutcome, Petition, PetitionAction, PetitionCommand, Petitioner,
};
use mediation_domain::policy::Stage;
use mediation_domain::services::{ManualClock, Services};
use mediation_domain::values::{
    Actor, AgencyId, DisputeCategory, DivisionCode, LegalChannel, Level, MediationKind, Name,
    PetitionChannel, PetitionLevel, Risk, Text,
};
use mediation_projections::case_index::CaseIndex;
use mediation_projections::caseload::{self, Caseload, Load, OpenCase};
use mediation_projections::petition_statistics::{
    self, PetitionCounts, PetitionStatistics, PetitionStatsRow,
};
use mediation_projections::petitioners::{
    self, PetitionRecord, PetitionerHistory, PetitionerSecret, Repeat, RepeatBasis,
};
use mediation_projections::runner::{self, Projection};
use mediation_projections::statistics::{
    self, Counts, Grouping, Period, StageOutcome, Statistics, StatsRow,
};
use mediation_store::{Backend, Cases, Store};
use mediation_tests::TestDb;

on_both_backends!(
    statistics_count_a_small_scenario_exactly,
    dispute_rates_count_follow_ups_evaluations_and_moves_exactly,
    statistics_as_of_a_day_count_what_had_happened_by_its_end,
    petition_statistics_count_the_three_rates_exactly,
    caseload_follows_each_case_from_holder_to_holder,
    petitioner_history_finds_repeats_and_skipped_levels,
    the_checkpoint_keeps_events_from_being_applied_twice,
    a_batch_dropped_without_commit_writes_nothing,
);

/// Monday 2 March 2026, 10:00 in Beijing: day 0 of every scenario.
const T0: &str = "2026-03-02T02:00:00Z";
/// Example District.
const DISTRICT: &str = "990101000000";
/// Donghu Subdistrict, a town of the district.
const TOWN: &str = "990101001000";
/// Liu'an Village, under Donghu.
const VILLAGE: &str = "990101001201";
/// Hubin Community, also under Donghu.
const HUBIN: &str = "990101001001";
/// Shangping Village, under Qingshan Town (outside Donghu).
const SHANGPING: &str = "990101101201";

const LIUAN_COMMITTEE: &str = "liuan-committee";
const HUBIN_COMMITTEE: &str = "hubin-committee";
const DONGHU_CENTRE: &str = "donghu-centre";

fn t0() -> DateTime<Utc> {
    T0.parse().unwrap()
}

fn day(n: i64) -> DateTime<Utc> {
    t0() + Duration::days(n)
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

fn month(s: &str) -> Period {
    Period::parse(s).unwrap()
}

fn officer() -> Actor {
    Actor::parse("officer-1", "donghu-office").unwrap()
}

/// What one step asks of which case.
enum What {
    Dispute(DisputeAction),
    Petition(PetitionAction),
}

/// One command of a scenario: on `day` after [`T0`], to case `id`.
struct Step {
    day: i64,
    id: &'static str,
    what: What,
}

fn d(day: i64, id: &'static str, action: DisputeAction) -> Step {
    Step {
        day,
        id,
        what: What::Dispute(action),
    }
}

fn p(day: i64, id: &'static str, action: PetitionAction) -> Step {
    Step {
        day,
        id,
        what: What::Petition(action),
    }
}

fn register(code: &str) -> DisputeAction {
    DisputeAction::Register {
        division: division(code),
        level: division(code).level(),
        category: DisputeCategory::Neighbourhood,
        risk: Risk::Green,
        summary: text("Two neighbours disagree over a boundary wall."),
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

fn dispatch(body: &str, mediator: Option<&str>) -> DisputeAction {
    DisputeAction::Dispatch {
        body: MediationBody {
            id: AgencyId::parse(body).unwrap(),
            name: name(&format!("{body} (name)")),
            kind: MediationKind::Peoples,
        },
        mediator: mediator.map(name),
    }
}

fn consent(party: PartyRole) -> DisputeAction {
    DisputeAction::RecordConsent {
        party,
        consents: true,
        reason: None,
    }
}

fn agree() -> DisputeAction {
    DisputeAction::ReachAgreement {
        form: AgreementForm::Oral,
        terms: text("The wall stays; the respondent repaints it."),
    }
}

fn terminate(reason: TerminationReason) -> DisputeAction {
    DisputeAction::TerminateMediation {
        reason,
        note: text("No agreement could be reached."),
        legal_routes_explained: true,
    }
}

fn review(approved: bool) -> DisputeAction {
    DisputeAction::Review {
        approved,
        note: None,
    }
}

/// Seven disputes in Donghu, all registered in March 2026:
///
/// - d1 at Liu'an: mediation fails, escalated to Donghu (day 4), agreed and
///   closed there on day 8, on time but above its intake level;
/// - d2 at Liu'an: agreed on day 3, closed on day 50 (21 April), late;
/// - d3 at Liu'an: the applicant withdraws (day 3), referred to court (day
///   4), closed on day 6;
/// - d4 at Hubin: agreed (day 4), the review returns it (day 5), dispatched
///   again to the same committee with another mediator (day 6); open;
/// - d5 at Liu'an: registered on day 9, not dispatched;
/// - d6 and d7 at Liu'an: dispatched to its committee on days 10 and 12
///   (d7 without a mediator); open.
fn disputes() -> Vec<Step> {
    use PartyRole::{Applicant, Respondent};
    let mut steps = Vec::new();
    for id in ["d1", "d2", "d3"] {
        steps.extend([
            d(1, id, register(VILLAGE)),
            d(2, id, dispatch(LIUAN_COMMITTEE, Some("Zhao Liu"))),
            d(2, id, consent(Applicant)),
            d(2, id, consent(Respondent)),
        ]);
    }
    steps.extend([
        d(2, "d4", register(HUBIN)),
        d(3, "d1", terminate(TerminationReason::NoAgreement)),
        d(3, "d2", agree()),
        d(3, "d3", terminate(TerminationReason::PartyWithdrew)),
        d(3, "d4", dispatch(HUBIN_COMMITTEE, Some("Qian Qi"))),
        d(3, "d4", consent(Applicant)),
        d(3, "d4", consent(Respondent)),
        d(
            4,
            "d1",
            DisputeAction::Escalate {
                reason: EscalationReason::MediationFailed,
            },
        ),
        d(4, "d2", review(true)),
        d(
            4,
            "d3",
            DisputeAction::ReferToLegalChannel {
                channel: LegalChannel::Litigation,
                note: text("The applicant will sue."),
            },
        ),
        d(4, "d4", agree()),
        d(5, "d1", dispatch(DONGHU_CENTRE, Some("Sun Ba"))),
        d(5, "d1", consent(Applicant)),
        d(5, "d1", consent(Respondent)),
        d(5, "d3", review(true)),
        d(5, "d4", review(false)),
        d(6, "d1", agree()),
        d(6, "d3", DisputeAction::Close {}),
        d(6, "d4", dispatch(HUBIN_COMMITTEE, Some("Zhou Jiu"))),
        d(7, "d1", review(true)),
        d(8, "d1", DisputeAction::Close {}),
        d(9, "d5", register(VILLAGE)),
        d(9, "d6", register(VILLAGE)),
        d(10, "d6", dispatch(LIUAN_COMMITTEE, Some("Zhao Liu"))),
        d(11, "d7", register(VILLAGE)),
        d(12, "d7", dispatch(LIUAN_COMMITTEE, None)),
        d(50, "d2", DisputeAction::Close {}),
    ]);
    // In time order; a stable sort keeps each case's steps in order.
    steps.sort_by_key(|s| s.day);
    steps
}

fn zhang_san(spelling: &str, contact: &str) -> Petitioner {
    Petitioner {
        name: name(spelling),
        contact: Some(name(contact)),
    }
}

const ROAD: &str = "The village road has not been repaired since the floods.";

fn receive(
    petitioner: Petitioner,
    unit: &str,
    facts: &str,
    code: &str,
    visited: Option<Level>,
) -> PetitionAction {
    PetitionAction::Receive {
        channel: if visited.is_some() {
            PetitionChannel::Visit
        } else {
            PetitionChannel::Online
        },
        matter_type: None,
        petitioner,
        complained_unit: Some(name(unit)),
        complained_unit_id: None,
        facts: text(facts),
        division: division(code),
        competent_level: Level::Village,
        visited_level: visited.map(Into::into),
        representatives: 1,
        repeat_of: None,
    }
}

/// Five petitions:
///
/// - p1 (day 1, Liu'an): Zhang San about the road, a visit to the district
///   that skips the town;
/// - p2 (day 10, Liu'an): Zhang San, spelt and numbered otherwise, on
///   another matter;
/// - p3 (day 20, Liu'an): Li Si, the same unit and the same road facts in
///   other spacing and punctuation, a visit to the town (no level skipped);
/// - p4 (day 45, Liu'an): Zhang San about the road again;
/// - p5 (day 12, Shangping, outside Donghu): Zhang San on a third matter.
fn petitions() -> Vec<Step> {
    vec![
        p(
            1,
            "p1",
            receive(
                zhang_san("Zhang San", "13800000000"),
                "Liu'an Village Committee",
                ROAD,
                VILLAGE,
                Some(Level::District),
            ),
        ),
        p(
            10,
            "p2",
            receive(
                zhang_san("zhang san", "+86 138 0000 0000"),
                "Donghu Transport Office",
                "The bus stop lights have been broken for months.",
                VILLAGE,
                None,
            ),
        ),
        p(
            12,
            "p5",
            receive(
                zhang_san("Zhang San", "138-0000-0000"),
                "Qingshan Quarry",
                "Blasting at the quarry goes on at night.",
                SHANGPING,
                None,
            ),
        ),
        p(
            20,
            "p3",
            receive(
                Petitioner {
                    name: name("Li Si"),
                    contact: None,
                },
                "Liu'an village committee",
                "the village road has NOT been repaired since the floods!!",
                VILLAGE,
                Some(Level::Town),
            ),
        ),
        p(
            45,
            "p4",
            receive(
                zhang_san("ZHANG SAN", "13800000000"),
                "Liu'an Village Committee",
                ROAD,
                VILLAGE,
                None,
            ),
        ),
    ]
}

/// Writes `steps` through the store, each at its day; returns the log
/// position of the last event written.
async fn play(store: &Store, steps: Vec<Step>) -> u64 {
    let clock = ManualClock::new(t0());
    let services = Services::shipped_defaults(Arc::new(clock.clone()));
    let disputes = Cases::<Dispute>::new(store, services.clone());
    let petitions = Cases::<Petition>::new(store, services);
    let mut last = 0;
    for Step { day: n, id, what } in steps {
        clock.set(day(n));
        let position = match what {
            What::Dispute(action) => {
                let step = action.name();
                let command = DisputeCommand {
                    by: officer(),
                    action,
                };
                disputes
                    .execute(id, command, HashMap::new())
                    .await
                    .unwrap_or_else(|e| panic!("{id} on day {n}, {step}: {e}"))
                    .position
            }
            What::Petition(action) => {
                let command = PetitionCommand {
                    by: officer(),
                    action,
                };
                petitions
                    .execute(id, command, HashMap::new())
                    .await
                    .unwrap_or_else(|e| panic!("{id} on day {n}: {e}"))
                    .position
            }
        };
        last = last.max(position.expect("every step writes an event"));
    }
    last
}

/// Runs `projection` until it has applied the log up to `position`. On
/// PostgreSQL a reader may not see a committed event at once while another
/// transaction on the server is older (see ARCHITECTURE.md), so an empty
/// batch is retried shortly rather than taken for the end.
async fn catch_up(store: &Store, projection: &dyn Projection, position: u64) {
    let started = Instant::now();
    while store.checkpoint(projection.name()).await.unwrap() < position {
        let applied = runner::run_once(store, projection, false, 500)
            .await
            .unwrap();
        if applied == 0 {
            assert!(
                started.elapsed() < StdDuration::from_secs(30),
                "{} did not reach position {position}",
                projection.name()
            );
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }
    // At the end of the log, another run applies nothing.
    assert_eq!(
        runner::run_once(store, projection, false, 500)
            .await
            .unwrap(),
        0
    );
}

async fn stats(
    store: &Store,
    subtree: &str,
    from: &str,
    to: &str,
    grouping: Grouping,
) -> Vec<StatsRow> {
    statistics::query(
        store,
        &division(subtree),
        month(from),
        month(to),
        None,
        grouping,
    )
    .await
    .unwrap()
}

/// A statistics row as division, level, month and counts.
type Keyed<'a> = (Option<&'a str>, Option<Level>, Option<String>, Counts);

/// The keys and counts of rows, for comparing whole results at once.
fn keyed(rows: &[StatsRow]) -> Vec<Keyed<'_>> {
    rows.iter()
        .map(|r| {
            (
                r.division.as_ref().map(DivisionCode::as_str),
                r.level,
                r.period.map(|p| p.to_string()),
                r.counts,
            )
        })
        .collect()
}

async fn statistics_count_a_small_scenario_exactly(db: &TestDb) {
    let store = &db.store;
    let last = play(store, disputes()).await;
    catch_up(store, &Statistics, last).await;

    let liuan_march = Counts {
        registered: 6,
        escalated_up: 1,
        agreements: 1,
        terminations: 2,
        referred: 1,
        closed: 1,
        closed_at_or_below_intake: 1,
        closed_on_time: 1,
        ..Counts::default()
    };
    // d2 closed by agreement where it arose; d3's referral is no
    // resolution at the lowest level, though it closed at its intake level.
    let liuan_april = Counts {
        closed: 1,
        closed_at_or_below_intake: 1,
        agreed_at_or_below_origin: 1,
        ..Counts::default()
    };
    let hubin_march = Counts {
        registered: 1,
        agreements: 1,
        ..Counts::default()
    };
    let donghu_march = Counts {
        moved_in: 1,
        agreements: 1,
        closed: 1,
        closed_on_time: 1,
        ..Counts::default()
    };
    let rows = stats(
        store,
        DISTRICT,
        "2026-01",
        "2026-12",
        Grouping::DivisionLevelPeriod,
    )
    .await;
    assert_eq!(
        keyed(&rows),
        vec![
            (
                Some(TOWN),
                Some(Level::Town),
                Some("2026-03".into()),
                donghu_march
            ),
            (
                Some(HUBIN),
                Some(Level::Village),
                Some("2026-03".into()),
                hubin_march
            ),
            (
                Some(VILLAGE),
                Some(Level::Village),
                Some("2026-03".into()),
                liuan_march
            ),
            (
                Some(VILLAGE),
                Some(Level::Village),
                Some("2026-04".into()),
                liuan_april
            ),
        ]
    );

    // Per level over the district and both months: the headline rates.
    let levels = stats(store, DISTRICT, "2026-03", "2026-04", Grouping::Level).await;
    assert_eq!(levels.len(), 2);
    // Up the ladder.
    let (village, town) = (&levels[0], &levels[1]);
    assert_eq!(village.level, Some(Level::Village));
    assert_eq!(village.counts.registered, 7);
    assert_eq!(village.counts.taken_in(), 7);
    assert_eq!(village.counts.mediations_concluded(), 4);
    // d2 and d3 closed where they were registered, but only d2 by
    // agreement; d3's withdrawal and d1's failure weigh against mediation;
    // d2 closed late.
    assert_eq!(village.rates.lowest_level_resolution, Some(0.5));
    assert_eq!(village.rates.mediation_success, Some(0.5));
    assert_eq!(village.rates.on_time, Some(0.5));
    assert_eq!(village.rates.escalation, Some(1.0 / 7.0));
    assert_eq!(town.level, Some(Level::Town));
    // d1 closed at the town, above its intake level, on time.
    assert_eq!(town.rates.lowest_level_resolution, Some(0.0));
    assert_eq!(town.rates.mediation_success, Some(1.0));
    assert_eq!(town.rates.on_time, Some(1.0));
    assert_eq!(town.rates.escalation, Some(0.0));

    // Everything together: rates of the sums, not means of the rates.
    let total = stats(store, DISTRICT, "2026-03", "2026-04", Grouping::Total).await;
    assert_eq!(total.len(), 1);
    let total = &total[0];
    assert_eq!(
        (total.division.as_ref(), total.level, total.period),
        (None, None, None)
    );
    assert_eq!(total.counts.closed, 3);
    assert_eq!(total.rates.lowest_level_resolution, Some(1.0 / 3.0));
    assert_eq!(total.rates.mediation_success, Some(3.0 / 5.0));
    assert_eq!(total.rates.on_time, Some(2.0 / 3.0));
    assert_eq!(total.rates.escalation, Some(1.0 / 8.0));

    // March alone: d2's late closure falls in April.
    let march = stats(store, DISTRICT, "2026-03", "2026-03", Grouping::LevelPeriod).await;
    assert_eq!(
        keyed(&march),
        vec![
            (
                None,
                Some(Level::Village),
                Some("2026-03".into()),
                Counts {
                    registered: 7,
                    agreements: 2,
                    ..liuan_march
                }
            ),
            (
                None,
                Some(Level::Town),
                Some("2026-03".into()),
                donghu_march
            ),
        ]
    );
    assert_eq!(march[0].rates.on_time, Some(1.0));

    // A subtree of one village; a month with nothing in it.
    let hubin = stats(
        store,
        HUBIN,
        "2026-03",
        "2026-04",
        Grouping::DivisionLevelPeriod,
    )
    .await;
    assert_eq!(
        keyed(&hubin),
        vec![(
            Some(HUBIN),
            Some(Level::Village),
            Some("2026-03".into()),
            hubin_march
        )]
    );
    assert_eq!(hubin[0].rates.mediation_success, Some(1.0));
    assert_eq!(hubin[0].rates.lowest_level_resolution, None);
    assert!(
        stats(store, DISTRICT, "2026-02", "2026-02", Grouping::Level)
            .await
            .is_empty()
    );
    let empty = stats(store, DISTRICT, "2026-02", "2026-02", Grouping::Total).await;
    assert_eq!(keyed(&empty), vec![(None, None, None, Counts::default())]);
    assert_eq!(empty[0].rates, statistics::Rates::default());
}

fn follow_up(performance: Performance) -> DisputeAction {
    DisputeAction::RecordFollowUp {
        performance,
        note: text("Visited both households."),
    }
}

fn evaluate(satisfaction: Satisfaction) -> DisputeAction {
    DisputeAction::Evaluate {
        satisfaction,
        note: None,
    }
}

/// Five disputes in Donghu, in March 2026 but for one follow-up:
///
/// - k1: reported in Liu'an (day 1) but registered at Donghu, agreed there
///   (day 3) and closed (day 5): at its intake level, above where it arose;
///   followed up partly performed (day 6), then performed on day 40 (in
///   April); evaluated satisfied;
/// - k2: at Liu'an, escalated in mid-mediation (day 3), agreed at Donghu
///   (day 5), closed (day 7); followed up not performed; basically
///   satisfied;
/// - k3: at Liu'an, taken over by Donghu while dispatched (day 3),
///   referred to court there (day 4), closed (day 6); dissatisfied;
/// - k4: agreed at Liu'an (day 3) and closed there (day 5); followed up
///   performed twice; satisfied;
/// - k5: reported in Liu'an on day 1, registered only on day 5, after the
///   grid report's one working day; dispatched, open.
fn kpi_disputes() -> Vec<Step> {
    use PartyRole::{Applicant, Respondent};
    let report = || DisputeAction::Report {
        division: division(VILLAGE),
        grid: Some(name("Grid 3")),
        summary: text("Two neighbours quarrel over a wall."),
    };
    let mediate = |n: i64, id: &'static str, body: &str| {
        [
            d(n, id, dispatch(body, Some("Zhao Liu"))),
            d(n, id, consent(Applicant)),
            d(n, id, consent(Respondent)),
        ]
    };
    let mut steps = vec![
        d(1, "k1", report()),
        d(1, "k1", register(TOWN)),
        d(1, "k2", register(VILLAGE)),
        d(1, "k3", register(VILLAGE)),
        d(1, "k4", register(VILLAGE)),
        d(1, "k5", report()),
        d(2, "k3", dispatch(LIUAN_COMMITTEE, None)),
    ];
    steps.extend(mediate(2, "k1", DONGHU_CENTRE));
    steps.extend(mediate(2, "k2", LIUAN_COMMITTEE));
    steps.extend(mediate(2, "k4", LIUAN_COMMITTEE));
    steps.extend([
        d(3, "k1", agree()),
        d(
            3,
            "k2",
            DisputeAction::Escalate {
                reason: EscalationReason::MediationFailed,
            },
        ),
        d(
            3,
            "k3",
            DisputeAction::TakeOver {
                division: division(TOWN),
            },
        ),
        d(3, "k4", agree()),
        d(4, "k1", review(true)),
        d(
            4,
            "k3",
            DisputeAction::ReferToLegalChannel {
                channel: LegalChannel::Litigation,
                note: text("The applicant will sue."),
            },
        ),
        d(4, "k4", review(true)),
        d(5, "k1", DisputeAction::Close {}),
        d(5, "k3", review(true)),
        d(5, "k4", DisputeAction::Close {}),
        d(5, "k5", register(VILLAGE)),
        d(5, "k5", dispatch(LIUAN_COMMITTEE, None)),
        d(6, "k1", follow_up(Performance::PartlyPerformed)),
        d(6, "k1", evaluate(Satisfaction::Satisfied)),
        d(6, "k3", DisputeAction::Close {}),
        d(6, "k4", follow_up(Performance::Performed)),
        d(6, "k4", evaluate(Satisfaction::Satisfied)),
        d(7, "k3", evaluate(Satisfaction::Dissatisfied)),
        d(7, "k4", follow_up(Performance::Performed)),
        d(40, "k1", follow_up(Performance::Performed)),
    ]);
    steps.extend(mediate(4, "k2", DONGHU_CENTRE));
    steps.extend([
        d(5, "k2", agree()),
        d(6, "k2", review(true)),
        d(7, "k2", DisputeAction::Close {}),
        d(8, "k2", follow_up(Performance::NotPerformed)),
        d(8, "k2", evaluate(Satisfaction::BasicallySatisfied)),
    ]);
    steps.sort_by_key(|s| s.day);
    steps
}

async fn dispute_rates_count_follow_ups_evaluations_and_moves_exactly(db: &TestDb) {
    let store = &db.store;
    let last = play(store, kpi_disputes()).await;
    catch_up(store, &Statistics, last).await;
    catch_up(store, &CaseIndex, last).await;

    // Counted by hand from kpi_disputes.
    let liuan = Counts {
        registered: 4,
        escalated_up: 1,
        taken_over: 1,
        // k2 in mediation, k3 dispatched: both ended by the move.
        mediations_moved: 2,
        agreements: 1,
        closed: 1,
        closed_at_or_below_intake: 1,
        closed_on_time: 1,
        agreed_at_or_below_origin: 1,
        agreements_followed_up: 1,
        agreements_performed: 1,
        evaluations: 1,
        satisfied: 1,
        ..Counts::default()
    };
    let donghu = Counts {
        registered: 1,
        moved_in: 2,
        agreements: 2,
        referred: 1,
        closed: 3,
        // k1 only: registered there.
        closed_at_or_below_intake: 1,
        closed_on_time: 3,
        // k1 and k2 arose in Liu'an; k3 was referred.
        agreed_at_or_below_origin: 0,
        // k1's and k2's agreements, both reached in March; k1's
        // performance was found in April but counts with its agreement.
        agreements_followed_up: 2,
        agreements_performed: 1,
        evaluations: 3,
        satisfied: 1,
        basically_satisfied: 1,
        ..Counts::default()
    };
    let rows = stats(
        store,
        DISTRICT,
        "2026-03",
        "2026-04",
        Grouping::DivisionLevelPeriod,
    )
    .await;
    assert_eq!(
        keyed(&rows),
        vec![
            (
                Some(TOWN),
                Some(Level::Town),
                Some("2026-03".into()),
                donghu
            ),
            (
                Some(VILLAGE),
                Some(Level::Village),
                Some("2026-03".into()),
                liuan
            ),
        ]
    );
    let (town, village) = (&rows[0].rates, &rows[1].rates);
    assert_eq!(village.lowest_level_resolution, Some(1.0));
    assert_eq!(village.mediation_success, Some(1.0 / 3.0));
    assert_eq!(village.agreement_performance, Some(1.0));
    assert_eq!(village.satisfaction, Some(1.0));
    assert_eq!(town.lowest_level_resolution, Some(0.0));
    assert_eq!(town.mediation_success, Some(1.0));
    assert_eq!(town.agreement_performance, Some(0.5));
    assert_eq!(town.satisfaction, Some(2.0 / 3.0));

    let total = &stats(store, DISTRICT, "2026-03", "2026-03", Grouping::Total).await[0];
    assert_eq!(total.counts, liuan + donghu);
    assert_eq!(total.rates.lowest_level_resolution, Some(1.0 / 4.0));
    assert_eq!(total.rates.mediation_success, Some(3.0 / 5.0));
    assert_eq!(total.rates.agreement_performance, Some(2.0 / 3.0));
    assert_eq!(total.rates.satisfaction, Some(3.0 / 4.0));

    // Each stage's clocks, from the SLA read model: k5's report waited
    // four days for its registration; every other clock stopped in time.
    // k5's running handling and mediation clocks have no outcome yet.
    let outcome = |stage, met, breached| StageOutcome {
        stage,
        met,
        breached,
    };
    let stages = statistics::dispute_stage_outcomes(
        store,
        &division(DISTRICT),
        month("2026-03"),
        month("2026-04"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        stages,
        vec![
            outcome(Stage::GridReport, 1, 1),
            outcome(Stage::VillageHandling, 3, 0),
            outcome(Stage::TownHandling, 3, 0),
            outcome(Stage::Mediation, 5, 0),
        ]
    );
    assert_eq!(stages[0].on_time(), Some(0.5));
    assert!(
        statistics::dispute_stage_outcomes(
            store,
            &division(HUBIN),
            month("2026-03"),
            month("2026-04"),
            None
        )
        .await
        .unwrap()
        .is_empty()
    );
}

/// The figures as they stood at the end of a day (+08:00): what had
/// happened by then, follow-ups included in the month of their agreement
/// but only from the day they came. Day 0 is 2 March 2026, 10:00 in
/// Beijing, so day `n` falls on 2 March + `n`.
async fn statistics_as_of_a_day_count_what_had_happened_by_its_end(db: &TestDb) {
    let store = &db.store;
    let last = play(store, kpi_disputes()).await;
    let last = last.max(play(store, petitions()).await);
    catch_up(store, &Statistics, last).await;
    catch_up(store, &PetitionStatistics, last).await;
    catch_up(store, &CaseIndex, last).await;
    let day = |s: &str| Some(s.parse::<chrono::NaiveDate>().unwrap());
    let town = division(TOWN);
    let (march, april) = (month("2026-03"), month("2026-04"));
    let at = |as_of| {
        statistics::query(
            store,
            &town,
            march,
            april,
            as_of,
            Grouping::DivisionLevelPeriod,
        )
    };
    let today = at(None).await.unwrap();
    // k1's agreement was found performed on day 40, 11 April: counted in
    // March, its agreement's month, from the 11th on.
    let performed =
        |rows: &[StatsRow]| -> u64 { rows.iter().map(|r| r.counts.agreements_performed).sum() };
    assert_eq!(performed(&today), 2);
    let before = at(day("2026-04-10")).await.unwrap();
    assert_eq!(performed(&before), 1);
    let unchanged = |rows: &[StatsRow]| -> Vec<(Option<Period>, u64, u64)> {
        rows.iter()
            .map(|r| (r.period, r.counts.registered, r.counts.closed))
            .collect()
    };
    assert_eq!(unchanged(&before), unchanged(&today));
    assert_eq!(at(day("2026-04-11")).await.unwrap(), today);
    // At the end of day 1 (3 March) only the four registrations had come.
    let first = statistics::query(
        store,
        &town,
        march,
        april,
        day("2026-03-03"),
        Grouping::Total,
    )
    .await
    .unwrap();
    assert_eq!(
        first[0].counts,
        Counts {
            registered: 4,
            ..Counts::default()
        }
    );
    // Before anything, the total row is there, all zeros, and no clock of
    // any stage has come out.
    let none = statistics::query(
        store,
        &town,
        march,
        april,
        day("2026-03-01"),
        Grouping::Total,
    )
    .await
    .unwrap();
    assert_eq!(none[0].counts, Counts::default());
    let stages = |as_of| statistics::dispute_stage_outcomes(store, &town, march, april, as_of);
    assert!(stages(day("2026-03-01")).await.unwrap().is_empty());
    assert_eq!(
        stages(day("2026-12-31")).await.unwrap(),
        stages(None).await.unwrap()
    );

    // Petitions: p1 (day 1), p2 (day 10) and p5 (day 12, Shangping) had
    // come by the end of 14 March; p3 (day 20) and p4 (day 45) had not.
    let received = |as_of| async move {
        petition_statistics::query(
            store,
            &division(DISTRICT),
            march,
            april,
            as_of,
            Grouping::Total,
        )
        .await
        .unwrap()[0]
            .counts
            .received
    };
    assert_eq!(received(day("2026-03-14")).await, 3);
    assert_eq!(received(None).await, 5);
}

/// Six petitions at Liu'an, all received on day 1 (3 March 2026; triage
/// due by the end of 18 March, Art 22):
///
/// - q1: forwarded (day 2), accepted (day 3), answered (day 10), evaluated
///   satisfied (day 11), reviewed on request (days 12 to 20);
/// - q2: assigned late (day 20, 22 March), accepted (day 21), answered
///   late (day 90, 31 May; due by 22 May), evaluated dissatisfied;
/// - q3: not accepted in time (day 5);
/// - q4: forwarded (day 2) but accepted after its notice period (day 25,
///   27 March; due by 19 March, Art 23), answered (day 30, 1 April),
///   evaluated basically satisfied (day 31);
/// - q5: diverted a day late (day 17, 19 March);
/// - q6: awaiting triage.
fn kpi_petitions() -> Vec<Step> {
    let unit = || name("Donghu Roads Office");
    let answer = || PetitionAction::IssueOpinion {
        outcome: OpinionOutcome::Support,
        summary: text("The road will be repaired in the spring."),
    };
    let evaluate = |satisfaction| PetitionAction::Evaluate {
        satisfaction,
        note: None,
    };
    let mut steps: Vec<Step> = ["q1", "q2", "q3", "q4", "q5", "q6"]
        .into_iter()
        .map(|id| {
            p(
                1,
                id,
                receive(
                    zhang_san("Zhang San", "13800000000"),
                    "Liu'an Village Committee",
                    ROAD,
                    VILLAGE,
                    None,
                ),
            )
        })
        .collect();
    steps.extend([
        p(2, "q1", PetitionAction::Forward { to_unit: unit() }),
        p(2, "q4", PetitionAction::Forward { to_unit: unit() }),
        p(3, "q1", PetitionAction::Accept {}),
        p(
            5,
            "q3",
            PetitionAction::NotAccept {
                reason: text("A court has ruled on the matter."),
                repeats_final: None,
            },
        ),
        p(10, "q1", answer()),
        p(11, "q1", evaluate(Satisfaction::Satisfied)),
        p(
            12,
            "q1",
            PetitionAction::RequestReview {
                reason: text("Spring is too late."),
            },
        ),
        p(
            17,
            "q5",
            PetitionAction::Divert {
                channel: LegalChannel::Litigation,
                note: text("A matter for the courts."),
            },
        ),
        p(
            20,
            "q1",
            PetitionAction::IssueReviewOpinion {
                outcome: OpinionOutcome::Explain,
                decision: None,
                summary: text("The budget allows no earlier repair."),
            },
        ),
        p(
            20,
            "q2",
            PetitionAction::Assign {
                to_unit: unit(),
                report_within_days: 90,
            },
        ),
        p(21, "q2", PetitionAction::Accept {}),
        p(25, "q4", PetitionAction::Accept {}),
        p(30, "q4", answer()),
        p(31, "q4", evaluate(Satisfaction::BasicallySatisfied)),
        p(90, "q2", answer()),
        p(90, "q2", evaluate(Satisfaction::Dissatisfied)),
    ]);
    steps.sort_by_key(|s| s.day);
    steps
}

/// A petition statistics row as division, level, month and counts.
type PetitionKeyed<'a> = (
    Option<&'a str>,
    Option<Level>,
    Option<String>,
    PetitionCounts,
);

async fn petition_stats(
    store: &Store,
    subtree: &str,
    from: &str,
    to: &str,
    grouping: Grouping,
) -> Vec<PetitionStatsRow> {
    petition_statistics::query(
        store,
        &division(subtree),
        month(from),
        month(to),
        None,
        grouping,
    )
    .await
    .unwrap()
}

async fn petition_statistics_count_the_three_rates_exactly(db: &TestDb) {
    let store = &db.store;
    let last = play(store, kpi_petitions()).await;
    catch_up(store, &PetitionStatistics, last).await;
    catch_up(store, &CaseIndex, last).await;

    let rows = petition_stats(
        store,
        DISTRICT,
        "2026-01",
        "2026-12",
        Grouping::DivisionLevelPeriod,
    )
    .await;
    let keyed: Vec<PetitionKeyed<'_>> = rows
        .iter()
        .map(|r| {
            (
                r.division.as_ref().map(DivisionCode::as_str),
                r.level,
                r.period.map(|p| p.to_string()),
                r.counts,
            )
        })
        .collect();
    // Counted by hand from kpi_petitions.
    let march = PetitionCounts {
        received: 6,
        // q1, q3 in time; q5 and q2 triaged late; q4's notice late.
        acceptance_decided: 5,
        acceptance_in_time: 2,
        opinions: 1,
        opinions_on_time: 1,
        review_opinions: 1,
        review_opinions_on_time: 1,
        evaluations: 1,
        satisfied: 1,
        ..PetitionCounts::default()
    };
    let april = PetitionCounts {
        opinions: 1,
        opinions_on_time: 1,
        evaluations: 1,
        basically_satisfied: 1,
        ..PetitionCounts::default()
    };
    let may = PetitionCounts {
        opinions: 1,
        evaluations: 1,
        ..PetitionCounts::default()
    };
    let row = |period: &str, counts| {
        (
            Some(VILLAGE),
            Some(Level::Village),
            Some(period.to_owned()),
            counts,
        )
    };
    assert_eq!(
        keyed,
        vec![
            row("2026-03", march),
            row("2026-04", april),
            row("2026-05", may)
        ]
    );
    assert_eq!(rows[0].rates.timely_acceptance, Some(0.4));
    assert_eq!(rows[0].rates.handled_on_time, Some(1.0));
    assert_eq!(rows[0].rates.satisfaction, Some(1.0));
    assert_eq!(rows[2].rates.handled_on_time, Some(0.0));
    assert_eq!(rows[2].rates.satisfaction, Some(0.0));

    // Over the three months: the three rates of the sums.
    let total = &petition_stats(store, TOWN, "2026-03", "2026-05", Grouping::Total).await[0];
    assert_eq!(total.counts, march + april + may);
    assert_eq!(total.rates.timely_acceptance, Some(2.0 / 5.0));
    assert_eq!(total.rates.handled_on_time, Some(2.0 / 3.0));
    assert_eq!(total.rates.satisfaction, Some(2.0 / 3.0));
    assert_eq!(total.rates.review_on_time, Some(1.0));
    // Shangping is outside Donghu: nothing there.
    let elsewhere =
        &petition_stats(store, SHANGPING, "2026-03", "2026-05", Grouping::Total).await[0];
    assert_eq!(elsewhere.counts, PetitionCounts::default());

    // Each stage's clocks: a late triage (q2, q5) or notice (q4) stopped
    // late; q2's opinion too. q6's triage is past due but has no breach
    // recorded (no timer ran), so it has no outcome yet.
    let outcome = |stage, met, breached| StageOutcome {
        stage,
        met,
        breached,
    };
    assert_eq!(
        petition_statistics::stage_outcomes(
            store,
            &division(TOWN),
            month("2026-03"),
            month("2026-05"),
            None
        )
        .await
        .unwrap(),
        vec![
            outcome(Stage::PetitionTriage, 3, 2),
            outcome(Stage::PetitionAcceptanceNotice, 2, 1),
            outcome(Stage::PetitionOpinion, 2, 1),
            outcome(Stage::Review, 1, 0),
            outcome(Stage::AssignedReport, 1, 0),
        ]
    );
}

/// An open case as id, division, body, mediator and opening instant.
type Holder<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    DateTime<Utc>,
);

fn holders(cases: &[OpenCase]) -> Vec<Holder<'_>> {
    cases
        .iter()
        .map(|c| {
            (
                c.case_id.as_str(),
                c.division.as_str(),
                c.body_id.as_deref(),
                c.mediator.as_deref(),
                c.opened_at,
            )
        })
        .collect()
}

fn load(
    body: Option<&str>,
    mediator: Option<&str>,
    open: u64,
    oldest: DateTime<Utc>,
    now: DateTime<Utc>,
    average_age: Duration,
) -> Load {
    Load {
        body_id: body.map(str::to_owned),
        body_name: body.map(|b| format!("{b} (name)")),
        mediator: mediator.map(str::to_owned),
        open,
        oldest_opened_at: oldest,
        oldest_age: now - oldest,
        average_age,
    }
}

async fn caseload_follows_each_case_from_holder_to_holder(db: &TestDb) {
    let store = &db.store;
    let mut steps = disputes();
    let later = steps.split_off(steps.iter().position(|s| s.day > 4).unwrap());
    let donghu = division(TOWN);

    // End of day 4: d1 has gone up to the town and waits for dispatch
    // there; d3 was referred to court and left; d2 (reviewed) and d4
    // (agreed) are still with their committees.
    let last = play(store, steps).await;
    catch_up(store, &Caseload, last).await;
    let open = caseload::open_cases(store, &donghu).await.unwrap();
    assert_eq!(
        holders(&open),
        vec![
            (
                "d2",
                VILLAGE,
                Some(LIUAN_COMMITTEE),
                Some("Zhao Liu"),
                day(2)
            ),
            ("d4", HUBIN, Some(HUBIN_COMMITTEE), Some("Qian Qi"), day(3)),
            ("d1", TOWN, None, None, day(4)),
        ]
    );
    assert_eq!(open[2].level, Level::Town);
    let now = day(5);
    assert_eq!(
        caseload::per_body(store, &donghu, now).await.unwrap(),
        vec![
            load(None, None, 1, day(4), now, Duration::days(1)),
            load(
                Some(HUBIN_COMMITTEE),
                None,
                1,
                day(3),
                now,
                Duration::days(2)
            ),
            load(
                Some(LIUAN_COMMITTEE),
                None,
                1,
                day(2),
                now,
                Duration::days(3)
            ),
        ]
    );

    // The rest: d1 and d2 close; d4 goes back to its own committee under
    // another mediator, its age running on; d5 waits; d6 and d7 are
    // dispatched to Liu'an's committee.
    let last = play(store, later).await;
    catch_up(store, &Caseload, last).await;
    let open = caseload::open_cases(store, &donghu).await.unwrap();
    assert_eq!(
        holders(&open),
        vec![
            ("d4", HUBIN, Some(HUBIN_COMMITTEE), Some("Zhou Jiu"), day(3)),
            ("d5", VILLAGE, None, None, day(9)),
            (
                "d6",
                VILLAGE,
                Some(LIUAN_COMMITTEE),
                Some("Zhao Liu"),
                day(10)
            ),
            ("d7", VILLAGE, Some(LIUAN_COMMITTEE), None, day(12)),
        ]
    );
    let now = day(60);
    assert_eq!(
        caseload::per_body(store, &donghu, now).await.unwrap(),
        vec![
            load(None, None, 1, day(9), now, Duration::days(51)),
            load(
                Some(HUBIN_COMMITTEE),
                None,
                1,
                day(3),
                now,
                Duration::days(57)
            ),
            // Opened on days 10 and 12: 50 and 48 days old.
            load(
                Some(LIUAN_COMMITTEE),
                None,
                2,
                day(10),
                now,
                Duration::days(49)
            ),
        ]
    );
    assert_eq!(
        caseload::per_mediator(store, &donghu, now).await.unwrap(),
        vec![
            load(None, None, 1, day(9), now, Duration::days(51)),
            load(
                Some(HUBIN_COMMITTEE),
                Some("Zhou Jiu"),
                1,
                day(3),
                now,
                Duration::days(57)
            ),
            load(
                Some(LIUAN_COMMITTEE),
                None,
                1,
                day(12),
                now,
                Duration::days(48)
            ),
            load(
                Some(LIUAN_COMMITTEE),
                Some("Zhao Liu"),
                1,
                day(10),
                now,
                Duration::days(50)
            ),
        ]
    );
    // A subtree holds only its own divisions' cases.
    let hubin = caseload::open_cases(store, &division(HUBIN)).await.unwrap();
    assert_eq!(holders(&hubin).len(), 1);
    assert_eq!(hubin[0].case_id, "d4");
    assert!(
        caseload::per_body(store, &division("990101102000"), now)
            .await
            .unwrap()
            .is_empty()
    );
}

fn history() -> PetitionerHistory {
    PetitionerHistory::new(PetitionerSecret::development())
}

fn pairs(repeats: &[Repeat]) -> Vec<(&str, &str, RepeatBasis)> {
    repeats
        .iter()
        .map(|r| (r.earlier.as_str(), r.later.as_str(), r.basis))
        .collect()
}

async fn petitioner_history_finds_repeats_and_skipped_levels(db: &TestDb) {
    use RepeatBasis::{Both, SamePetitioner, SameUnitAndFacts};
    let store = &db.store;
    let last = play(store, petitions()).await;
    catch_up(store, &history(), last).await;
    let donghu = division(TOWN);
    let all = day(0)..day(100);

    // Within 30 days: p2 is Zhang San again; p3 is the road again from
    // someone else; p4 is the road again 25 days after p3, but Zhang San
    // 35 days after p2 and 44 after p1.
    let found = petitioners::repeats(store, &donghu, all.clone(), 30, None)
        .await
        .unwrap();
    assert_eq!(
        pairs(&found),
        vec![
            ("p1", "p2", SamePetitioner),
            ("p1", "p3", SameUnitAndFacts),
            ("p3", "p4", SameUnitAndFacts),
        ]
    );
    assert_eq!(found[0].earlier_received_at, day(1));
    assert_eq!(found[0].later_received_at, day(10));
    // A board asks for the newest only: the latest repeats, in order.
    let newest = petitioners::repeats(store, &donghu, all.clone(), 30, Some(2))
        .await
        .unwrap();
    assert_eq!(pairs(&newest), pairs(&found)[1..].to_vec());
    // However few are asked for, over any window and subtree, they are the
    // newest of all (the search pages through the repeating petitions,
    // some of which have no earlier one in the window or the subtree).
    for subtree in [donghu.clone(), division(DISTRICT), division(HUBIN)] {
        for window in [1, 10, 30, 43, 44, 90] {
            let every = petitioners::repeats(store, &subtree, all.clone(), window, None)
                .await
                .unwrap();
            for n in 1..=6u32 {
                let newest = petitioners::repeats(store, &subtree, all.clone(), window, Some(n))
                    .await
                    .unwrap();
                let tail = every.len().saturating_sub(n as usize);
                assert_eq!(
                    pairs(&newest),
                    pairs(&every)[tail..].to_vec(),
                    "{subtree} within {window} days, newest {n}"
                );
            }
        }
    }

    // A window of 44 days reaches p1 from p4 exactly.
    let found = petitioners::repeats(store, &donghu, all.clone(), 44, None)
        .await
        .unwrap();
    assert_eq!(
        pairs(&found),
        vec![
            ("p1", "p2", SamePetitioner),
            ("p1", "p3", SameUnitAndFacts),
            ("p1", "p4", Both),
            ("p2", "p4", SamePetitioner),
            ("p3", "p4", SameUnitAndFacts),
        ]
    );
    let found = petitioners::repeats(store, &donghu, all.clone(), 43, None)
        .await
        .unwrap();
    assert!(!pairs(&found).contains(&("p1", "p4", Both)));

    // The district sees p5, in Qingshan, too; a period counts the later
    // petition's receipt, and the earlier may precede it.
    let found = petitioners::repeats(store, &division(DISTRICT), all.clone(), 30, None)
        .await
        .unwrap();
    assert_eq!(
        pairs(&found),
        vec![
            ("p1", "p2", SamePetitioner),
            ("p1", "p5", SamePetitioner),
            ("p2", "p5", SamePetitioner),
            ("p1", "p3", SameUnitAndFacts),
            ("p3", "p4", SameUnitAndFacts),
        ]
    );
    let found = petitioners::repeats(store, &donghu, day(15)..day(100), 30, None)
        .await
        .unwrap();
    assert_eq!(
        pairs(&found),
        vec![
            ("p1", "p3", SameUnitAndFacts),
            ("p3", "p4", SameUnitAndFacts)
        ]
    );

    // Only p1 skipped a level (district visited, village competent); p3's
    // visit to the town, directly above, did not.
    let skipped = petitioners::skipped_level_visits(store, &donghu, all.clone(), None)
        .await
        .unwrap();
    let newest = petitioners::skipped_level_visits(store, &donghu, all.clone(), Some(1))
        .await
        .unwrap();
    assert_eq!(newest, skipped);
    let zhang = zhang_san("Zhang San", "13800000000");
    assert_eq!(
        skipped,
        vec![PetitionRecord {
            case_id: "p1".into(),
            petitioner_key: petitioners::petitioner_key(&PetitionerSecret::development(), &zhang),
            complained_unit: Some("liuanvillagecommittee".into()),
            facts_hash: petitioners::facts_hash(&text(ROAD)),
            division: division(VILLAGE),
            received_at: day(1),
            channel: PetitionChannel::Visit,
            competent_level: Level::Village,
            visited_level: Some(PetitionLevel::District),
            skipped_level: true,
            repeat_of: None,
        }]
    );
    assert!(
        petitioners::skipped_level_visits(store, &donghu, day(2)..day(100), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        petitioners::skipped_level_visits(store, &division(SHANGPING), all, None)
            .await
            .unwrap()
            .is_empty()
    );

    // The petitioner is stored only as a hash: no name anywhere in the table.
    let names = match store.backend() {
        Backend::Postgres(pool) => sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM petitioner_history \
             WHERE concat_ws(' ', petitioner_key, complained_unit, facts_hash) ILIKE '%zhang%'",
        )
        .fetch_one(pool)
        .await
        .unwrap(),
        Backend::Sqlite(pool) => sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM petitioner_history \
             WHERE petitioner_key || coalesce(complained_unit, '') || facts_hash LIKE '%zhang%'",
        )
        .fetch_one(pool)
        .await
        .unwrap(),
    };
    assert_eq!(names, 0);

    // For a registrar about to receive the road again from Zhang San on
    // day 50: p4 (both), and p3 from exactly 30 days before; not p1 or p2.
    let candidates = petitioners::candidates(
        store,
        &PetitionerSecret::development(),
        &donghu,
        &zhang_san("Zhang San", "138 0000 0000"),
        Some(&name("Liu'an Village Committee")),
        &text(ROAD),
        day(50),
        30,
        10,
    )
    .await
    .unwrap();
    assert_eq!(
        candidates
            .iter()
            .map(|(r, basis)| (r.case_id.as_str(), *basis))
            .collect::<Vec<_>>(),
        vec![("p4", Both), ("p3", SameUnitAndFacts)]
    );
}

async fn the_checkpoint_keeps_events_from_being_applied_twice(db: &TestDb) {
    let store = &db.store;
    let last = play(store, disputes()).await;
    catch_up(store, &Statistics, last).await;
    let checkpoint = store.checkpoint(statistics::NAME).await.unwrap();
    assert!(checkpoint >= last);
    let before = stats(store, DISTRICT, "2026-01", "2026-12", Grouping::Total).await;
    assert_eq!(before[0].counts.registered, 7);

    // A second runner that read the same events from position 0 applies
    // them within its batch, but cannot commit: the checkpoint has moved.
    let events = store.read_log(0, 10_000).await.unwrap();
    let to = events.last().unwrap().position;
    let mut batch = store.begin_batch(statistics::NAME, 0, false).await.unwrap();
    Statistics.apply(&mut batch, &events).await.unwrap();
    assert!(!batch.commit(to).await.unwrap());
    assert_eq!(
        store.checkpoint(statistics::NAME).await.unwrap(),
        checkpoint
    );
    assert_eq!(
        stats(store, DISTRICT, "2026-01", "2026-12", Grouping::Total).await,
        before
    );
    // And the runner itself finds nothing more to apply.
    assert_eq!(
        runner::run_once(store, &Statistics, false, 500)
            .await
            .unwrap(),
        0
    );
}

async fn count_rows(store: &Store, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    match store.backend() {
        Backend::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        Backend::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
    }
}

async fn a_batch_dropped_without_commit_writes_nothing(db: &TestDb) {
    let store = &db.store;
    let mut steps = disputes();
    steps.extend(petitions());
    let last = play(store, steps).await;
    // Every event written, once readable (on PostgreSQL a reader may wait
    // for older transactions elsewhere on the server to end).
    let started = Instant::now();
    let events = loop {
        let events = store.read_log(0, 10_000).await.unwrap();
        if events.last().is_some_and(|e| e.position >= last) {
            break events;
        }
        assert!(started.elapsed() < StdDuration::from_secs(30));
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    };
    let history = history();
    let projections: [&dyn Projection; 4] = [&Statistics, &Caseload, &history, &PetitionStatistics];
    for projection in projections {
        // Everything is applied inside the transaction, then it is dropped
        // as a failure midway would drop it.
        let mut batch = store
            .begin_batch(projection.name(), 0, false)
            .await
            .unwrap();
        projection.apply(&mut batch, &events).await.unwrap();
        drop(batch);
        for table in projection.tables() {
            assert_eq!(count_rows(store, table).await, 0, "{table}");
        }
        assert_eq!(store.checkpoint(projection.name()).await.unwrap(), 0);
    }
    let donghu = division(TOWN);
    assert!(
        caseload::open_cases(store, &donghu)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        petitioners::skipped_level_visits(store, &donghu, day(0)..day(100), None)
            .await
            .unwrap()
            .is_empty()
    );

    // Committed, the same events fill every table.
    for projection in projections {
        catch_up(store, projection, last).await;
        for table in projection.tables() {
            assert!(count_rows(store, table).await > 0, "{table}");
        }
    }
    assert_eq!(count_rows(store, "caseload").await, 4);
    assert_eq!(count_rows(store, "petitioner_history").await, 5);
    assert_eq!(count_rows(store, "statistics_cases").await, 7);
    assert_eq!(count_rows(store, "petition_statistics_cases").await, 5);
}
