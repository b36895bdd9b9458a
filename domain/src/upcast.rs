//! Reading events stored in an older shape.
//!
//! Every stored event carries its type and the version of its shape. The log
//! is never rewritten, so an event keeps the version it was written with;
//! readers turn it into the current shape here, on the way out of the store,
//! and see nothing else. Each aggregate type has a [`Registry`]: the current
//! version of each of its event types, and the [`Upcaster`]s that take an
//! older version one step on. An upcaster may turn one stored event into
//! several (a step that older histories recorded as one event and the
//! model now records as two); those share the stored row's position and
//! sequence, and readers apply them together, as one unit.
//!
//! An event of a version this engine has never heard of (the log was written
//! by a newer engine, or by hand) is an error, never skipped.
//!
//! To change an event's shape: bump its version in its aggregate's
//! `EVENT_VERSIONS` table, and add an [`Upcaster`] from the version before
//! that writes the new shape from the old one.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// An event as the log keeps it: type, version of its shape, and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The event's type, e.g. `DisputeRegistered`.
    pub event_type: String,
    /// The version of the payload's shape, as stored (`"1"`, `"2"`, …).
    pub event_version: String,
    /// The event as JSON.
    pub payload: Value,
}

/// Why a stored event cannot be read in the current shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// The aggregate type is not one of this engine's.
    #[error("no aggregate type {0} is known to this engine")]
    UnknownAggregate(String),
    /// The event type is not one this engine has ever written.
    #[error(
        "{aggregate_type} events of type {event_type} are unknown to this engine; \
         the log was written by a newer engine"
    )]
    UnknownType {
        /// The aggregate type.
        aggregate_type: String,
        /// The unknown event type.
        event_type: String,
    },
    /// The version is later than the one this engine writes: the log was
    /// written by a newer engine, which this one cannot read.
    #[error(
        "{event_type} version {version} is newer than this engine reads (up to version \
         {current}); the log was written by a newer engine"
    )]
    FutureVersion {
        /// The event type.
        event_type: String,
        /// The stored version.
        version: String,
        /// The latest version this engine reads.
        current: u32,
    },
    /// The version is not a number from 1, or no upcaster leads from it.
    #[error("{event_type} has no version {version} this engine can read")]
    UnknownVersion {
        /// The event type.
        event_type: String,
        /// The stored version.
        version: String,
    },
    /// The payload does not have the shape its version had.
    #[error("{event_type} version {version} does not have that version's shape: {reason}")]
    Malformed {
        /// The event type.
        event_type: String,
        /// The stored version.
        version: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// One step: an event type at version `from`, as the events of the next
/// versions that replace it.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The event type it reads.
    pub event_type: &'static str,
    /// The version it reads.
    pub from: u32,
    /// The payload at `from` → the events that replace it, in order, each
    /// with its type and version (a later version of the same type, or
    /// another type at any of its versions). An `Err` says what is wrong
    /// with the payload.
    pub upcast: fn(Value) -> Result<Vec<StoredEvent>, String>,
}

/// The event versions and upcasters of one aggregate type.
#[derive(Debug)]
pub struct Registry {
    /// The aggregate type, as stored.
    pub aggregate_type: &'static str,
    /// Every event type with the version of its current shape.
    pub versions: &'static [(&'static str, u32)],
    /// The steps from older versions.
    pub upcasters: &'static [Upcaster],
}

/// How many steps one stored event may take; beyond it the registry has a
/// cycle.
const MAX_STEPS: usize = 32;

impl Registry {
    /// The current version of `event_type`, if it is one of this
    /// aggregate's.
    pub fn current_version(&self, event_type: &str) -> Option<u32> {
        self.versions
            .iter()
            .find(|(t, _)| *t == event_type)
            .map(|(_, v)| *v)
    }

