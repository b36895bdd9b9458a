//! Re-timing provisional deadlines once the holiday schedule of their year
//! is loaded.
//!
//! A deadline counted over a year with no holiday file is a guess (Monday to
//! Friday) and is flagged provisional. When the server starts with the
//! year's file, [`App::run_recompute`] looks in the SLA clocks for running
//! provisional clocks due in a year the calendar now covers and sends each
//! of their cases `RecomputeDeadlines`; the case counts its provisional
//! deadlines again and records a `DeadlinesRecomputed` event for those that
//! moved or stopped being provisional.
//!
//! The windows that are not clocks (the parties' window to apply for
//! judicial confirmation, the petitioner's review and re-review request
//! windows) are found in the case index instead, among the cases in the one
//! status where each is open.
//!
//! The command writes nothing when nothing changed, so the sweep needs no
//! bookkeeping of its own: a crash midway is finished by the next start,
//! and several processes on one database may all sweep (each with its own
//! calendar; no lease, so that a process still on the older calendar
//! cannot keep the one with the new year from doing the work).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use cqrs_es::Aggregate;
use mediation_domain::dispute::{Dispute, DisputeAction, DisputeCommand};
use mediation_domain::petition::{Petition, PetitionAction, PetitionCommand};
use mediation_domain::values::{Actor, ActorId, AgencyId};
use mediation_projections::case_index::{self, IndexQuery, IndexRow};
use mediation_projections::sla::provisional_clocks;
use mediation_store::{CommandError, Metadata, Options, StoreError};
use tokio_util::sync::CancellationToken;

use crate::app::{App, event_metadata};

/// How many clocks one page of the sweep reads.
const PAGE: u32 = 200;

/// How long the sweep waits for the SLA clocks to catch up with the log as
/// it was at start before it reads them anyway.
const CATCH_UP_WAIT: Duration = Duration::from_secs(60);

/// How often a case whose command met another command on it is tried.
const ATTEMPTS: usize = 3;

/// The agency and actor the engine's recounts are recorded under.
const ENGINE_AGENCY: &str = "engine";
const RECOMPUTE_ACTOR: &str = "deadline-recompute";

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recounted {
    /// Cases sent the command.
    pub cases: usize,
    /// Cases that recorded a `DeadlinesRecomputed` event.
    pub retimed: usize,
    /// Cases whose command was refused or kept meeting other commands; the
    /// next start tries them again.
    pub failed: usize,
}

fn engine_actor() -> Actor {
    // Both ids are constants within the limits of `ActorId` and `AgencyId`
    // (checked by a test below).
    Actor {
        id: ActorId::parse(RECOMPUTE_ACTOR).expect("a valid actor id"),
        agency: AgencyId::parse(ENGINE_AGENCY).expect("a valid agency id"),
    }
}

/// The due times whose last day lies in one of `years`, merged into runs
/// of consecutive years: `(from, to]`, from the midnight that begins the
/// first year to the one that ends the last, in the policy's time zone (a
/// period's due time is the midnight after its last day).
fn due_ranges(
    years: impl IntoIterator<Item = i32>,
    timezone: chrono::FixedOffset,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let midnight = |year: i32| {
        NaiveDate::from_ymd_opt(year, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|t| timezone.from_local_datetime(&t).single())
            .map(|t| t.with_timezone(&Utc))
    };
    let years: BTreeSet<i32> = years.into_iter().collect();
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for year in years {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == year => *last = year,
            _ => runs.push((year, year)),
        }
    }
    runs.into_iter()
        .filter_map(|(first, last)| Some((midnight(first)?, midnight(last + 1)?)))
        .collect()
}

