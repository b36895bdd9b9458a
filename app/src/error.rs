//! Why the application refused or failed a request, in its own terms. A
//! transport maps each variant to its own codes once (the gRPC server:
//! `mediation_api::error`); the messages here already tell the caller what
//! to do, and database and driver text never reaches them.

use mediation_domain::dispute::DisputeError;
use mediation_domain::petition::PetitionError;
use mediation_store::{CommandError, StoreError};

/// A refused or failed request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A request field holds no valid value.
    #[error("{message}")]
    InvalidField {
        /// The field as the request names it, with its path if nested.
        field: String,
        /// What is wrong with it.
        description: String,
        /// The whole message (usually `invalid {field}: {description}`).
        message: String,
    },
    /// The caller's roles or jurisdiction do not allow the request.
    #[error("{0}")]
    PermissionDenied(String),
    /// No such case, or one outside the caller's scope: the two read the
    /// same, so that existence does not leak.
    #[error("no {kind} {id} in your jurisdiction")]
    NotFound {
        /// `dispute` or `petition`.
        kind: String,
        /// The case id asked for.
        id: String,
    },
    /// The dispute refused the command.
    #[error("dispute {id}: {error}")]
    Dispute {
        /// The case.
        id: String,
        /// Whether the command may create the case.
        creates: bool,
        /// The refusal.
        error: DisputeError,
    },
    /// The petition refused the command.
    #[error("petition {id}: {error}")]
    Petition {
        /// The case.
        id: String,
        /// Whether the command may create the case.
        creates: bool,
        /// The command's RPC, which says what a field is called.
        rpc: &'static str,
        /// The refusal.
        error: PetitionError,
    },
    /// Another request changed the case at the same moment; nothing was
    /// written.
    #[error("{kind} {id} was changed by another request at the same time")]
    Conflict {
        /// `dispute` or `petition`.
        kind: String,
        /// The case.
        id: String,
        /// The version the case is at now, if known.
        actual: Option<u64>,
    },
    /// The case is not at the version the caller expected.
    #[error("{kind} {id} is at version {actual}, not the expected {expected}")]
    WrongVersion {
        /// `dispute` or `petition`.
        kind: String,
        /// The case.
        id: String,
        /// The version the caller named.
        expected: u64,
        /// The version the case is at.
        actual: u64,
    },
    /// The request id was used before for a different request.
    #[error("this request_id was already used for a different request")]
    RequestReused,
    /// A position (request field `field`) beyond every committed event:
    /// waiting would not help.
    #[error("position {position} does not exist yet")]
    PositionNotWritten {
        /// The request field that named it.
        field: &'static str,
        /// The position.
        position: u64,
    },
    /// A read model or the readable log has not reached a position yet;
    /// the caller should retry shortly.
    #[error("{0}")]
    NotYet(String),
    /// The server is stopping.
    #[error("the server is shutting down; retry")]
    ShuttingDown,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppError {
    /// A bad value in `field`: the message reads `invalid {field}:
    /// {description}`.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        let field = field.into();
        let description = description.into();
        Self::InvalidField {
            message: format!("invalid {field}: {description}"),
            field,
            description,
        }
    }

    /// A failed command of `kind` on case `id`; `domain` turns the
    /// aggregate's own refusal into an error.
    pub(crate) fn from_command<E: std::error::Error>(
        e: CommandError<E>,
        kind: &str,
        id: &str,
        domain: impl FnOnce(E) -> Self,
    ) -> Self {
        match e {
            CommandError::Domain(e) => domain(e),
            CommandError::NotFound => Self::not_found(kind, id),
            CommandError::Conflict { actual } => Self::Conflict {
                kind: kind.to_owned(),
                id: id.to_owned(),
                actual,
            },
            CommandError::WrongVersion { expected, actual } => Self::WrongVersion {
                kind: kind.to_owned(),
                id: id.to_owned(),
                expected,
                actual,
            },
            CommandError::RequestReused => Self::RequestReused,
            CommandError::Store(e) => Self::Store(e),
        }
    }

    /// [`AppError::NotFound`].
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::NotFound {
            kind: kind.to_owned(),
            id: id.to_owned(),
        }
    }
}
