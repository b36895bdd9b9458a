//! What may be asked of a dispute, and the value types those requests carry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DisputeStatus;
use crate::policy::Stage;
use crate::values::{
    Actor, AgencyId, DisputeCategory, DivisionCode, LegalChannel, Level, MediationKind, Name, Risk,
    Text,
};

wire_enum!(
    /// The side a party takes in a dispute.
    PartyRole, "party_role" {
        /// The party who brought the dispute (申请人).
        Applicant = "applicant",
        /// The party the dispute is brought against (被申请人).
        Respondent = "respondent",
    }
);

wire_enum!(
    /// The form of a mediation agreement (People's Mediation Law Art 29, 30).
    AgreementForm, "agreement_form" {
        /// Signed by the parties and sealed by the committee (Art 29); only a
        /// written agreement can be judicially confirmed.
        Written = "written",
        /// Recorded by the mediator but not written up (Art 30).
        Oral = "oral",
    }
);

wire_enum!(
    /// Why a mediation ended without agreement.
    TerminationReason, "termination_reason" {
        /// The parties could not agree; the mediator ends it (Art 26).
        NoAgreement = "no_agreement",
        /// A party asked to stop the mediation (Art 23).
        PartyWithdrew = "party_withdrew",
        /// Any other reason, explained in the note.
        Other = "other",
    }
);

wire_enum!(
    /// Why a dispute moves one level up the ladder.
    EscalationReason, "escalation_reason" {
        /// The current level's handling period ran out.
        TimeExpired = "time_expired",
        /// Mediation at the current level failed.
        MediationFailed = "mediation_failed",
        /// The risk is red and needs a higher level at once.
        RedRisk = "red_risk",
        /// The parties sit in two jurisdictions; their common superior decides.
        CrossJurisdiction = "cross_jurisdiction",
    }
);

wire_enum!(
    /// How far an agreement was carried out, as found at a follow-up visit.
    Performance, "performance" {
        /// Fully carried out.
        Performed = "performed",
        /// Carried out in part.
        PartlyPerformed = "partly_performed",
        /// Not carried out.
        NotPerformed = "not_performed",
    }
);

wire_enum!(
    /// How satisfied the parties said they were at the evaluation.
    Satisfaction, "satisfaction" {
        /// Satisfied (满意).
        Satisfied = "satisfied",
        /// Basically satisfied (基本满意).
        BasicallySatisfied = "basically_satisfied",
        /// Dissatisfied (不满意).
        Dissatisfied = "dissatisfied",
    }
);

/// A party to a dispute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// Which side the party is on.
    pub role: PartyRole,
    /// The party's name.
    pub name: Name,
}

/// The body a dispute is dispatched to for mediation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediationBody {
    /// The agency's identifier.
    pub id: AgencyId,
    /// The agency's name.
    pub name: Name,
    /// Which of the four kinds of mediation it offers.
    pub kind: MediationKind,
}

/// A request to a dispute: who asks, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisputeCommand {
    /// Who asks; recorded on every event the request produces.
    pub by: Actor,
    /// What is asked.
    pub action: DisputeAction,
}

