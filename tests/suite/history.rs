//! Analysts' view of the past: a case as it stood at a chosen moment,
//! folded from the stored history.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mediation_domain::dispute::{
    Dispute, DisputeAction, DisputeCommand, DisputeStatus, MediationBody, Party, PartyRole,
};
use mediation_domain::services::{ManualClock, Services};
use mediation_domain::values::{
    Actor, AgencyId, DisputeCategory, DivisionCode, Level, MediationKind, Name, Risk, Text,
};
use mediation_projections::history::case_as_of;
use mediation_store::Cases;
use mediation_tests::TestDb;

on_both_backends!(a_case_as_it_stood_on_any_date);

fn command(action: DisputeAction) -> DisputeCommand {
    DisputeCommand {
        by: Actor::parse("grid-worker-7", "990101001001").unwrap(),
        action,
    }
}

async fn a_case_as_it_stood_on_any_date(db: &TestDb) {
    let t0: DateTime<Utc> = "2026-03-02T02:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let cases = Cases::<Dispute>::new(
        &db.store,
        Services::shipped_defaults(Arc::new(clock.clone())),
    );
    let village = DivisionCode::parse("990101001001").unwrap();
    let id = "D-history-1";

    let steps = [
        DisputeAction::Report {
            division: village.clone(),
            grid: Some(Name::parse("Grid 3").unwrap()),
            summary: Text::parse("Water runs from one yard into the next").unwrap(),
        },
        DisputeAction::Register {
            division: village.clone(),
            level: Level::Village,
            category: DisputeCategory::Neighbourhood,
            risk: Risk::Green,
            summary: Text::parse("Drainage between two yards").unwrap(),
            parties: vec![
                Party {
                    role: PartyRole::Applicant,
                    name: Name::parse("Li Hua").unwrap(),
                },
                Party {
                    role: PartyRole::Respondent,
                    name: Name::parse("Zhang Wei").unwrap(),
                },
            ],
        },
        DisputeAction::Dispatch {
            body: MediationBody {
                id: AgencyId::parse("990101001001-pmc").unwrap(),
                name: Name::parse("Hubin People's Mediation Committee").unwrap(),
                kind: MediationKind::Peoples,
            },
            mediator: None,
        },
    ];
    for (day, action) in steps.into_iter().enumerate() {
        clock.set(t0 + Duration::days(day as i64));
        cases
            .execute(id, command(action), HashMap::new())
            .await
            .unwrap();
    }

    let before = case_as_of::<Dispute>(&db.store, id, t0 - Duration::hours(1))
        .await
        .unwrap();
    assert!(before.is_none(), "the case did not exist yet");

    let day_two = case_as_of::<Dispute>(&db.store, id, t0 + Duration::days(1) + Duration::hours(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(day_two.version, 2);
    assert_eq!(day_two.case.status(), DisputeStatus::Registered);
    assert_eq!(day_two.last_change, t0 + Duration::days(1));

    let exactly_then = case_as_of::<Dispute>(&db.store, id, t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exactly_then.case.status(), DisputeStatus::Reported);

    let now = case_as_of::<Dispute>(&db.store, id, t0 + Duration::days(30))
        .await
        .unwrap()
        .unwrap();
    let (current, version) = cases.load(id).await.unwrap().unwrap();
    assert_eq!((now.case, now.version), (current, version));
}
