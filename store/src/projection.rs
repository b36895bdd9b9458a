//! What projections need from the store: a batch (one transaction that
//! applies events to read-model tables and moves the projection's
//! checkpoint, all or nothing) and a lease (so that, with several server
//! processes on one PostgreSQL, each projection runs in one of them).

use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection, Transaction};

use crate::StoreError;
use crate::db::{Backend, Store};

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
    // SQLite: this process's writers take turns (see `Store::write_turn`).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("checkpoint", &self.checkpoint)
            .field("from", &self.from)
            .field("suffix", &self.suffix)
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// The name to use for read-model table `base` in this batch: the table
    /// itself, or its rebuild copy.
    pub fn table(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
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

    /// Moves the checkpoint to `to` and commits. Returns false, writing
    /// nothing, when the checkpoint is no longer where the batch began
    /// (another runner applied these events first).
    pub async fn commit(mut self, to: u64) -> Result<bool, StoreError> {
        let (from, to) = (to_i64(self.from), to_i64(to));
        let moved = match &mut self.tx {
            Tx::Postgres(tx) => sqlx::query(
                "UPDATE projection_checkpoints SET position = $3, updated_at = now() \
                 WHERE name = $1 AND position = $2",
            )
            .bind(&self.checkpoint)
            .bind(from)
            .bind(to)
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
            return Ok(false);
        }
        match self.tx {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(true)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The checkpoint name of projection `name`'s rebuild.
pub fn rebuild_checkpoint(name: &str) -> String {
    format!("{name}{REBUILD_SUFFIX}")
}

impl Store {
    /// How far the projection checkpoint `name` has applied the log (0: not
    /// started).
    pub async fn checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        let position: Option<i64> = match self.backend() {
            Backend::Postgres(pool) => {
                sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
                    .bind(name)
                    .fetch_optional(pool)
                    .await?
            }
            Backend::Sqlite(pool) => {
                sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = ?")
                    .bind(name)
                    .fetch_optional(pool)
                    .await?
            }
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
            _turn: turn,
        })
    }

    /// Takes the lease on projection `name`, if no other process holds it.
    /// On PostgreSQL the lease is a session advisory lock on a connection of
    /// its own: it lasts until the lease is dropped, or until this process
    /// dies and its connection closes, when another process can take it. On
    /// SQLite, one process serves a database file, and the lease is always
    /// granted.
    pub async fn try_lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        match self.backend() {
            Backend::Sqlite(_) => Ok(Some(Lease { connection: None })),
            Backend::Postgres(pool) => {
                let mut connection = pool.acquire().await?.detach();
                // Advisory locks belong to the database; engines in other
                // schemas of it (see docs/OPERATIONS.md) take their own.
                // In `public`, the key is the one earlier versions took.
                let granted: bool = sqlx::query_scalar(
                    "SELECT pg_try_advisory_lock(hashtext(CASE current_schema() \
                     WHEN 'public' THEN '' ELSE current_schema() || ':' END \
                     || 'projection:' || $1))",
                )
                .bind(name)
                .fetch_one(&mut connection)
                .await?;
                if granted {
                    Ok(Some(Lease {
                        connection: Some(connection),
                    }))
                } else {
                    let _ = sqlx::Connection::close(connection).await;
                    Ok(None)
                }
            }
        }
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

/// A projection's lease; see [`Store::try_lease`].
pub struct Lease {
    connection: Option<PgConnection>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Lease {
    /// Whether the lease still holds: on PostgreSQL, whether its connection
    /// still answers (if it broke, the lock is gone with it).
    pub async fn alive(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(connection) => sqlx::query("SELECT 1").execute(connection).await.is_ok(),
        }
    }

    /// Gives the lease up at once.
    pub async fn release(mut self) {
        if let Some(connection) = self.connection.take() {
            // Closing the session releases its advisory locks.
            let _ = sqlx::Connection::close(connection).await;
        }
    }
}
