//! What projections need from the store: a batch (one transaction that
//! applies events to read-model tables and moves the projection's
//! checkpoint, all or nothing) and a lease (so that, with several server
//! processes on one PostgreSQL, each projection runs in one of them).

use std::time::Duration;

use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection, Transaction};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::StoreError;
use crate::db::{Backend, Store};
use crate::sql::{Sql, to_i64};

/// The suffix of the tables a rebuild writes before they are swapped in.
pub const REBUILD_SUFFIX: &str = "__rebuild";

enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// One transaction of a projection: its writes, and the move of its
/// checkpoint from the position the batch was read after. Dropped without
/// [`Batch::commit`], it writes nothing.
pub struct Batch {
    tx: Tx,
    checkpoint: String,
    from: u64,
    suffix: &'static str,
    // What a rebuild carries from one of its batches to the next; see
    // `Batch::take_carried`.
    carry: Option<Box<dyn std::any::Any + Send>>,
    // The lease tenure the batch must still be under to commit; see
    // `Store::begin_fenced_batch`.
    fence: Option<i64>,
    // SQLite: this process's writers take turns (see `Store::write_turn`).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("checkpoint", &self.checkpoint)
            .field("from", &self.from)
            .field("suffix", &self.suffix)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// The name to use for read-model table `base` in this batch: the table
    /// itself, or its rebuild copy.
    pub fn table(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
    }

    /// Which SQL the batch's database speaks.
    pub fn dialect(&self) -> crate::Dialect {
        match &self.tx {
            Tx::Postgres(_) => crate::Dialect::Postgres,
            Tx::Sqlite(_) => crate::Dialect::Sqlite,
        }
    }

    /// The transaction's connection, on PostgreSQL.
    pub fn postgres(&mut self) -> Option<&mut PgConnection> {
        match &mut self.tx {
            Tx::Postgres(tx) => Some(&mut **tx),
            Tx::Sqlite(_) => None,
        }
    }

    /// The transaction's connection, on SQLite.
    pub fn sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match &mut self.tx {
            Tx::Sqlite(tx) => Some(&mut **tx),
            Tx::Postgres(_) => None,
        }
    }

    /// The position the batch was read after.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// In a rebuild's batch, what the projection left for it in the
    /// rebuild's previous batch ([`Batch::carry_on`]), or a
    /// `T::default()` the first time; `None` in a live batch. A projection
    /// keeps there what it would otherwise read back from the tables it
    /// wrote in earlier batches (nobody else writes a rebuild's tables): a
    /// cache, never the only copy, since a rebuild that fails starts over.
    pub fn take_carried<T: Default + Send + 'static>(&mut self) -> Option<T> {
        let carry = self.carry.as_mut()?;
        let carry = std::mem::replace(carry, Box::new(()));
        Some(carry.downcast::<T>().map_or_else(|_| T::default(), |t| *t))
    }

    /// Leaves `value` for the rebuild's next batch ([`Batch::take_carried`]);
    /// nothing in a live batch.
    pub fn carry_on<T: Send + 'static>(&mut self, value: T) {
        if let Some(carry) = self.carry.as_mut() {
            *carry = Box::new(value);
        }
    }

    /// Makes this a batch of a rebuild that carries state from batch to
    /// batch, handing it what the previous batch left ([`Batch::handed_on`],
    /// or `Box::new(())` for the first).
    pub fn hand_over(&mut self, carry: Box<dyn std::any::Any + Send>) {
        self.carry = Some(carry);
    }

    /// What the projection left for the next batch.
    pub fn handed_on(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        self.carry.take()
    }

    /// The lease tenure the batch is fenced by, if it is fenced (see
    /// [`Store::begin_fenced_batch`]).
    pub fn epoch(&self) -> Option<i64> {
        self.fence
    }

    /// Moves the checkpoint to `to` and commits. Returns false, writing
    /// nothing, when the checkpoint is no longer where the batch began
    /// (another runner applied these events first), or when a fenced
    /// batch's lease tenure has ended; [`Batch::finish`] says which.
    pub async fn commit(self, to: u64) -> Result<bool, StoreError> {
        Ok(self.finish(to).await? == Finished::Committed)
    }

    /// Moves the checkpoint to `to` and commits, if the checkpoint is still
    /// where the batch began and, for a fenced batch, its lease's tenure is
    /// still the newest. The compare-and-set and the fence are one
    /// `UPDATE` of the checkpoint row, so they hold at the commit: a
    /// takeover that raised the epoch first makes it match nothing, and one
    /// that comes later waits on the row until this batch has committed.
    pub async fn finish(mut self, to: u64) -> Result<Finished, StoreError> {
        let (from, to) = (to_i64(self.from), to_i64(to));
        let moved = match &mut self.tx {
            Tx::Postgres(tx) => sqlx::query(
                "UPDATE projection_checkpoints SET position = $3, updated_at = now() \
                 WHERE name = $1 AND position = $2 \
                 AND ($4::bigint IS NULL OR lease_epoch = $4)",
            )
            .bind(&self.checkpoint)
            .bind(from)
            .bind(to)
            .bind(self.fence)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
            Tx::Sqlite(tx) => sqlx::query(
                "UPDATE projection_checkpoints SET position = ?3, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 WHERE name = ?1 AND position = ?2",
            )
            .bind(&self.checkpoint)
            .bind(from)
            .bind(to)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        };
        if moved != 1 {
            // Which condition failed, as of now: a later tenure than the
            // batch's means the lease has passed to another process.
            if let (Some(fence), Tx::Postgres(tx)) = (self.fence, &mut self.tx) {
                let epoch: Option<i64> = sqlx::query_scalar(
                    "SELECT lease_epoch FROM projection_checkpoints WHERE name = $1",
                )
                .bind(&self.checkpoint)
                .fetch_optional(&mut **tx)
                .await?;
                if epoch != Some(fence) {
                    return Ok(Finished::Fenced);
                }
            }
            return Ok(Finished::Moved);
        }
        match self.tx {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(Finished::Committed)
    }
}

