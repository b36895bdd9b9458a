//! `SlaService`: the dashboards over the read models (SLA clocks,
//! resolution statistics, caseload, petitioner history) and the read
//! models' own progress. Every query is cut to the caller's jurisdiction:
//! a division filter narrows it and may not reach outside it.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use mediation_domain::values::{DivisionCode, Level, PetitionLevel};
use mediation_projections::case_index;
use mediation_projections::caseload::{self, Load};
use mediation_projections::petition_statistics::{self, PetitionCounts, PetitionStatsRow};
use mediation_projections::petitioners::{self, PetitionRecord, Repeat, RepeatBasis};
use mediation_projections::sla::{self, ClockQuery, ClockRow, ClockStatus};
use mediation_projections::statistics::{self, Counts, Grouping, Period, StageOutcome, StatsRow};
use mediation_proto::v1 as pb;
use mediation_proto::v1::sla_service_server::SlaService;
use mediation_store::Horizon;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::convert::common::{
    case_kind, days, enum_to_pb, optional_division_code, optional_time, stage_name, timestamp,
};
use crate::error::{invalid_field, status, store_status};
use mediation_app::App;
use mediation_app::access::{Caller, Role};
use mediation_app::paging::{decode_page_token, encode_page_token, page_size};

/// The widest DUE_SOON window, in days.
const MAX_DUE_WITHIN_DAYS: u32 = 366;

/// The longest repeat window, in days.
const MAX_WINDOW_DAYS: u32 = 3650;

/// The SLA and statistics service.
#[derive(Debug, Clone)]
pub(crate) struct SlaApi {
    app: App,
}

impl SlaApi {
    /// The service over `app`.
    pub(crate) fn new(app: App) -> Self {
        Self { app }
    }

    /// Now, by the clock the aggregates use.
    fn now(&self) -> DateTime<Utc> {
        self.app.now()
    }

    /// The division filter of a request, checked against the caller's
    /// scope. `None`: no filter.
    fn filter(&self, caller: &Caller, division_code: &str) -> Result<Option<DivisionCode>, Status> {
        let filter = optional_division_code("division_code", division_code)?;
        match filter {
            Some(filter) => {
                let mut within = self.app.subtrees(caller, Some(filter)).map_err(status)?;
                Ok(within.pop())
            }
            None => Ok(None),
        }
    }

    /// The subtrees a query covers ([`App::subtrees`]).
    fn subtrees(&self, caller: &Caller, division_code: &str) -> Result<Vec<DivisionCode>, Status> {
        let filter = optional_division_code("division_code", division_code)?;
        self.app.subtrees(caller, filter).map_err(status)
    }

    /// Read-your-writes on read model `projection` ([`App::reflect`]).
    async fn reflect(&self, projection: &'static str, position: u64) -> Result<(), Status> {
        self.app.reflect(projection, position).await.map_err(status)
    }
}

