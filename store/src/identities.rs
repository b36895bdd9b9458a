//! People in the log, sealed so that they can be forgotten.
//!
//! A dispute's parties and a petition's petitioner are the personal data the
//! log holds. When a [`Cases`](crate::Cases) has a [`Sealing`], each of them
//! is written sealed: the identity object (`{"role": …, "name": …}` in a
//! `parties` list, or a `petitioner`'s `{"name": …, "contact": …}`) becomes
//! `{"person": P, "sealed": S}` (a party keeps its `role` in clear), where
//! `P` is the person's keyed pseudonym and `S` the object encrypted with
//! ChaCha20-Poly1305 under a key kept for that person alone in
//! `person_keys`, bound to `P`. Every reader of the log opens them again
//! ([`Store::open_identities`]); forgetting a person deletes their key
//! ([`Store::forget_person`]), after which each sealed object of theirs
//! reads as the person erased ([`ERASED_NAME`], `"erased": true`) while the
//! events around it, and so the case's history, stay whole. Events written
//! before sealing, or without it, hold identities in clear and are read as
//! they are.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use mediation_domain::values::ERASED_NAME;
use serde_json::{Map, Value};

use crate::{RecordedEvent, Sql, Store, StoreError};

/// The length of a nonce, which leads the sealed bytes.
const NONCE_BYTES: usize = 12;

/// Which kind of identity object an object in a payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// An entry of a `parties` list.
    Party,
    /// A `petitioner`.
    Petitioner,
}

/// The pseudonym of the person an identity object names, or `None` if the
/// object is not one this deployment can read (it is then left in clear).
pub type PersonOf = dyn Fn(IdentityKind, &Map<String, Value>) -> Option<String> + Send + Sync;

/// How a [`Cases`](crate::Cases) seals identities before appending: the
/// deployment's pseudonym of a person.
#[derive(Clone)]
pub struct Sealing {
    person_of: Arc<PersonOf>,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing").finish_non_exhaustive()
    }
}

impl Sealing {
    /// Seals each identity under the person `person_of` names.
    pub fn new(
        person_of: impl Fn(IdentityKind, &Map<String, Value>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            person_of: Arc::new(person_of),
        }
    }
}

/// Calls `f` on every identity object in `value`, wherever it sits: the
/// entries of a `parties` list and a `petitioner` object, as the API's
/// redaction and the export find them.
fn visit(value: &mut Value, f: &mut impl FnMut(IdentityKind, &mut Map<String, Value>)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child) {
                    ("parties", Value::Array(list)) => {
                        for party in list {
                            if let Value::Object(party) = party {
                                f(IdentityKind::Party, party);
                            }
                        }
                    }
                    ("petitioner", Value::Object(person)) => f(IdentityKind::Petitioner, person),
                    (_, child) => visit(child, f),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                visit(item, f);
            }
        }
        _ => {}
    }
}

/// The person a sealed object is sealed for, if it is sealed.
fn sealed_for(object: &Map<String, Value>) -> Option<&str> {
    match (object.get("person"), object.get("sealed")) {
        (Some(Value::String(person)), Some(Value::String(_))) => Some(person),
        _ => None,
    }
}

fn cipher(key: &str) -> Result<ChaCha20Poly1305, StoreError> {
    let bytes = BASE64
        .decode(key)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| StoreError::Corrupt("a person's key is not 32 bytes of base64".into()))?;
    Ok(ChaCha20Poly1305::new(Key::from_slice(&bytes)))
}

/// `object` sealed for `person` under `key`.
fn seal(
    kind: IdentityKind,
    object: &Map<String, Value>,
    person: &str,
    key: &str,
) -> Result<Map<String, Value>, StoreError> {
    let plain = serde_json::to_vec(object)
        .map_err(|e| StoreError::Corrupt(format!("an identity is not serialisable: {e}")))?;
    let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher(key)?
        .encrypt(
            &nonce,
            Payload {
                msg: &plain,
                aad: person.as_bytes(),
            },
        )
        .map_err(|_| StoreError::Corrupt("an identity could not be sealed".into()))?;
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    let mut out = Map::new();
    if kind == IdentityKind::Party
        && let Some(role) = object.get("role")
    {
        out.insert("role".to_owned(), role.clone());
    }
    out.insert("person".to_owned(), Value::String(person.to_owned()));
    out.insert("sealed".to_owned(), Value::String(BASE64.encode(bytes)));
    Ok(out)
}

