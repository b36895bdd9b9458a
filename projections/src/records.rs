//! Petition records read straight from the event log, for the petition
//! aggregate's repeat check (Art 37: a petition on facts already final is
//! not taken up again).

use cqrs_es::Aggregate;
use mediation_domain::petition::{Petition, PetitionChange, PetitionEvent};
use mediation_domain::services::{Finality, PetitionRecords, RecordsUnavailable};
use mediation_domain::values::CaseId;
use mediation_store::Store;

/// Answers whether a petition exists and is final from its stored events.
#[derive(Debug, Clone)]
pub struct LogPetitionRecords {
    store: Store,
}

impl LogPetitionRecords {
    /// Records over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl PetitionRecords for LogPetitionRecords {
    async fn finality(&self, id: &CaseId) -> Result<Finality, RecordsUnavailable> {
        let events = self
            .store
            .case_events(Petition::TYPE, id.as_str())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, petition = %id, "petition records unavailable");
                RecordsUnavailable
            })?;
        // Final is the end of a petition's flow, so only the last event can
        // say it.
        let Some(last) = events.last() else {
            return Ok(Finality::Unknown);
        };
        match last.decode::<PetitionEvent>() {
            Ok(PetitionEvent {
                at,
                change: PetitionChange::PetitionFinalised { .. },
                ..
            }) => Ok(Finality::Final(at)),
            Ok(_) => Ok(Finality::Open),
            Err(e) => {
                tracing::error!(error = %e, petition = %id, "stored petition event unreadable");
                Err(RecordsUnavailable)
            }
        }
    }
}
