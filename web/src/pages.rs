//! The pages. Each one authorises its reads with the RPC names the gRPC
//! services use ([`Caller::authorise`]), narrows them with
//! [`App::subtrees`] (a division filter must lie in the agency's scope) and
//! reads the same read-model queries; nothing here decides who may see what.
//! Pages show no party's or petitioner's name, so there is nothing to
//! redact: the case page's timeline shows what happened, who acted and
//! the deadlines, not the events' free text.
//!
//! [`App`]: mediation_app::App

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use chrono::{DateTime, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, html};
use mediation_app::access::Caller;
use mediation_app::accountability::CaseKind;
use mediation_domain::policy::Stage;
use mediation_domain::values::{DivisionCode, Level};
use mediation_projections::petitioners::{self, RepeatBasis};
use mediation_projections::sla::{self, ClockQuery, ClockRow, OpenCount};
use mediation_projections::statistics::{self, Counts, Grouping, Period};
use serde::Deserialize;
use serde_json::Value;

use crate::Board;
use crate::charts;
use crate::error::PageError;
use crate::i18n::{self, Lang};
use crate::session::Viewer;

/// The most clocks the SLA board lists (earliest due first); the counts
/// above the list are not cut.
const BOARD_ROWS: usize = 500;

/// The most repeat petitions and skipped-level visits the petitions page
/// lists, the latest received.
const PETITION_ROWS: u32 = 200;

/// The default "due soon" window, in days.
const DUE_SOON_DAYS: u32 = 3;

/// The repeat window of the petitions page, in days.
const REPEAT_WINDOW_DAYS: u32 = 90;

/// How many months the overview's trends cover, this one included.
const TREND_MONTHS: u32 = 6;

/// The start of "from the beginning", as the gRPC dashboards use it.
const BEGINNING: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// Beijing time (+08:00, no daylight saving), in which the board shows
/// instants.
fn local(at: DateTime<Utc>) -> String {
    (at + TimeDelta::hours(8))
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nav {
    Overview,
    Sla,
    Breaches,
    Petitions,
    Case,
}

/// The page around `body`. `position` is the case projection's position
/// the page was read at: the live script follows the log from there.
fn frame(board: &Board, v: &Viewer, nav: Nav, title: &str, body: Markup) -> Markup {
    let lang = v.lang;
    let position = board.app.case_projection().position;
    let next = urlencode(&strip_lang(&v.here));
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("矛调中心看板", "Mediation board")) }
                link rel="stylesheet" href="/assets/board.css";
                // No favicon to fetch (a 404 would show in the console).
                link rel="icon" href="data:,";
            }
            body data-position=(position) {
                header.top {
                    a href="/" { strong { (lang.t("矛调中心看板", "Mediation board")) } }
                    nav {
                        a.here[nav == Nav::Overview] href="/" { (lang.t("总览", "Overview")) }
                        a.here[nav == Nav::Sla] href="/sla" { (lang.t("时限看板", "SLA board")) }
                        a.here[nav == Nav::Breaches] href="/breaches" { (lang.t("超时问责", "Breaches")) }
                        a.here[nav == Nav::Petitions] href="/petitions" { (lang.t("信访", "Petitions")) }
                    }
                    div.who {
                        @if lang == Lang::Zh {
                            a #lang-switch href={ "/lang/en?next=" (next) } { "English" }
                        } @else {
                            a #lang-switch href={ "/lang/zh?next=" (next) } { "中文" }
                        }
                        span #agency { (v.caller.agency().as_str()) }
                        @if let Some(csrf) = &v.csrf {
                            form method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button #signout type="submit" { (lang.t("退出", "Sign out")) }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                script src="/assets/board.js" {}
            }
        }
    }
}

/// The address without its `lang` parameter (the switch sets the cookie).
fn strip_lang(here: &str) -> String {
    match here.split_once('?') {
        None => here.to_owned(),
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.starts_with("lang="))
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
    }
}

fn urlencode(text: &str) -> String {
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

/// The sign-in page.
pub(crate) fn sign_in_page(lang: Lang, csrf: &str, next: &str, failed: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                title { (lang.t("登录 · 矛调中心看板", "Sign in · Mediation board")) }
                link rel="stylesheet" href="/assets/board.css";
                // No favicon to fetch (a 404 would show in the console).
                link rel="icon" href="data:,";
            }
            body {
                form.signin #signin method="post" action="/signin" {
                    h1 { (lang.t("矛调中心看板", "Mediation board")) }
                    p.muted { (lang.t("请输入本单位的访问令牌。", "Enter your agency's access token.")) }
                    @if failed {
                        p.error #signin-error { (lang.t("令牌无效或已撤销。", "Unknown or revoked token.")) }
                    }
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label for="token" { (lang.t("访问令牌", "Access token")) }
                    input #token type="password" name="token" autocomplete="off" required;
                    button #signin-submit type="submit" { (lang.t("登录", "Sign in")) }
                    p { a href={ "/signin?lang=" (if lang == Lang::Zh { "en" } else { "zh" }) "&next=" (urlencode(next)) } {
                        (lang.t("English", "中文"))
                    } }
                }
            }
        }
    }
}

