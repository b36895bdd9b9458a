//! What an aggregate may ask of the world: the time, the deadline policy,
//! the business calendar and the jurisdiction tree. Nothing else reaches a
//! command handler.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};

use crate::calendar::BusinessCalendar;
use crate::jurisdiction::Jurisdiction;
use crate::policy::{Deadline, DeadlinePolicy, Stage, StageRule};
use crate::values::CaseId;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until it is set or advanced; for tests and
/// for replaying a scenario at a chosen date.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Shows `at` from now on.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a petition handler may learn about another petition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finality {
    /// There is no petition with that id.
    Unknown,
    /// The petition exists and is not final.
    Open,
    /// The petition became final at this moment (Art 36–37).
    Final(DateTime<Utc>),
}

/// The records of other petitions could not be consulted (the store is
/// down, say). The command is refused rather than decided blind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the petition records cannot be consulted right now")]
pub struct RecordsUnavailable;

/// Looks up other petitions, so that a petition filed as a repeat of an
/// earlier one can be refused when that one is final (Art 37). Implemented
/// over the event log outside this crate.
#[async_trait::async_trait]
pub trait PetitionRecords: Send + Sync + std::fmt::Debug {
    /// Whether petition `id` exists and whether it is final.
    async fn finality(&self, id: &CaseId) -> Result<Finality, RecordsUnavailable>;
}

/// Records that know no petitions: every lookup answers `Unknown`. The
/// default until a store-backed implementation is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPetitionRecords;

#[async_trait::async_trait]
impl PetitionRecords for NoPetitionRecords {
    async fn finality(&self, _id: &CaseId) -> Result<Finality, RecordsUnavailable> {
        Ok(Finality::Unknown)
    }
}

/// The services both aggregates are handed by cqrs-es.
#[derive(Debug, Clone)]
pub struct Services {
    clock: Arc<dyn Clock>,
    policy: Arc<DeadlinePolicy>,
    calendar: Arc<BusinessCalendar>,
    jurisdiction: Arc<Jurisdiction>,
    petitions: Arc<dyn PetitionRecords>,
}

impl Services {
    /// Assembles the services.
    pub fn new(
        clock: Arc<dyn Clock>,
        policy: DeadlinePolicy,
        calendar: BusinessCalendar,
        jurisdiction: Jurisdiction,
    ) -> Self {
        Self {
            clock,
            policy: Arc::new(policy),
            calendar: Arc::new(calendar),
            jurisdiction: Arc::new(jurisdiction),
            petitions: Arc::new(NoPetitionRecords),
        }
    }

    /// These services, looking other petitions up in `records`.
    pub fn with_petition_records(mut self, records: Arc<dyn PetitionRecords>) -> Self {
        self.petitions = records;
        self
    }

    /// The shipped defaults (statutory policy, the holiday years shipped,
    /// the example jurisdiction) on the given clock.
    pub fn shipped_defaults(clock: Arc<dyn Clock>) -> Self {
        // The shipped files are compiled in and checked by this crate's
        // tests, so a failure here is a defect of the build, not of input.
        let mut calendar = BusinessCalendar::new();
        for (year, text) in crate::STATUTORY_HOLIDAYS {
            if let Err(e) = calendar.load_year_json(text) {
                panic!("the shipped holiday file for {year} is invalid: {e}");
            }
        }
        let jurisdiction = Jurisdiction::from_toml(crate::EXAMPLE_JURISDICTION)
            .unwrap_or_else(|e| panic!("the shipped example jurisdiction is invalid: {e}"));
        Self::new(clock, DeadlinePolicy::statutory(), calendar, jurisdiction)
    }

    /// Now, by the configured clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The deadline of `stage` for a period opened at `opened`.
    pub fn deadline(&self, stage: Stage, opened: DateTime<Utc>) -> Deadline {
        self.policy.deadline(stage, opened, &self.calendar)
    }

    /// The deadline of a period of `rule`'s length, reported as `stage`.
    pub fn deadline_for(&self, stage: Stage, rule: StageRule, opened: DateTime<Utc>) -> Deadline {
        self.policy
            .deadline_for(stage, rule, opened, &self.calendar)
    }

    /// The deadline of `stage` for a period opened on the local day
    /// `opened` (the period starts the day after, as for [`Self::deadline`]).
    pub fn deadline_on(&self, stage: Stage, opened: NaiveDate) -> Deadline {
        self.policy.deadline_on(stage, opened, &self.calendar)
    }

    /// Today's local date in the policy's time zone.
    pub fn today(&self) -> NaiveDate {
        self.now()
            .with_timezone(&self.policy.timezone())
            .date_naive()
    }

    /// The deadline policy.
    pub fn policy(&self) -> &DeadlinePolicy {
        &self.policy
    }

    /// The business calendar.
    pub fn calendar(&self) -> &BusinessCalendar {
        &self.calendar
    }

    /// The jurisdiction tree.
    pub fn jurisdiction(&self) -> &Jurisdiction {
        &self.jurisdiction
    }

    /// The records of other petitions.
    pub fn petition_records(&self) -> &dyn PetitionRecords {
        self.petitions.as_ref()
    }
}
