//! The part files of the partitioned log: one writer per part file, open
//! while its partition keeps receiving rows, written under a temporary
//! name and renamed to `part-<first>-<last>.<ext>` once closed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::rows::{Partition, Row, record_batch, schema};
use crate::{ExportError, Format, io_error};

/// Rows after which a part file is closed and the next one begun, so that
/// a file stays a size readers split work by.
pub const PART_ROWS: u64 = 1_000_000;

/// Rows per Parquet row group: readers skip row groups by their
/// statistics, and a writer holds one group in memory until it is full.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The temporary name's prefix and suffix: a file named so is unfinished.
pub(crate) const TEMP_PREFIX: &str = ".";
/// See [`TEMP_PREFIX`].
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

enum Sink {
    Parquet(Box<ArrowWriter<File>>),
    Jsonl(BufWriter<File>),
}

struct Open {
    sink: Sink,
    dir: PathBuf,
    temp: PathBuf,
    first: i64,
    last: i64,
    rows: u64,
    touched: bool,
}

/// The open part files of one run, by partition.
pub(crate) struct Parts {
    events_dir: PathBuf,
    format: Format,
    schema: SchemaRef,
    open: HashMap<Partition, Open>,
    /// Part files finished (renamed into place) so far.
    pub(crate) files: u64,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("events_dir", &self.events_dir)
            .field("open", &self.open.len())
            .field("files", &self.files)
            .finish()
    }
}

impl Parts {
    /// No part open yet, below `events_dir`.
    pub(crate) fn new(events_dir: PathBuf, format: Format) -> Self {
        Self {
            events_dir,
            format,
            schema: schema(),
            open: HashMap::new(),
            files: 0,
        }
    }

    /// Writes `rows` (in log order) to their partitions' open parts, then
    /// closes the parts that this batch gave nothing (their partition has
    /// most likely ended, a month being over) and those that are full.
    pub(crate) fn write(&mut self, rows: Vec<Row>) -> Result<(), ExportError> {
        let mut by_partition: HashMap<Partition, Vec<Row>> = HashMap::new();
        for row in rows {
            by_partition.entry(row.partition()).or_default().push(row);
        }
        for part in self.open.values_mut() {
            part.touched = false;
        }
        let mut partitions: Vec<_> = by_partition.into_iter().collect();
        partitions.sort_by(|a, b| a.0.cmp(&b.0));
        for (partition, rows) in partitions {
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                continue;
            };
            let (first, last) = (first.position, last.position);
            if !self.open.contains_key(&partition) {
                let part = self.begin(&partition, first)?;
                self.open.insert(partition.clone(), part);
            }
            let Some(part) = self.open.get_mut(&partition) else {
                continue;
            };
            match &mut part.sink {
                Sink::Parquet(writer) => writer.write(&record_batch(&self.schema, &rows)?)?,
                Sink::Jsonl(out) => {
                    for row in &rows {
                        serde_json::to_writer(&mut *out, row).map_err(ExportError::Json)?;
                        out.write_all(b"\n").map_err(io_error(&part.temp))?;
                    }
                }
            }
            part.last = last;
            part.rows += rows.len() as u64;
            part.touched = true;
        }
        let done: Vec<Partition> = self
            .open
            .iter()
            .filter(|(_, p)| !p.touched || p.rows >= PART_ROWS)
            .map(|(k, _)| k.clone())
            .collect();
        for partition in done {
            if let Some(part) = self.open.remove(&partition) {
                self.finish(part)?;
            }
        }
        Ok(())
    }

    /// Closes every open part.
    pub(crate) fn finish_all(&mut self) -> Result<(), ExportError> {
        let open: Vec<Open> = self.open.drain().map(|(_, p)| p).collect();
        for part in open {
            self.finish(part)?;
        }
        Ok(())
    }

    fn begin(&self, partition: &Partition, first: i64) -> Result<Open, ExportError> {
        let dir = self.events_dir.join(partition.path());
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let temp = dir.join(format!(
            "{TEMP_PREFIX}part-{first}.{}{TEMP_SUFFIX}",
            self.format.extension()
        ));
        let file = File::create(&temp).map_err(io_error(&temp))?;
        let sink = match self.format {
            Format::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .build();
                Sink::Parquet(Box::new(ArrowWriter::try_new(
                    file,
                    self.schema.clone(),
                    Some(properties),
                )?))
            }
            Format::Jsonl => Sink::Jsonl(BufWriter::with_capacity(1 << 20, file)),
        };
        Ok(Open {
            sink,
            dir,
            temp,
            first,
            last: first,
            rows: 0,
            touched: true,
        })
    }

    fn finish(&mut self, part: Open) -> Result<(), ExportError> {
        let file = match part.sink {
            Sink::Parquet(writer) => writer.into_inner()?,
            Sink::Jsonl(out) => out
                .into_inner()
                .map_err(|e| io_error(&part.temp)(e.into_error()))?,
        };
        file.sync_all().map_err(io_error(&part.temp))?;
        let name = part_name(part.first, part.last, self.format);
        let path = part.dir.join(name);
        std::fs::rename(&part.temp, &path).map_err(io_error(&path))?;
        self.files += 1;
        Ok(())
    }
}

/// `part-<first>-<last>.<ext>`.
pub(crate) fn part_name(first: i64, last: i64, format: Format) -> String {
    format!("part-{first}-{last}.{}", format.extension())
}

/// The first position of a finished part file's name, if it is one.
pub(crate) fn first_position(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("part-")?;
    let (first, _) = rest.split_once('-')?;
    first.parse().ok()
}

/// Removes what a run killed midway left below `dir`: temporary files, and
/// part files that begin beyond `position` (the manifest's, which the run
/// never reached). Returns how many files it removed.
pub(crate) fn repair(dir: &Path, position: Option<u64>) -> Result<u64, ExportError> {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_error(&path))?;
        if kind.is_dir() {
            removed += repair(&path, position)?;
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let unfinished = name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX);
        let beyond = first_position(&name).is_some_and(|first| match position {
            Some(position) => first > position,
            // Without a manifest nothing was ever exported here.
            None => true,
        });
        if unfinished || beyond {
            tracing::info!(file = %path.display(), "removing what an interrupted export left");
            std::fs::remove_file(&path).map_err(io_error(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}
