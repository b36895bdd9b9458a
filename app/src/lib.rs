//! The application layer of the mediation engine, free of any transport:
//! [`App`] carries out commands on disputes and petitions (authorisation,
//! scope, idempotency, expected versions), answers the case queries with
//! read-your-writes, runs the read models and the deadline timers, and re-times provisional
//! deadlines once their year's holidays are loaded. The gRPC
//! server (`mediation-api`) converts requests into [`command::Envelope`]s
//! and maps [`AppError`] to statuses; the bench and the tests call it
//! directly.
#![forbid(unsafe_code)]

pub mod access;
pub mod accountability;
mod app;
pub mod command;
pub mod erasure;
mod error;
pub mod history;
pub mod paging;
pub mod recompute;
pub mod timers;

pub use app::{
    App, COMPLAINED_UNIT, COMPLAINED_UNIT_ID, CaseFilter, Found, MATTER_TYPE, Outcome, PageRequest,
    ProjectionReport, READ_YOUR_WRITES_WAIT,
};
pub use error::AppError;
