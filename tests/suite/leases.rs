//! Leases and lag on PostgreSQL, as the database really behaves: a lease
//! whose session is cut (`pg_terminate_backend`, as an idle-session timeout
//! or a pooler would) under steady load, and a transaction left open in
//! another session that holds every log reader back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mediation_projections::case_index;
use mediation_projections::runner::{self, Projection, ProjectionStatus};
use mediation_proto::v1 as pb;
use mediation_proto::v1::sla_service_client::SlaServiceClient;
use mediation_store::{Batch, Cases, RecordedEvent, Store, StoreError};
use mediation_tests::TestDb;
use mediation_tests::probe::{Append, Gate, Probe};
use mediation_tests::server::TestServer;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a wait for something that happens within a second or two may
/// take before the test fails: generous, for a loaded CI machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The read model of [`Recorder`]: one row per committed batch.
const TABLE: &str = "lease_batches";

/// A projection that records each batch it commits: who applied it, the
/// range of the log it covered and the lease tenure it was fenced by.
struct Recorder {
    holder: &'static str,
}

#[async_trait::async_trait]
impl Projection for Recorder {
    fn name(&self) -> &'static str {
        "lease_recorder"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    async fn apply(&self, batch: &mut Batch, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let (from, epoch) = (batch.from(), batch.epoch());
        let to = events.last().map_or(from, |e| e.position);
        let table = batch.table(TABLE);
        let connection = batch.postgres().expect("a PostgreSQL batch");
        sqlx::query(&format!(
            "INSERT INTO {table} (holder, epoch, from_position, to_position, events) \
             VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(self.holder)
        .bind(epoch)
        .bind(i64::try_from(from).unwrap())
        .bind(i64::try_from(to).unwrap())
        .bind(i64::try_from(events.len()).unwrap())
        .execute(connection)
        .await?;
        Ok(())
    }
}

/// One "process": its own store (pool) on the test's schema and a runner of
/// [`Recorder`] on it.
struct Process {
    wake: watch::Sender<u64>,
    status: watch::Receiver<ProjectionStatus>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
    store: Store,
}

impl Process {
    async fn start(url: &str, holder: &'static str) -> Self {
        let store = Store::connect(url).await.unwrap();
        let (wake, woken) = watch::channel(0);
        let (report, status) = watch::channel(ProjectionStatus::default());
        let stop = CancellationToken::new();
        let handle = tokio::spawn(runner::run(
            store.clone(),
            Arc::new(Recorder { holder }),
            woken,
            report,
            stop.clone(),
        ));
        Self {
            wake,
            status,
            stop,
            handle,
            store,
        }
    }

    fn active(&self) -> bool {
        self.status.borrow().active
    }

    async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap();
        self.store.close().await;
    }
}

/// Waits, for at most [`PATIENCE`], until `condition` holds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < PATIENCE, "waited in vain for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The advisory lock key of the recorder's lease in the test's schema, as
/// the store computes it.
async fn lease_key(connection: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT hashtext(current_schema() || ':' || 'projection:' || 'lease_recorder')::bigint",
    )
    .fetch_one(connection)
    .await
    .unwrap()
}

/// The server process that holds the lease now, if any.
async fn lease_holder(connection: &mut PgConnection, key: i64) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
         AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(key)
    .fetch_optional(connection)
    .await
    .unwrap()
}

async fn batches_committed(connection: &mut PgConnection) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {TABLE}"))
        .fetch_one(connection)
        .await
        .unwrap()
}

