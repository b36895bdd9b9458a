//! A case as it stood at a given moment: its events up to that moment,
//! folded into the aggregate, so that an analyst can see what the people
//! handling it could see then.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use mediation_domain::dispute::DisputeEvent;
use mediation_domain::petition::PetitionEvent;
use mediation_store::{RecordedEvent, Store, StoreError};

/// An event that knows when it happened in the world (as opposed to when
/// the store recorded it, which an import or a late upload can delay).
pub trait Occurred {
    /// When it happened.
    fn occurred_at(&self) -> DateTime<Utc>;
}

impl Occurred for DisputeEvent {
    fn occurred_at(&self) -> DateTime<Utc> {
        self.at
    }
}

impl Occurred for PetitionEvent {
    fn occurred_at(&self) -> DateTime<Utc> {
        self.at
    }
}

/// A case folded from its history up to a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct AsOf<A> {
    /// The aggregate as it stood.
    pub case: A,
    /// Its version then: the number of events that had happened.
    pub version: u64,
    /// When the last of those events happened.
    pub last_change: DateTime<Utc>,
}

/// Why a history could not be folded.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event of the case does not deserialise as this engine's events.
    #[error("event {sequence} of case {case} cannot be read: {reason}")]
    Unreadable {
        /// The case.
        case: String,
        /// The event's sequence.
        sequence: u64,
        /// What went wrong.
        reason: String,
    },
}

/// Folds `events` (one case's, in sequence order, as
/// [`Store::case_events`] returns them) that happened at or before `at`.
/// `None` if the case did not exist yet then.
pub fn fold_as_of<A>(
    events: &[RecordedEvent],
    at: DateTime<Utc>,
) -> Result<Option<AsOf<A>>, HistoryError>
where
    A: Aggregate,
    A::Event: Occurred,
{
    // A case's events happen in order, so the first one after `at` ends
    // the fold.
    fold_while(events, |_, event: &A::Event| event.occurred_at() <= at)
}

/// Folds `events` (as for [`fold_as_of`]) recorded at or before log
/// position `position`: the case as a reader of the log up to there saw
/// it. `None` if the case had no event there yet.
pub fn fold_through_position<A>(
    events: &[RecordedEvent],
    position: u64,
) -> Result<Option<AsOf<A>>, HistoryError>
where
    A: Aggregate,
    A::Event: Occurred,
{
    fold_while(events, |recorded, _: &A::Event| {
        recorded.position <= position
    })
}

/// Folds `events` in order for as long as `keep` says so.
fn fold_while<A>(
    events: &[RecordedEvent],
    keep: impl Fn(&RecordedEvent, &A::Event) -> bool,
) -> Result<Option<AsOf<A>>, HistoryError>
where
    A: Aggregate,
    A::Event: Occurred,
{
    let mut folded: Option<AsOf<A>> = None;
    for recorded in events {
        let event: A::Event = recorded.decode().map_err(|e| HistoryError::Unreadable {
            case: recorded.aggregate_id.clone(),
            sequence: recorded.sequence,
            reason: e.to_string(),
        })?;
        if !keep(recorded, &event) {
            break;
        }
        let when = event.occurred_at();
        let state = folded.get_or_insert_with(|| AsOf {
            case: A::default(),
            version: 0,
            last_change: when,
        });
        state.case.apply(event);
        state.version = recorded.sequence;
        state.last_change = when;
    }
    Ok(folded)
}

/// Case `id` of type `A` as it stood at `at`, read from `store`.
pub async fn case_as_of<A>(
    store: &Store,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Option<AsOf<A>>, HistoryError>
where
    A: Aggregate,
    A::Event: Occurred,
{
    let events = store.case_events(A::TYPE, id).await?;
    fold_as_of(&events, at)
}
