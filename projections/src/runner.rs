//! Runs projections: each reads the global log in batches after its
//! checkpoint and applies a batch and the new checkpoint in one
//! transaction ([`mediation_store::Batch`]), so a crash at any point neither
//! loses nor repeats an event. With several server processes on one
//! PostgreSQL, a projection runs where it holds its lease; when that process
//! dies, another takes the lease over within [`LEASE_RETRY`].
//!
//! The lease alone does not keep two processes from running a projection at
//! once: a session can be cut (an idle-session timeout, a pooler, an
//! operator's `pg_terminate_backend`) while its process goes on. So every
//! live batch is also fenced by the lease's tenure
//! ([`Store::begin_fenced_batch`]): once another process has taken the lease,
//! no batch of the one that lost it commits. And the runner notices a lost
//! lease within [`LEASE_CHECK`](mediation_store::LEASE_CHECK) plus
//! [`LEASE_CHECK_TIMEOUT`](mediation_store::LEASE_CHECK_TIMEOUT), under any load,
//! from the lease's own checks rather than between batches.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mediation_store::{
    Batch, Finished, Lease, RecordedEvent, Store, StoreError, rebuild_checkpoint,
};
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

/// How soon a batch the database aborted to break a deadlock or a
/// serialization conflict is tried again (doubled for each next failure,
/// up to [`POLL`]); unlike an outage, this needs no long backoff.
pub const CONTENTION_RETRY: Duration = Duration::from_millis(20);

/// How often a projection that has read all it can looks for events that
/// have committed beyond the horizon (see [`HELD_BACK_WARNING`]).
pub const HORIZON_CHECK: Duration = Duration::from_secs(1);

/// How long events may wait, committed but hidden behind a running
/// transaction, before the runner warns about what holds the horizon.
pub const HELD_BACK_WARNING: Duration = Duration::from_secs(5);

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
    /// How far it trails the log: the age of the oldest committed event it
    /// has not applied yet, including events that a running transaction
    /// still hides from readers; zero when it has caught up.
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
    let target = if rebuild {
        Target::Rebuild
    } else {
        Target::Live(None)
    };
    match apply(store, projection, from, target, batch_size).await? {
        Some(applied) => Ok(applied),
        // Only a fenced batch can be fenced out.
        None => Ok(Applied::Moved),
    }
}

/// What a batch writes: the live tables, fenced by a lease or not, or the
/// rebuild copies.
#[derive(Clone, Copy)]
enum Target<'a> {
    Live(Option<&'a Lease>),
    Rebuild,
}

