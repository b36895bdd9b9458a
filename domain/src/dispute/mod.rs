//! The dispute aggregate: one case of grassroots mediation, from a grid
//! worker's report through registration, dispatch, mediation, review and
//! closure to the parties' evaluation, moving up and down the ladder of
//! village, town and district on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::policy::{Deadline, ExtensionRule, Stage};
use crate::recompute::{self, Basis};
use crate::services::Services;
use crate::sla::{self, DeadlineMark, Holder, RunningClock, Threshold, TimerRefusal};
use crate::values::{DisputeCategory, DivisionCode, LegalChannel, Level, Name, Risk, Text};

mod command;
mod error;
mod event;
#[cfg(test)]
mod recompute_tests;
#[cfg(test)]
mod tests;

pub use command::{
    AgreementForm, DisputeAction, DisputeCommand, EscalationReason, MediationBody, Party,
    PartyRole, Performance, Satisfaction, TerminationReason,
};
pub use error::DisputeError;
pub(crate) use event::version_of;
pub use event::{DisputeChange, DisputeEvent, EVENT_VERSIONS, Outcome, UPCASTERS};

wire_enum!(
    /// Where a dispute stands in the case flow. `Display` completes "the
    /// dispute is ..." for error messages; `as_str` gives the stored name.
    #[derive(Default)]
    DisputeStatus, "status", own_display {
        /// Nothing has happened yet.
        #[default]
        New = "new",
        /// Reported by a grid worker, awaiting registration.
        Reported = "reported",
        /// Registered at a handling level, awaiting dispatch.
        Registered = "registered",
        /// Sent to a mediation body, awaiting both parties' consent.
        Dispatched = "dispatched",
        /// Both parties consented; mediation is under way.
        Mediating = "mediating",
        /// The parties reached an agreement.
        Agreed = "agreed",
        /// Mediation was refused or ended without agreement.
        Terminated = "terminated",
        /// Referred to a legal channel.
        Referred = "referred",
        /// The handling was approved on review; ready to close.
        Reviewed = "reviewed",
        /// Closed.
        Closed = "closed",
    }
);

impl fmt::Display for DisputeStatus {
    /// A phrase that completes "the dispute is ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::New => "not yet reported or registered",
            Self::Reported => "reported but not yet registered",
            Self::Registered => "registered and awaiting dispatch",
            Self::Dispatched => "dispatched and awaiting both parties' consent",
            Self::Mediating => "in mediation",
            Self::Agreed => "settled by agreement",
            Self::Terminated => "terminated without agreement",
            Self::Referred => "referred to a legal channel",
            Self::Reviewed => "reviewed and ready to close",
            Self::Closed => "closed",
        })
    }
}

/// The agreement the parties reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    /// Written or oral.
    pub form: AgreementForm,
    /// The terms.
    pub terms: Text,
    /// The last moment to apply for judicial confirmation (written agreements only).
    pub confirmation_window: Option<Deadline>,
}

wire_enum!(
    /// Where an application for judicial confirmation stands before the
    /// court (法释〔2011〕5号 Art 4–5).
    ConfirmationStep, "confirmation_step" {
        /// The court has yet to decide whether to accept it.
        AwaitingAcceptance = "awaiting_acceptance",
        /// The court did not accept it (不予受理).
        NotAccepted = "not_accepted",
        /// Accepted, awaiting the ruling. Applications recorded before
        /// acceptance was a step of its own were accepted on arrival.
        AwaitingRuling = "awaiting_ruling",
        /// The court has ruled.
        Ruled = "ruled",
    }
);

/// An application to a court to confirm the agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudicialConfirmation {
    /// The court applied to.
    pub court: Name,
    /// When the court must decide whether to accept; `None` for an
    /// application recorded before acceptance was a step of its own, which
    /// was accepted on arrival.
    #[serde(default)]
    pub acceptance_due: Option<Deadline>,
    /// The court's decision whether to accept, once given.
    #[serde(default)]
    pub accepted: Option<bool>,
    /// When its ruling is due, once the ruling period runs: from the
    /// acceptance, with any extension.
    pub ruling_due: Option<Deadline>,
    /// How many times the ruling period has been extended.
    #[serde(default)]
    pub extensions: u32,
    /// The ruling, once given: whether the agreement was confirmed.
    pub confirmed: Option<bool>,
}

impl JudicialConfirmation {
    /// Where the application stands.
    pub fn step(&self) -> ConfirmationStep {
        match (self.confirmed, self.accepted, self.ruling_due) {
            (Some(_), _, _) => ConfirmationStep::Ruled,
            (None, Some(false), _) => ConfirmationStep::NotAccepted,
            (None, _, Some(_)) => ConfirmationStep::AwaitingRuling,
            (None, _, None) => ConfirmationStep::AwaitingAcceptance,
        }
    }

    /// Whether the court still owes a step: its acceptance or its ruling.
    fn pending(&self) -> bool {
        matches!(
            self.step(),
            ConfirmationStep::AwaitingAcceptance | ConfirmationStep::AwaitingRuling
        )
    }
}

