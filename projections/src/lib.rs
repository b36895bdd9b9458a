//! Read models derived from the event log. They only read the log; they
//! never write events.
#![forbid(unsafe_code)]

pub mod case_index;
pub mod caseload;
pub mod history;
pub mod petition_statistics;
pub mod petitioners;
pub mod records;
pub mod replay;
pub mod runner;
pub mod sla;
pub mod statistics;

use std::sync::Arc;

/// Every projection the server keeps, in the order they are started; the
/// petitioner history keys petitioners under `secret`.
pub fn all(secret: &petitioners::PetitionerSecret) -> Vec<Arc<dyn runner::Projection>> {
    vec![
        Arc::new(case_index::CaseIndex),
        Arc::new(statistics::Statistics),
        Arc::new(caseload::Caseload),
        Arc::new(petitioners::PetitionerHistory::new(secret.clone())),
        Arc::new(petition_statistics::PetitionStatistics),
    ]
}