/// The object `sealed` holds, opened with `key`, or the person erased
/// when there is no key any more.
fn open(
    kind: IdentityKind,
    sealed: &Map<String, Value>,
    key: Option<&str>,
) -> Result<Map<String, Value>, StoreError> {
    let person = sealed_for(sealed).unwrap_or_default();
    let Some(key) = key else {
        return Ok(erased(kind, sealed));
    };
    let corrupt = || StoreError::Corrupt(format!("the identity sealed for {person} does not open"));
    let bytes = sealed
        .get("sealed")
        .and_then(Value::as_str)
        .and_then(|s| BASE64.decode(s).ok())
        .filter(|b| b.len() > NONCE_BYTES)
        .ok_or_else(corrupt)?;
    let (nonce, body) = bytes.split_at(NONCE_BYTES);
    let plain = cipher(key)?
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: person.as_bytes(),
            },
        )
        .map_err(|_| corrupt())?;
    serde_json::from_slice(&plain).map_err(|_| corrupt())
}

/// What an erased person's identity object reads as.
fn erased(kind: IdentityKind, sealed: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    if kind == IdentityKind::Party
        && let Some(role) = sealed.get("role")
    {
        out.insert("role".to_owned(), role.clone());
    }
    out.insert("name".to_owned(), Value::String(ERASED_NAME.to_owned()));
    if kind == IdentityKind::Petitioner {
        out.insert("contact".to_owned(), Value::Null);
    }
    out.insert("erased".to_owned(), Value::Bool(true));
    // The pseudonym stays, so that counts keyed by it (repeat petitioners)
    // still hold; it names nobody without the deployment's secret.
    if let Some(person) = sealed.get("person") {
        out.insert("person".to_owned(), person.clone());
    }
    out
}

/// A new random key, as stored.
fn new_key() -> String {
    BASE64.encode(ChaCha20Poly1305::generate_key(&mut OsRng))
}

/// The statement that keeps `fresh` as the keys of those `persons` who
/// have none, its values bound to `sql`.
fn insert_keys<'a>(sql: &mut Sql<'a>, persons: &'a [String], fresh: &'a [String]) -> String {
    let rows: Vec<String> = persons
        .iter()
        .zip(fresh)
        .map(|(person, key)| {
            let (p, k) = (sql.push(person.as_str()), sql.push(key.as_str()));
            format!("(${p}, ${k})")
        })
        .collect();
    format!(
        "INSERT INTO person_keys (person, key) VALUES {} ON CONFLICT (person) DO NOTHING",
        rows.join(", ")
    )
}

/// The statement that notes that case `aggregate_id` names `persons`, its
/// values bound to `sql`.
fn insert_cases<'a>(
    sql: &mut Sql<'a>,
    persons: &'a [String],
    aggregate_type: &'a str,
    aggregate_id: &'a str,
) -> String {
    let (t, i) = (sql.push(aggregate_type), sql.push(aggregate_id));
    let rows: Vec<String> = persons
        .iter()
        .map(|person| format!("(${}, ${t}, ${i})", sql.push(person.as_str())))
        .collect();
    format!(
        "INSERT INTO person_cases (person, aggregate_type, aggregate_id) VALUES {} \
         ON CONFLICT DO NOTHING",
        rows.join(", ")
    )
}

/// What [`Store::forget_person`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Whether the person had a key (false: nothing of theirs was sealed,
    /// or they were forgotten before).
    pub key_deleted: bool,
}

