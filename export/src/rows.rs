//! One exported row per event: the envelope as typed columns, the payload
//! as JSON text, with identities replaced by keyed pseudonyms unless the
//! operator asked for them in clear.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use mediation_domain::petition::Petitioner;
use mediation_domain::values::DivisionCode;
use mediation_projections::petitioners::{PetitionerSecret, party_key, petitioner_key};
use mediation_store::RecordedEvent;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ExportError;

/// Whether parties and petitioners leave in clear.
#[derive(Debug, Clone)]
pub enum Identities {
    /// Replaced by keyed pseudonyms under the deployment's secret (the
    /// default): `{"role": …, "key": …}` for a party, `{"key": …}` for a
    /// petitioner, the key being [`petitioner_key`], the read models' own.
    Pseudonymised(PetitionerSecret),
    /// As stored: names and contacts in clear (`--with-identities`).
    Clear,
}

impl Identities {
    /// The manifest's name for this choice.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pseudonymised(_) => "pseudonymised",
            Self::Clear => "clear",
        }
    }

    /// Replaces, wherever they sit in `value`, parties' names and the
    /// petitioner by their keys; does nothing for [`Identities::Clear`].
    pub fn apply(&self, value: &mut Value) {
        if let Self::Pseudonymised(secret) = self {
            pseudonymise(value, secret);
        }
    }
}

/// Works on the JSON shape, like the API's redaction, so that a new event
/// type (or a read model's state) carrying `parties` or a `petitioner` is
/// covered without a change here.
fn pseudonymise(value: &mut Value, secret: &PetitionerSecret) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child) {
                    ("parties", Value::Array(list)) => {
                        for party in list {
                            if let Value::Object(party) = party {
                                pseudonymise_party(party, secret);
                            }
                        }
                    }
                    ("petitioner", person @ Value::Object(_)) => {
                        // An erased petitioner keeps the pseudonym it was
                        // sealed under; one the domain cannot read is
                        // withheld whole rather than passed through.
                        let key = match person.get("person") {
                            Some(Value::String(key)) => Value::String(key.clone()),
                            _ => Petitioner::deserialize(&*person)
                                .ok()
                                .map(|p| Value::String(petitioner_key(secret, &p)))
                                .unwrap_or(Value::Null),
                        };
                        let mut keyed = Map::new();
                        keyed.insert("key".to_owned(), key);
                        *person = Value::Object(keyed);
                    }
                    (_, child) => pseudonymise(child, secret),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                pseudonymise(item, secret);
            }
        }
        _ => {}
    }
}

fn pseudonymise_party(party: &mut Map<String, Value>, secret: &PetitionerSecret) {
    // An erased party keeps the pseudonym it was sealed under.
    let erased = party.remove("person");
    if let Some(name) = party.remove("name") {
        let key = match erased {
            Some(Value::String(key)) => Value::String(key),
            _ => name
                .as_str()
                .map(|n| Value::String(party_key(secret, n)))
                .unwrap_or(Value::Null),
        };
        party.insert("key".to_owned(), key);
    }
}

use serde::Deserialize as _;

/// One event as exported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The event's position in the global log.
    pub position: i64,
    /// The event's id.
    pub event_id: String,
    /// When the store recorded it.
    pub recorded_time: DateTime<Utc>,
    /// When it happened: the payload's `at`.
    pub occurred_time: Option<DateTime<Utc>>,
    /// `Dispute` or `Petition`.
    pub case_type: String,
    /// The case id.
    pub case_id: String,
    /// The event's index within its case, from 1.
    pub sequence: i64,
    /// Which of the events read from one stored event this is, from 0: an
    /// event stored at an older version may be read as several in the
    /// current schema, sharing position, id and sequence.
    pub part: i64,
    /// The event's name.
    pub event_type: String,
    /// The payload's schema version.
    pub event_version: String,
    /// The division holding the case after the event (metadata `division`).
    pub division: Option<String>,
    /// That division's level, read from its code.
    pub level: Option<String>,
    /// Who acted (payload `by.id`).
    pub actor: Option<String>,
    /// For which agency (payload `by.agency`).
    pub agency: Option<String>,
    /// The payload, JSON text, identities applied.
    pub payload: String,
}

impl Row {
    /// The exported row of `event`, with `identities` applied to its payload.
    pub fn of(event: &RecordedEvent, identities: &Identities) -> Result<Self, ExportError> {
        let position = i64::try_from(event.position)
            .map_err(|_| ExportError::PositionTooLarge(event.position))?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let occurred_time = text(event.payload.get("at"))
            .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
            .map(|at| at.with_timezone(&Utc));
        let by = event.payload.get("by");
        let division = text(event.metadata.get("division"));
        let level = division
            .as_deref()
            .and_then(|d| DivisionCode::parse(d).ok())
            .map(|d| d.level().as_str().to_owned());
        let mut payload = event.payload.clone();
        identities.apply(&mut payload);
        Ok(Self {
            position,
            event_id: event.event_id.to_string(),
            recorded_time: event.recorded_at,
            occurred_time,
            case_type: event.aggregate_type.clone(),
            case_id: event.aggregate_id.clone(),
            sequence: i64::try_from(event.sequence).unwrap_or(i64::MAX),
            part: i64::from(event.part),
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            division,
            level,
            actor: text(by.and_then(|b| b.get("id"))),
            agency: text(by.and_then(|b| b.get("agency"))),
            payload: serde_json::to_string(&payload).map_err(ExportError::Json)?,
        })
    }

