//! The case index read model: one row per dispute and petition with the
//! columns lists filter on and the case's state, kept up to date from the
//! global log.
//!
//! The runner reads the log in batches after its checkpoint, applies each
//! event to the indexed state of its case (the aggregate's own `apply`, so
//! the index can never disagree with the aggregate), and writes the changed
//! rows and the new checkpoint in one transaction. The checkpoint moves only
//! from the position the batch was read after, so a crash at any point, or
//! a second runner on the same database, neither loses nor repeats an event.

use std::collections::HashMap;
use std::time::Duration;

use cqrs_es::Aggregate;
use mediation_domain::dispute::Dispute;
use mediation_domain::petition::Petition;
use mediation_store::{IndexRow, RecordedEvent, Store, StoreError};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "case_index";

/// How many events one transaction applies at most.
pub const BATCH: u32 = 500;

/// How often the runner looks at the log when nothing woke it: writes by
/// other processes on the same database reach it this way.
pub const POLL: Duration = Duration::from_millis(500);

/// What the index needs to know of a case.
pub trait Indexed: Aggregate + Clone {
    /// The filterable columns of the case as it stands.
    fn columns(&self) -> Columns;
}

/// The filterable columns of one case, as stored names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// The division holding the case.
    pub division: Option<String>,
    /// The level holding the case.
    pub level: Option<&'static str>,
    /// The status.
    pub status: &'static str,
    /// The dispute category.
    pub category: Option<&'static str>,
    /// The dispute's risk grading.
    pub risk: Option<&'static str>,
    /// The petition's channel.
    pub channel: Option<&'static str>,
}

impl Indexed for Dispute {
    fn columns(&self) -> Columns {
        Columns {
            division: self.division().map(|d| d.as_str().to_owned()),
            level: self.level().map(|l| l.as_str()),
            status: self.status().as_str(),
            category: self.category().map(|c| c.as_str()),
            risk: self.risk().map(|r| r.as_str()),
            channel: None,
        }
    }
}

impl Indexed for Petition {
    fn columns(&self) -> Columns {
        Columns {
            division: self.division().map(|d| d.as_str().to_owned()),
            level: self.level().map(|l| l.as_str()),
            status: self.status().as_str(),
            category: None,
            risk: None,
            channel: self.channel().map(|c| c.as_str()),
        }
    }
}

/// Applies the next batch of the log to the index. Returns how many events
/// it applied: 0 at the end of the log, or when another runner applied the
/// same batch first.
pub async fn run_once(store: &Store) -> Result<usize, StoreError> {
    let from = store.checkpoint(NAME).await?;
    let events = store.read_log(from, BATCH).await?;
    let Some(last) = events.last() else {
        return Ok(0);
    };
    let to = last.position;
    let mut rows = fold::<Dispute>(store, &events).await?;
    rows.extend(fold::<Petition>(store, &events).await?);
    if store.apply_index_batch(NAME, from, to, &rows).await? {
        Ok(events.len())
    } else {
        Ok(0)
    }
}

/// The index rows of the cases of type `A` that `events` touch, with the
/// events applied.
async fn fold<A: Indexed>(
    store: &Store,
    events: &[RecordedEvent],
) -> Result<Vec<IndexRow>, StoreError> {
    let mine: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| e.aggregate_type == A::TYPE)
        .collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<String> = mine.iter().map(|e| e.aggregate_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut cases: HashMap<String, (A, u64, u64)> = HashMap::new();
    for (id, (state, version)) in store.index_states(A::TYPE, &ids).await? {
        let case = decode::<A>(&id, state)?;
        cases.insert(id, (case, version, 0));
    }
    for event in mine {
        let entry = cases
            .entry(event.aggregate_id.clone())
            .or_insert_with(|| (A::default(), 0, 0));
        // An event the index already holds (its version is past it) is
        // skipped, so that the fold stays right even if asked twice.
        if event.sequence <= entry.1 {
            continue;
        }
        let payload: A::Event = serde_json::from_value(event.payload.clone()).map_err(|e| {
            StoreError::Corrupt(format!(
                "event {} of {} {} does not match this engine: {e}",
                event.sequence,
                A::TYPE,
                event.aggregate_id
            ))
        })?;
        entry.0.apply(payload);
        entry.1 = event.sequence;
        entry.2 = event.position;
    }
    let mut rows = Vec::with_capacity(cases.len());
    for (id, (case, version, position)) in cases {
        if position == 0 {
            continue;
        }
        let columns = case.columns();
        let state = serde_json::to_value(&case)
            .map_err(|e| StoreError::Corrupt(format!("{} {id} not serialisable: {e}", A::TYPE)))?;
        rows.push(IndexRow {
            aggregate_type: A::TYPE.to_owned(),
            case_id: id,
            division: columns.division,
            level: columns.level.map(str::to_owned),
            status: columns.status.to_owned(),
            category: columns.category.map(str::to_owned),
            risk: columns.risk.map(str::to_owned),
            channel: columns.channel.map(str::to_owned),
            version,
            position,
            state,
        });
    }
    Ok(rows)
}

/// A case's state from the index.
pub fn decode<A: Aggregate>(id: &str, state: Value) -> Result<A, StoreError> {
    serde_json::from_value(state).map_err(|e| {
        StoreError::Corrupt(format!(
            "indexed {} {id} does not match this engine ({e}); rebuild the index",
            A::TYPE
        ))
    })
}

/// Keeps the index up to date until `stop`: applies batches while there
/// are any, then waits for `wake` (a commit in this process) or [`POLL`].
/// Publishes its checkpoint on `progress` after every batch.
pub async fn run(
    store: Store,
    mut wake: watch::Receiver<u64>,
    progress: watch::Sender<u64>,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        match run_once(&store).await {
            Ok(0) => {
                failures = 0;
                match store.checkpoint(NAME).await {
                    Ok(position) => {
                        progress.send_if_modified(|p| {
                            let moved = *p != position;
                            *p = position;
                            moved
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "case index: checkpoint unreadable"),
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = wake.changed() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
            Ok(applied) => {
                failures = 0;
                tracing::debug!(applied, "case index: batch applied");
                if let Ok(position) = store.checkpoint(NAME).await {
                    progress.send_replace(position);
                }
                if stop.is_cancelled() {
                    return;
                }
            }
            Err(e) => {
                // Back off, up to half a minute, and try again: the store
                // may be restarting. Nothing is lost while waiting.
                failures = failures.saturating_add(1);
                let delay = POLL * 2u32.saturating_pow(failures.min(6));
                tracing::warn!(error = %e, retry_in = ?delay, "case index: batch failed");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
