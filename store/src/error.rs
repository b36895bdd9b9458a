//! Store errors. Messages are safe to show to a caller: they never carry SQL
//! or driver text, which goes to the log instead.

use cqrs_es::AggregateError;

/// What can go wrong in the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no backend this engine supports.
    #[error("{0}")]
    BadUrl(String),
    /// The database could not be reached or refused the connection.
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// The schema could not be brought up to date.
    #[error("the event store schema could not be migrated: {0}")]
    Migration(String),
    /// Stored data could not be read back as the engine's types.
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    /// Any other failure; the details went to the server log.
    #[error("the event store failed; see the server log")]
    Internal,
}

impl StoreError {
    /// Classifies a driver error: connection problems are `Unavailable`,
    /// the rest `Database`. Logs the driver's own text, which callers never see.
    pub(crate) fn from_sqlx(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => {
                tracing::warn!(error = %err, "event store unavailable");
                Self::Unavailable("cannot reach the database".into())
            }
            _ => {
                tracing::error!(error = %err, "event store query failed");
                Self::Internal
            }
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_sqlx(err)
    }
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command (a forbidden transition, bad input).
    #[error(transparent)]
    Domain(E),
    /// Another command on the same case committed first; nothing was written.
    /// Reload and retry.
    #[error("another change to this case was committed first; nothing was written, retry")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E: std::error::Error> From<AggregateError<E>> for CommandError<E> {
    fn from(err: AggregateError<E>) -> Self {
        match err {
            AggregateError::UserError(e) => Self::Domain(e),
            AggregateError::AggregateConflict => Self::Conflict,
            AggregateError::DatabaseConnectionError(e) => {
                tracing::warn!(error = %e, "event store unavailable");
                Self::Store(StoreError::Unavailable("cannot reach the database".into()))
            }
            AggregateError::DeserializationError(e) => {
                tracing::error!(error = %e, "stored events could not be deserialized");
                Self::Store(StoreError::Corrupt(
                    "the case's stored events do not match this version of the engine".into(),
                ))
            }
            AggregateError::UnexpectedError(e) => {
                tracing::error!(error = %e, "event store failed");
                Self::Store(StoreError::Internal)
            }
        }
    }
}