impl App {
    /// Sends `RecomputeDeadlines` to every case with a running provisional
    /// clock due in a year whose holiday schedule the calendar has, and to
    /// every case with an open provisional window ending in such a year,
    /// page by page, logging progress; stops early when `stop` is
    /// cancelled.
    pub async fn recompute_provisional(
        &self,
        stop: &CancellationToken,
    ) -> Result<Recounted, StoreError> {
        let services = self.disputes().services();
        let years: Vec<i32> = services.calendar().published_years().collect();
        let mut recounted = Recounted::default();
        for range in due_ranges(years, services.policy().timezone()) {
            let mut after = None;
            loop {
                if stop.is_cancelled() {
                    return Ok(recounted);
                }
                let page = provisional_clocks(self.store(), range, after.as_ref(), PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.key());
                let mut cases: Vec<(&str, &str)> = page
                    .iter()
                    .map(|c| (c.aggregate_type.as_str(), c.case_id.as_str()))
                    .collect();
                cases.sort_unstable();
                cases.dedup();
                for (aggregate_type, case_id) in cases {
                    recounted.cases += 1;
                    match self.recompute_case(aggregate_type, case_id).await {
                        Ok(true) => recounted.retimed += 1,
                        Ok(false) => {}
                        Err(Failed::Store(e)) => return Err(e),
                        Err(Failed::Refused(why)) => {
                            tracing::warn!(case = case_id, %why, "deadlines not recounted");
                            recounted.failed += 1;
                        }
                        Err(Failed::Conflict) => {
                            tracing::warn!(
                                case = case_id,
                                "deadlines not recounted: other commands kept changing the case"
                            );
                            recounted.failed += 1;
                        }
                    }
                }
                tracing::info!(
                    cases = recounted.cases,
                    retimed = recounted.retimed,
                    "recounting provisional deadlines"
                );
            }
        }
        self.recompute_windows(stop, &mut recounted).await?;
        Ok(recounted)
    }

