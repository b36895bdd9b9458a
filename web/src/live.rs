//! Server-sent events that follow the log: one `moved` event each time the
//! case projection (the case index and the SLA clocks the board shows) has
//! applied more of it, carrying its position. Commits from other processes
//! on the same database count too, since the projection follows the log
//! itself. The page's script then fetches the page again.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use mediation_projections::case_index;
use serde::Deserialize;

use crate::Board;
use crate::session::Viewer;

/// How long a quiet stream waits before checking again (and the keep-alive
/// comment keeps proxies from closing it).
const QUIET: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
pub(crate) struct After {
    /// The position the page was rendered at.
    after: Option<u64>,
}

/// The stream; signed-in viewers only (the events say no more than that
/// something moved, and where).
pub(crate) async fn follow(
    State(board): State<Board>,
    _viewer: Viewer,
    Query(after): Query<After>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = after
        .after
        .unwrap_or_else(|| board.app.case_projection().position);
    let stream = futures::stream::unfold((board, start), |(board, seen)| async move {
        loop {
            let moved = tokio::select! {
                () = board.stop.cancelled() => return None,
                moved = board.app.wait_for_projection(case_index::NAME, QUIET, |s| s.position > seen) => moved,
            };
            if moved {
                let position = board.app.case_projection().position;
                let event = Event::default().event("moved").data(position.to_string());
                return Some((Ok(event), (board, position)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
