//! What has happened to a petition. Events are a storage contract: they are
//! named in the past tense, versioned, and carry every deadline the policy
//! computed, so that readers never recompute one.

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{
    DeliveryMethod, FinalBasis, MatterType, OpinionOutcome, Petitioner, Reply, ReviewDecision,
};
use crate::dispute::Satisfaction;
use crate::policy::{Deadline, Stage};
use crate::recompute::RecomputedDeadline;
use crate::sla::Holder;
use crate::values::{
    Actor, CaseId, DivisionCode, LegalChannel, Level, Name, PetitionChannel, PetitionLevel, Text,
    UnitRef,
};

/// Something that happened to a petition, when, and who did it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionEvent {
    /// When the command was handled, by the services' clock.
    pub at: DateTime<Utc>,
    /// Who acted: accountability needs to know who held a petition when
    /// (Art 44–46).
    pub by: Actor,
    /// What changed.
    pub change: PetitionChange,
}

/// The changes a petition goes through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PetitionChange {
    /// The petition office received the petition (Art 17–20).
    PetitionReceived {
        /// How it arrived.
        channel: PetitionChannel,
        /// The kind of matter (Art 31); absent from petitions received
        /// before matter types were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matter_type: Option<MatterType>,
        /// Who petitions.
        petitioner: Petitioner,
        /// The unit complained about, if any, by name.
        complained_unit: Option<Name>,
        /// The unit complained about as configuration knows it; absent from
        /// petitions received before units were named by id, which are
        /// matched by name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        complained_unit_id: Option<UnitRef>,
        /// The facts and requests.
        facts: Text,
        /// The division the matter belongs to.
        division: DivisionCode,
        /// The level competent to handle the matter.
        competent_level: Level,
        /// The level a visit went to (stored by [`Level`]'s names for the
        /// ladder's levels, so that earlier events read the same).
        visited_level: Option<PetitionLevel>,
        /// How many representatives came.
        representatives: u32,
        /// When triage is due (Art 22).
        triage_due: Deadline,
        /// The earlier, still open petition on the same facts, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repeat_of: Option<CaseId>,
    },
    /// A visit went more than one level above the competent level (越级,
    /// Art 20). The visit was still received.
    SkippedLevelVisitRecorded {
        /// The level competent to handle the matter.
        competent_level: Level,
        /// The level visited, possibly above the district.
        visited_level: PetitionLevel,
    },
    /// A group visit's headcount was recorded (集体访, Art 20): how many
    /// came, representatives included.
    GroupHeadcountRecorded {
        /// How many people came.
        headcount: u32,
    },
    /// The petition was forwarded (转送) to a unit (Art 22).
    PetitionForwarded {
        /// The receiving unit.
        to_unit: Name,
        /// When the unit must tell the petitioner whether it accepts
        /// (Art 23).
        notice_due: Deadline,
        /// Until when the unit may object to a misrouted item (Art 23).
        objection_due: Deadline,
        /// Whether triage was late.
        late: bool,
    },
    /// The petition was assigned (交办) to a unit with a deadline (Art 22).
    PetitionAssigned {
        /// The receiving unit.
        to_unit: Name,
        /// When the unit must tell the petitioner whether it accepts
        /// (Art 23).
        notice_due: Deadline,
        /// Until when the unit may object to a misrouted item (Art 23).
        objection_due: Deadline,
        /// When the unit must report back, as the assigning office set it
        /// (stage `assigned_report`; events stored before that stage existed
        /// carry `petition_opinion` here).
        report_due: Deadline,
        /// Whether triage was late.
        late: bool,
        /// The calendar days the assigning office gave for the report, so
        /// that a provisional `report_due` can be counted again; absent in
        /// events stored before it was recorded.
        #[serde(default)]
        report_within_days: Option<u32>,
    },
    /// The petition was sent to a legal channel (诉访分离, Art 22).
    PetitionDiverted {
        /// Where the petitioner was directed.
        channel: LegalChannel,
        /// What the petitioner was told.
        note: Text,
        /// Whether triage was late.
        late: bool,
    },
    /// The petition was not accepted (不予受理, Art 22).
    PetitionNotAccepted {
        /// Why.
        reason: Text,
        /// Whether triage was late.
        late: bool,
        /// The final petition whose matter this one repeats, when that is
        /// why (Art 37); absent otherwise and from earlier histories.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repeats_final: Option<CaseId>,
    },
    /// The receiving unit objected that the item was misrouted (Art 23); the
    /// petition went back to triage.
    PetitionObjected {
        /// The unit that objected.
        unit: Name,
        /// Why.
        reason: Text,
    },
    /// The receiving unit accepted the petition (Art 23).
    PetitionAccepted {
        /// The unit that accepted.
        unit: Name,
        /// When the handling opinion is due (Art 34).
        opinion_due: Deadline,
        /// Whether acceptance came after the written-notice deadline.
        late_notice: bool,
    },
    /// The handling period was extended (Art 34).
    HandlingExtended {
        /// Calendar days added.
        days: u32,
        /// Why, as told to the petitioner.
        reason: Text,
        /// Who approved it.
        approved_by: Name,
        /// The new opinion deadline.
        opinion_due: Deadline,
    },
    /// The handling opinion was issued (Art 32).
    OpinionIssued {
        /// What it decided.
        outcome: OpinionOutcome,
        /// The opinion in brief.
        summary: Text,
        /// Until when review may be requested, counted from the opinion's
        /// issue: only histories recorded before deliveries were carry it.
        /// The window now runs from the delivery (Art 35), which
        /// [`PetitionChange::ReplyDelivered`] records.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        review_request_due: Option<Deadline>,
        /// Whether the opinion came after its deadline.
        late: bool,
    },
    /// The petitioner asked for review (Art 35).
    ReviewRequested {
        /// Why.
        reason: Text,
        /// When the review opinion is due.
        review_due: Deadline,
    },
    /// A hearing was held; its days do not count (Art 35–36).
    HearingHeld {
        /// Calendar days the hearing took.
        days: u32,
        /// The review or re-review deadline moved out by those days; its
        /// stage says which.
        due: Deadline,
    },
    /// The review opinion was issued (Art 35).
    ReviewOpinionIssued {
        /// What it decided.
        outcome: OpinionOutcome,
        /// What it decided about the handling opinion (维持 / 变更 / 撤销 /
        /// 责令重办), if the body said; absent from earlier histories.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<ReviewDecision>,
        /// The opinion in brief.
        summary: Text,
        /// Until when re-review may be requested, counted from the
        /// opinion's issue: only histories recorded before deliveries were
        /// carry it; the window now runs from the delivery (Art 36).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re_review_request_due: Option<Deadline>,
        /// Whether the opinion came after its deadline.
        late: bool,
    },
    /// The petitioner asked for re-review (Art 36).
    ReReviewRequested {
        /// Why.
        reason: Text,
        /// When the re-review opinion is due.
        re_review_due: Deadline,
    },
    /// The re-review opinion was issued (Art 36).
    ReReviewOpinionIssued {
        /// What it decided.
        outcome: OpinionOutcome,
        /// What it decided about the review opinion, if the body said;
        /// absent from earlier histories.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<ReviewDecision>,
        /// The opinion in brief.
        summary: Text,
        /// Whether the opinion came after its deadline.
        late: bool,
    },
    /// A written reply reached the petitioner (送达).
    ReplyDelivered {
        /// Which reply.
        reply: Reply,
        /// The local day the petitioner received it.
        delivered_on: NaiveDate,
        /// How it reached them.
        method: DeliveryMethod,
        /// The request window the delivery opened: review after the
        /// opinion (Art 35), re-review after the review opinion (Art 36),
        /// 30 days from `delivered_on`. None after the re-review opinion,
        /// which is final, or once the request has been made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_due: Option<Deadline>,
    },
    /// The petitioner's satisfaction with the handling was recorded.
    PetitionEvaluated {
        /// How satisfied the petitioner was.
        satisfaction: Satisfaction,
        /// Remarks from the evaluation.
        note: Option<Text>,
    },
    /// An official was named responsible for the petition (责任人, 包案领导;
    /// Art 44–46). The status does not change.
    OfficialAssigned {
        /// The official now responsible.
        official: Name,
        /// The official responsible before, if any.
        previous: Option<Name>,
    },
    /// The petitioner's identity was erased at their request (Personal
    /// Information Protection Law Art 47): name and contact read as
    /// [`Name::erased`] and none from then on. The status does not change.
    PetitionerErased {},
    /// The petition became final (Art 36–37).
    PetitionFinalised {
        /// Why.
        basis: FinalBasis,
    },
    /// A running clock reached a warning threshold. The status does not
    /// change.
    DeadlineWarned {
        /// The stage whose clock it is.
        stage: Stage,
        /// The threshold reached, in percent of the allowed time: 50 or 75.
        threshold_percent: u8,
        /// The clock's due time.
        due: DateTime<Utc>,
        /// Who owed the stage when the warning was recorded (Art 44–46).
        holder: Holder,
    },
    /// A running clock passed its due time. The status does not change.
    DeadlineBreached {
        /// The stage whose clock it is.
        stage: Stage,
        /// The due time passed.
        due: DateTime<Utc>,
        /// Who owed the stage when the breach was recorded (Art 44–46).
        holder: Holder,
    },
    /// Provisional deadlines were counted again once the holiday schedule
    /// of the year they ran into was loaded: each names its stage, the due
    /// time it had and the one it has now. Warnings and breaches recorded
    /// for the old due time stay recorded. The status does not change.
    DeadlinesRecomputed {
        /// The deadlines that moved or stopped being provisional.
        deadlines: Vec<RecomputedDeadline>,
    },
}

