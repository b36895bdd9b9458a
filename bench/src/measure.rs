//! Driving the workload and recording what it took: closed loops of
//! clients that send as fast as the engine answers, and an open loop that
//! offers a fixed rate whatever the answers, with projection lag sampled
//! beside both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mediation_proto::v1 as pb;
use tokio::sync::mpsc;

use crate::workload::{Mix, Step, Target, Walk, board_read};

/// Latencies are recorded in microseconds, up to a minute.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// What one run recorded.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// Latency per RPC.
    pub per_rpc: BTreeMap<&'static str, Histogram<u64>>,
    /// Latency of every command together.
    pub commands: Histogram<u64>,
    /// Projection lag: from a command's answer to the case index
    /// reflecting it.
    pub lag: Histogram<u64>,
    /// Lag probes that gave up waiting.
    pub lag_timeouts: u64,
    /// Requests that came due but were still waiting when the run ended:
    /// the engine could not keep up with the offered rate.
    pub unsent: u64,
    /// Failed requests, by status code.
    pub errors: BTreeMap<String, u64>,
    /// One message per distinct error, for the report.
    pub error_samples: BTreeMap<String, String>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Recorded {
    fn new() -> Self {
        Self {
            per_rpc: BTreeMap::new(),
            commands: histogram(),
            lag: histogram(),
            lag_timeouts: 0,
            unsent: 0,
            errors: BTreeMap::new(),
            error_samples: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn record(&mut self, rpc: &'static str, command: bool, took: Duration) {
        let us = micros(took);
        self.per_rpc
            .entry(rpc)
            .or_insert_with(histogram)
            .saturating_record(us);
        if command {
            self.commands.saturating_record(us);
        }
    }

    fn fail(&mut self, rpc: &'static str, status: &tonic::Status) {
        let key = format!("{rpc}: {:?}", status.code());
        *self.errors.entry(key.clone()).or_default() += 1;
        self.error_samples
            .entry(key)
            .or_insert_with(|| status.message().to_owned());
    }

    fn merge(&mut self, other: Recorded) {
        for (rpc, h) in other.per_rpc {
            match self.per_rpc.get_mut(rpc) {
                Some(mine) => {
                    let _ = mine.add(&h);
                }
                None => {
                    self.per_rpc.insert(rpc, h);
                }
            }
        }
        let _ = self.commands.add(&other.commands);
        let _ = self.lag.add(&other.lag);
        self.lag_timeouts += other.lag_timeouts;
        self.unsent += other.unsent;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.error_samples {
            self.error_samples.entry(k).or_insert(v);
        }
    }

    /// Commands answered successfully.
    pub(crate) fn command_count(&self) -> u64 {
        self.commands.len()
    }

    /// Commands per second over the run.
    pub(crate) fn command_rate(&self) -> f64 {
        self.command_count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The last command answered: its log position and when the answer came.
type Latest = Arc<tokio::sync::watch::Sender<Option<(u64, Instant)>>>;

fn latest() -> Latest {
    Arc::new(tokio::sync::watch::Sender::new(None))
}

/// One client's loop step: sends `step`, records it, and keeps `walk`
/// going or drops it on failure.
async fn send(
    target: &mut Target,
    step: Step,
    started: Instant,
    walk: &mut Option<Walk>,
    recorded: &mut Recorded,
    latest: &Latest,
) {
    let rpc = step.rpc();
    let command = step.is_command();
    match target.send(step).await {
        Ok(outcome) => {
            let now = Instant::now();
            recorded.record(rpc, command, now - started);
            if let Some(outcome) = outcome {
                if let Some(walk) = walk.as_mut() {
                    walk.record(&outcome);
                }
                latest.send_replace(Some((outcome.position, now)));
            }
        }
        Err(status) => {
            recorded.fail(rpc, &status);
            if command {
                *walk = None;
            }
        }
    }
}

/// `clients` clients, each walking one case at a time through its
/// lifecycle as fast as the answers come, for `duration`.
pub(crate) async fn closed_loop(
    target: &Target,
    mix: Mix,
    clients: usize,
    duration: Duration,
) -> Recorded {
    let latest = latest();
    let start = Instant::now();
    let deadline = start + duration;
    let probe = tokio::spawn(probe_lag(target.clone(), latest.clone(), deadline));
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let mut target = target.clone();
        let latest = latest.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(client as u64 + 1);
            let mut recorded = Recorded::new();
            let mut walk: Option<Walk> = None;
            let mut sent = 0u32;
            while Instant::now() < deadline {
                sent += 1;
                let step = if mix.read_every > 0 && sent.is_multiple_of(mix.read_every) {
                    board_read(&mut rng)
                } else {
                    let current = walk.get_or_insert_with(|| Walk::new(&mix, &mut rng));
                    match current.next_step() {
                        Some(step) => step,
                        None => {
                            walk = None;
                            continue;
                        }
                    }
                };
                let started = Instant::now();
                send(
                    &mut target,
                    step,
                    started,
                    &mut walk,
                    &mut recorded,
                    &latest,
                )
                .await;
            }
            recorded
        }));
    }
    let mut total = Recorded::new();
    for task in tasks {
        if let Ok(recorded) = task.await {
            total.merge(recorded);
        }
    }
    total.elapsed = start.elapsed();
    if let Ok(lag) = probe.await {
        total.merge(lag);
    }
    total
}

