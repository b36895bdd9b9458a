//! The petition aggregate (信访事项), following 信访工作条例 (2022): receipt
//! and triage by the petition office, handling by the receiving unit, the
//! handling opinion, review (复查), re-review (复核) and finality (终结).
//!
//! [`Petition::handle`](cqrs_es::Aggregate::handle) decides: it checks the
//! command against the current status, reads the time and computes every
//! deadline through [`Services`], and emits events that carry those
//! deadlines. [`Petition::apply`](cqrs_es::Aggregate::apply) only records
//! what the events say.

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use command::{PetitionAction, PetitionCommand};
pub use error::PetitionError;
pub use event::{EVENT_VERSIONS, PetitionChange, PetitionEvent};

use crate::dispute::Satisfaction;
use crate::policy::{Deadline, Stage};
use crate::recompute::{self, Basis, Start, calendar_days, extend};
use crate::services::{Finality, RecordsUnavailable, Services};
use crate::sla::{self, DeadlineMark, Holder, RunningClock, Threshold, TimerRefusal};
use crate::values::{
    CaseId, DivisionCode, Level, Name, PetitionChannel, PetitionLevel, Text, UnitRef,
};

/// The most representatives a group visit may send (Art 20). The group
/// itself may be of any size: its headcount is recorded apart
/// ([`PetitionAction::RecordGroupHeadcount`]), never refused.
pub const MAX_VISIT_REPRESENTATIVES: u32 = 5;

/// The longest period, in days, a unit may be given to report on an
/// assigned petition (交办).
pub const MAX_REPORT_DAYS: u32 = 365;

/// The longest single hearing, in days, that may be left out of a re-review
/// period (Art 36). The statute sets no such bound (DOMAIN.md names none);
/// it is this engine's guard against a mistyped number of days.
pub const MAX_HEARING_DAYS: u32 = 90;

wire_enum!(
    /// Where a petition stands. `Display` completes "the petition is ..."
    /// for error messages; `as_str` gives the stored name.
    #[derive(Default)]
    PetitionStatus, "status", own_display {
        /// Nothing has been received yet.
        #[default]
        New = "new",
        /// Received by the petition office and awaiting triage (Art 22).
        Received = "received",
        /// Forwarded (转送) or assigned (交办) to a unit, which has not yet
        /// accepted it or objected (Art 23).
        Routed = "routed",
        /// Sent to a legal channel (诉访分离); the petition track ends here.
        Diverted = "diverted",
        /// Not accepted at triage; the petition track ends here.
        NotAccepted = "not_accepted",
        /// Accepted by the receiving unit, which owes a handling opinion (Art 32).
        Accepted = "accepted",
        /// The handling opinion has been issued; review may be requested (Art 35).
        Answered = "answered",
        /// A review (复查) has been requested and is under way (Art 35).
        UnderReview = "under_review",
        /// The review opinion has been issued; re-review may be requested (Art 36).
        Reviewed = "reviewed",
        /// A re-review (复核) has been requested and is under way (Art 36).
        UnderReReview = "under_re_review",
        /// Final (终结): the same facts are not accepted again (Art 37).
        Final = "final",
    }
);

impl fmt::Display for PetitionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Phrases that complete "the petition is ...", for error messages.
        f.write_str(match self {
            Self::New => "not yet received",
            Self::Received => "awaiting triage",
            Self::Routed => "waiting for the receiving unit to accept it",
            Self::Diverted => "diverted to a legal channel",
            Self::NotAccepted => "not accepted",
            Self::Accepted => "accepted and awaiting a handling opinion",
            Self::Answered => "answered with a handling opinion",
            Self::UnderReview => "under review",
            Self::Reviewed => "reviewed",
            Self::UnderReReview => "under re-review",
            Self::Final => "final",
        })
    }
}

/// The person who petitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Petitioner {
    /// Their name. Never shown to the unit complained about (Art 30).
    pub name: Name,
    /// How to reach them, if they gave a way.
    pub contact: Option<Name>,
}

wire_enum!(
    /// What a handling, review or re-review opinion decides (Art 32).
    OpinionOutcome, "outcome" {
        /// The request is well founded and is supported (予以支持).
        Support = "support",
        /// The request is reasonable but cannot be met; the unit explains why
        /// (解释说明).
        Explain = "explain",
        /// The request is not supported (不予支持).
        NotSupport = "not_support",
    }
);

wire_enum!(
    /// The kind of matter a petition raises, stated at receipt (信访工作条例
    /// Art 31). Which kind a matter is decides how it is handled: only
    /// appeals and demands (申诉求决类) get a handling opinion that the
    /// petitioner may take to review and re-review (Art 31, 35–36), and
    /// accusations and reports (检举控告类) are confidential towards the
    /// unit accused (Art 30) in full.
    MatterType, "matter_type" {
        /// Suggestions and opinions (建议意见类).
        Suggestion = "suggestion",
        /// Accusations and reports (检举控告类).
        Accusation = "accusation",
        /// Appeals and demands (申诉求决类).
        Appeal = "appeal",
    }
);

wire_enum!(
    /// What a review (复查, Art 35) or re-review (复核, Art 36) decides about
    /// the opinion before it, in the words the petition bureaus use: the
    /// opinion stands, is changed, is set aside, or goes back to the unit
    /// to be handled again. Recorded beside the [`OpinionOutcome`], which
    /// says what the petitioner was told about the request itself.
    ReviewDecision, "decision" {
        /// The opinion reviewed stands (维持).
        Uphold = "uphold",
        /// The opinion reviewed is changed (变更).
        Amend = "amend",
        /// The opinion reviewed is set aside (撤销).
        Revoke = "revoke",
        /// The unit is ordered to handle the matter again (责令重办). Recorded
        /// only: the petition does not go back to the unit in this engine.
        OrderRedo = "order_redo",
    }
);

wire_enum!(
    /// A written reply the petitioner receives, whose delivery (送达) is
    /// recorded.
    Reply, "reply" {
        /// The handling opinion (Art 32).
        Opinion = "opinion",
        /// The review opinion (Art 35).
        ReviewOpinion = "review_opinion",
        /// The re-review opinion (Art 36).
        ReReviewOpinion = "re_review_opinion",
    }
);

wire_enum!(
    /// How a written reply reached the petitioner (送达).
    DeliveryMethod, "method" {
        /// Handed to the petitioner.
        InPerson = "in_person",
        /// Sent by post.
        Post = "post",
        /// Sent electronically.
        Electronic = "electronic",
    }
);

