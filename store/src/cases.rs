//! Carrying out commands on cases of one aggregate type.
//!
//! This replaces `cqrs_es::CqrsFramework::execute` and cqrs-es' snapshot
//! store, for two reasons:
//!
//! - callers need what was committed: the case's new version and the log
//!   position of its last event;
//! - cqrs-es 0.5's snapshot store builds the snapshot by applying the new
//!   events to an aggregate that `EventSink::write` has already applied them
//!   to, so snapshots count every new event twice (and, when a commit spans a
//!   snapshot boundary, are labelled with the wrong sequence). Here the
//!   snapshot is the aggregate exactly as the command left it, stored under
//!   the version it reflects.
//!
//! Events are read back through postgres-es / sqlite-es, but appended by
//! [`crate::append`]: one statement per command that reports the log
//! position, and group commit on SQLite. In-process queries are
//! deliberately absent: read models follow the global log, so a crash
//! between commit and update cannot lose an update.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventRepository};
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventEnvelope};
use mediation_domain::SnapshotRevision;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;

use crate::append::{self, Append, AppendError, NewEvent, NewRequest, NewSnapshot};
use crate::db::{Backend, Store};
use crate::{CommandError, RecordedEvent, Sealing, StoreError};

/// A case's snapshot is refreshed whenever a commit takes its version past a
/// multiple of this, so that loading reads a snapshot and a short tail.
pub const SNAPSHOT_EVERY: u64 = 20;

enum Repository {
    Postgres(PostgresEventRepository),
    Sqlite(SqliteEventRepository),
}

/// How many cases [`Cases::new`] keeps in memory; see [`Cases::with_cache`].
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// The cases of aggregate type `A`: load them, and carry out commands.
pub struct Cases<A: Aggregate> {
    store: Store,
    repository: Repository,
    services: A::Services,
    /// The cases this process committed to last, as its commands left them,
    /// with their versions. A command on a cached case decides on the cached
    /// state without loading it; the database's key on (case, sequence)
    /// still judges, so a state made stale by another process (or a
    /// rebuild) costs one conflict and one reload, never a wrong write.
    cache: Option<std::sync::Mutex<lru::LruCache<String, (A, u64)>>>,
    /// How identities are sealed before they are appended; `None`: written
    /// as the events have them.
    sealing: Option<Sealing>,
}

impl<A: Aggregate> std::fmt::Debug for Cases<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cases")
            .field("aggregate_type", &A::TYPE)
            .field("store", &self.store.kind())
            .finish()
    }
}

/// What makes a command idempotent: the caller's key for the request, and a
/// fingerprint of the request itself. A second command with the same agency
/// and request id is not carried out: it gets the first one's outcome if the
/// fingerprints match, and [`CommandError::RequestReused`] if they do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// Who chose the request id; ids of different agencies never collide.
    pub agency: String,
    /// The caller's id for the request.
    pub request_id: String,
    /// A hash of the request, to tell a retry from a reused id.
    pub fingerprint: String,
}

/// Whether a caller may act on a case, given the case and its version.
pub type Visible<'f, A> = dyn Fn(&A, u64) -> bool + Sync + 'f;

/// The metadata for a command's events, from the case before and after it.
pub type Metadata<'f, A> = dyn Fn(&A, &A) -> HashMap<String, String> + Sync + 'f;

/// How to carry out a command beyond deciding it: see [`Cases::execute_with`].
pub struct Options<'a, A> {
    /// Makes the command idempotent.
    pub request: Option<&'a RequestKey>,
    /// The version the case must be at; otherwise nothing is written and
    /// the result is [`CommandError::WrongVersion`].
    pub expected_version: Option<u64>,
    /// Whether the caller may act on the case as loaded, given its version
    /// (0: the case does not exist yet); if not, the result is
    /// [`CommandError::NotFound`].
    pub visible: Option<&'a Visible<'a, A>>,
    /// The metadata to store with the events, from the case before and
    /// after the command.
    pub metadata: Option<&'a Metadata<'a, A>>,
    /// The caller has just made the case's id up (a fresh UUID), so the
    /// case cannot exist and is not loaded; should it exist after all, the
    /// key on (case, sequence) refuses the command as a conflict.
    pub new_id: bool,
}

