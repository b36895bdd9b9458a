//! The deadline timer watcher: when an SLA clock reaches 50% or 75% of its
//! allowed time, or its due time, it sends the case a command, so that the
//! warning or the breach becomes an event in the case's history naming who
//! held it. Where the jurisdiction's policy says so, a breach of a level's
//! handling time also escalates the case (`auto_escalate_on_breach`).
//!
//! Timers are data: the clocks' read model (`projections::sla`) says which
//! thresholds have come. Each command carries a request id derived from the
//! clock and threshold, so that however many watchers fire it (two server
//! processes, a retry after a crash), the case records it once. With
//! several processes on one PostgreSQL only the lease holder sweeps.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use mediation_domain::dispute::{Dispute, DisputeAction, DisputeCommand, EscalationReason};
use mediation_domain::petition::{Petition, PetitionAction, PetitionCommand};
use mediation_domain::values::{Actor, ActorId, AgencyId};
use mediation_projections::sla::{DueTimer, due_timers};
use mediation_store::{CommandError, Metadata, Options, RequestKey, StoreError};
use tokio_util::sync::CancellationToken;

use crate::app::{App, event_metadata};

/// How many due timers one sweep handles at most.
const SWEEP_LIMIT: u32 = 200;

/// The agency and actor the engine's own commands are recorded under.
const ENGINE_AGENCY: &str = "engine";
const TIMER_ACTOR: &str = "deadline-timer";

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Warnings and breaches recorded by this sweep.
    pub recorded: usize,
    /// Timers another watcher (or an earlier sweep) had already recorded.
    pub already: usize,
    /// Timers the case refused: the clock stopped or moved since the read
    /// model saw it.
    pub stale: usize,
    /// Cases escalated because their level's time ran out.
    pub escalated: usize,
}

fn engine_actor() -> Actor {
    // Both ids are constants within the limits of `ActorId` and `AgencyId`
    // (checked by a test below).
    Actor {
        id: ActorId::parse(TIMER_ACTOR).expect("a valid actor id"),
        agency: AgencyId::parse(ENGINE_AGENCY).expect("a valid agency id"),
    }
}

/// The idempotency key of one timer.
fn key(timer: &DueTimer, what: &str) -> RequestKey {
    let id = format!(
        "timer:{}:{}:{}:{}:{}",
        timer.aggregate_type,
        timer.case_id,
        timer.stage.as_str(),
        timer.due.timestamp_millis(),
        what
    );
    RequestKey {
        agency: ENGINE_AGENCY.to_owned(),
        fingerprint: id.clone(),
        request_id: id,
    }
}