/// When and how a written reply reached the petitioner. The review and
/// re-review windows run from this day (自收到书面答复之日起, Art 35–36).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The local day the petitioner received the reply.
    pub delivered_on: NaiveDate,
    /// How it reached them.
    pub method: DeliveryMethod,
}

wire_enum!(
    /// Why a petition became final (Art 36–37).
    FinalBasis, "final_basis" {
        /// The re-review opinion was issued (Art 36).
        ReReviewed = "re_reviewed",
        /// The petitioner did not ask for review in time (Art 37).
        ReviewWindowLapsed = "review_window_lapsed",
        /// The petitioner did not ask for re-review in time (Art 37).
        ReReviewWindowLapsed = "re_review_window_lapsed",
    }
);

/// A petition (信访事项) from receipt to finality.
///
/// Fields are private: the state changes only through events. Missing
/// fields default when a snapshot is read, so that a snapshot written before
/// a field was added still loads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Petition {
    status: PetitionStatus,
    received_at: Option<DateTime<Utc>>,
    channel: Option<PetitionChannel>,
    matter_type: Option<MatterType>,
    petitioner: Option<Petitioner>,
    complained_unit: Option<Name>,
    complained_unit_id: Option<UnitRef>,
    facts: Option<Text>,
    division: Option<DivisionCode>,
    competent_level: Option<Level>,
    visited_level: Option<PetitionLevel>,
    representatives: u32,
    headcount: Option<u32>,
    skipped_level: bool,
    repeat_of: Option<CaseId>,
    repeats_final: Option<CaseId>,
    triage_due: Option<Deadline>,
    unit: Option<Name>,
    notice_due: Option<Deadline>,
    objection_due: Option<Deadline>,
    report_due: Option<Deadline>,
    opinion_due: Option<Deadline>,
    extended: bool,
    opinion_outcome: Option<OpinionOutcome>,
    review_request_due: Option<Deadline>,
    review_due: Option<Deadline>,
    review_outcome: Option<OpinionOutcome>,
    review_decision: Option<ReviewDecision>,
    re_review_request_due: Option<Deadline>,
    re_review_due: Option<Deadline>,
    re_review_outcome: Option<OpinionOutcome>,
    re_review_decision: Option<ReviewDecision>,
    finalised_at: Option<DateTime<Utc>>,
    final_basis: Option<FinalBasis>,
    // No snapshot revision bump for this field: a snapshot written before
    // evaluations existed had none, which is what the default says.
    satisfaction: Option<Satisfaction>,
    official: Option<Name>,
    // When each written reply was issued and when and how it reached the
    // petitioner, so that a delivery is checked against its reply.
    replies_issued: BTreeMap<Reply, DateTime<Utc>>,
    deliveries: BTreeMap<Reply, Delivery>,
    // When each stage's clock last started (the event that opened it), so
    // that a running clock knows its start; the deadlines say only the end.
    clock_starts: BTreeMap<Stage, DateTime<Utc>>,
    // Hearing days left out of the review and re-review periods so far
    // (Art 35–36), by stage.
    clock_paused_days: BTreeMap<Stage, u32>,
    // The warnings and breaches recorded, so that a timer's retry writes
    // nothing.
    deadline_marks: BTreeSet<DeadlineMark>,
    // What a recount of a provisional deadline needs besides its start:
    // the calendar days added to it after it was set (the extension,
    // hearings), by stage and in order, and the length the assigning
    // office gave the report.
    due_extensions: BTreeMap<Stage, Vec<u32>>,
    report_days: Option<u32>,
}

/// The statuses in which some clock runs (see [`Petition::running_clocks`]),
/// and so in which a timer may record a warning or a breach.
const CLOCK_STATUSES: &[PetitionStatus] = &[
    PetitionStatus::Received,
    PetitionStatus::Routed,
    PetitionStatus::Accepted,
    PetitionStatus::UnderReview,
    PetitionStatus::UnderReReview,
];

impl Petition {
    /// Where the petition stands.
    pub fn status(&self) -> PetitionStatus {
        self.status
    }

    /// When the petition office received it.
    pub fn received_at(&self) -> Option<DateTime<Utc>> {
        self.received_at
    }

    /// How it arrived.
    pub fn channel(&self) -> Option<PetitionChannel> {
        self.channel
    }

    /// The kind of matter (Art 31), as stated at receipt; `None` for
    /// petitions received before matter types were recorded.
    pub fn matter_type(&self) -> Option<MatterType> {
        self.matter_type
    }

    /// Who petitions. Confidential towards the unit complained about (Art 30).
    pub fn petitioner(&self) -> Option<&Petitioner> {
        self.petitioner.as_ref()
    }

    /// The unit the petition is about, if it names one.
    pub fn complained_unit(&self) -> Option<&Name> {
        self.complained_unit.as_ref()
    }

    /// The unit complained about as configuration knows it; `None` when
    /// none was named by id (petitions received before ids were recorded
    /// name the unit only).
    pub fn complained_unit_id(&self) -> Option<&UnitRef> {
        self.complained_unit_id.as_ref()
    }

    /// The official responsible for the petition (责任人, 包案领导), if named.
    pub fn official(&self) -> Option<&Name> {
        self.official.as_ref()
    }

    /// The facts and requests as received.
    pub fn facts(&self) -> Option<&Text> {
        self.facts.as_ref()
    }

    /// The division the matter belongs to.
    pub fn division(&self) -> Option<&DivisionCode> {
        self.division.as_ref()
    }

    /// The level competent to handle the matter; the same as
    /// [`Petition::competent_level`], named like the dispute's accessor so
    /// that listings can treat both aggregates alike.
    pub fn level(&self) -> Option<Level> {
        self.competent_level
    }

    /// The level competent to handle the matter.
    pub fn competent_level(&self) -> Option<Level> {
        self.competent_level
    }

    /// The level an in-person visit went to.
    pub fn visited_level(&self) -> Option<PetitionLevel> {
        self.visited_level
    }

    /// How many representatives a visit sent.
    pub fn representatives(&self) -> u32 {
        self.representatives
    }

    /// How many people came with a group visit (集体访), once recorded;
    /// at least the representatives.
    pub fn headcount(&self) -> Option<u32> {
        self.headcount
    }

    /// Whether a visit skipped a level (越级, Art 20).
    pub fn skipped_level(&self) -> bool {
        self.skipped_level
    }

