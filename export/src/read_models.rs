//! The read models' current rows as Parquet tables, each replaced whole:
//! written under a temporary name, then renamed over the last run's.
//!
//! Columns are read from the database's own catalogue, so that a column a
//! migration adds is exported without a change here: text, whole numbers,
//! reals, truth values and instants keep their types (SQLite keeps
//! instants as text, read back as instants for columns named `…_at`); a
//! case's `state` is JSON text, with identities applied like payloads.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use mediation_store::{Dialect, Row, Sql, Store, StoreError};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::parts::{TEMP_PREFIX, TEMP_SUFFIX};
use crate::rows::Identities;
use crate::{ExportError, io_error};

/// The read models exported: (table, file name without `.parquet`).
pub const TABLES: &[(&str, &str)] = &[
    ("case_index", "cases"),
    ("sla_clocks", "clocks"),
    ("statistics", "dispute_statistics"),
    ("petition_statistics", "petition_statistics"),
];

/// Rows per record batch read from the database and written.
const CHUNK: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Json,
    Int,
    Real,
    Bool,
    Time,
}

impl Kind {
    fn arrow(self) -> DataType {
        match self {
            Self::Text | Self::Json => DataType::Utf8,
            Self::Int => DataType::Int64,
            Self::Real => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
}

/// Writes every table of [`TABLES`] to `dir/<file>.parquet`; returns the
/// rows written and the files.
pub(crate) async fn export(
    store: &Store,
    dir: &Path,
    identities: &Identities,
) -> Result<(u64, u64), ExportError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut rows = 0;
    for (table, file) in TABLES {
        rows += export_table(
            store,
            table,
            &dir.join(format!("{file}.parquet")),
            identities,
        )
        .await?;
    }
    Ok((rows, TABLES.len() as u64))
}

async fn columns(store: &Store, table: &str) -> Result<Vec<(String, Kind)>, StoreError> {
    let describe = store.dialect().pick(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 \
         ORDER BY ordinal_position",
        "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
    );
    let described: Vec<(String, String)> = store
        .fetch_all(&Sql::new(describe).bind(table))
        .await?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<Result<_, StoreError>>()?;
    let sqlite = store.dialect() == Dialect::Sqlite;
    Ok(described
        .into_iter()
        .map(|(name, ty)| {
            let ty = ty.to_ascii_lowercase();
            let kind = if name == "state" || ty.starts_with("json") {
                Kind::Json
            } else if ty.contains("int") {
                Kind::Int
            } else if ty.contains("real") || ty.contains("double") || ty == "numeric" {
                Kind::Real
            } else if ty == "boolean" {
                Kind::Bool
            } else if ty.starts_with("timestamp") || (sqlite && name.ends_with("_at")) {
                Kind::Time
            } else {
                Kind::Text
            };
            (name, kind)
        })
        .collect())
}

/// The column as the select list reads it, cast to the type the row
/// decoder asks for (PostgreSQL's `int4`, `numeric` or `jsonb`, say).
fn select(name: &str, kind: Kind) -> String {
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match kind {
        Kind::Int => format!("CAST({quoted} AS BIGINT)"),
        Kind::Real => format!("CAST({quoted} AS DOUBLE PRECISION)"),
        Kind::Json | Kind::Text => format!("CAST({quoted} AS TEXT)"),
        Kind::Bool | Kind::Time => quoted,
    }
}

async fn export_table(
    store: &Store,
    table: &str,
    path: &Path,
    identities: &Identities,
) -> Result<u64, ExportError> {
    let columns = columns(store, table).await?;
    if columns.is_empty() {
        return Err(ExportError::Store(StoreError::Corrupt(format!(
            "the read model table {table} has no columns"
        ))));
    }
    let list: Vec<String> = columns.iter().map(|(n, k)| select(n, *k)).collect();
    let sql = Sql::new(format!("SELECT {} FROM {table}", list.join(", ")));
    // Read models are a fraction of the log's size; one query holds them.
    let rows: Vec<Vec<Value>> = store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|r| decode(r, &columns))
        .collect::<Result<_, _>>()?;
    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, kind)| Field::new(name, kind.arrow(), true))
            .collect::<Vec<_>>(),
    ));
    let Some(name) = path.file_name() else {
        return Err(io_error(path)(std::io::ErrorKind::InvalidInput.into()));
    };
    let temp = path.with_file_name(format!(
        "{TEMP_PREFIX}{}{TEMP_SUFFIX}",
        name.to_string_lossy()
    ));
    let file = File::create(&temp).map_err(io_error(&temp))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))?;
    for chunk in rows.chunks(CHUNK) {
        writer.write(&batch(&schema, &columns, chunk, identities)?)?;
    }
    let file = writer.into_inner()?;
    file.sync_all().map_err(io_error(&temp))?;
    std::fs::rename(&temp, path).map_err(io_error(path))?;
    Ok(rows.len() as u64)
}

fn decode(row: &Row, columns: &[(String, Kind)]) -> Result<Vec<Value>, StoreError> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Text | Kind::Json => Value::Text(row.get(i)?),
                Kind::Int => Value::Int(row.get(i)?),
                Kind::Real => Value::Real(row.get(i)?),
                Kind::Bool => Value::Bool(row.get(i)?),
                Kind::Time => Value::Time(row.optional_time(i)?),
            })
        })
        .collect()
}

fn batch(
    schema: &SchemaRef,
    columns: &[(String, Kind)],
    rows: &[Vec<Value>],
    identities: &Identities,
) -> Result<RecordBatch, ExportError> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, (_, kind)) in columns.iter().enumerate() {
        let cells = rows.iter().map(|r| r.get(i));
        let array: ArrayRef = match kind {
            Kind::Text | Kind::Json => {
                let mut b = StringBuilder::new();
                for cell in cells {
                    let text = match cell {
                        Some(Value::Text(t)) => t.clone(),
                        _ => None,
                    };
                    let text = match (kind, text) {
                        (Kind::Json, Some(t)) => {
                            let mut json: serde_json::Value =
                                serde_json::from_str(&t).map_err(ExportError::Json)?;
                            identities.apply(&mut json);
                            Some(json.to_string())
                        }
                        (_, t) => t,
                    };
                    b.append_option(text);
                }
                Arc::new(b.finish())
            }
            Kind::Int => {
                let mut b = Int64Builder::new();
                for cell in cells {
                    b.append_option(match cell {
                        Some(Value::Int(v)) => *v,
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            Kind::Real => {
                let mut b = Float64Builder::new();
                for cell in cells {
                    b.append_option(match cell {
                        Some(Value::Real(v)) => *v,
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::new();
                for cell in cells {
                    b.append_option(match cell {
                        Some(Value::Bool(v)) => *v,
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            Kind::Time => {
                let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                for cell in cells {
                    b.append_option(match cell {
                        Some(Value::Time(v)) => v.map(|t| t.timestamp_micros()),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}
