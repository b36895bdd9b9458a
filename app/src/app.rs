//! The engine: the cases of both kinds, the store, the read models' runners
//! and the rules every command and query shares (authorisation, scope,
//! idempotency, read-your-writes).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::Aggregate;
use mediation_domain::SnapshotRevision;
use mediation_domain::dispute::{Dispute, DisputeAction, DisputeCommand};
use mediation_domain::petition::{Petition, PetitionAction, PetitionCommand};
use mediation_domain::services::Services;
use mediation_domain::values::{Actor, CaseId, DivisionCode, Level};
use mediation_projections::case_index::{self, CaseIndex, IndexQuery};
use mediation_projections::petitioners::{self, PetitionerSecret, RepeatBasis};
use mediation_projections::runner::Projection as _;
use mediation_projections::runner::{self, ProjectionStatus};
use mediation_store::{Cases, DEFAULT_CACHE_CAPACITY, Horizon, Options, RequestKey, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::AppError;
use crate::access::Caller;
use crate::command::{Action, CaseRef, Envelope};
use crate::paging::{decode_page_token, encode_page_token, page_size};

/// What a command did: the case, its version and the log position of its
/// last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The case id (the server's choice if the request left it empty).
    pub case_id: String,
    /// The case's version after the command.
    pub version: u64,
    /// The log position of the command's last event; 0 if it wrote none.
    pub position: u64,
    /// Whether this answers a retry of a request already carried out.
    pub replayed: bool,
}

/// A page of a list: at most `size` items after the position in `token`.
#[derive(Debug, Clone)]
pub struct PageRequest<'a> {
    /// The request's `page_size`.
    pub page_size: i32,
    /// The request's `page_token`.
    pub page_token: &'a str,
    /// The request's `min_position`.
    pub min_position: u64,
}

/// Filters of a list of cases; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Cases held within this division's subtree.
    pub division: Option<DivisionCode>,
    /// The stored name of the level (`Level::as_str`).
    pub level: Option<&'static str>,
    /// The stored name of the status (`DisputeStatus::as_str` /
    /// `PetitionStatus::as_str`).
    pub status: Option<&'static str>,
    /// The stored name of the dispute category.
    pub category: Option<&'static str>,
    /// The stored name of the risk grading.
    pub risk: Option<&'static str>,
    /// The stored name of the petition channel.
    pub channel: Option<&'static str>,
}

/// One case in a list or a get: its id, version and state.
#[derive(Debug, Clone)]
pub struct Found<A> {
    /// The case id.
    pub id: String,
    /// The case's version.
    pub version: u64,
    /// The case as it stands.
    pub case: A,
}

/// The most suspected repeats a receipt suggests.
const SUSPECTED_REPEATS: usize = 20;

/// How many of the newest matching petitions [`App::suspected_repeats`]
/// reads per subtree before it leaves out the petitioner's other matters:
/// bounded, so that a petitioner (or a unit) with a long history costs a
/// receipt no more than a short one.
const CANDIDATES_READ: u32 = 200;

/// How long a list waits for the index to reach a `min_position`.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(5);

/// How often a query waiting for a read model other than the case
/// projection looks at its checkpoint: those report their progress only
/// through the store.
const CHECKPOINT_POLL: Duration = Duration::from_millis(25);

/// How often a read of the log waiting for a `min_position` looks at the
/// readable head: it moves when other transactions end, in any process,
/// so no commit here announces it.
const LOG_POLL: Duration = Duration::from_millis(10);

/// What [`App::projection_report`] found.
#[derive(Debug, Clone)]
pub struct ProjectionReport {
    /// Every projection, in [`mediation_projections::all`]'s order.
    pub projections: Vec<ProjectionStatus>,
    /// What readers of the log can see, and what holds them back.
    pub horizon: Horizon,
}

