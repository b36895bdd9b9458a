//! What the database alone can do with one command's append, measured on
//! the same machine in the same run as the engine: pgbench for PostgreSQL,
//! a bare insert loop for SQLite.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

/// The script that runs pgbench (`bench/pgbench-ceiling.sh`, beside this
/// crate's manifest), embedded so that the executable runs from anywhere;
/// see its header.
const PGBENCH_CEILING: &str = include_str!("../pgbench-ceiling.sh");

/// Transactions per second pgbench reached appending `events` events per
/// transaction with `clients` clients for `duration`, or why it could not
/// be measured.
pub(crate) async fn postgres(
    url: &str,
    clients: usize,
    duration: Duration,
    events: u32,
) -> anyhow::Result<f64> {
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(PGBENCH_CEILING)
        .arg("pgbench-ceiling.sh")
        .arg(url)
        .arg(clients.to_string())
        .arg(duration.as_secs().max(1).to_string())
        .arg(events.max(1).to_string())
        .kill_on_drop(true)
        .output()
        .await
        .context("running bash for bench/pgbench-ceiling.sh")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        anyhow::bail!(
            "bench/pgbench-ceiling.sh failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    stdout
        .lines()
        .find_map(|line| {
            line.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|tps| tps.parse::<f64>().ok())
        })
        .with_context(|| format!("no `tps = ` line in pgbench's output:\n{stdout}"))
}

/// Transactions per second of a bare loop appending `events` rows per
/// transaction to a table shaped like the event log, in a new SQLite file
/// in `dir`, in WAL mode with the engine's synchronous setting. SQLite has
/// one writer at a time, so one loop is its ceiling at any concurrency.
pub(crate) async fn sqlite(
    dir: &std::path::Path,
    duration: Duration,
    events: u32,
) -> anyhow::Result<f64> {
    let path = dir.join("ceiling.db");
    let mut conn = SqliteConnectOptions::from_str(&format!("sqlite:{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await
        .context("opening the SQLite ceiling file")?;
    sqlx::query(
        "CREATE TABLE bench_ceiling (
            aggregate_type text NOT NULL,
            aggregate_id text NOT NULL,
            sequence integer NOT NULL,
            event_type text NOT NULL,
            event_version text NOT NULL,
            payload text NOT NULL,
            metadata text NOT NULL,
            position integer PRIMARY KEY AUTOINCREMENT,
            event_id text NOT NULL DEFAULT (lower(hex(randomblob(16)))),
            recorded_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            UNIQUE (aggregate_type, aggregate_id, sequence)
        ) STRICT",
    )
    .execute(&mut conn)
    .await?;
    let payload = r#"{"DisputeDispatched": {"body": {"id": "committee-990101101201", "name": "Mediation Committee", "kind": "Peoples"}, "mediator": "Mediator Wu", "actor": "clerk-1", "at": "2026-03-02T01:00:00Z"}}"#;
    let metadata = r#"{"rpc": "DispatchDispute", "division": "990101101201", "agency": "local", "request_id": "3f1c0a52-4f2e-4a8e-9a47-1f0f0e8a7c11", "request_hash": "9b74c9897bac770ffc029102a200c5de", "command_id": "a4d3c2b1-0f9e-4d8c-8b7a-6a5b4c3d2e1f"}"#;
    let start = Instant::now();
    let mut transactions = 0u64;
    while start.elapsed() < duration {
        let mut tx = conn.begin().await?;
        for sequence in 1..=events.max(1) {
            sqlx::query(
                "INSERT INTO bench_ceiling \
                 (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                 VALUES ('Dispute', ?, ?, 'DisputeDispatched', '1.0', ?, ?)",
            )
            .bind(format!("c-{transactions}"))
            .bind(sequence)
            .bind(payload)
            .bind(metadata)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        transactions += 1;
    }
    let rate = transactions as f64 / start.elapsed().as_secs_f64();
    conn.close().await?;
    Ok(rate)
}
