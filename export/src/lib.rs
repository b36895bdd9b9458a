//! `mediation export`: the event log, and optionally the read models, as
//! files for analysts' tools (DuckDB, pandas, Polars, Spark).
//!
//! The layout of the output folder:
//!
//! ```text
//! manifest.json                          the last exported position, the format
//! events/case_type=Dispute/month=2026-03/part-<first>-<last>.parquet
//! read_models/cases.parquet              (--with-read-models) replaced whole
//! ```
//!
//! Exactly once, also across a run killed midway: every file is written
//! under a temporary name (`.…tmp`) and renamed when complete; the
//! manifest is rewritten last, atomically, so it never claims a position
//! whose rows are not on disk. A run first removes temporary files and the
//! part files that begin beyond the manifest's position (a killed run's),
//! then exports from that position.
#![forbid(unsafe_code)]

mod parts;
mod read_models;
mod rows;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mediation_store::{RecordedEvent, Sql, Store, StoreError};
use serde::{Deserialize, Serialize};

pub use parts::PART_ROWS;
pub use read_models::TABLES as READ_MODEL_TABLES;
pub use rows::{Identities, Row};

/// Events read from the log per query: large, as `mediation replay` reads,
/// and the next batch is read while this one is written.
pub const EXPORT_BATCH: u32 = 50_000;

/// The manifest's file name in the output folder.
pub const MANIFEST: &str = "manifest.json";

/// The file format of the exported log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Apache Parquet, Snappy-compressed.
    Parquet,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The name on the command line and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Jsonl => "jsonl",
        }
    }

    /// The part files' extension.
    pub fn extension(self) -> &'static str {
        self.as_str()
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "parquet" => Ok(Self::Parquet),
            "jsonl" => Ok(Self::Jsonl),
            other => Err(format!("unknown format {other:?}: parquet or jsonl")),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to export, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The output folder; created if missing.
    pub out: PathBuf,
    /// The log's file format; must be the manifest's, if there is one.
    pub format: Format,
    /// Export the events after this position. With a manifest it must be
    /// the manifest's position; without one, the default is 0.
    pub since_position: Option<u64>,
    /// Stop at the first event that happened after this instant: it and
    /// every later event wait for a later run.
    pub until: Option<DateTime<Utc>>,
    /// Also write the read models' current rows.
    pub with_read_models: bool,
    /// Whether names leave in clear; must be the manifest's choice.
    pub identities: Identities,
    /// Events per read of the log.
    pub batch_size: u32,
}

/// How far a run has got, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Events exported so far in this run.
    pub events: u64,
    /// Events in the log after the starting position when the run began.
    pub total: u64,
    /// Time since the run began.
    pub elapsed: Duration,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// Events written.
    pub events: u64,
    /// Part files written.
    pub files: u64,
    /// Read-model rows written, over every table.
    pub read_model_rows: u64,
    /// Read-model files written.
    pub read_model_files: u64,
    /// Files an interrupted run had left, removed first.
    pub repaired: u64,
    /// The position the run started after.
    pub from: u64,
    /// The position the manifest now records.
    pub position: u64,
    /// How long the run took.
    pub elapsed: Duration,
    /// Events per second over the run.
    pub rate_per_second: f64,
}

