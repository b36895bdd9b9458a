//! Who answers for a case (信访工作条例 Art 44–46): its responsible official
//! now, and who held it each time a deadline passed, read from the case's
//! own history, where each breach event names the holder at that moment.

use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use mediation_domain::dispute::{Dispute, DisputeChange, DisputeEvent};
use mediation_domain::petition::{Petition, PetitionChange, PetitionEvent};
use mediation_domain::policy::Stage;
use mediation_domain::sla::Holder;
use mediation_domain::values::Name;
use mediation_store::StoreError;

use crate::access::Caller;
use crate::{App, AppError};

/// The kinds of case, as the log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// A dispute.
    Dispute,
    /// A petition.
    Petition,
}

/// A case's accountability.
#[derive(Debug, Clone, PartialEq)]
pub struct Accountability {
    /// The official responsible for the case now, if named.
    pub official: Option<Name>,
    /// Every breach of the case's deadlines, oldest first.
    pub breaches: Vec<Breach>,
}

/// One breach, as the case's history recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// The stage whose deadline passed.
    pub stage: Stage,
    /// The due time that passed.
    pub due: DateTime<Utc>,
    /// When the breach was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Who held the case then.
    pub holder: Holder,
    /// The breach event's position in the log.
    pub position: u64,
}

impl App {
    /// Who answers for case `id`: NOT_FOUND if it does not exist or lies
    /// outside the caller's scope, like any other read of a case.
    pub async fn case_accountability(
        &self,
        caller: &Caller,
        kind: CaseKind,
        id: &str,
    ) -> Result<Accountability, AppError> {
        caller.authorise("GetCaseAccountability")?;
        let (aggregate_type, official) = match kind {
            CaseKind::Dispute => {
                let found = self.get_dispute(caller, id).await?;
                (Dispute::TYPE, found.case.official().cloned())
            }
            CaseKind::Petition => {
                let found = self.get_petition(caller, id).await?;
                (Petition::TYPE, found.case.official().cloned())
            }
        };
        let events = self.store().case_events(aggregate_type, id).await?;
        let mut breaches = Vec::new();
        for event in events.iter().filter(|e| e.event_type == "DeadlineBreached") {
            let corrupt = |e| unreadable(aggregate_type, id, event.sequence, e);
            let (stage, due, holder) = match kind {
                CaseKind::Dispute => {
                    match event.decode::<DisputeEvent>().map_err(corrupt)?.change {
                        DisputeChange::DeadlineBreached { stage, due, holder } => {
                            (stage, due, holder)
                        }
                        _ => continue,
                    }
                }
                CaseKind::Petition => {
                    match event.decode::<PetitionEvent>().map_err(corrupt)?.change {
                        PetitionChange::DeadlineBreached { stage, due, holder } => {
                            (stage, due, holder)
                        }
                        _ => continue,
                    }
                }
            };
            breaches.push(Breach {
                stage,
                due,
                recorded_at: event.recorded_at,
                holder,
                position: event.position,
            });
        }
        Ok(Accountability { official, breaches })
    }
}

/// A stored event that no longer decodes: the log is damaged.
fn unreadable(aggregate_type: &str, id: &str, sequence: u64, e: impl fmt::Display) -> AppError {
    AppError::Store(StoreError::Corrupt(format!(
        "{aggregate_type} {id} event {sequence}: {e}"
    )))
}