/// The engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    disputes: Cases<Dispute>,
    petitions: Cases<Petition>,
    /// Bumped after every commit in this process: wakes the projection and
    /// live subscribers.
    committed: watch::Sender<u64>,
    /// How far the case index has applied the log.
    indexed: watch::Receiver<ProjectionStatus>,
    /// How far every projection has applied the log, as run here.
    statuses: Vec<watch::Receiver<ProjectionStatus>>,
    /// The secret the petitioner history keys petitioners under.
    petitioner_secret: PetitionerSecret,
}

/// The metadata stored with the events of a command made through `rpc`:
/// the division holding the case after it, and the one before when the
/// command moved the case, which event filters and scopes go by; and what
/// decides who may see a petition's events (see [`Held::confidentiality`]).
pub(crate) fn event_metadata<A: Held>(
    rpc: &'static str,
) -> impl Fn(&A, &A) -> HashMap<String, String> + Sync {
    move |before: &A, after: &A| {
        let mut metadata = HashMap::new();
        metadata.insert("rpc".to_owned(), rpc.to_owned());
        if let Some(division) = after.held_by() {
            metadata.insert("division".to_owned(), division.as_str().to_owned());
        }
        if let Some(prior) = before.held_by()
            && Some(prior) != after.held_by()
        {
            metadata.insert("prior_division".to_owned(), prior.as_str().to_owned());
        }
        after.confidentiality(&mut metadata);
        metadata
    }
}

/// The division holding a case: what scopes and event filters go by.
pub(crate) trait Held {
    fn held_by(&self) -> Option<&DivisionCode>;

    /// Adds to an event's metadata what decides who may see the event:
    /// every event of a petition then carries it, so that the event stream
    /// withholds a later event's text from the unit accused as it does the
    /// receipt's (信访工作条例 Art 30).
    fn confidentiality(&self, _metadata: &mut HashMap<String, String>) {}
}

impl Held for Dispute {
    fn held_by(&self) -> Option<&DivisionCode> {
        self.division()
    }
}

impl Held for Petition {
    fn held_by(&self) -> Option<&DivisionCode> {
        self.division()
    }

    fn confidentiality(&self, metadata: &mut HashMap<String, String>) {
        if let Some(unit) = self.complained_unit_id() {
            metadata.insert(COMPLAINED_UNIT_ID.to_owned(), unit.as_str().to_owned());
        }
        if let Some(unit) = self.complained_unit() {
            metadata.insert(COMPLAINED_UNIT.to_owned(), unit.as_str().to_owned());
        }
        if let Some(matter) = self.matter_type() {
            metadata.insert(MATTER_TYPE.to_owned(), matter.as_str().to_owned());
        }
    }
}

/// The metadata key of a petition's complained unit id, on each of its events.
pub const COMPLAINED_UNIT_ID: &str = "complained_unit_id";
/// The metadata key of a petition's complained unit by name.
pub const COMPLAINED_UNIT: &str = "complained_unit";
/// The metadata key of a petition's matter type.
pub const MATTER_TYPE: &str = "matter_type";

impl App {
    /// The engine over `store`, with `services` for the aggregates, and
    /// its background work (the read models), which runs until `stop`.
    /// Petitioners are keyed under the public development secret: for tests
    /// and made-up data (the server uses [`App::start_with`]).
    pub fn start(
        store: Store,
        services: Services,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        Self::start_with(
            store,
            services,
            DEFAULT_CACHE_CAPACITY,
            PetitionerSecret::development(),
            stop,
        )
    }