impl Store {
    /// Seals every identity in `payloads` (the events case `aggregate_id`
    /// is about to append) under its person's key, creating keys that do
    /// not exist yet and recording that the case names each person.
    pub(crate) async fn seal_identities(
        &self,
        sealing: &Sealing,
        aggregate_type: &str,
        aggregate_id: &str,
        payloads: &mut [Value],
    ) -> Result<(), StoreError> {
        let mut persons = BTreeSet::new();
        for payload in payloads.iter_mut() {
            visit(payload, &mut |kind, object| {
                if sealed_for(object).is_none()
                    && let Some(person) = (sealing.person_of)(kind, object)
                {
                    persons.insert(person);
                }
            });
        }
        if persons.is_empty() {
            return Ok(());
        }
        let persons: Vec<String> = persons.into_iter().collect();
        let keys = self
            .ensure_keys(&persons, aggregate_type, aggregate_id)
            .await?;
        let mut failed = None;
        for payload in payloads.iter_mut() {
            visit(payload, &mut |kind, object| {
                if sealed_for(object).is_some() || failed.is_some() {
                    return;
                }
                let Some(person) = (sealing.person_of)(kind, object) else {
                    return;
                };
                let Some(key) = keys.get(&person) else {
                    failed = Some(StoreError::Corrupt(format!("no key was kept for {person}")));
                    return;
                };
                match seal(kind, object, &person, key) {
                    Ok(sealed) => *object = sealed,
                    Err(e) => failed = Some(e),
                }
            });
        }
        failed.map_or(Ok(()), Err)
    }

    /// The keys of `persons`, created for those who have none, and a note
    /// that case `aggregate_id` names them.
    async fn ensure_keys(
        &self,
        persons: &[String],
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let fresh: Vec<String> = persons.iter().map(|_| new_key()).collect();
        if matches!(self.backend(), crate::Backend::Postgres(_)) {
            // One round trip: the keys inserted now come back from the
            // insert (the statement's snapshot does not see them), those
            // kept before from the table.
            let mut sql = Sql::new("");
            let keys = insert_keys(&mut sql, persons, &fresh);
            let cases = insert_cases(&mut sql, persons, aggregate_type, aggregate_id);
            let all = sql.push(persons);
            sql.push_text(&format!(
                "WITH fresh AS ({keys} RETURNING person, key), noted AS ({cases}) \
                 SELECT person, key FROM fresh \
                 UNION ALL SELECT person, key FROM person_keys \
                 WHERE person = ANY(${all}) AND person NOT IN (SELECT person FROM fresh)"
            ));
            let keys = self
                .fetch_all(&sql)
                .await?
                .iter()
                .map(|row| Ok((row.get("person")?, row.get("key")?)))
                .collect::<Result<BTreeMap<String, String>, StoreError>>()?;
            if persons.iter().all(|p| keys.contains_key(p)) {
                return Ok(keys);
            }
            // A concurrent statement inserted a key first: the insert
            // waited for it to commit, but this statement's snapshot,
            // taken before, cannot see it. A new statement can.
            return self.keys_of(persons).await;
        }
        // SQLite has no writing CTE; its statements are local calls, made
        // in this process's turn to write.
        let mut keys = Sql::new("");
        let text = insert_keys(&mut keys, persons, &fresh);
        keys.push_text(&text);
        let mut cases = Sql::new("");
        let text = insert_cases(&mut cases, persons, aggregate_type, aggregate_id);
        cases.push_text(&text);
        {
            let _turn = self.write_turn().await;
            self.execute(&keys).await?;
            self.execute(&cases).await?;
        }
        self.keys_of(persons).await
    }

    /// The keys kept for those of `persons` who have one.
    async fn keys_of(&self, persons: &[String]) -> Result<BTreeMap<String, String>, StoreError> {
        let sql = Sql::new(format!(
            "SELECT person, key FROM person_keys WHERE {}",
            self.dialect().any("person", 1)
        ))
        .bind(persons);
        self.fetch_all(&sql)
            .await?
            .iter()
            .map(|row| Ok((row.get("person")?, row.get("key")?)))
            .collect()
    }