impl PetitionChange {
    /// The variant's name, which is also the stored event type.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PetitionReceived { .. } => "PetitionReceived",
            Self::SkippedLevelVisitRecorded { .. } => "SkippedLevelVisitRecorded",
            Self::GroupHeadcountRecorded { .. } => "GroupHeadcountRecorded",
            Self::PetitionForwarded { .. } => "PetitionForwarded",
            Self::PetitionAssigned { .. } => "PetitionAssigned",
            Self::PetitionDiverted { .. } => "PetitionDiverted",
            Self::PetitionNotAccepted { .. } => "PetitionNotAccepted",
            Self::PetitionObjected { .. } => "PetitionObjected",
            Self::PetitionAccepted { .. } => "PetitionAccepted",
            Self::HandlingExtended { .. } => "HandlingExtended",
            Self::OpinionIssued { .. } => "OpinionIssued",
            Self::ReviewRequested { .. } => "ReviewRequested",
            Self::HearingHeld { .. } => "HearingHeld",
            Self::ReviewOpinionIssued { .. } => "ReviewOpinionIssued",
            Self::ReReviewRequested { .. } => "ReReviewRequested",
            Self::ReReviewOpinionIssued { .. } => "ReReviewOpinionIssued",
            Self::ReplyDelivered { .. } => "ReplyDelivered",
            Self::PetitionEvaluated { .. } => "PetitionEvaluated",
            Self::OfficialAssigned { .. } => "OfficialAssigned",
            Self::PetitionerErased {} => "PetitionerErased",
            Self::PetitionFinalised { .. } => "PetitionFinalised",
            Self::DeadlineWarned { .. } => "DeadlineWarned",
            Self::DeadlineBreached { .. } => "DeadlineBreached",
            Self::DeadlinesRecomputed { .. } => "DeadlinesRecomputed",
        }
    }
}