    /// `stored` in the current shape: usually itself, untouched; one event
    /// or several if it was stored in an older shape.
    pub fn upcast(&self, stored: StoredEvent) -> Result<Vec<StoredEvent>, UpcastError> {
        // The common case, an event already current, costs a look-up and
        // moves the payload through.
        if self.is_current(&stored)? {
            return Ok(vec![stored]);
        }
        let mut done = Vec::new();
        let mut pending = vec![stored];
        let mut steps = 0;
        while let Some(event) = pending.pop() {
            if self.is_current(&event)? {
                done.push(event);
                continue;
            }
            steps += 1;
            let version: u32 = event.event_version.parse().unwrap_or(0);
            let step = self
                .upcasters
                .iter()
                .find(|u| u.event_type == event.event_type && u.from == version)
                .filter(|_| steps <= MAX_STEPS)
                .ok_or_else(|| UpcastError::UnknownVersion {
                    event_type: event.event_type.clone(),
                    version: event.event_version.clone(),
                })?;
            let next = (step.upcast)(event.payload).map_err(|reason| UpcastError::Malformed {
                event_type: event.event_type.clone(),
                version: event.event_version.clone(),
                reason,
            })?;
            // Last first, so that popping keeps the order.
            pending.extend(next.into_iter().rev());
        }
        Ok(done)
    }

    /// `stored` in the current shape, as `E`.
    pub fn decode<E: DeserializeOwned>(&self, stored: StoredEvent) -> Result<Vec<E>, UpcastError> {
        self.upcast(stored)?
            .into_iter()
            .map(|event| {
                serde_json::from_value(event.payload).map_err(|e| UpcastError::Malformed {
                    reason: e.to_string(),
                    event_type: event.event_type,
                    version: event.event_version,
                })
            })
            .collect()
    }

    /// Whether `event` is in its type's current shape; an error if its type
    /// is unknown or its version lies beyond the current one.
    fn is_current(&self, event: &StoredEvent) -> Result<bool, UpcastError> {
        let current =
            self.current_version(&event.event_type)
                .ok_or_else(|| UpcastError::UnknownType {
                    aggregate_type: self.aggregate_type.to_owned(),
                    event_type: event.event_type.clone(),
                })?;
        match event.event_version.parse::<u32>() {
            Ok(v) if v == current => Ok(true),
            Ok(v) if v > current => Err(UpcastError::FutureVersion {
                event_type: event.event_type.clone(),
                version: event.event_version.clone(),
                current,
            }),
            Ok(v) if v >= 1 => Ok(false),
            _ => Err(UpcastError::UnknownVersion {
                event_type: event.event_type.clone(),
                version: event.event_version.clone(),
            }),
        }
    }
}

/// The disputes' registry.
pub static DISPUTE: Registry = Registry {
    aggregate_type: "Dispute",
    versions: crate::dispute::EVENT_VERSIONS,
    upcasters: crate::dispute::UPCASTERS,
};

/// The petitions' registry.
pub static PETITION: Registry = Registry {
    aggregate_type: "Petition",
    versions: crate::petition::EVENT_VERSIONS,
    upcasters: &[],
};

/// The registry of `aggregate_type`, if it is one of this engine's.
pub fn registry(aggregate_type: &str) -> Option<&'static Registry> {
    [&DISPUTE, &PETITION]
        .into_iter()
        .find(|r| r.aggregate_type == aggregate_type)
}

/// `stored`, an event of `aggregate_type`, in the current shape: the one
/// way every reader of the log (aggregate loads, read models, exports, the
/// event stream) reads events.
pub fn upcast(aggregate_type: &str, stored: StoredEvent) -> Result<Vec<StoredEvent>, UpcastError> {
    registry(aggregate_type)
        .ok_or_else(|| UpcastError::UnknownAggregate(aggregate_type.to_owned()))?
        .upcast(stored)
}