    /// Opens every sealed identity in `events` with its person's key; the
    /// identities of persons forgotten read as erased.
    pub(crate) async fn open_identities(
        &self,
        events: &mut [RecordedEvent],
    ) -> Result<(), StoreError> {
        let mut persons = BTreeSet::new();
        for event in events.iter_mut() {
            visit(&mut event.payload, &mut |_, object| {
                if let Some(person) = sealed_for(object) {
                    persons.insert(person.to_owned());
                }
            });
        }
        if persons.is_empty() {
            return Ok(());
        }
        let persons: Vec<String> = persons.into_iter().collect();
        let keys = self.keys_of(&persons).await?;
        let mut failed = None;
        for event in events.iter_mut() {
            visit(&mut event.payload, &mut |kind, object| {
                let Some(person) = sealed_for(object) else {
                    return;
                };
                match open(kind, object, keys.get(person).map(String::as_str)) {
                    Ok(opened) => *object = opened,
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            });
        }
        failed.map_or(Ok(()), Err)
    }

    /// The cases whose events name `person` (sealed since the store began
    /// sealing), as `(aggregate type, id)`, in order.
    pub async fn cases_naming(&self, person: &str) -> Result<Vec<(String, String)>, StoreError> {
        let sql = Sql::new(
            "SELECT aggregate_type, aggregate_id FROM person_cases WHERE person = $1 \
             ORDER BY aggregate_type, aggregate_id",
        )
        .bind(person);
        self.fetch_all(&sql)
            .await?
            .iter()
            .map(|row| Ok((row.get("aggregate_type")?, row.get("aggregate_id")?)))
            .collect()
    }

    /// Deletes `person`'s key, and the note of the cases naming them, and
    /// the snapshots of those cases (which hold their state, names
    /// included): from now on every reader reads the person as erased.
    pub async fn forget_person(&self, person: &str) -> Result<Forgotten, StoreError> {
        let cases = self.cases_naming(person).await?;
        let _turn = self.write_turn().await;
        for (aggregate_type, aggregate_id) in &cases {
            let sql = Sql::new(
                "DELETE FROM case_snapshots WHERE aggregate_type = $1 AND aggregate_id = $2",
            )
            .bind(aggregate_type.as_str())
            .bind(aggregate_id.as_str());
            self.execute(&sql).await?;
        }
        let deleted = self
            .execute(&Sql::new("DELETE FROM person_keys WHERE person = $1").bind(person))
            .await?;
        self.execute(&Sql::new("DELETE FROM person_cases WHERE person = $1").bind(person))
            .await?;
        Ok(Forgotten {
            key_deleted: deleted > 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_sealed_identity_opens_with_its_key_and_only_for_its_person() {
        let key = new_key();
        let party = object(json!({"role": "applicant", "name": "Li Hua"}));
        let sealed = seal(IdentityKind::Party, &party, "p-1", &key).unwrap();
        assert_eq!(sealed.get("role"), Some(&json!("applicant")));
        assert!(!Value::Object(sealed.clone()).to_string().contains("Li Hua"));
        assert_eq!(
            open(IdentityKind::Party, &sealed, Some(&key)).unwrap(),
            party
        );
        // Moved to another person, or opened with another key, it fails.
        let mut moved = sealed.clone();
        moved.insert("person".into(), json!("p-2"));
        assert!(open(IdentityKind::Party, &moved, Some(&key)).is_err());
        assert!(open(IdentityKind::Party, &sealed, Some(&new_key())).is_err());
    }

    #[test]
    fn without_its_key_an_identity_reads_as_erased() {
        let key = new_key();
        let petitioner = object(json!({"name": "Zhang San", "contact": "13800000000"}));
        let sealed = seal(IdentityKind::Petitioner, &petitioner, "p-9", &key).unwrap();
        assert_eq!(
            Value::Object(open(IdentityKind::Petitioner, &sealed, None).unwrap()),
            json!({"name": ERASED_NAME, "contact": null, "erased": true, "person": "p-9"})
        );
        let party = seal(
            IdentityKind::Party,
            &object(json!({"role": "respondent", "name": "Wang Wu"})),
            "p-3",
            &key,
        )
        .unwrap();
        assert_eq!(
            Value::Object(open(IdentityKind::Party, &party, None).unwrap()),
            json!({"role": "respondent", "name": ERASED_NAME, "erased": true, "person": "p-3"})
        );
    }

    #[test]
    fn identities_are_found_wherever_they_sit() {
        let mut payload = json!({
            "change": {
                "DisputeRegistered": {"parties": [{"role": "applicant", "name": "A"}, {"role": "respondent", "name": "B"}]},
                "other": [{"petitioner": {"name": "C"}}]
            }
        });
        let mut seen = Vec::new();
        visit(&mut payload, &mut |kind, object| {
            seen.push((kind, object["name"].clone()));
        });
        assert_eq!(
            seen,
            vec![
                (IdentityKind::Party, json!("A")),
                (IdentityKind::Party, json!("B")),
                (IdentityKind::Petitioner, json!("C")),
            ]
        );
    }
}