/// How [`Batch::finish`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The batch and the checkpoint's move committed.
    Committed,
    /// The checkpoint was no longer where the batch began; nothing was
    /// written.
    Moved,
    /// The lease the batch was fenced by had been taken over (a later
    /// tenure began); nothing was written.
    Fenced,
}

/// The checkpoint name of projection `name`'s rebuild.
pub fn rebuild_checkpoint(name: &str) -> String {
    format!("{name}{REBUILD_SUFFIX}")
}

impl Store {
    /// How far the projection checkpoint `name` has applied the log (0: not
    /// started).
    pub async fn checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        let sql = Sql::new("SELECT position FROM projection_checkpoints WHERE name = $1");
        let position: Option<i64> = match self.fetch_optional(&sql.bind(name)).await? {
            Some(row) => Some(row.get(0)?),
            None => None,
        };
        Ok(position.map_or(0, |p| u64::try_from(p).unwrap_or(0)))
    }

    /// Begins a batch of projection `name` that applies the events after
    /// `from`; with `rebuild`, into its rebuild tables under its rebuild
    /// checkpoint.
    pub async fn begin_batch(
        &self,
        name: &str,
        from: u64,
        rebuild: bool,
    ) -> Result<Batch, StoreError> {
        let checkpoint = if rebuild {
            rebuild_checkpoint(name)
        } else {
            name.to_owned()
        };
        let suffix = if rebuild { REBUILD_SUFFIX } else { "" };
        let turn = self.write_turn().await;
        let tx = match self.backend() {
            Backend::Postgres(pool) => {
                let mut tx = begin(pool).await?;
                sqlx::query(
                    "INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(&checkpoint)
                .execute(&mut *tx)
                .await?;
                Tx::Postgres(tx)
            }
            Backend::Sqlite(pool) => {
                let mut tx = begin(pool).await?;
                sqlx::query(
                    "INSERT INTO projection_checkpoints (name, position) VALUES (?, 0) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(&checkpoint)
                .execute(&mut *tx)
                .await?;
                Tx::Sqlite(tx)
            }
        };
        Ok(Batch {
            tx,
            checkpoint,
            from,
            suffix,
            carry: None,
            fence: None,
            _turn: turn,
        })
    }

    /// Begins a batch of projection `name`, as [`Store::begin_batch`] does,
    /// fenced by `lease`: it commits only while the tenure the lease opened
    /// (see [`Store::try_projection_lease`]) is still the newest, so that a
    /// process that lost the lease cannot move the checkpoint once another
    /// has taken it over.
    pub async fn begin_fenced_batch(
        &self,
        name: &str,
        from: u64,
        lease: &Lease,
    ) -> Result<Batch, StoreError> {
        let mut batch = self.begin_batch(name, from, false).await?;
        batch.fence = lease.epoch;
        Ok(batch)
    }

    /// Takes the lease on `name`, if no other process holds it. On
    /// PostgreSQL the lease is a session advisory lock on a connection of
    /// its own: it lasts until the lease is released or dropped, or until
    /// this process dies and its connection closes, when another process can
    /// take it. On SQLite, one process serves a database file, and the lease
    /// is always granted.
    ///
    /// While it is held, a task checks its session every [`LEASE_CHECK`]: a
    /// session that broke, did not answer within [`LEASE_CHECK_TIMEOUT`] or
    /// no longer holds the lock marks the lease lost ([`Lease::lost`]) and
    /// is closed.
    pub async fn try_lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        match self.backend() {
            Backend::Sqlite(_) => Ok(Some(Lease {
                keeper: None,
                epoch: None,
            })),
            Backend::Postgres(pool) => {
                let mut connection = pool.acquire().await?.detach();
                // Advisory locks belong to the database; engines in other
                // schemas of it (see docs/OPERATIONS.md) take their own.
                // In `public`, the key is the one earlier versions took.
                let taken: Result<(i64, bool, i32), sqlx::Error> = sqlx::query_as(
                    "SELECT key, pg_try_advisory_lock(key), pg_backend_pid() \
                     FROM (SELECT hashtext(CASE current_schema() \
                     WHEN 'public' THEN '' ELSE current_schema() || ':' END \
                     || 'projection:' || $1)::bigint AS key) AS lease",
                )
                .bind(name)
                .fetch_one(&mut connection)
                .await;
                match taken {
                    Ok((key, true, pid)) => Ok(Some(Lease::kept(connection, key, pid))),
                    Ok((_, false, _)) => {
                        let _ = sqlx::Connection::close(connection).await;
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// [`Store::try_lease`] for projection `name`, opening a new tenure: the
    /// lease epoch kept in the projection's checkpoint row is raised by one.
    /// Batches begun with [`Store::begin_fenced_batch`] under an earlier
    /// tenure no longer commit. On SQLite there are no tenures (one process
    /// serves the file) and batches are not fenced.
    pub async fn try_projection_lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let Some(mut lease) = self.try_lease(name).await? else {
            return Ok(None);
        };
        if let Backend::Postgres(pool) = self.backend() {
            // The lock is held, so no other process opens a tenure now. The
            // checkpoint row's lock, which this statement and every fenced
            // commit take, orders the new tenure after every commit of the
            // old one, or the old one's commit fails.
            let epoch: Result<i64, sqlx::Error> = sqlx::query_scalar(
                "INSERT INTO projection_checkpoints (name, position, lease_epoch) \
                 VALUES ($1, 0, 1) ON CONFLICT (name) DO UPDATE \
                 SET lease_epoch = projection_checkpoints.lease_epoch + 1 \
                 RETURNING lease_epoch",
            )
            .bind(name)
            .fetch_one(pool)
            .await;
            match epoch {
                Ok(epoch) => lease.epoch = Some(epoch),
                Err(e) => {
                    lease.release().await;
                    return Err(e.into());
                }
            }
        }
        Ok(Some(lease))
    }
}

/// `pool.begin()`, safe to cancel. sqlx 0.8 raises its transaction depth
/// only after BEGIN's round trip, so a future dropped during it (a rebuild
/// stopped, a task aborted) queues no rollback and the pool hands the
/// connection, still inside the transaction, to the next borrower, whose
/// statements then hold that transaction's locks and id for good (sqlx
/// issue 4393; on PostgreSQL every log reader waits below that id). A task
/// of its own finishes the BEGIN whatever becomes of the caller; a
/// transaction nobody receives is dropped there and rolled back as usual.
async fn begin<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
) -> Result<Transaction<'static, DB>, StoreError> {
    let pool = pool.clone();
    match tokio::spawn(async move { pool.begin().await }).await {
        Ok(begun) => Ok(begun?),
        Err(e) => Err(StoreError::Unavailable(format!(
            "a transaction could not be begun: {e}"
        ))),
    }
}

/// How often a lease's session is checked while the lease is held.
pub const LEASE_CHECK: Duration = Duration::from_millis(250);

/// How long a check of a lease's session may take before the lease is given
/// up as lost. With [`LEASE_CHECK`] it bounds how long a process goes on
/// believing in a lease it no longer holds: under 800 ms, whatever the load.
pub const LEASE_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// A lease; see [`Store::try_lease`] and [`Store::try_projection_lease`].
pub struct Lease {
    keeper: Option<Keeper>,
    epoch: Option<i64>,
}

/// The task that owns a lease's session on PostgreSQL and checks it.
struct Keeper {
    lost: watch::Receiver<bool>,
    release: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    pid: i32,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("pid", &self.pid())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// A lease held by `connection`'s session on the advisory lock `key`.
    fn kept(connection: PgConnection, key: i64, pid: i32) -> Self {
        let (lost_tx, lost) = watch::channel(false);
        let (release, released) = oneshot::channel();
        let task = tokio::spawn(keep(connection, key, pid, lost_tx, released));
        Self {
            keeper: Some(Keeper {
                lost,
                release: Some(release),
                task: Some(task),
                pid,
            }),
            epoch: None,
        }
    }

    /// The server process id of the session holding the lease, on
    /// PostgreSQL.
    pub fn pid(&self) -> Option<i32> {
        self.keeper.as_ref().map(|k| k.pid)
    }

    /// The tenure a projection's lease opened, on PostgreSQL; see
    /// [`Store::try_projection_lease`].
    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    /// Whether the lease still holds, as its latest check found (at most
    /// [`LEASE_CHECK`] plus [`LEASE_CHECK_TIMEOUT`] ago). Always true on
    /// SQLite.
    pub async fn alive(&mut self) -> bool {
        match &self.keeper {
            None => true,
            Some(keeper) => !*keeper.lost.borrow(),
        }
    }

    /// Resolves once the lease is found lost; never on SQLite.
    pub async fn lost(&self) {
        match &self.keeper {
            None => std::future::pending().await,
            Some(keeper) => {
                let mut lost = keeper.lost.clone();
                // A keeper that has gone has closed the session too.
                let _ = lost.wait_for(|lost| *lost).await;
            }
        }
    }

    /// Gives the lease up at once: when this returns, the lock is released
    /// (its session closed).
    pub async fn release(mut self) {
        if let Some(mut keeper) = self.keeper.take() {
            if let Some(release) = keeper.release.take() {
                let _ = release.send(());
            }
            if let Some(task) = keeper.task.take() {
                let _ = task.await;
            }
        }
    }
}

/// Checks the lease's session every [`LEASE_CHECK`] until the lease is
/// released or dropped, then closes it, which releases the lock. A check
/// that fails, finds the lock gone (a pooler may reset a session without
/// closing it) or takes longer than [`LEASE_CHECK_TIMEOUT`] marks the lease
/// lost and drops the session, so that a session that is merely slow does
/// not keep a lock its process no longer relies on.
async fn keep(
    mut connection: PgConnection,
    key: i64,
    pid: i32,
    lost: watch::Sender<bool>,
    mut released: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(LEASE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Released, or the lease dropped without a release.
            _ = &mut released => {
                let close = sqlx::Connection::close(connection);
                let _ = tokio::time::timeout(LEASE_CHECK_TIMEOUT, close).await;
                return;
            }
            _ = tick.tick() => {}
        }
        let check = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
             AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
             AND ((classid::bigint << 32) | objid::bigint) = $1)",
        )
        .bind(key)
        .fetch_one(&mut connection);
        match tokio::time::timeout(LEASE_CHECK_TIMEOUT, check).await {
            Ok(Ok(true)) => continue,
            Ok(Ok(false)) => {
                tracing::warn!(pid, "lease lost: its session no longer holds the lock")
            }
            Ok(Err(e)) => tracing::warn!(pid, error = %e, "lease lost: its session broke"),
            Err(_) => tracing::warn!(
                pid,
                timeout = ?LEASE_CHECK_TIMEOUT,
                "lease lost: its session did not answer in time"
            ),
        }
        lost.send_replace(true);
        // Dropping the connection closes its socket: the session ends, and
        // any lock it still held with it.
        drop(connection);
        return;
    }
}