/// The things that may be asked of a dispute, one per step of the case flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeAction {
    /// A grid worker reports a dispute found in a division.
    Report {
        /// The division (usually a village) where it was found.
        division: DivisionCode,
        /// The grid inside the division, if the village is gridded.
        grid: Option<Name>,
        /// What the dispute is about.
        summary: Text,
    },
    /// The handling level registers the dispute as a case.
    Register {
        /// The division that takes the case.
        division: DivisionCode,
        /// The level of that division; must match the division code.
        level: Level,
        /// What the dispute is about.
        category: DisputeCategory,
        /// The risk grading.
        risk: Risk,
        /// The facts as registered.
        summary: Text,
        /// The parties: at least one applicant and one respondent.
        parties: Vec<Party>,
    },
    /// The case is sent to a mediation body. From an agreement the court
    /// would not confirm, or the latest review returned, this sets the
    /// agreement aside so the parties can change it or reach a new one
    /// through mediation (People's Mediation Law Art 33).
    Dispatch {
        /// The body that will mediate.
        body: MediationBody,
        /// The mediator in charge, if already named.
        mediator: Option<Name>,
    },
    /// A party says whether it agrees to be mediated (Art 17).
    RecordConsent {
        /// Which party.
        party: PartyRole,
        /// Whether it agrees.
        consents: bool,
        /// The party's reason, usually given with a refusal.
        reason: Option<Text>,
    },
    /// A mediation session took place.
    HoldSession {
        /// What happened at the session.
        summary: Text,
    },
    /// The parties reached an agreement.
    ReachAgreement {
        /// Written or oral.
        form: AgreementForm,
        /// The terms agreed.
        terms: Text,
    },
    /// The parties agree to give the mediation more time. Recorded by the
    /// mediator as the parties' joint decision; allowed while mediating,
    /// as often and by as many calendar days as the policy's
    /// `[extensions.mediation]` allows, and only before the mediation's
    /// due time: once the period has run out its breach stays on record.
    ExtendMediation {
        /// Calendar days added, counted on from the due time in force.
        days: u32,
        /// Why the parties want more time, and how their agreement was
        /// recorded.
        reason: Text,
    },
    /// The mediation ends without agreement.
    TerminateMediation {
        /// Why it ended.
        reason: TerminationReason,
        /// The mediator's note.
        note: Text,
        /// Whether the parties were told their legal routes (Art 26).
        legal_routes_explained: bool,
    },
    /// The case moves to the division directly above. From an agreement
    /// (one the review returned or the court did not confirm) this sets
    /// the agreement aside so the higher level can mediate afresh.
    Escalate {
        /// Why it moves.
        reason: EscalationReason,
    },
    /// A higher division takes the case over.
    TakeOver {
        /// The division taking it; must contain the current one.
        division: DivisionCode,
    },
    /// The case is sent down to a lower division.
    SendDown {
        /// The division receiving it; must lie inside the current one.
        division: DivisionCode,
    },
    /// The case leaves mediation for a legal channel (诉访分离). From an
    /// agreement this sets the agreement aside (Art 33: if the court does
    /// not confirm it, the parties may go to court).
    ReferToLegalChannel {
        /// Where it goes.
        channel: LegalChannel,
        /// Why, and what the parties were told.
        note: Text,
    },
    /// The parties apply to a court to confirm a written agreement (Art 33).
    RequestJudicialConfirmation {
        /// The court applied to.
        court: Name,
    },
    /// The court's decision whether to accept the application (受理, within
    /// 3 days: 法释〔2011〕5号 Art 4). Acceptance starts the ruling period;
    /// an application not accepted is no longer pending, and the parties
    /// may apply again while their window is open.
    AcceptJudicialConfirmation {
        /// Whether the court accepted the application.
        accepted: bool,
        /// The court's remarks; with a refusal, its grounds.
        note: Option<Text>,
    },
    /// The court extends its ruling period (法释〔2011〕5号 Art 5: in
    /// special circumstances, with its president's approval), as often and
    /// by as many calendar days as the policy's
    /// `[extensions.judicial_confirmation_ruling]` allows, before the
    /// ruling is due.
    ExtendJudicialConfirmation {
        /// Calendar days added, counted on from the due time in force.
        days: u32,
        /// The special circumstances the court gave.
        reason: Text,
    },
    /// The court's ruling on the application, once it has accepted it.
    RuleJudicialConfirmation {
        /// Whether the court confirmed the agreement.
        confirmed: bool,
        /// The court's reasons or other remarks.
        note: Option<Text>,
    },
    /// A follow-up visit found how far the agreement was carried out. Allowed
    /// while agreed, reviewed or closed, but only when the case ended in an
    /// agreement; it never changes the status.
    RecordFollowUp {
        /// What was found.
        performance: Performance,
        /// Details of the visit.
        note: Text,
    },
    /// A supervisor reviews the handling before closure (审核).
    Review {
        /// Whether the handling is approved; if not, the case goes back for rework.
        approved: bool,
        /// The reviewer's remarks.
        note: Option<Text>,
    },
    /// The case is closed after an approving review.
    Close {},
    /// The parties' satisfaction is recorded after closure.
    Evaluate {
        /// How satisfied they were.
        satisfaction: Satisfaction,
        /// Remarks from the evaluation.
        note: Option<Text>,
    },
    /// A closed case is opened again at the division that closed it.
    Reopen {
        /// Why it is reopened.
        reason: Text,
    },
    /// Names the official responsible for the case (责任人, or the leader
    /// who takes charge of it, 包案领导), who is named from then on on every
    /// clock, warning and breach, so that who held a case when it went
    /// overdue has an answer ("明确责任"). Allowed while the case is open;
    /// naming the official already named writes nothing.
    AssignOfficial {
        /// The official, by name.
        official: Name,
    },
    /// Erases parties' identities at their request (the right to deletion,
    /// Personal Information Protection Law Art 47): the parties at these
    /// places of the registered list are named [`Name::erased`] from then
    /// on. Allowed in every status; places already erased or beyond the
    /// list (none before registration) write nothing.
    EraseParties {
        /// Places in the list of parties, from 0.
        parties: Vec<u32>,
    },
    /// A timer found that a running clock has reached a warning threshold.
    /// Refused if no running clock has this stage and due time, or if the
    /// threshold has not been reached yet; a warning already recorded for
    /// the same stage, due time and threshold is accepted and writes
    /// nothing, so a timer may retry freely.
    RecordDeadlineWarning {
        /// The stage whose clock is meant.
        stage: Stage,
        /// The threshold reached, in percent of the allowed time: 50 or 75.
        threshold_percent: u8,
        /// The clock's due time, as the timer knew it; a clock since
        /// re-timed refuses a stale warning.
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

impl DisputeAction {
    /// The action in words, as it appears in error messages ("cannot {name}: ...").
    pub fn name(&self) -> &'static str {
        match self {
            Self::Report { .. } => "report",
            Self::Register { .. } => "register",
            Self::Dispatch { .. } => "dispatch",
            Self::RecordConsent { .. } => "record consent",
            Self::HoldSession { .. } => "hold a mediation session",
            Self::ReachAgreement { .. } => "record an agreement",
            Self::ExtendMediation { .. } => "extend mediation",
            Self::TerminateMediation { .. } => "terminate mediation",
            Self::Escalate { .. } => "escalate",
            Self::TakeOver { .. } => "take over",
            Self::SendDown { .. } => "send down",
            Self::ReferToLegalChannel { .. } => "refer to a legal channel",
            Self::RequestJudicialConfirmation { .. } => "request judicial confirmation",
            Self::AcceptJudicialConfirmation { .. } => "decide on accepting judicial confirmation",
            Self::ExtendJudicialConfirmation { .. } => "extend the judicial confirmation ruling",
            Self::RuleJudicialConfirmation { .. } => "rule on judicial confirmation",
            Self::RecordFollowUp { .. } => "record a follow-up",
            Self::Review { .. } => "review",
            Self::Close {} => "close",
            Self::Evaluate { .. } => "evaluate",
            Self::Reopen { .. } => "reopen",
            Self::AssignOfficial { .. } => "assign a responsible official",
            Self::EraseParties { .. } => "erase parties' identities",
            Self::RecordDeadlineWarning { .. } => "record a deadline warning",
            Self::RecordDeadlineBreach { .. } => "record a deadline breach",
            Self::RecomputeDeadlines {} => "recompute deadlines",
        }
    }

    /// The statuses in which this action is allowed. Anywhere else the
    /// dispute refuses it with [`super::DisputeError::NotAllowed`].
    pub fn allowed_from(&self) -> &'static [DisputeStatus] {
        use DisputeStatus as S;
        match self {
            Self::Report { .. } => &[S::New],
            Self::Register { .. } => &[S::New, S::Reported],
            // From an agreement the dispute also requires that it cannot
            // stand as it is: refused by the court or returned by review.
            Self::Dispatch { .. } => &[S::Registered, S::Agreed],
            Self::RecordConsent { .. } => &[S::Dispatched],
            Self::HoldSession { .. }
            | Self::ReachAgreement { .. }
            | Self::ExtendMediation { .. } => &[S::Mediating],
            Self::TerminateMediation { .. } => &[S::Dispatched, S::Mediating],
            // An agreement the review returned, or the court would not
            // confirm, may still go up or to a legal channel (People's
            // Mediation Law Art 33); a take-over is for cases still open.
            Self::Escalate { .. } => &[
                S::Registered,
                S::Dispatched,
                S::Mediating,
                S::Agreed,
                S::Terminated,
            ],
            Self::TakeOver { .. } => &[S::Registered, S::Dispatched, S::Mediating, S::Terminated],
            Self::SendDown { .. } => &[S::Registered, S::Dispatched],
            Self::ReferToLegalChannel { .. } => {
                &[S::Registered, S::Dispatched, S::Agreed, S::Terminated]
            }
            Self::RequestJudicialConfirmation { .. }
            | Self::AcceptJudicialConfirmation { .. }
            | Self::ExtendJudicialConfirmation { .. }
            | Self::RuleJudicialConfirmation { .. } => &[S::Agreed],
            // Follow-up visits continue after review and closure; the
            // dispute also requires that the case ended in an agreement.
            Self::RecordFollowUp { .. } => &[S::Agreed, S::Reviewed, S::Closed],
            Self::Review { .. } => &[S::Agreed, S::Terminated, S::Referred],
            Self::Close {} => &[S::Reviewed],
            Self::Evaluate { .. } | Self::Reopen { .. } => &[S::Closed],
            Self::AssignOfficial { .. } => &[
                S::Reported,
                S::Registered,
                S::Dispatched,
                S::Mediating,
                S::Agreed,
                S::Terminated,
                S::Referred,
                S::Reviewed,
            ],
            // Every status in which some clock can run (see
            // `Dispute::running_clocks`); the dispute also requires that the
            // named clock is running.
            Self::RecordDeadlineWarning { .. } | Self::RecordDeadlineBreach { .. } => &[
                S::Reported,
                S::Registered,
                S::Dispatched,
                S::Mediating,
                S::Agreed,
                S::Terminated,
            ],
            // A status without provisional deadlines recomputes nothing;
            // a dispute without parties erases none.
            Self::RecomputeDeadlines {} | Self::EraseParties { .. } => &[
                S::New,
                S::Reported,
                S::Registered,
                S::Dispatched,
                S::Mediating,
                S::Agreed,
                S::Terminated,
                S::Referred,
                S::Reviewed,
                S::Closed,
            ],
        }
    }
}
