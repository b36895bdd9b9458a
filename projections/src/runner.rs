//! Runs projections: each reads the global log in batches after its
//! checkpoint and applies a batch and the new checkpoint in one
//! transaction ([`mediation_store::Batch`]), so a crash at any point neither
//! loses nor repeats an event. With several server processes on one
//! PostgreSQL, a projection runs where it holds its lease; when that process
//! dies, another takes the lease over within [`LEASE_RETRY`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mediation_store::{Batch, RecordedEvent, Store, StoreError, rebuild_checkpoint};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How many events one transaction applies at most.
pub const BATCH: u32 = 500;

/// How often an idle projection looks at the log when nothing woke it:
/// commits by other processes reach it this way.
pub const POLL: Duration = Duration::from_millis(500);

/// How long a woken projection waits before reading the log, by default,
/// so that a burst of commits is applied as one batch (one transaction)
/// instead of one transaction per commit. It bounds what it adds to the
/// lag; see [`Projection::gather`].
pub const GATHER: Duration = Duration::from_millis(10);

/// [`GATHER`] for dashboards that nobody reads within a command's round
/// trip: larger batches, fewer transactions beside the commands (on SQLite
/// every one of them takes the single writer's turn).
pub const DASHBOARD_GATHER: Duration = Duration::from_millis(100);

/// How often a process without the lease tries to take it.
pub const LEASE_RETRY: Duration = Duration::from_secs(2);

/// A read model kept from the log.
#[async_trait::async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Its stable name: the key of its checkpoint and its lease.
    fn name(&self) -> &'static str;

    /// The tables it writes, as the migrations create them. A rebuild
    /// writes copies of them and swaps them in.
    fn tables(&self) -> &'static [&'static str];

    /// How long to wait, once woken by a commit, before reading the log:
    /// what the projection may add to the lag to apply bursts in one batch.
    fn gather(&self) -> Duration {
        GATHER
    }

    /// Applies `events`, in log order, within `batch`; writes go to the
    /// tables `batch.table(..)` names.
    async fn apply(&self, batch: &mut Batch, events: &[RecordedEvent]) -> Result<(), StoreError>;
}

/// Where a projection stands, as reported while it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: &'static str,
    /// The log position it has applied up to.
    pub position: u64,
    /// Whether this process holds its lease and runs it.
    pub active: bool,
    /// How far it trails the log: the age of the oldest event it has not
    /// applied yet; zero when it has caught up.
    pub lag: Duration,
}

/// What [`apply_next`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Applied {
    /// The log has nothing after the position.
    Nothing,
    /// Another runner (or a rebuild's swap) moved the checkpoint first;
    /// nothing was written. Read the checkpoint again.
    Moved,
    /// A batch was applied and the checkpoint moved to `to`.
    Batch {
        /// Events applied.
        events: usize,
        /// The position of the last one.
        to: u64,
        /// How old the last one is.
        age: Duration,
    },
}

/// Applies the next batch of the log after position `from` to
/// `projection`, and moves its checkpoint from `from` to the batch's end,
/// all in one transaction.
pub async fn apply_next(
    store: &Store,
    projection: &dyn Projection,
    from: u64,
    rebuild: bool,
    batch_size: u32,
) -> Result<Applied, StoreError> {
    let events = store.read_log(from, batch_size).await?;
    let Some(last) = events.last() else {
        return Ok(Applied::Nothing);
    };
    let to = last.position;
    let age = (Utc::now() - last.recorded_at).to_std().unwrap_or_default();
    let started = std::time::Instant::now();
    let mut batch = store.begin_batch(projection.name(), from, rebuild).await?;
    projection.apply(&mut batch, &events).await?;
    let committed = batch.commit(to).await?;
    tracing::debug!(
        projection = projection.name(),
        events = events.len(),
        took_us = started.elapsed().as_micros() as u64,
        "batch"
    );
    if committed {
        Ok(Applied::Batch {
            events: events.len(),
            to,
            age,
        })
    } else {
        Ok(Applied::Moved)
    }
}

/// Applies the next batch of the log to `projection`, after its stored
/// checkpoint. Returns how many events it applied: 0 at the end of the log,
/// or when another runner applied the same batch first.
pub async fn run_once(
    store: &Store,
    projection: &dyn Projection,
    rebuild: bool,
    batch_size: u32,
) -> Result<usize, StoreError> {
    let checkpoint = if rebuild {
        rebuild_checkpoint(projection.name())
    } else {
        projection.name().to_owned()
    };
    let from = store.checkpoint(&checkpoint).await?;
    match apply_next(store, projection, from, rebuild, batch_size).await? {
        Applied::Batch { events, .. } => Ok(events),
        Applied::Nothing | Applied::Moved => Ok(0),
    }
}

