//! Appending one command's events: the engine's own write path.
//!
//! postgres-es and sqlite-es append with one INSERT per event inside an
//! explicit transaction, and give no way to learn the positions the log
//! assigned. Here a command's events go in as one statement that reports
//! the last position:
//!
//! - **PostgreSQL**: one statement, a multi-row `INSERT … RETURNING
//!   position` with the request record and the snapshot as CTEs beside it,
//!   which is atomic on its own, so a command costs one round trip to write
//!   (three with postgres-es, plus one more to read its position back) and
//!   enters no PL/pgSQL. Concurrent commits share WAL flushes in PostgreSQL
//!   itself.
//! - **SQLite**: one writer thread, on a connection of its own, commits the
//!   appends that are waiting together (group commit): one transaction, one
//!   WAL sync, each command one INSERT, which SQLite undoes whole if it
//!   fails, so that a conflicting command fails alone. SQLite
//!   syncs once per transaction, so this is what lets the embedded store
//!   take more commands per second than the disk takes syncs.
//!
//! The rows are the ones postgres-es and sqlite-es write (same columns,
//! same payload serialisation), which they still read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;

/// One event to append.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
}

/// A snapshot to write with the events, in the same statement (PostgreSQL)
/// or transaction (SQLite).
#[derive(Debug, Clone)]
pub(crate) struct NewSnapshot {
    pub version: i64,
    pub revision: i64,
    pub payload: String,
}

/// One command's append.
#[derive(Debug)]
pub(crate) struct Append {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    /// The case's version the command was decided on; the events take the
    /// sequences after it.
    pub after: u64,
    pub events: Vec<NewEvent>,
    pub metadata: Value,
    /// The request to record with the events, for idempotency.
    pub request: Option<NewRequest>,
    pub snapshot: Option<NewSnapshot>,
}

/// The record of a request, written with its events; a second execution of
/// the same `(agency, request_id)` is refused by the primary key.
#[derive(Debug, Clone)]
pub(crate) struct NewRequest {
    pub agency: String,
    pub request_id: String,
    pub fingerprint: String,
    /// This execution's id: SQLite's trigger tells a second execution from
    /// the events of the first by it.
    pub command_id: String,
}

/// Why an append wrote nothing.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// A unique key refused it: another command took one of its sequences,
    /// or its request id was carried out by another execution.
    Conflict,
    /// The database failed.
    Store(StoreError),
}

impl From<sqlx::Error> for AppendError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            // PostgreSQL 23505; SQLite's unique and primary-key violations,
            // and the request trigger's refusal, are all constraint errors
            // (code 19 and its extended codes, which end in that byte).
            let constraint = match db.code().as_deref() {
                Some("23505") => true,
                Some(code) => code.parse::<u32>().is_ok_and(|n| n & 0xff == 19),
                None => false,
            };
            if constraint || db.is_unique_violation() {
                return Self::Conflict;
            }
        }
        Self::Store(StoreError::from_sqlx(err))
    }
}

fn sequences(append: &Append) -> impl Iterator<Item = i64> + '_ {
    (1..=append.events.len() as u64).map(|n| i64::try_from(append.after + n).unwrap_or(i64::MAX))
}

/// How many times an append the database aborted to break a deadlock or a
/// serialization conflict is tried again, and the wait before the first
/// retry (doubled for each next one).
const CONTENTION_RETRIES: u32 = 3;
const CONTENTION_BACKOFF: std::time::Duration = std::time::Duration::from_millis(5);

/// Appends on PostgreSQL; returns the position of the last event. A
/// statement aborted by a deadlock or a serialization failure wrote nothing
/// (it is atomic), so it is tried again a few times before the failure is
/// reported, still as transient ([`StoreError::Contention`]).
pub(crate) async fn postgres(pool: &sqlx::PgPool, append: &Append) -> Result<u64, AppendError> {
    let mut retries = 0;
    loop {
        match postgres_once(pool, append).await {
            Err(AppendError::Store(StoreError::Contention)) if retries < CONTENTION_RETRIES => {
                tokio::time::sleep(CONTENTION_BACKOFF * 2u32.pow(retries)).await;
                retries += 1;
            }
            done => return done,
        }
    }
}