/// Requests offered at `rate` per second for `duration`, whatever the
/// answers: each is timed from when it was due, so that a stall shows as
/// latency rather than as fewer requests (no coordinated omission). Up to
/// `lanes` requests are in flight at once.
pub(crate) async fn open_loop(
    target: &Target,
    mix: Mix,
    rate: f64,
    lanes: usize,
    duration: Duration,
) -> Recorded {
    let latest = latest();
    let start = Instant::now();
    let deadline = start + duration;
    let probe = tokio::spawn(probe_lag(target.clone(), latest.clone(), deadline));
    let (ticks, due) = mpsc::unbounded_channel::<Instant>();
    let due = Arc::new(tokio::sync::Mutex::new(due));
    // Cases between steps. A request that comes due takes the next step of
    // one of them, or starts a case when all are in flight, so that at a
    // low rate cases still go through their whole lifecycle.
    let idle: Arc<Mutex<std::collections::VecDeque<Walk>>> = Arc::default();
    let mut tasks = Vec::with_capacity(lanes);
    for lane in 0..lanes {
        let mut target = target.clone();
        let latest = latest.clone();
        let due = due.clone();
        let idle = idle.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(lane as u64 + 1_000);
            let mut recorded = Recorded::new();
            let mut sent = 0u32;
            loop {
                let Some(at) = due.lock().await.recv().await else {
                    break;
                };
                if Instant::now() >= deadline {
                    recorded.unsent += 1;
                    continue;
                }
                sent += 1;
                if mix.read_every > 0 && sent.is_multiple_of(mix.read_every) {
                    let mut none = None;
                    send(
                        &mut target,
                        board_read(&mut rng),
                        at,
                        &mut none,
                        &mut recorded,
                        &latest,
                    )
                    .await;
                    continue;
                }
                let mut walk = idle.lock().ok().and_then(|mut idle| idle.pop_front());
                let step = loop {
                    let current = walk.get_or_insert_with(|| Walk::new(&mix, &mut rng));
                    match current.next_step() {
                        Some(step) => break step,
                        None => walk = None,
                    }
                };
                send(&mut target, step, at, &mut walk, &mut recorded, &latest).await;
                if let Some(walk) = walk
                    && let Ok(mut idle) = idle.lock()
                {
                    idle.push_back(walk);
                }
            }
            recorded
        }));
    }
    let mut offered = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        // Hand out every request that has come due since the last tick,
        // each stamped with the moment it was due.
        let owed = ((now - start).as_secs_f64() * rate) as u64;
        while offered < owed {
            let at = start + Duration::from_secs_f64(offered as f64 / rate);
            offered += 1;
            if ticks.send(at).is_err() {
                break;
            }
        }
    }
    drop(ticks);
    let mut total = Recorded::new();
    for task in tasks {
        if let Ok(recorded) = task.await {
            total.merge(recorded);
        }
    }
    total.elapsed = start.elapsed();
    if let Ok(lag) = probe.await {
        total.merge(lag);
    }
    total
}

/// Samples projection lag until `deadline`: takes the last command
/// answered, asks for a one-row clock list that must reflect its position,
/// and records how long after the answer the list came back. The server
/// answers such a list as soon as its case index passes the position.
async fn probe_lag(mut target: Target, latest: Latest, deadline: Instant) -> Recorded {
    let mut recorded = Recorded::new();
    let mut answers = latest.subscribe();
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        // Wait for a command answered since the last probe, or the end.
        tokio::select! {
            changed = answers.changed() => if changed.is_err() { break },
            () = tokio::time::sleep_until(deadline) => break,
        }
        let Some((position, answered)) = *answers.borrow_and_update() else {
            continue;
        };
        let probe = Step::ListClocks(pb::ListClocksRequest {
            division_code: crate::workload::VILLAGES[0].into(),
            page_size: 1,
            min_position: position,
            ..Default::default()
        });
        match target.send(probe).await {
            Ok(_) => {
                recorded.lag.saturating_record(micros(answered.elapsed()));
            }
            Err(_) => recorded.lag_timeouts += 1,
        }
    }
    recorded
}