/// One dispute. Its state is only what the rules need to decide and what a
/// query shows; the full history lives in its events. Missing fields default
/// when a snapshot is read, so that a snapshot written before a field was
/// added still loads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dispute {
    status: DisputeStatus,
    division: Option<DivisionCode>,
    level: Option<Level>,
    intake_level: Option<Level>,
    grid: Option<Name>,
    category: Option<DisputeCategory>,
    risk: Option<Risk>,
    summary: Option<Text>,
    parties: Vec<Party>,
    registration_due: Option<Deadline>,
    handling_due: Option<Deadline>,
    body: Option<MediationBody>,
    mediator: Option<Name>,
    mediation_due: Option<Deadline>,
    mediation_extensions: u32,
    consents: BTreeSet<PartyRole>,
    sessions: u32,
    agreement: Option<Agreement>,
    confirmation: Option<JudicialConfirmation>,
    performance: Option<Performance>,
    returned_on_review: bool,
    legal_channel: Option<LegalChannel>,
    outcome: Option<Outcome>,
    satisfaction: Option<Satisfaction>,
    official: Option<Name>,
    // When each stage's clock last started (the event that opened it), so
    // that a running clock knows its start; the deadlines say only the end.
    clock_starts: BTreeMap<Stage, DateTime<Utc>>,
    // The warnings and breaches recorded, so that a timer's retry writes
    // nothing.
    deadline_marks: BTreeSet<DeadlineMark>,
    // The calendar days added to a deadline after it was set (mediation
    // and ruling extensions), by stage and in order: what a recount of a
    // provisional deadline adds again after its stage's rule.
    due_extensions: BTreeMap<Stage, Vec<u32>>,
}

impl Dispute {
    /// Where the dispute stands.
    pub fn status(&self) -> DisputeStatus {
        self.status
    }

    /// The division holding the dispute (where it was reported, until registered).
    pub fn division(&self) -> Option<&DivisionCode> {
        self.division.as_ref()
    }

    /// The level holding the case, once registered.
    pub fn level(&self) -> Option<Level> {
        self.level
    }

    /// The level the case was first registered at; it survives escalation and reopening.
    pub fn intake_level(&self) -> Option<Level> {
        self.intake_level
    }

    /// The grid it was reported from, if any.
    pub fn grid(&self) -> Option<&Name> {
        self.grid.as_ref()
    }

    /// What the dispute is about, once registered.
    pub fn category(&self) -> Option<DisputeCategory> {
        self.category
    }

    /// The risk grading, once registered.
    pub fn risk(&self) -> Option<Risk> {
        self.risk
    }

    /// The latest summary: the report's, then the registration's.
    pub fn summary(&self) -> Option<&Text> {
        self.summary.as_ref()
    }

    /// The parties, once registered.
    pub fn parties(&self) -> &[Party] {
        &self.parties
    }

    /// When a reported dispute had to be registered by.
    pub fn registration_due(&self) -> Option<&Deadline> {
        self.registration_due.as_ref()
    }

    /// How long the current level may hold the case.
    pub fn handling_due(&self) -> Option<&Deadline> {
        self.handling_due.as_ref()
    }

    /// The body the case is dispatched to, if any.
    pub fn body(&self) -> Option<&MediationBody> {
        self.body.as_ref()
    }

    /// The mediator in charge, if named.
    pub fn mediator(&self) -> Option<&Name> {
        self.mediator.as_ref()
    }

    /// When the current mediation should be finished.
    pub fn mediation_due(&self) -> Option<&Deadline> {
        self.mediation_due.as_ref()
    }

    /// How many times the parties have extended the current mediation.
    pub fn mediation_extensions(&self) -> u32 {
        self.mediation_extensions
    }

