//! `mediation-bench`: the engine under a realistic load, side by side with
//! what the database alone does with the same appends, in one run.
//!
//! Phases, in order (see docs/BENCHMARKS.md for what each figure means):
//!
//! 1. **store**: the workload handed to the service code in this process
//!    (no network), at `--store-clients`; then the database's ceiling at
//!    the same concurrency.
//! 2. **grpc**: the server (what `mediation serve` runs) in a child
//!    process, driven over gRPC at `--grpc-clients`, then the ceiling again
//!    at that concurrency; then fixed offered rates (`--rates`), for latency
//!    and projection lag.
//! 3. **scale**: the log grown to `--cases` cases; a replay (what
//!    `mediation replay` runs) timed over it, the SLA board queries timed
//!    over its open clocks, and the server's peak memory with all of it.
//!
//! It works on a database of its own: `<name>_bench` beside the one
//! `DATABASE_URL` names on PostgreSQL (dropped and created anew), or a
//! SQLite file in a temporary directory.
//!
//! The child processes are this same executable, run with a hidden
//! subcommand that hands over to the `mediation` command's own code
//! (`mediation_api::cli`): one build, and the server is the production one.
#![forbid(unsafe_code)]

mod ceiling;
mod measure;
mod report;
mod scale;
mod server;
mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mediation_api::config::{ConfigFiles, load_services};
use mediation_domain::services::SystemClock;
use mediation_projections::records::LogPetitionRecords;
use mediation_store::{Store, redact};
use tokio_util::sync::CancellationToken;

use report::{Figure, Report, Run};
use server::ServerProcess;
use workload::{Mix, Target};

/// The allocator `mediation` itself runs with, so that the bench's child
/// processes (this executable) measure the production server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "mediation-bench",
    version,
    about = "Measure the mediation engine under a realistic load beside the database's own \
             ceiling, and print a Markdown report (see docs/BENCHMARKS.md)"
)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
    /// The bench's own child processes; not for people.
    #[command(subcommand)]
    internal: Option<Internal>,
}

/// What the bench runs in its child processes: the `mediation` command's
/// own code, so that what is measured is the production server.
#[derive(Debug, Subcommand)]
enum Internal {
    /// `mediation serve`, as the server under test.
    #[command(hide = true)]
    ServeForBench(Box<mediation_api::cli::ServeArgs>),
    /// `mediation replay`, timed over the grown log.
    #[command(hide = true)]
    ReplayForBench(mediation_api::cli::ReplayArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mediation_api::telemetry::init(mediation_api::telemetry::LogFormat::Text);
    let cli = Cli::parse();
    let done = match cli.internal {
        None => run(cli.bench).await,
        Some(Internal::ServeForBench(args)) => mediation_api::cli::serve(*args).await,
        Some(Internal::ReplayForBench(args)) => mediation_api::cli::replay(args).await,
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The phases `--phases` can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// In-process workload and the ceiling at the same concurrency.
    Store,
    /// The workload over gRPC: closed loop, ceiling, fixed rates.
    Grpc,
    /// A million cases: replay rate, SLA queries, memory.
    Scale,
}

/// The options of `mediation-bench`.
#[derive(Debug, Clone, clap::Args)]
struct BenchArgs {
    /// The PostgreSQL server to measure on (the bench uses a database of
    /// its own beside this one). Without it, or with --sqlite, SQLite.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Measure the embedded SQLite store even if DATABASE_URL is set.
    #[arg(long)]
    sqlite: bool,
    /// A few seconds in all, on small sizes: proves the bench works, as CI
    /// runs it. Its figures mean little.
    #[arg(long)]
    quick: bool,
    /// Which phases to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "store,grpc,scale"
    )]
    phases: Vec<Phase>,
    /// Seconds each load lasts.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent clients in the in-process (store) phase.
    #[arg(long, default_value_t = 16)]
    store_clients: usize,
    /// Concurrent clients in the gRPC phase.
    #[arg(long, default_value_t = 64)]
    grpc_clients: usize,
    /// Offered rates (commands and reads per second) for the fixed-rate runs.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    rates: Vec<f64>,
    /// Cases in the log for the scale phase.
    #[arg(long, default_value_t = 1_000_000)]
    cases: u64,
    /// The workload's proportions.
    #[command(flatten)]
    mix: Mix,
}

/// Where the bench works, and how to reach it.
#[derive(Debug)]
struct Scratch {
    url: String,
    postgres: bool,
    /// Holds the SQLite file's directory until the bench ends.
    _dir: Option<tempfile::TempDir>,
}

