//! The event store: cqrs-es aggregates persisted by postgres-es (PostgreSQL,
//! production) or sqlite-es (SQLite, the embedded default), plus what those
//! crates lack: embedded migrations, a global log position in an order
//! readers can trust, the recorded time and an id for every event.
#![forbid(unsafe_code)]

mod append;
mod cases;
mod db;
mod error;
mod head;
mod identities;
mod log;
mod projection;
mod requests;
mod rows;
mod sql;

pub use cases::{
    Cases, Committed, DEFAULT_CACHE_CAPACITY, Metadata, Options, RequestKey, SNAPSHOT_EVERY,
    Visible,
};
pub use db::{ACQUIRE_TIMEOUT, Backend, DEFAULT_DATABASE_URL, Probe, Store, redact};
pub use error::{CommandError, StoreError};
pub use head::{Horizon, HorizonHolder};
pub use identities::{Forgotten, IdentityKind, PersonOf, Sealing};
pub use log::{LogFilter, LogPage, RecordedEvent, cases_begun_before, upcast};
pub use projection::{
    Batch, Finished, LEASE_CHECK, LEASE_CHECK_TIMEOUT, Lease, REBUILD_SUFFIX, rebuild_checkpoint,
};
pub use sql::{Cell, Column, Dialect, Row, Sql, Value, parse_time, sqlite_time, to_i64, to_u64};