impl App {
    /// Records every warning and breach that has come by `now`, once.
    pub async fn sweep_timers(&self, now: DateTime<Utc>) -> Result<Swept, StoreError> {
        let mut swept = Swept::default();
        for timer in due_timers(self.store(), now, SWEEP_LIMIT).await? {
            let what = match timer.threshold_percent {
                100 => "breach".to_owned(),
                p => format!("warning-{p}"),
            };
            let key = key(&timer, &what);
            let outcome = if timer.aggregate_type == Dispute::TYPE {
                let action = if timer.threshold_percent == 100 {
                    DisputeAction::RecordDeadlineBreach {
                        stage: timer.stage,
                        due: timer.due,
                    }
                } else {
                    DisputeAction::RecordDeadlineWarning {
                        stage: timer.stage,
                        threshold_percent: timer.threshold_percent,
                        due: timer.due,
                    }
                };
                let command = DisputeCommand {
                    by: engine_actor(),
                    action,
                };
                let metadata = event_metadata::<Dispute>("DeadlineTimer");
                self.disputes()
                    .execute_with(&timer.case_id, command, options(&key, &metadata))
                    .await
                    .map(|c| (c.replayed, c.events.is_empty()))
                    .map_err(|e| describe(e, &timer))
            } else if timer.aggregate_type == Petition::TYPE {
                let action = if timer.threshold_percent == 100 {
                    PetitionAction::RecordDeadlineBreach {
                        stage: timer.stage,
                        due: timer.due,
                    }
                } else {
                    PetitionAction::RecordDeadlineWarning {
                        stage: timer.stage,
                        threshold_percent: timer.threshold_percent,
                        due: timer.due,
                    }
                };
                let command = PetitionCommand {
                    by: engine_actor(),
                    action,
                };
                let metadata = event_metadata::<Petition>("DeadlineTimer");
                self.petitions()
                    .execute_with(&timer.case_id, command, options(&key, &metadata))
                    .await
                    .map(|c| (c.replayed, c.events.is_empty()))
                    .map_err(|e| describe(e, &timer))
            } else {
                continue;
            };
            let kind = if timer.threshold_percent == 100 {
                "breach"
            } else {
                "warning"
            };
            let fired = |outcome: &'static str| {
                metrics::counter!(
                    "mediation_timer_firings_total",
                    "kind" => kind,
                    "outcome" => outcome
                )
                .increment(1);
            };
            match outcome {
                Ok((false, false)) => {
                    swept.recorded += 1;
                    fired("recorded");
                    self.notify_commit();
                }
                Ok(_) => {
                    swept.already += 1;
                    fired("already");
                }
                Err(Refused::Stale(why)) => {
                    tracing::debug!(case = %timer.case_id, stage = ?timer.stage, %why, "timer stale");
                    swept.stale += 1;
                    fired("stale");
                    continue;
                }
                Err(Refused::Store(e)) => return Err(e),
            }
            if timer.threshold_percent == 100
                && timer.aggregate_type == Dispute::TYPE
                && self
                    .disputes()
                    .services()
                    .policy()
                    .escalates_on_breach(timer.stage)
                && self.escalate(&timer).await?
            {
                swept.escalated += 1;
                metrics::counter!(
                    "mediation_timer_firings_total",
                    "kind" => "escalation",
                    "outcome" => "recorded"
                )
                .increment(1);
            }
        }
        Ok(swept)
    }

    /// Escalates a dispute whose level's time ran out; false if the case
    /// refused (it is at the top, or has moved on).
    async fn escalate(&self, timer: &DueTimer) -> Result<bool, StoreError> {
        let key = key(timer, "escalate");
        let command = DisputeCommand {
            by: engine_actor(),
            action: DisputeAction::Escalate {
                reason: EscalationReason::TimeExpired,
            },
        };
        let metadata = event_metadata::<Dispute>("DeadlineTimer");
        match self
            .disputes()
            .execute_with(&timer.case_id, command, options(&key, &metadata))
            .await
        {
            Ok(committed) => {
                if !committed.replayed {
                    self.notify_commit();
                }
                Ok(!committed.replayed)
            }
            Err(CommandError::Store(e)) => Err(e),
            Err(e) => {
                tracing::info!(case = %timer.case_id, error = %e, "not escalated on breach");
                Ok(false)
            }
        }
    }

    /// Sweeps every `interval` until `stop`, where this process holds the
    /// timers' lease. "Now" is the services' clock.
    pub async fn run_timers(self, interval: Duration, stop: CancellationToken) {
        loop {
            let lease = loop {
                match self.store().try_lease("deadline-timers").await {
                    Ok(Some(lease)) => break lease,
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "timers: cannot take the lease"),
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
            };
            let mut lease = lease;
            loop {
                let now = self.disputes().services().now();
                match self.sweep_timers(now).await {
                    Ok(swept) if swept != Swept::default() => {
                        tracing::info!(?swept, "deadline timers swept");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        metrics::counter!(
                            "mediation_store_errors_total",
                            "source" => "timers",
                            "kind" => e.kind()
                        )
                        .increment(1);
                        tracing::warn!(error = %e, "deadline timers: sweep failed");
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => {
                        lease.release().await;
                        return;
                    }
                    () = tokio::time::sleep(interval) => {}
                }
                if !lease.alive().await {
                    break;
                }
            }
        }
    }
}

/// A command's options when the engine sends it itself: an idempotency
/// key and the events' metadata (the deadline timers, an erasure).
pub(crate) fn options<'a, A>(key: &'a RequestKey, metadata: &'a Metadata<'a, A>) -> Options<'a, A> {
    Options {
        request: Some(key),
        metadata: Some(metadata),
        ..Options::default()
    }
}

/// Why a timer command was not recorded.
enum Refused {
    /// The clock stopped or moved since the read model saw it.
    Stale(String),
    /// The store failed; the sweep stops and is retried.
    Store(StoreError),
}

fn describe<E: std::error::Error>(e: CommandError<E>, timer: &DueTimer) -> Refused {
    match e {
        CommandError::Store(e) => Refused::Store(e),
        other => Refused::Stale(format!(
            "{} {}: {other}",
            timer.aggregate_type, timer.case_id
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_engine_acts_under_valid_ids() {
        let actor = super::engine_actor();
        assert_eq!(actor.agency.as_str(), super::ENGINE_AGENCY);
    }
}