    /// The earlier petition on the same facts this one repeats, if any.
    pub fn repeat_of(&self) -> Option<&CaseId> {
        self.repeat_of.as_ref()
    }

    /// The final petition this one repeats, when it was not accepted for
    /// that reason (不予受理, Art 37).
    pub fn repeats_final(&self) -> Option<&CaseId> {
        self.repeats_final.as_ref()
    }

    /// The unit the petition is currently forwarded or assigned to; `None`
    /// before routing and after an objection sends it back to triage.
    pub fn unit(&self) -> Option<&Name> {
        self.unit.as_ref()
    }

    /// When triage is due (Art 22).
    pub fn triage_due(&self) -> Option<Deadline> {
        self.triage_due
    }

    /// When the receiving unit must tell the petitioner whether it accepts
    /// (Art 23).
    pub fn notice_due(&self) -> Option<Deadline> {
        self.notice_due
    }

    /// Until when the receiving unit may object to a misrouted item (Art 23).
    pub fn objection_due(&self) -> Option<Deadline> {
        self.objection_due
    }

    /// When an assigned unit must report back (交办).
    pub fn report_due(&self) -> Option<Deadline> {
        self.report_due
    }

    /// When the handling opinion is due, including any extension (Art 34).
    pub fn opinion_due(&self) -> Option<Deadline> {
        self.opinion_due
    }

    /// Whether the handling period has been extended (at most once, Art 34).
    pub fn extended(&self) -> bool {
        self.extended
    }

    /// What the handling opinion decided.
    pub fn opinion_outcome(&self) -> Option<OpinionOutcome> {
        self.opinion_outcome
    }

    /// Until when the petitioner may ask for review: 30 days from the day
    /// the opinion was delivered (Art 35). `None` until the delivery is
    /// recorded: the window has not started. (Histories recorded before
    /// deliveries were counted the window from the opinion's issue.)
    pub fn review_request_due(&self) -> Option<Deadline> {
        self.review_request_due
    }

    /// When the review opinion is due, hearing time excluded (Art 35).
    pub fn review_due(&self) -> Option<Deadline> {
        self.review_due
    }

    /// What the review opinion decided.
    pub fn review_outcome(&self) -> Option<OpinionOutcome> {
        self.review_outcome
    }

    /// What the review decided about the opinion (维持 / 变更 / 撤销 /
    /// 责令重办), if the reviewing body said.
    pub fn review_decision(&self) -> Option<ReviewDecision> {
        self.review_decision
    }

    /// What the re-review decided about the review opinion, if the
    /// re-reviewing body said.
    pub fn re_review_decision(&self) -> Option<ReviewDecision> {
        self.re_review_decision
    }

    /// Until when the petitioner may ask for re-review: 30 days from the
    /// day the review opinion was delivered (Art 36); `None` until then.
    pub fn re_review_request_due(&self) -> Option<Deadline> {
        self.re_review_request_due
    }

    /// When the re-review opinion is due, hearing time excluded (Art 36).
    pub fn re_review_due(&self) -> Option<Deadline> {
        self.re_review_due
    }

    /// What the re-review opinion decided.
    pub fn re_review_outcome(&self) -> Option<OpinionOutcome> {
        self.re_review_outcome
    }

    /// When and how `reply` reached the petitioner, once recorded.
    pub fn delivery(&self, reply: Reply) -> Option<Delivery> {
        self.deliveries.get(&reply).copied()
    }

    /// When the petition became final.
    pub fn finalised_at(&self) -> Option<DateTime<Utc>> {
        self.finalised_at
    }

    /// Why the petition became final.
    pub fn final_basis(&self) -> Option<FinalBasis> {
        self.final_basis
    }

    /// The petitioner's satisfaction with the handling, once evaluated.
    pub fn satisfaction(&self) -> Option<Satisfaction> {
        self.satisfaction
    }

    /// The obligations running on the petition now, derived from its status:
    /// what the current holder owes, by when, and who that holder is. A
    /// clock stops when its obligation is met, that is when the status moves
    /// on.
    ///
    /// | stage | its clock starts when | and stops when |
    /// |---|---|---|
    /// | `petition_triage` (Art 22) | the petition office receives the petition | it is forwarded, assigned, diverted or not accepted; an objection sends it back to triage, where the clock resumes against the same due time (the triage deadline is not re-set) |
    /// | `petition_acceptance_notice` (Art 23) | the petition is forwarded or assigned to a unit | the unit accepts, or objects |
    /// | `assigned_report` (交办, assigned petitions only) | the petition is assigned | the unit reports its result (the handling opinion), or objects |
    /// | `petition_opinion` (Art 32–34) | the unit accepts | the handling opinion is issued; an extension moves the due time, not the start |
    /// | `review` (Art 35) | the petitioner asks for review | the review opinion is issued (hearing days are paused time only in histories recorded before Art 36's re-review-only rule was applied) |
    /// | `re_review` (Art 36) | the petitioner asks for re-review | the re-review opinion is issued; hearing days are paused time |
    ///
    /// The holder is the petition's division and competent level, with the
    /// receiving unit while the unit owes the notice, the report or the
    /// opinion. The reviewing bodies are not recorded on the petition, so a
    /// review or re-review clock names no body.
    ///
    /// Left out on purpose, because they are not obligations of whoever
    /// holds the case: the petitioner's own windows to ask for review or
    /// re-review (Art 35–36), whose lapse makes the petition final rather
    /// than anyone late, and the unit's objection window (Art 23), which is
    /// a right to object, not a duty.
    pub fn running_clocks(&self) -> Vec<RunningClock> {
        use PetitionStatus as S;
        // The responsible official, once named, is on every clock and is
        // its person in charge (Art 44–46).
        let official = self.official.as_ref().map(Name::to_string);
        let case = Holder {
            division: self.division.clone(),
            level: self.competent_level,
            body: None,
            person: official.clone(),
            official,
        };
        let unit = Holder {
            body: self.unit.as_ref().map(Name::to_string),
            ..case.clone()
        };
        let running = match self.status {
            S::Received => vec![(self.triage_due, case)],
            S::Routed => vec![(self.notice_due, unit.clone()), (self.report_due, unit)],
            // An assigned item (交办, Art 22) is done when the unit reports
            // its result, which is its handling opinion, not when it
            // accepts: the report clock runs on beside the opinion clock.
            // A forwarded item has no report deadline.
            S::Accepted => vec![(self.opinion_due, unit.clone()), (self.report_due, unit)],
            S::UnderReview => vec![(self.review_due, case)],
            S::UnderReReview => vec![(self.re_review_due, case)],
            S::New | S::Diverted | S::NotAccepted | S::Answered | S::Reviewed | S::Final => {
                vec![]
            }
        };
        running
            .into_iter()
            .filter_map(|(deadline, holder)| self.clock(deadline, holder))
            .collect()
    }