    /// [`App::start`], keeping up to `case_cache` cases of each kind in
    /// memory between commands (0: none; see `mediation_store::Cases`) and
    /// keying petitioners in read models under `petitioner_secret`.
    pub fn start_with(
        store: Store,
        services: Services,
        case_cache: usize,
        petitioner_secret: PetitionerSecret,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (committed, wake) = watch::channel(0);
        // Every read model runs here (each where it holds its lease); the
        // case projection's status is kept for read-your-writes.
        let mut runners = tokio::task::JoinSet::new();
        let mut indexed = None;
        let mut statuses = Vec::new();
        for projection in mediation_projections::all(&petitioner_secret) {
            let (report, status) = watch::channel(ProjectionStatus {
                name: projection.name(),
                ..ProjectionStatus::default()
            });
            if projection.name() == CaseIndex.name() {
                indexed = Some(status.clone());
            }
            statuses.push(status);
            runners.spawn(runner::run(
                store.clone(),
                projection,
                wake.clone(),
                report,
                stop.clone(),
            ));
        }
        let indexed = indexed.unwrap_or_else(|| {
            // `all()` always holds the case projection; should it not, lists
            // wait in vain rather than the server failing to start.
            tracing::error!("the case projection is not among the projections");
            watch::channel(ProjectionStatus::default()).1
        });
        let worker = tokio::spawn(async move {
            while let Some(done) = runners.join_next().await {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a projection runner panicked");
                }
            }
        });
        let app = Self {
            inner: Arc::new(Inner {
                disputes: Cases::new(&store, services.clone())
                    .with_cache(case_cache)
                    .with_sealing(crate::erasure::sealing(&petitioner_secret)),
                petitions: Cases::new(&store, services)
                    .with_cache(case_cache)
                    .with_sealing(crate::erasure::sealing(&petitioner_secret)),
                store,
                committed,
                indexed,
                statuses,
                petitioner_secret,
            }),
        };
        (app, worker)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The earlier petitions, newest first, that a petition just received
    /// with `action` (as `petition_id`) may repeat, within the caller's
    /// jurisdiction: the same petitioner about the same unit, or the same
    /// unit and facts (信访工作条例 Art 37 is about "the same facts"; which
    /// petitions share them stays the registrar's judgement). Read from the
    /// petitioner history, which trails the log by a moment. Suggestions
    /// only: when the history cannot answer, none, and a warning logged.
    pub async fn suspected_repeats(
        &self,
        caller: &Caller,
        petition_id: &str,
        action: &PetitionAction,
    ) -> Vec<String> {
        let PetitionAction::Receive {
            petitioner,
            complained_unit,
            facts,
            ..
        } = action
        else {
            return Vec::new();
        };
        let unit = complained_unit.as_ref().map(petitioners::normalise_unit);
        let Ok(subtrees) = self.subtrees(caller, None) else {
            return Vec::new();
        };
        let mut found: Vec<(chrono::DateTime<chrono::Utc>, String)> = Vec::new();
        for subtree in subtrees {
            let candidates = petitioners::candidates(
                self.store(),
                self.petitioner_secret(),
                &subtree,
                petitioner,
                complained_unit.as_ref(),
                facts,
                self.now(),
                petitioners::MAX_WINDOW_DAYS,
                CANDIDATES_READ,
            )
            .await;
            let candidates = match candidates {
                Ok(candidates) => candidates,
                Err(e) => {
                    tracing::warn!(error = %e, "suspected repeats could not be looked up");
                    return Vec::new();
                }
            };
            for (record, basis) in candidates {
                // The same person about another unit is another matter.
                let other_unit =
                    basis == RepeatBasis::SamePetitioner && record.complained_unit != unit;
                if record.case_id != petition_id && !other_unit {
                    found.push((record.received_at, record.case_id));
                }
            }
        }
        found.sort_by(|a, b| b.cmp(a));
        found.dedup();
        found.truncate(SUSPECTED_REPEATS);
        found.into_iter().map(|(_, id)| id).collect()
    }

    /// The secret petitioners are keyed under in read models.
    pub fn petitioner_secret(&self) -> &PetitionerSecret {
        &self.inner.petitioner_secret
    }

    /// The disputes.
    pub(crate) fn disputes(&self) -> &Cases<Dispute> {
        &self.inner.disputes
    }

    /// The petitions.
    pub(crate) fn petitions(&self) -> &Cases<Petition> {
        &self.inner.petitions
    }

    /// Tells the projection and live subscribers that the log grew.
    pub(crate) fn notify_commit(&self) {
        self.inner.committed.send_modify(|_| {});
    }

