//! The domain of grassroots dispute mediation and petitions: two cqrs-es
//! aggregates ([`dispute::Dispute`], [`petition::Petition`]), the value types
//! they are made of, and the business calendar and deadline policy that time
//! them.
//!
//! This crate does no I/O: configuration arrives as text, time through
//! [`services::Clock`]. It knows nothing of databases, protobuf or tokio.
#![forbid(unsafe_code)]

#[macro_use]
mod macros;

pub mod calendar;
pub mod dispute;
pub mod jurisdiction;
pub mod petition;
pub mod policy;
pub mod recompute;
pub mod services;
pub mod sla;
pub mod upcast;
pub mod values;

pub use sla::{Holder, RunningClock};

/// The statutory deadline policy, as shipped in `config/policy.toml`.
pub const STATUTORY_POLICY: &str = include_str!("../../config/policy.toml");

/// The official holiday schedules shipped in `config/holidays/`, by year.
pub const STATUTORY_HOLIDAYS: &[(i32, &str)] = &[
    (2025, include_str!("../../config/holidays/2025.json")),
    (2026, include_str!("../../config/holidays/2026.json")),
];

/// The example jurisdiction shipped in `config/jurisdiction.example.toml`.
pub const EXAMPLE_JURISDICTION: &str = include_str!("../../config/jurisdiction.example.toml");

/// An aggregate whose state the store may keep as a snapshot.
///
/// A snapshot is the aggregate's state serialised after some event. If
/// `apply` or the state's fields change meaning, old snapshots would load
/// into a wrong state, so they carry this revision and the store ignores
/// snapshots of any other. Bump it with every such change.
pub trait SnapshotRevision {
    /// The current revision of the aggregate's state.
    const SNAPSHOT_REVISION: u32;
}
