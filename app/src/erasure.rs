//! Forgetting a person at their request (the right to deletion, Personal
//! Information Protection Law Art 47).
//!
//! The store seals each party's and petitioner's identity in the log under
//! a key kept for that person alone ([`mediation_store::Sealing`]). To
//! forget a person, [`App::forget_person`] records in every case naming
//! them that their identity was erased (`PartiesErased`,
//! `PetitionerErased`: the read models follow, as they follow any event),
//! then deletes their key, the snapshots of those cases and the note of
//! which cases named them. From then on every reader of the log (loads,
//! projections and rebuilds, the event stream, exports) reads the person as
//! erased, while the case's history stays whole and replayable.
//!
//! Each step may be repeated: a request that fails part way is retried as a
//! whole, and a case already erased writes nothing again.

use std::collections::BTreeSet;

use cqrs_es::Aggregate;
use mediation_domain::SnapshotRevision;
use mediation_domain::dispute::{Dispute, DisputeAction, DisputeCommand};
use mediation_domain::petition::{PetitionAction, PetitionCommand, Petitioner};
use mediation_domain::values::{Actor, ActorId, Name};
use mediation_projections::petitioners::{PetitionerSecret, party_key, petitioner_key};
use mediation_store::{Cases, IdentityKind, RequestKey, Sealing};
use serde::Deserialize as _;
use serde_json::Value;

use crate::access::Caller;
use crate::app::{Held, event_metadata};
use crate::timers::options;
use crate::{App, AppError};

/// How this deployment seals identities: each under the person's keyed
/// pseudonym, the same the read models and the export use (a party by
/// name, a petitioner by name and contact).
pub fn sealing(secret: &PetitionerSecret) -> Sealing {
    let secret = secret.clone();
    Sealing::new(move |kind, object| match kind {
        IdentityKind::Party => object
            .get("name")
            .and_then(Value::as_str)
            .map(|name| party_key(&secret, name)),
        IdentityKind::Petitioner => Petitioner::deserialize(&Value::Object(object.clone()))
            .ok()
            .map(|p| petitioner_key(&secret, &p)),
    })
}

/// Who is to be forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whom {
    /// A person by name, and by contact where they gave one with a
    /// petition: both the party of that name and the petitioner of that
    /// name and contact are forgotten.
    Named {
        /// The name, as recorded.
        name: Name,
        /// The contact, as recorded with a petition.
        contact: Option<Name>,
    },
    /// A person by the pseudonym the read models and the export show.
    Key(String),
}

/// One case a person was erased from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErasedCase {
    /// `Dispute` or `Petition`.
    pub aggregate_type: String,
    /// The case.
    pub case_id: String,
    /// The log position of the erasure event; 0 if the case had already
    /// recorded it (a retry).
    pub position: u64,
}

/// What [`App::forget_person`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// The pseudonyms forgotten.
    pub persons: Vec<String>,
    /// The cases they were erased from, in order.
    pub cases: Vec<ErasedCase>,
}

