//! `EventService`: the global log, in pages or as a live stream.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mediation_domain::petition::MatterType;
use mediation_domain::policy::Deadline;
use mediation_domain::values::{CaseId, DivisionCode, Name, UnitRef};
use mediation_proto::v1 as pb;
use mediation_proto::v1::event_service_server::EventService;
use mediation_store::{LogFilter, RecordedEvent};
use prost_types::Timestamp;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::convert::common::{case_kind, deadline_to_pb, timestamp};
use crate::error::{invalid_field, status, store_status};
use mediation_app::access::{Caller, Complaint};
use mediation_app::paging::{decode_page_token, encode_page_token, page_size};
use mediation_app::{App, COMPLAINED_UNIT, COMPLAINED_UNIT_ID, MATTER_TYPE};

/// How many events a subscription reads from the store at a time.
const SUBSCRIPTION_BATCH: u32 = 256;

/// How often a subscription looks at the log when no commit in this process
/// woke it: commits by other processes on the same database reach it this
/// way.
const SUBSCRIPTION_POLL: Duration = Duration::from_millis(250);

/// How many events may wait for a slow subscriber before reading pauses.
const SUBSCRIPTION_BUFFER: usize = 64;

/// What withheld names read as.
pub(crate) const WITHHELD: &str = "[withheld]";

/// The event service.
#[derive(Debug, Clone)]
pub(crate) struct EventApi {
    app: App,
    stop: CancellationToken,
}

impl EventApi {
    /// The service over `app`; live streams end when `stop` is cancelled.
    pub(crate) fn new(app: App, stop: CancellationToken) -> Self {
        Self { app, stop }
    }
}

#[tonic::async_trait]
impl EventService for EventApi {
    #[tracing::instrument(skip_all, fields(rpc = "GetCaseHistory"))]
    async fn get_case_history(
        &self,
        request: Request<pb::GetCaseHistoryRequest>,
    ) -> Result<Response<pb::GetCaseHistoryResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.get_ref();
        let kind = case_kind(&caller, "GetCaseHistory", r.aggregate_type)?;
        let events = self
            .app
            .case_history(&caller, kind, &r.case_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetCaseHistoryResponse {
            entries: events.iter().map(|e| history_entry(e, &caller)).collect(),
        }))
    }

    async fn read_events(
        &self,
        request: Request<pb::ReadEventsRequest>,
    ) -> Result<Response<pb::ReadEventsResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("ReadEvents").map_err(status)?;
        let r = request.into_inner();
        let filter = log_filter(&caller, r.aggregate_type, &r.case_id, &r.division_code)?;
        let limit = page_size(r.page_size).map_err(status)?;
        let query_key = format!("events|{filter:?}");
        let after = match decode_page_token(&r.page_token, &query_key).map_err(status)? {
            Some(after) => after
                .parse::<u64>()
                .map_err(|_| invalid_field("page_token", "pass next_page_token unchanged"))?,
            None => r.after_position,
        };
        self.app
            .wait_for_log(r.min_position)
            .await
            .map_err(status)?;
        // The page reads at most up to the readable head, also when `after`
        // lies beyond it: `last_position` never passes over an event that
        // may still commit below `after`.
        let page = self
            .app
            .store()
            .read_log_filtered(after, limit, &filter)
            .await
            .map_err(|e| store_status(&e))?;
        let full = page.events.len() as u64 >= u64::from(limit);
        let events = page.events.iter().map(|e| to_pb(e, &caller)).collect();
        Ok(Response::new(pb::ReadEventsResponse {
            events,
            next_page_token: if full {
                encode_page_token(&query_key, &page.read_to.to_string())
            } else {
                String::new()
            },
            last_position: page.read_to,
        }))
    }

    type SubscribeEventsStream = ReceiverStream<Result<pb::SubscribeEventsResponse, Status>>;

    async fn subscribe_events(
        &self,
        request: Request<pb::SubscribeEventsRequest>,
    ) -> Result<Response<Self::SubscribeEventsStream>, Status> {
        let caller = caller(&request)?;
        caller.authorise("SubscribeEvents").map_err(status)?;
        let r = request.into_inner();
        let filter = log_filter(&caller, r.aggregate_type, &r.case_id, &r.division_code)?;
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let app = self.app.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            follow(app, caller, filter, r.after_position, tx, stop).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Sends the events after `after` that match `filter` to `tx`, then each
/// new one, until the client goes away or the server stops.
async fn follow(
    app: App,
    caller: std::sync::Arc<Caller>,
    filter: LogFilter,
    mut after: u64,
    tx: mpsc::Sender<Result<pb::SubscribeEventsResponse, Status>>,
    stop: CancellationToken,
) {
    let mut commits = app.commits();
    loop {
        let page = match app
            .store()
            .read_log_filtered(after, SUBSCRIPTION_BATCH, &filter)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                // The client reconnects with the last position it received
                // and loses nothing.
                let _ = tx.send(Err(store_status(&e))).await;
                return;
            }
        };
        let caught_up = (page.events.len() as u64) < u64::from(SUBSCRIPTION_BATCH);
        for event in &page.events {
            let message = pb::SubscribeEventsResponse {
                event: Some(to_pb(event, &caller)),
            };
            if tx.send(Ok(message)).await.is_err() {
                return;
            }
        }
        // A page that read nothing answers the readable head, which may lie
        // below what the subscriber asked to start after; it still gets
        // only the events after its own position.
        after = after.max(page.read_to);
        if !caught_up {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => {
                let _ = tx
                    .send(Err(Status::unavailable(format!(
                        "the server is shutting down; reconnect and resume after the last \
                         position you received (at least {after})"
                    ))))
                    .await;
                return;
            }
            () = tx.closed() => return,
            _ = commits.changed() => {}
            () = tokio::time::sleep(SUBSCRIPTION_POLL) => {}
        }
    }
}