/// [`apply_next`] into `target`; `None` when the batch was fenced out: its
/// lease had been taken over, and nothing was written.
async fn apply(
    store: &Store,
    projection: &dyn Projection,
    from: u64,
    target: Target<'_>,
    batch_size: u32,
) -> Result<Option<Applied>, StoreError> {
    let events = store.read_log(from, batch_size).await?;
    let Some(last) = events.last() else {
        return Ok(Some(Applied::Nothing));
    };
    let to = last.position;
    let age = (Utc::now() - last.recorded_at).to_std().unwrap_or_default();
    let started = std::time::Instant::now();
    let name = projection.name();
    let mut batch = match target {
        Target::Live(Some(lease)) => store.begin_fenced_batch(name, from, lease).await?,
        Target::Live(None) => store.begin_batch(name, from, false).await?,
        Target::Rebuild => store.begin_batch(name, from, true).await?,
    };
    projection.apply(&mut batch, &events).await?;
    let finished = batch.finish(to).await?;
    tracing::debug!(
        projection = name,
        events = events.len(),
        took_us = started.elapsed().as_micros() as u64,
        ?finished,
        "batch"
    );
    Ok(match finished {
        Finished::Committed => Some(Applied::Batch {
            events: events.len(),
            to,
            age,
        }),
        Finished::Moved => Some(Applied::Moved),
        Finished::Fenced => None,
    })
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

/// The status of `projection` now. Its lag is measured against what has
/// committed, not against what can be read: while a running transaction
/// holds every reader below it, the events committed beyond it count.
pub async fn status(
    store: &Store,
    projection: &dyn Projection,
    active: bool,
) -> Result<ProjectionStatus, StoreError> {
    let position = store.checkpoint(projection.name()).await?;
    Ok(ProjectionStatus {
        name: projection.name(),
        position,
        active,
        lag: lag_after(store, position).await?,
    })
}

/// The age of the first committed event after `position`, readable or not;
/// zero when there is none.
async fn lag_after(store: &Store, position: u64) -> Result<Duration, StoreError> {
    Ok(store
        .first_committed_after(position)
        .await?
        .map(|at| (Utc::now() - at).to_std().unwrap_or_default())
        .unwrap_or_default())
}

/// Keeps `projection` up to date until `stop`: takes its lease, applies
/// batches while there are any, then waits for `wake` (a commit in this
/// process) or [`POLL`]. Publishes its status on `report` after every batch
/// and every wait. When the lease is lost it stops applying at once (a
/// batch in flight is fenced) and tries to take the lease again, as any
/// process without it does.
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
    loop {
        let lease = loop {
            match store.try_projection_lease(name).await {
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
        tracing::info!(
            projection = name,
            lease_pid = lease.pid(),
            lease_epoch = lease.epoch(),
            "projection running in this process"
        );
        let held = hold(
            &store,
            projection.as_ref(),
            &lease,
            &mut wake,
            &publish,
            &stop,
        )
        .await;
        lease.release().await;
        match held {
            Held::Stopped => return,
            Held::Lost { why, position } => {
                tracing::warn!(
                    projection = name,
                    why,
                    "lease lost: this process no longer runs the projection"
                );
                publish(ProjectionStatus {
                    name,
                    position,
                    active: false,
                    lag: Duration::ZERO,
                });
            }
        }
    }
}

/// How [`hold`] ended.
enum Held {
    /// `stop` was cancelled.
    Stopped,
    /// The lease was lost, for the reason given; the projection stood at
    /// `position` as far as this runner knew.
    Lost { why: &'static str, position: u64 },
}

/// Runs `projection` under `lease` until `stop` or until the lease is lost.
async fn hold(
    store: &Store,
    projection: &dyn Projection,
    lease: &Lease,
    wake: &mut watch::Receiver<u64>,
    publish: &(dyn Fn(ProjectionStatus) + Sync),
    stop: &CancellationToken,
) -> Held {
    const CUT: &str = "its session was cut, stopped answering or no longer holds the lock";
    const TAKEN: &str = "another process took the lease over";
    let name = projection.name();
    let mut failures = 0u32;
    let mut horizon = HeldBack::default();
    // Where the checkpoint stands, as far as this runner knows: it holds
    // the lease, and each batch moves the checkpoint only from this value,
    // so it is read again only after something else moved it.
    let mut known: Option<u64> = None;
    let mut position = 0;
    loop {
        let step = next_batch(store, projection, lease, known);
        // A lease lost while a batch is in flight is noticed at once; the
        // batch is let finish (dropping it mid-statement would leave its
        // connection busy), and it commits only if no other process has
        // taken the lease over since: it is fenced.
        let mut step = std::pin::pin!(step);
        let mut lost = false;
        let result = loop {
            tokio::select! {
                biased;
                result = &mut step => break result,
                () = lease.lost(), if !lost => {
                    lost = true;
                    tracing::warn!(projection = name, "lease lost with a batch in flight");
                    publish(ProjectionStatus {
                        name,
                        position,
                        active: false,
                        lag: Duration::ZERO,
                    });
                }
            }
        };
        let caught_up = match result {
            Ok((_, Some(Applied::Batch { events, to, age }))) => {
                failures = 0;
                known = Some(to);
                position = to;
                tracing::debug!(projection = name, events, "batch applied");
                metrics::counter!("mediation_projection_events_total", "projection" => name)
                    .increment(u64::try_from(events).unwrap_or(u64::MAX));
                let full = events >= BATCH as usize;
                // A short batch took all the log had that can be read; what
                // lies beyond, hidden by a running transaction, is lag too.
                let lag = if full {
                    age
                } else {
                    horizon.lag(store, name, to).await
                };
                publish(ProjectionStatus {
                    name,
                    position: to,
                    active: !lost,
                    lag,
                });
                !full
            }
            Ok((_, Some(Applied::Moved))) => {
                known = None;
                false
            }
            Ok((from, Some(Applied::Nothing))) => {
                failures = 0;
                known = Some(from);
                position = from;
                let lag = horizon.lag(store, name, from).await;
                publish(ProjectionStatus {
                    name,
                    position: from,
                    active: !lost,
                    lag,
                });
                true
            }
            Ok((_, None)) => {
                return Held::Lost {
                    why: TAKEN,
                    position,
                };
            }
            Err(e) => {
                // The failed batch wrote nothing. A batch the database
                // aborted to break a deadlock is tried again soon; for
                // anything else back off, up to half a minute: the store may
                // be restarting.
                known = None;
                let delay = if matches!(e, StoreError::Contention) {
                    (CONTENTION_RETRY * 2u32.saturating_pow(failures.min(4))).min(POLL)
                } else {
                    POLL * 2u32.saturating_pow(failures.min(6))
                };
                failures = failures.saturating_add(1);
                metrics::counter!(
                    "mediation_store_errors_total",
                    "source" => "projection",
                    "kind" => e.kind()
                )
                .increment(1);
                tracing::warn!(projection = name, error = %e, retry_in = ?delay, "batch failed");
                if lost {
                    return Held::Lost { why: CUT, position };
                }
                tokio::select! {
                    () = stop.cancelled() => return Held::Stopped,
                    () = lease.lost() => return Held::Lost { why: CUT, position },
                    () = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        if lost {
            return Held::Lost { why: CUT, position };
        }
        if stop.is_cancelled() {
            return Held::Stopped;
        }
        if !caught_up {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return Held::Stopped,
            () = lease.lost() => return Held::Lost { why: CUT, position },
            _ = wake.changed() => {
                // Let the burst that woke it finish committing, so that it
                // goes in one batch.
                tokio::time::sleep(projection.gather()).await;
            }
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The next live batch after `known`, or after the stored checkpoint if
/// this runner does not know where it stands; with the position it was
/// read after.
async fn next_batch(
    store: &Store,
    projection: &dyn Projection,
    lease: &Lease,
    known: Option<u64>,
) -> Result<(u64, Option<Applied>), StoreError> {
    let from = match known {
        Some(from) => from,
        None => store.checkpoint(projection.name()).await?,
    };
    let applied = apply(store, projection, from, Target::Live(Some(lease)), BATCH).await?;
    Ok((from, applied))
}

/// The lag of a runner that has read all it can, looked up at most every
/// [`HORIZON_CHECK`]: events committed beyond the horizon count, and when
/// they have waited longer than [`HELD_BACK_WARNING`] the runner says which
/// transaction holds the horizon.
#[derive(Default)]
struct HeldBack {
    checked: Option<std::time::Instant>,
    lag: Duration,
    warned: Option<std::time::Instant>,
}

impl HeldBack {
    async fn lag(&mut self, store: &Store, name: &str, position: u64) -> Duration {
        if self.checked.is_some_and(|at| at.elapsed() < HORIZON_CHECK) {
            return self.lag;
        }
        self.checked = Some(std::time::Instant::now());
        match lag_after(store, position).await {
            Ok(lag) => self.lag = lag,
            Err(e) => {
                tracing::debug!(projection = name, error = %e, "lag not measured");
                return self.lag;
            }
        }
        if self.lag < HELD_BACK_WARNING {
            return self.lag;
        }
        // Warn once per HELD_BACK_WARNING, not on every check.
        if self
            .warned
            .is_some_and(|at| at.elapsed() < HELD_BACK_WARNING)
        {
            return self.lag;
        }
        self.warned = Some(std::time::Instant::now());
        match store.horizon().await {
            Ok(horizon) => match horizon.holder {
                Some(holder) => tracing::warn!(
                    projection = name,
                    lag_s = self.lag.as_secs_f64(),
                    readable = horizon.readable,
                    committed = horizon.committed,
                    holder_pid = holder.pid,
                    holder_age_s = holder.age.map(|a| a.as_secs_f64()),
                    holder_database = holder.database.as_deref(),
                    holder_state = holder.state.as_deref(),
                    "log readers held back: committed events wait behind a running transaction"
                ),
                None => tracing::warn!(
                    projection = name,
                    lag_s = self.lag.as_secs_f64(),
                    readable = horizon.readable,
                    committed = horizon.committed,
                    "projection lags behind committed events"
                ),
            },
            Err(e) => tracing::warn!(
                projection = name,
                lag_s = self.lag.as_secs_f64(),
                error = %e,
                "projection lags; what holds the horizon is unknown"
            ),
        }
        self.lag
    }
}