fn parse_division(raw: Option<&str>) -> Result<Option<DivisionCode>, PageError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => DivisionCode::parse(s)
            .map(Some)
            .map_err(|e| PageError::BadRequest(e.reason)),
    }
}

fn division_name(board: &Board, code: Option<&str>) -> String {
    let Some(code) = code else {
        return "—".to_owned();
    };
    DivisionCode::parse(code)
        .ok()
        .and_then(|d| {
            board
                .app
                .services()
                .jurisdiction()
                .get(&d)
                .map(|d| d.name.clone())
        })
        .unwrap_or_else(|| code.to_owned())
}

/// The kept open counts of `subtrees`, inside the caller's scope, with
/// the clocks due in (`now`, `soon`] counted as due soon.
async fn counts_in(
    board: &Board,
    caller: &Caller,
    subtrees: &[DivisionCode],
    now: DateTime<Utc>,
    soon: DateTime<Utc>,
) -> Result<Vec<OpenCount>, PageError> {
    let mut counts = Vec::new();
    for subtree in subtrees {
        counts.extend(
            sla::open_counts(
                board.app.store(),
                subtree.subtree_bounds(),
                caller.scope().map(DivisionCode::subtree_bounds),
                now,
                soon,
            )
            .await?,
        );
    }
    Ok(counts)
}

/// The first [`BOARD_ROWS`] open clocks (not stopped) in `subtrees` due in
/// `window` (or, with `overdue_at`, due by then), earliest due first,
/// inside the caller's scope.
async fn listed_clocks(
    board: &Board,
    caller: &Caller,
    subtrees: &[DivisionCode],
    window: (DateTime<Utc>, DateTime<Utc>),
    overdue_at: Option<DateTime<Utc>>,
    stage: Option<String>,
) -> Result<Vec<ClockRow>, PageError> {
    let mut rows = Vec::new();
    for subtree in subtrees {
        let query = ClockQuery {
            division: Some(subtree.subtree_bounds()),
            scope: caller.scope().map(DivisionCode::subtree_bounds),
            overdue_at,
            due_between: overdue_at.is_none().then_some(window),
            stage: stage.clone(),
            limit: BOARD_ROWS as u32,
            ..ClockQuery::default()
        };
        rows.extend(sla::clocks(board.app.store(), &query).await?);
    }
    // Subtrees are disjoint; their first rows together, in due order.
    rows.sort_by(|a, b| (a.due_at, &a.case_id).cmp(&(b.due_at, &b.case_id)));
    rows.truncate(BOARD_ROWS);
    Ok(rows)
}

/// Every open clock, whatever its due time.
fn any_time() -> (DateTime<Utc>, DateTime<Utc>) {
    (BEGINNING, BEGINNING + TimeDelta::days(365 * 200))
}

fn within(row_division: Option<&str>, root: &DivisionCode) -> bool {
    row_division
        .and_then(|d| DivisionCode::parse(d).ok())
        .is_some_and(|d| d.is_within(root))
}

/// How long until `due` (or how long past it), in days and hours.
fn left(lang: Lang, now: DateTime<Utc>, due: DateTime<Utc>) -> String {
    let delta = due - now;
    let late = delta < TimeDelta::zero();
    let total = delta.abs();
    let days = total.num_days();
    let hours = total.num_hours() - days * 24;
    match (lang, late) {
        (Lang::Zh, true) => format!("超时 {days}天{hours}小时"),
        (Lang::Zh, false) => format!("剩余 {days}天{hours}小时"),
        (Lang::En, true) => format!("{days}d {hours}h overdue"),
        (Lang::En, false) => format!("{days}d {hours}h left"),
    }
}

fn case_link(row_type: &str, id: &str) -> String {
    let kind = if row_type == "Petition" {
        "petition"
    } else {
        "dispute"
    };
    format!("/case/{kind}/{}", urlencode(id))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SlaQuery {
    view: Option<String>,
    division: Option<String>,
    stage: Option<String>,
    sort: Option<String>,
    days: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Overdue,
    DueSoon,
    Open,
}

impl View {
    fn name(self) -> &'static str {
        match self {
            Self::Overdue => "overdue",
            Self::DueSoon => "due_soon",
            Self::Open => "open",
        }
    }
}