/// The store filter for a request's filters, narrowed to the caller's scope.
fn log_filter(
    caller: &Caller,
    aggregate_type: i32,
    case_id: &str,
    division_code: &str,
) -> Result<LogFilter, Status> {
    let aggregate_type = match pb::AggregateType::try_from(aggregate_type) {
        Ok(pb::AggregateType::Unspecified) => None,
        Ok(pb::AggregateType::Dispute) => Some("Dispute".to_owned()),
        Ok(pb::AggregateType::Petition) => Some("Petition".to_owned()),
        Err(_) => {
            return Err(invalid_field(
                "aggregate_type",
                format!("unknown value {aggregate_type}"),
            ));
        }
    };
    let aggregate_id = if case_id.is_empty() {
        None
    } else {
        CaseId::parse(case_id).map_err(|e| invalid_field("case_id", e.reason))?;
        Some(case_id.to_owned())
    };
    let division = if division_code.is_empty() {
        None
    } else {
        let code = DivisionCode::parse(division_code)
            .map_err(|e| invalid_field("division_code", e.reason))?;
        Some(code.subtree_bounds())
    };
    Ok(LogFilter {
        aggregate_type,
        aggregate_id,
        division,
        scope: caller.scope().map(DivisionCode::subtree_bounds),
    })
}

