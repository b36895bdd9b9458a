//! Why a page could not be shown, as an HTTP status and a short page.
//! Internals (SQL, driver text) go to the log, never to the browser.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use mediation_app::AppError;
use mediation_store::StoreError;

/// A page refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    /// Bad input in the address (a filter that is not a division code).
    #[error("{0}")]
    BadRequest(String),
    /// Outside the agency's jurisdiction, or a role it does not hold.
    #[error("{0}")]
    Forbidden(String),
    /// No such case in the agency's jurisdiction, or no such page.
    #[error("{0}")]
    NotFound(String),
    /// The store does not answer, or the read model is behind.
    #[error("the data is not available right now; retry shortly")]
    Unavailable,
    /// A failure the log explains.
    #[error("something went wrong; the server's log says what")]
    Internal,
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::InvalidField { .. } => Self::BadRequest(e.to_string()),
            AppError::PermissionDenied(m) => Self::Forbidden(m),
            AppError::NotFound { .. } => Self::NotFound(e.to_string()),
            AppError::NotYet(_) | AppError::ShuttingDown => Self::Unavailable,
            AppError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "a board page failed");
                Self::Internal
            }
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "a board page could not read the store");
        match e {
            StoreError::Unavailable(_) | StoreError::Busy(_) | StoreError::Contention => {
                Self::Unavailable
            }
            _ => Self::Internal,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let page = maud::html! {
            (maud::DOCTYPE)
            html lang="zh-CN" {
                head {
                    meta charset="utf-8";
                    title { (status.as_u16()) }
                    link rel="stylesheet" href="/assets/board.css";
                // No favicon to fetch (a 404 would show in the console).
                link rel="icon" href="data:,";
                }
                body {
                    main.refused {
                        h1 #status { (status.as_u16()) " " (status.canonical_reason().unwrap_or_default()) }
                        p #reason { (self.to_string()) }
                        p { a href="/" { "返回总览 / Back to the overview" } }
                    }
                }
            }
        };
        (status, Html(page.into_string())).into_response()
    }
}

/// Any address the board does not know.
pub(crate) async fn not_found() -> PageError {
    PageError::NotFound("no such page".into())
}