/// The SLA board: overdue and due-soon clocks with their holders, filtered
/// by division (drilling down district → town → village) and stage.
pub(crate) async fn sla_board(
    State(board): State<Board>,
    viewer: Viewer,
    Query(q): Query<SlaQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let caller = &viewer.caller;
    caller.authorise("ListClocks")?;
    let division = parse_division(q.division.as_deref())?;
    let subtrees = board.app.subtrees(caller, division.clone())?;
    let view = match q.view.as_deref() {
        Some("due_soon") => View::DueSoon,
        Some("open") => View::Open,
        _ => View::Overdue,
    };
    let days = q.days.unwrap_or(DUE_SOON_DAYS).clamp(1, 366);
    let stage = q
        .stage
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(Stage::parse);
    let now = board.app.now();
    let soon = (now, now + TimeDelta::days(i64::from(days)));
    // The cards and the drill-down sum the kept counts; only the list
    // reads clocks, the first BOARD_ROWS of the view in due order.
    let counts = counts_in(&board, caller, &subtrees, now, soon.1).await?;
    let of_view = |c: &OpenCount| match view {
        View::Overdue => c.overdue,
        View::DueSoon => c.due_soon,
        View::Open => c.open,
    };
    let in_stage = |c: &&OpenCount| stage.is_none_or(|s| c.stage == s.as_str());
    let sum = |f: &dyn Fn(&OpenCount) -> i64, root: Option<&DivisionCode>| -> i64 {
        counts
            .iter()
            .filter(in_stage)
            .filter(|c| root.is_none_or(|r| within(c.division.as_deref(), r)))
            .map(f)
            .sum()
    };
    let overdue_n = sum(&|c| c.overdue, None);
    let due_soon_n = sum(&|c| c.due_soon, None);
    let listed = usize::try_from(sum(&of_view, None)).unwrap_or(0);
    let (window, overdue_at) = match view {
        View::Overdue => (any_time(), Some(now)),
        View::DueSoon => (soon, None),
        View::Open => (any_time(), None),
    };
    let mut rows = listed_clocks(
        &board,
        caller,
        &subtrees,
        window,
        overdue_at,
        stage.map(|s| s.as_str().to_owned()),
    )
    .await?;
    let sort = q.sort.as_deref().unwrap_or("due");
    match sort {
        "case" => rows.sort_by(|a, b| a.case_id.cmp(&b.case_id)),
        "holder" => rows.sort_by(|a, b| (&a.body, &a.person).cmp(&(&b.body, &b.person))),
        "stage" => rows.sort_by(|a, b| a.stage.cmp(&b.stage)),
        "division" => rows.sort_by(|a, b| a.division.cmp(&b.division)),
        _ => {}
    }

    // Drill-down: the divisions directly below the one looked at, with
    // how many clocks of the view each holds.
    let jurisdiction = board.app.services().jurisdiction();
    let current = division.clone().or_else(|| caller.scope().cloned());
    let children: Vec<(DivisionCode, String, i64)> = match &current {
        Some(code) => jurisdiction
            .children(code)
            .map(|d| (d.code.clone(), d.name.clone(), sum(&of_view, Some(&d.code))))
            .collect(),
        None => subtrees
            .iter()
            .map(|code| {
                let name = jurisdiction
                    .get(code)
                    .map_or_else(|| code.to_string(), |d| d.name.clone());
                (code.clone(), name, sum(&of_view, Some(code)))
            })
            .collect(),
    };
    // The way back up, as far as the agency's scope reaches.
    let mut crumbs = Vec::new();
    let mut at = current.clone();
    while let Some(code) = at {
        if !caller.covers(&code) {
            break;
        }
        let name = jurisdiction
            .get(&code)
            .map_or_else(|| code.to_string(), |d| d.name.clone());
        at = jurisdiction.parent(&code).map(|p| p.code.clone());
        crumbs.push((code, name));
    }
    crumbs.reverse();

    let link = |division: Option<&DivisionCode>, view: View, sort: &str| {
        let mut url = format!("/sla?view={}&sort={sort}", view.name());
        if let Some(d) = division {
            url.push_str(&format!("&division={d}"));
        }
        if let Some(s) = stage {
            url.push_str(&format!("&stage={}", s.as_str()));
        }
        if view == View::DueSoon || q.days.is_some() {
            url.push_str(&format!("&days={days}"));
        }
        url
    };
    let title = lang.t("时限看板", "SLA board");
    let body = html! {
        div #live {
            div.cards {
                a.card.late href=(link(division.as_ref(), View::Overdue, sort)) {
                    div.n #overdue-count { (overdue_n) }
                    div.l { (lang.t("已超时", "Overdue")) }
                }
                a.card.soon href=(link(division.as_ref(), View::DueSoon, sort)) {
                    div.n #due-soon-count { (due_soon_n) }
                    div.l { (lang.t("即将到期", "Due soon")) " (" (days) (lang.t("天内", " days")) ")" }
                }
            }
            form.filters #filters method="get" action="/sla" {
                label { (lang.t("视图", "View"))
                    select #view name="view" {
                        option value="overdue" selected[view == View::Overdue] { (lang.t("已超时", "Overdue")) }
                        option value="due_soon" selected[view == View::DueSoon] { (lang.t("即将到期", "Due soon")) }
                        option value="open" selected[view == View::Open] { (lang.t("全部计时", "All open")) }
                    }
                }
                label { (lang.t("区划", "Division"))
                    select #division name="division" {
                        option value="" { (lang.t("本单位全部", "All of my scope")) }
                        @for d in jurisdiction.divisions().filter(|d| caller.covers(&d.code)) {
                            option value=(d.code) selected[division.as_ref() == Some(&d.code)] {
                                (d.name) " (" (d.code) ")"
                            }
                        }
                    }
                }
                label { (lang.t("环节", "Stage"))
                    select #stage name="stage" {
                        option value="" { (lang.t("全部环节", "Every stage")) }
                        @for s in Stage::ALL {
                            option value=(s.as_str()) selected[stage == Some(*s)] { (i18n::stage(lang, s.as_str())) }
                        }
                    }
                }
                input type="hidden" name="sort" value=(sort);
                button #apply type="submit" { (lang.t("筛选", "Filter")) }
            }
            div.crumbs #crumbs {
                @for (i, (code, name)) in crumbs.iter().enumerate() {
                    @if i > 0 { " › " }
                    a href=(link(Some(code), view, sort)) { (name) }
                }
            }
            @if !children.is_empty() {
                div.children #drilldown {
                    @for (code, name, n) in &children {
                        a href=(link(Some(code), view, sort)) data-division=(code) {
                            (name) " " span.num { (n) }
                        }
                    }
                }
            }
            p.muted #listed {
                (lang.t("共 ", "")) span #listed-count { (listed) } (lang.t(" 项", " clocks"))
                @if listed > BOARD_ROWS { (lang.t(",只列出最早到期的 500 项", "; the 500 due first are listed")) }
            }
            table #clocks {
                thead { tr {
                    th { a href=(link(division.as_ref(), view, "case")) { (lang.t("案件", "Case")) } }
                    th { a href=(link(division.as_ref(), view, "stage")) { (lang.t("环节", "Stage")) } }
                    th { a href=(link(division.as_ref(), view, "division")) { (lang.t("区划", "Division")) } }
                    th { (lang.t("层级", "Level")) }
                    th { a href=(link(division.as_ref(), view, "holder")) { (lang.t("承办单位 / 人", "Holder")) } }
                    th { a href=(link(division.as_ref(), view, "due")) { (lang.t("到期", "Due")) } }
                    th { (lang.t("剩余 / 超时", "Left / overdue")) }
                    th { (lang.t("状态", "Status")) }
                } }
                tbody {
                    @for r in &rows {
                        @let late = r.due_at <= now;
                        tr.late[late].soon[!late] data-case=(r.case_id) data-stage=(r.stage) {
                            td { a href=(case_link(&r.aggregate_type, &r.case_id)) { (r.case_id) } }
                            td { (i18n::stage(lang, &r.stage)) }
                            td { (division_name(&board, r.division.as_deref())) }
                            td { (i18n::level(lang, r.level.as_deref().unwrap_or_default())) }
                            td.holder {
                                (r.body.as_deref().unwrap_or("—"))
                                @if let Some(p) = &r.person { " / " (p) }
                            }
                            td { (local(r.due_at)) }
                            td.left { (left(lang, now, r.due_at)) }
                            td { (i18n::status(lang, r.status)) }
                        }
                    }
                }
            }
        }
    };
    Ok(frame(&board, &viewer, Nav::Sla, title, body))
}

