//! Who is calling, and what they may do.
//!
//! Partner agencies present a bearer token; how it travels is the
//! transport's business (gRPC: `authorization: Bearer <token>`). The server
//! keeps only the SHA-256 of each token, in an agencies file:
//!
//! ```toml
//! [[agency]]
//! id = "town-101"                      # recorded on every event the agency causes
//! name = "Example Town Mediation Centre"
//! also_known_as = ["Example Town Government"]
//! scope = "990101101000"               # a division: the agency sees its subtree
//! roles = ["registrar", "mediator"]
//! token_sha256 = "<64 hex digits>"     # `mediation token` prints a token and its hash
//! government_of = "990101101000"       # optional: the agency is (part of)
//!                                      # this division's people's government
//! ```
//!
//! A case outside the caller's scope behaves as if it did not exist. The
//! roles decide which RPCs a caller may use ([`required_roles`]) and whether
//! it may see parties' and petitioners' identities.
//!
//! A petition names the unit it complains about by id ([`UnitRef`]): an
//! agency's `id`, or a division code, which every agency with that
//! `government_of` answers to. For an accusation (检举控告类, 信访工作条例
//! Art 30–31) that unit sees neither the petitioner nor the petition's free
//! text, whatever its roles; for other matters it may see, by its roles,
//! whom it must answer. Petitions without a unit id (those received before
//! ids were recorded, or complaining about a unit outside the
//! configuration) are matched by the unit's `name` or one of its
//! `also_known_as` names, and the petitioner stays hidden from it whatever
//! the matter, as it always was.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use mediation_domain::petition::MatterType;
use mediation_domain::values::{AgencyId, DivisionCode, Name, UnitRef};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::AppError;

/// What an agency does; an agency may hold several roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Registers disputes and petitions and triages petitions (登记).
    Registrar,
    /// Mediates disputes and handles petitions as the receiving unit.
    Mediator,
    /// Oversees: reviews, closes, takes over, sends down, extends, and
    /// issues review opinions. May also do what the other two roles do.
    Supervisor,
    /// Reads cases and the log for analysis, without identities.
    Analyst,
    /// A partner agency with read-only access, without identities.
    Partner,
}

impl Role {
    /// Whether this role needs to see who the parties and petitioners are.
    fn sees_identities(self) -> bool {
        matches!(self, Self::Registrar | Self::Mediator | Self::Supervisor)
    }
}

/// An authenticated caller: the agency, its scope and its roles.
#[derive(Debug, Clone)]
pub struct Caller {
    agency: AgencyId,
    names: Vec<String>,
    government_of: Option<DivisionCode>,
    scope: Option<DivisionCode>,
    roles: BTreeSet<Role>,
}

/// What a petition says that decides who may see what of it (Art 30): the
/// unit it complains about and the kind of matter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Complaint<'a> {
    /// The unit complained about, by id.
    pub unit_id: Option<&'a UnitRef>,
    /// The unit complained about, by name: matched only without an id.
    pub unit_name: Option<&'a Name>,
    /// The kind of matter (Art 31), if stated.
    pub matter_type: Option<MatterType>,
}

/// What a caller may see of one petition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PetitionView {
    /// Who petitions.
    pub petitioner: bool,
    /// The free text: facts, summaries, notes, terms, reasons.
    pub content: bool,
}

impl Caller {
    /// The caller when authentication is off: a local operator with every
    /// writing role over the whole jurisdiction.
    pub fn local() -> Self {
        Self {
            agency: AgencyId::parse("local").expect("a valid agency id"),
            names: Vec::new(),
            government_of: None,
            scope: None,
            roles: [Role::Registrar, Role::Mediator, Role::Supervisor].into(),
        }
    }

    /// The agency, as recorded on events.
    pub fn agency(&self) -> &AgencyId {
        &self.agency
    }

    /// The division whose subtree the caller sees; `None` for everything.
    pub fn scope(&self) -> Option<&DivisionCode> {
        self.scope.as_ref()
    }

    /// Whether `division` lies in the caller's scope.
    pub fn covers(&self, division: &DivisionCode) -> bool {
        self.scope.as_ref().is_none_or(|s| division.is_within(s))
    }

    /// Whether the caller holds any of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }

    /// Whether the caller may see the names of a dispute's parties.
    pub fn may_see_parties(&self) -> bool {
        self.roles.iter().any(|r| r.sees_identities())
    }

    /// Whether the caller is the unit `unit` names: the agency itself, or
    /// an agency of the division's government.
    pub fn is_unit(&self, unit: &UnitRef) -> bool {
        match unit {
            UnitRef::Agency(agency) => agency == &self.agency,
            UnitRef::Division(division) => self.government_of.as_ref() == Some(division),
        }
    }