    /// The parties that have consented to the current mediation.
    pub fn consents(&self) -> impl Iterator<Item = PartyRole> + '_ {
        self.consents.iter().copied()
    }

    /// How many sessions the current mediation has held.
    pub fn session_count(&self) -> u32 {
        self.sessions
    }

    /// The agreement, if one was reached.
    pub fn agreement(&self) -> Option<&Agreement> {
        self.agreement.as_ref()
    }

    /// The form of the agreement, if one was reached.
    pub fn agreement_form(&self) -> Option<AgreementForm> {
        self.agreement.as_ref().map(|a| a.form)
    }

    /// The application for judicial confirmation, if one was made.
    pub fn judicial_confirmation(&self) -> Option<&JudicialConfirmation> {
        self.confirmation.as_ref()
    }

    /// What the latest follow-up found, if any.
    pub fn performance(&self) -> Option<Performance> {
        self.performance
    }

    /// Whether the latest review of the current handling returned it for
    /// rework; a new round of handling starts without one.
    pub fn returned_on_review(&self) -> bool {
        self.returned_on_review
    }

    /// The legal channel the case was referred to, if any.
    pub fn legal_channel(&self) -> Option<LegalChannel> {
        self.legal_channel
    }

    /// How the handling ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// The parties' satisfaction, once evaluated.
    pub fn satisfaction(&self) -> Option<Satisfaction> {
        self.satisfaction
    }

    /// The official responsible for the case (责任人, 包案领导), if named.
    pub fn official(&self) -> Option<&Name> {
        self.official.as_ref()
    }

    /// The obligations running on the dispute now, derived from its status:
    /// what the case's holder owes, by when, and who that holder is. A clock
    /// stops when its obligation is met, that is when the status moves on.
    ///
    /// | stage | its clock starts when | and stops when |
    /// |---|---|---|
    /// | `grid_report` | a grid worker reports the dispute | the dispute is registered |
    /// | `village_handling`, `town_handling`, `district_handling` (the holding level's) | the case is registered at, escalated, taken over or sent down to, or reopened at that level; a move restarts it at the new level | the level has a result: an agreement that stands, a referral to a legal channel, an approving review, closure. It runs on after a failed mediation (the level must still escalate or refer) and resumes when the court refuses an agreement or a review returns it |
    /// | `mediation` | the case is dispatched to a mediation body; the parties' extension moves its due time, not its start | an agreement, a refusal or a termination; a move to another level |
    /// | `judicial_confirmation_acceptance` | the parties apply to a court | the court accepts the application or does not |
    /// | `judicial_confirmation_ruling` | the court accepts (in older histories: the parties apply); the court's extension moves its due time | the court rules |
    ///
    /// The holder is the division and level holding the case (level `grid`
    /// for a report awaiting registration), with the mediation body and
    /// mediator during mediation, or the court awaiting its acceptance or
    /// ruling. The case's responsible official, once named, is on every
    /// clock, and is its person in charge where no mediator or court is.
    ///
    /// Left out on purpose: the judicial confirmation window. It is the
    /// parties' own time to apply to a court (People's Mediation Law Art 33),
    /// not an obligation of whoever holds the case, so nobody is warned or
    /// blamed when it lapses.
    pub fn running_clocks(&self) -> Vec<RunningClock> {
        use DisputeStatus as S;
        let official = self.official.as_ref().map(Name::to_string);
        let case = Holder {
            division: self.division.clone(),
            level: self.level,
            body: None,
            person: official.clone(),
            official,
        };
        let mut clocks = Vec::new();
        if self.status == S::Reported {
            let grid = Holder {
                level: Some(Level::Grid),
                ..case.clone()
            };
            clocks.extend(self.clock(self.registration_due.as_ref(), grid));
        }
        let handling_runs = match self.status {
            S::Registered | S::Dispatched | S::Mediating | S::Terminated => true,
            S::Agreed => self.agreement_cannot_stand(),
            _ => false,
        };
        if handling_runs {
            clocks.extend(self.clock(self.handling_due.as_ref(), case.clone()));
        }
        if matches!(self.status, S::Dispatched | S::Mediating) {
            let mediation = Holder {
                body: self.body.as_ref().map(|b| b.id.to_string()),
                person: self.mediator.as_ref().map(Name::to_string),
                ..case.clone()
            };
            clocks.extend(self.clock(self.mediation_due.as_ref(), mediation));
        }
        if self.status == S::Agreed
            && let Some(confirmation) = self.confirmation.as_ref()
        {
            let court = Holder {
                body: Some(confirmation.court.to_string()),
                person: None,
                ..case
            };
            let owed = match confirmation.step() {
                ConfirmationStep::AwaitingAcceptance => confirmation.acceptance_due.as_ref(),
                ConfirmationStep::AwaitingRuling => confirmation.ruling_due.as_ref(),
                ConfirmationStep::NotAccepted | ConfirmationStep::Ruled => None,
            };
            clocks.extend(self.clock(owed, court));
        }
        clocks
    }

    /// The clock of `deadline`, if it has one and its start is known. Every
    /// event that sets a deadline here also records its start, so a missing
    /// start means a state this code did not build; such a clock is left
    /// out rather than given an invented start.
    fn clock(&self, deadline: Option<&Deadline>, holder: Holder) -> Option<RunningClock> {
        let deadline = *deadline?;
        let started_at = *self.clock_starts.get(&deadline.stage)?;
        Some(RunningClock {
            stage: deadline.stage,
            deadline,
            started_at,
            paused: Duration::zero(),
            holder,
        })
    }

    /// The deadlines in force now, each with how it was computed, for
    /// [`DisputeAction::RecomputeDeadlines`]: every running clock's, counted
    /// by its stage's rule from the event that started it with the
    /// extensions granted since (mediation, the court's ruling) added in
    /// order, and the parties' window to apply for judicial confirmation
    /// while it is open. Anything else that moves a deadline must be kept
    /// in `due_extensions` too, or a recount would drop the move.
    fn deadlines_in_force(&self) -> Vec<Basis> {
        let mut in_force: Vec<Basis> = self
            .running_clocks()
            .into_iter()
            .map(|clock| Basis {
                extensions: self
                    .due_extensions
                    .get(&clock.stage)
                    .cloned()
                    .unwrap_or_default(),
                ..Basis::at(clock.deadline, clock.started_at)
            })
            .collect();
        if self.status == DisputeStatus::Agreed
            && self.confirmation.is_none()
            && let Some(window) = self.agreement.as_ref().and_then(|a| a.confirmation_window)
            && let Some(start) = self.clock_starts.get(&window.stage)
        {
            in_force.push(Basis::at(window, *start));
        }
        in_force
    }

    /// Decides a timer command: the holder to record, or `None` when it is
    /// already recorded.
    fn check_timer(
        &self,
        stage: Stage,
        due: DateTime<Utc>,
        threshold: Threshold,
        now: DateTime<Utc>,
    ) -> Result<Option<Holder>, DisputeError> {
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
            TimerRefusal::InvalidThreshold => DisputeError::InvalidThreshold { threshold_percent },
            TimerRefusal::NotRunning => DisputeError::ClockNotRunning { stage, due },
            TimerRefusal::NotReached(reached_at) => DisputeError::ThresholdNotReached {
                stage,
                threshold_percent,
                reached_at,
            },
        })
    }

    fn not_allowed(&self, action: &'static str) -> DisputeError {
        DisputeError::NotAllowed {
            action,
            status: self.status,
        }
    }

    /// Whether the court still owes the acceptance or the ruling.
    fn confirmation_pending(&self) -> bool {
        self.confirmation
            .as_ref()
            .is_some_and(JudicialConfirmation::pending)
    }

    /// The step of the application before the court, if there is one.
    fn confirmation_step(&self) -> Option<ConfirmationStep> {
        self.confirmation.as_ref().map(JudicialConfirmation::step)
    }

    /// The application awaiting the court's ruling; refused while the court
    /// has yet to accept it, or when none awaits a ruling.
    fn court_owes_ruling(&self) -> Result<&JudicialConfirmation, DisputeError> {
        match self.confirmation.as_ref() {
            Some(c) if c.step() == ConfirmationStep::AwaitingRuling => Ok(c),
            Some(c) if c.step() == ConfirmationStep::AwaitingAcceptance => {
                Err(DisputeError::ConfirmationNotAccepted)
            }
            _ => Err(DisputeError::NoConfirmationPending),
        }
    }

    /// Whether the agreement cannot stand as it is: the court refused to
    /// confirm it, or the latest review returned it.
    fn agreement_cannot_stand(&self) -> bool {
        let refused = self
            .confirmation
            .as_ref()
            .is_some_and(|c| c.confirmed == Some(false));
        refused || self.returned_on_review
    }

    /// The division holding a registered case. Every status that allows a
    /// move has one; a state without it refuses the move rather than panic.
    fn current_division(&self, action: &'static str) -> Result<&DivisionCode, DisputeError> {
        self.division
            .as_ref()
            .ok_or_else(|| self.not_allowed(action))
    }

    /// Decides what a request changes, judged against the current state.
    fn decide(
        &self,
        action: DisputeAction,
        services: &Services,
        now: DateTime<Utc>,
    ) -> Result<Vec<DisputeChange>, DisputeError> {
        use DisputeAction as A;
        use DisputeChange as C;

        let name = action.name();
        if !action.allowed_from().contains(&self.status) {
            return Err(self.not_allowed(name));
        }
        let tree = services.jurisdiction();
        let change = match action {
            A::Report {
                division,
                grid,
                summary,
            } => {
                known(services, &division)?;
                C::DisputeReported {
                    division,
                    grid,
                    summary,
                    registration_due: services.deadline(Stage::GridReport, now),
                }
            }
            A::Register {
                division,
                level,
                category,
                risk,
                summary,
                parties,
            } => {
                known(services, &division)?;
                // Grids report but never hold a case; a code's structure
                // fixes its level, so the two must agree.
                if !level.handles_cases() || level != division.level() {
                    return Err(DisputeError::LevelMismatch { level, division });
                }
                // Mediation needs someone on each side.
                if let Some(role) = PartyRole::ALL
                    .iter()
                    .find(|role| !parties.iter().any(|p| p.role == **role))
                {
                    return Err(DisputeError::MissingParty { role: *role });
                }
                C::DisputeRegistered {
                    division,
                    level,
                    category,
                    risk,
                    summary,
                    parties,
                    handling_due: services.deadline(Stage::handling_at(level), now),
                }
            }
            A::Dispatch { body, mediator } => {
                // Art 33: an agreement the court would not confirm may be
                // changed, or a new one reached, through mediation; the same
                // goes for one the review returned. One that stands is not
                // mediated again.
                if self.status == DisputeStatus::Agreed {
                    if self.confirmation_pending() {
                        return Err(DisputeError::ConfirmationPending);
                    }
                    if !self.agreement_cannot_stand() {
                        return Err(self.not_allowed(name));
                    }
                }
                C::DisputeDispatched {
                    body,
                    mediator,
                    mediation_due: services.deadline(Stage::Mediation, now),
                }
            }
            A::RecordConsent {
                party,
                consents: false,
                reason,
            } => C::MediationRefused { party, reason },
            A::RecordConsent { party, .. } => {
                if self.consents.contains(&party) {
                    return Err(DisputeError::AlreadyConsented { party });
                }
                // Mediation starts only once both sides have agreed to it (Art 17).
                let both = PartyRole::ALL
                    .iter()
                    .all(|role| *role == party || self.consents.contains(role));
                let mut changes = vec![C::PartyConsented { party }];
                if both {
                    changes.push(C::MediationStarted {});
                }
                return Ok(changes);
            }
            A::HoldSession { summary } => C::MediationSessionHeld {
                session: self.sessions.saturating_add(1),
                summary,
            },
            A::ReachAgreement { form, terms } => C::AgreementReached {
                form,
                terms,
                // Only a written agreement can be confirmed by a court (Art 33).
                confirmation_window: (form == AgreementForm::Written)
                    .then(|| services.deadline(Stage::JudicialConfirmationWindow, now)),
            },
            A::ExtendMediation { days, reason } => {
                let old_due = self.mediation_due.ok_or_else(|| self.not_allowed(name))?;
                let (extension, new_due) =
                    decide_extension(services, old_due, self.mediation_extensions, days, now)?;
                C::MediationExtended {
                    days,
                    extension,
                    reason,
                    old_due,
                    new_due,
                }
            }
            A::TerminateMediation {
                reason,
                note,
                legal_routes_explained,
            } => C::MediationTerminated {
                reason,
                note,
                legal_routes_explained,
            },
            A::Escalate { reason } => {
                // The court has the agreement; wait for its ruling.
                if self.confirmation_pending() {
                    return Err(DisputeError::ConfirmationPending);
                }
                let from = self.current_division(name)?;
                let Some(current) = tree.get(from) else {
                    return Err(DisputeError::UnknownDivision {
                        division: from.clone(),
                    });
                };
                // In a valid tree only a district lacks a parent.
                let Some(target) = tree.parent(from) else {
                    return Err(DisputeError::AtTopLevel);
                };
                C::DisputeEscalated {
                    reason,
                    from_division: current.code.clone(),
                    from_level: current.level,
                    to_division: target.code.clone(),
                    to_level: target.level,
                    handling_due: services.deadline(Stage::handling_at(target.level), now),
                }
            }
            A::TakeOver { division } => {
                let from = self.current_division(name)?;
                let Some(target) = tree
                    .get(&division)
                    .filter(|t| from.is_within(&t.code) && t.code != *from)
                else {
                    return Err(DisputeError::NotAbove { division });
                };
                C::DisputeTakenOver {
                    from_division: from.clone(),
                    from_level: from.level(),
                    to_division: target.code.clone(),
                    to_level: target.level,
                    handling_due: services.deadline(Stage::handling_at(target.level), now),
                }
            }
            A::SendDown { division } => {
                let from = self.current_division(name)?;
                let Some(target) = tree
                    .get(&division)
                    .filter(|t| t.code.is_within(from) && t.code != *from)
                else {
                    return Err(DisputeError::NotBelow { division });
                };
                C::DisputeSentDown {
                    from_division: from.clone(),
                    from_level: from.level(),
                    to_division: target.code.clone(),
                    to_level: target.level,
                    handling_due: services.deadline(Stage::handling_at(target.level), now),
                }
            }
            A::ReferToLegalChannel { channel, note } => {
                if self.confirmation_pending() {
                    return Err(DisputeError::ConfirmationPending);
                }
                C::DisputeReferred { channel, note }
            }
            A::RequestJudicialConfirmation { court } => {
                let window = match &self.agreement {
                    Some(a) if a.form == AgreementForm::Oral => {
                        return Err(DisputeError::OralAgreement);
                    }
                    Some(Agreement {
                        confirmation_window: Some(window),
                        ..
                    }) => *window,
                    _ => return Err(self.not_allowed(name)),
                };
                // An application the court did not accept leaves the
                // parties free to apply again (to the competent court, say)
                // while their window is open.
                if self
                    .confirmation_step()
                    .is_some_and(|step| step != ConfirmationStep::NotAccepted)
                {
                    return Err(DisputeError::ConfirmationAlreadyRequested);
                }
                if now >= window.due {
                    return Err(DisputeError::WindowClosed {
                        stage: window.stage,
                        due: window.due,
                    });
                }
                // Art 4: the court first decides whether to accept; the
                // ruling period starts only with its acceptance.
                C::JudicialConfirmationRequested {
                    court,
                    acceptance_due: Some(
                        services.deadline(Stage::JudicialConfirmationAcceptance, now),
                    ),
                }
            }
            A::AcceptJudicialConfirmation { accepted, note } => {
                // Applications from before this step were accepted on
                // arrival (as their upcaster reads them): there is no
                // acceptance left to record. A late decision is recorded;
                // its clock's breach says it was late.
                if self.confirmation_step() != Some(ConfirmationStep::AwaitingAcceptance) {
                    return Err(DisputeError::NoConfirmationAwaitingAcceptance);
                }
                if accepted {
                    C::JudicialConfirmationAccepted {
                        ruling_due: services.deadline(Stage::JudicialConfirmationRuling, now),
                        note,
                    }
                } else {
                    C::JudicialConfirmationNotAccepted { note }
                }
            }
            A::ExtendJudicialConfirmation { days, reason } => {
                let confirmation = self.court_owes_ruling()?;
                let old_due = confirmation
                    .ruling_due
                    .ok_or(DisputeError::ConfirmationNotAccepted)?;
                let (extension, new_due) =
                    decide_extension(services, old_due, confirmation.extensions, days, now)?;
                C::JudicialConfirmationExtended {
                    days,
                    extension,
                    reason,
                    old_due,
                    new_due,
                }
            }
            A::RuleJudicialConfirmation { confirmed, note } => {
                self.court_owes_ruling()?;
                C::JudicialConfirmationRuled { confirmed, note }
            }
            A::RecordFollowUp { performance, note } => {
                // Reviewed and closed cases include terminations and
                // referrals, which have nothing to follow up.
                if self.agreement.is_none() {
                    return Err(self.not_allowed(name));
                }
                C::PerformanceFollowedUp { performance, note }
            }
            A::Review { approved, note } => {
                // The review judges the whole handling, court ruling included.
                if self.confirmation_pending() {
                    return Err(DisputeError::ConfirmationPending);
                }
                C::DisputeReviewed { approved, note }
            }
            A::Close {} => {
                let (Some(outcome), Some(intake_level), Some(resolved_level), Some(division)) = (
                    self.outcome,
                    self.intake_level,
                    self.level,
                    self.division.clone(),
                ) else {
                    return Err(self.not_allowed(name));
                };
                C::DisputeClosed {
                    outcome,
                    intake_level,
                    resolved_level,
                    resolved_division: division,
                    resolved_at_or_below_intake: resolved_level <= intake_level,
                }
            }
            A::Evaluate { satisfaction, note } => {
                if self.satisfaction.is_some() {
                    return Err(DisputeError::AlreadyEvaluated);
                }
                C::DisputeEvaluated { satisfaction, note }
            }
            A::Reopen { reason } => {
                let (Some(division), Some(level)) = (self.division.clone(), self.level) else {
                    return Err(self.not_allowed(name));
                };
                C::DisputeReopened {
                    reason,
                    division,
                    level,
                    handling_due: services.deadline(Stage::handling_at(level), now),
                }
            }
            A::AssignOfficial { official } => {
                if self.official.as_ref() == Some(&official) {
                    return Ok(vec![]);
                }
                C::OfficialAssigned {
                    official,
                    previous: self.official.clone(),
                }
            }
            A::EraseParties { parties } => {
                let mut places: Vec<u32> = parties
                    .into_iter()
                    .filter(|&i| {
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| self.parties.get(i))
                            .is_some_and(|p| !p.name.is_erased())
                    })
                    .collect();
                places.sort_unstable();
                places.dedup();
                if places.is_empty() {
                    return Ok(vec![]);
                }
                C::PartiesErased { parties: places }
            }
            A::RecordDeadlineWarning {
                stage,
                threshold_percent,
                due,
            } => {
                let threshold = Threshold::Warning(threshold_percent);
                let Some(holder) = self.check_timer(stage, due, threshold, now)? else {
                    // Already recorded: a retry changes nothing.
                    return Ok(vec![]);
                };
                C::DeadlineWarned {
                    stage,
                    threshold_percent,
                    due,
                    holder,
                }
            }
            A::RecordDeadlineBreach { stage, due } => {
                let Some(holder) = self.check_timer(stage, due, Threshold::Breach, now)? else {
                    return Ok(vec![]);
                };
                C::DeadlineBreached { stage, due, holder }
            }
            A::RecomputeDeadlines {} => {
                let deadlines = recompute::recompute(services, &self.deadlines_in_force());
                if deadlines.is_empty() {
                    // Nothing moved: the command is idempotent.
                    return Ok(vec![]);
                }
                C::DeadlinesRecomputed { deadlines }
            }
        };
        Ok(vec![change])
    }

    /// The case changes hands at `at` and waits to be dispatched again; the
    /// new level's handling clock starts.
    fn move_to(
        &mut self,
        at: DateTime<Utc>,
        division: DivisionCode,
        level: Level,
        handling_due: Deadline,
    ) {
        self.status = DisputeStatus::Registered;
        self.division = Some(division);
        self.level = Some(level);
        self.clock_starts.insert(handling_due.stage, at);
        self.handling_due = Some(handling_due);
        self.start_afresh();
    }

    /// A new round of handling begins: whatever the previous mediation
    /// achieved no longer applies, an agreement included (one the review
    /// returned or the court refused), so a later closure reports the
    /// outcome of the new round.
    fn start_afresh(&mut self) {
        self.clear_mediation();
        self.clear_agreement();
        self.outcome = None;
    }

    /// Sets an agreement aside with its court application, follow-ups and
    /// the review that returned it.
    fn clear_agreement(&mut self) {
        self.agreement = None;
        self.confirmation = None;
        self.performance = None;
        self.returned_on_review = false;
    }

    fn clear_mediation(&mut self) {
        self.body = None;
        self.mediator = None;
        self.mediation_due = None;
        self.mediation_extensions = 0;
        self.consents.clear();
        self.sessions = 0;
    }
}