    /// The part of [`App::recompute_provisional`] for the windows that no
    /// clock times: the cases in the status where one is open, whose
    /// window is provisional and ends in a year the calendar has.
    async fn recompute_windows(
        &self,
        stop: &CancellationToken,
        recounted: &mut Recounted,
    ) -> Result<(), StoreError> {
        let calendar = self.disputes().services().calendar();
        let open_windows = [
            (Petition::TYPE, "answered"),
            (Petition::TYPE, "reviewed"),
            (Dispute::TYPE, "agreed"),
        ];
        for (aggregate_type, status) in open_windows {
            let mut after = None;
            loop {
                if stop.is_cancelled() {
                    return Ok(());
                }
                let query = IndexQuery {
                    aggregate_type: aggregate_type.to_owned(),
                    status: Some(status.to_owned()),
                    after_case_id: after.take(),
                    limit: PAGE,
                    ..IndexQuery::default()
                };
                let rows = case_index::list(self.store(), &query).await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.case_id.clone());
                for row in &rows {
                    let due = match provisional_window(row) {
                        Ok(due) => due,
                        Err(e) => {
                            tracing::warn!(case = row.case_id, error = %e, "window not read");
                            continue;
                        }
                    };
                    if !due.is_some_and(|day| calendar.is_published(day.year())) {
                        continue;
                    }
                    recounted.cases += 1;
                    match self.recompute_case(aggregate_type, &row.case_id).await {
                        Ok(true) => recounted.retimed += 1,
                        Ok(false) => {}
                        Err(Failed::Store(e)) => return Err(e),
                        Err(Failed::Refused(why)) => {
                            tracing::warn!(case = row.case_id, %why, "window not recounted");
                            recounted.failed += 1;
                        }
                        Err(Failed::Conflict) => {
                            tracing::warn!(
                                case = row.case_id,
                                "window not recounted: other commands kept changing the case"
                            );
                            recounted.failed += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends one case the command; true if it recorded a re-time.
    async fn recompute_case(&self, aggregate_type: &str, case_id: &str) -> Result<bool, Failed> {
        for _ in 0..ATTEMPTS {
            let outcome = if aggregate_type == Dispute::TYPE {
                let command = DisputeCommand {
                    by: engine_actor(),
                    action: DisputeAction::RecomputeDeadlines {},
                };
                let metadata = event_metadata::<Dispute>("DeadlineRecompute");
                self.disputes()
                    .execute_with(case_id, command, options(&metadata))
                    .await
                    .map(|c| !c.events.is_empty())
                    .map_err(Failed::from)
            } else if aggregate_type == Petition::TYPE {
                let command = PetitionCommand {
                    by: engine_actor(),
                    action: PetitionAction::RecomputeDeadlines {},
                };
                let metadata = event_metadata::<Petition>("DeadlineRecompute");
                self.petitions()
                    .execute_with(case_id, command, options(&metadata))
                    .await
                    .map(|c| !c.events.is_empty())
                    .map_err(Failed::from)
            } else {
                return Ok(false);
            };
            match outcome {
                Ok(retimed) => {
                    if retimed {
                        self.notify_commit();
                    }
                    return Ok(retimed);
                }
                // Another command got there first: decide again on what
                // it left.
                Err(Failed::Conflict) => {}
                Err(other) => return Err(other),
            }
        }
        Err(Failed::Conflict)
    }

    /// At start: waits until the SLA clocks reflect the log as it stands,
    /// then recounts the provisional deadlines the loaded calendar now
    /// covers (see [`App::recompute_provisional`]), in the background,
    /// until done or `stop`.
    pub async fn run_recompute(self, stop: CancellationToken) {
        let years: Vec<i32> = self
            .disputes()
            .services()
            .calendar()
            .published_years()
            .collect();
        let head = match self.store().log_head().await {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(error = %e, "provisional deadlines not recounted: the log is unreadable; the next start tries again");
                return;
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            caught_up = self.caught_up(head, CATCH_UP_WAIT) => if !caught_up {
                tracing::warn!(head, "the SLA clocks trail the log; recounting what they hold");
            }
        }
        tracing::info!(holiday_years = ?years, "recounting provisional deadlines of the loaded years");
        match self.recompute_provisional(&stop).await {
            Ok(done) if stop.is_cancelled() => {
                tracing::info!(
                    ?done,
                    "recount of provisional deadlines interrupted; the next start resumes it"
                );
            }
            Ok(done) => tracing::info!(?done, "provisional deadlines recounted"),
            Err(e) => {
                tracing::warn!(error = %e, "recount of provisional deadlines failed; the next start resumes it");
            }
        }
    }
}

/// The last day of the provisional window open on the indexed case, if
/// its status has one and it is provisional; an error if the indexed state
/// does not decode.
fn provisional_window(row: &IndexRow) -> Result<Option<NaiveDate>, StoreError> {
    let window = if row.aggregate_type == Petition::TYPE {
        let petition: Petition = case_index::decode(&row.case_id, row.state.clone())?;
        petition
            .review_request_due()
            .filter(|_| row.status == "answered")
            .or_else(|| {
                petition
                    .re_review_request_due()
                    .filter(|_| row.status == "reviewed")
            })
    } else {
        let dispute: Dispute = case_index::decode(&row.case_id, row.state.clone())?;
        dispute
            .agreement()
            .and_then(|a| a.confirmation_window)
            .filter(|_| dispute.judicial_confirmation().is_none())
    };
    Ok(window.filter(|w| w.provisional).map(|w| w.last_day))
}

fn options<'a, A>(metadata: &'a Metadata<'a, A>) -> Options<'a, A> {
    Options {
        metadata: Some(metadata),
        ..Options::default()
    }
}

/// Why one case was not recounted.
enum Failed {
    /// The store failed; the sweep stops.
    Store(StoreError),
    /// Another command on the case committed first.
    Conflict,
    /// The case refused the command.
    Refused(String),
}

impl<E: std::error::Error> From<CommandError<E>> for Failed {
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Store(e) => Self::Store(e),
            CommandError::Conflict { .. } => Self::Conflict,
            other => Self::Refused(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_recounts_under_valid_ids() {
        assert_eq!(engine_actor().id.as_str(), RECOMPUTE_ACTOR);
    }

    #[test]
    fn consecutive_years_make_one_range_of_due_times() {
        let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            due_ranges([2027, 2025, 2026, 2029], beijing),
            vec![
                (at("2024-12-31T16:00:00Z"), at("2027-12-31T16:00:00Z")),
                (at("2028-12-31T16:00:00Z"), at("2029-12-31T16:00:00Z")),
            ]
        );
    }
}
