//! Given / when / then tests of re-timing a petition's provisional
//! deadlines once the year they run into is loaded. Histories are made by
//! the aggregate itself, on a server without a 2027 schedule; the 2027
//! loaded afterwards is a fictional test calendar
//! (`recompute::test_services`: 1 and 4 January off), not the official one.

use super::*;
use crate::recompute::{RecomputedDeadline, test_services};

/// The command handled at `now` by a server without (`false`) or with
/// (`true`) the fictional 2027.
fn on(
    now: &str,
    with_2027: bool,
    history: &[PetitionEvent],
    action: PetitionAction,
) -> Vec<PetitionEvent> {
    TestFramework::<Petition>::with(test_services(at(now), with_2027))
        .given(history.to_vec())
        .when(cmd(action))
        .inspect_result()
        .unwrap_or_else(|e| panic!("at {now}: {e}"))
}

/// Runs each `(when, action)` on a server without 2027, in order.
fn history(steps: Vec<(&str, PetitionAction)>) -> Vec<PetitionEvent> {
    let mut history = Vec::new();
    for (now, action) in steps {
        let events = on(now, false, &history, action);
        history.extend(events);
    }
    history
}

fn recompute_at(now: &str, history: &[PetitionEvent]) -> Vec<PetitionEvent> {
    on(now, true, history, A::RecomputeDeadlines {})
}

fn letter() -> PetitionAction {
    receive(PetitionChannel::Letter, None, 1)
}

fn forward() -> PetitionAction {
    A::Forward { to_unit: unit() }
}

/// The one `DeadlinesRecomputed` of `events`, which must be all they hold.
fn recomputed(events: &[PetitionEvent]) -> Vec<RecomputedDeadline> {
    match events {
        [
            PetitionEvent {
                change: C::DeadlinesRecomputed { deadlines },
                ..
            },
        ] => deadlines.clone(),
        other => panic!("expected one DeadlinesRecomputed, got {other:?}"),
    }
}

fn moved(stage: Stage, old: &str, new: &str) -> RecomputedDeadline {
    let new_due = at(&format!("{new}T16:00:00Z"));
    RecomputedDeadline {
        stage,
        old_due: at(&format!("{old}T16:00:00Z")),
        new_due,
        last_day: day(new),
        provisional: false,
    }
}

#[test]
fn a_provisional_triage_deadline_is_re_timed() {
    // Received Sunday 20 December 2026: 15 days end on Monday 4 January,
    // a working day by guess, a day off in the loaded year.
    let history = history(vec![("2026-12-20T02:00:00Z", letter())]);
    let before = replay(history.clone()).triage_due().unwrap();
    assert!(before.provisional);
    let events = recompute_at("2026-12-21T02:00:00Z", &history);
    assert_eq!(
        recomputed(&events),
        vec![moved(Stage::PetitionTriage, "2027-01-04", "2027-01-05")]
    );
    // Applied, the clock runs to the new time, no longer provisional.
    let mut all = history;
    all.extend(events);
    let petition = replay(all.clone());
    let clock = &petition.running_clocks()[0];
    assert_eq!(clock.deadline.due, at("2027-01-05T16:00:00Z"));
    assert!(!clock.deadline.provisional);
    // And a second command finds nothing to do.
    assert!(recompute_at("2026-12-22T02:00:00Z", &all).is_empty());
}

#[test]
fn nothing_is_written_while_the_year_is_still_unpublished() {
    let history = history(vec![("2026-12-20T02:00:00Z", letter())]);
    assert!(
        on(
            "2026-12-21T02:00:00Z",
            false,
            &history,
            A::RecomputeDeadlines {}
        )
        .is_empty()
    );
}