/// An event as the caller may see it.
pub(crate) fn to_pb(event: &RecordedEvent, caller: &Caller) -> pb::Event {
    let mut payload = event.payload.clone();
    redact(&mut payload, &event.metadata, caller);
    let aggregate_type = match event.aggregate_type.as_str() {
        "Dispute" => pb::AggregateType::Dispute,
        "Petition" => pb::AggregateType::Petition,
        _ => pb::AggregateType::Unspecified,
    };
    pb::Event {
        position: event.position,
        event_id: event.event_id.to_string(),
        record_time: Some(Timestamp {
            seconds: event.recorded_at.timestamp(),
            nanos: i32::try_from(event.recorded_at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        aggregate_type: aggregate_type.into(),
        case_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        event_type: event.event_type.clone(),
        event_version: event.event_version.clone(),
        payload_json: payload.to_string(),
        division_code: event
            .metadata
            .get("division")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        part: event.part,
    }
}

/// One step of a case's timeline: the event as the caller may see it, who
/// acted and when, and the deadlines it carries, found by their shape so
/// that a new event type setting a deadline is covered without a change
/// here.
fn history_entry(event: &RecordedEvent, caller: &Caller) -> pb::HistoryEntry {
    let payload = &event.payload;
    let by = payload.get("by");
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut deadlines = Vec::new();
    collect_deadlines(payload, &mut deadlines);
    pb::HistoryEntry {
        event: Some(to_pb(event, caller)),
        occur_time: payload
            .get("at")
            .and_then(|at| serde_json::from_value::<DateTime<Utc>>(at.clone()).ok())
            .map(timestamp),
        actor_id: text(by.and_then(|b| b.get("id"))),
        agency_id: text(by.and_then(|b| b.get("agency"))),
        deadlines: deadlines.iter().map(deadline_to_pb).collect(),
    }
}

/// Every deadline inside `value`, outermost first.
fn collect_deadlines(value: &Value, found: &mut Vec<Deadline>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("stage")
                && map.contains_key("due")
                && let Ok(deadline) = serde_json::from_value::<Deadline>(value.clone())
            {
                found.push(deadline);
                return;
            }
            for child in map.values() {
                collect_deadlines(child, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_deadlines(item, found);
            }
        }
        _ => {}
    }
}

/// Withholds parties' and petitioners' names, and an accusation's text from
/// the unit accused, from callers who may not see them. Works on the JSON
/// shape of any event, so that a new event type carrying `parties`, a
/// `petitioner` or free text is covered without a change here. What a
/// petition complains about comes from the event's metadata, which every
/// event of a petition carries; events stored before it did fall back to
/// their own payload (the receipt names the unit and the matter).
fn redact(payload: &mut Value, metadata: &Value, caller: &Caller) {
    let said = |key: &str| {
        metadata
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| find_str(payload, key))
    };
    let unit_id = said(COMPLAINED_UNIT_ID).and_then(|u| UnitRef::parse(&u).ok());
    let unit_name = said(COMPLAINED_UNIT).and_then(|u| Name::parse(&u).ok());
    let matter_type = said(MATTER_TYPE).and_then(|m| MatterType::parse(&m).ok());
    let view = caller.petition_view(&Complaint {
        unit_id: unit_id.as_ref(),
        unit_name: unit_name.as_ref(),
        matter_type,
    });
    let seen = Seen {
        parties: caller.may_see_parties(),
        petitioner: view.petitioner,
        content: view.content,
    };
    if !(seen.parties && seen.petitioner && seen.content) {
        withhold(payload, seen);
    }
}

/// What of an event a caller may see.
#[derive(Debug, Clone, Copy)]
struct Seen {
    parties: bool,
    petitioner: bool,
    content: bool,
}

/// The payload keys that hold a case's free text (facts, summaries, notes,
/// agreement terms, reasons), withheld with [`Seen::content`].
const FREE_TEXT: &[&str] = &[
    "facts", "summary", "note", "notes", "terms", "reason", "reasons",
];

fn withhold(value: &mut Value, seen: Seen) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child) {
                    ("parties", Value::Array(list)) if !seen.parties => {
                        for party in list {
                            if let Some(name) = party.get_mut("name") {
                                *name = Value::String(WITHHELD.to_owned());
                            }
                        }
                    }
                    ("petitioner", Value::Object(person)) if !seen.petitioner => {
                        for (field, v) in person.iter_mut() {
                            *v = if field == "name" {
                                Value::String(WITHHELD.to_owned())
                            } else {
                                Value::Null
                            };
                        }
                    }
                    (key, text @ Value::String(_)) if !seen.content && FREE_TEXT.contains(&key) => {
                        *text = Value::String(WITHHELD.to_owned());
                    }
                    (_, child) => withhold(child, seen),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                withhold(item, seen);
            }
        }
        _ => {}
    }
}

fn find_str(value: &Value, key: &str) -> Option<String> {
    match value {
        Value::Object(map) => map
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| map.values().find_map(|v| find_str(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_str(v, key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_are_withheld_from_roles_that_may_not_see_them() {
        let mut payload = json!({"change": {"Received": {
            "petitioner": {"name": "Wang Fang", "contact": "138"},
            "complained_unit": "Example Town Government"}}});
        let mut withheld = payload.clone();
        let seen = Seen {
            parties: true,
            petitioner: false,
            content: true,
        };
        withhold(&mut withheld, seen);
        assert_eq!(
            withheld["change"]["Received"]["petitioner"]["name"],
            WITHHELD
        );
        assert_eq!(
            withheld["change"]["Received"]["petitioner"]["contact"],
            Value::Null
        );
        redact(&mut payload, &Value::Null, &Caller::local());
        assert_eq!(
            payload["change"]["Received"]["petitioner"]["name"],
            "Wang Fang"
        );

        let mut dispute = json!({"change": {"Registered": {"parties": [
            {"role": "applicant", "name": "Li Lei"}, {"role": "respondent", "name": "Han Mei"}]}}});
        let seen = Seen {
            parties: false,
            petitioner: true,
            content: true,
        };
        withhold(&mut dispute, seen);
        assert_eq!(
            dispute["change"]["Registered"]["parties"][1]["name"],
            WITHHELD
        );
        assert_eq!(
            dispute["change"]["Registered"]["parties"][1]["role"],
            "respondent"
        );
    }

    #[test]
    fn an_accusations_text_is_withheld_wherever_it_sits() {
        let mut payload = json!({"change": {"PetitionDiverted": {
            "channel": "discipline", "note": "Sent to the discipline body", "late": false,
            "nested": [{"reason": "r", "facts": "f"}], "summary": null}}});
        let seen = Seen {
            parties: true,
            petitioner: false,
            content: false,
        };
        withhold(&mut payload, seen);
        let change = &payload["change"]["PetitionDiverted"];
        assert_eq!(change["note"], WITHHELD);
        assert_eq!(change["nested"][0]["reason"], WITHHELD);
        assert_eq!(change["nested"][0]["facts"], WITHHELD);
        assert_eq!(change["channel"], "discipline");
        assert_eq!(change["summary"], Value::Null);
    }
}