/// One step of a case's timeline: its deadlines, found by their shape
/// (an object with `stage` and `due`), as GetCaseHistory finds them.
fn deadlines(value: &Value, found: &mut Vec<(String, DateTime<Utc>)>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(stage)), Some(due)) = (map.get("stage"), map.get("due"))
                && let Ok(due) = serde_json::from_value::<DateTime<Utc>>(due.clone())
            {
                found.push((stage.clone(), due));
                return;
            }
            for child in map.values() {
                deadlines(child, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| deadlines(i, found)),
        _ => {}
    }
}

fn deadlines_of(payload: &Value) -> Vec<(String, DateTime<Utc>)> {
    let mut found = Vec::new();
    deadlines(payload, &mut found);
    found
}

/// A case: its timeline from the log, and who answered for each breach.
pub(crate) async fn case_page(
    State(board): State<Board>,
    viewer: Viewer,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let caller = &viewer.caller;
    let kind = match kind.as_str() {
        "dispute" => CaseKind::Dispute,
        "petition" => CaseKind::Petition,
        _ => return Err(PageError::NotFound("no such kind of case".into())),
    };
    let events = board.app.case_history(caller, kind, &id).await?;
    let accountability = board.app.case_accountability(caller, kind, &id).await?;
    let last = events.last();
    let division = last
        .and_then(|e| e.metadata.get("division"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let title = match kind {
        CaseKind::Dispute => lang.t("纠纷案件", "Dispute"),
        CaseKind::Petition => lang.t("信访事项", "Petition"),
    };
    let body = html! {
        div #live {
            p #case-head {
                strong #case-id { (id) } " · "
                (lang.t("当前区划:", "Held by: ")) span #case-division { (division_name(&board, division.as_deref())) }
                " · " (lang.t("事件数:", "Events: ")) span #event-count { (events.len()) }
            }
            @if let Some(official) = &accountability.official {
                p { (lang.t("责任人:", "Responsible official: ")) (official.to_string()) }
            }
            h2 { (lang.t("超时记录", "Breaches")) }
            @if accountability.breaches.is_empty() {
                p.muted #no-breaches { (lang.t("没有超时。", "No deadline has been breached.")) }
            } @else {
                table #case-breaches {
                    thead { tr {
                        th { (lang.t("环节", "Stage")) } th { (lang.t("到期", "Due")) }
                        th { (lang.t("记录时间", "Recorded")) } th { (lang.t("当时承办", "Held by then")) }
                    } }
                    tbody {
                        @for b in &accountability.breaches {
                            tr {
                                td { (i18n::stage(lang, b.stage.as_str())) }
                                td { (local(b.due)) }
                                td { (local(b.recorded_at)) }
                                td {
                                    (division_name(&board, b.holder.division.as_ref().map(DivisionCode::as_str)))
                                    @if let Some(body) = &b.holder.body { " / " (body) }
                                    @if let Some(person) = &b.holder.person { " / " (person) }
                                }
                            }
                        }
                    }
                }
            }
            h2 { (lang.t("时间线", "Timeline")) }
            ol.timeline #timeline {
                @for e in &events {
                    @let by = e.payload.get("by");
                    @let actor = by.and_then(|b| b.get("id")).and_then(Value::as_str);
                    @let agency = by.and_then(|b| b.get("agency")).and_then(Value::as_str);
                    @let at = e.payload.get("at").and_then(|a| serde_json::from_value::<DateTime<Utc>>(a.clone()).ok()).unwrap_or(e.recorded_at);
                    @let found = deadlines_of(&e.payload);
                    li.breach[e.event_type.contains("Breach")].warning[e.event_type.contains("Warn")]
                        data-event=(e.event_type) data-position=(e.position) {
                        div.when { (local(at)) " · #" (e.sequence) }
                        div.what { strong { (e.event_type) } }
                        @if actor.is_some() || agency.is_some() {
                            div.by.muted {
                                (lang.t("经办:", "By: ")) (actor.unwrap_or("—"))
                                @if let Some(a) = agency { " (" (a) ")" }
                            }
                        }
                        @for (stage, due) in &found {
                            div.deadline { (lang.t("时限 ", "Deadline ")) (i18n::stage(lang, stage)) ": " (local(*due)) }
                        }
                    }
                }
            }
        }
    };
    Ok(frame(&board, &viewer, Nav::Case, title, body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DivisionQuery {
    division: Option<String>,
}

/// Breaches per body (the kept counts) and per person (who held each
/// clock when it went overdue).
pub(crate) async fn breaches(
    State(board): State<Board>,
    viewer: Viewer,
    Query(q): Query<DivisionQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let caller = &viewer.caller;
    caller.authorise("ListBreachesByBody")?;
    let division = parse_division(q.division.as_deref())?;
    let subtrees = board.app.subtrees(caller, division)?;
    let mut bodies: BTreeMap<Option<String>, (i64, i64, i64)> = BTreeMap::new();
    for subtree in &subtrees {
        for b in sla::breaches_by_body(board.app.store(), Some(subtree.subtree_bounds()), BEGINNING)
            .await?
        {
            let sum = bodies.entry(b.body).or_default();
            sum.0 += b.breached;
            sum.1 += b.met;
            sum.2 += b.running;
        }
    }
    let mut bodies: Vec<_> = bodies.into_iter().collect();
    bodies.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
    // Who held each breached clock when its due time passed (kept counts).
    let mut people: BTreeMap<(Option<String>, Option<String>), i64> = BTreeMap::new();
    for subtree in &subtrees {
        for h in sla::breaches_by_holder(
            board.app.store(),
            subtree.subtree_bounds(),
            caller.scope().map(DivisionCode::subtree_bounds),
        )
        .await?
        {
            *people.entry((h.body, h.person)).or_default() += h.breached;
        }
    }
    let mut people: Vec<_> = people.into_iter().collect();
    people.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let title = lang.t("超时问责", "Breaches");
    let body = html! {
        h2 { (lang.t("按承办单位", "Per body")) }
        table #by-body {
            thead { tr {
                th { (lang.t("承办单位", "Body")) }
                th.num { (lang.t("超时", "Breached")) }
                th.num { (lang.t("按期", "Met")) }
                th.num { (lang.t("计时中", "Running")) }
            } }
            tbody {
                @for (body, (breached, met, running)) in &bodies {
                    tr data-body=(body.as_deref().unwrap_or("")) {
                        td { (body.as_deref().unwrap_or(lang.t("(未指定单位)", "(no body named)"))) }
                        td.num.breached { (breached) } td.num { (met) } td.num { (running) }
                    }
                }
            }
        }
        h2 { (lang.t("按超时时的承办人", "Per person holding the case when it went overdue")) }
        table #by-person {
            thead { tr {
                th { (lang.t("承办单位", "Body")) } th { (lang.t("承办人", "Person")) }
                th.num { (lang.t("超时", "Breached")) }
            } }
            tbody {
                @for ((body, person), n) in &people {
                    tr data-person=(person.as_deref().unwrap_or("")) {
                        td { (body.as_deref().unwrap_or("—")) }
                        td { (person.as_deref().unwrap_or("—")) }
                        td.num.breached { (n) }
                    }
                }
            }
        }
    };
    Ok(frame(&board, &viewer, Nav::Breaches, title, body))
}

