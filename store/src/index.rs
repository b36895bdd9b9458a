//! The case index: one row per case with the columns that lists filter on
//! and the case's state, maintained from the log by a projection (see the
//! `projections` crate), plus the checkpoints projections keep.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::Row;

use crate::StoreError;
use crate::db::{Backend, Store};

/// One case in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    /// `Dispute` or `Petition`.
    pub aggregate_type: String,
    /// The case id.
    pub case_id: String,
    /// The division holding the case.
    pub division: Option<String>,
    /// The level holding the case (stored name).
    pub level: Option<String>,
    /// The status (stored name).
    pub status: String,
    /// The dispute category (stored name).
    pub category: Option<String>,
    /// The dispute risk grading (stored name).
    pub risk: Option<String>,
    /// The petition channel (stored name).
    pub channel: Option<String>,
    /// The case's version as of `position`.
    pub version: u64,
    /// The log position of the case's last event applied.
    pub position: u64,
    /// The case's state: the aggregate, serialised.
    pub state: Value,
}

/// Which cases a list returns, ordered by case id; every field set must
/// match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexQuery {
    /// The aggregate type.
    pub aggregate_type: String,
    /// Only cases held by a division in this range of codes (lowest, highest).
    pub division: Option<(String, String)>,
    /// A second range that must match too: the caller's scope.
    pub scope: Option<(String, String)>,
    /// Only cases at this level.
    pub level: Option<String>,
    /// Only cases in this status.
    pub status: Option<String>,
    /// Only disputes of this category.
    pub category: Option<String>,
    /// Only disputes of this risk grading.
    pub risk: Option<String>,
    /// Only petitions of this channel.
    pub channel: Option<String>,
    /// Only cases whose id sorts after this one.
    pub after_case_id: Option<String>,
    /// The most rows to return.
    pub limit: u32,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const LIST_PG: &str = "SELECT case_id, division, level, status, category, risk, channel, \
    version, position, state FROM case_index WHERE aggregate_type = $1 \
    AND ($2::text IS NULL OR division BETWEEN $2 AND $3) \
    AND ($4::text IS NULL OR division BETWEEN $4 AND $5) \
    AND ($6::text IS NULL OR level = $6) AND ($7::text IS NULL OR status = $7) \
    AND ($8::text IS NULL OR category = $8) AND ($9::text IS NULL OR risk = $9) \
    AND ($10::text IS NULL OR channel = $10) AND ($11::text IS NULL OR case_id > $11) \
    ORDER BY case_id LIMIT $12";

const LIST_SQLITE: &str = "SELECT case_id, division, level, status, category, risk, channel, \
    version, position, state FROM case_index WHERE aggregate_type = ?1 \
    AND (?2 IS NULL OR division BETWEEN ?2 AND ?3) \
    AND (?4 IS NULL OR division BETWEEN ?4 AND ?5) \
    AND (?6 IS NULL OR level = ?6) AND (?7 IS NULL OR status = ?7) \
    AND (?8 IS NULL OR category = ?8) AND (?9 IS NULL OR risk = ?9) \
    AND (?10 IS NULL OR channel = ?10) AND (?11 IS NULL OR case_id > ?11) \
    ORDER BY case_id LIMIT ?12";