/// A database of the bench's own: `<name>_bench` on the PostgreSQL server
/// `base` names, emptied; or a new SQLite file.
async fn scratch(args: &BenchArgs) -> anyhow::Result<Scratch> {
    let base = args.database_url.as_deref().filter(|url| {
        !args.sqlite && (url.starts_with("postgres://") || url.starts_with("postgresql://"))
    });
    let Some(base) = base else {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let url = format!("sqlite:{}", dir.path().join("bench.db").display());
        return Ok(Scratch {
            url,
            postgres: false,
            _dir: Some(dir),
        });
    };
    let (head, query) = match base.split_once('?') {
        Some((head, query)) => (head, format!("?{query}")),
        None => (base, String::new()),
    };
    let (server, name) = head
        .rsplit_once('/')
        .filter(|(server, _)| server.contains("//") && !server.ends_with('/'))
        .with_context(|| format!("{} names no database", redact(base)))?;
    let name = if name.is_empty() { "postgres" } else { name };
    let bench_name = format!("{name}_bench");
    let url = format!("{server}/{bench_name}{query}");
    let admin = sqlx::PgPool::connect(base)
        .await
        .with_context(|| format!("connecting to {}", redact(base)))?;
    sqlx::query(&format!(
        r#"DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)"#
    ))
    .execute(&admin)
    .await
    .context("dropping the previous bench database")?;
    sqlx::query(&format!(r#"CREATE DATABASE "{bench_name}""#))
        .execute(&admin)
        .await
        .context("creating the bench database")?;
    admin.close().await;
    Ok(Scratch {
        url,
        postgres: true,
        _dir: None,
    })
}

/// Runs the bench and prints its report on stdout.
async fn run(mut args: BenchArgs) -> anyhow::Result<()> {
    if args.quick {
        args.seconds = args.seconds.min(2);
        args.cases = args.cases.min(2_000);
        args.store_clients = args.store_clients.min(4);
        args.grpc_clients = args.grpc_clients.min(8);
        args.rates = vec![200.0];
    }
    let duration = Duration::from_secs(args.seconds.max(1));
    let scratch = scratch(&args).await?;
    let mut report = Report::new(&args, scratch.postgres);
    eprintln!("bench: working on {}", redact(&scratch.url));
    let store = Store::connect(&scratch.url).await?;
    store.migrate().await?;

    let mut events_per_command = 1.0;
    if args.phases.contains(&Phase::Store) {
        eprintln!(
            "bench: store phase, {} clients, {duration:?}",
            args.store_clients
        );
        let services = load_services(&ConfigFiles::default(), Arc::new(SystemClock))?
            .with_petition_records(Arc::new(LogPetitionRecords::new(store.clone())));
        let stop = CancellationToken::new();
        let (target, worker) = Target::in_process(&store, services, stop.clone());
        let before = scale::count_events(&store).await?;
        let recorded = measure::closed_loop(&target, args.mix, args.store_clients, duration).await;
        let events = scale::count_events(&store).await? - before;
        stop.cancel();
        let _ = worker.await;
        if recorded.command_count() > 0 {
            events_per_command = events as f64 / recorded.command_count() as f64;
        }
        let ceiling =
            ceiling_rate(&scratch, args.store_clients, duration, events_per_command).await;
        report.load(
            Run::InProcess {
                clients: args.store_clients,
            },
            &recorded,
            Some(events),
            ceiling,
        );
    }

    if args.phases.contains(&Phase::Grpc) {
        eprintln!("bench: gRPC phase, {} clients", args.grpc_clients);
        let server = ServerProcess::start(&scratch.url).await?;
        let target = Target::grpc(server.channel(4).await?);
        let before = scale::count_events(&store).await?;
        let recorded = measure::closed_loop(&target, args.mix, args.grpc_clients, duration).await;
        let events = scale::count_events(&store).await? - before;
        let mut offered = Vec::new();
        for &rate in &args.rates {
            eprintln!("bench: gRPC at {rate} requests/s offered");
            let recorded = measure::open_loop(&target, args.mix, rate, 512, duration).await;
            offered.push((rate, recorded));
        }
        let memory = server.peak_memory();
        // The ceiling runs once the server has gone: pgbench's 64
        // connections beside the server's pool and leases would pass
        // PostgreSQL's default limit of 100.
        server.stop().await;
        let ceiling = ceiling_rate(&scratch, args.grpc_clients, duration, events_per_command).await;
        report.load(
            Run::Grpc {
                clients: args.grpc_clients,
            },
            &recorded,
            Some(events),
            ceiling,
        );
        for (rate, recorded) in &offered {
            report.load(Run::Offered { rate: *rate }, recorded, None, None);
        }
        report.figure(Figure::Memory {
            label: "server peak memory after the gRPC phase".into(),
            bytes: memory,
            full_store: false,
        });
    }

    if args.phases.contains(&Phase::Scale) {
        scale_phase(&args, &scratch, &store, &mut report).await?;
    }
    store.close().await;
    println!("{}", report.render());
    Ok(())
}

/// The database's ceiling for appends of `events_per_command` events at
/// `clients`, or why there is none.
async fn ceiling_rate(
    scratch: &Scratch,
    clients: usize,
    duration: Duration,
    events_per_command: f64,
) -> Option<Result<f64, String>> {
    let events = events_per_command.round().max(1.0) as u32;
    let rate = if scratch.postgres {
        eprintln!("bench: pgbench ceiling, {clients} clients, {events} events per transaction");
        ceiling::postgres(&scratch.url, clients, duration, events).await
    } else {
        eprintln!("bench: SQLite ceiling, {events} events per transaction");
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => return Some(Err(e.to_string())),
        };
        ceiling::sqlite(dir.path(), duration, events).await
    };
    Some(rate.map_err(|e| format!("{e:#}")))
}

async fn scale_phase(
    args: &BenchArgs,
    scratch: &Scratch,
    store: &Store,
    report: &mut Report,
) -> anyhow::Result<()> {
    // The same load as on the full store below, on this store while it is
    // still empty: what the engine's cost per command is before any
    // history exists.
    eprintln!("bench: scale phase, load on the empty store");
    let load_time = Duration::from_secs(args.seconds.clamp(1, 10));
    let empty = {
        let server = ServerProcess::start(&scratch.url).await?;
        let target = Target::grpc(server.channel(1).await?);
        let recorded = measure::closed_loop(&target, args.mix, args.store_clients, load_time).await;
        server.stop().await;
        recorded
    };
    report.load(
        Run::EmptyStore {
            clients: args.store_clients,
        },
        &empty,
        None,
        None,
    );
    eprintln!("bench: scale phase, seeding {} cases", args.cases);
    let started = Instant::now();
    let events = scale::seed(store, args.cases, |cases| {
        eprint!("\rbench: {cases} cases seeded");
    })
    .await?;
    eprintln!(
        "\nbench: {events} events in the log ({:.0} s); replaying",
        started.elapsed().as_secs_f64()
    );
    let rebuilt = scale::replay(&scratch.url).await?;
    eprintln!("bench: reading the whole log alone, the rebuild's ceiling");
    let read = scale::read_whole_log(store).await?;
    report.figure(Figure::Rebuild {
        log_events: events,
        rebuilt,
        read,
    });
    eprintln!("bench: exporting the whole log to Parquet");
    let exported = scale::export_parquet(store).await?;
    report.figure(Figure::Export { exported, read });
    let server = ServerProcess::start_with_board(&scratch.url).await?;
    let mut target = Target::grpc(server.channel(1).await?);
    let (clocks, overdue) = scale::count_running_clocks(store).await?;
    let rounds = if args.quick { 10 } else { 200 };
    for (name, query) in scale::sla_queries() {
        let mut latencies = Vec::with_capacity(rounds);
        let mut failed = None;
        // At most 200 runs, and no more than 20 seconds of them: a slow
        // query is measured well enough by fewer.
        let budget = Instant::now();
        for _ in 0..rounds {
            if budget.elapsed() > Duration::from_secs(20) {
                break;
            }
            let started = Instant::now();
            if let Err(e) = target.send(query.clone()).await {
                failed = Some(e.message().to_owned());
                break;
            }
            latencies.push(started.elapsed());
        }
        report.figure(Figure::Query {
            name,
            running_clocks: clocks,
            overdue,
            latencies,
            failed,
        });
    }
    eprintln!("bench: the web board's pages on the full store");
    if let Some(board) = server.board() {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<String>();
        let case = scale::some_dispute(store).await?;
        let rounds = if args.quick { 10 } else { 100 };
        for path in scale::board_pages(&case) {
            let mut latencies = Vec::with_capacity(rounds);
            let mut failed = None;
            let budget = Instant::now();
            for _ in 0..rounds {
                if budget.elapsed() > Duration::from_secs(20) {
                    break;
                }
                match scale::fetch_page(&client, board, &path).await {
                    Ok(took) => latencies.push(took),
                    Err(why) => {
                        failed = Some(why);
                        break;
                    }
                }
            }
            report.figure(Figure::Page {
                path,
                cases: args.cases,
                latencies,
                failed,
            });
        }
    }
    eprintln!("bench: load on the full store");
    let recorded = measure::closed_loop(&target, args.mix, args.store_clients, load_time).await;
    report.load(
        Run::FullStore {
            cases: args.cases,
            clients: args.store_clients,
        },
        &recorded,
        None,
        None,
    );
    report.flat_cost(args.cases, empty.command_rate(), recorded.command_rate());
    report.figure(Figure::Memory {
        label: format!("server peak memory with {} cases", args.cases),
        bytes: server.peak_memory(),
        full_store: true,
    });
    server.stop().await;
    Ok(())
}
