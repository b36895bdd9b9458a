//! What may be asked of a petition. Every field is an already validated
//! value; the aggregate checks only what depends on its state, the time and
//! the policy.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{DeliveryMethod, MatterType, OpinionOutcome, Petitioner, Reply, ReviewDecision};
use crate::dispute::Satisfaction;
use crate::policy::Stage;
use crate::values::{
    Actor, CaseId, DivisionCode, LegalChannel, Level, Name, PetitionChannel, PetitionLevel, Text,
    UnitRef,
};

/// A command to a petition: who asks, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionCommand {
    /// Who acts, recorded on every event the command produces.
    pub by: Actor,
    /// What they ask for.
    pub action: PetitionAction,
}

/// The things that can be done to a petition, in the order of the statutory
/// flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PetitionAction {
    /// The petition office registers a petition (Art 17–20). Allowed only
    /// on a new petition.
    Receive {
        /// How it arrived.
        channel: PetitionChannel,
        /// The kind of matter (Art 31), if the registrar has classed it:
        /// suggestions and accusations have no review ladder.
        matter_type: Option<MatterType>,
        /// Who petitions.
        petitioner: Petitioner,
        /// The unit complained about, if any, by name: what is shown.
        complained_unit: Option<Name>,
        /// The unit complained about as configuration knows it (an agency
        /// id or a division code): what confidentiality goes by (Art 30).
        #[serde(default)]
        complained_unit_id: Option<UnitRef>,
        /// The facts and requests.
        facts: Text,
        /// The division the matter belongs to; must be in the jurisdiction.
        division: DivisionCode,
        /// The level competent to handle the matter.
        competent_level: Level,
        /// The level an in-person visit went to; required for visits. It
        /// may lie above the district (city, province, national: 赴省,
        /// 进京), which Art 20's rule on skipped levels covers as well.
        visited_level: Option<PetitionLevel>,
        /// How many representatives came; 1 to 5 for a visit (Art 20). A
        /// larger group registers its representatives here and its
        /// headcount with [`PetitionAction::RecordGroupHeadcount`].
        representatives: u32,
        /// An earlier petition on the same facts, if the registrar found
        /// one. If that one is final the petition is received and at once
        /// not accepted (不予受理, Art 37), naming it.
        repeat_of: Option<CaseId>,
    },
    /// Records how many people came with a group visit (集体访): any
    /// number, of whom the representatives (at most five, Art 20) were
    /// named at receipt. Allowed on a visit awaiting triage; the headcount
    /// may not be below the representatives.
    RecordGroupHeadcount {
        /// How many people came, representatives included.
        headcount: u32,
    },
    /// Triage: forward (转送) to the competent unit (Art 22).
    Forward {
        /// The receiving unit.
        to_unit: Name,
    },
    /// Triage: assign (交办) to a unit with a deadline to report back
    /// (Art 22).
    Assign {
        /// The receiving unit.
        to_unit: Name,
        /// Calendar days the unit has to report; 1 to 365.
        report_within_days: u32,
    },
    /// Triage: send a matter that belongs to law to a legal channel
    /// (诉访分离, Art 22).
    Divert {
        /// Where the petitioner is directed.
        channel: LegalChannel,
        /// What the petitioner is told.
        note: Text,
    },
    /// Triage: do not accept the petition (不予受理, Art 22).
    NotAccept {
        /// Why, as told to the petitioner.
        reason: Text,
        /// The final petition whose matter this one repeats, when that is
        /// why (Art 37); refused unless that petition is final.
        repeats_final: Option<CaseId>,
    },
    /// The receiving unit objects that the item was misrouted, within the
    /// objection window (Art 23). The petition returns to triage.
    Object {
        /// Why the unit is not the right one.
        reason: Text,
    },
    /// The receiving unit accepts the petition (Art 23); the opinion period
    /// starts.
    Accept {},
    /// The handling period is extended, once, with approval (Art 34), while
    /// it still runs: refused once the opinion's due time has passed.
    ExtendHandling {
        /// Calendar days added; at most the policy's extension length.
        days: u32,
        /// Why, as told to the petitioner.
        reason: Text,
        /// Who approved the extension.
        approved_by: Name,
    },
    /// The receiving unit issues its handling opinion (Art 32).
    IssueOpinion {
        /// What it decides.
        outcome: OpinionOutcome,
        /// The opinion in brief.
        summary: Text,
    },
    /// Records that a written reply reached the petitioner (送达). The
    /// review and re-review windows run from the day it was received
    /// (Art 35–36), so a reply delayed in the post leaves the petitioner
    /// the whole 30 days. Allowed once per reply, once it is issued; the
    /// day may be neither before the reply was issued nor after today.
    RecordDelivery {
        /// Which reply.
        reply: Reply,
        /// The local day the petitioner received it.
        delivered_on: NaiveDate,
        /// How it reached them.
        method: DeliveryMethod,
    },
    /// The petitioner asks for review (复查) within the window (Art 35),
    /// for an appeal or demand only (Art 31),
    /// which runs from the opinion's delivery; a request before the
    /// delivery is recorded cannot be late.
    RequestReview {
        /// Why the petitioner disagrees.
        reason: Text,
    },
    /// A hearing was held during re-review; its days do not count (Art 36).
    /// Refused during review: Art 35 leaves no hearing time out.
    RecordHearing {
        /// Calendar days the hearing took; 1 to 90.
        days: u32,
    },
    /// The reviewing body issues the review opinion (Art 35).
    IssueReviewOpinion {
        /// What it decides.
        outcome: OpinionOutcome,
        /// What it decides about the handling opinion, if it says.
        decision: Option<ReviewDecision>,
        /// The opinion in brief.
        summary: Text,
    },
    /// The petitioner asks for re-review (复核) within the window (Art 36).
    RequestReReview {
        /// Why the petitioner disagrees.
        reason: Text,
    },
    /// The re-reviewing body issues the re-review opinion, which is final
    /// (Art 36).
    IssueReReviewOpinion {
        /// What it decides.
        outcome: OpinionOutcome,
        /// What it decides about the review opinion, if it says.
        decision: Option<ReviewDecision>,
        /// The opinion in brief.
        summary: Text,
    },
    /// Records how satisfied the petitioner said they were with the handling
    /// (群众满意度评价), which the petition bureau's satisfaction rate
    /// (群众满意率) counts. Allowed once, after the handling opinion has
    /// been issued (answered, under review or re-review, reviewed, final);
    /// refused before it, since there is nothing yet to judge, and refused
    /// a second time.
    Evaluate {
        /// How satisfied the petitioner was.
        satisfaction: Satisfaction,
        /// Remarks from the evaluation.
        note: Option<Text>,
    },
    /// Names the official responsible for the petition (责任人, or the
    /// leader who takes charge of it, 包案领导), named from then on on every
    /// clock, warning and breach: accountability (Art 44–46) asks who held
    /// a petition when a step was late. Allowed until the petition is
    /// final, diverted or not accepted; naming the official already named
    /// writes nothing.
    AssignOfficial {
        /// The official, by name.
        official: Name,
    },
    /// Erases the petitioner's identity at their request (the right to
    /// deletion, Personal Information Protection Law Art 47): name and
    /// contact read as [`Name::erased`] and none from then on. Allowed in
    /// every status once received; an erased petitioner writes nothing.
    ErasePetitioner {},
    /// Records finality once the review or re-review window has lapsed
    /// unused (Art 37). Refused while the reply's delivery is unrecorded,
    /// since the window has then not started.
    Finalise {},
    /// A timer found that a running clock has reached a warning threshold.
    /// Allowed while some clock can run (received, routed, accepted, under
    /// review or re-review). Refused if no running clock has this stage and
    /// due time, or if the threshold has not been reached yet; a warning
    /// already recorded for the same stage, due time and threshold is
    /// accepted and writes nothing, so a timer may retry freely.
    RecordDeadlineWarning {
        /// The stage whose clock is meant.
        stage: Stage,
        /// The threshold reached, in percent of the allowed time: 50 or 75.
        threshold_percent: u8,
        /// The clock's due time, as the timer knew it; a clock since
        /// re-timed (an extension, a hearing) refuses a stale warning.
        due: DateTime<Utc>,
    },
    /// A timer found that a running clock has passed its due time. Refused
    /// and made idempotent like [`Self::RecordDeadlineWarning`].
    RecordDeadlineBreach {
        /// The stage whose clock is meant.
        stage: Stage,
        /// The clock's due time, as the timer knew it.
        due: DateTime<Utc>,
    },
    /// The engine counts every provisional deadline in force again, over
    /// the holiday schedules it has now (sent when a year's schedule is
    /// loaded). Allowed in every status; writes nothing when no deadline
    /// changes, so it may be sent any number of times.
    RecomputeDeadlines {},
}
