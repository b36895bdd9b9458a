//! Rebuilds a projection's read model from the start of the log into fresh
//! tables, and swaps them in when they have caught up.
//!
//! [`rebuild_together`] rebuilds several projections from one read of the
//! log, in three steps:
//!
//! 1. [`prepare`]: empty copies of each projection's tables, named
//!    `<table>__rebuild` ([`REBUILD_SUFFIX`]), with the same columns, keys and
//!    indexes, and the rebuild checkpoint reset to 0. Leftovers of an earlier,
//!    interrupted rebuild are dropped first.
//! 2. The log is read once, in batches of [`REBUILD_BATCH`] events (the next
//!    batch is read while the last one is applied), and each batch goes to
//!    every projection at once: into its copies, in a transaction of its own
//!    that commits with its rebuild checkpoint, exactly as the live tables do
//!    with theirs.
//! 3. [`swap`]: in one transaction, the events the log gained meanwhile are
//!    applied to the copies, the live tables are dropped, the copies take
//!    their names (and their indexes the original index names), and the live
//!    checkpoint moves to where the copies stand.
//!
//! Until the swap commits the live tables are not touched, so a rebuild that
//! fails or is stopped at any point leaves the read model as it was; the next
//! rebuild starts over.
//!
//! A rebuild may run beside a server on the same database. The server's
//! runner keeps the live tables up to date until the swap. The swap locks the
//! live tables (PostgreSQL: `ACCESS EXCLUSIVE`; SQLite: the single writer's
//! turn), which lets a batch in flight finish and holds the next one back;
//! that batch then finds the live checkpoint moved and is discarded, and the
//! runner carries on from the swapped-in position. Readers of the read model
//! wait for the swap, which is short: only the tail of the log and the
//! renames.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediation_store::{
    Backend, Lease, REBUILD_SUFFIX, RecordedEvent, Sql, Store, StoreError, rebuild_checkpoint,
    to_i64,
};
use sqlx::{PgConnection, SqliteConnection};

use crate::runner::{BATCH, Projection};

/// How often [`swap`] tries again when the live projection moved, or a
/// PostgreSQL deadlock with its runner was broken in the runner's favour,
/// before giving up.
const SWAP_ATTEMPTS: u32 = 20;

/// How many fresh tables a rebuild makes logged, indexes and analyses at
/// once: enough to keep a few of the database's cores busy, few enough to
/// leave the connection pool room.
const FINISHING: usize = 4;

/// How long a rebuild waits for another rebuild of the same projection to
/// let go before giving up.
pub const EXCLUSIVE_WAIT: Duration = Duration::from_secs(5);

/// How far a rebuild has got, as reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Events applied to the fresh tables so far.
    pub events: u64,
    /// How many events the log held when the rebuild began: an estimate of
    /// the whole, since writers may add more meanwhile.
    pub total: u64,
    /// The log position the fresh tables have reached.
    pub position: u64,
    /// Time since the rebuild began.
    pub elapsed: Duration,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebuilt {
    /// Events applied, including those applied during the swap.
    pub events: u64,
    /// How long the whole rebuild took, swap included.
    pub elapsed: Duration,
    /// Events per second over the whole rebuild.
    pub rate_per_second: f64,
}

/// Where [`swap`] left the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swapped {
    /// The log position the swapped-in tables (and the live checkpoint)
    /// stand at.
    pub position: u64,
    /// Events the log gained since the last batch, applied during the swap.
    pub tail: u64,
}

/// Rebuilds `projection` from position 0 into fresh tables and swaps them
/// in; calls `progress` after every batch and once at the end. On
/// PostgreSQL, waits up to [`EXCLUSIVE_WAIT`] for another rebuild of the
/// same projection (in any process) to finish, then gives up with
/// [`StoreError::Busy`]. On SQLite, where one process serves a file,
/// nothing keeps two concurrent rebuilds of one projection apart: do not
/// start them.
pub async fn rebuild(
    store: &Store,
    projection: &Arc<dyn Projection>,
    progress: impl FnMut(Progress),
) -> Result<Rebuilt, StoreError> {
    rebuild_together(
        store,
        std::slice::from_ref(projection),
        REBUILD_BATCH,
        progress,
    )
    .await
}

