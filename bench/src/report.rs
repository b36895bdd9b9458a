//! The bench's report: Markdown on stdout, ready for docs/BENCHMARKS.md,
//! ending with each target of the issue as a ratio measured in this run.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::BenchArgs;
use crate::measure::Recorded;
use crate::scale::Rebuilt;

/// Which load a run was: what the report judges it against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Run {
    /// The workload in-process, beside the ceiling at the same concurrency.
    InProcess {
        clients: usize,
    },
    /// The workload over gRPC, beside the ceiling at the same concurrency.
    Grpc {
        clients: usize,
    },
    /// Requests offered at a fixed rate over gRPC.
    Offered {
        rate: f64,
    },
    /// The workload over gRPC on the million-case store.
    FullStore {
        cases: u64,
        clients: usize,
    },
    EmptyStore {
        clients: usize,
    },
}

impl Run {
    fn title(self) -> String {
        match self {
            Self::InProcess { clients } => format!("In-process, {clients} clients"),
            Self::Grpc { clients } => format!("gRPC, {clients} clients"),
            Self::Offered { rate } => format!("gRPC, {rate} requests/s offered"),
            Self::FullStore { cases, clients } => {
                format!("gRPC over {cases} cases, {clients} clients")
            }
            Self::EmptyStore { clients } => {
                format!("gRPC over an empty store, {clients} clients (the scale phase's baseline)")
            }
        }
    }
}

/// A figure that is not a load run.
#[derive(Debug)]
pub(crate) enum Figure {
    /// A server's peak resident memory.
    Memory {
        label: String,
        bytes: Option<u64>,
        /// Whether this is the peak with the million-case store.
        full_store: bool,
    },
    /// `mediation replay` over the whole log.
    Rebuild {
        log_events: u64,
        rebuilt: Rebuilt,
        /// The whole log read alone (events, time): the rebuild's ceiling.
        read: (u64, Duration),
    },
    /// `mediation export` of the whole log to Parquet, beside the raw
    /// read of the same log in the same run.
    Export {
        exported: mediation_export::Exported,
        read: (u64, Duration),
    },
    /// One SLA query, repeated.
    Query {
        name: &'static str,
        running_clocks: u64,
        /// Of those, the ones whose breach the timers have recorded.
        overdue: u64,
        latencies: Vec<Duration>,
        failed: Option<String>,
    },
    /// One page of the web board, fetched again and again.
    Page {
        path: String,
        cases: u64,
        latencies: Vec<Duration>,
        failed: Option<String>,
    },
}

/// The `q` quantile of sorted `latencies`, in milliseconds (0 for none).
fn quantile_ms(latencies: &[Duration], q: f64) -> f64 {
    latencies
        .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// One target and how this run did against it.
#[derive(Debug)]
struct Verdict {
    target: String,
    measured: String,
    met: Option<bool>,
}

/// The report being built.
#[derive(Debug)]
pub(crate) struct Report {
    postgres: bool,
    header: String,
    body: String,
    verdicts: Vec<Verdict>,
    worst_query_p99: Option<(f64, u64)>,
    worst_page_p99: Option<(f64, u64)>,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let kb: u64 = l
                    .strip_prefix("MemTotal:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()?;
                Some(format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
            })
        })
        .unwrap_or_else(|| "unknown memory".into());
    format!("{cores} cores ({cpu}), {memory}")
}