    /// The clock of `deadline`, if it has one and its start is known. Every
    /// event that sets a deadline here also records its start, so a missing
    /// start means a state this code did not build; such a clock is left
    /// out rather than given an invented start.
    fn clock(&self, deadline: Option<Deadline>, holder: Holder) -> Option<RunningClock> {
        let deadline = deadline?;
        let started_at = *self.clock_starts.get(&deadline.stage)?;
        let paused_days = self
            .clock_paused_days
            .get(&deadline.stage)
            .copied()
            .unwrap_or(0);
        Some(RunningClock {
            stage: deadline.stage,
            deadline,
            started_at,
            paused: Duration::days(i64::from(paused_days)),
            holder,
        })
    }

    /// The deadlines in force now, each with how it was computed, for
    /// [`PetitionAction::RecomputeDeadlines`]: the running clocks' (counted
    /// by their stage's rule from the event that started them, with the
    /// extension and hearings added after in order; an assigned report by
    /// the days the assigning office gave) and the windows open now (the
    /// unit's objection window from the routing; the petitioner's review
    /// and re-review request windows from the reply's delivery, or in
    /// histories recorded before deliveries from the reply's issue).
    ///
    /// An assigned petition recorded before the report's length was kept
    /// is counted again with the days from its start to the last day it
    /// has: exact unless that last day had itself been moved off a day off,
    /// and then a day off still. A report deadline of the old
    /// `petition_opinion` stage is left alone: its start is not known apart
    /// from the opinion's.
    fn deadlines_in_force(&self, services: &Services) -> Vec<Basis> {
        use PetitionStatus as S;
        let from_start = |deadline: Option<Deadline>| -> Option<Basis> {
            let deadline = deadline?;
            let start = *self.clock_starts.get(&deadline.stage)?;
            Some(Basis {
                extensions: self
                    .due_extensions
                    .get(&deadline.stage)
                    .cloned()
                    .unwrap_or_default(),
                ..Basis::at(deadline, start)
            })
        };
        let objection = || -> Option<Basis> {
            // Forwarding and assignment open it with the notice clock.
            let start = *self.clock_starts.get(&Stage::PetitionAcceptanceNotice)?;
            Some(Basis::at(self.objection_due?, start))
        };
        let report = || -> Option<Basis> {
            let deadline = self
                .report_due
                .filter(|d| d.stage == Stage::AssignedReport)?;
            let start = *self.clock_starts.get(&deadline.stage)?;
            let days = match self.report_days {
                Some(days) => days,
                None => {
                    let opened = start.with_timezone(&services.policy().timezone());
                    let span = deadline.last_day.signed_duration_since(opened.date_naive());
                    u32::try_from(span.num_days()).ok()?
                }
            };
            Some(Basis {
                days: Some(days),
                ..Basis::at(deadline, start)
            })
        };
        let window = |deadline: Option<Deadline>, reply: Reply| -> Option<Basis> {
            let start = match self.deliveries.get(&reply) {
                Some(delivery) => Start::Day(delivery.delivered_on),
                None => Start::At(*self.replies_issued.get(&reply)?),
            };
            Some(Basis::new(deadline?, start))
        };
        let in_force = match self.status {
            S::Received => vec![from_start(self.triage_due)],
            S::Routed => vec![from_start(self.notice_due), objection(), report()],
            S::Accepted => vec![from_start(self.opinion_due), report()],
            S::Answered => vec![window(self.review_request_due, Reply::Opinion)],
            S::UnderReview => vec![from_start(self.review_due)],
            S::Reviewed => vec![window(self.re_review_request_due, Reply::ReviewOpinion)],
            S::UnderReReview => vec![from_start(self.re_review_due)],
            S::New | S::Diverted | S::NotAccepted | S::Final => vec![],
        };
        in_force.into_iter().flatten().collect()
    }

    /// Decides a timer command: the holder to record, or `None` when it is
    /// already recorded.
    fn check_timer(
        &self,
        stage: Stage,
        due: DateTime<Utc>,
        threshold: Threshold,
        now: DateTime<Utc>,
    ) -> Result<Option<Holder>, PetitionError> {
        let threshold_percent = threshold.percent();
        sla::check_timer(
            &self.running_clocks(),
            &self.deadline_marks,
            stage,
            due,
            threshold,
            now,
        )
        .map_err(|refusal| match refusal {
            TimerRefusal::InvalidThreshold => PetitionError::InvalidThreshold { threshold_percent },
            TimerRefusal::NotRunning => PetitionError::ClockNotRunning { stage, due },
            TimerRefusal::NotReached(reached_at) => PetitionError::ThresholdNotReached {
                stage,
                threshold_percent,
                reached_at,
            },
        })
    }

