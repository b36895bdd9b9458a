//! The engine behind the gRPC services: the cases of both kinds, the store
//! and the rules every command and query shares (authorisation, scope,
//! idempotency, error mapping). The services in `services/` only convert
//! between protobuf and domain types and call in here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::Aggregate;
use mediation_domain::SnapshotRevision;
use mediation_domain::dispute::{Dispute, DisputeAction, DisputeCommand};
use mediation_domain::petition::{Petition, PetitionAction, PetitionCommand};
use mediation_domain::services::Services;
use mediation_domain::values::{Actor, ActorId, CaseId, DivisionCode};
use mediation_projections::case_index::{self, CaseIndex, IndexQuery};
use mediation_projections::runner::Projection as _;
use mediation_projections::runner::{self, ProjectionStatus};
use mediation_proto::v1 as pb;
use mediation_store::{Cases, DEFAULT_CACHE_CAPACITY, Options, RequestKey, Store};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{
    command_status, dispute_status, invalid_field, invalid_field_with_message, not_found,
    petition_status, position_not_written, store_status,
};

/// Which case a command is for.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A command that may create the case (report, register, receive):
    /// `id` is the caller's choice or empty for a server-chosen id, and
    /// `division` is where the command puts the case, which must lie in the
    /// caller's scope.
    Create {
        /// The case id the caller chose, or "".
        id: &'a str,
        /// The division named in the command.
        division: &'a DivisionCode,
        /// When the case may exist already (registering a reported
        /// dispute): the version it must still be at.
        expected_version: Option<u64>,
    },
    /// A command on an existing case.
    Existing {
        /// The case id.
        id: &'a str,
        /// The version the case must still be at, if the caller asked.
        expected_version: Option<u64>,
    },
}

/// What identifies a mutating request, for authorisation, idempotency and
/// the history.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The RPC's method name as in the `.proto`, e.g. "HoldSession".
    pub rpc: &'static str,
    /// The caller's `request_id`.
    pub request_id: &'a str,
    /// The caller's `actor_id`.
    pub actor_id: &'a str,
    /// The request message, encoded, so that a reused `request_id` with a
    /// different request is told apart from a retry.
    pub encoded_request: &'a [u8],
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

/// How long a list waits for the index to reach a `min_position`.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(5);

/// How often a read of the log waiting for a `min_position` looks at the
/// readable head: it moves when other transactions end, in any process,
/// so no commit here announces it.
const LOG_POLL: Duration = Duration::from_millis(10);

/// The default and the largest `page_size`.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest `page_size`; larger requests are reduced to it.
pub const MAX_PAGE_SIZE: u32 = 1000;

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
}

/// The metadata stored with the events of a command made through `rpc`:
/// the division holding the case after it, and the one before when the
/// command moved the case, which event filters and scopes go by.
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
        metadata
    }
}

/// The division holding a case: what scopes and event filters go by.
pub(crate) trait Held {
    fn held_by(&self) -> Option<&DivisionCode>;
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
}

impl App {
    /// The engine over `store`, with `services` for the aggregates, and
    /// its background work (the case index), which runs until `stop`.
    pub fn start(
        store: Store,
        services: Services,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        Self::start_with_cache(store, services, DEFAULT_CACHE_CAPACITY, stop)
    }

