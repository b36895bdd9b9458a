//! One query text for both dialects. A statement is written once, with
//! numbered parameters (`$1`, `$2`, …), which PostgreSQL and SQLite (through
//! sqlx) both read; its values are [`Cell`]s, converted for each backend in
//! this one place; its rows come back as [`Row`]s whose instants and counts
//! read the same whatever stored them. Where the dialects truly differ, the
//! two versions stand side by side in one [`Dialect::pick`] or in a helper
//! here ([`Dialect::any`]).

use std::borrow::Cow;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{ColumnIndex, Decode, Postgres, Row as _, Sqlite, Type};

use crate::StoreError;
use crate::db::{Backend, Store};
use crate::projection::Batch;

/// One value bound to a statement or written in a row.
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
    /// An instant or NULL as the read models store it, to the millisecond:
    /// `timestamptz` on PostgreSQL, UTC text as [`sqlite_time`] writes it on
    /// SQLite (which sorts as text in time order).
    Time(Option<DateTime<Utc>>),
    /// An instant or NULL at full precision, in sqlx's own encoding: what
    /// the log and the clock tables store.
    Instant(Option<DateTime<Utc>>),
    /// A set of keys, for membership in it ([`Dialect::any`]): an array on
    /// PostgreSQL, a JSON array for `json_each` on SQLite (which has no
    /// arrays).
    Keys(&'a [String]),
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a String> for Cell<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Cell<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Self::OptionalText(v)
    }
}

impl From<i64> for Cell<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<Option<i64>> for Cell<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::OptionalInt(v)
    }
}

impl From<bool> for Cell<'_> {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<DateTime<Utc>> for Cell<'_> {
    fn from(v: DateTime<Utc>) -> Self {
        Self::Time(Some(v))
    }
}

impl<'a> From<&'a [String]> for Cell<'a> {
    fn from(v: &'a [String]) -> Self {
        Self::Keys(v)
    }
}

/// `at` as SQLite stores it: UTC text to the millisecond, in the form of
/// SQLite's own `strftime('%Y-%m-%dT%H:%M:%fZ')`, which sorts as text in
/// time order.
pub fn sqlite_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Which SQL the store speaks, for the few places where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// `postgres` or `sqlite`, whichever this dialect speaks: the two
    /// versions of one piece of SQL, side by side where it is written.
    pub fn pick<T>(self, postgres: T, sqlite: T) -> T {
        match self {
            Self::Postgres => postgres,
            Self::Sqlite => sqlite,
        }
    }

    /// `column` is one of the keys bound as parameter `n` ([`Cell::Keys`]).
    pub fn any(self, column: &str, n: usize) -> String {
        self.pick(
            format!("{column} = ANY(${n})"),
            format!("{column} IN (SELECT value FROM json_each(${n}))"),
        )
    }
}

/// A statement and its values.
#[derive(Debug, Clone)]
pub struct Sql<'a> {
    text: Cow<'a, str>,
    cells: Vec<Cell<'a>>,
    persistent: bool,
}

impl<'a> Sql<'a> {
    /// The statement `text`, its parameters numbered `$1`, `$2`, … in the
    /// order of [`Sql::bind`].
    pub fn new(text: impl Into<Cow<'a, str>>) -> Self {
        Self {
            text: text.into(),
            cells: Vec::new(),
            persistent: true,
        }
    }

    /// Binds the next parameter.
    pub fn bind(mut self, value: impl Into<Cell<'a>>) -> Self {
        self.cells.push(value.into());
        self
    }

    /// Binds the next parameter in place; returns its number.
    pub fn push(&mut self, value: impl Into<Cell<'a>>) -> usize {
        self.cells.push(value.into());
        self.cells.len()
    }

    /// Appends to the statement's text.
    pub fn push_text(&mut self, text: &str) {
        self.text.to_mut().push_str(text);
    }

