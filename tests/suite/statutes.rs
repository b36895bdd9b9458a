//! The rules of 信访工作条例 (2022) as the read models must show them,
//! through the real store and the case projection on each backend: a
//! breached clock stays breached whatever re-times it after (Art 44–46),
//! and the review window starts from the reply's delivery (Art 35).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use mediation_domain::petition::{
    DeliveryMethod, OpinionOutcome, Petition, PetitionAction, PetitionCommand, PetitionStatus,
    Petitioner, Reply,
};
use mediation_domain::policy::Stage;
use mediation_domain::services::{ManualClock, Services};
use mediation_domain::values::{Actor, DivisionCode, Level, Name, PetitionChannel, Text};
use mediation_projections::case_index::{self, CaseIndex, IndexQuery};
use mediation_projections::runner::{self, Projection};
use mediation_projections::sla::{self, ClockBreach, ClockQuery, ClockRow, ClockStatus};
use mediation_store::{Cases, Store};
use mediation_tests::TestDb;

on_both_backends!(
    a_breached_clock_stays_breached_after_a_hearing_re_times_it,
    the_review_window_starts_when_the_opinion_is_delivered,
);

/// Monday 2 March 2026, 10:00 in Beijing: day 0 of every scenario.
const T0: &str = "2026-03-02T02:00:00Z";
/// Donghu Subdistrict, a town of the example district.
const TOWN: &str = "990101001000";

fn day(n: i64) -> DateTime<Utc> {
    T0.parse::<DateTime<Utc>>().unwrap() + Duration::days(n)
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

fn receive() -> PetitionAction {
    PetitionAction::Receive {
        channel: PetitionChannel::Letter,
        matter_type: None,
        petitioner: Petitioner {
            name: name("Zhang San"),
            contact: None,
        },
        complained_unit: Some(name("Donghu Urban Management")),
        complained_unit_id: None,
        facts: text("Street stalls block the lane every evening."),
        division: DivisionCode::parse(TOWN).unwrap(),
        competent_level: Level::Town,
        visited_level: None,
        representatives: 1,
        repeat_of: None,
    }
}

fn opinion(outcome: OpinionOutcome) -> Text {
    text(match outcome {
        OpinionOutcome::Support => "The stalls move to the market square.",
        OpinionOutcome::Explain | OpinionOutcome::NotSupport => "The lane is wide enough.",
    })
}

/// Petitions written through the real store, at days after [`T0`].
struct Desk {
    clock: ManualClock,
    cases: Cases<Petition>,
    last: u64,
}

impl Desk {
    fn new(store: &Store) -> Self {
        let clock = ManualClock::new(day(0));
        let services = Services::shipped_defaults(Arc::new(clock.clone()));
        Self {
            cases: Cases::new(store, services),
            clock,
            last: 0,
        }
    }

    async fn run(&mut self, on: i64, id: &str, action: PetitionAction) {
        self.clock.set(day(on));
        let step = format!("{id} on day {on}: {action:?}");
        let command = PetitionCommand {
            by: Actor::parse("officer-1", "donghu-office").unwrap(),
            action,
        };
        let committed = self
            .cases
            .execute(id, command, HashMap::new())
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        let position = committed
            .position
            .unwrap_or_else(|| panic!("{step} wrote nothing"));
        self.last = self.last.max(position);
    }

    /// A petition taken to a re-review on day 1, its re-review due 30 days
    /// later.
    async fn under_re_review(&mut self, id: &str) {
        let steps = [
            receive(),
            PetitionAction::Forward {
                to_unit: name("Donghu Subdistrict Office"),
            },
            PetitionAction::Accept {},
            PetitionAction::IssueOpinion {
                outcome: OpinionOutcome::NotSupport,
                summary: opinion(OpinionOutcome::NotSupport),
            },
            PetitionAction::RequestReview {
                reason: text("The lane is blocked every evening."),
            },
            PetitionAction::IssueReviewOpinion {
                outcome: OpinionOutcome::NotSupport,
                decision: None,
                summary: opinion(OpinionOutcome::NotSupport),
            },
            PetitionAction::RequestReReview {
                reason: text("The review did not visit the lane."),
            },
        ];
        for action in steps {
            self.run(1, id, action).await;
        }
    }

    /// The case projection, caught up with everything this desk wrote.
    async fn project(&self, store: &Store) {
        catch_up(store, &CaseIndex, self.last).await;
    }
}

/// Runs `projection` until it has applied the log up to `position`; an
/// empty batch is retried shortly, as a PostgreSQL reader may not see a
/// committed event at once while an older transaction runs.
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
}

/// The clocks of `case`'s `stage` (its stored name).
async fn clocks_of(store: &Store, case: &str, stage: &str) -> Vec<ClockRow> {
    let mut rows = sla::clocks(
        store,
        &ClockQuery {
            limit: 100,
            ..ClockQuery::default()
        },
    )
    .await
    .unwrap();
    rows.retain(|c| c.case_id == case && c.stage == stage);
    rows
}