/// One attempt of [`postgres`].
///
/// One statement, so one round trip and no `BEGIN`/`COMMIT`: the events
/// take their positions from the statement itself, as the position trigger
/// would give them (`(transaction id << 20) + n`), so that it does not
/// fire; data-modifying CTEs record the request and write the snapshot. A single statement is atomic: if the request is already
/// recorded or a sequence is taken, the primary key refuses the whole of it.
async fn postgres_once(pool: &sqlx::PgPool, append: &Append) -> Result<u64, AppendError> {
    let metadata = append.metadata.to_string();
    let sequences: Vec<i64> = sequences(append).collect();
    let types: Vec<&str> = append
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    let versions: Vec<&str> = append
        .events
        .iter()
        .map(|e| e.event_version.as_str())
        .collect();
    let payloads: Vec<String> = append
        .events
        .iter()
        .map(|e| e.payload.to_string())
        .collect();
    let last_sequence = sequences.last().copied().unwrap_or(0);
    let request = append.request.as_ref();
    let snapshot = append.snapshot.as_ref();
    let last: Option<i64> = sqlx::query_scalar(APPEND_PG)
        .bind(append.aggregate_type)
        .bind(&append.aggregate_id)
        .bind(&sequences)
        .bind(&types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&metadata)
        .bind(request.map(|r| r.agency.as_str()))
        .bind(request.map(|r| r.request_id.as_str()))
        .bind(request.map(|r| r.fingerprint.as_str()))
        .bind(request.map(|r| r.command_id.as_str()))
        .bind(last_sequence)
        .bind(snapshot.map(|s| s.version))
        .bind(snapshot.map(|s| s.revision))
        .bind(snapshot.map(|s| s.payload.as_str()))
        .fetch_one(pool)
        .await?;
    Ok(last.and_then(|p| u64::try_from(p).ok()).unwrap_or(0))
}

/// The PostgreSQL append. `$8`–`$11` are the request (all NULL for a
/// command without one), `$13`–`$15` the snapshot (NULL for none). The
/// snapshot only ever moves forward, unless the stored one is of another
/// revision: two processes may race on it, and it is a cache either way.
const APPEND_PG: &str = "\
WITH request AS (
    INSERT INTO command_requests
        (agency, request_id, request_hash, command_id, aggregate_type, aggregate_id, last_sequence)
    SELECT $8, $9, $10, $11, $1, $2, $12 WHERE $9::text IS NOT NULL
), snapshot AS (
    INSERT INTO case_snapshots (aggregate_type, aggregate_id, version, revision, payload)
    SELECT $1, $2, $13, $14, $15::jsonb WHERE $13::bigint IS NOT NULL
    ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
    SET version = excluded.version, revision = excluded.revision, payload = excluded.payload
    WHERE case_snapshots.version < excluded.version
       OR case_snapshots.revision <> excluded.revision
), appended AS (
    INSERT INTO events
        (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, position)
    SELECT $1, $2, e.sequence, e.event_type, e.event_version, e.payload::jsonb, $7::jsonb,
           (pg_current_xact_id()::text::bigint << 20) + e.n - 1
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
         AS e(sequence, event_type, event_version, payload, n)
    RETURNING position
)
SELECT max(position) FROM appended";

/// A waiting append and where its outcome goes.
type Job = (Append, oneshot::Sender<Result<u64, AppendError>>);

/// The SQLite writer: appends queue here and are committed in groups by a
/// thread of its own, on a connection of its own (rusqlite on the same
/// libsqlite3 as sqlx's pool). Each statement of a group commit is a plain
/// call on that thread: no hand-off to a connection thread and back per
/// statement, which is what the group commit spent most of its time on
/// through sqlx.
#[derive(Debug, Clone)]
pub(crate) struct SqliteWriter {
    queue: mpsc::UnboundedSender<Job>,
}

/// At most this many commands share one SQLite transaction.
const GROUP: usize = 128;

/// How long the writer waits on a lock held by another process before it
/// reports the database busy (as the pool's connections do).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl SqliteWriter {
    /// Starts the writer thread for the database file `path`. `turn` is the
    /// lock that this process's SQLite writers (projection batches too)
    /// take turns by.
    pub(crate) fn start(path: PathBuf, turn: Arc<tokio::sync::Mutex<()>>) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_groups(&path, &turn, waiting));
        if let Err(e) = spawned {
            // The queue's receiver is gone with the closure: every append
            // then fails as unavailable.
            tracing::error!(error = %e, "cannot start the SQLite writer thread");
        }
        Self { queue }
    }

    /// Appends, waiting for the group commit that includes it; returns the
    /// position of the last event.
    pub(crate) async fn append(&self, append: Append) -> Result<u64, AppendError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((append, reply)).map_err(|_| {
            AppendError::Store(StoreError::Unavailable("the store is closing".into()))
        })?;
        outcome.await.map_err(|_| {
            AppendError::Store(StoreError::Unavailable("the store is closing".into()))
        })?
    }
}

/// The writer thread: takes the appends waiting, as many as have come by the
/// time it has its turn, and commits them together, until the store is
/// dropped.
fn write_groups(
    path: &Path,
    turn: &tokio::sync::Mutex<()>,
    mut waiting: mpsc::UnboundedReceiver<Job>,
) {
    let mut connection: Option<rusqlite::Connection> = None;
    while let Some(first) = waiting.blocking_recv() {
        // The group is gathered once the writer has its turn, so that
        // appends arriving while a projection batch holds the database join
        // this commit instead of waiting for the next.
        let waited = std::time::Instant::now();
        let _turn = turn.blocking_lock();
        let started = std::time::Instant::now();
        let mut group = vec![first];
        while group.len() < GROUP {
            match waiting.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let outcomes = match open(&mut connection, path) {
            Ok(conn) => commit_group(conn, &group),
            Err(e) => {
                let e = store_error(&e);
                group
                    .iter()
                    .map(|_| Err(AppendError::Store(e.clone())))
                    .collect()
            }
        };
        if outcomes
            .iter()
            .any(|o| matches!(o, Err(AppendError::Store(StoreError::Internal))))
        {
            // Opened afresh for the next group, in case the connection is
            // what failed.
            connection = None;
        }
        tracing::debug!(
            commands = group.len(),
            waited_us = (started - waited).as_micros() as u64,
            took_us = started.elapsed().as_micros() as u64,
            "group commit"
        );
        for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
            // The caller may have gone (a cancelled request); its events
            // are committed all the same, as on PostgreSQL.
            let _ = reply.send(outcome);
        }
    }
}