/// The months of the trend, oldest first, ending with `this`.
fn months(this: Period) -> Vec<Period> {
    let mut out = vec![this];
    let (mut year, mut month) = (this.year(), this.month());
    for _ in 1..TREND_MONTHS {
        if month == 1 {
            year -= 1;
            month = 12;
        } else {
            month -= 1;
        }
        match Period::new(year, month) {
            Ok(p) => out.push(p),
            Err(_) => break,
        }
    }
    out.reverse();
    out
}

/// The overview: open cases per level, this month's escalation funnel, and
/// per town the lowest-level resolution and mediation success rates with
/// their trend over the last months.
pub(crate) async fn overview(
    State(board): State<Board>,
    viewer: Viewer,
    Query(q): Query<DivisionQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let caller = &viewer.caller;
    caller.authorise("GetResolutionStats")?;
    caller.authorise("ListClocks")?;
    let division = parse_division(q.division.as_deref())?;
    let subtrees = board.app.subtrees(caller, division)?;
    let now = board.app.now();
    let store = board.app.store();

    // Open disputes per level: each holds its level's handling clock.
    let counts = counts_in(&board, caller, &subtrees, now, now).await?;
    let overdue: i64 = counts.iter().map(|c| c.overdue).sum();
    let open_at = |stage: Stage| -> i64 {
        counts
            .iter()
            .filter(|c| c.aggregate_type == "Dispute" && c.stage == stage.as_str())
            .map(|c| c.open)
            .sum()
    };
    let per_level: Vec<(Level, i64)> = [
        (Level::Village, Stage::VillageHandling),
        (Level::Town, Stage::TownHandling),
        (Level::District, Stage::DistrictHandling),
    ]
    .iter()
    .map(|(level, stage)| (*level, open_at(*stage)))
    .collect();
    let open_disputes: i64 = per_level.iter().map(|(_, n)| n).sum();

    // This month's funnel: cases entering the village level, escalated to
    // the town, escalated to the district.
    let this = Period::of(now);
    let mut by_level: BTreeMap<Option<Level>, Counts> = BTreeMap::new();
    for subtree in &subtrees {
        for row in statistics::query(store, subtree, this, this, None, Grouping::Level).await? {
            let sum = by_level.entry(row.level).or_default();
            *sum = *sum + row.counts;
        }
    }
    let at = |level: Level| by_level.get(&Some(level)).copied().unwrap_or_default();
    let village = at(Level::Village);
    let town = at(Level::Town);
    let funnel = vec![
        (
            lang.t("村级受理", "Taken in at village").to_owned(),
            village.registered + village.moved_in,
        ),
        (
            lang.t("村→镇 上报", "Village → town").to_owned(),
            village.escalated_up,
        ),
        (
            lang.t("镇→区 上报", "Town → district").to_owned(),
            town.escalated_up,
        ),
    ];

    // Per town, over the trend's months.
    let jurisdiction = board.app.services().jurisdiction();
    let towns: Vec<_> = jurisdiction
        .divisions()
        .filter(|d| d.level == Level::Town && subtrees.iter().any(|s| d.code.is_within(s)))
        .collect();
    let span = months(this);
    let first = span.first().copied().unwrap_or(this);
    let mut town_rows = Vec::new();
    for t in &towns {
        let mut per_month: BTreeMap<Period, Counts> = BTreeMap::new();
        for row in
            statistics::query(store, &t.code, first, this, None, Grouping::LevelPeriod).await?
        {
            if let Some(p) = row.period {
                let sum = per_month.entry(p).or_default();
                *sum = *sum + row.counts;
            }
        }
        let total = per_month.values().fold(Counts::default(), |a, b| a + *b);
        let lowest: Vec<(String, Option<f64>)> = span
            .iter()
            .map(|p| {
                (
                    p.to_string(),
                    per_month
                        .get(p)
                        .and_then(|c| c.rates().lowest_level_resolution),
                )
            })
            .collect();
        let success: Vec<(String, Option<f64>)> = span
            .iter()
            .map(|p| {
                (
                    p.to_string(),
                    per_month.get(p).and_then(|c| c.rates().mediation_success),
                )
            })
            .collect();
        town_rows.push((t.code.clone(), t.name.clone(), total, lowest, success));
    }
    let levels: Vec<(String, u64)> = per_level
        .iter()
        .map(|(l, n)| {
            (
                i18n::level(lang, l.as_str()).to_owned(),
                u64::try_from(*n).unwrap_or(0),
            )
        })
        .collect();
    let title = lang.t("总览", "Overview");
    let body = html! {
        div.cards {
            div.card { div.n #open-count { (open_disputes) } div.l { (lang.t("在办纠纷", "Open disputes")) } }
            div.card.late { div.n #overview-overdue { (overdue) } div.l { (lang.t("超时计时", "Overdue clocks")) } }
        }
        section.panel {
            h2 { (lang.t("各层级在办案件", "Open cases per level")) }
            (charts::bars("chart-levels", &levels))
        }
        section.panel {
            h2 { (lang.t("本月上报漏斗", "This month's escalation funnel")) " (" (this) ")" }
            (charts::bars("chart-funnel", &funnel))
        }
        section.panel {
            h2 { (lang.t("各镇(街道)化解情况", "Resolution per town")) }
            table #towns {
                thead { tr {
                    th { (lang.t("镇(街道)", "Town")) }
                    th.num { (lang.t("结案", "Closed")) }
                    th.num { (lang.t("就地化解率", "Lowest-level resolution")) }
                    th { (lang.t("趋势", "Trend")) }
                    th.num { (lang.t("调解成功率", "Mediation success")) }
                    th { (lang.t("趋势", "Trend")) }
                } }
                tbody {
                    @for (code, name, total, lowest, success) in &town_rows {
                        @let rates = total.rates();
                        tr data-division=(code) {
                            td { a href={ "/sla?division=" (code) } { (name) } }
                            td.num.closed { (total.closed) }
                            td.num.lowest { (charts::percent(rates.lowest_level_resolution)) }
                            td { (charts::trend(lowest)) }
                            td.num.success { (charts::percent(rates.mediation_success)) }
                            td { (charts::trend(success)) }
                        }
                    }
                }
            }
            p.muted { (lang.t("统计区间:", "Months: ")) (first) " – " (this) }
        }
    };
    Ok(frame(&board, &viewer, Nav::Overview, title, body))
}

/// The petition stages, in the order of the procedure.
const PETITION_STAGES: &[Stage] = &[
    Stage::PetitionTriage,
    Stage::PetitionAcceptanceNotice,
    Stage::PetitionObjection,
    Stage::PetitionOpinion,
    Stage::ReviewRequest,
    Stage::Review,
    Stage::ReReviewRequest,
    Stage::ReReview,
];

/// Petitions: how many are in each statutory window now, repeat
/// petitions and skipped-level visits.
pub(crate) async fn petitions(
    State(board): State<Board>,
    viewer: Viewer,
    Query(q): Query<DivisionQuery>,
) -> Result<Markup, PageError> {
    let lang = viewer.lang;
    let caller = &viewer.caller;
    caller.authorise("ListClocks")?;
    caller.authorise("ListRepeatPetitions")?;
    caller.authorise("ListSkippedLevelVisits")?;
    let division = parse_division(q.division.as_deref())?;
    let subtrees = board.app.subtrees(caller, division)?;
    let now = board.app.now();
    let counts = counts_in(&board, caller, &subtrees, now, now).await?;
    let windows: Vec<(Stage, i64, i64)> = PETITION_STAGES
        .iter()
        .map(|s| {
            counts
                .iter()
                .filter(|c| c.aggregate_type == "Petition" && c.stage == s.as_str())
                .fold((*s, 0, 0), |(s, n, late), c| {
                    (s, n + c.open, late + c.overdue)
                })
        })
        .collect();
    let received = BEGINNING..now + TimeDelta::milliseconds(1);
    let mut repeats = Vec::new();
    let mut visits = Vec::new();
    for subtree in &subtrees {
        repeats.extend(
            petitioners::repeats(
                board.app.store(),
                subtree,
                received.clone(),
                REPEAT_WINDOW_DAYS,
                Some(PETITION_ROWS),
            )
            .await?,
        );
        visits.extend(
            petitioners::skipped_level_visits(
                board.app.store(),
                subtree,
                received.clone(),
                Some(PETITION_ROWS),
            )
            .await?,
        );
    }
    repeats.sort_by_key(|r| std::cmp::Reverse(r.later_received_at));
    visits.sort_by_key(|v| std::cmp::Reverse(v.received_at));
    let rows = PETITION_ROWS as usize;
    repeats.truncate(rows);
    visits.truncate(rows);
    let title = lang.t("信访", "Petitions");
    let body = html! {
        section.panel {
            h2 { (lang.t("各法定期限内的信访事项", "Petitions in each statutory window")) }
            table #windows {
                thead { tr {
                    th { (lang.t("期限", "Window")) }
                    th.num { (lang.t("在期限内", "Open")) }
                    th.num { (lang.t("已超期", "Overdue")) }
                } }
                tbody {
                    @for (stage, n, late) in &windows {
                        tr data-stage=(stage.as_str()) {
                            td { a href={ "/sla?view=open&stage=" (stage.as_str()) } { (i18n::stage(lang, stage.as_str())) } }
                            td.num.open { (n) }
                            td.num.late { (late) }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { (lang.t("重复信访", "Repeat petitions")) " (" (REPEAT_WINDOW_DAYS) (lang.t(" 天内", " days")) ")" }
            p.muted { span #repeat-count { (repeats.len()) } (lang.t(" 件", " found"))
                @if repeats.len() >= rows { (lang.t(",只列出最近的 200 件", "; the latest 200 are listed")) } }
            table #repeats {
                thead { tr {
                    th { (lang.t("前次", "Earlier")) } th { (lang.t("后次", "Later")) }
                    th { (lang.t("收到", "Received")) } th { (lang.t("依据", "Basis")) }
                } }
                tbody {
                    @for r in &repeats {
                        tr {
                            td { a href=(case_link("Petition", &r.earlier)) { (r.earlier) } }
                            td { a href=(case_link("Petition", &r.later)) { (r.later) } }
                            td { (local(r.later_received_at)) }
                            td { (match r.basis {
                                RepeatBasis::SamePetitioner => lang.t("同一信访人", "Same petitioner"),
                                RepeatBasis::SameUnitAndFacts => lang.t("同一单位同一事实", "Same unit and facts"),
                                RepeatBasis::Both => lang.t("两者皆是", "Both"),
                            }) }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { (lang.t("越级走访", "Skipped-level visits")) }
            p.muted { span #visit-count { (visits.len()) } (lang.t(" 件", " found"))
                @if visits.len() >= rows { (lang.t(",只列出最近的 200 件", "; the latest 200 are listed")) } }
            table #visits {
                thead { tr {
                    th { (lang.t("事项", "Petition")) } th { (lang.t("收到", "Received")) }
                    th { (lang.t("区划", "Division")) } th { (lang.t("有权处理层级", "Competent level")) }
                } }
                tbody {
                    @for v in &visits {
                        tr {
                            td { a href=(case_link("Petition", &v.case_id)) { (v.case_id) } }
                            td { (local(v.received_at)) }
                            td { (division_name(&board, Some(v.division.as_str()))) }
                            td { (i18n::level(lang, v.competent_level.as_str())) }
                        }
                    }
                }
            }
        }
    };
    Ok(frame(&board, &viewer, Nav::Petitions, title, body))
}