async fn a_breached_clock_stays_breached_after_a_hearing_re_times_it(db: &TestDb) {
    let store = &db.store;
    let mut desk = Desk::new(store);
    desk.under_re_review("p1").await;
    desk.project(store).await;
    let [running] = &clocks_of(store, "p1", "re_review").await[..] else {
        panic!("one re-review clock");
    };
    assert_eq!(running.status, ClockStatus::Running);
    let first_due = running.due_at;

    // The re-review runs late, the breach is recorded, then a hearing held
    // meanwhile is recorded and moves the due time out (Art 36).
    desk.run(
        40,
        "p1",
        PetitionAction::RecordDeadlineBreach {
            stage: Stage::ReReview,
            due: first_due,
        },
    )
    .await;
    desk.run(41, "p1", PetitionAction::RecordHearing { days: 20 })
        .await;
    desk.project(store).await;
    let [clock] = &clocks_of(store, "p1", "re_review").await[..] else {
        panic!("the hearing re-times the clock, it starts no other");
    };
    assert!(clock.due_at > day(41), "re-timed past now: {clock:?}");
    assert_eq!(clock.paused_seconds, Duration::days(20).num_seconds());
    assert_eq!(clock.status, ClockStatus::Breached, "{clock:?}");
    assert_eq!(clock.breached_at, Some(day(40)));
    assert_eq!(
        clock.breach,
        Some(ClockBreach {
            due_at: first_due,
            division: Some(TOWN.to_owned()),
            level: Some("town".to_owned()),
            body: None,
            person: None,
        })
    );
    assert_eq!(clock.stopped_at, None);

    // No timer fires for it again, though its new due time passes too.
    let timers = sla::due_timers(store, day(90), 100).await.unwrap();
    assert!(
        timers.iter().all(|t| t.case_id != "p1"),
        "a breached clock is not timed again: {timers:?}"
    );
    // The dashboard counts it breached, not running.
    let bodies = sla::breaches_by_body(store, None, day(0)).await.unwrap();
    let counted = bodies.iter().find(|b| b.body.is_none()).unwrap();
    assert_eq!((counted.breached, counted.running), (1, 0), "{bodies:?}");

    // The re-review opinion comes before the new due time: still breached.
    desk.run(
        45,
        "p1",
        PetitionAction::IssueReReviewOpinion {
            outcome: OpinionOutcome::Support,
            decision: None,
            summary: opinion(OpinionOutcome::Support),
        },
    )
    .await;
    desk.project(store).await;
    let [stopped] = &clocks_of(store, "p1", "re_review").await[..] else {
        panic!("still one re-review clock");
    };
    assert_eq!(stopped.stopped_at, Some(day(45)));
    assert_eq!(stopped.status, ClockStatus::Breached);
    assert_eq!(stopped.breach, clock.breach);
    let bodies = sla::breaches_by_body(store, None, day(0)).await.unwrap();
    let counted = bodies.iter().find(|b| b.body.is_none()).unwrap();
    assert_eq!((counted.breached, counted.running), (1, 0), "{bodies:?}");
}

/// The petition `id` as the case index holds it.
async fn indexed(store: &Store, id: &str) -> Petition {
    let rows = case_index::list(
        store,
        &IndexQuery {
            aggregate_type: "Petition".to_owned(),
            limit: 100,
            ..IndexQuery::default()
        },
    )
    .await
    .unwrap();
    let row = rows.into_iter().find(|r| r.case_id == id).unwrap();
    case_index::decode(id, row.state).unwrap()
}

async fn the_review_window_starts_when_the_opinion_is_delivered(db: &TestDb) {
    let store = &db.store;
    let mut desk = Desk::new(store);
    let steps = [
        receive(),
        PetitionAction::Forward {
            to_unit: name("Donghu Subdistrict Office"),
        },
        PetitionAction::Accept {},
        PetitionAction::IssueOpinion {
            outcome: OpinionOutcome::NotSupport,
            summary: opinion(OpinionOutcome::NotSupport),
        },
    ];
    for action in steps {
        desk.run(1, "p2", action).await;
    }
    desk.project(store).await;
    // Issued, not delivered: the window has not started.
    let answered = indexed(store, "p2").await;
    assert_eq!(answered.status(), PetitionStatus::Answered);
    assert_eq!(answered.review_request_due(), None);

    // The post brings the receipt back on day 14: received on day 11.
    let received_on = NaiveDate::from_ymd_opt(2026, 3, 13).unwrap();
    desk.run(
        14,
        "p2",
        PetitionAction::RecordDelivery {
            reply: Reply::Opinion,
            delivered_on: received_on,
            method: DeliveryMethod::Post,
        },
    )
    .await;
    desk.project(store).await;
    let delivered = indexed(store, "p2").await;
    let window = delivered.review_request_due().unwrap();
    // 30 days from 13 March: Sunday 12 April, a day off, so Monday 13 April.
    assert_eq!(
        window.last_day,
        NaiveDate::from_ymd_opt(2026, 4, 13).unwrap()
    );
    assert_eq!(
        delivered.delivery(Reply::Opinion).map(|d| d.method),
        Some(DeliveryMethod::Post)
    );
    // No clock runs while the petitioner may ask: the window is theirs.
    assert!(clocks_of(store, "p2", "review_request").await.is_empty());

    // Day 38 is 37 days after the opinion and inside the window.
    desk.run(
        38,
        "p2",
        PetitionAction::RequestReview {
            reason: text("The lane is blocked every evening."),
        },
    )
    .await;
    desk.project(store).await;
    let [review] = &clocks_of(store, "p2", "review").await[..] else {
        panic!("the review clock starts at the request");
    };
    assert_eq!(review.started_at, day(38));
    assert_eq!(review.status, ClockStatus::Running);
    assert_eq!(
        indexed(store, "p2").await.status(),
        PetitionStatus::UnderReview
    );
}
