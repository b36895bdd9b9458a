//! What happened to a dispute. Events are the storage contract: they carry
//! every value a reader needs, deadlines included, so nobody recomputes them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::command::{
    AgreementForm, EscalationReason, MediationBody, Party, PartyRole, Performance, Satisfaction,
    TerminationReason,
};
use crate::policy::{Deadline, Stage};
use crate::recompute::RecomputedDeadline;
use crate::sla::Holder;
use crate::upcast::{StoredEvent, Upcaster, beside};
use crate::values::{Actor, DisputeCategory, DivisionCode, LegalChannel, Level, Name, Risk, Text};

wire_enum!(
    /// How the handling of a dispute ended, as counted at closure.
    Outcome, "outcome" {
        /// The parties reached an agreement.
        Agreement = "agreement",
        /// Mediation was refused or ended without agreement.
        Terminated = "terminated",
        /// The dispute was referred to a legal channel.
        Referred = "referred",
    }
);

/// One thing that happened to a dispute: when, by whom, and what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisputeEvent {
    /// When the request that caused it was handled.
    pub at: DateTime<Utc>,
    /// Who made that request.
    pub by: Actor,
    /// What changed.
    pub change: DisputeChange,
}

/// The changes a dispute goes through, named in the past tense.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DisputeChange {
    /// A grid worker reported the dispute.
    DisputeReported {
        /// Where it was found.
        division: DivisionCode,
        /// The grid, if any.
        grid: Option<Name>,
        /// What it is about.
        summary: Text,
        /// When it must be registered by.
        registration_due: Deadline,
    },
    /// The dispute was registered as a case at a handling level.
    DisputeRegistered {
        /// The division holding the case.
        division: DivisionCode,
        /// Its level: the intake level of the case.
        level: Level,
        /// What the dispute is about.
        category: DisputeCategory,
        /// The risk grading.
        risk: Risk,
        /// The facts as registered.
        summary: Text,
        /// The parties.
        parties: Vec<Party>,
        /// How long this level may hold the case.
        handling_due: Deadline,
    },
    /// The case was sent to a mediation body; earlier consents no longer
    /// count, nor does an agreement this new mediation replaces (Art 33).
    DisputeDispatched {
        /// The body that will mediate.
        body: MediationBody,
        /// The mediator in charge, if named.
        mediator: Option<Name>,
        /// When mediation should be finished.
        mediation_due: Deadline,
    },
    /// A party agreed to be mediated.
    PartyConsented {
        /// Which party.
        party: PartyRole,
    },
    /// Both parties have agreed, so mediation began.
    MediationStarted {},
    /// A party refused mediation, which therefore cannot take place (Art 17).
    MediationRefused {
        /// Which party refused.
        party: PartyRole,
        /// The reason given, if any.
        reason: Option<Text>,
    },
    /// A mediation session took place.
    MediationSessionHeld {
        /// The session's number in the current mediation, from 1.
        session: u32,
        /// What happened.
        summary: Text,
    },
    /// The parties reached an agreement.
    AgreementReached {
        /// Written or oral.
        form: AgreementForm,
        /// The terms.
        terms: Text,
        /// The last moment to apply for judicial confirmation; only a
        /// written agreement has one.
        confirmation_window: Option<Deadline>,
    },
    /// The parties agreed to give the mediation more time; its due time
    /// moved, its start did not.
    MediationExtended {
        /// Calendar days added.
        days: u32,
        /// Which extension of the current mediation this is, from 1.
        extension: u32,
        /// Why the parties wanted more time, and how they agreed.
        reason: Text,
        /// The mediation deadline in force before.
        old_due: Deadline,
        /// The mediation deadline now: `days` on from `old_due`.
        new_due: Deadline,
    },
    /// The mediation ended without agreement.
    MediationTerminated {
        /// Why it ended.
        reason: TerminationReason,
        /// The mediator's note.
        note: Text,
        /// Whether the parties were told their legal routes (Art 26).
        legal_routes_explained: bool,
    },
    /// The case moved to the division directly above.
    DisputeEscalated {
        /// Why it moved.
        reason: EscalationReason,
        /// The division that held it.
        from_division: DivisionCode,
        /// That division's level.
        from_level: Level,
        /// The division that holds it now.
        to_division: DivisionCode,
        /// That division's level.
        to_level: Level,
        /// How long the new level may hold the case.
        handling_due: Deadline,
    },
    /// A higher division took the case over.
    DisputeTakenOver {
        /// The division that held it.
        from_division: DivisionCode,
        /// That division's level.
        from_level: Level,
        /// The division that holds it now.
        to_division: DivisionCode,
        /// That division's level.
        to_level: Level,
        /// How long the new level may hold the case.
        handling_due: Deadline,
    },
    /// The case was sent down to a lower division.
    DisputeSentDown {
        /// The division that held it.
        from_division: DivisionCode,
        /// That division's level.
        from_level: Level,
        /// The division that holds it now.
        to_division: DivisionCode,
        /// That division's level.
        to_level: Level,
        /// How long the new level may hold the case.
        handling_due: Deadline,
    },
    /// The case left mediation for a legal channel.
    DisputeReferred {
        /// Where it went.
        channel: LegalChannel,
        /// Why, and what the parties were told.
        note: Text,
    },
    /// The parties applied to a court to confirm their written agreement.
    /// Version 2; version 1, stored before acceptance was a step of its
    /// own, carried the ruling deadline counted from the application and is
    /// read as this event and a [`DisputeChange::JudicialConfirmationAccepted`]
    /// at the same moment (see [`UPCASTERS`]).
    JudicialConfirmationRequested {
        /// The court applied to.
        court: Name,
        /// When the court must decide whether to accept (法释〔2011〕5号
        /// Art 4); absent from applications stored as version 1, which the
        /// court is read to have accepted at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        acceptance_due: Option<Deadline>,
    },
    /// The court accepted the application (受理); its ruling period starts.
    JudicialConfirmationAccepted {
        /// When the court's ruling is due (法释〔2011〕5号 Art 5).
        ruling_due: Deadline,
        /// The court's remarks, if any.
        note: Option<Text>,
    },
    /// The court did not accept the application (不予受理, Art 4); nothing is
    /// pending before it any more, and the agreement stands unconfirmed.
    JudicialConfirmationNotAccepted {
        /// The court's grounds.
        note: Option<Text>,
    },
    /// The court extended its ruling period (Art 5); the due time moved.
    JudicialConfirmationExtended {
        /// Calendar days added.
        days: u32,
        /// Which extension of the ruling period this is, from 1.
        extension: u32,
        /// The special circumstances the court gave.
        reason: Text,
        /// The ruling deadline in force before.
        old_due: Deadline,
        /// The ruling deadline now: `days` on from `old_due`.
        new_due: Deadline,
    },
    /// The court ruled on the application.
    JudicialConfirmationRuled {
        /// Whether it confirmed the agreement.
        confirmed: bool,
        /// The court's reasons or other remarks.
        note: Option<Text>,
    },
    /// A follow-up visit found how far the agreement was carried out.
    PerformanceFollowedUp {
        /// What was found.
        performance: Performance,
        /// Details of the visit.
        note: Text,
    },
    /// A supervisor reviewed the handling; if not approved the case stays
    /// where it was, for rework.
    DisputeReviewed {
        /// Whether the handling was approved.
        approved: bool,
        /// The reviewer's remarks.
        note: Option<Text>,
    },
    /// The case was closed.
    DisputeClosed {
        /// How the handling ended.
        outcome: Outcome,
        /// The level the case was registered at.
        intake_level: Level,
        /// The level that closed it.
        resolved_level: Level,
        /// The division that closed it.
        resolved_division: DivisionCode,
        /// Whether it was closed at or below its intake level: the numerator
        /// of the "resolved at the lowest level" rate.
        resolved_at_or_below_intake: bool,
    },
    /// The parties' satisfaction was recorded.
    DisputeEvaluated {
        /// How satisfied they were.
        satisfaction: Satisfaction,
        /// Remarks from the evaluation.
        note: Option<Text>,
    },
    /// A closed case was opened again where it was closed.
    DisputeReopened {
        /// Why.
        reason: Text,
        /// The division that holds the case again.
        division: DivisionCode,
        /// That division's level.
        level: Level,
        /// How long this level may hold the case this time.
        handling_due: Deadline,
    },
    /// An official was named responsible for the case (责任人, 包案领导).
    /// The status does not change.
    OfficialAssigned {
        /// The official now responsible.
        official: Name,
        /// The official responsible before, if any.
        previous: Option<Name>,
    },
    /// Parties' identities were erased at their request (Personal
    /// Information Protection Law Art 47): the parties at these places of
    /// the list are named [`Name::erased`] from then on. The status does
    /// not change.
    PartiesErased {
        /// Places in the list of parties, from 0.
        parties: Vec<u32>,
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
        /// Who owed the stage when the warning was recorded.
        holder: Holder,
    },
    /// A running clock passed its due time. The status does not change; a
    /// jurisdiction may escalate the case in response
    /// ([`crate::policy::DeadlinePolicy::escalates_on_breach`]).
    DeadlineBreached {
        /// The stage whose clock it is.
        stage: Stage,
        /// The due time passed.
        due: DateTime<Utc>,
        /// Who owed the stage when the breach was recorded.
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

impl DisputeChange {
    /// The variant's name, used as the stored event type.
    pub fn name(&self) -> &'static str {
        match self {
            Self::DisputeReported { .. } => "DisputeReported",
            Self::DisputeRegistered { .. } => "DisputeRegistered",
            Self::DisputeDispatched { .. } => "DisputeDispatched",
            Self::PartyConsented { .. } => "PartyConsented",
            Self::MediationStarted {} => "MediationStarted",
            Self::MediationRefused { .. } => "MediationRefused",
            Self::MediationSessionHeld { .. } => "MediationSessionHeld",
            Self::AgreementReached { .. } => "AgreementReached",
            Self::MediationExtended { .. } => "MediationExtended",
            Self::MediationTerminated { .. } => "MediationTerminated",
            Self::DisputeEscalated { .. } => "DisputeEscalated",
            Self::DisputeTakenOver { .. } => "DisputeTakenOver",
            Self::DisputeSentDown { .. } => "DisputeSentDown",
            Self::DisputeReferred { .. } => "DisputeReferred",
            Self::JudicialConfirmationRequested { .. } => "JudicialConfirmationRequested",
            Self::JudicialConfirmationAccepted { .. } => "JudicialConfirmationAccepted",
            Self::JudicialConfirmationNotAccepted { .. } => "JudicialConfirmationNotAccepted",
            Self::JudicialConfirmationExtended { .. } => "JudicialConfirmationExtended",
            Self::JudicialConfirmationRuled { .. } => "JudicialConfirmationRuled",
            Self::PerformanceFollowedUp { .. } => "PerformanceFollowedUp",
            Self::DisputeReviewed { .. } => "DisputeReviewed",
            Self::DisputeClosed { .. } => "DisputeClosed",
            Self::DisputeEvaluated { .. } => "DisputeEvaluated",
            Self::DisputeReopened { .. } => "DisputeReopened",
            Self::OfficialAssigned { .. } => "OfficialAssigned",
            Self::PartiesErased { .. } => "PartiesErased",
            Self::DeadlineWarned { .. } => "DeadlineWarned",
            Self::DeadlineBreached { .. } => "DeadlineBreached",
            Self::DeadlinesRecomputed { .. } => "DeadlinesRecomputed",
        }
    }
}