impl Store {
    /// How far projection `name` has applied the log (0: not started).
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
        Ok(position.map_or(0, to_u64))
    }

    /// The indexed states and versions of `ids`, for a projection to apply
    /// new events to. Cases not yet indexed are absent.
    pub async fn index_states(
        &self,
        aggregate_type: &str,
        ids: &[String],
    ) -> Result<HashMap<String, (Value, u64)>, StoreError> {
        let mut found = HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        match self.backend() {
            Backend::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT case_id, state, version FROM case_index \
                     WHERE aggregate_type = $1 AND case_id = ANY($2)",
                )
                .bind(aggregate_type)
                .bind(ids)
                .fetch_all(pool)
                .await?;
                for row in rows {
                    let version: i64 = row.try_get("version")?;
                    found.insert(
                        row.try_get("case_id")?,
                        (row.try_get("state")?, to_u64(version)),
                    );
                }
            }
            Backend::Sqlite(pool) => {
                // SQLite has no arrays: a JSON array of ids, unpacked by json_each.
                let ids = serde_json::to_string(ids)
                    .map_err(|e| StoreError::Corrupt(format!("case ids: {e}")))?;
                let rows = sqlx::query(
                    "SELECT case_id, state, version FROM case_index WHERE aggregate_type = ? \
                     AND case_id IN (SELECT value FROM json_each(?))",
                )
                .bind(aggregate_type)
                .bind(ids)
                .fetch_all(pool)
                .await?;
                for row in rows {
                    let version: i64 = row.try_get("version")?;
                    let state: String = row.try_get("state")?;
                    let state = serde_json::from_str(&state).map_err(|_| {
                        StoreError::Corrupt("an indexed case's state is malformed".into())
                    })?;
                    found.insert(row.try_get("case_id")?, (state, to_u64(version)));
                }
            }
        }
        Ok(found)
    }

    /// Writes `rows` into the case index and moves checkpoint `name` from
    /// `from` to `to`, in one transaction. Returns false, writing nothing,
    /// when the checkpoint is no longer at `from` (another runner applied
    /// the batch first).
    pub async fn apply_index_batch(
        &self,
        name: &str,
        from: u64,
        to: u64,
        rows: &[IndexRow],
    ) -> Result<bool, StoreError> {
        match self.backend() {
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .execute(&mut *tx)
                .await?;
                let moved = sqlx::query(
                    "UPDATE projection_checkpoints SET position = $3, updated_at = now() \
                     WHERE name = $1 AND position = $2",
                )
                .bind(name)
                .bind(to_i64(from))
                .bind(to_i64(to))
                .execute(&mut *tx)
                .await?;
                if moved.rows_affected() != 1 {
                    return Ok(false);
                }
                for row in rows {
                    sqlx::query(
                        "INSERT INTO case_index (aggregate_type, case_id, division, level, status, \
                         category, risk, channel, version, position, state) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         ON CONFLICT (aggregate_type, case_id) DO UPDATE SET \
                         division = excluded.division, level = excluded.level, \
                         status = excluded.status, category = excluded.category, \
                         risk = excluded.risk, channel = excluded.channel, \
                         version = excluded.version, position = excluded.position, \
                         state = excluded.state",
                    )
                    .bind(&row.aggregate_type)
                    .bind(&row.case_id)
                    .bind(&row.division)
                    .bind(&row.level)
                    .bind(&row.status)
                    .bind(&row.category)
                    .bind(&row.risk)
                    .bind(&row.channel)
                    .bind(to_i64(row.version))
                    .bind(to_i64(row.position))
                    .bind(&row.state)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
            Backend::Sqlite(pool) => {
                let _turn = self.write_turn().await;
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO projection_checkpoints (name, position) VALUES (?, 0) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .execute(&mut *tx)
                .await?;
                let moved = sqlx::query(
                    "UPDATE projection_checkpoints SET position = ?3, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                     WHERE name = ?1 AND position = ?2",
                )
                .bind(name)
                .bind(to_i64(from))
                .bind(to_i64(to))
                .execute(&mut *tx)
                .await?;
                if moved.rows_affected() != 1 {
                    return Ok(false);
                }
                for row in rows {
                    sqlx::query(
                        "INSERT INTO case_index (aggregate_type, case_id, division, level, status, \
                         category, risk, channel, version, position, state) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                         ON CONFLICT (aggregate_type, case_id) DO UPDATE SET \
                         division = excluded.division, level = excluded.level, \
                         status = excluded.status, category = excluded.category, \
                         risk = excluded.risk, channel = excluded.channel, \
                         version = excluded.version, position = excluded.position, \
                         state = excluded.state",
                    )
                    .bind(&row.aggregate_type)
                    .bind(&row.case_id)
                    .bind(&row.division)
                    .bind(&row.level)
                    .bind(&row.status)
                    .bind(&row.category)
                    .bind(&row.risk)
                    .bind(&row.channel)
                    .bind(to_i64(row.version))
                    .bind(to_i64(row.position))
                    .bind(row.state.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(true)
    }

    /// One page of the case index, ordered by case id.
    pub async fn list_index(&self, query: &IndexQuery) -> Result<Vec<IndexRow>, StoreError> {
        let (d, s) = (query.division.as_ref(), query.scope.as_ref());
        let limit = i64::from(query.limit);
        match self.backend() {
            Backend::Postgres(pool) => {
                let rows = sqlx::query(LIST_PG)
                    .bind(&query.aggregate_type)
                    .bind(d.map(|r| &r.0))
                    .bind(d.map(|r| &r.1))
                    .bind(s.map(|r| &r.0))
                    .bind(s.map(|r| &r.1))
                    .bind(&query.level)
                    .bind(&query.status)
                    .bind(&query.category)
                    .bind(&query.risk)
                    .bind(&query.channel)
                    .bind(&query.after_case_id)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(IndexRow {
                            aggregate_type: query.aggregate_type.clone(),
                            case_id: row.try_get("case_id")?,
                            division: row.try_get("division")?,
                            level: row.try_get("level")?,
                            status: row.try_get("status")?,
                            category: row.try_get("category")?,
                            risk: row.try_get("risk")?,
                            channel: row.try_get("channel")?,
                            version: to_u64(row.try_get("version")?),
                            position: to_u64(row.try_get("position")?),
                            state: row.try_get("state")?,
                        })
                    })
                    .collect()
            }
            Backend::Sqlite(pool) => {
                let rows = sqlx::query(LIST_SQLITE)
                    .bind(&query.aggregate_type)
                    .bind(d.map(|r| &r.0))
                    .bind(d.map(|r| &r.1))
                    .bind(s.map(|r| &r.0))
                    .bind(s.map(|r| &r.1))
                    .bind(&query.level)
                    .bind(&query.status)
                    .bind(&query.category)
                    .bind(&query.risk)
                    .bind(&query.channel)
                    .bind(&query.after_case_id)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let state: String = row.try_get("state")?;
                        Ok(IndexRow {
                            aggregate_type: query.aggregate_type.clone(),
                            case_id: row.try_get("case_id")?,
                            division: row.try_get("division")?,
                            level: row.try_get("level")?,
                            status: row.try_get("status")?,
                            category: row.try_get("category")?,
                            risk: row.try_get("risk")?,
                            channel: row.try_get("channel")?,
                            version: to_u64(row.try_get("version")?),
                            position: to_u64(row.try_get("position")?),
                            state: serde_json::from_str(&state).map_err(|_| {
                                StoreError::Corrupt("an indexed case's state is malformed".into())
                            })?,
                        })
                    })
                    .collect()
            }
        }
    }
}
