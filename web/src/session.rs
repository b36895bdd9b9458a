//! Signing in and out, sessions and their cookies, CSRF tokens.
//!
//! A session is a random id the board hands out after a correct agency
//! token; it maps to the [`Caller`] that token named, in memory only (a
//! restart signs everybody out, which is the safe direction). The cookie is
//! HttpOnly (no script reads it), SameSite=Strict (no other site's page
//! sends it) and expires after [`SESSION_TTL`], as the session does.
//!
//! Forms are protected twice: SameSite=Strict keeps the session cookie off
//! cross-site posts, and every form carries a token a third party cannot
//! read: the session's own, or before sign-in a token mirrored in a
//! short-lived cookie (double submit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use mediation_app::access::{Caller, new_token};
use serde::Deserialize;

use crate::Board;
use crate::error::PageError;
use crate::i18n::Lang;

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);

/// How long the sign-in form's CSRF cookie lasts.
const FORM_TTL: Duration = Duration::from_secs(15 * 60);

const SESSION_COOKIE: &str = "mediation_session";
const FORM_COOKIE: &str = "mediation_form";

/// The sessions of this process.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    // A std Mutex: it is never held across an await.
    open: Mutex<HashMap<String, Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    caller: Arc<Caller>,
    csrf: String,
    expires: Instant,
}

impl Sessions {
    fn open(&self, caller: Arc<Caller>) -> (String, Session) {
        let id = new_token();
        let session = Session {
            caller,
            csrf: new_token(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        open.retain(|_, s| s.expires > now);
        open.insert(id.clone(), session.clone());
        (id, session)
    }

    fn get(&self, id: &str) -> Option<Session> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    fn close(&self, id: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(id);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the board's attributes.
fn set_cookie(name: &str, value: &str, max_age: Duration) -> HeaderValue {
    let text = format!(
        "{name}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict",
        max_age.as_secs()
    );
    // Names and values are ours: ASCII letters, digits and `_`.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Who is looking at a page: the caller (from the session, or the local
/// supervisor when authentication is off), the CSRF token of the
/// session's forms, and the language.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) caller: Arc<Caller>,
    pub(crate) csrf: Option<String>,
    pub(crate) lang: Lang,
    /// The path and query of the page, for the language switch.
    pub(crate) here: String,
}

impl FromRequestParts<Board> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, board: &Board) -> Result<Self, Response> {
        let lang = Lang::of(parts);
        let here = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        if !board.agencies.enabled() {
            let caller = board
                .agencies
                .caller("")
                .ok_or_else(|| PageError::Internal.into_response())?;
            return Ok(Self {
                caller,
                csrf: None,
                lang,
                here,
            });
        }
        let session = cookie(&parts.headers, SESSION_COOKIE).and_then(|id| board.sessions.get(id));
        match session {
            Some(session) => Ok(Self {
                caller: session.caller,
                csrf: Some(session.csrf),
                lang,
                here,
            }),
            None => {
                let next = form_urlencode(&here);
                Err(Redirect::to(&format!("/signin?next={next}")).into_response())
            }
        }
    }
}

/// Percent-encodes everything but unreserved characters.
fn form_urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after signing in: a path on this board, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
    error: Option<String>,
}

/// The sign-in form, with a fresh CSRF token mirrored in a cookie.
pub(crate) async fn sign_in_form(
    State(board): State<Board>,
    Query(query): Query<NextQuery>,
    parts: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let lang = Lang::from_headers(&parts, uri.query());
    if !board.agencies.enabled() {
        return Redirect::to(safe_next(query.next.as_deref())).into_response();
    }
    let token = new_token();
    let page = crate::pages::sign_in_page(
        lang,
        &token,
        safe_next(query.next.as_deref()),
        query.error.is_some(),
    );
    let mut response = page.into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(FORM_COOKIE, &token, FORM_TTL),
    );
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    token: String,
    csrf: String,
    next: Option<String>,
}

/// Checks the form's CSRF token and the agency token; opens a session.
pub(crate) async fn sign_in(
    State(board): State<Board>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let mirrored = cookie(&headers, FORM_COOKIE).unwrap_or_default();
    if mirrored.is_empty() || !same_secret(mirrored, &form.csrf) {
        return PageError::Forbidden("the form has expired; reload the page".into())
            .into_response();
    }
    let next = safe_next(form.next.as_deref()).to_owned();
    let caller = if board.agencies.enabled() {
        board.agencies.caller(form.token.trim())
    } else {
        None
    };
    let Some(caller) = caller else {
        tracing::info!("a sign-in to the board was refused: unknown or revoked token");
        let next = form_urlencode(&next);
        return Redirect::to(&format!("/signin?error=1&next={next}")).into_response();
    };
    tracing::info!(agency = %caller.agency(), "signed in to the board");
    let (id, _) = board.sessions.open(caller);
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, SESSION_TTL),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(FORM_COOKIE, "", Duration::ZERO),
    );
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignOut {
    csrf: String,
}

/// Ends the session, if the form's token is the session's.
pub(crate) async fn sign_out(
    State(board): State<Board>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    let Some(id) = cookie(&headers, SESSION_COOKIE) else {
        return Redirect::to("/signin").into_response();
    };
    match board.sessions.get(id) {
        Some(session) if same_secret(&session.csrf, &form.csrf) => {
            board.sessions.close(id);
            let mut response = Redirect::to("/signin").into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, "", Duration::ZERO),
            );
            response
        }
        Some(_) => {
            PageError::Forbidden("the form has expired; reload the page".into()).into_response()
        }
        None => Redirect::to("/signin").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_board_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/sla?division=1")), "/sla?division=1");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", ""] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_are_found_among_others_and_secrets_compare_whole() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("lang=en; mediation_session=abc"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, FORM_COOKIE), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
