//! The engine at the size of a province's year: a log of a million cases,
//! each with a running SLA clock. The cases are copies of a few hundred
//! template cases that the engine itself registered at times spread over
//! the past months, so their events are real ones and their deadlines
//! differ; the copies are appended in bulk, which is not what is measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use mediation_app::App;
use mediation_domain::services::ManualClock;
use mediation_proto::v1 as pb;
use mediation_store::{Backend, Store};
use tokio_util::sync::CancellationToken;

use mediation_api::config::{ConfigFiles, load_services};

use crate::workload::{self, Step, TOWNS, Target, VILLAGES};

/// How many template cases are copied.
const TEMPLATES: u64 = 240;

/// Registers the template cases, each at its own moment over the past 120
/// days: disputes at every village (some dispatched, so their clock is the
/// mediation clock) and petitions at every town. Then the deadline timers
/// catch up with today, as they would have in a store grown by use: every
/// warning and breach that has come by now is recorded (and a case whose
/// level's time ran out escalated), so the copies carry them too and the
/// boards meet the store a running engine keeps. Returns the ids.
async fn register_templates(store: &Store) -> anyhow::Result<Vec<(&'static str, String)>> {
    let now = Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    let services = load_services(&ConfigFiles::default(), clock.clone())?;
    let stop = CancellationToken::new();
    let (app, worker) = App::start(store.clone(), services, stop.clone());
    let mut target = Target::local(app.clone());
    let mut ids = Vec::new();
    for k in 0..TEMPLATES {
        clock.set(now - chrono::Duration::minutes(i64::try_from(k * 720).unwrap_or(0)));
        let request_id = uuid::Uuid::new_v4().to_string();
        let petition = k % 4 == 3;
        let k_at = k as usize;
        let step = if petition {
            Step::Receive(workload::receive(
                request_id,
                TOWNS[k_at % TOWNS.len()],
                format!("1380000{k:04}"),
            ))
        } else {
            Step::Register(workload::register(
                request_id,
                VILLAGES[k_at % VILLAGES.len()],
            ))
        };
        let outcome = target
            .send(step)
            .await
            .context("registering a template case")?
            .unwrap_or_default();
        if k % 2 == 0 && k % 4 != 3 {
            target
                .send(Step::Dispatch(workload::dispatch(
                    uuid::Uuid::new_v4().to_string(),
                    outcome.case_id.clone(),
                    format!("committee-{}", k % 24),
                    format!("Mediator {}", k % 40),
                )))
                .await
                .context("dispatching a template case")?;
        }
        ids.push((
            if petition { "Petition" } else { "Dispute" },
            outcome.case_id,
        ));
    }
    clock.set(now);
    // A sweep reads the clocks as the SLA read model has them, and each
    // warning it records moves the clock to its next threshold: sweep
    // until one finds nothing, the read model caught up before each.
    let mut rounds = 0;
    loop {
        rounds += 1;
        anyhow::ensure!(rounds <= 100, "the deadline timers did not run dry");
        let head = store.log_head().await?;
        anyhow::ensure!(
            app.caught_up(head, Duration::from_secs(60)).await,
            "the SLA read model did not reach the template cases"
        );
        let swept = app.sweep_timers(now).await?;
        if swept.recorded == 0 && swept.escalated == 0 {
            break;
        }
    }
    stop.cancel();
    let _ = worker.await;
    Ok(ids)
}

