//! The web board for mediation centres: server-rendered pages over the same
//! [`App`] that the gRPC services use (same scope, same roles, same read
//! models), served on a listener of its own by `mediation serve`.
//!
//! A person signs in with the agency's token; the board keeps a session
//! for it (a random id in an HttpOnly, SameSite=Strict cookie that
//! expires) and never stores the token itself. Forms carry a CSRF token.
//! Everything the pages need (style sheet, the small script that follows
//! the log over server-sent events) is compiled into the binary.
#![forbid(unsafe_code)]

mod assets;
mod charts;
mod error;
mod i18n;
mod live;
mod pages;
mod session;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use mediation_app::App;
use mediation_app::access::Agencies;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use session::SESSION_TTL;

/// What every handler shares: the engine, who may sign in, the sessions.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    app: App,
    agencies: Agencies,
    sessions: Arc<session::Sessions>,
    stop: CancellationToken,
}

/// The board's routes over `app`, for the agencies in `agencies` (with
/// authentication off, every visitor acts as the local supervisor, and the
/// caller must listen on loopback only, as for gRPC). Live streams end when
/// `stop` is cancelled.
pub fn router(app: App, agencies: Agencies, stop: CancellationToken) -> Router {
    let board = Board {
        app,
        agencies,
        sessions: Arc::new(session::Sessions::default()),
        stop,
    };
    Router::new()
        .route("/", get(pages::overview))
        .route("/sla", get(pages::sla_board))
        .route("/breaches", get(pages::breaches))
        .route("/petitions", get(pages::petitions))
        .route("/case/{kind}/{id}", get(pages::case_page))
        .route("/signin", get(session::sign_in_form).post(session::sign_in))
        .route("/signout", post(session::sign_out))
        .route("/lang/{code}", get(i18n::switch))
        .route("/live", get(live::follow))
        .route("/assets/board.css", get(assets::css))
        .route("/assets/board.js", get(assets::script))
        .fallback(error::not_found)
        .with_state(board)
}

/// Serves the board on `listener` until `shutdown` completes, with
/// `operations` (routes of the server's own, such as `/metrics`) beside
/// it; open live streams end then, so that the server does not wait for
/// them.
pub async fn serve(
    listener: TcpListener,
    app: App,
    agencies: Agencies,
    operations: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let router = operations.merge(router(app, agencies, stop.clone()));
    let ended = stop.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            ended.cancel();
        })
        .await
}