    /// Checks the command against the state and returns the changes it
    /// makes, in order. Pure apart from reading `services`.
    async fn decide(
        &self,
        action: PetitionAction,
        services: &Services,
        now: DateTime<Utc>,
    ) -> Result<Vec<PetitionChange>, PetitionError> {
        use PetitionAction as A;
        use PetitionChange as C;
        use PetitionStatus as S;

        let changes = match action {
            A::Receive {
                channel,
                matter_type,
                petitioner,
                complained_unit,
                complained_unit_id,
                facts,
                division,
                competent_level,
                visited_level,
                representatives,
                repeat_of,
            } => {
                match (self.status, self.finalised_at) {
                    (S::New, _) => {}
                    // Art 37: once final, the same facts are not taken up again.
                    (S::Final, Some(finalised_at)) => {
                        return Err(PetitionError::AlreadyFinal { finalised_at });
                    }
                    (status, _) => {
                        return Err(PetitionError::NotAllowed {
                            action: "receive",
                            status,
                        });
                    }
                }
                if services.jurisdiction().get(&division).is_none() {
                    return Err(PetitionError::UnknownDivision { division });
                }
                if let Some(UnitRef::Division(unit)) = &complained_unit_id
                    && services.jurisdiction().get(unit).is_none()
                {
                    return Err(PetitionError::UnknownComplainedUnit { unit: unit.clone() });
                }
                // Art 37 across cases: a repeat of a final petition is
                // recorded and not accepted (不予受理), naming the petition
                // it repeats, so that repeat visits count in the figures
                // rather than vanish as refused requests.
                let repeats_final = match &repeat_of {
                    Some(id) => final_at(services, id)
                        .await?
                        .map(|finalised_at| (id.clone(), finalised_at)),
                    None => None,
                };
                let visit = channel == PetitionChannel::Visit;
                if visit {
                    if visited_level.is_none() {
                        return Err(PetitionError::MissingVisitedLevel);
                    }
                    // Art 20: a group visit sends at most five representatives;
                    // the group's size is recorded apart and never refused.
                    if representatives == 0 {
                        return Err(PetitionError::NoRepresentatives);
                    }
                    if representatives > MAX_VISIT_REPRESENTATIVES {
                        return Err(PetitionError::TooManyRepresentatives { representatives });
                    }
                }
                // Art 20: a visit goes to the competent level or the one
                // directly above. A skipped level is recorded, not refused:
                // the petition office still has to take the visit in.
                // Above the district too: a district matter taken to the
                // province (赴省) or to Beijing (进京) skips the city, or
                // the city and the province.
                let skipped = visited_level.filter(|&visited| {
                    visit
                        && PetitionLevel::from(competent_level)
                            .up()
                            .is_some_and(|above| visited > above)
                });
                let mut changes = vec![C::PetitionReceived {
                    channel,
                    matter_type,
                    petitioner,
                    complained_unit,
                    complained_unit_id,
                    facts,
                    division,
                    competent_level,
                    visited_level,
                    representatives,
                    triage_due: services.deadline(Stage::PetitionTriage, now),
                    repeat_of,
                }];
                if let Some(visited_level) = skipped {
                    changes.push(C::SkippedLevelVisitRecorded {
                        competent_level,
                        visited_level,
                    });
                }
                if let Some((id, finalised_at)) = repeats_final {
                    changes.push(C::PetitionNotAccepted {
                        reason: repeat_reason(&id, finalised_at),
                        late: false,
                        repeats_final: Some(id),
                    });
                }
                changes
            }

            A::Forward { to_unit } => {
                self.require("forward", &[S::Received])?;
                vec![C::PetitionForwarded {
                    to_unit,
                    notice_due: services.deadline(Stage::PetitionAcceptanceNotice, now),
                    objection_due: services.deadline(Stage::PetitionObjection, now),
                    late: is_past(self.triage_due, now),
                }]
            }

            A::Assign {
                to_unit,
                report_within_days,
            } => {
                self.require("assign", &[S::Received])?;
                check_days(report_within_days, MAX_REPORT_DAYS)?;
                vec![C::PetitionAssigned {
                    to_unit,
                    notice_due: services.deadline(Stage::PetitionAcceptanceNotice, now),
                    objection_due: services.deadline(Stage::PetitionObjection, now),
                    // Its own stage, so that readers keyed by stage never
                    // take it for the statutory opinion deadline.
                    report_due: services.deadline_for(
                        Stage::AssignedReport,
                        calendar_days(report_within_days),
                        now,
                    ),
                    late: is_past(self.triage_due, now),
                    report_within_days: Some(report_within_days),
                }]
            }

            A::Divert { channel, note } => {
                self.require("divert", &[S::Received])?;
                vec![C::PetitionDiverted {
                    channel,
                    note,
                    late: is_past(self.triage_due, now),
                }]
            }

            A::NotAccept {
                reason,
                repeats_final,
            } => {
                self.require("refuse to accept", &[S::Received])?;
                // Art 37: a registrar who finds, after receipt, that the
                // matter was made final in another petition names it; it
                // must be final, or this would not be Art 37's refusal.
                if let Some(id) = &repeats_final
                    && final_at(services, id).await?.is_none()
                {
                    return Err(PetitionError::RepeatNotFinal { id: id.clone() });
                }
                vec![C::PetitionNotAccepted {
                    reason,
                    late: is_past(self.triage_due, now),
                    repeats_final,
                }]
            }

            A::Object { reason } => {
                let unit = self.routed_unit("object")?;
                // Art 23: objections only within the working-day window.
                check_open(self.objection_due, now)?;
                vec![C::PetitionObjected { unit, reason }]
            }

            A::Accept {} => {
                let unit = self.routed_unit("accept")?;
                vec![C::PetitionAccepted {
                    unit,
                    opinion_due: services.deadline(Stage::PetitionOpinion, now),
                    // Art 23: a late written notice is an accountability
                    // matter (Art 44), recorded rather than refused.
                    late_notice: is_past(self.notice_due, now),
                }]
            }

            A::ExtendHandling {
                days,
                reason,
                approved_by,
            } => {
                const ACTION: &str = "extend handling";
                self.require(ACTION, &[S::Accepted])?;
                // Art 34: one extension only, of bounded length.
                if self.extended {
                    return Err(PetitionError::AlreadyExtended);
                }
                // A complete policy always has this rule; were it missing,
                // no extension could be approved.
                let max = services
                    .policy()
                    .rule(Stage::PetitionExtension)
                    .map_or(0, |rule| rule.days);
                if days == 0 || days > max {
                    return Err(PetitionError::ExtensionTooLong { days, max });
                }
                let current = self.in_force(self.opinion_due, ACTION)?;
                // Art 34 extends a handling period that is still running,
                // by at most 30 days counted from its original due date
                // (the one extension allowed is always of the original).
                // That a period already run out cannot be extended is this
                // engine's reading, not a figure of DOMAIN.md: the opinion
                // is late from its due time on, the breach is on record
                // (Art 44–46), and an extension granted after it would only
                // hide it.
                if now >= current.due {
                    return Err(PetitionError::WindowClosed {
                        stage: Stage::PetitionExtension,
                        due: current.due,
                    });
                }
                vec![C::HandlingExtended {
                    days,
                    reason,
                    approved_by,
                    opinion_due: extend(services, current, days),
                }]
            }

            A::IssueOpinion { outcome, summary } => {
                self.require("issue an opinion", &[S::Accepted])?;
                vec![C::OpinionIssued {
                    outcome,
                    summary,
                    // Art 35: the review window runs from the day the
                    // petitioner receives the opinion; it opens with the
                    // delivery, not here.
                    review_request_due: None,
                    late: is_past(self.opinion_due, now),
                }]
            }

            A::RequestReview { reason } => {
                self.require("request review", &[S::Answered])?;
                self.require_review_ladder()?;
                // Before the opinion's delivery is recorded its window has
                // not started, so a request cannot be late.
                check_open(self.review_request_due, now)?;
                vec![C::ReviewRequested {
                    reason,
                    review_due: services.deadline(Stage::Review, now),
                }]
            }

            A::RecordHearing { days } => {
                const ACTION: &str = "record a hearing";
                // Art 36: hearing time is left out of the re-review period
                // only; Art 35 leaves nothing out of a review, so a review's
                // due date never moves for a hearing.
                self.require(ACTION, &[S::UnderReReview])?;
                check_days(days, MAX_HEARING_DAYS)?;
                let current = self.in_force(self.re_review_due, ACTION)?;
                vec![C::HearingHeld {
                    days,
                    due: extend(services, current, days),
                }]
            }

            A::IssueReviewOpinion {
                outcome,
                decision,
                summary,
            } => {
                self.require("issue a review opinion", &[S::UnderReview])?;
                vec![C::ReviewOpinionIssued {
                    outcome,
                    decision,
                    summary,
                    // Art 36: the re-review window too runs from delivery.
                    re_review_request_due: None,
                    late: is_past(self.review_due, now),
                }]
            }

            A::RequestReReview { reason } => {
                self.require("request re-review", &[S::Reviewed])?;
                self.require_review_ladder()?;
                // As for review: not late before the delivery is recorded.
                check_open(self.re_review_request_due, now)?;
                vec![C::ReReviewRequested {
                    reason,
                    re_review_due: services.deadline(Stage::ReReview, now),
                }]
            }

            A::IssueReReviewOpinion {
                outcome,
                decision,
                summary,
            } => {
                self.require("issue a re-review opinion", &[S::UnderReReview])?;
                // Art 36: the re-review opinion is final.
                vec![
                    C::ReReviewOpinionIssued {
                        outcome,
                        decision,
                        summary,
                        late: is_past(self.re_review_due, now),
                    },
                    C::PetitionFinalised {
                        basis: FinalBasis::ReReviewed,
                    },
                ]
            }

            A::Finalise {} => {
                const ACTION: &str = "finalise";
                // Art 37: a petitioner who lets the request window lapse
                // has accepted the last opinion.
                let (window, basis) = match self.status {
                    S::Answered => (self.review_request_due, FinalBasis::ReviewWindowLapsed),
                    S::Reviewed => (self.re_review_request_due, FinalBasis::ReReviewWindowLapsed),
                    status => {
                        return Err(PetitionError::NotAllowed {
                            action: ACTION,
                            status,
                        });
                    }
                };
                // The window starts only with the reply's delivery
                // (Art 35–36); until then it cannot have lapsed.
                let Some(window) = window else {
                    return Err(self.not_allowed("finalise before the reply is delivered"));
                };
                if now < window.due {
                    return Err(PetitionError::WindowStillOpen {
                        stage: window.stage,
                        due: window.due,
                    });
                }
                vec![C::PetitionFinalised { basis }]
            }

            A::RecordDelivery {
                reply,
                delivered_on,
                method,
            } => {
                let Some(issued_at) = self.replies_issued.get(&reply) else {
                    return Err(self.not_allowed("record the delivery of a reply not yet issued"));
                };
                if self.deliveries.contains_key(&reply) {
                    return Err(self.not_allowed("record a second delivery of the same reply"));
                }
                let issued_on = issued_at
                    .with_timezone(&services.policy().timezone())
                    .date_naive();
                if delivered_on < issued_on {
                    return Err(
                        self.not_allowed("record a delivery dated before the reply was issued")
                    );
                }
                if delivered_on > services.today() {
                    return Err(self.not_allowed("record a delivery dated after today"));
                }
                // Art 35–36: 30 days "自收到书面答复之日起", from the day the
                // petitioner received the written reply, however long the
                // post took. A window opens only while the petitioner can
                // still use it: not after the request was made, and never
                // after the re-review opinion, which is final (Art 36).
                let request_due = match (reply, self.status) {
                    (Reply::Opinion, S::Answered) => {
                        Some(services.deadline_on(Stage::ReviewRequest, delivered_on))
                    }
                    (Reply::ReviewOpinion, S::Reviewed) => {
                        Some(services.deadline_on(Stage::ReReviewRequest, delivered_on))
                    }
                    _ => None,
                };
                vec![C::ReplyDelivered {
                    reply,
                    delivered_on,
                    method,
                    request_due,
                }]
            }

            A::Evaluate { satisfaction, note } => {
                // The petitioner judges the handling opinion, so there is
                // something to judge only once it is issued; every status
                // from then on has one (a final petition was answered).
                self.require(
                    "evaluate",
                    &[
                        S::Answered,
                        S::UnderReview,
                        S::Reviewed,
                        S::UnderReReview,
                        S::Final,
                    ],
                )?;
                if self.satisfaction.is_some() {
                    return Err(PetitionError::AlreadyEvaluated);
                }
                vec![C::PetitionEvaluated { satisfaction, note }]
            }

            A::AssignOfficial { official } => {
                self.require(
                    "assign a responsible official",
                    &[
                        S::Received,
                        S::Routed,
                        S::Accepted,
                        S::Answered,
                        S::UnderReview,
                        S::Reviewed,
                        S::UnderReReview,
                    ],
                )?;
                if self.official.as_ref() == Some(&official) {
                    return Ok(vec![]);
                }
                vec![C::OfficialAssigned {
                    official,
                    previous: self.official.clone(),
                }]
            }

            A::ErasePetitioner {} => match &self.petitioner {
                Some(petitioner) if !petitioner.name.is_erased() => vec![C::PetitionerErased {}],
                Some(_) => vec![],
                None => return Err(self.not_allowed("erase the petitioner of")),
            },

            A::RecordGroupHeadcount { headcount } => {
                // Art 20: a group visit of any size is taken in; only its
                // representatives are limited, to five, at receipt.
                self.require("record a group's headcount", &[S::Received])?;
                if self.channel != Some(PetitionChannel::Visit) {
                    return Err(self.not_allowed("record a group's headcount for a non-visit"));
                }
                if headcount < self.representatives {
                    return Err(
                        self.not_allowed("record a headcount below the number of representatives")
                    );
                }
                vec![C::GroupHeadcountRecorded { headcount }]
            }

            A::RecordDeadlineWarning {
                stage,
                threshold_percent,
                due,
            } => {
                self.require("record a deadline warning", CLOCK_STATUSES)?;
                let threshold = Threshold::Warning(threshold_percent);
                match self.check_timer(stage, due, threshold, now)? {
                    Some(holder) => vec![C::DeadlineWarned {
                        stage,
                        threshold_percent,
                        due,
                        holder,
                    }],
                    // Already recorded: a retry changes nothing.
                    None => vec![],
                }
            }

            A::RecordDeadlineBreach { stage, due } => {
                self.require("record a deadline breach", CLOCK_STATUSES)?;
                match self.check_timer(stage, due, Threshold::Breach, now)? {
                    Some(holder) => vec![C::DeadlineBreached { stage, due, holder }],
                    None => vec![],
                }
            }

            A::RecomputeDeadlines {} => {
                let deadlines = recompute::recompute(services, &self.deadlines_in_force(services));
                if deadlines.is_empty() {
                    // Nothing moved: the command is idempotent.
                    vec![]
                } else {
                    vec![C::DeadlinesRecomputed { deadlines }]
                }
            }
        };
        Ok(changes)
    }

