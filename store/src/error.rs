//! Store errors. Messages are safe to show to a caller: they never carry SQL
//! or driver text, which goes to the log instead.

use cqrs_es::AggregateError;

/// What can go wrong in the store, in terms a caller can act on.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// An event in the log is of a type or version this engine cannot read
    /// (one written by a newer engine): nothing is skipped, the read stops.
    /// The message names the event, its type and its version.
    #[error("an event in the log cannot be read by this engine: {0}")]
    Unreadable(String),
    /// Another operation that excludes this one is under way (a rebuild of
    /// the same projection). Not an outage: retrying at once does not help;
    /// try again once it has finished. The message says which.
    #[error("{0}")]
    Busy(String),
    /// The database aborted the transaction to break a deadlock or a
    /// serialization conflict with another one (PostgreSQL 40P01, 40001).
    /// Nothing of it was written, and running it again usually succeeds:
    /// the store does so itself for commands and projection batches before
    /// it reports this.
    #[error(
        "the event store aborted a transaction that conflicted with another; nothing was written, retry"
    )]
    Contention,
    /// Any other failure; the details went to the server log.
    #[error("the event store failed; see the server log")]
    Internal,
}

impl StoreError {
    /// Whether the same operation, tried again, may well succeed: the
    /// database was away or busy, or aborted the transaction to resolve a
    /// conflict.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Contention)
    }

    /// A short stable name for the kind of failure (`unavailable`,
    /// `contention`, …), for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadUrl(_) => "bad_url",
            Self::Unavailable(_) => "unavailable",
            Self::Migration(_) => "migration",
            Self::Corrupt(_) => "corrupt",
            Self::Unreadable(_) => "unreadable",
            Self::Busy(_) => "busy",
            Self::Contention => "contention",
            Self::Internal => "internal",
        }
    }

    /// Classifies a driver error: connection problems and a busy or
    /// restarting database are `Unavailable`, a deadlock or serialization
    /// failure `Contention`, the rest `Internal`. Logs the driver's own
    /// text, which callers never see.
    pub(crate) fn from_sqlx(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if is_contention(db.code().as_deref()) => {
                tracing::warn!(error = %err, "event store transaction aborted by a conflict");
                Self::Contention
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => {
                tracing::warn!(error = %err, "event store unavailable");
                Self::Unavailable("cannot reach the database".into())
            }
            // SQLite's lock stayed busy past the timeout, or PostgreSQL is
            // shutting down or out of connections: worth retrying later.
            sqlx::Error::Database(db) if is_transient(db.code().as_deref()) => {
                tracing::warn!(error = %err, "event store busy");
                Self::Unavailable("the database is busy or restarting; retry shortly".into())
            }
            _ => {
                tracing::error!(error = %err, "event store query failed");
                Self::Internal
            }
        }
    }
}

/// SQLite: 5 busy, 6 locked (and their extended codes, which end in the
/// same byte). PostgreSQL: class 08 connection exceptions, 53 insufficient
/// resources, 57P01-57P03 shutdown and cannot-connect-now.
fn is_transient(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    if let Ok(n) = code.parse::<u32>()
        && matches!(n & 0xff, 5 | 6)
        && code.len() <= 4
    {
        return true;
    }
    code.starts_with("08") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// PostgreSQL: 40P01 deadlock detected, 40001 serialization failure. The
/// database rolled the transaction back whole to let another proceed.
fn is_contention(code: Option<&str>) -> bool {
    matches!(code, Some("40P01" | "40001"))
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
    Conflict {
        /// The case's version after the change that won, as read after the
        /// conflict (it may have moved on again since); `None` if it could
        /// not be read.
        actual: Option<u64>,
    },
    /// The caller expected the case at another version; nothing was written.
    #[error("the case is at version {actual}, not {expected}; nothing was written")]
    WrongVersion {
        /// The version the caller expected.
        expected: u64,
        /// The version the case is at.
        actual: u64,
    },
    /// The case does not exist, or the caller may not see it.
    #[error("no such case")]
    NotFound,
    /// The request id was already used for a different request.
    #[error("the request id was already used for a different request")]
    RequestReused,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E: std::error::Error> From<AggregateError<E>> for CommandError<E> {
    fn from(err: AggregateError<E>) -> Self {
        match err {
            AggregateError::UserError(e) => Self::Domain(e),
            AggregateError::AggregateConflict => Self::Conflict { actual: None },
            AggregateError::DeserializationError(e) => {
                tracing::error!(error = %e, "stored events could not be deserialized");
                Self::Store(StoreError::Corrupt(
                    "the case's stored events do not match this version of the engine".into(),
                ))
            }
            // postgres-es and sqlite-es box the driver's error; look inside
            // so that a database that is down reads as unavailable, not as
            // an internal failure.
            AggregateError::DatabaseConnectionError(e) | AggregateError::UnexpectedError(e) => {
                match e.downcast::<sqlx::Error>() {
                    Ok(sqlx_error) => Self::Store(StoreError::from_sqlx(*sqlx_error)),
                    Err(other) => {
                        tracing::error!(error = %other, "event store failed");
                        Self::Store(StoreError::Internal)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{StoreError, is_contention, is_transient};

    #[test]
    fn deadlocks_and_serialization_failures_are_transient() {
        assert!(is_contention(Some("40P01")));
        assert!(is_contention(Some("40001")));
        assert!(!is_contention(Some("23505")));
        assert!(!is_contention(Some("40003")));
        assert!(!is_contention(None));
        assert!(StoreError::Contention.is_transient());
        assert!(StoreError::Unavailable("down".into()).is_transient());
        assert!(!StoreError::Internal.is_transient());
        assert!(!StoreError::Busy("a rebuild".into()).is_transient());
    }

    /// A driver error as PostgreSQL reports it, with only a code.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            "deadlock detected"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn a_deadlock_from_the_driver_is_classed_transient() {
        for code in ["40P01", "40001"] {
            let err = StoreError::from(sqlx::Error::Database(Box::new(Coded(code))));
            assert!(matches!(err, StoreError::Contention), "{code}: {err:?}");
            assert!(err.is_transient(), "{code}");
        }
        let err = StoreError::from(sqlx::Error::Database(Box::new(Coded("42601"))));
        assert!(matches!(err, StoreError::Internal), "{err:?}");
        assert!(!err.is_transient());
    }

    #[test]
    fn busy_and_restarting_databases_are_transient() {
        // SQLite busy, busy-snapshot (517) and locked.
        assert!(is_transient(Some("5")));
        assert!(is_transient(Some("517")));
        assert!(is_transient(Some("6")));
        // PostgreSQL: connection failure, too many connections, shutdown.
        assert!(is_transient(Some("08006")));
        assert!(is_transient(Some("53300")));
        assert!(is_transient(Some("57P01")));
        // A unique violation, a constraint, a syntax error are not.
        assert!(!is_transient(Some("23505")));
        assert!(!is_transient(Some("1555")));
        assert!(!is_transient(Some("42601")));
        assert!(!is_transient(None));
    }
}