#[tonic::async_trait]
impl SlaService for SlaApi {
    #[tracing::instrument(skip_all, fields(rpc = "GetCaseAccountability"))]
    async fn get_case_accountability(
        &self,
        request: Request<pb::GetCaseAccountabilityRequest>,
    ) -> Result<Response<pb::GetCaseAccountabilityResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.get_ref();
        let kind = case_kind(&caller, "GetCaseAccountability", r.aggregate_type)?;
        let found = self
            .app
            .case_accountability(&caller, kind, &r.case_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetCaseAccountabilityResponse {
            accountability: Some(pb::CaseAccountability {
                aggregate_type: r.aggregate_type,
                case_id: r.case_id.clone(),
                official: found
                    .official
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                breaches: found
                    .breaches
                    .iter()
                    .map(|b| pb::CaseBreach {
                        stage: stage_name(b.stage),
                        due_time: Some(timestamp(b.due)),
                        breach_time: Some(timestamp(b.recorded_at)),
                        division_code: b
                            .holder
                            .division
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        level: b.holder.level.map_or(0, enum_to_pb),
                        body: b.holder.body.clone().unwrap_or_default(),
                        person: b.holder.person.clone().unwrap_or_default(),
                        official: b.holder.official.clone().unwrap_or_default(),
                        position: b.position,
                    })
                    .collect(),
            }),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_clocks(
        &self,
        request: Request<pb::ListClocksRequest>,
    ) -> Result<Response<pb::ListClocksResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("ListClocks").map_err(status)?;
        let r = request.into_inner();
        let division = self.filter(&caller, &r.division_code)?;
        let view = pb::ClockView::try_from(r.view).map_err(|_| {
            invalid_field(
                "view",
                format!(
                    "unknown value {}; expected CLOCK_VIEW_OVERDUE or CLOCK_VIEW_DUE_SOON, or \
                     leave it unset for every clock",
                    r.view
                ),
            )
        })?;
        let within = if view == pb::ClockView::DueSoon {
            Some(days(
                "due_within_days",
                r.due_within_days,
                MAX_DUE_WITHIN_DAYS,
            )?)
        } else {
            None
        };
        let clock_status = clock_status_filter(r.status)?;
        let provisional = provisional_filter(r.provisional)?;
        let body = (!r.body.trim().is_empty()).then(|| r.body.clone());
        let limit = page_size(r.page_size).map_err(status)?;
        // The token is bound to the filters (not to "now", which moves
        // between pages) and to the caller's scope.
        let query_key = format!(
            "clocks|{view:?}|{within:?}|{body:?}|{clock_status:?}|{division:?}|{:?}|{provisional:?}",
            caller.scope()
        );
        let after = match decode_page_token(&r.page_token, &query_key).map_err(status)? {
            Some(after) => Some(serde_json::from_str(&after).map_err(|_| {
                invalid_field(
                    "page_token",
                    "pass the next_page_token of the previous page unchanged",
                )
            })?),
            None => None,
        };
        self.reflect(case_index::NAME, r.min_position).await?;
        let now = self.now();
        let query = ClockQuery {
            division: division.as_ref().map(DivisionCode::subtree_bounds),
            scope: caller.scope().map(DivisionCode::subtree_bounds),
            overdue_at: (view == pb::ClockView::Overdue).then_some(now),
            due_between: within.map(|d| (now, now + TimeDelta::days(i64::from(d)))),
            body,
            status: clock_status,
            after,
            limit: limit + 1,
            provisional,
            stage: None,
        };
        let mut rows = sla::clocks(self.app.store(), &query)
            .await
            .map_err(|e| store_status(&e))?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => {
                let after = (last.due_at, &last.case_id, &last.stage, last.started_at);
                let after = serde_json::to_string(&after)
                    .map_err(|_| Status::internal("the page token could not be made"))?;
                encode_page_token(&query_key, &after)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListClocksResponse {
            clocks: rows.iter().map(clock_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_breaches_by_body(
        &self,
        request: Request<pb::ListBreachesByBodyRequest>,
    ) -> Result<Response<pb::ListBreachesByBodyResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("ListBreachesByBody").map_err(status)?;
        let r = request.into_inner();
        let division = self.filter(&caller, &r.division_code)?;
        let since = optional_time("since_time", r.since_time.as_ref())?.unwrap_or(BEGINNING);
        self.reflect(case_index::NAME, r.min_position).await?;
        // The filter lies inside the scope (checked above), so it alone
        // bounds the query when given.
        let subtree = division.as_ref().or(caller.scope());
        let mut rows = sla::breaches_by_body(
            self.app.store(),
            subtree.map(DivisionCode::subtree_bounds),
            since,
        )
        .await
        .map_err(|e| store_status(&e))?;
        // The backends order ties differently (PostgreSQL puts the rows
        // without a body last, SQLite first); clients get one order.
        rows.sort_by(|a, b| {
            b.breached
                .cmp(&a.breached)
                .then_with(|| a.body.cmp(&b.body))
        });
        Ok(Response::new(pb::ListBreachesByBodyResponse {
            bodies: rows
                .into_iter()
                .map(|b| pb::BodyBreaches {
                    body: b.body.unwrap_or_default(),
                    breached: b.breached,
                    met: b.met,
                    running: b.running,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_resolution_stats(
        &self,
        request: Request<pb::GetResolutionStatsRequest>,
    ) -> Result<Response<pb::GetResolutionStatsResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("GetResolutionStats").map_err(status)?;
        let r = request.into_inner();
        let subtrees = self.subtrees(&caller, &r.division_code)?;
        let (from, to, grouping) = stats_range(&r.from_month, &r.to_month, r.grouping)?;
        let as_of = as_of_date(&r.as_of_date)?;
        self.reflect(statistics::NAME, r.min_position).await?;
        // The stages' outcomes come from the SLA clocks, which the case
        // projection keeps.
        self.reflect(case_index::NAME, r.min_position).await?;
        let mut rows = Vec::new();
        let mut stages = Vec::new();
        for subtree in &subtrees {
            rows.extend(
                statistics::query(self.app.store(), subtree, from, to, as_of, grouping)
                    .await
                    .map_err(|e| store_status(&e))?,
            );
            stages.extend(
                statistics::dispute_stage_outcomes(self.app.store(), subtree, from, to, as_of)
                    .await
                    .map_err(|e| store_status(&e))?,
            );
        }
        if subtrees.len() > 1 {
            rows = merge_stats(rows);
        }
        Ok(Response::new(pb::GetResolutionStatsResponse {
            rows: rows.iter().map(stats_to_pb).collect(),
            stages: merge_stages(stages).iter().map(stage_to_pb).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_petition_stats(
        &self,
        request: Request<pb::GetPetitionStatsRequest>,
    ) -> Result<Response<pb::GetPetitionStatsResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("GetPetitionStats").map_err(status)?;
        let r = request.into_inner();
        let subtrees = self.subtrees(&caller, &r.division_code)?;
        let (from, to, grouping) = stats_range(&r.from_month, &r.to_month, r.grouping)?;
        let as_of = as_of_date(&r.as_of_date)?;
        self.reflect(petition_statistics::NAME, r.min_position)
            .await?;
        self.reflect(case_index::NAME, r.min_position).await?;
        let mut rows = Vec::new();
        let mut stages = Vec::new();
        for subtree in &subtrees {
            rows.extend(
                petition_statistics::query(self.app.store(), subtree, from, to, as_of, grouping)
                    .await
                    .map_err(|e| store_status(&e))?,
            );
            stages.extend(
                petition_statistics::stage_outcomes(self.app.store(), subtree, from, to, as_of)
                    .await
                    .map_err(|e| store_status(&e))?,
            );
        }
        if subtrees.len() > 1 {
            rows = merge_petition_stats(rows);
        }
        Ok(Response::new(pb::GetPetitionStatsResponse {
            rows: rows.iter().map(petition_stats_to_pb).collect(),
            stages: merge_stages(stages).iter().map(stage_to_pb).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_caseload(
        &self,
        request: Request<pb::ListCaseloadRequest>,
    ) -> Result<Response<pb::ListCaseloadResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("ListCaseload").map_err(status)?;
        let r = request.into_inner();
        let subtrees = self.subtrees(&caller, &r.division_code)?;
        let per_mediator = match pb::CaseloadGrouping::try_from(r.grouping) {
            Ok(pb::CaseloadGrouping::Unspecified) => false,
            Ok(pb::CaseloadGrouping::Mediator) => true,
            Err(_) => {
                return Err(invalid_field(
                    "grouping",
                    format!("unknown value {}", r.grouping),
                ));
            }
        };
        self.reflect(caseload::NAME, r.min_position).await?;
        let now = self.now();
        let mut loads = Vec::new();
        for subtree in &subtrees {
            let found = if per_mediator {
                caseload::per_mediator(self.app.store(), subtree, now).await
            } else {
                caseload::per_body(self.app.store(), subtree, now).await
            };
            loads.extend(found.map_err(|e| store_status(&e))?);
        }
        // One subtree comes ordered already; several are put in one order.
        loads.sort_by(|a, b| (&a.body_id, &a.mediator).cmp(&(&b.body_id, &b.mediator)));
        Ok(Response::new(pb::ListCaseloadResponse {
            rows: loads.iter().map(load_to_pb).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_repeat_petitions(
        &self,
        request: Request<pb::ListRepeatPetitionsRequest>,
    ) -> Result<Response<pb::ListRepeatPetitionsResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("ListRepeatPetitions").map_err(status)?;
        let r = request.into_inner();
        let subtrees = self.subtrees(&caller, &r.division_code)?;
        let window = days("window_days", r.window_days, MAX_WINDOW_DAYS)?;
        let received = self.range(r.from_time.as_ref(), r.to_time.as_ref())?;
        self.reflect(petitioners::NAME, r.min_position).await?;
        let mut repeats = Vec::new();
        for subtree in &subtrees {
            repeats.extend(
                petitioners::repeats(self.app.store(), subtree, received.clone(), window, None)
                    .await
                    .map_err(|e| store_status(&e))?,
            );
        }
        repeats.sort_by(|a, b| {
            (
                a.later_received_at,
                &a.later,
                a.earlier_received_at,
                &a.earlier,
            )
                .cmp(&(
                    b.later_received_at,
                    &b.later,
                    b.earlier_received_at,
                    &b.earlier,
                ))
        });
        Ok(Response::new(pb::ListRepeatPetitionsResponse {
            repeats: repeats.iter().map(repeat_to_pb).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_skipped_level_visits(
        &self,
        request: Request<pb::ListSkippedLevelVisitsRequest>,
    ) -> Result<Response<pb::ListSkippedLevelVisitsResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("ListSkippedLevelVisits").map_err(status)?;
        let r = request.into_inner();
        let subtrees = self.subtrees(&caller, &r.division_code)?;
        let received = self.range(r.from_time.as_ref(), r.to_time.as_ref())?;
        self.reflect(petitioners::NAME, r.min_position).await?;
        let mut visits = Vec::new();
        for subtree in &subtrees {
            visits.extend(
                petitioners::skipped_level_visits(
                    self.app.store(),
                    subtree,
                    received.clone(),
                    None,
                )
                .await
                .map_err(|e| store_status(&e))?,
            );
        }
        visits.sort_by(|a, b| (a.received_at, &a.case_id).cmp(&(b.received_at, &b.case_id)));
        Ok(Response::new(pb::ListSkippedLevelVisitsResponse {
            visits: visits.iter().map(visit_to_pb).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_projections(
        &self,
        request: Request<pb::ListProjectionsRequest>,
    ) -> Result<Response<pb::ListProjectionsResponse>, Status> {
        let caller = caller(&request)?;
        caller.authorise("ListProjections").map_err(status)?;
        // Whether this process runs a projection (holds its lease) is its
        // runner's; position and lag are read fresh from the store, and the
        // lag counts the events the horizon still hides.
        let report = self.app.projection_report().await.map_err(status)?;
        let horizon = report.horizon;
        let projections = report
            .projections
            .into_iter()
            .map(|status| pb::ProjectionStatus {
                name: status.name.to_owned(),
                position: status.position,
                lag: Some(std_duration(status.lag)),
                active: status.active,
            })
            .collect();
        Ok(Response::new(pb::ListProjectionsResponse {
            projections,
            // Which server process holds the log back, and in which
            // database, is for the operators (supervisors): other roles
            // learn that something does, and for how long.
            horizon: Some(horizon_to_pb(horizon, caller.has_any(&[Role::Supervisor]))),
        }))
    }
}

impl SlaApi {
    /// The receipt times a petition query covers: `from` (unset: from the
    /// beginning) up to `to` (unset: up to and including now).
    fn range(
        &self,
        from: Option<&prost_types::Timestamp>,
        to: Option<&prost_types::Timestamp>,
    ) -> Result<Range<DateTime<Utc>>, Status> {
        let from = optional_time("from_time", from)?.unwrap_or(BEGINNING);
        // The range excludes its end; the read models keep instants to the
        // millisecond, so one more millisecond takes in a petition received
        // at this very moment.
        let to = match optional_time("to_time", to)? {
            Some(to) => to,
            None => self.now() + TimeDelta::milliseconds(1),
        };
        if from > to {
            return Err(invalid_field("to_time", "it is before from_time"));
        }
        Ok(from..to)
    }
}

/// The start of "from the beginning": before any case could have been
/// recorded, and inside the range every backend stores.
const BEGINNING: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// A month field, "YYYY-MM".
/// The months and grouping of a statistics request, checked.
fn stats_range(
    from_month: &str,
    to_month: &str,
    grouping: i32,
) -> Result<(Period, Period, Grouping), Status> {
    let from = month("from_month", from_month)?;
    let to = month("to_month", to_month)?;
    if from > to {
        return Err(invalid_field(
            "to_month",
            format!("{to} is before from_month {from}"),
        ));
    }
    let grouping = match pb::StatsGrouping::try_from(grouping) {
        Ok(pb::StatsGrouping::Unspecified) => Grouping::Total,
        Ok(pb::StatsGrouping::DivisionLevelMonth) => Grouping::DivisionLevelPeriod,
        Ok(pb::StatsGrouping::LevelMonth) => Grouping::LevelPeriod,
        Ok(pb::StatsGrouping::Level) => Grouping::Level,
        Err(_) => {
            return Err(invalid_field(
                "grouping",
                format!("unknown value {grouping}"),
            ));
        }
    };
    Ok((from, to, grouping))
}

/// A statistics query's `as_of_date`: empty for none (today's figures),
/// else a calendar day as `YYYY-MM-DD` (+08:00).
fn as_of_date(value: &str) -> Result<Option<NaiveDate>, Status> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|_| value.len() == 10)
        .map(Some)
        .ok_or_else(|| {
            invalid_field(
                "as_of_date",
                format!("{value:?} is not a calendar day as YYYY-MM-DD"),
            )
        })
}

fn month(field: &str, value: &str) -> Result<Period, Status> {
    if value.trim().is_empty() {
        return Err(invalid_field(field, "required, as YYYY-MM"));
    }
    Period::parse(value).map_err(|e| invalid_field(field, e.reason))
}

/// The stored status name a `status` filter asks for; `None`: any.
fn clock_status_filter(raw: i32) -> Result<Option<ClockStatus>, Status> {
    use pb::ClockStatus as S;
    match S::try_from(raw) {
        Ok(S::Unspecified) => Ok(None),
        Ok(S::Running) => Ok(Some(ClockStatus::Running)),
        Ok(S::Warned50) => Ok(Some(ClockStatus::Warned50)),
        Ok(S::Warned75) => Ok(Some(ClockStatus::Warned75)),
        Ok(S::Breached) => Ok(Some(ClockStatus::Breached)),
        Ok(S::Met) => Ok(Some(ClockStatus::Met)),
        Err(_) => Err(invalid_field("status", format!("unknown value {raw}"))),
    }
}

/// The `provisional` filter of ListClocks: `None` for every clock.
fn provisional_filter(raw: i32) -> Result<Option<bool>, Status> {
    use pb::ProvisionalFilter as P;
    match P::try_from(raw) {
        Ok(P::Unspecified) => Ok(None),
        Ok(P::ProvisionalOnly) => Ok(Some(true)),
        Ok(P::DefinitiveOnly) => Ok(Some(false)),
        Err(_) => Err(invalid_field(
            "provisional",
            format!(
                "unknown value {raw}; expected PROVISIONAL_FILTER_PROVISIONAL_ONLY or \
                 PROVISIONAL_FILTER_DEFINITIVE_ONLY, or leave it unset for every clock"
            ),
        )),
    }
}

/// A stored status name as the wire's.
fn clock_status_to_pb(status: ClockStatus) -> pb::ClockStatus {
    use pb::ClockStatus as S;
    match status {
        ClockStatus::Running => S::Running,
        ClockStatus::Warned50 => S::Warned50,
        ClockStatus::Warned75 => S::Warned75,
        ClockStatus::Breached => S::Breached,
        ClockStatus::Met => S::Met,
    }
}

/// A stored level name as the wire's; unset if unknown.
fn level_to_pb(stored: Option<&str>) -> i32 {
    stored
        .and_then(|l| Level::parse(l).ok())
        .map_or(0, enum_to_pb)
}

fn aggregate_type_to_pb(stored: &str) -> pb::AggregateType {
    match stored {
        "Dispute" => pb::AggregateType::Dispute,
        "Petition" => pb::AggregateType::Petition,
        _ => pb::AggregateType::Unspecified,
    }
}

fn clock_to_pb(row: &ClockRow) -> pb::Clock {
    pb::Clock {
        aggregate_type: aggregate_type_to_pb(&row.aggregate_type).into(),
        case_id: row.case_id.clone(),
        stage: row.stage.clone(),
        start_time: Some(timestamp(row.started_at)),
        due_time: Some(timestamp(row.due_at)),
        paused: Some(duration(TimeDelta::seconds(row.paused_seconds))),
        provisional: row.provisional,
        division_code: row.division.clone().unwrap_or_default(),
        level: level_to_pb(row.level.as_deref()),
        body: row.body.clone().unwrap_or_default(),
        person: row.person.clone().unwrap_or_default(),
        status: clock_status_to_pb(row.status).into(),
        warned_50_time: row.warned_50_at.map(timestamp),
        warned_75_time: row.warned_75_at.map(timestamp),
        breach_time: row.breached_at.map(timestamp),
        stop_time: row.stopped_at.map(timestamp),
        breach: row.breach.as_ref().map(|b| pb::ClockBreach {
            due_time: Some(timestamp(b.due_at)),
            division_code: b.division.clone().unwrap_or_default(),
            level: level_to_pb(b.level.as_deref()),
            body: b.body.clone().unwrap_or_default(),
            person: b.person.clone().unwrap_or_default(),
        }),
    }
}

fn duration(delta: TimeDelta) -> prost_types::Duration {
    prost_types::Duration {
        seconds: delta.num_seconds(),
        nanos: delta.subsec_nanos(),
    }
}

/// The log's horizon as a response carries it; without `detailed`, the
/// holder's process, database and session state are left out.
fn horizon_to_pb(horizon: Horizon, detailed: bool) -> pb::LogHorizon {
    pb::LogHorizon {
        readable_position: horizon.readable,
        committed_position: horizon.committed,
        holder: horizon.holder.map(|holder| pb::HorizonHolder {
            pid: if detailed { holder.pid } else { 0 },
            transaction_id: holder.transaction_id,
            age: holder.age.map(std_duration),
            database: if detailed {
                holder.database.unwrap_or_default()
            } else {
                String::new()
            },
            state: if detailed {
                holder.state.unwrap_or_default()
            } else {
                String::new()
            },
        }),
    }
}

fn std_duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Sums the rows of several subtrees that share a key: with authentication
/// off and several districts, "everything" spans them all.
fn merge_stats(rows: Vec<StatsRow>) -> Vec<StatsRow> {
    let mut merged: BTreeMap<_, Counts> = BTreeMap::new();
    for row in rows {
        let sum = merged
            .entry((row.division, row.level, row.period))
            .or_default();
        *sum = *sum + row.counts;
    }
    merged
        .into_iter()
        .map(|((division, level, period), counts)| StatsRow {
            division,
            level,
            period,
            counts,
            rates: counts.rates(),
        })
        .collect()
}

fn merge_petition_stats(rows: Vec<PetitionStatsRow>) -> Vec<PetitionStatsRow> {
    let mut merged: BTreeMap<_, PetitionCounts> = BTreeMap::new();
    for row in rows {
        let sum = merged
            .entry((row.division, row.level, row.period))
            .or_default();
        *sum = *sum + row.counts;
    }
    merged
        .into_iter()
        .map(|((division, level, period), counts)| PetitionStatsRow {
            division,
            level,
            period,
            counts,
            rates: counts.rates(),
        })
        .collect()
}

/// The outcomes of each stage over several subtrees, in stage order.
fn merge_stages(outcomes: Vec<StageOutcome>) -> Vec<StageOutcome> {
    let mut merged: BTreeMap<_, StageOutcome> = BTreeMap::new();
    for o in outcomes {
        let sum = merged.entry(o.stage).or_insert(StageOutcome {
            stage: o.stage,
            met: 0,
            breached: 0,
        });
        sum.met += o.met;
        sum.breached += o.breached;
    }
    merged.into_values().collect()
}

fn stage_to_pb(outcome: &StageOutcome) -> pb::StageOnTime {
    pb::StageOnTime {
        stage: outcome.stage_name(),
        met: outcome.met,
        breached: outcome.breached,
        on_time_rate: outcome.on_time(),
    }
}

// `received` is deprecated on the wire, and still filled.
#[allow(deprecated)]
fn stats_to_pb(row: &StatsRow) -> pb::ResolutionStats {
    let c = &row.counts;
    pb::ResolutionStats {
        division_code: row
            .division
            .as_ref()
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default(),
        level: row.level.map_or(0, enum_to_pb),
        month: row.period.map(|p| p.to_string()).unwrap_or_default(),
        registered: c.registered,
        // The name it was first served under, kept for clients that read it.
        received: c.moved_in,
        moved_in: c.moved_in,
        reopened: c.reopened,
        escalated_up: c.escalated_up,
        taken_over: c.taken_over,
        sent_down: c.sent_down,
        agreements: c.agreements,
        terminations: c.terminations,
        mediations_moved: c.mediations_moved,
        referred: c.referred,
        closed: c.closed,
        closed_at_or_below_intake: c.closed_at_or_below_intake,
        closed_on_time: c.closed_on_time,
        agreed_at_or_below_origin: c.agreed_at_or_below_origin,
        agreements_followed_up: c.agreements_followed_up,
        agreements_performed: c.agreements_performed,
        evaluations: c.evaluations,
        satisfied: c.satisfied,
        basically_satisfied: c.basically_satisfied,
        lowest_level_resolution_rate: row.rates.lowest_level_resolution,
        mediation_success_rate: row.rates.mediation_success,
        on_time_rate: row.rates.on_time,
        escalation_rate: row.rates.escalation,
        agreement_performance_rate: row.rates.agreement_performance,
        satisfaction_rate: row.rates.satisfaction,
    }
}

fn petition_stats_to_pb(row: &PetitionStatsRow) -> pb::PetitionStats {
    let c = &row.counts;
    pb::PetitionStats {
        division_code: row
            .division
            .as_ref()
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default(),
        level: row.level.map_or(0, enum_to_pb),
        month: row.period.map(|p| p.to_string()).unwrap_or_default(),
        received: c.received,
        acceptance_decided: c.acceptance_decided,
        acceptance_in_time: c.acceptance_in_time,
        opinions: c.opinions,
        opinions_on_time: c.opinions_on_time,
        review_opinions: c.review_opinions,
        review_opinions_on_time: c.review_opinions_on_time,
        evaluations: c.evaluations,
        satisfied: c.satisfied,
        basically_satisfied: c.basically_satisfied,
        timely_acceptance_rate: row.rates.timely_acceptance,
        handled_on_time_rate: row.rates.handled_on_time,
        satisfaction_rate: row.rates.satisfaction,
        review_on_time_rate: row.rates.review_on_time,
    }
}

fn load_to_pb(load: &Load) -> pb::Caseload {
    pb::Caseload {
        body_id: load.body_id.clone().unwrap_or_default(),
        body_name: load.body_name.clone().unwrap_or_default(),
        mediator: load.mediator.clone().unwrap_or_default(),
        open: load.open,
        oldest_open_time: Some(timestamp(load.oldest_opened_at)),
        oldest_age: Some(duration(load.oldest_age)),
        average_age: Some(duration(load.average_age)),
    }
}

fn repeat_to_pb(repeat: &Repeat) -> pb::RepeatPetition {
    let basis = match repeat.basis {
        RepeatBasis::SamePetitioner => pb::RepeatBasis::SamePetitioner,
        RepeatBasis::SameUnitAndFacts => pb::RepeatBasis::SameUnitAndFacts,
        RepeatBasis::Both => pb::RepeatBasis::Both,
    };
    pb::RepeatPetition {
        earlier_petition_id: repeat.earlier.clone(),
        earlier_receive_time: Some(timestamp(repeat.earlier_received_at)),
        later_petition_id: repeat.later.clone(),
        later_receive_time: Some(timestamp(repeat.later_received_at)),
        basis: basis.into(),
    }
}

fn visit_to_pb(record: &PetitionRecord) -> pb::SkippedLevelVisit {
    pb::SkippedLevelVisit {
        petition_id: record.case_id.clone(),
        receive_time: Some(timestamp(record.received_at)),
        division_code: record.division.as_str().to_owned(),
        competent_level: enum_to_pb(record.competent_level),
        visited_level: record
            .visited_level
            .and_then(PetitionLevel::within_jurisdiction)
            .map_or(0, enum_to_pb),
        visit_level: record.visited_level.map_or(0, enum_to_pb),
    }
}

#[cfg(test)]
mod tests {
    use mediation_store::HorizonHolder;

    use super::*;

    #[test]
    fn only_supervisors_learn_which_process_holds_the_log_back() {
        let horizon = Horizon {
            readable: 10,
            committed: 12,
            holder: Some(HorizonHolder {
                pid: 4242,
                transaction_id: 77,
                age: Some(std::time::Duration::from_secs(20)),
                database: Some("other".into()),
                state: Some("idle in transaction".into()),
            }),
        };
        let full = horizon_to_pb(horizon.clone(), true).holder.unwrap();
        assert_eq!(
            (full.pid, full.database.as_str(), full.state.as_str()),
            (4242, "other", "idle in transaction")
        );
        let cut = horizon_to_pb(horizon, false).holder.unwrap();
        assert_eq!(
            (cut.pid, cut.database.as_str(), cut.state.as_str()),
            (0, "", "")
        );
        assert_eq!(cut.transaction_id, 77);
        assert_eq!(cut.age.unwrap().seconds, 20);
    }
}
