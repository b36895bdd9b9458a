//! Chinese by default, English on request: `?lang=en` on any page, or the
//! `lang` cookie that the switch in the header sets.

use axum::extract::{Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use mediation_projections::sla::ClockStatus;
use serde::Deserialize;

use crate::session::cookie;

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Zh,
    En,
}

impl Lang {
    /// The request's language: its `lang` query parameter, else its cookie,
    /// else Chinese.
    pub(crate) fn of(parts: &Parts) -> Self {
        Self::from_headers(&parts.headers, parts.uri.query())
    }

    pub(crate) fn from_headers(headers: &HeaderMap, query: Option<&str>) -> Self {
        let asked = query.and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "lang")
                .map(|(_, v)| v)
        });
        match asked.or_else(|| cookie(headers, "lang")) {
            Some("en") => Self::En,
            _ => Self::Zh,
        }
    }

    /// `zh` in Chinese, `en` in English.
    pub(crate) fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Self::Zh => zh,
            Self::En => en,
        }
    }

    /// The `lang` attribute of the page.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Back {
    next: Option<String>,
}

/// Sets the language cookie and goes back to the page it was chosen on.
pub(crate) async fn switch(Path(code): Path<String>, Query(back): Query<Back>) -> Response {
    let code = if code == "en" { "en" } else { "zh" };
    let next = match back.next.as_deref() {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    };
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "lang={code}; Path=/; Max-Age=31536000; SameSite=Strict"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("")),
    );
    response
}

/// A stage's name for people.
pub(crate) fn stage(lang: Lang, stage: &str) -> String {
    let (zh, en) = match stage {
        "grid_report" => ("网格上报", "Grid report"),
        "village_handling" => ("村级办理", "Village handling"),
        "town_handling" => ("镇级办理", "Town handling"),
        "district_handling" => ("区级办理", "District handling"),
        "mediation" => ("调解", "Mediation"),
        "judicial_confirmation_window" => ("司法确认申请期", "Judicial confirmation window"),
        "judicial_confirmation_acceptance" => ("司法确认受理", "Judicial confirmation acceptance"),
        "judicial_confirmation_ruling" => ("司法确认裁定", "Judicial confirmation ruling"),
        "petition_triage" => ("信访分流", "Petition triage"),
        "petition_acceptance_notice" => ("受理告知", "Acceptance notice"),
        "petition_objection" => ("异议期", "Objection window"),
        "petition_opinion" => ("处理意见", "Handling opinion"),
        "petition_extension" => ("延期", "Extension"),
        "review_request" => ("复查申请期", "Review request window"),
        "review" => ("复查", "Review"),
        "re_review_request" => ("复核申请期", "Re-review request window"),
        "re_review" => ("复核", "Re-review"),
        "assigned_report" => ("交办报告", "Assigned report"),
        other => return other.to_owned(),
    };
    lang.t(zh, en).to_owned()
}

/// A level's name for people.
pub(crate) fn level(lang: Lang, level: &str) -> &'static str {
    match level {
        "grid" => lang.t("网格", "Grid"),
        "village" => lang.t("村(社区)", "Village"),
        "town" => lang.t("镇(街道)", "Town"),
        "district" => lang.t("区(县)", "District"),
        _ => lang.t("未知", "Unknown"),
    }
}

/// A clock status for people.
pub(crate) fn status(lang: Lang, status: ClockStatus) -> &'static str {
    match status {
        ClockStatus::Running => lang.t("计时中", "Running"),
        ClockStatus::Warned50 => lang.t("已过半", "Past 50%"),
        ClockStatus::Warned75 => lang.t("已过75%", "Past 75%"),
        ClockStatus::Breached => lang.t("已超时", "Breached"),
        ClockStatus::Met => lang.t("按期完成", "Met"),
    }
}