#[test]
fn an_extended_opinion_deadline_is_counted_again_with_its_extension() {
    // Accepted Monday 2 November 2026: 60 days end on Friday 1 January
    // 2027; the 3 days of extension then reach Monday 4 January.
    let history = history(vec![
        ("2026-11-01T02:00:00Z", letter()),
        ("2026-11-01T03:00:00Z", forward()),
        ("2026-11-02T02:00:00Z", A::Accept {}),
        (
            "2026-11-10T02:00:00Z",
            A::ExtendHandling {
                days: 3,
                reason: text("The site visit waits for the owner."),
                approved_by: name("王局长"),
            },
        ),
    ]);
    let before = replay(history.clone()).opinion_due().unwrap();
    assert_eq!(before.last_day, day("2027-01-04"));
    assert!(before.provisional);
    // Loaded: 1 January is off, so the 60 days end on Tuesday 5 January,
    // and the extension's 3 days on Friday 8.
    assert_eq!(
        recomputed(&recompute_at("2026-11-11T02:00:00Z", &history)),
        vec![moved(Stage::PetitionOpinion, "2027-01-04", "2027-01-08")]
    );
}

#[test]
fn the_objection_window_is_re_timed_with_the_notice_clock() {
    // Forwarded Monday 28 December 2026: five working days end on
    // 4 January by guess; the notice's 15 days on Tuesday 12 January.
    let history = history(vec![
        ("2026-12-28T02:00:00Z", letter()),
        ("2026-12-28T03:00:00Z", forward()),
    ]);
    let events = recompute_at("2026-12-29T02:00:00Z", &history);
    let notice = replay(history.clone()).notice_due().unwrap();
    assert_eq!(
        recomputed(&events),
        vec![
            // The notice keeps its day and is no longer provisional.
            RecomputedDeadline {
                stage: Stage::PetitionAcceptanceNotice,
                old_due: notice.due,
                new_due: notice.due,
                last_day: notice.last_day,
                provisional: false,
            },
            moved(Stage::PetitionObjection, "2027-01-04", "2027-01-06"),
        ]
    );
    // On 5 January the guessed window had closed; the true one is open.
    let mut all = history;
    all.extend(events);
    let objection = on(
        "2027-01-05T03:00:00Z",
        true,
        &all,
        A::Object {
            reason: text("The matter belongs to the housing bureau."),
        },
    );
    assert!(matches!(
        objection.as_slice(),
        [PetitionEvent {
            change: C::PetitionObjected { .. },
            ..
        }]
    ));
}

#[test]
fn the_review_request_window_is_counted_again_from_the_delivery() {
    let history = history(vec![
        ("2026-11-01T02:00:00Z", letter()),
        ("2026-11-01T03:00:00Z", forward()),
        ("2026-11-02T02:00:00Z", A::Accept {}),
        (
            "2026-12-04T02:00:00Z",
            A::IssueOpinion {
                outcome: OpinionOutcome::Explain,
                summary: text("The stalls will move to the market square."),
            },
        ),
        // Received on Saturday 5 December: 30 days end on 4 January.
        (
            "2026-12-06T02:00:00Z",
            deliver(Reply::Opinion, "2026-12-05", DeliveryMethod::Post),
        ),
    ]);
    assert_eq!(
        recomputed(&recompute_at("2026-12-07T02:00:00Z", &history)),
        vec![moved(Stage::ReviewRequest, "2027-01-04", "2027-01-05")]
    );
}

#[test]
fn an_assignment_stored_without_its_report_length_is_counted_from_its_span() {
    let history = history(vec![
        ("2026-12-28T02:00:00Z", letter()),
        (
            "2026-12-28T03:00:00Z",
            A::Assign {
                to_unit: unit(),
                report_within_days: 7,
            },
        ),
    ]);
    // The same history as stored before the length was kept.
    let history: Vec<PetitionEvent> = history
        .into_iter()
        .map(|event| {
            let mut stored = serde_json::to_value(&event).unwrap();
            if let Some(assigned) = stored["change"].get_mut("PetitionAssigned") {
                assigned
                    .as_object_mut()
                    .unwrap()
                    .remove("report_within_days");
            }
            serde_json::from_value(stored).unwrap()
        })
        .collect();
    assert!(matches!(
        history[1].change,
        C::PetitionAssigned {
            report_within_days: None,
            ..
        }
    ));
    // Seven days to Monday 4 January, off in the loaded year: Tuesday 5.
    let changes = recomputed(&recompute_at("2026-12-29T02:00:00Z", &history));
    assert!(
        changes.contains(&moved(Stage::AssignedReport, "2027-01-04", "2027-01-05")),
        "{changes:?}"
    );
}