/// The manifest, `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The last position exported: the next run exports after it.
    pub position: u64,
    /// The log's file format.
    pub format: Format,
    /// `pseudonymised` or `clear`.
    pub identities: String,
    /// Events exported over every run.
    pub events: u64,
    /// When the last run finished.
    pub updated_at: DateTime<Utc>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be written, read, renamed or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building Arrow arrays failed.
    #[error("building Arrow arrays: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// JSON could not be read or written.
    #[error("JSON: {0}")]
    Json(serde_json::Error),
    /// The manifest is not one this version wrote.
    #[error("the manifest {} cannot be read: {reason}", path.display())]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The folder holds another format than the one asked for.
    #[error(
        "the folder holds a {manifest} export; asked for {asked}: export to another folder, \
         or ask for {manifest}"
    )]
    FormatMismatch {
        /// The manifest's format.
        manifest: Format,
        /// The one asked for.
        asked: Format,
    },
    /// Names would be mixed in clear and pseudonymised in one folder.
    #[error(
        "the folder holds an export with identities {manifest}; this run's would be {asked}: \
         export to another folder"
    )]
    IdentitiesMismatch {
        /// The manifest's choice.
        manifest: String,
        /// This run's.
        asked: String,
    },
    /// `--since-position` would leave a gap or export events twice.
    #[error(
        "the folder's manifest says the export stands at position {manifest}; \
         --since-position {asked} would leave a gap or export events twice \
         (leave it out to continue from the manifest)"
    )]
    SincePosition {
        /// The manifest's position.
        manifest: u64,
        /// The one asked for.
        asked: u64,
    },
    /// A position beyond what Parquet readers take as a signed 64-bit number.
    #[error("position {0} does not fit a signed 64-bit column")]
    PositionTooLarge(u64),
    /// A writing task panicked or was cancelled.
    #[error("the writing task failed: {0}")]
    Task(String),
}

/// A closure mapping an I/O error on `path` to [`ExportError::Io`].
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads `dir/manifest.json`, if there is one.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, ExportError> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ExportError::Manifest {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path)(e)),
    }
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), ExportError> {
    let path = dir.join(MANIFEST);
    let temp = dir.join(format!(".{MANIFEST}.tmp"));
    let text = serde_json::to_vec_pretty(manifest).map_err(ExportError::Json)?;
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temp).map_err(io_error(&temp))?;
        file.write_all(&text).map_err(io_error(&temp))?;
        file.sync_all().map_err(io_error(&temp))?;
    }
    std::fs::rename(&temp, &path).map_err(io_error(&path))?;
    // The renames of this run's files and of the manifest reach the disk
    // together with the directory.
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

async fn count_after(store: &Store, after: u64) -> Result<u64, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let sql = Sql::new("SELECT count(*) FROM events WHERE position > $1").bind(after);
    match store.fetch_optional(&sql).await? {
        Some(row) => row.count(0),
        None => Ok(0),
    }
}

/// Exports the log after the manifest's position (or `since_position`)
/// into `options.out`, then the read models if asked, then rewrites the
/// manifest. Calls `progress` after every batch.
#[tracing::instrument(skip_all, fields(out = %options.out.display(), format = %options.format))]
pub async fn export(
    store: &Store,
    options: &Options,
    mut progress: impl FnMut(Progress),
) -> Result<Exported, ExportError> {
    let started = Instant::now();
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    let manifest = read_manifest(out)?;
    if let Some(manifest) = &manifest {
        if manifest.format != options.format {
            return Err(ExportError::FormatMismatch {
                manifest: manifest.format,
                asked: options.format,
            });
        }
        if manifest.identities != options.identities.as_str() {
            return Err(ExportError::IdentitiesMismatch {
                manifest: manifest.identities.clone(),
                asked: options.identities.as_str().to_owned(),
            });
        }
        if let Some(asked) = options.since_position
            && asked != manifest.position
        {
            return Err(ExportError::SincePosition {
                manifest: manifest.position,
                asked,
            });
        }
    }
    let from = manifest
        .as_ref()
        .map(|m| m.position)
        .or(options.since_position)
        .unwrap_or(0);
    let events_dir = out.join("events");
    let mut repaired = parts::repair(&events_dir, manifest.as_ref().map(|m| m.position))?;
    repaired += parts::repair(&out.join("read_models"), Some(u64::MAX))?;
    let stale_manifest = out.join(format!(".{MANIFEST}.tmp"));
    if stale_manifest.exists() {
        std::fs::remove_file(&stale_manifest).map_err(io_error(&stale_manifest))?;
        repaired += 1;
    }

    let total = count_after(store, from).await?;
    let report = |progress: &mut dyn FnMut(Progress), events: u64| {
        progress(Progress {
            events,
            total,
            elapsed: started.elapsed(),
        })
    };
    report(&mut progress, 0);

    let batch_size = options.batch_size.max(1);
    let mut parts = parts::Parts::new(events_dir, options.format);
    let mut position = from;
    let mut events = 0u64;
    let mut batch = store.read_log(position, batch_size).await?;
    loop {
        let (batch_now, stop) = until(batch, options.until);
        let Some(last) = batch_now.last().map(|e| e.position) else {
            break;
        };
        let count = batch_now.len() as u64;
        // The rows are built and written on a blocking thread while the
        // database serves the next batch.
        let identities = options.identities.clone();
        let writing = tokio::task::spawn_blocking(move || {
            let rows = batch_now
                .iter()
                .map(|e| Row::of(e, &identities))
                .collect::<Result<Vec<_>, _>>()?;
            parts.write(rows)?;
            Ok::<_, ExportError>(parts)
        });
        let reading = async {
            if stop {
                Ok(Vec::new())
            } else {
                store.read_log(last, batch_size).await
            }
        };
        let (written, next) = tokio::join!(writing, reading);
        parts = written.map_err(|e| ExportError::Task(e.to_string()))??;
        position = last;
        events += count;
        report(&mut progress, events);
        batch = next?;
    }
    parts.finish_all()?;
    let files = parts.files;

    let (read_model_rows, read_model_files) = if options.with_read_models {
        read_models::export(store, &out.join("read_models"), &options.identities).await?
    } else {
        (0, 0)
    };

    let manifest = Manifest {
        position,
        format: options.format,
        identities: options.identities.as_str().to_owned(),
        events: manifest.map_or(0, |m| m.events) + events,
        updated_at: Utc::now(),
    };
    write_manifest(out, &manifest)?;
    let elapsed = started.elapsed();
    let seconds = elapsed.as_secs_f64();
    Ok(Exported {
        events,
        files,
        read_model_rows,
        read_model_files,
        repaired,
        from,
        position,
        elapsed,
        rate_per_second: if seconds > 0.0 {
            events as f64 / seconds
        } else {
            0.0
        },
    })
}