/// Builds a payload like `like`'s (its `at` and `by`) with another change:
/// for upcasters that derive a second event from one stored event.
pub(crate) fn beside(like: &Value, event_type: &str, body: Value) -> Value {
    let mut payload = serde_json::Map::new();
    for key in ["at", "by"] {
        if let Some(v) = like.get(key) {
            payload.insert(key.to_owned(), v.clone());
        }
    }
    payload.insert(
        "change".to_owned(),
        Value::Object([(event_type.to_owned(), body)].into_iter().collect()),
    );
    Value::Object(payload)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stored(event_type: &str, version: &str, payload: Value) -> StoredEvent {
        StoredEvent {
            event_type: event_type.to_owned(),
            event_version: version.to_owned(),
            payload,
        }
    }

    /// A made-up aggregate whose `B` went from 1 to 3 through 2, and whose
    /// version 1 of `B` became `B` and `C`.
    static TOY: Registry = Registry {
        aggregate_type: "Toy",
        versions: &[("A", 1), ("B", 3), ("C", 1)],
        upcasters: &[
            Upcaster {
                event_type: "B",
                from: 1,
                upcast: |p| {
                    Ok(vec![
                        StoredEvent {
                            event_type: "B".into(),
                            event_version: "2".into(),
                            payload: json!({"b": p["b"], "step": 2}),
                        },
                        StoredEvent {
                            event_type: "C".into(),
                            event_version: "1".into(),
                            payload: json!({"c": p["c"]}),
                        },
                    ])
                },
            },
            Upcaster {
                event_type: "B",
                from: 2,
                upcast: |p| {
                    let b = p["b"].as_i64().ok_or("no b")?;
                    Ok(vec![StoredEvent {
                        event_type: "B".into(),
                        event_version: "3".into(),
                        payload: json!({"b": b * 10}),
                    }])
                },
            },
        ],
    };

    #[test]
    fn a_current_event_passes_through_unchanged() {
        let event = stored("A", "1", json!({"a": 1}));
        assert_eq!(TOY.upcast(event.clone()).unwrap(), vec![event]);
    }

    #[test]
    fn an_old_event_takes_every_step_and_a_split_keeps_its_order() {
        let out = TOY
            .upcast(stored("B", "1", json!({"b": 4, "c": 5})))
            .unwrap();
        assert_eq!(
            out,
            vec![
                stored("B", "3", json!({"b": 40})),
                stored("C", "1", json!({"c": 5})),
            ]
        );
        assert_eq!(
            TOY.upcast(stored("B", "2", json!({"b": 7}))).unwrap(),
            vec![stored("B", "3", json!({"b": 70}))]
        );
    }

    #[test]
    fn a_future_version_is_an_error_naming_it() {
        let err = TOY.upcast(stored("B", "4", json!({}))).unwrap_err();
        assert_eq!(
            err,
            UpcastError::FutureVersion {
                event_type: "B".into(),
                version: "4".into(),
                current: 3
            }
        );
        assert!(err.to_string().contains("newer than this engine"), "{err}");
    }

    #[test]
    fn unknown_types_and_versions_and_bad_payloads_are_errors() {
        assert!(matches!(
            TOY.upcast(stored("Z", "1", json!({}))),
            Err(UpcastError::UnknownType { .. })
        ));
        for version in ["0", "", "two", "-1"] {
            assert!(
                matches!(
                    TOY.upcast(stored("B", version, json!({}))),
                    Err(UpcastError::UnknownVersion { .. })
                ),
                "{version:?}"
            );
        }
        assert!(matches!(
            TOY.upcast(stored("B", "2", json!({"b": "x"}))),
            Err(UpcastError::Malformed { .. })
        ));
        assert!(matches!(
            upcast("Toy", stored("A", "1", json!({}))),
            Err(UpcastError::UnknownAggregate(_))
        ));
    }

    /// Each registry's event types are exactly its enum's variants, as serde
    /// names them: a variant missing from the table could not be read back.
    #[test]
    fn the_registries_name_every_event_type() {
        fn variants<T: DeserializeOwned>() -> Vec<String> {
            let err = serde_json::from_value::<T>(json!({"NoSuchVariant": {}}))
                .err()
                .unwrap()
                .to_string();
            let list = err.split("expected one of ").nth(1).unwrap();
            let mut names: Vec<String> = list
                .split(", ")
                .map(|s| s.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
                .collect();
            names.sort();
            names
        }
        for (registry, names) in [
            (&DISPUTE, variants::<crate::dispute::DisputeChange>()),
            (&PETITION, variants::<crate::petition::PetitionChange>()),
        ] {
            let mut table: Vec<String> = registry
                .versions
                .iter()
                .map(|(t, _)| (*t).to_owned())
                .collect();
            table.sort();
            assert_eq!(table, names, "{}", registry.aggregate_type);
        }
    }

    /// Every version below the current one of every type has a step from it.
    #[test]
    fn every_older_version_has_an_upcaster() {
        for registry in [&DISPUTE, &PETITION] {
            for (event_type, current) in registry.versions {
                for from in 1..*current {
                    assert!(
                        registry
                            .upcasters
                            .iter()
                            .any(|u| u.event_type == *event_type && u.from == from),
                        "{} {event_type} version {from}",
                        registry.aggregate_type
                    );
                }
            }
        }
    }
}