/// How many events one rebuild transaction applies: more than a live
/// batch, since nobody waits on a rebuild's progress event by event and
/// fewer, larger transactions apply the log faster.
pub const REBUILD_BATCH: u32 = 40 * BATCH;

/// [`rebuild`], applying at most `batch_size` events per transaction.
pub async fn rebuild_in_batches(
    store: &Store,
    projection: &Arc<dyn Projection>,
    batch_size: u32,
    progress: impl FnMut(Progress),
) -> Result<Rebuilt, StoreError> {
    rebuild_together(
        store,
        std::slice::from_ref(projection),
        batch_size,
        progress,
    )
    .await
}

/// Rebuilds `projections` side by side from one read of the log: each
/// batch of at most `batch_size` events is read once, while the previous
/// one is being applied, and applied to every projection at once, each on
/// a task of its own (so that they share the cores) and in a transaction
/// of its own under its own rebuild checkpoint. Then each is analysed and
/// swapped in as [`rebuild`] does. `progress` counts the events read.
/// Fails as a whole if any projection fails; the live tables of those not
/// yet swapped in stay as they were.
pub async fn rebuild_together(
    store: &Store,
    projections: &[Arc<dyn Projection>],
    batch_size: u32,
    mut progress: impl FnMut(Progress),
) -> Result<Rebuilt, StoreError> {
    let started = Instant::now();
    // Two rebuilds of one projection would drop each other's tables. The
    // lock is a lease under another name than the live runner's, so that a
    // rebuild and the runner do not exclude each other.
    let mut leases = Vec::with_capacity(projections.len());
    for projection in projections {
        leases.push(exclusive(store, projection.name()).await?);
    }
    let total = count_events(store).await?;
    for projection in projections {
        prepare(store, projection.as_ref()).await?;
    }
    let mut events = 0u64;
    let mut report = |events: u64, position: u64| {
        progress(Progress {
            events,
            total,
            position,
            elapsed: started.elapsed(),
        });
    };
    report(0, 0);
    // `prepare` reset every rebuild checkpoint to 0.
    let mut position = 0u64;
    let mut batch = Arc::new(store.read_log(position, batch_size).await?);
    // What each projection carries from batch to batch
    // (`Batch::take_carried`).
    let mut carries: Vec<Box<dyn Any + Send>> =
        projections.iter().map(|_| Box::new(()) as _).collect();
    while let Some(last) = batch.last() {
        let to = last.position;
        // Each projection applies the batch on a task of its own while the
        // database serves the next batch. The tasks live in a set that
        // aborts them if this rebuild is dropped, so that none writes on
        // after it (into the copies the next rebuild prepares).
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (projection, carry)) in projections.iter().zip(carries.drain(..)).enumerate() {
            let (store, projection, events) =
                (store.clone(), Arc::clone(projection), Arc::clone(&batch));
            tasks.spawn(async move {
                let applied =
                    apply_read(&store, projection.as_ref(), position, to, &events, carry).await;
                Done::Applied(i, applied)
            });
        }
        {
            let store = store.clone();
            tasks.spawn(async move { Done::Read(store.read_log(to, batch_size).await) });
        }
        let mut applied: Vec<Option<Box<dyn Any + Send>>> =
            projections.iter().map(|_| None).collect();
        let (mut next, mut failed) = (None, None);
        while let Some(done) = tasks.join_next().await {
            match joined(done)? {
                Done::Applied(i, Ok(carry)) => applied[i] = Some(carry),
                Done::Read(Ok(events)) => next = Some(events),
                Done::Applied(_, Err(e)) | Done::Read(Err(e)) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        carries = applied.into_iter().flatten().collect();
        let Some(next) = next else {
            tracing::error!("the rebuild's read of the next batch went missing");
            return Err(StoreError::Internal);
        };
        events = events.saturating_add(u64::try_from(batch.len()).unwrap_or(u64::MAX));
        position = to;
        report(events, position);
        // Dropping a batch's events (their JSON trees) is a good part of
        // the work: done aside, not between this batch and the next.
        let done = std::mem::replace(&mut batch, Arc::new(next));
        tokio::task::spawn_blocking(move || drop(done));
    }
    // Making the fresh tables durable, indexing and analysing them is the
    // database's work, table by table: each table on a task of its own, so
    // that the database uses every core for it.
    // At most FINISHING at a time: each holds a connection of the pool for
    // as long as its table takes, and one waiting for a connection longer
    // than the pool's acquire timeout would fail the rebuild.
    let turns = Arc::new(tokio::sync::Semaphore::new(FINISHING));
    let mut finishing = tokio::task::JoinSet::new();
    for projection in projections {
        for table in checked_tables(projection.as_ref())? {
            let (store, turns) = (store.clone(), Arc::clone(&turns));
            finishing.spawn(async move {
                let _turn = turns
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::Internal)?;
                finish(&store, table).await?;
                analyze(&store, table).await
            });
        }
    }
    let mut failed = None;
    while let Some(done) = finishing.join_next().await {
        if let Err(e) = joined(done).and_then(|finished| finished) {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let mut tail = 0u64;
    for projection in projections {
        let projection = projection.as_ref();
        let swapped = swap(store, projection).await?;
        tail = tail.max(swapped.tail);
        position = position.max(swapped.position);
    }
    events = events.saturating_add(tail);
    report(events, position);
    for lease in leases {
        lease.release().await;
    }
    let elapsed = started.elapsed();
    let seconds = elapsed.as_secs_f64();
    let rate_per_second = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    tracing::debug!(
        projections = projections.len(),
        events,
        ?elapsed,
        rate_per_second,
        "rebuilt"
    );
    Ok(Rebuilt {
        events,
        elapsed,
        rate_per_second,
    })
}

/// What one of a rebuild's tasks did for a batch.
enum Done {
    /// Projection `i` applied it, and carries this on.
    Applied(usize, Result<Box<dyn Any + Send>, StoreError>),
    /// The next batch was read.
    Read(Result<Vec<RecordedEvent>, StoreError>),
}

/// What a rebuild's task returned; a task that panicked passes its panic
/// on, as the same work done in place would have.
fn joined<T>(outcome: Result<T, tokio::task::JoinError>) -> Result<T, StoreError> {
    match outcome {
        Ok(done) => Ok(done),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => {
            tracing::error!(error = %e, "a rebuild task was cancelled");
            Err(StoreError::Internal)
        }
    }
}

/// Applies `events`, read after `from` and ending at `to`, to
/// `projection`'s rebuild tables in one transaction with its rebuild
/// checkpoint; returns what the projection carries on to the next batch.
async fn apply_read(
    store: &Store,
    projection: &dyn Projection,
    from: u64,
    to: u64,
    events: &[RecordedEvent],
    carry: Box<dyn Any + Send>,
) -> Result<Box<dyn Any + Send>, StoreError> {
    let name = projection.name();
    let started = Instant::now();
    let mut batch = store.begin_batch(name, from, true).await?;
    batch.hand_over(carry);
    projection.apply(&mut batch, events).await?;
    let carry = batch.handed_on().unwrap_or_else(|| Box::new(()));
    if batch.commit(to).await? {
        tracing::debug!(
            projection = name,
            events = events.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "rebuild batch"
        );
        Ok(carry)
    } else {
        // Only another rebuild moves the rebuild checkpoint, and the
        // exclusive lease keeps those out.
        Err(StoreError::Busy(format!(
            "another rebuild of {name} moved its checkpoint; run the rebuild again"
        )))
    }
}

/// Takes the lock that keeps two rebuilds of projection `name` apart.
/// Waits a moment for it: a rebuild that was just stopped may not have
/// released it yet (its session is closing).
async fn exclusive(store: &Store, name: &str) -> Result<Lease, StoreError> {
    let started = Instant::now();
    loop {
        if let Some(lease) = store.try_lease(&format!("replay:{name}")).await? {
            return Ok(lease);
        }
        if started.elapsed() >= EXCLUSIVE_WAIT {
            return Err(StoreError::Busy(format!(
                "another rebuild of {name} is running; try again when it has finished"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first step of [`rebuild`]: creates empty copies of `projection`'s
/// tables (dropping those of an earlier rebuild) and resets its rebuild
/// checkpoint to 0, in one transaction. The live tables are only read.
pub async fn prepare(store: &Store, projection: &dyn Projection) -> Result<(), StoreError> {
    let tables = checked_tables(projection)?;
    let rebuild = rebuild_checkpoint(projection.name());
    // A batch of the rebuild is the transaction: on SQLite it takes this
    // process's write turn, like every other writer.
    let mut batch = store.begin_batch(projection.name(), 0, true).await?;
    if let Some(connection) = batch.postgres() {
        for table in tables {
            let copy = format!("{table}{REBUILD_SUFFIX}");
            // Checked first rather than `DROP TABLE IF EXISTS`, whose notice
            // would land in the log of every first rebuild.
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&copy)
                .fetch_one(&mut *connection)
                .await?;
            if exists {
                execute_pg(connection, &format!("DROP TABLE {}", quoted(&copy))).await?;
            }
            // Unlogged while it fills: the rows reach the WAL once, when
            // `finish` makes the table logged, not row by row. A crash
            // empties an unlogged table, which only costs this rebuild.
            execute_pg(
                connection,
                &format!(
                    "CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING ALL)",
                    quoted(&copy),
                    quoted(table)
                ),
            )
            .await?;
            // Indexes other than the keys are built once, after loading,
            // rather than kept row by row; the keys stay, as the read
            // models' upserts need them.
            let secondary: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = $1::regclass AND NOT i.indisunique",
            )
            .bind(quoted(&copy))
            .fetch_all(&mut *connection)
            .await?;
            for index in secondary {
                execute_pg(connection, &format!("DROP INDEX {}", quoted(&index))).await?;
            }
        }
    } else if let Some(connection) = batch.sqlite() {
        for table in tables {
            copy_sqlite_table(connection, table).await?;
        }
    }
    let reset = Sql::new("UPDATE projection_checkpoints SET position = 0 WHERE name = $1");
    batch.execute(&reset.bind(&rebuild)).await?;
    // The checkpoint is at 0 now; committing "from 0 to 0" commits.
    if batch.commit(0).await? {
        Ok(())
    } else {
        tracing::error!(
            projection = projection.name(),
            "rebuild checkpoint moved while preparing"
        );
        Err(StoreError::Internal)
    }
}

/// The last step of [`rebuild`]: in one transaction, applies to the fresh
/// tables the events after the rebuild checkpoint, replaces the live tables
/// with them and moves the live checkpoint to their position. Then removes
/// the rebuild checkpoint. Retries when the live runner moved meanwhile.
pub async fn swap(store: &Store, projection: &dyn Projection) -> Result<Swapped, StoreError> {
    let name = projection.name();
    ensure_checkpoint(store, name).await?;
    for attempt in 1..=SWAP_ATTEMPTS {
        if let Some(swapped) = try_swap(store, projection).await? {
            // The row has served its purpose; one left behind by a failure
            // here is harmless, as the next rebuild resets it.
            if let Err(e) = delete_checkpoint(store, &rebuild_checkpoint(name)).await {
                tracing::warn!(projection = name, error = %e, "rebuild checkpoint not removed");
            }
            return Ok(swapped);
        }
        tracing::debug!(
            projection = name,
            attempt,
            "live projection moved; swapping again"
        );
        tokio::time::sleep(Duration::from_millis(50) * attempt).await;
    }
    Err(StoreError::Unavailable(format!(
        "the live projection {name} kept moving during the swap; run the rebuild again"
    )))
}

/// PostgreSQL: makes the fresh copy of `table` logged (written to the WAL
/// once, whole), so that it survives a crash once swapped in, and then
/// builds the indexes [`prepare`] left off it, as the live table defines
/// them. In that order, since making a table logged rewrites it with every
/// index it has.
async fn finish(store: &Store, table: &str) -> Result<(), StoreError> {
    let Backend::Postgres(pool) = store.backend() else {
        return Ok(());
    };
    let mut connection = pool.acquire().await?;
    let copy = format!("{table}{REBUILD_SUFFIX}");
    execute_pg(
        &mut connection,
        &format!("ALTER TABLE {} SET LOGGED", quoted(&copy)),
    )
    .await?;
    let definitions: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
         WHERE i.indrelid = $1::regclass AND NOT i.indisunique ORDER BY i.indexrelid",
    )
    .bind(quoted(table))
    .fetch_all(&mut *connection)
    .await?;
    for definition in definitions {
        // "CREATE INDEX name ON schema.table USING …": the same index,
        // named by PostgreSQL, on the copy; the swap gives it the
        // original's name.
        let Some((_, rest)) = definition.split_once(" USING ") else {
            tracing::error!(table, definition, "cannot read this index definition");
            return Err(StoreError::Internal);
        };
        execute_pg(
            &mut connection,
            &format!("CREATE INDEX ON {} USING {rest}", quoted(&copy)),
        )
        .await?;
    }
    Ok(())
}

/// Gives PostgreSQL's planner statistics on the fresh copy of `table`
/// before it goes live: without them it plans queries on a million-row table as if it
/// were empty until autovacuum comes round. (SQLite's planner does without,
/// and keeps no statistics unless asked.)
async fn analyze(store: &Store, table: &str) -> Result<(), StoreError> {
    let Backend::Postgres(pool) = store.backend() else {
        return Ok(());
    };
    sqlx::query(&format!("ANALYZE {table}{REBUILD_SUFFIX}"))
        .execute(pool)
        .await?;
    Ok(())
}

/// One attempt at the swap; `None` when it has to be tried again (nothing
/// was written).
async fn try_swap(
    store: &Store,
    projection: &dyn Projection,
) -> Result<Option<Swapped>, StoreError> {
    let name = projection.name();
    let tables = checked_tables(projection)?;
    let rebuild = rebuild_checkpoint(name);
    let live_from = store.checkpoint(name).await?;
    let rebuilt_from = store.checkpoint(&rebuild).await?;
    let mut batch = store.begin_batch(name, rebuilt_from, true).await?;

    // Hold the live runner back, then check that neither checkpoint moved
    // since they were read above.
    if let Some(connection) = batch.postgres()
        && !lock_pg_tables(connection, tables).await?
    {
        return Ok(None);
    }
    // On SQLite, the write turn and its single writer already exclude the
    // runner from here on.
    let names = [name.to_owned(), rebuild.clone()];
    let dialect = batch.dialect();
    let read = Sql::new(format!(
        "SELECT name, position FROM projection_checkpoints WHERE {}{}",
        dialect.any("name", 1),
        dialect.pick(" FOR UPDATE", "")
    ))
    .bind(&names[..]);
    let positions: Vec<(String, i64)> = batch
        .fetch_all(&read)
        .await?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<Result<_, StoreError>>()?;
    let position_of = |checkpoint: &str| {
        positions
            .iter()
            .find(|(n, _)| n == checkpoint)
            .map(|(_, p)| u64::try_from(*p).unwrap_or(0))
    };
    if position_of(name) != Some(live_from) || position_of(&rebuild) != Some(rebuilt_from) {
        return Ok(None);
    }

    // The tail of the log, into the fresh tables, within this transaction.
    let mut at = rebuilt_from;
    let mut tail = 0u64;
    loop {
        let events = store.read_log(at, BATCH).await?;
        let Some(last) = events.last() else { break };
        let to = last.position;
        projection.apply(&mut batch, &events).await?;
        tail = tail.saturating_add(u64::try_from(events.len()).unwrap_or(u64::MAX));
        at = to;
    }

    if let Some(connection) = batch.postgres() {
        for table in tables {
            swap_pg_table(connection, table).await?;
        }
    } else if let Some(connection) = batch.sqlite() {
        for table in tables {
            swap_sqlite_table(connection, table).await?;
        }
    }
    let now = batch
        .dialect()
        .pick("now()", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')");
    let moved = Sql::new(format!(
        "UPDATE projection_checkpoints SET position = $2, updated_at = {now} WHERE name = $1"
    ))
    .bind(name)
    .bind(to_i64(at));
    batch.execute(&moved).await?;
    if batch.commit(at).await? {
        tracing::debug!(
            projection = name,
            position = at,
            tail,
            "rebuilt tables swapped in"
        );
        Ok(Some(Swapped { position: at, tail }))
    } else {
        Ok(None)
    }
}

/// `projection.tables()`, each checked to be a plain lower-case SQL name, as
/// the migrations create them: they are put into SQL text.
fn checked_tables(projection: &dyn Projection) -> Result<&'static [&'static str], StoreError> {
    let tables = projection.tables();
    for table in tables {
        let plain = !table.is_empty()
            && table
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !plain {
            tracing::error!(
                projection = projection.name(),
                table,
                "not a plain table name"
            );
            return Err(StoreError::Internal);
        }
    }
    Ok(tables)
}

/// `name` as a quoted SQL identifier (both backends).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn count_events(store: &Store) -> Result<u64, StoreError> {
    let sql = Sql::new("SELECT count(*) FROM events");
    match store.fetch_optional(&sql).await? {
        Some(row) => row.count(0),
        None => Ok(0),
    }
}

/// Creates checkpoint `name` at 0 if it does not exist, so that the swap
/// always has a row to lock.
async fn ensure_checkpoint(store: &Store, name: &str) -> Result<(), StoreError> {
    let sql = Sql::new(
        "INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) \
         ON CONFLICT (name) DO NOTHING",
    );
    store.execute(&sql.bind(name)).await?;
    Ok(())
}

async fn delete_checkpoint(store: &Store, name: &str) -> Result<(), StoreError> {
    let sql = Sql::new("DELETE FROM projection_checkpoints WHERE name = $1");
    store.execute(&sql.bind(name)).await?;
    Ok(())
}

async fn execute_pg(connection: &mut PgConnection, sql: &str) -> Result<(), StoreError> {
    sqlx::query(sql).execute(connection).await?;
    Ok(())
}

async fn execute_sqlite(connection: &mut SqliteConnection, sql: &str) -> Result<(), StoreError> {
    sqlx::query(sql).execute(connection).await?;
    Ok(())
}

/// Locks the live tables against the runner: a batch in flight finishes
/// first, the next waits for this transaction. False when PostgreSQL broke
/// a deadlock with the runner (which may take the tables in another order)
/// by failing this side; the caller tries again.
async fn lock_pg_tables(
    connection: &mut PgConnection,
    tables: &[&str],
) -> Result<bool, StoreError> {
    if tables.is_empty() {
        return Ok(true);
    }
    let list: Vec<String> = tables.iter().map(|t| quoted(t)).collect();
    let sql = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", list.join(", "));
    match sqlx::query(&sql).execute(connection).await {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("40P01") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Each index of `table` on PostgreSQL, with a description of what it
/// indexes that does not depend on its name or its table's.
async fn pg_indexes(
    connection: &mut PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT c.relname::text, concat_ws('|', i.indisprimary::text, i.indisunique::text, \
                i.indkey::text, i.indclass::text, i.indcollation::text, i.indoption::text, \
                am.amname::text, coalesce(pg_get_expr(i.indexprs, i.indrelid), '-'), \
                coalesce(pg_get_expr(i.indpred, i.indrelid), '-')) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam \
         WHERE i.indrelid = $1::regclass ORDER BY c.relname",
    )
    .bind(quoted(table))
    .fetch_all(connection)
    .await?)
}

/// PostgreSQL: drops `table`, gives its copy its name, and gives the copy's
/// indexes (which `LIKE … INCLUDING ALL` named after the copy) the original
/// index names, so that names do not drift from one rebuild to the next.
async fn swap_pg_table(connection: &mut PgConnection, table: &str) -> Result<(), StoreError> {
    let copy = format!("{table}{REBUILD_SUFFIX}");
    let mut originals = pg_indexes(connection, table).await?;
    let copies = pg_indexes(connection, &copy).await?;
    execute_pg(connection, &format!("DROP TABLE {}", quoted(table))).await?;
    execute_pg(
        connection,
        &format!("ALTER TABLE {} RENAME TO {}", quoted(&copy), quoted(table)),
    )
    .await?;
    for (index, key) in copies {
        let Some(i) = originals.iter().position(|(_, k)| *k == key) else {
            continue;
        };
        let (original, _) = originals.swap_remove(i);
        if original != index {
            execute_pg(
                connection,
                &format!(
                    "ALTER INDEX {} RENAME TO {}",
                    quoted(&index),
                    quoted(&original)
                ),
            )
            .await?;
        }
    }
    Ok(())
}

/// SQLite: creates `<table>__rebuild` empty, with the table's own
/// definition and its indexes (named `<index>__rebuild`), after dropping a
/// leftover copy.
async fn copy_sqlite_table(
    connection: &mut SqliteConnection,
    table: &str,
) -> Result<(), StoreError> {
    let copy = format!("{table}{REBUILD_SUFFIX}");
    execute_sqlite(
        connection,
        &format!("DROP TABLE IF EXISTS {}", quoted(&copy)),
    )
    .await?;
    // Indexes SQLite makes itself for keys have no SQL; the copy's
    // definition makes them again.
    let objects: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master \
         WHERE tbl_name = ? AND type IN ('table', 'index') AND sql IS NOT NULL \
         ORDER BY type = 'index', name",
    )
    .bind(table)
    .fetch_all(&mut *connection)
    .await?;
    if !objects.iter().any(|(kind, _, _)| kind == "table") {
        tracing::error!(table, "read-model table missing: is the schema migrated?");
        return Err(StoreError::Internal);
    }
    for (kind, name, sql) in objects {
        let renamed = if kind == "table" {
            renamed_create(&sql, &copy, None)
        } else {
            renamed_create(&sql, &format!("{name}{REBUILD_SUFFIX}"), Some(&copy))
        };
        let Some(renamed) = renamed else {
            tracing::error!(
                table,
                object = name,
                sql,
                "cannot read this definition to copy it"
            );
            return Err(StoreError::Internal);
        };
        execute_sqlite(connection, &renamed).await?;
    }
    Ok(())
}

/// SQLite: drops `table`, gives its copy its name, and re-creates the
/// original indexes under their original names (SQLite cannot rename an
/// index).
async fn swap_sqlite_table(
    connection: &mut SqliteConnection,
    table: &str,
) -> Result<(), StoreError> {
    let copy = format!("{table}{REBUILD_SUFFIX}");
    let indexes = "SELECT name, sql FROM sqlite_master \
                   WHERE tbl_name = ? AND type = 'index' AND sql IS NOT NULL ORDER BY name";
    let originals: Vec<(String, String)> = sqlx::query_as(indexes)
        .bind(table)
        .fetch_all(&mut *connection)
        .await?;
    execute_sqlite(connection, &format!("DROP TABLE {}", quoted(table))).await?;
    execute_sqlite(
        connection,
        &format!("ALTER TABLE {} RENAME TO {}", quoted(&copy), quoted(table)),
    )
    .await?;
    let copies: Vec<(String, String)> = sqlx::query_as(indexes)
        .bind(table)
        .fetch_all(&mut *connection)
        .await?;
    for (index, _) in copies {
        execute_sqlite(connection, &format!("DROP INDEX {}", quoted(&index))).await?;
    }
    for (_, sql) in originals {
        execute_sqlite(connection, &sql).await?;
    }
    Ok(())
}

/// `sql`, a `CREATE TABLE` or `CREATE [UNIQUE] INDEX` statement as SQLite
/// keeps it in `sqlite_master`, creating `name` instead, and for an index,
/// on table `on` instead. `None` if the statement is not of that shape.
fn renamed_create(sql: &str, name: &str, on: Option<&str>) -> Option<String> {
    let mut words = Words { sql, at: 0 };
    words.keyword("CREATE")?;
    if on.is_some() {
        words.keyword("UNIQUE");
        words.keyword("INDEX")?;
    } else {
        words.keyword("TABLE")?;
    }
    if words.keyword("IF").is_some() {
        words.keyword("NOT")?;
        words.keyword("EXISTS")?;
    }
    let object = words.identifier()?;
    let mut out = String::with_capacity(sql.len() + 16);
    out.push_str(&sql[..object.0]);
    out.push_str(&quoted(name));
    match on {
        None => out.push_str(&sql[object.1..]),
        Some(table) => {
            words.keyword("ON")?;
            let target = words.identifier()?;
            out.push_str(&sql[object.1..target.0]);
            out.push_str(&quoted(table));
            out.push_str(&sql[target.1..]);
        }
    }
    Some(out)
}

/// A cursor over the head of a SQL statement: keywords and identifiers,
/// with the whitespace and comments between them skipped.
struct Words<'a> {
    sql: &'a str,
    at: usize,
}

impl Words<'_> {
    fn skip_blanks(&mut self) {
        loop {
            let rest = &self.sql[self.at..];
            let trimmed = rest.trim_start();
            self.at += rest.len() - trimmed.len();
            if trimmed.starts_with("--") {
                self.at += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if let Some(comment) = trimmed.strip_prefix("/*") {
                self.at += comment.find("*/").map_or(trimmed.len(), |end| end + 4);
            } else {
                return;
            }
        }
    }

    /// Consumes `word` (any case) if it comes next.
    fn keyword(&mut self, word: &str) -> Option<()> {
        self.skip_blanks();
        let rest = &self.sql[self.at..];
        let head = rest.get(..word.len())?;
        let boundary = rest[word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_word_char(c));
        if head.eq_ignore_ascii_case(word) && boundary {
            self.at += word.len();
            Some(())
        } else {
            None
        }
    }

    /// Consumes the identifier that comes next, quoted or bare; returns its
    /// byte range, quotes included.
    fn identifier(&mut self) -> Option<(usize, usize)> {
        self.skip_blanks();
        let start = self.at;
        let rest = &self.sql[start..];
        let first = rest.chars().next()?;
        let len = match first {
            '"' | '`' | '\'' => {
                // A doubled quote stands for itself inside the name.
                let mut chars = rest.char_indices().skip(1).peekable();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    if c == first {
                        if chars.peek().is_some_and(|(_, next)| *next == first) {
                            chars.next();
                        } else {
                            end = Some(i + 1);
                            break;
                        }
                    }
                }
                end?
            }
            '[' => rest.find(']')? + 1,
            c if is_word_char(c) => rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len()),
            _ => return None,
        };
        self.at = start + len;
        Some((start, start + len))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::renamed_create;

    #[test]
    fn renames_a_table_as_migrations_and_renames_leave_it() {
        assert_eq!(
            renamed_create(
                "CREATE TABLE case_index\n(\n a text\n) STRICT",
                "case_index__rebuild",
                None
            )
            .as_deref(),
            Some("CREATE TABLE \"case_index__rebuild\"\n(\n a text\n) STRICT")
        );
        assert_eq!(
            renamed_create(
                "CREATE TABLE \"case_index\" (a text, \"b\"\"c\" int)",
                "x",
                None
            )
            .as_deref(),
            Some("CREATE TABLE \"x\" (a text, \"b\"\"c\" int)")
        );
        assert_eq!(
            renamed_create("create table if not exists [t](a)", "x", None).as_deref(),
            Some("create table if not exists \"x\"(a)")
        );
    }

    #[test]
    fn renames_an_index_and_its_table() {
        assert_eq!(
            renamed_create(
                "CREATE INDEX case_index_by_status ON case_index (aggregate_type, status, case_id)",
                "case_index_by_status__rebuild",
                Some("case_index__rebuild"),
            )
            .as_deref(),
            Some(
                "CREATE INDEX \"case_index_by_status__rebuild\" ON \"case_index__rebuild\" \
                 (aggregate_type, status, case_id)"
            )
        );
        assert_eq!(
            renamed_create(
                "CREATE UNIQUE INDEX /* why */ \"i\" ON `t`(a) WHERE a IS NOT NULL",
                "j",
                Some("u"),
            )
            .as_deref(),
            Some("CREATE UNIQUE INDEX /* why */ \"j\" ON \"u\"(a) WHERE a IS NOT NULL")
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(renamed_create("CREATE VIEW v AS SELECT 1", "x", None), None);
        assert_eq!(renamed_create("CREATE TABLE", "x", None), None);
        assert_eq!(renamed_create("CREATE INDEX i (a)", "x", Some("t")), None);
        assert_eq!(
            renamed_create("CREATE TABLE tablex(a)", "x", Some("t")),
            None
        );
    }
}