/// Decides an extension of the running period `current` by `days`, the
/// period having been extended `used` times: the number of this extension
/// and the new deadline, or why it is refused. The policy's
/// `[extensions.*]` rule for the stage bounds both; the new deadline counts
/// `days` calendar days on from the due time in force, not from now.
///
/// A period that has run out is not extended: from its due time on it is
/// overdue, its breach is (or will be) on record, and an extension granted
/// afterwards would only hide it. This mirrors the petition handling
/// extension (信访工作条例 Art 34); for the mediation it is this engine's
/// reading, as no statute fixes a figure.
fn decide_extension(
    services: &Services,
    current: Deadline,
    used: u32,
    days: u32,
    now: DateTime<Utc>,
) -> Result<(u32, Deadline), DisputeError> {
    let stage = current.stage;
    // A complete policy has a rule for every extensible stage; were it
    // missing, no extension could be allowed.
    let rule = services
        .policy()
        .extension(stage)
        .unwrap_or(ExtensionRule { days: 0, times: 0 });
    if used >= rule.times {
        return Err(DisputeError::ExtensionsUsedUp {
            stage,
            max: rule.times,
        });
    }
    if days == 0 || days > rule.days {
        return Err(DisputeError::ExtensionTooLong {
            stage,
            days,
            max: rule.days,
        });
    }
    if now >= current.due {
        return Err(DisputeError::ExtensionTooLate {
            stage,
            due: current.due,
        });
    }
    // Calendar days from the last day, as a recount counts them again;
    // provisional if `current` is.
    Ok((used + 1, recompute::extend(services, current, days)))
}