    /// Refuses `action` unless the petition is in one of `allowed`.
    fn require(
        &self,
        action: &'static str,
        allowed: &[PetitionStatus],
    ) -> Result<(), PetitionError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(self.not_allowed(action))
        }
    }

    /// Refuses review and re-review for a matter that is not an appeal or
    /// demand: Art 31 gives only 申诉求决类 matters the handling opinion
    /// that Art 35–36 let the petitioner take further. A matter received
    /// before matter types were recorded keeps the ladder it had.
    fn require_review_ladder(&self) -> Result<(), PetitionError> {
        match self.matter_type {
            None | Some(MatterType::Appeal) => Ok(()),
            Some(matter_type) => Err(PetitionError::NoReviewForMatter { matter_type }),
        }
    }

    /// The unit a routed petition waits with; refuses `action` in any other
    /// status.
    fn routed_unit(&self, action: &'static str) -> Result<Name, PetitionError> {
        match (&self.status, &self.unit) {
            (PetitionStatus::Routed, Some(unit)) => Ok(unit.clone()),
            _ => Err(self.not_allowed(action)),
        }
    }

    /// The deadline a command works from. Every status that allows the
    /// command has set it; if a history this aggregate did not write left it
    /// unset, refusing is safer than guessing a date.
    fn in_force(
        &self,
        deadline: Option<Deadline>,
        action: &'static str,
    ) -> Result<Deadline, PetitionError> {
        deadline.ok_or_else(|| self.not_allowed(action))
    }

    fn not_allowed(&self, action: &'static str) -> PetitionError {
        PetitionError::NotAllowed {
            action,
            status: self.status,
        }
    }

    /// Sets the receiving unit and its deadlines after forwarding or
    /// assignment at `at`, which starts the unit's clocks.
    fn route(
        &mut self,
        at: DateTime<Utc>,
        unit: Name,
        notice_due: Deadline,
        objection_due: Deadline,
        report_due: Option<Deadline>,
    ) {
        self.status = PetitionStatus::Routed;
        self.clock_starts.insert(notice_due.stage, at);
        if let Some(report_due) = report_due {
            self.clock_starts.insert(report_due.stage, at);
        }
        self.unit = Some(unit);
        self.notice_due = Some(notice_due);
        self.objection_due = Some(objection_due);
        self.report_due = report_due;
    }
}