    /// Not kept as a prepared statement: for texts that vary from call to
    /// call (a row count, a set of conditions), which would only fill the
    /// connections' statement caches.
    pub fn transient(mut self) -> Self {
        self.persistent = false;
        self
    }

    fn postgres(&self) -> Query<'_, Postgres, PgArguments> {
        let mut query = sqlx::query(&self.text).persistent(self.persistent);
        for cell in &self.cells {
            query = match cell {
                Cell::Text(v) => query.bind(*v),
                Cell::OptionalText(v) => query.bind(*v),
                Cell::Int(v) => query.bind(*v),
                Cell::OptionalInt(v) => query.bind(*v),
                Cell::Bool(v) => query.bind(*v),
                Cell::Time(v) => query.bind(v.map(|t| t.trunc_subsecs(3))),
                Cell::Instant(v) => query.bind(*v),
                Cell::Keys(v) => query.bind(*v),
            };
        }
        query
    }

    fn sqlite(&self) -> Result<Query<'_, Sqlite, SqliteArguments<'_>>, StoreError> {
        let mut query = sqlx::query(&self.text).persistent(self.persistent);
        for cell in &self.cells {
            query = match cell {
                Cell::Text(v) => query.bind(*v),
                Cell::OptionalText(v) => query.bind(*v),
                Cell::Int(v) => query.bind(*v),
                Cell::OptionalInt(v) => query.bind(*v),
                Cell::Bool(v) => query.bind(*v),
                Cell::Time(v) => query.bind(v.map(sqlite_time)),
                Cell::Instant(v) => query.bind(*v),
                Cell::Keys(v) => query.bind(
                    serde_json::to_string(v)
                        .map_err(|e| StoreError::Corrupt(format!("a set of keys: {e}")))?,
                ),
            };
        }
        Ok(query)
    }
}

/// A value a [`Row`] can hold on both backends (text, whole numbers, truth
/// values, JSON, their options).
pub trait Value:
    for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite>
{
}

impl<T> Value for T where
    T: for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite>
{
}

/// A column of a [`Row`], by name or by index.
pub trait Column: ColumnIndex<PgRow> + ColumnIndex<SqliteRow> + std::fmt::Debug + Copy {}

impl Column for &str {}
impl Column for usize {}

/// A row read by [`Store::fetch_all`] or [`Batch::fetch_all`].
pub enum Row {
    /// Read from PostgreSQL.
    Postgres(PgRow),
    /// Read from SQLite.
    Sqlite(SqliteRow),
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self {
            Self::Postgres(_) => "Postgres",
            Self::Sqlite(_) => "Sqlite",
        };
        f.debug_struct("Row")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

impl Row {
    /// The value of `column`.
    pub fn get<T: Value>(&self, column: impl Column) -> Result<T, StoreError> {
        Ok(match self {
            Self::Postgres(row) => row.try_get(column)?,
            Self::Sqlite(row) => row.try_get(column)?,
        })
    }

    /// An instant: `timestamptz` on PostgreSQL, text on SQLite, whether
    /// [`Cell::Time`] or [`Cell::Instant`] wrote it.
    pub fn time(&self, column: impl Column) -> Result<DateTime<Utc>, StoreError> {
        self.optional_time(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("no instant in column {column:?}")))
    }

    /// An instant or NULL, as [`Row::time`] reads it.
    pub fn optional_time(&self, column: impl Column) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self {
            Self::Postgres(row) => Ok(row.try_get(column)?),
            Self::Sqlite(row) => row
                .try_get::<Option<String>, _>(column)?
                .map(|text| parse_time(&text))
                .transpose(),
        }
    }

    /// A UUID: `uuid` on PostgreSQL, its hyphenated text on SQLite.
    pub fn uuid(&self, column: impl Column) -> Result<uuid::Uuid, StoreError> {
        match self {
            Self::Postgres(row) => Ok(row.try_get(column)?),
            Self::Sqlite(row) => {
                let text: String = row.try_get(column)?;
                uuid::Uuid::parse_str(&text)
                    .map_err(|_| StoreError::Corrupt(format!("a stored id is malformed: {text:?}")))
            }
        }
    }

    /// A count or a sum: never negative. PostgreSQL's `SUM` of a `bigint`
    /// is a `numeric`; write `CAST(SUM(…) AS BIGINT)` in the text.
    pub fn count(&self, column: impl Column) -> Result<u64, StoreError> {
        Ok(to_u64(self.get::<Option<i64>>(column)?.unwrap_or(0)))
    }
}