/// Refuses a division the jurisdiction tree does not have.
fn known(services: &Services, division: &DivisionCode) -> Result<(), DisputeError> {
    match services.jurisdiction().get(division) {
        Some(_) => Ok(()),
        None => Err(DisputeError::UnknownDivision {
            division: division.clone(),
        }),
    }
}

// Bump when `apply` or the fields of `Dispute` change meaning: stored
// snapshots of another revision are then ignored and cases replayed.
impl crate::SnapshotRevision for Dispute {
    // 2: clock starts and recorded deadline marks.
    // 3: mediation extensions; judicial confirmation in two steps
    // (acceptance, then ruling) with the ruling's extensions.
    // 4: the confirmation window's start and the days added to deadlines,
    // for recounting provisional deadlines.
    // 5: an application stored before acceptance was a step is read as
    // accepted on arrival (`accepted: Some(true)`), through its upcaster.
    const SNAPSHOT_REVISION: u32 = 5;
}

impl Aggregate for Dispute {
    const TYPE: &'static str = "Dispute";
    type Command = DisputeCommand;
    type Event = DisputeEvent;
    type Error = DisputeError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        // One instant for every event of the request, so they sort together.
        let now = services.now();
        let changes = self.decide(command.action, services, now)?;
        for change in changes {
            let event = DisputeEvent {
                at: now,
                by: command.by.clone(),
                change,
            };
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use DisputeChange as C;
        let at = event.at;
        match event.change {
            C::DisputeReported {
                division,
                grid,
                summary,
                registration_due,
            } => {
                self.status = DisputeStatus::Reported;
                self.clock_starts.insert(registration_due.stage, at);
                self.division = Some(division);
                self.grid = grid;
                self.summary = Some(summary);
                self.registration_due = Some(registration_due);
            }
            C::DisputeRegistered {
                division,
                level,
                category,
                risk,
                summary,
                parties,
                handling_due,
            } => {
                self.status = DisputeStatus::Registered;
                self.division = Some(division);
                self.level = Some(level);
                self.intake_level = Some(level);
                self.category = Some(category);
                self.risk = Some(risk);
                self.summary = Some(summary);
                self.parties = parties;
                self.clock_starts.insert(handling_due.stage, at);
                self.handling_due = Some(handling_due);
            }
            C::DisputeDispatched {
                body,
                mediator,
                mediation_due,
            } => {
                // A new mediation: consents and sessions start afresh, and
                // an agreement it replaces (Art 33) no longer counts. From
                // Registered there is no agreement, so only the mediation
                // is cleared in effect.
                self.start_afresh();
                self.status = DisputeStatus::Dispatched;
                self.body = Some(body);
                self.mediator = mediator;
                self.clock_starts.insert(mediation_due.stage, at);
                self.due_extensions.remove(&mediation_due.stage);
                self.mediation_due = Some(mediation_due);
            }
            C::PartyConsented { party } => {
                self.consents.insert(party);
            }
            C::MediationStarted {} => self.status = DisputeStatus::Mediating,
            C::MediationExtended {
                days,
                extension,
                new_due,
                ..
            } => {
                self.due_extensions
                    .entry(new_due.stage)
                    .or_default()
                    .push(days);
                self.mediation_extensions = extension;
                self.mediation_due = Some(new_due);
            }
            C::MediationRefused { .. } | C::MediationTerminated { .. } => {
                self.status = DisputeStatus::Terminated;
                self.outcome = Some(Outcome::Terminated);
            }
            C::MediationSessionHeld { session, .. } => self.sessions = session,
            C::AgreementReached {
                form,
                terms,
                confirmation_window,
            } => {
                self.status = DisputeStatus::Agreed;
                if let Some(window) = &confirmation_window {
                    self.clock_starts.insert(window.stage, at);
                }
                self.agreement = Some(Agreement {
                    form,
                    terms,
                    confirmation_window,
                });
                self.outcome = Some(Outcome::Agreement);
            }
            C::DisputeEscalated {
                to_division,
                to_level,
                handling_due,
                ..
            }
            | C::DisputeTakenOver {
                to_division,
                to_level,
                handling_due,
                ..
            }
            | C::DisputeSentDown {
                to_division,
                to_level,
                handling_due,
                ..
            } => self.move_to(at, to_division, to_level, handling_due),
            C::DisputeReferred { channel, .. } => {
                // Referred from an agreement, the agreement no longer holds.
                self.clear_agreement();
                self.status = DisputeStatus::Referred;
                self.legal_channel = Some(channel);
                self.outcome = Some(Outcome::Referred);
            }
            C::JudicialConfirmationRequested {
                court,
                acceptance_due,
            } => {
                if let Some(deadline) = &acceptance_due {
                    self.clock_starts.insert(deadline.stage, at);
                    self.due_extensions.remove(&deadline.stage);
                }
                self.confirmation = Some(JudicialConfirmation {
                    court,
                    acceptance_due,
                    accepted: None,
                    ruling_due: None,
                    extensions: 0,
                    confirmed: None,
                });
            }
            C::JudicialConfirmationAccepted { ruling_due, .. } => {
                self.clock_starts.insert(ruling_due.stage, at);
                self.due_extensions.remove(&ruling_due.stage);
                if let Some(confirmation) = &mut self.confirmation {
                    confirmation.accepted = Some(true);
                    confirmation.ruling_due = Some(ruling_due);
                }
            }
            C::JudicialConfirmationNotAccepted { .. } => {
                if let Some(confirmation) = &mut self.confirmation {
                    confirmation.accepted = Some(false);
                }
            }
            C::JudicialConfirmationExtended {
                days,
                extension,
                new_due,
                ..
            } => {
                self.due_extensions
                    .entry(new_due.stage)
                    .or_default()
                    .push(days);
                if let Some(confirmation) = &mut self.confirmation {
                    confirmation.extensions = extension;
                    confirmation.ruling_due = Some(new_due);
                }
            }
            C::JudicialConfirmationRuled { confirmed, .. } => {
                if let Some(confirmation) = &mut self.confirmation {
                    confirmation.confirmed = Some(confirmed);
                }
            }
            C::PerformanceFollowedUp { performance, .. } => self.performance = Some(performance),
            C::DisputeReviewed { approved, .. } => {
                // A rejected review leaves the case where it was, for rework.
                self.returned_on_review = !approved;
                if approved {
                    self.status = DisputeStatus::Reviewed;
                }
            }
            C::DisputeClosed { .. } => self.status = DisputeStatus::Closed,
            C::DisputeEvaluated { satisfaction, .. } => self.satisfaction = Some(satisfaction),
            C::OfficialAssigned { official, .. } => self.official = Some(official),
            C::PartiesErased { parties } => {
                for place in parties {
                    if let Some(party) = usize::try_from(place)
                        .ok()
                        .and_then(|i| self.parties.get_mut(i))
                    {
                        party.name = Name::erased();
                    }
                }
            }
            C::DisputeReopened {
                division,
                level,
                handling_due,
                ..
            } => {
                self.move_to(at, division, level, handling_due);
                self.legal_channel = None;
                self.satisfaction = None;
            }
            // Timer marks leave the status alone: a warning or breach is a
            // record for accountability, not a step of the case flow.
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
                    recompute::replace(self.registration_due.as_mut(), change);
                    recompute::replace(self.handling_due.as_mut(), change);
                    recompute::replace(self.mediation_due.as_mut(), change);
                    recompute::replace(
                        self.agreement
                            .as_mut()
                            .and_then(|a| a.confirmation_window.as_mut()),
                        change,
                    );
                    recompute::replace(
                        self.confirmation
                            .as_mut()
                            .and_then(|c| c.acceptance_due.as_mut()),
                        change,
                    );
                    recompute::replace(
                        self.confirmation
                            .as_mut()
                            .and_then(|c| c.ruling_due.as_mut()),
                        change,
                    );
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