    /// The status of every projection, as this process last saw it.
    pub fn projections(&self) -> Vec<ProjectionStatus> {
        self.inner
            .statuses
            .iter()
            .map(|s| s.borrow().clone())
            .collect()
    }

    /// Every projection's status read fresh from the store (position and
    /// lag, the lag counting the events the horizon still hides), whether
    /// this process runs it (holds its lease), and what holds the log's
    /// horizon: what `ListProjections` and the metrics report.
    pub async fn projection_report(&self) -> Result<ProjectionReport, AppError> {
        let live = self.projections();
        let horizon = self.store().horizon().await?;
        let mut projections = Vec::new();
        for projection in mediation_projections::all(self.petitioner_secret()) {
            let active = live.iter().any(|s| s.name == projection.name() && s.active);
            projections.push(runner::status(self.store(), projection.as_ref(), active).await?);
        }
        Ok(ProjectionReport {
            projections,
            horizon,
        })
    }

    /// Waits, for at most `wait`, until projection `name` as run here
    /// satisfies `condition`; false if it did not in time.
    pub async fn wait_for_projection(
        &self,
        name: &str,
        wait: Duration,
        condition: impl FnMut(&ProjectionStatus) -> bool,
    ) -> bool {
        let Some(status) = self.inner.statuses.iter().find(|s| s.borrow().name == name) else {
            return false;
        };
        let mut status = status.clone();
        matches!(
            tokio::time::timeout(wait, status.wait_for(condition)).await,
            Ok(Ok(_))
        )
    }

    /// The status of the case projection in this process.
    pub fn case_projection(&self) -> ProjectionStatus {
        self.inner.indexed.borrow().clone()
    }

    /// Waits until the case projection (the case index and the SLA clocks)
    /// has applied the log up to `position`, for at most `wait`.
    pub async fn caught_up(&self, position: u64, wait: Duration) -> bool {
        let mut indexed = self.inner.indexed.clone();
        matches!(
            tokio::time::timeout(wait, indexed.wait_for(|s| s.position >= position)).await,
            Ok(Ok(_))
        )
    }

