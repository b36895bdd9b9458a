//! Set-based writes for read models: a batch writes all its rows of a table
//! in one statement (or as few as the database's limit on parameters
//! allows), never one per event or per case, in the same code for both
//! dialects.

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{Postgres, QueryBuilder, Sqlite};

use crate::StoreError;
use crate::projection::Batch;

/// One value of a row written by [`Batch::insert_rows`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    OptionalText(Option<&'a str>),
    /// A whole number.
    Int(i64),
    /// A whole number or NULL.
    OptionalInt(Option<i64>),
    /// A truth value (SQLite stores 0 or 1).
    Bool(bool),
    /// An instant or NULL, stored to the millisecond: `timestamptz` on
    /// PostgreSQL, UTC text as [`sqlite_time`] writes it on SQLite.
    Time(Option<DateTime<Utc>>),
}

/// The most parameters one statement binds: below PostgreSQL's 65,535 and
/// SQLite's 32,766.
const MAX_PARAMETERS: usize = 30_000;

/// `at` as SQLite stores it: UTC text to the millisecond, in the form of
/// SQLite's own `strftime('%Y-%m-%dT%H:%M:%fZ')`, which sorts as text in
/// time order.
pub fn sqlite_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Batch {
    /// Inserts `rows` (each one value per column of `columns`) into the
    /// batch's table `base` ([`Batch::table`]), ending each statement with
    /// `tail` (an `ON CONFLICT …` clause; PostgreSQL and SQLite read it
    /// alike). One statement per 30,000 values.
    pub async fn insert_rows(
        &mut self,
        base: &str,
        columns: &[&str],
        rows: &[Vec<Cell<'_>>],
        tail: &str,
    ) -> Result<(), StoreError> {
        if rows.is_empty() || columns.is_empty() {
            return Ok(());
        }
        if let Some(row) = rows.iter().find(|r| r.len() != columns.len()) {
            return Err(StoreError::Corrupt(format!(
                "a row for {base} has {} values for {} columns",
                row.len(),
                columns.len()
            )));
        }
        let head = format!("INSERT INTO {} ({}) ", self.table(base), columns.join(", "));
        let per_statement = (MAX_PARAMETERS / columns.len()).max(1);
        for chunk in rows.chunks(per_statement) {
            if let Some(connection) = self.postgres() {
                let mut query = QueryBuilder::<Postgres>::new(&head);
                query.push_values(chunk, |mut values, row| {
                    for cell in row {
                        match cell {
                            Cell::Text(v) => values.push_bind(*v),
                            Cell::OptionalText(v) => values.push_bind(*v),
                            Cell::Int(v) => values.push_bind(*v),
                            Cell::OptionalInt(v) => values.push_bind(*v),
                            Cell::Bool(v) => values.push_bind(*v),
                            Cell::Time(v) => values.push_bind(v.map(|t| t.trunc_subsecs(3))),
                        };
                    }
                });
                query.push(" ").push(tail);
                // Row counts vary from batch to batch: not worth a prepared
                // statement each.
                query.build().persistent(false).execute(connection).await?;
            } else if let Some(connection) = self.sqlite() {
                let mut query = QueryBuilder::<Sqlite>::new(&head);
                query.push_values(chunk, |mut values, row| {
                    for cell in row {
                        match cell {
                            Cell::Text(v) => values.push_bind(*v),
                            Cell::OptionalText(v) => values.push_bind(*v),
                            Cell::Int(v) => values.push_bind(*v),
                            Cell::OptionalInt(v) => values.push_bind(*v),
                            Cell::Bool(v) => values.push_bind(*v),
                            Cell::Time(v) => values.push_bind(v.map(sqlite_time)),
                        };
                    }
                });
                query.push(" ").push(tail);
                query.build().persistent(false).execute(connection).await?;
            }
        }
        Ok(())
    }

    /// Runs `action` (`DELETE FROM {table}` or `UPDATE {table} SET …`, with
    /// `{table}` standing for the batch's table `base`) on the rows whose
    /// `column` holds one of `keys`, in one statement.
    pub async fn where_in(
        &mut self,
        action: &str,
        base: &str,
        column: &str,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let action = action.replace("{table}", &self.table(base));
        if let Some(connection) = self.postgres() {
            let sql = format!("{action} WHERE {column} = ANY($1)");
            Ok(sqlx::query(&sql)
                .bind(keys)
                .execute(connection)
                .await?
                .rows_affected())
        } else if let Some(connection) = self.sqlite() {
            // SQLite has no arrays: the keys travel as one JSON array.
            let keys = serde_json::to_string(keys)
                .map_err(|e| StoreError::Corrupt(format!("keys for {base}: {e}")))?;
            let sql = format!("{action} WHERE {column} IN (SELECT value FROM json_each(?))");
            Ok(sqlx::query(&sql)
                .bind(keys)
                .execute(connection)
                .await?
                .rows_affected())
        } else {
            Ok(0)
        }
    }
}