    /// What the caller may see of a petition that says `complaint`. The
    /// unit accused in an accusation (检举控告类) sees neither the
    /// petitioner nor the free text (信访工作条例 Art 30); for other matters
    /// the roles decide, so that the unit handling a request sees whom it
    /// must answer. Without a unit id the unit is recognised by name and
    /// never sees the petitioner, as before ids were recorded.
    pub fn petition_view(&self, complaint: &Complaint<'_>) -> PetitionView {
        let accused = match (complaint.unit_id, complaint.unit_name) {
            (Some(unit), _) => self.is_unit(unit),
            (None, Some(name)) => self.names.contains(&normalise(name.as_str())),
            (None, None) => false,
        };
        let roles = self.may_see_parties();
        match (accused, complaint.matter_type) {
            (true, Some(MatterType::Accusation)) => PetitionView {
                petitioner: false,
                content: false,
            },
            (true, _) if complaint.unit_id.is_none() => PetitionView {
                petitioner: false,
                content: true,
            },
            _ => PetitionView {
                petitioner: roles,
                content: true,
            },
        }
    }

    /// Refuses ([`AppError::PermissionDenied`]) unless the caller holds a
    /// role that `rpc` needs.
    pub fn authorise(&self, rpc: &str) -> Result<(), AppError> {
        let needed = required_roles(rpc);
        if self.has_any(needed) {
            return Ok(());
        }
        let needed: Vec<&str> = needed.iter().map(|r| role_name(*r)).collect();
        Err(AppError::PermissionDenied(format!(
            "{rpc} needs one of the roles [{}]; agency {} has [{}]",
            needed.join(", "),
            self.agency,
            self.roles
                .iter()
                .map(|r| role_name(*r))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Registrar => "registrar",
        Role::Mediator => "mediator",
        Role::Supervisor => "supervisor",
        Role::Analyst => "analyst",
        Role::Partner => "partner",
    }
}

/// Names compare without case and surrounding space.
fn normalise(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The roles that may call `rpc` (the method name, as in the `.proto`).
/// Reads are open to every role; an unknown name needs a role nobody has,
/// so that a new RPC is closed until it is listed here.
pub fn required_roles(rpc: &str) -> &'static [Role] {
    use Role::{Analyst, Mediator, Partner, Registrar, Supervisor};
    match rpc {
        "GetDispute" | "ListDisputes" | "GetPetition" | "ListPetitions" | "ReadEvents"
        | "SubscribeEvents" => &[Registrar, Mediator, Supervisor, Analyst, Partner],
        // The past of a case, cut and redacted as its present is.
        "GetDisputeAsOf" | "GetPetitionAsOf" | "GetCaseHistory" => {
            &[Registrar, Mediator, Supervisor, Analyst, Partner]
        }
        // The dashboards read the read models only.
        "ListClocks"
        | "ListBreachesByBody"
        | "GetResolutionStats"
        | "GetPetitionStats"
        | "ListCaseload"
        | "ListRepeatPetitions"
        | "ListSkippedLevelVisits"
        | "ListProjections"
        | "GetCaseAccountability" => &[Registrar, Mediator, Supervisor, Analyst, Partner],
        // Intake.
        "ReportDispute" => &[Registrar, Mediator, Supervisor],
        "RegisterDispute" | "DispatchDispute" | "EvaluateDispute" => &[Registrar, Supervisor],
        // Mediation itself.
        "RecordConsent"
        | "HoldSession"
        | "ReachAgreement"
        | "TerminateMediation"
        | "EscalateDispute"
        | "ReferDispute"
        // The parties' agreement to extend is recorded by their mediator;
        // the court's steps are reported by the mediator following the
        // application.
        | "ExtendMediation"
        | "RequestJudicialConfirmation"
        | "AcceptJudicialConfirmation"
        | "ExtendJudicialConfirmation"
        | "RuleJudicialConfirmation"
        | "RecordFollowUp" => &[Mediator, Supervisor],
        // Oversight.
        "TakeOverDispute" | "SendDownDispute" | "ReviewDispute" | "CloseDispute"
        | "ReopenDispute" => &[Supervisor],
        // Who answers for a case: the office that registers it, or the
        // bodies above.
        "AssignDisputeOfficial" | "AssignPetitionOfficial" => &[Registrar, Supervisor],
        // The petition office.
        "ReceivePetition" => &[Registrar, Supervisor],
        "ForwardPetition"
        | "AssignPetition"
        | "DivertPetition"
        | "RejectPetition"
        | "RequestReview"
        | "RequestReReview"
        | "FinalisePetition"
        | "RecordGroupHeadcount"
        // The petition office asks the petitioner, as registrars evaluate
        // disputes.
        | "EvaluatePetition" => &[Registrar, Supervisor],
        // Whoever sent the reply records its delivery: the receiving unit
        // its opinion, the bodies above theirs.
        "RecordPetitionDelivery" => &[Mediator, Supervisor],
        // The receiving unit.
        "ObjectToPetition" | "AcceptPetition" | "IssueOpinion" | "RecordHearing" => {
            &[Mediator, Supervisor]
        }
        // The bodies above it.
        "ExtendPetitionHandling" | "IssueReviewOpinion" | "IssueReReviewOpinion" => &[Supervisor],
        // Erasing a person at their request (PIPL Art 47) is oversight.
        "ForgetPerson" => &[Supervisor],
        _ => &[],
    }
}

/// The SHA-256 of a token, in lower-case hex: what the agencies file stores.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token: 64 hex digits (244 random bits).
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Why the agencies file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// The file could not be read.
    #[error("cannot read the agencies file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("agencies file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgenciesFile {
    #[serde(default)]
    agency: Vec<AgencyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgencyEntry {
    id: String,
    name: String,
    #[serde(default)]
    also_known_as: Vec<String>,
    scope: String,
    roles: Vec<Role>,
    token_sha256: String,
    #[serde(default)]
    government_of: Option<String>,
}

/// The agencies file: the caller each token stands for, or every call as
/// [`Caller::local`] when authentication is off.
#[derive(Clone)]
pub struct Agencies {
    // `None`: authentication is off.
    agencies: Option<Arc<HashMap<String, Arc<Caller>>>>,
    local: Arc<Caller>,
}

impl fmt::Debug for Agencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agencies")
            .field("enabled", &self.agencies.is_some())
            .field("agencies", &self.agencies.as_ref().map_or(0, |a| a.len()))
            .finish()
    }
}

impl Agencies {
    /// Authentication off: every call acts as [`Caller::local`].
    pub fn disabled() -> Self {
        Self {
            agencies: None,
            local: Arc::new(Caller::local()),
        }
    }