    /// The Hive partition the row belongs to: its case type and the UTC
    /// month it happened in (when it was recorded, for an event without
    /// `at`).
    pub(crate) fn partition(&self) -> Partition {
        Partition {
            case_type: self.case_type.clone(),
            month: self
                .occurred_time
                .unwrap_or(self.recorded_time)
                .format("%Y-%m")
                .to_string(),
        }
    }
}

/// A directory of the partitioned log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Partition {
    /// `Dispute` or `Petition`.
    pub(crate) case_type: String,
    /// `YYYY-MM`, UTC.
    pub(crate) month: String,
}

impl Partition {
    /// Its path below `events/`: `case_type=…/month=…`. Case types are
    /// the engine's own names; anything else than letters and digits is
    /// replaced so that a name can never leave the folder.
    pub(crate) fn path(&self) -> std::path::PathBuf {
        let safe: String = self
            .case_type
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        std::path::Path::new(&format!("case_type={safe}")).join(format!("month={}", self.month))
    }
}

/// The Arrow schema of the exported log.
pub(crate) fn schema() -> SchemaRef {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("position", DataType::Int64, false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("recorded_time", time.clone(), false),
        Field::new("occurred_time", time, true),
        Field::new("case_type", DataType::Utf8, false),
        Field::new("case_id", DataType::Utf8, false),
        Field::new("sequence", DataType::Int64, false),
        Field::new("part", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("event_version", DataType::Utf8, false),
        Field::new("division", DataType::Utf8, true),
        Field::new("level", DataType::Utf8, true),
        Field::new("actor", DataType::Utf8, true),
        Field::new("agency", DataType::Utf8, true),
        Field::new("payload", DataType::Utf8, false),
    ]))
}

/// `rows` as one Arrow record batch of [`schema`].
pub(crate) fn record_batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let strings = |f: &dyn Fn(&Row) -> Option<&str>| -> ArrayRef {
        let bytes: usize = rows.iter().map(|r| f(r).map_or(0, str::len)).sum();
        let mut b = StringBuilder::with_capacity(n, bytes);
        for row in rows {
            b.append_option(f(row));
        }
        Arc::new(b.finish())
    };
    let ints = |f: &dyn Fn(&Row) -> i64| -> ArrayRef {
        let mut b = Int64Builder::with_capacity(n);
        for row in rows {
            b.append_value(f(row));
        }
        Arc::new(b.finish())
    };
    let times = |f: &dyn Fn(&Row) -> Option<DateTime<Utc>>| -> ArrayRef {
        let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for row in rows {
            b.append_option(f(row).map(|t| t.timestamp_micros()));
        }
        Arc::new(b.finish())
    };
    let columns = vec![
        ints(&|r| r.position),
        strings(&|r| Some(&r.event_id)),
        times(&|r| Some(r.recorded_time)),
        times(&|r| r.occurred_time),
        strings(&|r| Some(&r.case_type)),
        strings(&|r| Some(&r.case_id)),
        ints(&|r| r.sequence),
        ints(&|r| r.part),
        strings(&|r| Some(&r.event_type)),
        strings(&|r| Some(&r.event_version)),
        strings(&|r| r.division.as_deref()),
        strings(&|r| r.level.as_deref()),
        strings(&|r| r.actor.as_deref()),
        strings(&|r| r.agency.as_deref()),
        strings(&|r| Some(&r.payload)),
    ];
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn secret() -> PetitionerSecret {
        PetitionerSecret::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn parties_and_petitioners_become_keys_wherever_they_sit() {
        let mut payload = json!({
            "at": "2026-03-02T02:00:00Z",
            "change": {"DisputeRegistered": {"parties": [
                {"role": "applicant", "name": "Li Hua"},
                {"role": "respondent", "name": "Zhang Wei"}
            ]}},
            "later": {"petitioner": {"name": "Wang Fang", "contact": "13800000000"}}
        });
        Identities::Pseudonymised(secret()).apply(&mut payload);
        let text = payload.to_string();
        for name in ["Li Hua", "Zhang Wei", "Wang Fang", "13800000000"] {
            assert!(!text.contains(name), "{name} left in clear: {text}");
        }
        let parties = &payload["change"]["DisputeRegistered"]["parties"];
        assert_eq!(parties[0]["role"], "applicant");
        assert_eq!(parties[0]["key"], party_key(&secret(), "Li Hua"));
        let petitioner: Petitioner =
            serde_json::from_value(json!({"name": "Wang Fang", "contact": "13800000000"})).unwrap();
        assert_eq!(
            payload["later"]["petitioner"],
            json!({"key": petitioner_key(&secret(), &petitioner)})
        );
    }

    #[test]
    fn clear_identities_are_left_as_stored() {
        let stored = json!({"parties": [{"role": "applicant", "name": "Li Hua"}]});
        let mut payload = stored.clone();
        Identities::Clear.apply(&mut payload);
        assert_eq!(payload, stored);
    }
}