/// An instant stored as text on SQLite: by [`sqlite_time`], by sqlx's own
/// encoding (RFC 3339 with an offset), or by SQLite's date functions
/// (`YYYY-MM-DD HH:MM:SS`, UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .map_err(|_| StoreError::Corrupt(format!("a stored instant is malformed: {text:?}")))
}

/// A count as the database stores it: whole numbers are `i64` there.
pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored count back: never negative.
pub fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    /// Which SQL this store speaks.
    pub fn dialect(&self) -> Dialect {
        match self.backend() {
            Backend::Postgres(_) => Dialect::Postgres,
            Backend::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Every row `sql` returns.
    pub async fn fetch_all(&self, sql: &Sql<'_>) -> Result<Vec<Row>, StoreError> {
        Ok(match self.backend() {
            Backend::Postgres(pool) => sql
                .postgres()
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
            Backend::Sqlite(pool) => sql
                .sqlite()?
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
        })
    }

    /// The first row `sql` returns, if any.
    pub async fn fetch_optional(&self, sql: &Sql<'_>) -> Result<Option<Row>, StoreError> {
        Ok(match self.backend() {
            Backend::Postgres(pool) => sql
                .postgres()
                .fetch_optional(pool)
                .await?
                .map(Row::Postgres),
            Backend::Sqlite(pool) => sql.sqlite()?.fetch_optional(pool).await?.map(Row::Sqlite),
        })
    }

    /// Runs `sql`; returns how many rows it changed.
    pub async fn execute(&self, sql: &Sql<'_>) -> Result<u64, StoreError> {
        Ok(match self.backend() {
            Backend::Postgres(pool) => sql.postgres().execute(pool).await?.rows_affected(),
            Backend::Sqlite(pool) => sql.sqlite()?.execute(pool).await?.rows_affected(),
        })
    }
}

impl Batch {
    /// Every row `sql` returns, read in the batch's transaction.
    pub async fn fetch_all(&mut self, sql: &Sql<'_>) -> Result<Vec<Row>, StoreError> {
        if let Some(connection) = self.postgres() {
            return Ok(sql
                .postgres()
                .fetch_all(connection)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect());
        }
        match self.sqlite() {
            Some(connection) => Ok(sql
                .sqlite()?
                .fetch_all(connection)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    /// Runs `sql` in the batch's transaction; returns how many rows it
    /// changed.
    pub async fn execute(&mut self, sql: &Sql<'_>) -> Result<u64, StoreError> {
        if let Some(connection) = self.postgres() {
            return Ok(sql.postgres().execute(connection).await?.rows_affected());
        }
        match self.sqlite() {
            Some(connection) => Ok(sql.sqlite()?.execute(connection).await?.rows_affected()),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_read_back_from_every_text_sqlite_holds() {
        let at: DateTime<Utc> = "2026-03-02T08:30:00.123Z".parse().unwrap();
        assert_eq!(parse_time(&sqlite_time(at)).unwrap(), at);
        assert_eq!(parse_time("2026-03-02T08:30:00.123+00:00").unwrap(), at);
        assert_eq!(parse_time("2026-03-02 08:30:00.123").unwrap(), at);
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn membership_is_written_once_per_dialect() {
        assert_eq!(Dialect::Postgres.any("case_id", 2), "case_id = ANY($2)");
        assert_eq!(
            Dialect::Sqlite.any("case_id", 2),
            "case_id IN (SELECT value FROM json_each($2))"
        );
    }
}