    /// Whether calls must present a token.
    pub fn enabled(&self) -> bool {
        self.agencies.is_some()
    }

    /// Reads the agencies file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, AuthConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| AuthConfigError::Invalid {
            path: shown,
            message,
        })
    }

    /// Parses an agencies file.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: AgenciesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.agency.is_empty() {
            return Err("no [[agency]] entries: with no agencies, nobody could call".into());
        }
        let mut agencies = HashMap::new();
        let mut ids = BTreeSet::new();
        for entry in file.agency {
            let what = format!("agency {:?}", entry.id);
            let agency = AgencyId::parse(&entry.id).map_err(|e| format!("{what}: {e}"))?;
            if !ids.insert(entry.id.clone()) {
                return Err(format!("{what} is listed twice"));
            }
            let scope = DivisionCode::parse(&entry.scope).map_err(|e| format!("{what}: {e}"))?;
            if entry.roles.is_empty() {
                return Err(format!("{what} has no roles"));
            }
            let hash = entry.token_sha256.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{what}: token_sha256 must be 64 hex digits (the SHA-256 of the token)"
                ));
            }
            let mut names = vec![normalise(&entry.name)];
            names.extend(entry.also_known_as.iter().map(|n| normalise(n)));
            let government_of = entry
                .government_of
                .as_deref()
                .map(DivisionCode::parse)
                .transpose()
                .map_err(|e| format!("{what}: government_of: {}", e.reason))?;
            let caller = Caller {
                agency,
                names,
                government_of,
                scope: Some(scope),
                roles: entry.roles.into_iter().collect(),
            };
            if agencies.insert(hash, Arc::new(caller)).is_some() {
                return Err(format!("{what} shares its token with another agency"));
            }
        }
        Ok(Self {
            agencies: Some(Arc::new(agencies)),
            local: Arc::new(Caller::local()),
        })
    }

    /// Whether `unit` names a unit this configuration knows: an agency of
    /// the file (any, with authentication off), or any division (the
    /// jurisdiction file is the judge of those).
    pub fn knows(&self, unit: &UnitRef) -> bool {
        match unit {
            UnitRef::Division(_) => true,
            UnitRef::Agency(agency) => self
                .agencies
                .as_ref()
                .is_none_or(|agencies| agencies.values().any(|c| &c.agency == agency)),
        }
    }

    /// The caller `token` stands for: [`Caller::local`] when
    /// authentication is off, `None` for a token no agency holds. The map
    /// is keyed by the hash, so the lookup time does not depend on how much
    /// of a guessed token is right.
    pub fn caller(&self, token: &str) -> Option<Arc<Caller>> {
        match &self.agencies {
            None => Some(self.local.clone()),
            Some(agencies) => agencies.get(&token_hash(token)).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[agency]]
id = "town-101"
name = "Example Town Mediation Centre"
also_known_as = ["Example Town Government"]
scope = "990101101000"
roles = ["registrar", "mediator"]
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
"#;

    #[test]
    fn tokens_are_checked_by_hash_and_scope_follows_the_tree() {
        let agencies = Agencies::from_toml(FILE).unwrap();
        let caller = agencies.caller("test").unwrap();
        assert_eq!(caller.agency().as_str(), "town-101");
        assert!(caller.covers(&DivisionCode::parse("990101101201").unwrap()));
        assert!(!caller.covers(&DivisionCode::parse("990101102201").unwrap()));
        assert!(!caller.covers(&DivisionCode::parse("990101000000").unwrap()));
        assert!(agencies.caller("nope").is_none());
        assert!(Agencies::disabled().caller("anything").is_some());
    }

    #[test]
    fn a_unit_named_only_by_name_never_sees_the_petitioner() {
        let caller = Agencies::from_toml(FILE).unwrap().caller("test").unwrap();
        let other = Name::parse("Some Factory").unwrap();
        let itself = Name::parse(" example town government ").unwrap();
        let view = |unit_name, matter_type| {
            caller.petition_view(&Complaint {
                unit_id: None,
                unit_name,
                matter_type,
            })
        };
        let all = PetitionView {
            petitioner: true,
            content: true,
        };
        assert_eq!(view(Some(&other), None), all);
        assert_eq!(view(None, None), all);
        assert_eq!(
            view(Some(&itself), Some(MatterType::Appeal)),
            PetitionView {
                petitioner: false,
                content: true
            }
        );
        assert_eq!(
            view(Some(&itself), Some(MatterType::Accusation)),
            PetitionView {
                petitioner: false,
                content: false
            }
        );
    }

    #[test]
    fn the_unit_accused_by_id_sees_nothing_and_the_unit_answering_sees_whom() {
        let file = format!("{FILE}government_of = \"990101101000\"\n");
        let agencies = Agencies::from_toml(&file).unwrap();
        let caller = agencies.caller("test").unwrap();
        let by_agency = UnitRef::parse("town-101").unwrap();
        let by_division = UnitRef::parse("990101101000").unwrap();
        let elsewhere = UnitRef::parse("990101102000").unwrap();
        // The same unit however its name is spelled: no name is compared.
        let spelled = Name::parse("Some Other Spelling").unwrap();
        for unit in [&by_agency, &by_division] {
            let view = |matter_type| {
                caller.petition_view(&Complaint {
                    unit_id: Some(unit),
                    unit_name: Some(&spelled),
                    matter_type,
                })
            };
            assert_eq!(
                view(Some(MatterType::Accusation)),
                PetitionView {
                    petitioner: false,
                    content: false
                },
                "{unit}"
            );
            assert_eq!(
                view(Some(MatterType::Appeal)),
                PetitionView {
                    petitioner: true,
                    content: true
                },
                "{unit}"
            );
        }
        let not_accused = caller.petition_view(&Complaint {
            unit_id: Some(&elsewhere),
            unit_name: Some(&Name::parse("Example Town Government").unwrap()),
            matter_type: Some(MatterType::Accusation),
        });
        assert!(not_accused.petitioner && not_accused.content);
        assert!(agencies.knows(&by_agency));
        assert!(!agencies.knows(&UnitRef::parse("town-999").unwrap()));
        assert!(Agencies::disabled().knows(&UnitRef::parse("town-999").unwrap()));
        let bad = format!("{FILE}government_of = \"99\"\n");
        assert!(
            Agencies::from_toml(&bad)
                .unwrap_err()
                .contains("government_of")
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let no_roles = FILE.replace(r#"["registrar", "mediator"]"#, "[]");
        assert!(
            Agencies::from_toml(&no_roles)
                .unwrap_err()
                .contains("no roles")
        );
        let short = FILE.replace("9f86d0", "");
        assert!(Agencies::from_toml(&short).unwrap_err().contains("64 hex"));
        let unknown_role = FILE.replace("\"mediator\"", "\"janitor\"");
        assert!(Agencies::from_toml(&unknown_role).is_err());
        assert!(
            Agencies::from_toml("")
                .unwrap_err()
                .contains("no [[agency]]")
        );
    }

    #[test]
    fn every_write_needs_a_writing_role() {
        let caller = Caller::local();
        assert!(caller.authorise("HoldSession").is_ok());
        assert!(caller.authorise("NoSuchRpc").is_err());
        let analyst = Caller {
            roles: [Role::Analyst].into(),
            ..Caller::local()
        };
        assert!(analyst.authorise("GetDispute").is_ok());
        let refused = analyst.authorise("HoldSession").unwrap_err();
        assert!(
            matches!(refused, AppError::PermissionDenied(_)),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("mediator"));
    }
}