    /// [`App::start`], keeping up to `case_cache` cases of each kind in
    /// memory between commands (0: none; see `mediation_store::Cases`).
    pub fn start_with_cache(
        store: Store,
        services: Services,
        case_cache: usize,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (committed, wake) = watch::channel(0);
        // Every read model runs here (each where it holds its lease); the
        // case projection's status is kept for read-your-writes.
        let mut runners = tokio::task::JoinSet::new();
        let mut indexed = None;
        let mut statuses = Vec::new();
        for projection in mediation_projections::all() {
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
                disputes: Cases::new(&store, services.clone()).with_cache(case_cache),
                petitions: Cases::new(&store, services).with_cache(case_cache),
                store,
                committed,
                indexed,
                statuses,
            }),
        };
        (app, worker)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
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

    /// Carries out `action` on a dispute for `caller`.
    pub async fn dispute_command(
        &self,
        caller: &Caller,
        target: Target<'_>,
        call: Call<'_>,
        action: DisputeAction,
    ) -> Result<pb::CommandOutcome, Status> {
        // A case may be moved only into the caller's own jurisdiction
        // (escalation, by contrast, hands it to the level above).
        if let DisputeAction::TakeOver { division } | DisputeAction::SendDown { division } = &action
            && !caller.covers(division)
        {
            caller.authorise(call.rpc)?;
            // A case the caller cannot see stays NOT_FOUND, whatever it asks.
            if let Target::Existing { id, .. } = target {
                get(&self.inner.disputes, caller, id).await?;
            }
            return Err(Status::permission_denied(format!(
                "division {division} is outside the jurisdiction of agency {}",
                caller.agency()
            )));
        }
        let command = |by| DisputeCommand { by, action };
        let creates = matches!(target, Target::Create { .. });
        self.command(
            &self.inner.disputes,
            caller,
            target,
            call,
            command,
            |e, id| dispute_status(e, id, creates),
        )
        .await
    }

    /// Carries out `action` on a petition for `caller`.
    pub async fn petition_command(
        &self,
        caller: &Caller,
        target: Target<'_>,
        call: Call<'_>,
        action: PetitionAction,
    ) -> Result<pb::CommandOutcome, Status> {
        let command = |by| PetitionCommand { by, action };
        let creates = matches!(target, Target::Create { .. });
        let rpc = call.rpc;
        self.command(
            &self.inner.petitions,
            caller,
            target,
            call,
            command,
            |e, id| petition_status(e, id, creates, rpc),
        )
        .await
    }

    /// The path every command takes: authorisation, scope, idempotency,
    /// the expected version, and the events' metadata.
    async fn command<A>(
        &self,
        cases: &Cases<A>,
        caller: &Caller,
        target: Target<'_>,
        call: Call<'_>,
        command: impl FnOnce(Actor) -> A::Command,
        domain_status: impl FnOnce(A::Error, &str) -> Status,
    ) -> Result<pb::CommandOutcome, Status>
    where
        A: Aggregate + SnapshotRevision + Clone + Held,
        A::Command: Clone,
    {
        caller.authorise(call.rpc)?;
        let kind = A::TYPE.to_lowercase();
        let request_id = parse_request_id(call.request_id)?;
        let by = Actor {
            id: ActorId::parse(call.actor_id).map_err(|e| invalid_field("actor_id", e.reason))?,
            agency: caller.agency().clone(),
        };
        let new_id = matches!(target, Target::Create { id: "", .. });
        let (id, expected_version) = match target {
            Target::Create {
                id,
                division,
                expected_version,
            } => {
                if !caller.covers(division) {
                    return Err(Status::permission_denied(format!(
                        "division {division} is outside the jurisdiction of agency {}",
                        caller.agency()
                    )));
                }
                let id = if id.is_empty() {
                    Uuid::new_v4().to_string()
                } else {
                    id.to_owned()
                };
                (id, expected_version)
            }
            Target::Existing {
                id,
                expected_version,
            } => (id.to_owned(), expected_version),
        };
        let case_id_field = format!("{kind}_id");
        CaseId::parse(&id).map_err(|e| invalid_field(&case_id_field, e.reason))?;
        let creates = matches!(target, Target::Create { .. });
        let visible = |case: &A, version: u64| {
            if version == 0 {
                return creates;
            }
            case.held_by().is_some_and(|d| caller.covers(d))
        };
        let metadata = event_metadata::<A>(call.rpc);
        let key = RequestKey {
            agency: caller.agency().as_str().to_owned(),
            request_id,
            fingerprint: fingerprint(call.rpc, call.encoded_request),
        };
        let options = Options {
            request: Some(&key),
            expected_version,
            visible: Some(&visible),
            metadata: Some(&metadata),
            new_id,
        };
        let committed = cases
            .execute_with(&id, command(by), options)
            .await
            .map_err(|e| command_status(e, &kind, &id, |e| domain_status(e, &id)))?;
        if let Some(position) = committed.position {
            self.inner.committed.send_replace(position);
        }
        Ok(pb::CommandOutcome {
            case_id: committed.aggregate_id,
            version: committed.version,
            position: committed.position.unwrap_or(0),
            replayed: committed.replayed,
        })
    }

    /// A dispute as it stands now; NOT_FOUND if it does not exist or lies
    /// outside the caller's scope.
    pub async fn get_dispute(&self, caller: &Caller, id: &str) -> Result<Found<Dispute>, Status> {
        get(&self.inner.disputes, caller, id).await
    }

    /// A petition as it stands now; NOT_FOUND if it does not exist or lies
    /// outside the caller's scope.
    pub async fn get_petition(&self, caller: &Caller, id: &str) -> Result<Found<Petition>, Status> {
        get(&self.inner.petitions, caller, id).await
    }

    /// A page of the disputes in the caller's scope matching `filter`, and
    /// the token of the next page ("" after the last).
    pub async fn list_disputes(
        &self,
        caller: &Caller,
        filter: CaseFilter,
        page: PageRequest<'_>,
    ) -> Result<(Vec<Found<Dispute>>, String), Status> {
        self.list(caller, filter, page).await
    }

    /// A page of the petitions in the caller's scope matching `filter`, and
    /// the token of the next page ("" after the last).
    pub async fn list_petitions(
        &self,
        caller: &Caller,
        filter: CaseFilter,
        page: PageRequest<'_>,
    ) -> Result<(Vec<Found<Petition>>, String), Status> {
        self.list(caller, filter, page).await
    }

    async fn list<A: Aggregate>(
        &self,
        caller: &Caller,
        filter: CaseFilter,
        page: PageRequest<'_>,
    ) -> Result<(Vec<Found<A>>, String), Status> {
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
        let mut rows = case_index::list(&self.inner.store, &query)
            .await
            .map_err(|e| store_status(&e))?;
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
                    case: case_index::decode::<A>(&row.case_id, row.state)
                        .map_err(|e| store_status(&e))?,
                    id: row.case_id,
                    version: row.version,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok((found, next))
    }

    /// Waits until the case index has applied the log up to `position`
    /// (a request's `min_position`); OUT_OF_RANGE at once if no event has
    /// been committed there.
    async fn wait_for_index(&self, position: u64) -> Result<(), Status> {
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
            Ok(Err(_)) => Err(Status::unavailable("the server is shutting down; retry")),
            Err(_) => Err(Status::unavailable(format!(
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
    pub(crate) async fn written(&self, field: &str, position: u64) -> Result<(), Status> {
        let head = self
            .inner
            .store
            .committed_head()
            .await
            .map_err(|e| store_status(&e))?;
        if position > head {
            return Err(position_not_written(field, position));
        }
        Ok(())
    }

    /// Waits until the log can be read up to `position` (a `ReadEvents`
    /// request's `min_position`): on PostgreSQL the readable log trails a
    /// command's acknowledgement for as long as older transactions run.
    /// OUT_OF_RANGE at once if no event has been committed there,
    /// UNAVAILABLE after [`READ_YOUR_WRITES_WAIT`].
    pub(crate) async fn wait_for_log(&self, position: u64) -> Result<(), Status> {
        if position == 0 {
            return Ok(());
        }
        let store = &self.inner.store;
        let readable = move || async move { store.log_head().await.map_err(|e| store_status(&e)) };
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
            Err(_) => Err(Status::unavailable(format!(
                "the log cannot be read up to position {position} yet (an older transaction \
                 is still open); retry shortly"
            ))),
        }
    }
}

async fn get<A>(cases: &Cases<A>, caller: &Caller, id: &str) -> Result<Found<A>, Status>
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
    CaseId::parse(id).map_err(|e| invalid_field(&format!("{kind}_id"), e.reason))?;
    let loaded = cases
        .load(id)
        .await
        .map_err(|e| command_status(e, &kind, id, |_| Status::internal("unexpected refusal")))?;
    match loaded {
        Some((case, version)) if case.held_by().is_some_and(|d| caller.covers(d)) => Ok(Found {
            id: id.to_owned(),
            version,
            case,
        }),
        _ => Err(not_found(&kind, id)),
    }
}

/// Checks a caller's request id: 1 to 128 characters, no control characters.
fn parse_request_id(id: &str) -> Result<String, Status> {
    if id.is_empty() {
        return Err(invalid_field_with_message(
            "request_id is required: choose a unique id (a UUID, say) for each request and \
             reuse it only to retry that request",
            "request_id",
            "must not be empty",
        ));
    }
    if id.chars().count() > 128 || id.chars().any(char::is_control) {
        return Err(invalid_field(
            "request_id",
            "at most 128 characters, no control characters",
        ));
    }
    Ok(id.to_owned())
}

/// The fingerprint of a request: SHA-256 over the RPC name and the encoded
/// message, in hex.
fn fingerprint(rpc: &str, encoded: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rpc.as_bytes());
    hasher.update([0]);
    hasher.update(encoded);
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The page size a request asks for, within bounds.
pub fn page_size(requested: i32) -> Result<u32, Status> {
    match requested {
        n if n < 0 => Err(invalid_field("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(u32::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
    }
}

/// A page token: opaque to clients; it binds the position to the query, so
/// that a token used with other filters is refused.
pub fn encode_page_token(query_key: &str, after: &str) -> String {
    let tag = &fingerprint("page", query_key.as_bytes())[..16];
    hex(format!("{tag}:{after}").as_bytes())
}

/// The position a page token continues after; `None` for the first page.
pub fn decode_page_token(token: &str, query_key: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        invalid_field(
            "page_token",
            "pass the next_page_token of the previous page unchanged, with the same filters",
        )
    };
    if !token.len().is_multiple_of(2) || token.len() > 1024 {
        return Err(invalid());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (tag, after) = text.split_once(':').ok_or_else(invalid)?;
    if tag != &fingerprint("page", query_key.as_bytes())[..16] {
        return Err(invalid());
    }
    Ok(Some(after.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_query() {
        let token = encode_page_token("Dispute|a", "case-9");
        assert_eq!(
            decode_page_token(&token, "Dispute|a").unwrap().as_deref(),
            Some("case-9")
        );
        assert!(decode_page_token(&token, "Dispute|b").is_err());
        assert!(decode_page_token("zz", "Dispute|a").is_err());
        assert_eq!(decode_page_token("", "x").unwrap(), None);
    }

    #[test]
    fn page_sizes_default_and_are_capped() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5).unwrap(), 5);
        assert_eq!(page_size(50_000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn request_ids_are_bounded() {
        assert!(parse_request_id("").is_err());
        assert!(parse_request_id(&"x".repeat(129)).is_err());
        assert!(parse_request_id("a\nb").is_err());
        assert!(parse_request_id("2f0c-retry-safe").is_ok());
    }
}