/// Waits until the log has grown by at least `events` beyond `from`.
async fn log_grows(store: &Store, from: u64, events: usize) -> u64 {
    let started = Instant::now();
    loop {
        let grown = store
            .read_log(from, u32::try_from(events).unwrap())
            .await
            .unwrap();
        if grown.len() >= events {
            return grown.last().unwrap().position;
        }
        assert!(started.elapsed() < PATIENCE, "the writers stopped writing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two processes run the recorder while writers commit without pause and
/// wake both after every commit. Three times over, the lease holder's
/// session is terminated and a rival session takes the lock before the
/// runners can: the process that held the lease notices and stops (both
/// report inactive), and once the rival has opened a tenure of its own no
/// batch commits; then the rival lets go and one of the processes takes
/// over. In the end every
/// event was applied exactly once, in batches that chain from 0 to the
/// head, and no tenure's batches interleave with another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_lease_session_stops_its_holder_and_no_batch_commits_twice() {
    let Some(db) = TestDb::new(mediation_tests::Kind::Postgres).await else {
        return;
    };
    mediation_tests::guard(cut_lease_sessions(&db)).await;
    db.cleanup().await;
}

async fn cut_lease_sessions(db: &TestDb) {
    let mut rival = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(&format!(
        "CREATE TABLE {TABLE} (holder text NOT NULL, epoch bigint, \
         from_position bigint NOT NULL, to_position bigint NOT NULL, events bigint NOT NULL)"
    ))
    .execute(&mut rival)
    .await
    .unwrap();
    let key = lease_key(&mut rival).await;

    let a = Process::start(&db.url, "a").await;
    until("process a to take the lease", || a.active()).await;
    let b = Process::start(&db.url, "b").await;

    // Steady load: commands without pause, each waking both runners, so
    // that neither runner's poll ever expires.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (store, writing) = (db.store.clone(), writing.clone());
        let wakes = [a.wake.clone(), b.wake.clone()];
        tokio::spawn(async move {
            let probes = Cases::<Probe>::new(&store, Gate::default());
            let mut written = 0u64;
            while writing.load(Ordering::Relaxed) {
                let command = Append {
                    count: 2,
                    writer: "load".into(),
                };
                let case = format!("case-{}", written % 50);
                probes
                    .execute(&case, command, Default::default())
                    .await
                    .unwrap();
                written += 2;
                for wake in &wakes {
                    wake.send_modify(|_| {});
                }
            }
            written
        })
    };

    let mut head = log_grows(&db.store, 0, 100).await;
    let started = Instant::now();
    while batches_committed(&mut rival).await == 0 {
        assert!(started.elapsed() < PATIENCE, "process a applied nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for round in 0..3 {
        // Cut the holder's session and take the lock before the runners do;
        // should a runner win the race, cut its new session too.
        let cut = lease_holder(&mut rival, key)
            .await
            .unwrap_or_else(|| panic!("round {round}: nobody holds the lease"));
        let started = Instant::now();
        let mut victim = Some(cut);
        loop {
            if let Some(pid) = victim.take() {
                sqlx::query("SELECT pg_terminate_backend($1)")
                    .bind(pid)
                    .execute(&mut rival)
                    .await
                    .unwrap();
            }
            let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut rival)
                .await
                .unwrap();
            if taken {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "round {round}: the lock never came free"
            );
            let holder = lease_holder(&mut rival, key).await;
            if holder != Some(cut) {
                victim = holder;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        // The process whose session was cut notices by itself, under load,
        // and stops: nothing else tells it (the rival has not touched the
        // tenure yet).
        until("both processes to stop running the projection", || {
            !a.active() && !b.active()
        })
        .await;
        // The rival opens a tenure, as a process taking the lease does.
        // From then on no batch of an earlier tenure commits, however long
        // the load goes on (two stretches of writing, each of which a woken
        // runner would apply).
        sqlx::query(
            "UPDATE projection_checkpoints SET lease_epoch = lease_epoch + 1 \
             WHERE name = 'lease_recorder'",
        )
        .execute(&mut rival)
        .await
        .unwrap();
        let stopped = batches_committed(&mut rival).await;
        head = log_grows(&db.store, head, 40).await;
        head = log_grows(&db.store, head, 40).await;
        assert_eq!(
            batches_committed(&mut rival).await,
            stopped,
            "round {round}: a batch committed under an old tenure"
        );
        assert!(
            !a.active() && !b.active(),
            "round {round}: a process runs without the lease"
        );

        // Let go: one of the processes takes the lease over, and applies.
        let _: bool = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .fetch_one(&mut rival)
            .await
            .unwrap();
        until("a process to take the lease again", || {
            a.active() || b.active()
        })
        .await;
        let resumed = batches_committed(&mut rival).await;
        let started = Instant::now();
        while batches_committed(&mut rival).await == resumed {
            assert!(
                started.elapsed() < PATIENCE,
                "round {round}: no batch after the takeover"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        head = log_grows(&db.store, head, 40).await;
    }

    writing.store(false, Ordering::Relaxed);
    let written = writer.await.unwrap();
    let head = mediation_tests::read_all(&db.store, usize::try_from(written).unwrap())
        .await
        .last()
        .unwrap()
        .position;
    for process in [&a, &b] {
        process.wake.send_modify(|_| {});
    }
    until("the recorder to reach the head", || {
        [&a, &b].iter().any(|p| {
            let status = p.status.borrow();
            status.active && status.position >= head
        })
    })
    .await;
    a.stop().await;
    b.stop().await;

    // The batches chain from 0 to the head: each begins where the one
    // before ended, so no event was applied twice or skipped.
    let rows: Vec<(String, Option<i64>, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT holder, epoch, from_position, to_position, events FROM {TABLE} \
         ORDER BY from_position, to_position"
    ))
    .fetch_all(&mut rival)
    .await
    .unwrap();
    let mut at = 0;
    for (holder, _, from, to, _) in &rows {
        assert_eq!(
            *from, at,
            "a batch of {holder} began at {from}, not at {at}: {rows:?}"
        );
        at = *to;
    }
    assert_eq!(at, i64::try_from(head).unwrap());
    let applied: i64 = rows.iter().map(|r| r.4).sum();
    assert_eq!(
        applied,
        i64::try_from(written).unwrap(),
        "every event applied once"
    );

    // Tenures follow each other along the log, each of one process: the
    // batches of two holders never interleave.
    let mut tenures: BTreeMap<i64, &str> = BTreeMap::new();
    let mut last_epoch = 0;
    for (holder, epoch, from, _, _) in &rows {
        let epoch = epoch.expect("every live batch on PostgreSQL is fenced");
        assert!(
            epoch >= last_epoch,
            "at {from}, a batch of tenure {epoch} after one of tenure {last_epoch}"
        );
        last_epoch = epoch;
        let first = *tenures.entry(epoch).or_insert(holder.as_str());
        assert_eq!(first, holder, "tenure {epoch} held by two processes");
    }
    // One tenure at the start, and a new one after each of the three cuts.
    assert!(tenures.len() >= 4, "{tenures:?}");
}

/// While a transaction that holds a transaction id stays open in another
/// session, the case projection cannot read the events committed after it
/// began: `ListProjections` reports those events as lag, and names the
/// transaction that holds the horizon. Once it ends, the lag goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_counts_events_behind_an_open_transaction_and_names_it() {
    let Some(db) = TestDb::new(mediation_tests::Kind::Postgres).await else {
        return;
    };
    mediation_tests::guard(held_horizon(&db)).await;
    db.cleanup().await;
}

async fn projections(
    client: &mut SlaServiceClient<tonic::transport::Channel>,
) -> (pb::ProjectionStatus, pb::LogHorizon) {
    let response = client
        .list_projections(pb::ListProjectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let cases = response
        .projections
        .into_iter()
        .find(|p| p.name == case_index::NAME)
        .unwrap();
    (cases, response.horizon.expect("the horizon is reported"))
}

fn seconds(d: Option<prost_types::Duration>) -> f64 {
    let d = d.unwrap_or_default();
    d.seconds as f64 + f64::from(d.nanos) / 1e9
}

async fn held_horizon(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut client = SlaServiceClient::new(server.channel());
    let probes = Cases::<Probe>::new(&db.store, Gate::default());
    let append = || Append {
        count: 1,
        writer: "w".into(),
    };
    let first = probes
        .execute("before", append(), Default::default())
        .await
        .unwrap()
        .position
        .unwrap();
    let started = Instant::now();
    loop {
        let (cases, _) = projections(&mut client).await;
        if cases.position >= first {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the case projection never applied {first}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A transaction with an id, left open: from now on readers stop below
    // it. A read-only transaction would hold nobody back.
    let mut holder = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    let (pid, _xid): (i32, i64) = sqlx::query_as("SELECT pg_backend_pid(), txid_current()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    let hidden = probes
        .execute("after", append(), Default::default())
        .await
        .unwrap()
        .position
        .unwrap();

    // The event is committed but cannot be read; it counts as lag, and the
    // open transaction is named (once any older one elsewhere on the
    // server has ended: the oldest is the one that holds the horizon).
    let started = Instant::now();
    let (cases, horizon) = loop {
        let (cases, horizon) = projections(&mut client).await;
        if horizon.holder.as_ref().is_some_and(|h| h.pid == pid) {
            break (cases, horizon);
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the holder was never named: {horizon:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(cases.position < hidden, "{cases:?}");
    assert!(seconds(cases.lag) > 0.0, "lag while held back: {cases:?}");
    assert!(horizon.committed_position >= hidden, "{horizon:?}");
    assert!(horizon.readable_position < hidden, "{horizon:?}");
    let named = horizon.holder.unwrap();
    assert!(seconds(named.age) > 0.0, "{named:?}");
    assert_eq!(named.state, "idle in transaction", "{named:?}");
    assert!(!named.database.is_empty(), "{named:?}");
    assert!(named.transaction_id > 0, "{named:?}");

    // The lag grows while it stays open.
    let held = seconds(cases.lag);
    let started = Instant::now();
    loop {
        let (cases, _) = projections(&mut client).await;
        if seconds(cases.lag) > held {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the lag did not grow: {cases:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Ended, it holds nobody back: the projection catches up and its lag
    // is gone.
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    let started = Instant::now();
    loop {
        let (cases, horizon) = projections(&mut client).await;
        if cases.position >= hidden {
            assert_eq!(seconds(cases.lag), 0.0, "{cases:?}");
            assert!(horizon.holder.is_none_or(|h| h.pid != pid), "still named");
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the projection never caught up: {cases:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop().await;
}

/// A lease notices by itself that its session was cut, with nothing else
/// running: [`mediation_store::Lease::lost`] resolves, `alive` says so, and
/// the lock is free for another process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_notices_its_session_was_cut() {
    let Some(db) = TestDb::new(mediation_tests::Kind::Postgres).await else {
        return;
    };
    mediation_tests::guard(async {
        let mut lease = db.store.try_lease("cut-me").await.unwrap().unwrap();
        assert!(db.store.try_lease("cut-me").await.unwrap().is_none());
        let pid = lease.pid().expect("a PostgreSQL lease has a session");
        let mut admin = PgConnection::connect(&db.url).await.unwrap();
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
        tokio::time::timeout(PATIENCE, lease.lost())
            .await
            .expect("the lease never noticed");
        assert!(!lease.alive().await);
        let started = Instant::now();
        let mut taken = loop {
            if let Some(taken) = db.store.try_lease("cut-me").await.unwrap() {
                break taken;
            }
            assert!(started.elapsed() < PATIENCE, "the lock never came free");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(taken.alive().await);
        taken.release().await;
        lease.release().await;
    })
    .await;
    db.cleanup().await;
}
