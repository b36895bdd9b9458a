//! The style sheet and the live-update script, compiled into the binary:
//! many government networks have no internet, so the board fetches nothing
//! from elsewhere (no CDN, no web fonts).

use axum::http::header;
use axum::response::IntoResponse;

const CSS: &str = include_str!("../assets/board.css");
const SCRIPT: &str = include_str!("../assets/board.js");

pub(crate) async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
}

pub(crate) async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        SCRIPT,
    )
}
