//! The past of a case, for analysts and supervisors: the case as it stood
//! at a moment or at a log position, and its timeline, each cut to what the
//! caller may see as every other read is.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use mediation_domain::dispute::Dispute;
use mediation_domain::petition::Petition;
use mediation_domain::values::{CaseId, DivisionCode};
use mediation_projections::history::{
    AsOf, HistoryError, Occurred, fold_as_of, fold_through_position,
};
use mediation_store::{RecordedEvent, StoreError};

use crate::access::Caller;
use crate::accountability::CaseKind;
use crate::app::Held;
use crate::{App, AppError, Found};

/// The moment a case is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOfPoint {
    /// Every event that had happened by then (the events' own time).
    Time(DateTime<Utc>),
    /// Every event at or before this log position.
    Position(u64),
}

/// A case as it stood, and when it last changed before that point.
#[derive(Debug)]
pub struct Past<A> {
    /// The case, with its version then.
    pub found: Found<A>,
    /// When its last event before the point happened.
    pub last_change: DateTime<Utc>,
}

impl App {
    /// Dispute `id` as it stood at `point`. NOT_FOUND if it did not exist
    /// then, or the division holding it then lies outside the caller's
    /// scope: a caller sees the past of what it held.
    pub async fn dispute_as_of(
        &self,
        caller: &Caller,
        id: &str,
        point: AsOfPoint,
    ) -> Result<Past<Dispute>, AppError> {
        caller.authorise("GetDisputeAsOf")?;
        self.as_of(caller, id, point).await
    }

    /// Petition `id` as it stood at `point`, as [`App::dispute_as_of`].
    pub async fn petition_as_of(
        &self,
        caller: &Caller,
        id: &str,
        point: AsOfPoint,
    ) -> Result<Past<Petition>, AppError> {
        caller.authorise("GetPetitionAsOf")?;
        self.as_of(caller, id, point).await
    }

    async fn as_of<A>(
        &self,
        caller: &Caller,
        id: &str,
        point: AsOfPoint,
    ) -> Result<Past<A>, AppError>
    where
        A: Aggregate + Held,
        A::Event: Occurred,
    {
        let kind = A::TYPE.to_lowercase();
        CaseId::parse(id).map_err(|e| AppError::invalid(format!("{kind}_id"), e.reason))?;
        let events = self.store().case_events(A::TYPE, id).await?;
        let folded: Option<AsOf<A>> = match point {
            AsOfPoint::Time(at) => fold_as_of(&events, at),
            AsOfPoint::Position(position) => fold_through_position(&events, position),
        }
        .map_err(history_error)?;
        match folded {
            Some(past) if past.case.held_by().is_some_and(|d| caller.covers(d)) => Ok(Past {
                found: Found {
                    id: id.to_owned(),
                    version: past.version,
                    case: past.case,
                },
                last_change: past.last_change,
            }),
            _ => Err(AppError::not_found(&kind, id)),
        }
    }

    /// Every event of case `id` the caller may see, in the case's order:
    /// those recorded while a division in the caller's scope held the case,
    /// before or after the event, as `ReadEvents` shows them. NOT_FOUND if
    /// there is none.
    pub async fn case_history(
        &self,
        caller: &Caller,
        kind: CaseKind,
        id: &str,
    ) -> Result<Vec<RecordedEvent>, AppError> {
        caller.authorise("GetCaseHistory")?;
        let (aggregate_type, noun) = match kind {
            CaseKind::Dispute => (Dispute::TYPE, "dispute"),
            CaseKind::Petition => (Petition::TYPE, "petition"),
        };
        CaseId::parse(id).map_err(|e| AppError::invalid("case_id", e.reason))?;
        let events: Vec<RecordedEvent> = self
            .store()
            .case_events(aggregate_type, id)
            .await?
            .into_iter()
            .filter(|e| held_within(e, caller))
            .collect();
        if events.is_empty() {
            return Err(AppError::not_found(noun, id));
        }
        Ok(events)
    }
}

/// Whether a division in the caller's scope held the case before or after
/// `event`, as its metadata records.
fn held_within(event: &RecordedEvent, caller: &Caller) -> bool {
    ["division", "prior_division"].iter().any(|key| {
        event
            .metadata
            .get(key)
            .and_then(|v| v.as_str())
            .and_then(|d| DivisionCode::parse(d).ok())
            .is_some_and(|d| caller.covers(&d))
    })
}

fn history_error(e: HistoryError) -> AppError {
    match e {
        HistoryError::Store(e) => AppError::Store(e),
        unreadable @ HistoryError::Unreadable { .. } => {
            AppError::Store(StoreError::Corrupt(unreadable.to_string()))
        }
    }
}