impl cqrs_es::DomainEvent for DisputeEvent {
    fn event_type(&self) -> String {
        self.change.name().to_owned()
    }

    fn event_version(&self) -> String {
        version_of(EVENT_VERSIONS, self.change.name())
    }
}

/// The version each event type is written at now. Bump a type's version
/// when its shape changes, and add the step from the version before to
/// [`UPCASTERS`].
pub const EVENT_VERSIONS: &[(&str, u32)] = &[
    ("DisputeReported", 1),
    ("DisputeRegistered", 1),
    ("DisputeDispatched", 1),
    ("PartyConsented", 1),
    ("MediationStarted", 1),
    ("MediationRefused", 1),
    ("MediationSessionHeld", 1),
    ("AgreementReached", 1),
    ("MediationExtended", 1),
    ("MediationTerminated", 1),
    ("DisputeEscalated", 1),
    ("DisputeTakenOver", 1),
    ("DisputeSentDown", 1),
    ("DisputeReferred", 1),
    // 2: the ruling deadline left the application for the acceptance.
    ("JudicialConfirmationRequested", 2),
    ("JudicialConfirmationAccepted", 1),
    ("JudicialConfirmationNotAccepted", 1),
    ("JudicialConfirmationExtended", 1),
    ("JudicialConfirmationRuled", 1),
    ("PerformanceFollowedUp", 1),
    ("DisputeReviewed", 1),
    ("DisputeClosed", 1),
    ("DisputeEvaluated", 1),
    ("DisputeReopened", 1),
    ("OfficialAssigned", 1),
    ("PartiesErased", 1),
    ("DeadlineWarned", 1),
    ("DeadlineBreached", 1),
    ("DeadlinesRecomputed", 1),
];