/// The writer's connection, opened on first use with the settings of the
/// pool's: every commit synced (`synchronous = FULL`), a busy timeout.
fn open<'c>(
    connection: &'c mut Option<rusqlite::Connection>,
    path: &Path,
) -> Result<&'c mut rusqlite::Connection, rusqlite::Error> {
    if connection.is_none() {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        *connection = Some(conn);
    }
    connection.as_mut().ok_or(rusqlite::Error::InvalidQuery)
}

/// Commits `group` in one transaction, each append one statement, which
/// SQLite undoes whole if it fails: a conflicting command leaves nothing
/// behind and the others in the group commit.
fn commit_group(conn: &mut rusqlite::Connection, group: &[Job]) -> Vec<Result<u64, AppendError>> {
    let fail_all = |e: &rusqlite::Error| {
        let e = store_error(e);
        group
            .iter()
            .map(|_| Err(AppendError::Store(e.clone())))
            .collect::<Vec<_>>()
    };
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(&e),
    };
    let mut last: i64 =
        match tx.query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
            r.get(0)
        }) {
            Ok(last) => last,
            Err(e) => return fail_all(&e),
        };
    let mut outcomes = Vec::with_capacity(group.len());
    for (append, _) in group {
        let outcome = match write_one(&tx, append, last) {
            Ok(position) => {
                last = position;
                Ok(u64::try_from(position).unwrap_or(0))
            }
            Err(e) => Err(append_error(&e)),
        };
        outcomes.push(outcome);
    }
    // Dropped without a commit, the transaction rolls back.
    if let Err(e) = tx.commit() {
        return fail_all(&e);
    }
    outcomes
}

/// Writes one append's events after position `last`; returns its last
/// position.
fn write_one(conn: &rusqlite::Connection, append: &Append, mut last: i64) -> rusqlite::Result<i64> {
    use rusqlite::types::Value as Sql;
    let metadata = append.metadata.to_string();
    let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; append.events.len()].join(", ");
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, position) VALUES {rows}"
    ))?;
    let mut values: Vec<Sql> = Vec::with_capacity(append.events.len() * 8);
    for (event, sequence) in append.events.iter().zip(sequences(append)) {
        last += 1;
        values.extend([
            Sql::Text(append.aggregate_type.to_owned()),
            Sql::Text(append.aggregate_id.clone()),
            Sql::Integer(sequence),
            Sql::Text(event.event_type.clone()),
            Sql::Text(event.event_version.clone()),
            Sql::Text(event.payload.to_string()),
            Sql::Text(metadata.clone()),
            Sql::Integer(last),
        ]);
    }
    insert.execute(rusqlite::params_from_iter(values))?;
    if let Some(snapshot) = &append.snapshot {
        // A snapshot is a cache: if it cannot be written, loads read more
        // events, and the command stands.
        let saved = conn
            .prepare_cached(
                "INSERT INTO case_snapshots (aggregate_type, aggregate_id, version, revision, payload) \
                 VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
                 SET version = excluded.version, revision = excluded.revision, payload = excluded.payload \
                 WHERE case_snapshots.version < excluded.version \
                    OR case_snapshots.revision <> excluded.revision",
            )
            .and_then(|mut upsert| {
                upsert.execute(rusqlite::params![
                    append.aggregate_type,
                    append.aggregate_id,
                    snapshot.version,
                    snapshot.revision,
                    snapshot.payload,
                ])
            });
        if let Err(e) = saved {
            tracing::warn!(error = %e, case = append.aggregate_id, "snapshot not saved; loads read more events");
        }
    }
    Ok(last)
}

/// A statement's failure for one append: a unique key (another command took
/// one of its sequences) or the request trigger's refusal is a conflict;
/// anything else a store error.
fn append_error(e: &rusqlite::Error) -> AppendError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => AppendError::Conflict,
        _ => AppendError::Store(store_error(e)),
    }
}

/// The writer's failure as the store reports it, classed as the pool's
/// errors are ([`StoreError::from_sqlx`]).
fn store_error(e: &rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            tracing::warn!(error = %e, "event store busy");
            StoreError::Unavailable("the database is busy; retry shortly".into())
        }
        Some(C::CannotOpen) => {
            tracing::warn!(error = %e, "event store unavailable");
            StoreError::Unavailable("cannot open the database file".into())
        }
        _ => {
            tracing::error!(error = %e, "event store append failed");
            StoreError::Internal
        }
    }
}