impl Report {
    pub(crate) fn new(args: &BenchArgs, postgres: bool) -> Self {
        let mut header = String::new();
        let backend = if postgres {
            "PostgreSQL"
        } else {
            "SQLite (embedded)"
        };
        let _ = writeln!(
            header,
            "# mediation-bench{}",
            if args.quick {
                " (--quick: figures mean little)"
            } else {
                ""
            }
        );
        let _ = writeln!(header);
        let _ = writeln!(
            header,
            "- date: {}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        let _ = writeln!(header, "- machine: {}", machine());
        let _ = writeln!(header, "- store: {backend}");
        let phases: Vec<String> = args
            .phases
            .iter()
            .map(|p| format!("{p:?}").to_lowercase())
            .collect();
        let _ = writeln!(
            header,
            "- run: phases {}, {} s per load, {} in-process clients, {} gRPC clients, rates {:?}/s, {} cases",
            phases.join(","),
            args.seconds,
            args.store_clients,
            args.grpc_clients,
            args.rates,
            args.cases
        );
        let m = &args.mix;
        let _ = writeln!(
            header,
            "- mix: escalate to town {:.0}%, on to district {:.0}%, petitions {:.0}%, review {:.0}%, re-review {:.0}%, one board read per {} requests",
            m.escalate_to_town * 100.0,
            m.escalate_to_district * 100.0,
            m.petitions * 100.0,
            m.review * 100.0,
            m.re_review * 100.0,
            m.read_every
        );
        Self {
            postgres,
            header,
            body: String::new(),
            verdicts: Vec::new(),
            worst_query_p99: None,
            worst_page_p99: None,
        }
    }

    fn verdict(
        &mut self,
        target: impl Into<String>,
        measured: impl Into<String>,
        met: Option<bool>,
    ) {
        self.verdicts.push(Verdict {
            target: target.into(),
            measured: measured.into(),
            met,
        });
    }

    /// A load run: throughput, latencies, lag, errors, and the ceiling.
    pub(crate) fn load(
        &mut self,
        run: Run,
        recorded: &Recorded,
        events: Option<u64>,
        ceiling: Option<Result<f64, String>>,
    ) {
        let secs = recorded.elapsed.as_secs_f64().max(1e-9);
        let rate = recorded.command_rate();
        let c = &recorded.commands;
        let b = &mut self.body;
        let _ = writeln!(b, "\n## {}\n", run.title());
        let _ = writeln!(
            b,
            "{} commands in {secs:.1} s: **{rate:.0} commands/s**{}; command latency p50 {} ms, p99 {} ms, p99.9 {} ms",
            recorded.command_count(),
            events.map_or(String::new(), |e| format!(
                ", {:.0} events/s",
                e as f64 / secs
            )),
            ms(c.value_at_quantile(0.5)),
            ms(c.value_at_quantile(0.99)),
            ms(c.value_at_quantile(0.999)),
        );
        if recorded.unsent > 0 {
            let _ = writeln!(
                b,
                "\n{} requests that came due were never sent: the engine fell behind the offered rate",
                recorded.unsent
            );
        }
        if recorded.lag.is_empty() {
            let _ = writeln!(b, "\nprojection lag: no samples");
        } else {
            let _ = writeln!(
                b,
                "\nprojection lag (command answered → case index reflects it), {} samples: p50 {} ms, p99 {} ms{}",
                recorded.lag.len(),
                ms(recorded.lag.value_at_quantile(0.5)),
                ms(recorded.lag.value_at_quantile(0.99)),
                if recorded.lag_timeouts > 0 {
                    format!(", {} probes gave up after 5 s", recorded.lag_timeouts)
                } else {
                    String::new()
                }
            );
        }
        let ratio = match &ceiling {
            Some(Ok(tps)) => {
                let ratio = rate / tps;
                let _ = writeln!(
                    b,
                    "\nceiling ({}): {tps:.0} transactions/s; the engine reached **{:.0}%** of it",
                    if self.postgres {
                        "pgbench, same concurrency"
                    } else {
                        "bare insert loop, WAL"
                    },
                    ratio * 100.0
                );
                Some(ratio)
            }
            Some(Err(why)) => {
                let _ = writeln!(b, "\nceiling: not measured: {why}");
                None
            }
            None => None,
        };
        let _ = writeln!(
            b,
            "\n| RPC | count | p50 ms | p99 ms | p99.9 ms |\n|---|---:|---:|---:|---:|"
        );
        for (rpc, h) in &recorded.per_rpc {
            let _ = writeln!(
                b,
                "| {rpc} | {} | {} | {} | {} |",
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999))
            );
        }
        if !recorded.errors.is_empty() {
            let _ = writeln!(b, "\nerrors:");
            for (key, n) in &recorded.errors {
                let sample = recorded.error_samples.get(key).map_or("", String::as_str);
                let _ = writeln!(b, "- {key} ×{n}: {sample}");
            }
        }
        self.judge_load(run, rate, c, &recorded.lag, ratio);
    }

    fn judge_load(
        &mut self,
        run: Run,
        rate: f64,
        commands: &Histogram<u64>,
        lag: &Histogram<u64>,
        ratio: Option<f64>,
    ) {
        let percent = |r: f64| format!("{:.0}% ({rate:.0} commands/s)", r * 100.0);
        match run {
            Run::InProcess { .. } if self.postgres => {
                if let Some(r) = ratio {
                    self.verdict(
                        "in-process commands/s ≥ 50% of pgbench (16 clients)",
                        percent(r),
                        Some(r >= 0.5),
                    );
                }
            }
            Run::InProcess { .. } => {
                self.verdict(
                    "SQLite embedded ≥ 5,000 commands/s",
                    format!(
                        "{rate:.0} commands/s{}",
                        ratio.map_or(String::new(), |r| format!(
                            ", {:.0}% of the bare insert loop",
                            r * 100.0
                        ))
                    ),
                    Some(rate >= 5000.0),
                );
            }
            Run::Grpc { .. } => {
                if let Some(r) = ratio {
                    self.verdict(
                        "gRPC commands/s ≥ 35% of the ceiling (64 clients)",
                        percent(r),
                        Some(r >= 0.35),
                    );
                }
            }
            Run::Offered { rate: 1000.0 } => {
                let p99 = commands.value_at_quantile(0.99) as f64 / 1000.0;
                self.verdict(
                    "p99 command latency ≤ 5 ms at 1,000/s offered",
                    format!("{p99:.2} ms ({rate:.0} commands/s achieved)"),
                    Some(p99 <= 5.0),
                );
            }
            Run::Offered { rate: offered } if offered == 5000.0 && !lag.is_empty() => {
                let lag99 = lag.value_at_quantile(0.99) as f64 / 1000.0;
                self.verdict(
                    "projection lag p99 ≤ 100 ms at 5,000/s offered",
                    format!("{lag99:.1} ms ({rate:.0} commands/s achieved)"),
                    Some(lag99 <= 100.0),
                );
            }
            Run::Offered { .. } | Run::FullStore { .. } | Run::EmptyStore { .. } => {}
        }
    }

    /// The same mixed load's commands/s on the store grown to `cases`
    /// cases against the empty store's: whether the engine's cost grows
    /// with its history.
    pub(crate) fn flat_cost(&mut self, cases: u64, empty: f64, full: f64) {
        let ratio = full / empty.max(1e-9);
        let _ = writeln!(
            self.body,
            "\n## Flat cost as the log grows\n\nThe same mixed gRPC load: {empty:.0} commands/s on the empty store, {full:.0} commands/s with {cases} cases: **{:.0}%**",
            ratio * 100.0
        );
        self.verdict(
            "the grown store keeps ≥ 90% of the empty store's commands/s",
            format!(
                "{:.0}% ({full:.0} of {empty:.0} commands/s, {cases} cases)",
                ratio * 100.0
            ),
            Some(ratio >= 0.9),
        );
    }

    /// Any other figure.
    pub(crate) fn figure(&mut self, figure: Figure) {
        match figure {
            Figure::Memory {
                label,
                bytes,
                full_store,
            } => {
                let text = bytes.map_or("not measured (needs Linux's /proc)".to_owned(), |b| {
                    format!("{:.0} MiB", b as f64 / 1024.0 / 1024.0)
                });
                let _ = writeln!(
                    self.body,
                    "\n## {label}\n\n{text} (VmHWM of the server's process)"
                );
                if full_store {
                    self.verdict(
                        "peak server memory ≤ 150 MB with 1 million cases",
                        format!("{text} ({label})"),
                        bytes.map(|b| b <= 150_000_000),
                    );
                }
            }
            Figure::Rebuild {
                log_events,
                rebuilt,
                read: (read_events, read_time),
            } => {
                let secs = rebuilt.elapsed.as_secs_f64().max(1e-9);
                let rate = log_events as f64 / secs;
                let b = &mut self.body;
                let _ = writeln!(
                    b,
                    "\n## Rebuild: `mediation replay`, every read model\n\n{log_events} events in the log, all read models rebuilt in {secs:.1} s: **{rate:.0} events/s** of log\n\n| read model | events | seconds | events/s |\n|---|---:|---:|---:|"
                );
                for (name, events, seconds) in &rebuilt.projections {
                    let _ = writeln!(
                        b,
                        "| {name} | {events} | {seconds:.1} | {:.0} |",
                        *events as f64 / seconds.max(1e-9)
                    );
                }
                let read_rate = read_events as f64 / read_time.as_secs_f64().max(1e-9);
                let _ = writeln!(
                    b,
                    "\nThe log alone, read in the rebuild's batches and decoded with no read model written: {read_events} events in {:.1} s, **{read_rate:.0} events/s**; the rebuild ran at **{:.0}%** of that.",
                    read_time.as_secs_f64(),
                    100.0 * rate / read_rate.max(1e-9)
                );
                self.verdict(
                    "rebuild ≥ 100,000 events/s into all read models",
                    format!("{rate:.0} events/s over {log_events} events"),
                    Some(rate >= 100_000.0),
                );
            }
            Figure::Export {
                exported,
                read: (read_events, read_time),
            } => {
                let secs = exported.elapsed.as_secs_f64().max(1e-9);
                let rate = exported.events as f64 / secs;
                let read_rate = read_events as f64 / read_time.as_secs_f64().max(1e-9);
                let _ = writeln!(
                    self.body,
                    "\n## Export: `mediation export` to Parquet\n\n{} events to {} part files, identities pseudonymised, in {secs:.1} s: **{rate:.0} events/s**; the raw log read ran at {read_rate:.0} events/s in the same run (the export at **{:.0}%** of it).",
                    exported.events,
                    exported.files,
                    100.0 * rate / read_rate.max(1e-9)
                );
                self.verdict(
                    "export ≥ 200,000 events/s to Parquet",
                    format!("{rate:.0} events/s over {} events", exported.events),
                    Some(rate >= 200_000.0),
                );
            }
            Figure::Query {
                name,
                running_clocks,
                overdue,
                mut latencies,
                failed,
            } => {
                if self.worst_query_p99.is_none() {
                    let _ = writeln!(
                        self.body,
                        "\n## SLA queries over {running_clocks} running clocks, {overdue} of them overdue (one client, in turn)\n\n| query | runs | p50 ms | p99 ms |\n|---|---:|---:|---:|"
                    );
                }
                latencies.sort();
                let (p50, p99) = (quantile_ms(&latencies, 0.5), quantile_ms(&latencies, 0.99));
                match failed {
                    Some(why) => {
                        let _ = writeln!(self.body, "| {name} | failed | {why} | |");
                    }
                    None => {
                        let _ = writeln!(
                            self.body,
                            "| {name} | {} | {p50:.2} | {p99:.2} |",
                            latencies.len()
                        );
                    }
                }
                let worst = self.worst_query_p99.map_or(p99, |(w, _)| w.max(p99));
                self.worst_query_p99 = Some((worst, running_clocks));
            }
            Figure::Page {
                path,
                cases,
                mut latencies,
                failed,
            } => {
                if self.worst_page_p99.is_none() {
                    let _ = writeln!(
                        self.body,
                        "\n## Web board pages with {cases} cases (one browser, in turn, whole district)\n\n| page | runs | p50 ms | p99 ms |\n|---|---:|---:|---:|"
                    );
                }
                latencies.sort();
                let (p50, p99) = (quantile_ms(&latencies, 0.5), quantile_ms(&latencies, 0.99));
                match failed {
                    Some(why) => {
                        let _ = writeln!(self.body, "| `{path}` | failed | {why} | |");
                        // A page that fails is not fast.
                        self.worst_page_p99 = Some((f64::INFINITY, cases));
                    }
                    None => {
                        let _ = writeln!(
                            self.body,
                            "| `{path}` | {} | {p50:.2} | {p99:.2} |",
                            latencies.len()
                        );
                        let worst = self.worst_page_p99.map_or(p99, |(w, _)| w.max(p99));
                        self.worst_page_p99 = Some((worst, cases));
                    }
                }
            }
        }
    }

    /// The whole report.
    pub(crate) fn render(&self) -> String {
        let mut out = self.header.clone();
        out.push_str(&self.body);
        let mut verdicts: Vec<&Verdict> = self.verdicts.iter().collect();
        let query = self.worst_query_p99.map(|(p99, clocks)| Verdict {
            target: "SLA queries over 1 million open clocks p99 ≤ 10 ms".into(),
            measured: format!("worst p99 {p99:.2} ms over {clocks} running clocks"),
            met: Some(p99 <= 10.0),
        });
        if let Some(q) = &query {
            verdicts.push(q);
        }
        let page = self.worst_page_p99.map(|(p99, cases)| Verdict {
            target: "every board page p99 ≤ 100 ms over 1 million cases".into(),
            measured: format!("worst p99 {p99:.2} ms with {cases} cases"),
            met: Some(p99 <= 100.0),
        });
        if let Some(p) = &page {
            verdicts.push(p);
        }
        if !verdicts.is_empty() {
            let _ = writeln!(
                out,
                "\n## Targets\n\n| target | this run | |\n|---|---|---|"
            );
            for v in verdicts {
                let mark = match v.met {
                    Some(true) => "met",
                    Some(false) => "**missed**",
                    None => "n/a",
                };
                let _ = writeln!(out, "| {} | {} | {mark} |", v.target, v.measured);
            }
        }
        out
    }
}