impl App {
    /// Forgets `whom` for `caller` (a supervisor), acting as `actor`: see
    /// the [module documentation](self). PERMISSION_DENIED if a case naming
    /// the person lies outside the caller's jurisdiction: a person is
    /// forgotten everywhere or not at all.
    pub async fn forget_person(
        &self,
        caller: &Caller,
        actor: ActorId,
        whom: Whom,
    ) -> Result<Forgotten, AppError> {
        caller.authorise("ForgetPerson")?;
        let secret = self.petitioner_secret();
        let persons: BTreeSet<String> = match &whom {
            Whom::Named { name, contact } => [
                party_key(secret, name.as_str()),
                petitioner_key(
                    secret,
                    &Petitioner {
                        name: name.clone(),
                        contact: contact.clone(),
                    },
                ),
            ]
            .into(),
            Whom::Key(key) => [key.clone()].into(),
        };
        let mut cases = BTreeSet::new();
        for person in &persons {
            cases.extend(self.store().cases_naming(person).await?);
        }
        // Everything first, so that nothing is erased when a case is out
        // of reach.
        for (aggregate_type, id) in &cases {
            let held = if aggregate_type == Dispute::TYPE {
                self.disputes()
                    .load(id)
                    .await
                    .map_err(command_error)?
                    .and_then(|(case, _)| case.held_by().cloned())
            } else {
                self.petitions()
                    .load(id)
                    .await
                    .map_err(command_error)?
                    .and_then(|(case, _)| case.held_by().cloned())
            };
            if let Some(division) = held
                && !caller.covers(&division)
            {
                return Err(AppError::PermissionDenied(format!(
                    "the person is named in a case held by division {division}, outside the \
                     jurisdiction of agency {}: ask a body whose jurisdiction covers every case",
                    caller.agency()
                )));
            }
        }
        let by = Actor {
            id: actor,
            agency: caller.agency().clone(),
        };
        let fingerprint = persons.iter().cloned().collect::<Vec<_>>().join(",");
        let mut erased = Vec::new();
        for (aggregate_type, id) in &cases {
            let key = RequestKey {
                agency: caller.agency().as_str().to_owned(),
                request_id: format!("forget:{aggregate_type}:{id}"),
                fingerprint: fingerprint.clone(),
            };
            let position = if aggregate_type == Dispute::TYPE {
                self.erase_parties(id, &persons, &by, &key).await?
            } else {
                self.erase_petitioner(id, &persons, &by, &key).await?
            };
            if let Some(position) = position {
                erased.push(ErasedCase {
                    aggregate_type: aggregate_type.clone(),
                    case_id: id.clone(),
                    position,
                });
            }
        }
        for person in &persons {
            self.store().forget_person(person).await?;
        }
        for (aggregate_type, id) in &cases {
            if aggregate_type == Dispute::TYPE {
                self.disputes().evict(id);
            } else {
                self.petitions().evict(id);
            }
        }
        tracing::info!(
            agency = %caller.agency(),
            cases = erased.len(),
            "a person was forgotten"
        );
        Ok(Forgotten {
            persons: persons.into_iter().collect(),
            cases: erased,
        })
    }

    /// Erases, in dispute `id`, the parties among `persons`; the erasure's
    /// position, or `None` if the dispute is gone or names none of them.
    async fn erase_parties(
        &self,
        id: &str,
        persons: &BTreeSet<String>,
        by: &Actor,
        key: &RequestKey,
    ) -> Result<Option<u64>, AppError> {
        let secret = self.petitioner_secret();
        let Some((case, _)) = self.disputes().load(id).await.map_err(command_error)? else {
            return Ok(None);
        };
        let places: Vec<u32> = case
            .parties()
            .iter()
            .zip(0u32..)
            .filter(|(party, _)| persons.contains(&party_key(secret, party.name.as_str())))
            .map(|(_, place)| place)
            .collect();
        if places.is_empty() {
            return Ok(None);
        }
        let command = DisputeCommand {
            by: by.clone(),
            action: DisputeAction::EraseParties { parties: places },
        };
        self.record(self.disputes(), id, command, key)
            .await
            .map(Some)
    }

    /// Erases the petitioner of petition `id` if they are among `persons`,
    /// as [`App::erase_parties`].
    async fn erase_petitioner(
        &self,
        id: &str,
        persons: &BTreeSet<String>,
        by: &Actor,
        key: &RequestKey,
    ) -> Result<Option<u64>, AppError> {
        let secret = self.petitioner_secret();
        let Some((case, _)) = self.petitions().load(id).await.map_err(command_error)? else {
            return Ok(None);
        };
        if !case
            .petitioner()
            .is_some_and(|p| persons.contains(&petitioner_key(secret, p)))
        {
            return Ok(None);
        }
        let command = PetitionCommand {
            by: by.clone(),
            action: PetitionAction::ErasePetitioner {},
        };
        self.record(self.petitions(), id, command, key)
            .await
            .map(Some)
    }

    /// Carries out an erasure `command` on case `id` under `key`; the
    /// position it was recorded at, 0 if a retry found it recorded.
    async fn record<A>(
        &self,
        cases: &Cases<A>,
        id: &str,
        command: A::Command,
        key: &RequestKey,
    ) -> Result<u64, AppError>
    where
        A: Aggregate + SnapshotRevision + Clone + Held,
        A::Command: Clone,
    {
        let metadata = event_metadata::<A>("ForgetPerson");
        let committed = cases
            .execute_with(id, command, options(key, &metadata))
            .await
            .map_err(command_error)?;
        self.notify_commit();
        Ok(committed.position.unwrap_or(0))
    }
}

/// An erasure is decided by the engine, not refused by the case: any
/// failure is the store's.
fn command_error<E: std::error::Error>(e: mediation_store::CommandError<E>) -> AppError {
    match e {
        mediation_store::CommandError::Store(e) => AppError::Store(e),
        other => AppError::Store(mediation_store::StoreError::Busy(format!(
            "the erasure could not be recorded ({other}); try again"
        ))),
    }
}
