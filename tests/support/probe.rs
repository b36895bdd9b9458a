//! A minimal aggregate for exercising the store: each command appends a
//! given number of events. Its services can hold every command at a barrier
//! between deciding and committing, so that tests can race two writers on
//! one case deterministically.

use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

/// The probe: counts its events.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Events applied so far.
    pub count: u64,
    /// Writer tags seen, in order.
    pub writers: Vec<String>,
}

/// Append `count` events tagged with `writer`.
#[derive(Debug, Clone)]
pub struct Append {
    /// How many events.
    pub count: u32,
    /// A tag identifying the writer.
    pub writer: String,
}

/// The probe's only event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appended {
    /// The writer's tag.
    pub writer: String,
    /// Index within the command, from 0.
    pub index: u32,
}

impl DomainEvent for Appended {
    fn event_type(&self) -> String {
        "Appended".into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

/// The probe never refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("never")]
pub struct Never;

/// Optional barrier that every command waits at after loading, before its
/// events are committed.
#[derive(Debug, Clone, Default)]
pub struct Gate(pub Option<Arc<Barrier>>);

impl mediation_domain::SnapshotRevision for Probe {
    const SNAPSHOT_REVISION: u32 = 1;
}

impl Aggregate for Probe {
    const TYPE: &'static str = "Probe";
    type Command = Append;
    type Event = Appended;
    type Error = Never;
    type Services = Gate;

    async fn handle(
        &mut self,
        command: Append,
        gate: &Gate,
        sink: &EventSink<Self>,
    ) -> Result<(), Never> {
        if let Some(barrier) = &gate.0 {
            barrier.wait().await;
        }
        for index in 0..command.count {
            let event = Appended {
                writer: command.writer.clone(),
                index,
            };
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Appended) {
        self.count += 1;
        if self.writers.last() != Some(&event.writer) {
            self.writers.push(event.writer);
        }
    }
}