/// `event_type`'s current version in `versions`, as stored.
pub(crate) fn version_of(versions: &[(&str, u32)], event_type: &str) -> String {
    versions
        .iter()
        .find(|(t, _)| *t == event_type)
        .map_or(1, |(_, v)| *v)
        .to_string()
}

/// The steps from older shapes of dispute events.
pub const UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "JudicialConfirmationRequested",
    from: 1,
    upcast: confirmation_requested_v1,
}];

/// `JudicialConfirmationRequested` version 1 → version 2, and the
/// acceptance it implied.
///
/// Until the court's acceptance became a step of its own (受理, 法释〔2011〕5号
/// Art 4), the engine started the court's ruling period at the application
/// and stored its deadline on it (`{court, ruling_due}`), which is to say
/// it took every application as accepted on arrival. Since then the
/// application carries the acceptance deadline and the ruling deadline
/// arrives with `JudicialConfirmationAccepted`. Version 1 is therefore read
/// as the application without an acceptance deadline, followed by an
/// acceptance at the same moment, by the same actor, carrying the ruling
/// deadline it stored: the state, the clocks and the history read the same
/// as before, and no reader needs to know that a ruling deadline once sat
/// on the application. Version 1 also covers applications stored after
/// acceptance became a step but before this version existed (`{court,
/// acceptance_due}`, no `ruling_due`): those are already version 2's shape.
fn confirmation_requested_v1(mut payload: Value) -> Result<Vec<StoredEvent>, String> {
    const TYPE: &str = "JudicialConfirmationRequested";
    let body = payload
        .get_mut("change")
        .and_then(|c| c.get_mut(TYPE))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("no change.{TYPE} object"))?;
    let ruling_due = body.remove("ruling_due").filter(|v| !v.is_null());
    let accepted = ruling_due.map(|ruling_due| StoredEvent {
        event_type: "JudicialConfirmationAccepted".to_owned(),
        event_version: "1".to_owned(),
        payload: beside(
            &payload,
            "JudicialConfirmationAccepted",
            serde_json::json!({ "ruling_due": ruling_due, "note": null }),
        ),
    });
    let request = StoredEvent {
        event_type: TYPE.to_owned(),
        event_version: "2".to_owned(),
        payload,
    };
    Ok(std::iter::once(request).chain(accepted).collect())
}