/// The batch up to the first event that happened after `until`, and
/// whether the run stops there. Stopping (rather than skipping that event)
/// keeps the manifest's promise: every event up to its position is in the
/// files, so a later run picks up exactly the ones left.
fn until(
    mut batch: Vec<RecordedEvent>,
    until: Option<DateTime<Utc>>,
) -> (Vec<RecordedEvent>, bool) {
    let Some(until) = until else {
        return (batch, false);
    };
    let after = batch.iter().position(|e| {
        e.payload
            .get("at")
            .and_then(serde_json::Value::as_str)
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .map_or(e.recorded_at, |at| at.with_timezone(&Utc))
            > until
    });
    match after {
        Some(i) => {
            batch.truncate(i);
            (batch, true)
        }
        None => (batch, false),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_part_files_name_gives_its_first_position() {
        let name = parts::part_name(17, 42, Format::Parquet);
        assert_eq!(name, "part-17-42.parquet");
        assert_eq!(parts::first_position(&name), Some(17));
        assert_eq!(parts::first_position(".part-17.parquet.tmp"), None);
        assert_eq!(parts::first_position("manifest.json"), None);
    }

    #[test]
    fn repair_removes_temporary_files_and_parts_beyond_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let month = dir.path().join("case_type=Dispute/month=2026-03");
        std::fs::create_dir_all(&month).unwrap();
        for name in [
            "part-1-5.parquet",
            "part-6-9.parquet",
            ".part-10.parquet.tmp",
        ] {
            std::fs::write(month.join(name), b"x").unwrap();
        }
        assert_eq!(parts::repair(dir.path(), Some(5)).unwrap(), 2);
        let left: Vec<_> = std::fs::read_dir(&month)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec!["part-1-5.parquet".to_owned()]);
        // Without a manifest, nothing was exported: every part goes.
        assert_eq!(parts::repair(dir.path(), None).unwrap(), 1);
    }

    #[test]
    fn formats_parse_from_their_names() {
        assert_eq!("parquet".parse::<Format>(), Ok(Format::Parquet));
        assert_eq!("jsonl".parse::<Format>(), Ok(Format::Jsonl));
        assert!("csv".parse::<Format>().is_err());
    }
}