    /// A receiver that changes after every commit made through this
    /// process.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.inner.committed.subscribe()
    }

    /// Carries out a dispute command for `caller`: authorises `rpc`
    /// before `parse` reads the request, so that a caller without the role
    /// learns nothing about its fields.
    pub async fn dispute_command(
        &self,
        caller: &Caller,
        rpc: &'static str,
        parse: impl FnOnce() -> Result<Envelope<DisputeAction>, AppError>,
    ) -> Result<Outcome, AppError> {
        caller.authorise(rpc)?;
        let envelope = parse()?;
        // A case may be moved only into the caller's own jurisdiction.
        if let Some(division) = envelope.action.moves_into()
            && !caller.covers(division)
        {
            // A case the caller cannot see stays NOT_FOUND, whatever it asks.
            if let CaseRef::Existing { id, .. } = &envelope.case {
                get(&self.inner.disputes, caller, id.as_str()).await?;
            }
            return Err(outside(caller, division));
        }
        let creates = matches!(envelope.case, CaseRef::New { .. });
        self.command(
            &self.inner.disputes,
            caller,
            envelope,
            |by, action| DisputeCommand { by, action },
            |error, id| AppError::Dispute {
                id: id.to_owned(),
                creates,
                error,
            },
        )
        .await
    }

    /// Carries out a petition command for `caller`, as
    /// [`App::dispute_command`].
    pub async fn petition_command(
        &self,
        caller: &Caller,
        rpc: &'static str,
        parse: impl FnOnce() -> Result<Envelope<PetitionAction>, AppError>,
    ) -> Result<Outcome, AppError> {
        caller.authorise(rpc)?;
        let envelope = parse()?;
        let creates = matches!(envelope.case, CaseRef::New { .. });
        self.command(
            &self.inner.petitions,
            caller,
            envelope,
            |by, action| PetitionCommand { by, action },
            |error, id| AppError::Petition {
                id: id.to_owned(),
                creates,
                rpc,
                error,
            },
        )
        .await
    }

    /// The path every command takes once authorised: scope, idempotency,
    /// the expected version, and the events' metadata.
    async fn command<A, Act>(
        &self,
        cases: &Cases<A>,
        caller: &Caller,
        envelope: Envelope<Act>,
        command: impl FnOnce(Actor, Act) -> A::Command,
        domain: impl FnOnce(A::Error, &str) -> AppError,
    ) -> Result<Outcome, AppError>
    where
        A: Aggregate + SnapshotRevision + Clone + Held,
        A::Command: Clone,
        Act: Action,
    {
        let kind = A::TYPE.to_lowercase();
        let Envelope {
            rpc,
            request_id,
            actor,
            case,
            action,
            fingerprint,
        } = envelope;
        let creates = matches!(case, CaseRef::New { .. });
        let (id, expected_version, new_id) = match case {
            CaseRef::New {
                id,
                expected_version,
            } => {
                let Some(division) = action.creates_in() else {
                    return Err(AppError::invalid(
                        "division_code",
                        "a command that creates a case must name its division",
                    ));
                };
                if !caller.covers(division) {
                    return Err(outside(caller, division));
                }
                match id {
                    Some(id) => (id.as_str().to_owned(), expected_version, false),
                    None => (Uuid::new_v4().to_string(), expected_version, true),
                }
            }
            CaseRef::Existing {
                id,
                expected_version,
            } => (id.as_str().to_owned(), expected_version, false),
        };
        let visible = |case: &A, version: u64| {
            if version == 0 {
                return creates;
            }
            case.held_by().is_some_and(|d| caller.covers(d))
        };
        let metadata = event_metadata::<A>(rpc);
        let key = RequestKey {
            agency: caller.agency().as_str().to_owned(),
            request_id: request_id.as_str().to_owned(),
            fingerprint,
        };
        let options = Options {
            request: Some(&key),
            expected_version,
            visible: Some(&visible),
            metadata: Some(&metadata),
            new_id,
        };
        let by = Actor {
            id: actor,
            agency: caller.agency().clone(),
        };
        let committed = cases
            .execute_with(&id, command(by, action), options)
            .await
            .map_err(|e| AppError::from_command(e, &kind, &id, |e| domain(e, &id)))?;
        if let Some(position) = committed.position {
            self.inner.committed.send_replace(position);
        }
        Ok(Outcome {
            case_id: committed.aggregate_id,
            version: committed.version,
            position: committed.position.unwrap_or(0),
            replayed: committed.replayed,
        })
    }

    /// A dispute as it stands now; NOT_FOUND if it does not exist or lies
    /// outside the caller's scope.
    pub async fn get_dispute(&self, caller: &Caller, id: &str) -> Result<Found<Dispute>, AppError> {
        get(&self.inner.disputes, caller, id).await
    }

    /// A petition as it stands now; NOT_FOUND if it does not exist or lies
    /// outside the caller's scope.
    pub async fn get_petition(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Found<Petition>, AppError> {
        get(&self.inner.petitions, caller, id).await
    }

    /// A page of the disputes in the caller's scope matching `filter`, and
    /// the token of the next page ("" after the last).
    pub async fn list_disputes(
        &self,
        caller: &Caller,
        filter: CaseFilter,
        page: PageRequest<'_>,
    ) -> Result<(Vec<Found<Dispute>>, String), AppError> {
        self.list(caller, filter, page).await
    }

    /// A page of the petitions in the caller's scope matching `filter`, and
    /// the token of the next page ("" after the last).
    pub async fn list_petitions(
        &self,
        caller: &Caller,
        filter: CaseFilter,
        page: PageRequest<'_>,
    ) -> Result<(Vec<Found<Petition>>, String), AppError> {
        self.list(caller, filter, page).await
    }

    async fn list<A: Aggregate>(
        &self,
        caller: &Caller,
        filter: CaseFilter,
        page: PageRequest<'_>,
    ) -> Result<(Vec<Found<A>>, String), AppError> {
        caller.authorise(if A::TYPE == Dispute::TYPE {
            "ListDisputes"
        } else {
            "ListPetitions"
        })?;
        let limit = page_size(page.page_size)?;
        let query_key = format!("{}|{filter:?}", A::TYPE);
        let after = decode_page_token(page.page_token, &query_key)?;
        self.wait_for_index(page.min_position).await?;
        let query = IndexQuery {
            aggregate_type: A::TYPE.to_owned(),
            division: filter.division.as_ref().map(DivisionCode::subtree_bounds),
            scope: caller.scope().map(DivisionCode::subtree_bounds),
            level: filter.level.map(str::to_owned),
            status: filter.status.map(str::to_owned),
            category: filter.category.map(str::to_owned),
            risk: filter.risk.map(str::to_owned),
            channel: filter.channel.map(str::to_owned),
            after_case_id: after,
            limit: limit + 1,
        };
        let mut rows = case_index::list(&self.inner.store, &query).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = match (more, rows.last()) {
            (true, Some(last)) => encode_page_token(&query_key, &last.case_id),
            _ => String::new(),
        };
        let found = rows
            .into_iter()
            .map(|row| {
                Ok(Found {
                    case: case_index::decode::<A>(&row.case_id, row.state)?,
                    id: row.case_id,
                    version: row.version,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok((found, next))
    }

    /// Waits until the case index has applied the log up to `position`
    /// (a request's `min_position`); OUT_OF_RANGE at once if no event has
    /// been committed there.
    async fn wait_for_index(&self, position: u64) -> Result<(), AppError> {
        if position == 0 {
            return Ok(());
        }
        let mut indexed = self.inner.indexed.clone();
        if indexed.borrow().position >= position {
            return Ok(());
        }
        self.written("min_position", position).await?;
        match tokio::time::timeout(
            READ_YOUR_WRITES_WAIT,
            indexed.wait_for(|s| s.position >= position),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(AppError::ShuttingDown),
            Err(_) => Err(AppError::NotYet(format!(
                "the list has not yet caught up with position {position}; retry shortly"
            ))),
        }
    }

    /// OUT_OF_RANGE if no committed event has `position` (the request's
    /// field `field`) or a later one: a wait for it would end only by
    /// timing out, and a retry loop never. Asks the store, so only a
    /// caller about to wait asks. The committed head, not a read model's
    /// position nor the readable head: just after a command, its position
    /// may lie above both for a moment and must be waited for.
    pub async fn written(&self, field: &'static str, position: u64) -> Result<(), AppError> {
        let head = self.inner.store.committed_head().await?;
        if position > head {
            return Err(AppError::PositionNotWritten { field, position });
        }
        Ok(())
    }

    /// Waits until the log can be read up to `position` (a `ReadEvents`
    /// request's `min_position`): on PostgreSQL the readable log trails a
    /// command's acknowledgement for as long as older transactions run.
    /// OUT_OF_RANGE at once if no event has been committed there,
    /// UNAVAILABLE after [`READ_YOUR_WRITES_WAIT`].
    pub async fn wait_for_log(&self, position: u64) -> Result<(), AppError> {
        if position == 0 {
            return Ok(());
        }
        let store = &self.inner.store;
        let readable = move || async move { store.log_head().await.map_err(AppError::from) };
        if readable().await? >= position {
            return Ok(());
        }
        self.written("min_position", position).await?;
        let poll = async {
            loop {
                tokio::time::sleep(LOG_POLL).await;
                if readable().await? >= position {
                    return Ok(());
                }
            }
        };
        match tokio::time::timeout(READ_YOUR_WRITES_WAIT, poll).await {
            Ok(result) => result,
            Err(_) => Err(AppError::NotYet(format!(
                "the log cannot be read up to position {position} yet (an older transaction \
                 is still open); retry shortly"
            ))),
        }
    }
}

impl App {
    /// The services the aggregates use: the clock, the jurisdiction, the
    /// policy and the calendar.
    pub fn services(&self) -> &Services {
        self.inner.disputes.services()
    }

    /// Now, by the clock the aggregates use, so that "overdue" means what
    /// the cases' own deadlines mean.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.services().now()
    }

    /// The subtrees a query covers: `filter` if given (it must lie in the
    /// caller's scope), else the caller's scope, else every district of the
    /// jurisdiction (authentication off).
    pub fn subtrees(
        &self,
        caller: &Caller,
        filter: Option<DivisionCode>,
    ) -> Result<Vec<DivisionCode>, AppError> {
        if let Some(filter) = filter {
            if !caller.covers(&filter) {
                return Err(outside(caller, &filter));
            }
            return Ok(vec![filter]);
        }
        if let Some(scope) = caller.scope() {
            return Ok(vec![scope.clone()]);
        }
        Ok(self
            .services()
            .jurisdiction()
            .divisions()
            .filter(|d| d.level == Level::District)
            .map(|d| d.code.clone())
            .collect())
    }

    /// Read-your-writes for any read model: waits until `projection` has
    /// applied the log up to `position` (0: no wait), or fails with
    /// [`AppError::NotYet`] after [`READ_YOUR_WRITES_WAIT`]; fails at once
    /// with [`AppError::PositionNotWritten`] if no event has been committed
    /// at `position` or after.
    pub async fn reflect(&self, projection: &'static str, position: u64) -> Result<(), AppError> {
        if position == 0 {
            return Ok(());
        }
        let there = if projection == case_index::NAME {
            self.case_projection().position >= position
        } else {
            self.store().checkpoint(projection).await? >= position
        };
        if there {
            return Ok(());
        }
        self.written("min_position", position).await?;
        let reached = if projection == case_index::NAME {
            self.caught_up(position, READ_YOUR_WRITES_WAIT).await
        } else {
            // The other read models publish no progress in this process;
            // their checkpoints in the store say how far they are.
            let store = self.store();
            let poll = async {
                loop {
                    let at = store.checkpoint(projection).await?;
                    if at >= position {
                        return Ok::<(), AppError>(());
                    }
                    tokio::time::sleep(CHECKPOINT_POLL).await;
                }
            };
            match tokio::time::timeout(READ_YOUR_WRITES_WAIT, poll).await {
                Ok(result) => result.map(|()| true)?,
                Err(_) => false,
            }
        };
        if reached {
            Ok(())
        } else {
            Err(AppError::NotYet(format!(
                "the read model {projection} has not yet caught up with position {position}; \
                 retry shortly"
            )))
        }
    }
}

async fn get<A>(cases: &Cases<A>, caller: &Caller, id: &str) -> Result<Found<A>, AppError>
where
    A: Aggregate + SnapshotRevision + Clone + Held,
    A::Command: Clone,
{
    let kind = A::TYPE.to_lowercase();
    caller.authorise(if A::TYPE == Dispute::TYPE {
        "GetDispute"
    } else {
        "GetPetition"
    })?;
    CaseId::parse(id).map_err(|e| AppError::invalid(format!("{kind}_id"), e.reason))?;
    let loaded = cases.load(id).await.map_err(|e| {
        AppError::from_command(e, &kind, id, |e| {
            // Loading decides nothing, so the aggregate cannot refuse.
            AppError::Store(mediation_store::StoreError::Corrupt(format!(
                "{kind} {id} refused to load: {e}"
            )))
        })
    })?;
    match loaded {
        Some((case, version)) if case.held_by().is_some_and(|d| caller.covers(d)) => Ok(Found {
            id: id.to_owned(),
            version,
            case,
        }),
        _ => Err(AppError::not_found(&kind, id)),
    }
}

/// PERMISSION_DENIED for a division outside the caller's jurisdiction.
fn outside(caller: &Caller, division: &DivisionCode) -> AppError {
    AppError::PermissionDenied(format!(
        "division {division} is outside the jurisdiction of agency {}",
        caller.agency()
    ))
}