/// The status of `projection` now.
pub async fn status(
    store: &Store,
    projection: &dyn Projection,
    active: bool,
) -> Result<ProjectionStatus, StoreError> {
    let position = store.checkpoint(projection.name()).await?;
    let next = store.read_log(position, 1).await?;
    let lag = next
        .first()
        .map(|e| (Utc::now() - e.recorded_at).to_std().unwrap_or_default())
        .unwrap_or_default();
    Ok(ProjectionStatus {
        name: projection.name(),
        position,
        active,
        lag,
    })
}

/// Keeps `projection` up to date until `stop`: takes its lease, applies
/// batches while there are any, then waits for `wake` (a commit in this
/// process) or [`POLL`]. Publishes its status on `report` after every batch
/// and every wait.
pub async fn run(
    store: Store,
    projection: Arc<dyn Projection>,
    mut wake: watch::Receiver<u64>,
    report: watch::Sender<ProjectionStatus>,
    stop: CancellationToken,
) {
    let name = projection.name();
    let publish = |status: ProjectionStatus| {
        report.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    };
    'lease: loop {
        let mut lease = loop {
            match store.try_lease(name).await {
                Ok(Some(lease)) => break lease,
                Ok(None) => {
                    if let Ok(status) = status(&store, projection.as_ref(), false).await {
                        publish(status);
                    }
                }
                Err(e) => tracing::warn!(projection = name, error = %e, "cannot take the lease"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(LEASE_RETRY) => {}
            }
        };
        tracing::info!(projection = name, "projection running in this process");
        let mut failures = 0u32;
        // Where the checkpoint stands, as far as this runner knows: it holds
        // the lease, and each batch moves the checkpoint only from this
        // value, so it is read again only after something else moved it.
        let mut known: Option<u64> = None;
        loop {
            let applied = match known {
                Some(from) => apply_next(&store, projection.as_ref(), from, false, BATCH).await,
                None => match store.checkpoint(name).await {
                    Ok(from) => {
                        known = Some(from);
                        apply_next(&store, projection.as_ref(), from, false, BATCH).await
                    }
                    Err(e) => Err(e),
                },
            };
            let caught_up = match applied {
                Ok(Applied::Batch { events, to, age }) => {
                    failures = 0;
                    known = Some(to);
                    tracing::debug!(projection = name, events, "batch applied");
                    let full = events >= BATCH as usize;
                    publish(ProjectionStatus {
                        name,
                        position: to,
                        active: true,
                        // A short batch took all the log had: caught up.
                        lag: if full { age } else { Duration::ZERO },
                    });
                    !full
                }
                Ok(Applied::Moved) => {
                    known = None;
                    false
                }
                Ok(Applied::Nothing) => {
                    failures = 0;
                    if let Some(position) = known {
                        publish(ProjectionStatus {
                            name,
                            position,
                            active: true,
                            lag: Duration::ZERO,
                        });
                    }
                    true
                }
                Err(e) => {
                    // Back off, up to half a minute, and try again: the store
                    // may be restarting. The failed batch wrote nothing.
                    known = None;
                    failures = failures.saturating_add(1);
                    let delay = POLL * 2u32.saturating_pow(failures.min(6));
                    tracing::warn!(projection = name, error = %e, retry_in = ?delay, "batch failed");
                    tokio::select! {
                        () = stop.cancelled() => {
                            lease.release().await;
                            return;
                        }
                        () = tokio::time::sleep(delay) => {}
                    }
                    if !lease.alive().await {
                        continue 'lease;
                    }
                    continue;
                }
            };
            if stop.is_cancelled() {
                lease.release().await;
                return;
            }
            if !caught_up {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => {
                    lease.release().await;
                    return;
                }
                _ = wake.changed() => {
                    // Let the burst that woke it finish committing, so that
                    // it goes in one batch.
                    tokio::time::sleep(projection.gather()).await;
                }
                () = tokio::time::sleep(POLL) => {
                    if !lease.alive().await {
                        tracing::warn!(projection = name, "lease lost; taking it again");
                        continue 'lease;
                    }
                }
            }
        }
    }
}