/// Appends copies of the templates until the log holds `cases` cases, in
/// transactions of at most about 100,000 events. Each copy of a petition is
/// another petitioner's (in clear, as events written before sealing were)
/// about facts of its own: thousands of petitions by one person at one
/// instant would make every copy a repeat of every other, which no store
/// holds. Returns the number of events in the log.
pub(crate) async fn seed(store: &Store, cases: u64, progress: impl Fn(u64)) -> anyhow::Result<u64> {
    let templates = register_templates(store).await?;
    let copies = cases.div_ceil(TEMPLATES).saturating_sub(1);
    let per_batch = 250u64;
    let mut from = 1u64;
    while from <= copies {
        let to = (from + per_batch - 1).min(copies);
        let (first, last) = (i64::try_from(from)?, i64::try_from(to)?);
        // Per aggregate type, so that the templates are found through the
        // log's primary key.
        for kind in ["Dispute", "Petition"] {
            let ids: Vec<&str> = templates
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| id.as_str())
                .collect();
            match store.backend() {
                Backend::Postgres(pool) => {
                    sqlx::query(
                        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                         event_version, payload, metadata) \
                         SELECT e.aggregate_type, e.aggregate_id || '-' || g, e.sequence, e.event_type, \
                                e.event_version, \
                                CASE WHEN e.event_type = 'PetitionReceived' THEN jsonb_set(jsonb_set( \
                                  e.payload, '{change,PetitionReceived,petitioner}', \
                                  jsonb_build_object('name', 'Petitioner ' || g || '-' || e.aggregate_id)), \
                                  '{change,PetitionReceived,facts}', \
                                  to_jsonb((e.payload #>> '{change,PetitionReceived,facts}') || ' (' || g || '-' || e.aggregate_id || ')')) \
                                ELSE e.payload END, \
                                e.metadata - 'request_id' - 'agency' - 'request_hash' - 'command_id' \
                         FROM generate_series($1::bigint, $2::bigint) AS g \
                         CROSS JOIN events e \
                         WHERE e.aggregate_type = $3 AND e.aggregate_id = ANY($4) \
                         ORDER BY g, e.aggregate_id, e.sequence",
                    )
                    .bind(first)
                    .bind(last)
                    .bind(kind)
                    .bind(&ids)
                    .execute(pool)
                    .await
                    .context("copying template cases")?;
                }
                Backend::Sqlite(pool) => {
                    sqlx::query(
                        "WITH RECURSIVE g(n) AS (SELECT ?1 UNION ALL SELECT n + 1 FROM g WHERE n < ?2) \
                         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                         event_version, payload, metadata) \
                         SELECT e.aggregate_type, e.aggregate_id || '-' || g.n, e.sequence, e.event_type, \
                                e.event_version, \
                                CASE WHEN e.event_type = 'PetitionReceived' THEN json_set(e.payload, \
                                  '$.change.PetitionReceived.petitioner', json_object('name', 'Petitioner ' || g.n || '-' || e.aggregate_id), \
                                  '$.change.PetitionReceived.facts', \
                                  json_extract(e.payload, '$.change.PetitionReceived.facts') || ' (' || g.n || '-' || e.aggregate_id || ')') \
                                ELSE e.payload END, \
                                json_remove(e.metadata, '$.request_id', '$.agency', '$.request_hash', '$.command_id') \
                         FROM g CROSS JOIN events e \
                         WHERE e.aggregate_type = ?3 \
                           AND e.aggregate_id IN (SELECT value FROM json_each(?4)) \
                         ORDER BY g.n, e.aggregate_id, e.sequence",
                    )
                    .bind(first)
                    .bind(last)
                    .bind(kind)
                    .bind(serde_json::to_string(&ids)?)
                    .execute(pool)
                    .await
                    .context("copying template cases")?;
                }
            }
        }
        progress((to + 1) * TEMPLATES);
        from = to + 1;
    }
    // A million rows appended at once leave the planner's statistics of
    // the log empty until autovacuum comes by, and the log's reads are
    // then planned as a sort of every later row per batch: analyse now, as
    // a store grown by use would have been.
    match store.backend() {
        Backend::Postgres(pool) => {
            sqlx::query("ANALYZE events").execute(pool).await?;
        }
        Backend::Sqlite(pool) => {
            sqlx::query("ANALYZE events").execute(pool).await?;
        }
    }
    count_events(store).await
}

/// The number of events in the log.
pub(crate) async fn count_events(store: &Store) -> anyhow::Result<u64> {
    let n: i64 = match store.backend() {
        Backend::Postgres(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(pool)
                .await?
        }
        Backend::Sqlite(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(pool)
                .await?
        }
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The running SLA clocks: how many, and how many of them are overdue
/// with their breach recorded.
pub(crate) async fn count_running_clocks(store: &Store) -> anyhow::Result<(u64, u64)> {
    let sql = "SELECT count(*), count(breached_at) FROM sla_clocks WHERE stopped_at IS NULL";
    let (running, overdue): (i64, i64) = match store.backend() {
        Backend::Postgres(pool) => sqlx::query_as(sql).fetch_one(pool).await?,
        Backend::Sqlite(pool) => sqlx::query_as(sql).fetch_one(pool).await?,
    };
    Ok((
        u64::try_from(running).unwrap_or(0),
        u64::try_from(overdue).unwrap_or(0),
    ))
}

/// What the replay reported for each read model.
#[derive(Debug)]
pub(crate) struct Rebuilt {
    /// Per projection: its name, events read and seconds taken.
    pub projections: Vec<(String, u64, f64)>,
    /// The whole replay, as timed from outside.
    pub elapsed: Duration,
}

/// Runs what `mediation replay` runs (every read model) on `database_url`,
/// in a child process of this same executable (its hidden
/// `replay-for-bench` subcommand), and times it.
pub(crate) async fn replay(database_url: &str) -> anyhow::Result<Rebuilt> {
    let exe = std::env::current_exe().context("locating the mediation-bench executable")?;
    let started = Instant::now();
    let output = tokio::process::Command::new(exe)
        .arg("replay-for-bench")
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("running the replay (`mediation-bench replay-for-bench`)")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        anyhow::bail!(
            "the replay failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // "rebuilt NAME: N events in T s (R events/s)"
    let stdout = String::from_utf8_lossy(&output.stdout);
    let projections = stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("rebuilt ")?;
            let (name, rest) = rest.split_once(": ")?;
            let mut words = rest.split_whitespace();
            let events = words.next()?.parse().ok()?;
            let seconds = words.nth(2)?.parse().ok()?;
            Some((name.to_owned(), events, seconds))
        })
        .collect();
    Ok(Rebuilt {
        projections,
        elapsed,
    })
}

/// The rebuild's ceiling in this design: the whole log read through
/// `Store::read_log` in the rebuild's batches, decoded and dropped, with
/// no read model written. Returns the events read and how long it took.
pub(crate) async fn read_whole_log(store: &Store) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let (mut position, mut events) = (0u64, 0u64);
    loop {
        let batch = store
            .read_log(position, mediation_projections::replay::REBUILD_BATCH)
            .await
            .context("reading the log")?;
        let Some(last) = batch.last() else { break };
        position = last.position;
        events += u64::try_from(batch.len()).unwrap_or(0);
    }
    Ok((events, started.elapsed()))
}

/// The main SLA queries a supervisor's board makes, by name.
pub(crate) fn sla_queries() -> Vec<(&'static str, Step)> {
    vec![
        (
            "ListClocks overdue, whole district, 50",
            Step::ListClocks(pb::ListClocksRequest {
                division_code: "990101000000".into(),
                view: pb::ClockView::Overdue.into(),
                page_size: 50,
                ..Default::default()
            }),
        ),
        (
            "ListClocks due within 7 days, one town, 50",
            Step::ListClocks(pb::ListClocksRequest {
                division_code: TOWNS[1].into(),
                view: pb::ClockView::DueSoon.into(),
                due_within_days: 7,
                page_size: 50,
                ..Default::default()
            }),
        ),
        (
            "ListClocks running, one village, 50",
            Step::ListClocks(pb::ListClocksRequest {
                division_code: VILLAGES[3].into(),
                status: pb::ClockStatus::Running.into(),
                page_size: 50,
                ..Default::default()
            }),
        ),
        (
            "ListBreachesByBody, one town",
            Step::ListBreaches(pb::ListBreachesByBodyRequest {
                division_code: TOWNS[1].into(),
                ..Default::default()
            }),
        ),
        (
            "ListBreachesByBody, whole district",
            Step::ListBreaches(pb::ListBreachesByBodyRequest {
                division_code: "990101000000".into(),
                ..Default::default()
            }),
        ),
    ]
}

/// The board's pages as a district supervisor opens them, with a case's
/// own page for `case_id`.
pub(crate) fn board_pages(case_id: &str) -> Vec<String> {
    let mut pages: Vec<String> = [
        "/",
        "/sla",
        "/sla?view=due_soon&days=7",
        "/sla?view=open&sort=holder",
        "/sla?view=open&stage=mediation",
        "/breaches",
        "/petitions",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    pages.push(format!("/case/dispute/{case_id}"));
    pages
}

/// Fetches `path` from the board at `board` the way a browser does (a
/// kept-alive HTTP/1.1 connection), reading the whole page; how long that
/// took, or why it failed.
pub(crate) async fn fetch_page(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        String,
    >,
    board: std::net::SocketAddr,
    path: &str,
) -> Result<Duration, String> {
    use http_body_util::BodyExt as _;
    let started = Instant::now();
    let uri: http::Uri = format!("http://{board}{path}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let response = client.get(uri).await.map_err(|e| format!("{e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(started.elapsed())
}

/// A dispute of the seeded store, for its case page.
pub(crate) async fn some_dispute(store: &Store) -> anyhow::Result<String> {
    let sql = "SELECT aggregate_id FROM events WHERE aggregate_type = 'Dispute' ORDER BY position DESC LIMIT 1";
    let id: String = match store.backend() {
        Backend::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        Backend::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
    };
    Ok(id)
}

/// `mediation export` of the whole log to Parquet, pseudonymised, into a
/// temporary folder (what the command runs, in this process).
pub(crate) async fn export_parquet(store: &Store) -> anyhow::Result<mediation_export::Exported> {
    let dir = tempfile::tempdir().context("a folder for the export")?;
    let secret = mediation_projections::petitioners::PetitionerSecret::new(
        mediation_app::access::new_token().as_bytes(),
    )
    .context("the export's secret")?;
    let options = mediation_export::Options {
        out: dir.path().to_owned(),
        format: mediation_export::Format::Parquet,
        since_position: None,
        until: None,
        with_read_models: false,
        identities: mediation_export::Identities::Pseudonymised(secret),
        batch_size: mediation_export::EXPORT_BATCH,
    };
    mediation_export::export(store, &options, |_| {})
        .await
        .context("exporting the log")
}