/// When petition `id` became final, or `None` while it is open; refuses an
/// unknown petition, and answers unavailable records as such.
async fn final_at(
    services: &Services,
    id: &CaseId,
) -> Result<Option<DateTime<Utc>>, PetitionError> {
    match services.petition_records().finality(id).await {
        Ok(Finality::Open) => Ok(None),
        Ok(Finality::Final(finalised_at)) => Ok(Some(finalised_at)),
        Ok(Finality::Unknown) => Err(PetitionError::UnknownPetition { id: id.clone() }),
        Err(RecordsUnavailable) => Err(PetitionError::RecordsUnavailable),
    }
}

/// What a petitioner is told when a matter already final comes again
/// (Art 37).
fn repeat_reason(id: &CaseId, finalised_at: DateTime<Utc>) -> Text {
    let reason = format!(
        "不予受理: the matter was made final in petition {id} at {} and is not accepted \
         again (信访工作条例 Art 37)",
        finalised_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Text::parse(&reason).unwrap_or_else(|_| unreachable!("a short, non-blank text"))
}

/// Whether `deadline` has passed at `now` (a missing deadline never has).
fn is_past(deadline: Option<Deadline>, now: DateTime<Utc>) -> bool {
    deadline.is_some_and(|d| now >= d.due)
}

/// Refuses once the window `deadline` bounds has closed: a window is open
/// while `now` is before its due instant.
fn check_open(deadline: Option<Deadline>, now: DateTime<Utc>) -> Result<(), PetitionError> {
    match deadline {
        Some(d) if now >= d.due => Err(PetitionError::WindowClosed {
            stage: d.stage,
            due: d.due,
        }),
        _ => Ok(()),
    }
}

/// Refuses a period of days outside `1..=max`.
fn check_days(days: u32, max: u32) -> Result<(), PetitionError> {
    if (1..=max).contains(&days) {
        Ok(())
    } else {
        Err(PetitionError::InvalidDeadline { days, max })
    }
}

// Bump when `apply` or the fields of `Petition` change meaning: stored
// snapshots of another revision are then ignored and cases replayed.
impl crate::SnapshotRevision for Petition {
    // 2: clock starts, paused hearing days and recorded deadline marks.
    // 3: replies issued and delivered; request windows from delivery; a
    // group's headcount.
    // 4: the matter type (Art 31), the review and re-review decisions, and
    // the final petition a repeat was not accepted for.
    // 5: the days added to deadlines and the report's length, for
    // recounting provisional deadlines.
    const SNAPSHOT_REVISION: u32 = 5;
}

impl Aggregate for Petition {
    const TYPE: &'static str = "Petition";
    type Command = PetitionCommand;
    type Event = PetitionEvent;
    type Error = PetitionError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: PetitionCommand,
        services: &Services,
        sink: &EventSink<Self>,
    ) -> Result<(), PetitionError> {
        let now = services.now();
        let changes = self.decide(command.action, services, now).await?;
        for change in changes {
            let event = PetitionEvent {
                at: now,
                by: command.by.clone(),
                change,
            };
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: PetitionEvent) {
        use PetitionChange as C;
        use PetitionStatus as S;

        let at = event.at;
        match event.change {
            C::PetitionReceived {
                channel,
                matter_type,
                petitioner,
                complained_unit,
                complained_unit_id,
                facts,
                division,
                competent_level,
                visited_level,
                representatives,
                triage_due,
                repeat_of,
            } => {
                self.status = S::Received;
                self.matter_type = matter_type;
                self.repeat_of = repeat_of;
                self.received_at = Some(event.at);
                self.channel = Some(channel);
                self.petitioner = Some(petitioner);
                self.complained_unit = complained_unit;
                self.complained_unit_id = complained_unit_id;
                self.facts = Some(facts);
                self.division = Some(division);
                self.competent_level = Some(competent_level);
                self.visited_level = visited_level;
                self.representatives = representatives;
                self.clock_starts.insert(triage_due.stage, at);
                self.triage_due = Some(triage_due);
            }
            C::SkippedLevelVisitRecorded { .. } => self.skipped_level = true,
            C::GroupHeadcountRecorded { headcount } => self.headcount = Some(headcount),
            C::PetitionForwarded {
                to_unit,
                notice_due,
                objection_due,
                ..
            } => {
                self.route(at, to_unit, notice_due, objection_due, None);
                self.report_days = None;
            }
            C::PetitionAssigned {
                to_unit,
                notice_due,
                objection_due,
                report_due,
                report_within_days,
                ..
            } => {
                self.route(at, to_unit, notice_due, objection_due, Some(report_due));
                self.report_days = report_within_days;
            }
            C::PetitionDiverted { .. } => self.status = S::Diverted,
            C::PetitionNotAccepted { repeats_final, .. } => {
                self.status = S::NotAccepted;
                self.repeats_final = repeats_final;
            }
            C::PetitionObjected { .. } => {
                self.status = S::Received;
                self.unit = None;
                self.notice_due = None;
                self.objection_due = None;
                self.report_due = None;
                self.report_days = None;
            }
            C::PetitionAccepted { opinion_due, .. } => {
                self.status = S::Accepted;
                self.clock_starts.insert(opinion_due.stage, at);
                self.due_extensions.remove(&opinion_due.stage);
                self.opinion_due = Some(opinion_due);
            }
            C::HandlingExtended {
                days, opinion_due, ..
            } => {
                self.extended = true;
                self.due_extensions
                    .entry(opinion_due.stage)
                    .or_default()
                    .push(days);
                self.opinion_due = Some(opinion_due);
            }
            C::OpinionIssued {
                outcome,
                review_request_due,
                ..
            } => {
                self.status = S::Answered;
                self.opinion_outcome = Some(outcome);
                self.replies_issued.insert(Reply::Opinion, at);
                self.review_request_due = review_request_due;
            }
            C::ReviewRequested { review_due, .. } => {
                self.status = S::UnderReview;
                self.clock_starts.insert(review_due.stage, at);
                self.clock_paused_days.remove(&review_due.stage);
                self.due_extensions.remove(&review_due.stage);
                self.review_due = Some(review_due);
            }
            C::HearingHeld { days, due } => {
                // The deadline says which period the hearing paused.
                let paused = self.clock_paused_days.entry(due.stage).or_default();
                *paused = paused.saturating_add(days);
                self.due_extensions.entry(due.stage).or_default().push(days);
                if due.stage == Stage::ReReview {
                    self.re_review_due = Some(due);
                } else {
                    self.review_due = Some(due);
                }
            }
            C::ReviewOpinionIssued {
                outcome,
                decision,
                re_review_request_due,
                ..
            } => {
                self.status = S::Reviewed;
                self.review_outcome = Some(outcome);
                self.review_decision = decision;
                self.replies_issued.insert(Reply::ReviewOpinion, at);
                self.re_review_request_due = re_review_request_due;
            }
            C::ReReviewRequested { re_review_due, .. } => {
                self.status = S::UnderReReview;
                self.clock_starts.insert(re_review_due.stage, at);
                self.clock_paused_days.remove(&re_review_due.stage);
                self.due_extensions.remove(&re_review_due.stage);
                self.re_review_due = Some(re_review_due);
            }
            C::ReReviewOpinionIssued {
                outcome, decision, ..
            } => {
                self.re_review_outcome = Some(outcome);
                self.re_review_decision = decision;
                self.replies_issued.insert(Reply::ReReviewOpinion, at);
            }
            C::ReplyDelivered {
                reply,
                delivered_on,
                method,
                request_due,
            } => {
                self.deliveries.insert(
                    reply,
                    Delivery {
                        delivered_on,
                        method,
                    },
                );
                match (reply, request_due) {
                    (Reply::Opinion, Some(due)) => self.review_request_due = Some(due),
                    (Reply::ReviewOpinion, Some(due)) => self.re_review_request_due = Some(due),
                    _ => {}
                }
            }
            C::PetitionEvaluated { satisfaction, .. } => self.satisfaction = Some(satisfaction),
            C::OfficialAssigned { official, .. } => self.official = Some(official),
            C::PetitionerErased {} => {
                self.petitioner = Some(Petitioner {
                    name: Name::erased(),
                    contact: None,
                });
            }
            C::PetitionFinalised { basis } => {
                self.status = S::Final;
                self.finalised_at = Some(event.at);
                self.final_basis = Some(basis);
            }
            // Timer marks leave the status alone: a warning or breach is a
            // record for accountability (Art 44–46), not a step of the flow.
            C::DeadlineWarned {
                stage,
                threshold_percent,
                due,
                ..
            } => {
                self.deadline_marks.insert(DeadlineMark::new(
                    stage,
                    due,
                    Threshold::Warning(threshold_percent),
                ));
            }
            C::DeadlineBreached { stage, due, .. } => {
                self.deadline_marks
                    .insert(DeadlineMark::new(stage, due, Threshold::Breach));
            }
            C::DeadlinesRecomputed { deadlines } => {
                for change in &deadlines {
                    for slot in [
                        &mut self.triage_due,
                        &mut self.notice_due,
                        &mut self.objection_due,
                        &mut self.report_due,
                        &mut self.opinion_due,
                        &mut self.review_request_due,
                        &mut self.review_due,
                        &mut self.re_review_request_due,
                        &mut self.re_review_due,
                    ] {
                        recompute::replace(slot.as_mut(), change);
                    }
                    recompute::carry_marks(
                        &mut self.deadline_marks,
                        change.stage,
                        change.old_due,
                        change.new_due,
                    );
                }
            }
        }
    }
}