impl<A> Default for Options<'_, A> {
    fn default() -> Self {
        Self {
            request: None,
            expected_version: None,
            visible: None,
            metadata: None,
            new_id: false,
        }
    }
}

impl<A> std::fmt::Debug for Options<'_, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("request", &self.request)
            .field("expected_version", &self.expected_version)
            .field("new_id", &self.new_id)
            .finish_non_exhaustive()
    }
}

/// What a command committed.
#[derive(Debug)]
pub struct Committed<A: Aggregate> {
    /// The case the command acted on. For a repeated request, the case the
    /// first execution acted on.
    pub aggregate_id: String,
    /// True when this repeats the outcome of an earlier execution of the
    /// same request, and nothing was written; `events` is then empty.
    pub replayed: bool,
    /// The case's version after the command: the sequence of its last event.
    pub version: u64,
    /// The log position of the last event committed; `None` when the
    /// command changed nothing, or (rarely) when the commit succeeded but
    /// the position could not be read back.
    pub position: Option<u64>,
    /// The events committed, in order.
    pub events: Vec<EventEnvelope<A>>,
}

impl<A> Cases<A>
where
    A: Aggregate + SnapshotRevision + Clone,
    A::Command: Clone,
{
    /// Cases of type `A` in `store`, handled with `services`.
    pub fn new(store: &Store, services: A::Services) -> Self {
        let repository = match store.backend() {
            Backend::Postgres(pool) => {
                Repository::Postgres(PostgresEventRepository::new(pool.clone()))
            }
            Backend::Sqlite(pool) => Repository::Sqlite(SqliteEventRepository::new(pool.clone())),
        };
        Self {
            store: store.clone(),
            repository,
            services,
            cache: NonZeroUsize::new(DEFAULT_CACHE_CAPACITY)
                .map(|n| std::sync::Mutex::new(lru::LruCache::new(n))),
            sealing: None,
        }
    }

    /// Seals the identities in every event appended from now on
    /// ([`crate::Sealing`]), so that a person can be forgotten.
    pub fn with_sealing(mut self, sealing: Sealing) -> Self {
        self.sealing = Some(sealing);
        self
    }

    /// Drops case `id` from this process's cache: its next command loads
    /// it from the store.
    pub fn evict(&self, id: &str) {
        self.forget(id);
    }

    /// Keeps at most `capacity` cases in memory (0: none, every command
    /// loads its case).
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache =
            NonZeroUsize::new(capacity).map(|n| std::sync::Mutex::new(lru::LruCache::new(n)));
        self
    }

    /// The cached state and version of case `id`, if any.
    fn cached(&self, id: &str) -> Option<(A, u64)> {
        let cache = self.cache.as_ref()?;
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(id).cloned()
    }

    /// Remembers case `id` at `version`, unless a later version is cached
    /// (two commands of this process may finish out of order).
    fn remember(&self, id: &str, case: A, version: u64) {
        let Some(cache) = &self.cache else { return };
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match cache.get_mut(id) {
            Some(entry) if entry.1 >= version => {}
            Some(entry) => *entry = (case, version),
            None => {
                cache.put(id.to_owned(), (case, version));
            }
        }
    }

    /// Forgets case `id`.
    fn forget(&self, id: &str) {
        if let Some(cache) = &self.cache {
            let mut cache = cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.pop(id);
        }
    }

    /// The services commands are handled with.
    pub fn services(&self) -> &A::Services {
        &self.services
    }

    /// Loads case `id`, lets the aggregate decide on `command`, and commits
    /// the events it emits, all or none, with `metadata` on each. If another
    /// command on the same case commits in between, nothing is written and
    /// the result is [`CommandError::Conflict`].
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let metadata = move |_: &A, _: &A| metadata.clone();
        let options = Options {
            metadata: Some(&metadata),
            ..Options::default()
        };
        self.execute_with(id, command, options).await
    }

    /// [`Cases::execute`], with an idempotency key, an expected version, a
    /// visibility check and metadata computed from the case; see [`Options`].
    #[tracing::instrument(skip(self, command, options), fields(aggregate = A::TYPE))]
    pub async fn execute_with(
        &self,
        id: &str,
        command: A::Command,
        options: Options<'_, A>,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        // The request is looked up only when the command did not go through
        // as new: a repeat either fails in the aggregate (the step is done
        // already), is refused by the database (the request is recorded
        // under another execution), or changes nothing. This spares the
        // common case, a new request, a round trip.
        let request = options.request;
        let outcome = self.decide_and_append(id, command, &options).await;
        let repeat_possible = match &outcome {
            Ok(committed) => committed.events.is_empty(),
            Err(_) => true,
        };
        if let Some(request) = request
            && repeat_possible
            && let Some(earlier) = self.earlier(request).await?
        {
            return earlier;
        }
        outcome
    }

    /// [`Cases::execute_with`] without the look-up of an earlier execution.
    ///
    /// A cached case is decided on without loading it. Only a commit is
    /// trusted from the cache: any other outcome (a refusal, a conflict, a
    /// version or visibility mismatch, nothing to write) may come from a
    /// stale state, so the case is loaded and the command decided once more.
    async fn decide_and_append(
        &self,
        id: &str,
        command: A::Command,
        options: &Options<'_, A>,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let command = match self.cached(id) {
            Some((case, version)) => {
                let again = command.clone();
                match self.decide(id, case, version, command, options).await {
                    Ok(committed) if !committed.events.is_empty() => return Ok(committed),
                    Err(CommandError::Store(e)) => return Err(CommandError::Store(e)),
                    _ => {
                        self.forget(id);
                        again
                    }
                }
            }
            None => command,
        };
        let (case, loaded) = if options.new_id {
            (A::default(), 0)
        } else {
            let context = self.load_context(id).await?;
            (context.aggregate, context.current_sequence as u64)
        };
        let outcome = self.decide(id, case, loaded, command, options).await;
        match outcome {
            Err(CommandError::Conflict { .. }) => {
                // The case moved on under us: say to which version, as the
                // expected-version refusal does.
                let actual = self.current_version(id).await.ok();
                Err(CommandError::Conflict { actual })
            }
            other => other,
        }
    }

    /// The version of case `id` in the store: the sequence of its last event.
    async fn current_version(&self, id: &str) -> Result<u64, StoreError> {
        let version: Option<i64> = match self.store.backend() {
            Backend::Postgres(pool) => sqlx::query_scalar(
                "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
            )
            .bind(A::TYPE)
            .bind(id)
            .fetch_one(pool)
            .await?,
            Backend::Sqlite(pool) => sqlx::query_scalar(
                "SELECT max(sequence) FROM events WHERE aggregate_type = ? AND aggregate_id = ?",
            )
            .bind(A::TYPE)
            .bind(id)
            .fetch_one(pool)
            .await?,
        };
        Ok(version.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }

    /// Decides `command` on `case` at version `loaded` and commits what it
    /// emits.
    async fn decide(
        &self,
        id: &str,
        mut case: A,
        loaded: u64,
        command: A::Command,
        options: &Options<'_, A>,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        if let Some(visible) = options.visible
            && !visible(&case, loaded)
        {
            return Err(CommandError::NotFound);
        }
        if let Some(expected) = options.expected_version
            && expected != loaded
        {
            return Err(CommandError::WrongVersion {
                expected,
                actual: loaded,
            });
        }
        let before = options.metadata.map(|_| case.clone());
        let sink = EventSink::default();
        case.handle(command, &self.services, &sink)
            .await
            .map_err(CommandError::Domain)?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok(Committed {
                aggregate_id: id.to_owned(),
                replayed: false,
                version: loaded,
                position: None,
                events: Vec::new(),
            });
        }
        // The sink has applied the events: this is the case after the command.
        let after = case;
        let mut metadata = match (options.metadata, &before) {
            (Some(f), Some(before)) => f(before, &after),
            _ => HashMap::new(),
        };
        let request = options.request.map(|request| NewRequest {
            agency: request.agency.clone(),
            request_id: request.request_id.clone(),
            fingerprint: request.fingerprint.clone(),
            command_id: uuid::Uuid::new_v4().to_string(),
        });
        if let Some(request) = &request {
            metadata.insert("agency".into(), request.agency.clone());
            metadata.insert("request_id".into(), request.request_id.clone());
            metadata.insert("request_hash".into(), request.fingerprint.clone());
            metadata.insert("command_id".into(), request.command_id.clone());
        }
        let version = loaded + events.len() as u64;
        let crosses_snapshot = version / SNAPSHOT_EVERY > loaded / SNAPSHOT_EVERY;
        let snapshot = if crosses_snapshot {
            match serde_json::to_string(&after) {
                Ok(payload) => Some(NewSnapshot {
                    version: i64::try_from(version).unwrap_or(i64::MAX),
                    revision: i64::from(A::SNAPSHOT_REVISION),
                    payload,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, case = id, "snapshot not serialisable; loads read more events");
                    None
                }
            }
        } else {
            None
        };
        let mut payloads = events
            .iter()
            .map(|e| {
                serde_json::to_value(e).map_err(|err| {
                    StoreError::Corrupt(format!("an event of {id} is not serialisable: {err}"))
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if let Some(sealing) = &self.sealing {
            self.store
                .seal_identities(sealing, A::TYPE, id, &mut payloads)
                .await?;
        }
        let append = Append {
            aggregate_type: A::TYPE,
            aggregate_id: id.to_owned(),
            after: loaded,
            events: events
                .iter()
                .zip(payloads)
                .map(|(e, payload)| NewEvent {
                    event_type: e.event_type(),
                    event_version: e.event_version(),
                    payload,
                })
                .collect(),
            metadata: serde_json::to_value(&metadata).unwrap_or_default(),
            request,
            snapshot,
        };
        let appended = match self.store.backend() {
            Backend::Postgres(pool) => append::postgres(pool, &append).await,
            Backend::Sqlite(pool) => self.store.sqlite_appender(pool).append(append).await,
        };
        let last_position = match appended {
            Ok(position) => position,
            // A concurrent execution of the same request may have won: the
            // database refused this one's request record, or its events
            // collided on the same case. The caller looks for the winner.
            Err(AppendError::Conflict) => {
                self.forget(id);
                return Err(CommandError::Conflict { actual: None });
            }
            Err(AppendError::Store(e)) => {
                // The commit may or may not have happened: trust the store.
                self.forget(id);
                return Err(CommandError::Store(e));
            }
        };
        self.remember(id, after, version);
        let position = Some(last_position);
        let committed = events
            .into_iter()
            .zip(loaded + 1..)
            .map(|(payload, sequence)| EventEnvelope {
                aggregate_id: id.to_owned(),
                sequence: sequence as usize,
                payload,
                metadata: metadata.clone(),
            })
            .collect();
        Ok(Committed {
            aggregate_id: id.to_owned(),
            replayed: false,
            version,
            position,
            events: committed,
        })
    }

    /// The outcome of an earlier execution of `request`, if there was one:
    /// its result if the request is the same, a refusal if it differs.
    async fn earlier(
        &self,
        request: &RequestKey,
    ) -> Result<Option<Result<Committed<A>, CommandError<A::Error>>>, StoreError> {
        let Some(found) = self
            .store
            .find_request(&request.agency, &request.request_id)
            .await?
        else {
            return Ok(None);
        };
        if found.fingerprint != request.fingerprint || found.aggregate_type != A::TYPE {
            return Ok(Some(Err(CommandError::RequestReused)));
        }
        Ok(Some(Ok(Committed {
            aggregate_id: found.aggregate_id,
            replayed: true,
            version: found.version,
            position: Some(found.position),
            events: Vec::new(),
        })))
    }

    /// Case `id` as it stands now, with its version; `None` if it has no events.
    #[tracing::instrument(skip(self), fields(aggregate = A::TYPE))]
    pub async fn load(&self, id: &str) -> Result<Option<(A, u64)>, CommandError<A::Error>> {
        let context = self.load_context(id).await?;
        if context.current_sequence == 0 {
            return Ok(None);
        }
        Ok(Some((context.aggregate, context.current_sequence as u64)))
    }

    /// The latest snapshot, if it still deserialises, and the events after it.
    async fn load_context(
        &self,
        id: &str,
    ) -> Result<EventStoreAggregateContext<A>, CommandError<A::Error>> {
        let snapshot = match self.load_snapshot(id).await? {
            Some((payload, version)) => match serde_json::from_value::<A>(payload) {
                Ok(aggregate) => Some((aggregate, version)),
                Err(e) => {
                    tracing::warn!(error = %e, case = id, "snapshot ignored: it no longer deserialises");
                    None
                }
            },
            None => None,
        };
        let (aggregate, version) = snapshot.unwrap_or_default();
        let context = match &self.repository {
            Repository::Postgres(reader) => {
                replay(reader, &self.store, id, aggregate, version).await
            }
            Repository::Sqlite(reader) => replay(reader, &self.store, id, aggregate, version).await,
        }?;
        Ok(context)
    }

    async fn load_snapshot(&self, id: &str) -> Result<Option<(Value, u64)>, StoreError> {
        let revision = i64::from(A::SNAPSHOT_REVISION);
        let row: Option<(Value, i64)> = match self.store.backend() {
            Backend::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT payload, version FROM case_snapshots \
                     WHERE aggregate_type = $1 AND aggregate_id = $2 AND revision = $3",
                )
                .bind(A::TYPE)
                .bind(id)
                .bind(revision)
                .fetch_optional(pool)
                .await?
            }
            Backend::Sqlite(pool) => {
                let row: Option<(String, i64)> = sqlx::query_as(
                    "SELECT payload, version FROM case_snapshots \
                     WHERE aggregate_type = ? AND aggregate_id = ? AND revision = ?",
                )
                .bind(A::TYPE)
                .bind(id)
                .bind(revision)
                .fetch_optional(pool)
                .await?;
                // Unreadable text is treated like an outdated snapshot.
                row.and_then(|(text, v)| serde_json::from_str(&text).ok().map(|p| (p, v)))
            }
        };
        Ok(row.map(|(payload, version)| (payload, u64::try_from(version).unwrap_or(0))))
    }
}

/// Applies the events of case `id` after `version` to `aggregate`, each
/// read in the current shape through [`crate::upcast`], as every reader of
/// the log reads them.
async fn replay<A, R>(
    reader: &R,
    store: &Store,
    id: &str,
    mut aggregate: A,
    version: u64,
) -> Result<EventStoreAggregateContext<A>, CommandError<A::Error>>
where
    A: Aggregate,
    R: PersistedEventRepository,
{
    let events = if version == 0 {
        reader.get_events::<A>(id).await
    } else {
        reader.get_last_events::<A>(id, version as usize).await
    }
    .map_err(AggregateError::<A::Error>::from)?;
    let mut sequence = version as usize;
    let mut current = Vec::with_capacity(events.len());
    for serialized in events {
        sequence = serialized.sequence;
        let row = RecordedEvent {
            position: 0,
            event_id: uuid::Uuid::nil(),
            recorded_at: chrono::DateTime::UNIX_EPOCH,
            aggregate_type: serialized.aggregate_type,
            aggregate_id: serialized.aggregate_id,
            sequence: sequence as u64,
            event_type: serialized.event_type,
            event_version: serialized.event_version,
            payload: serialized.payload,
            metadata: Value::Null,
            part: 0,
            parts: 1,
        };
        current.extend(crate::upcast(row)?);
    }
    store.open_identities(&mut current).await?;
    for event in current {
        let payload: A::Event = serde_json::from_value(event.payload).map_err(|e| {
            tracing::error!(error = %e, case = id, sequence = event.sequence, "stored event could not be deserialized");
            StoreError::Corrupt(
                "the case's stored events do not match this version of the engine".into(),
            )
        })?;
        aggregate.apply(payload);
    }
    Ok(EventStoreAggregateContext {
        aggregate_id: id.to_owned(),
        aggregate,
        current_sequence: sequence,
        current_snapshot: None,
    })
}