impl DomainEvent for PetitionEvent {
    fn event_type(&self) -> String {
        self.change.name().to_owned()
    }

    fn event_version(&self) -> String {
        crate::dispute::version_of(EVENT_VERSIONS, self.change.name())
    }
}

/// The version each petition event type is written at now. All are still
/// at their first version: fields added since were added as optional, with
/// a default that says "not recorded then", so the first shape reads as
/// the current one. Bump a type's version when its shape changes
/// otherwise, and add the step from the version before to the registry
/// ([`crate::upcast::PETITION`]).
pub const EVENT_VERSIONS: &[(&str, u32)] = &[
    ("PetitionReceived", 1),
    ("SkippedLevelVisitRecorded", 1),
    ("GroupHeadcountRecorded", 1),
    ("PetitionForwarded", 1),
    ("PetitionAssigned", 1),
    ("PetitionDiverted", 1),
    ("PetitionNotAccepted", 1),
    ("PetitionObjected", 1),
    ("PetitionAccepted", 1),
    ("HandlingExtended", 1),
    ("OpinionIssued", 1),
    ("ReviewRequested", 1),
    ("HearingHeld", 1),
    ("ReviewOpinionIssued", 1),
    ("ReReviewRequested", 1),
    ("ReReviewOpinionIssued", 1),
    ("ReplyDelivered", 1),
    ("PetitionEvaluated", 1),
    ("OfficialAssigned", 1),
    ("PetitionerErased", 1),
    ("PetitionFinalised", 1),
    ("DeadlineWarned", 1),
    ("DeadlineBreached", 1),
    ("DeadlinesRecomputed", 1),
];
