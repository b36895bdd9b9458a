//! Set-based writes for read models: a batch writes all its rows of a table
//! in one statement (or as few as the database's limit on parameters
//! allows), never one per event or per case, in the same code for both
//! dialects.

use crate::StoreError;
use crate::projection::Batch;
use crate::sql::{Cell, Sql};

/// The most parameters one statement binds: below PostgreSQL's 65,535 and
/// SQLite's 32,766.
const MAX_PARAMETERS: usize = 30_000;

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
            let mut sql = Sql::new(head.clone()).transient();
            sql.push_text("VALUES ");
            for (i, row) in chunk.iter().enumerate() {
                let numbers: Vec<String> = row
                    .iter()
                    .map(|cell| format!("${}", sql.push(cell.clone())))
                    .collect();
                let sep = if i == 0 { "" } else { ", " };
                sql.push_text(&format!("{sep}({})", numbers.join(", ")));
            }
            sql.push_text(" ");
            sql.push_text(tail);
            // Row counts vary from batch to batch: not worth a prepared
            // statement each.
            self.execute(&sql).await?;
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
        let sql = Sql::new(format!("{action} WHERE {}", self.dialect().any(column, 1))).bind(keys);
        self.execute(&sql).await
    }
}
