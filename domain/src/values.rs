//! Value types shared by both aggregates. Each has a `parse` constructor, so
//! that a value which exists is a valid one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value could not be parsed. Names the field and says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidValue {
    /// The field that held the bad value.
    pub field: &'static str,
    /// What is wrong with it, in words a caller can act on.
    pub reason: String,
}

impl InvalidValue {
    /// Builds the error for `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A rung of the escalation ladder, lowest first, so that `Ord` follows it.
///
/// `Grid` is where a dispute may be discovered and reported; cases are
/// registered and handled at village, town or district level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// A grid (网格) inside a village: a report origin, not a handling level.
    Grid,
    /// Village or urban residents' community (村/社区).
    Village,
    /// Town or subdistrict (镇/街道).
    Town,
    /// District or county (区/县): the top of the ladder.
    District,
}

impl Level {
    /// Parses English or Chinese names: `village`/`community`/`村`/`社区`,
    /// `town`/`subdistrict`/`镇`/`街道`, `district`/`county`/`区`/`县`, `grid`/`网格`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grid" | "网格" => Ok(Self::Grid),
            "village" | "community" | "村" | "社区" => Ok(Self::Village),
            "town" | "subdistrict" | "镇" | "街道" | "乡" => Ok(Self::Town),
            "district" | "county" | "区" | "县" => Ok(Self::District),
            other => Err(InvalidValue::new(
                "level",
                format!("unknown level {other:?}; expected village, town or district"),
            )),
        }
    }

    /// The next level up, or `None` at district level (beyond it a case
    /// leaves mediation for a legal channel).
    pub fn up(self) -> Option<Self> {
        match self {
            Self::Grid => Some(Self::Village),
            Self::Village => Some(Self::Town),
            Self::Town => Some(Self::District),
            Self::District => None,
        }
    }

    /// Whether cases can be registered and handled at this level.
    pub fn handles_cases(self) -> bool {
        self != Self::Grid
    }

    /// The lower-case English name used in files and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Village => "village",
            Self::Town => "town",
            Self::District => "district",
        }
    }
}

/// A level a petition may be taken to: the ladder's (village, town,
/// district, as [`Level`]) and the levels above it that petitioners visit
/// too, city (地市), province (赴省) and the national bureau (进京). Stored
/// by the same snake_case names as [`Level`], so that a stored `Level` reads
/// as the same `PetitionLevel`. Lowest first, so that `Ord` follows the
/// ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PetitionLevel {
    /// A grid: never visited, but a [`Level`], so kept for completeness.
    Grid,
    /// Village or community.
    Village,
    /// Town or subdistrict.
    Town,
    /// District or county: the top of this engine's jurisdiction.
    District,
    /// City (地级市).
    City,
    /// Province (省).
    Province,
    /// The national level (国家信访局).
    National,
}

impl PetitionLevel {
    /// Every value, lowest first.
    pub const ALL: &'static [Self] = &[
        Self::Grid,
        Self::Village,
        Self::Town,
        Self::District,
        Self::City,
        Self::Province,
        Self::National,
    ];

    /// Parses the names [`Level::parse`] takes, and `city`/`市`,
    /// `province`/`省`, `national`/`国家`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s.trim().to_ascii_lowercase().as_str() {
            "city" | "市" => Ok(Self::City),
            "province" | "省" => Ok(Self::Province),
            "national" | "国家" => Ok(Self::National),
            other => Level::parse(other).map(Self::from).map_err(|_| {
                InvalidValue::new(
                    "level",
                    format!(
                        "unknown level {other:?}; expected village, town, district, city, \
                         province or national"
                    ),
                )
            }),
        }
    }

    /// The stored name: [`Level::as_str`]'s for the ladder's levels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Village => "village",
            Self::Town => "town",
            Self::District => "district",
            Self::City => "city",
            Self::Province => "province",
            Self::National => "national",
        }
    }

    /// The ladder's level, for a level within the jurisdiction.
    pub fn within_jurisdiction(self) -> Option<Level> {
        match self {
            Self::Grid => Some(Level::Grid),
            Self::Village => Some(Level::Village),
            Self::Town => Some(Level::Town),
            Self::District => Some(Level::District),
            Self::City | Self::Province | Self::National => None,
        }
    }

    /// The level directly above; none above the national level.
    pub fn up(self) -> Option<Self> {
        match self {
            Self::Grid => Some(Self::Village),
            Self::Village => Some(Self::Town),
            Self::Town => Some(Self::District),
            Self::District => Some(Self::City),
            Self::City => Some(Self::Province),
            Self::Province => Some(Self::National),
            Self::National => None,
        }
    }
}

impl From<Level> for PetitionLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Grid => Self::Grid,
            Level::Village => Self::Village,
            Level::Town => Self::Town,
            Level::District => Self::District,
        }
    }
}

impl fmt::Display for PetitionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An official 12-digit statistical division code (统计用区划代码):
/// province (2), prefecture (2), county (2), town (3), village (3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DivisionCode(String);

impl DivisionCode {
    /// Accepts exactly twelve ASCII digits below province level. A code
    /// whose last six digits are zero denotes a county-level division (or a
    /// prefecture-level city without counties, such as 东莞, whose towns sit
    /// directly under it); one whose last three are zero, a town; any other,
    /// a village.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue::new(
                "division_code",
                format!("{s:?} is not a 12-digit division code"),
            ));
        }
        if &s[..2] == "00" || &s[2..] == "0000000000" {
            return Err(InvalidValue::new(
                "division_code",
                format!("{s} names a province, not a district, town or village"),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The level the code denotes, read from its structure.
    pub fn level(&self) -> Level {
        if &self.0[6..] == "000000" {
            Level::District
        } else if &self.0[9..] == "000" {
            Level::Town
        } else {
            Level::Village
        }
    }

    /// The code of the division directly above, by the code's structure;
    /// `None` for a district.
    pub fn parent(&self) -> Option<Self> {
        match self.level() {
            Level::District | Level::Grid => None,
            Level::Town => Some(Self(format!("{}000000", &self.0[..6]))),
            Level::Village => Some(Self(format!("{}000", &self.0[..9]))),
        }
    }

    /// Whether `self` is `other` or lies inside it.
    pub fn is_within(&self, other: &Self) -> bool {
        self.0.starts_with(other.subtree_prefix())
    }

    /// The digits every code in this division's subtree starts with: six
    /// for a district, nine for a town, all twelve for a village.
    pub fn subtree_prefix(&self) -> &str {
        match self.level() {
            Level::District => &self.0[..6],
            Level::Town => &self.0[..9],
            Level::Village | Level::Grid => &self.0[..],
        }
    }

    /// The lowest and highest codes of the subtree, for range queries.
    pub fn subtree_bounds(&self) -> (String, String) {
        let prefix = self.subtree_prefix();
        (format!("{prefix:0<12}"), format!("{prefix:9<12}"))
    }

    /// The code as a string of twelve digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DivisionCode {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DivisionCode> for String {
    fn from(code: DivisionCode) -> Self {
        code.0
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

wire_enum!(
    /// The four kinds of mediation (人民调解、行政调解、司法调解、仲裁调解).
    MediationKind, "mediation_kind" {
        /// People's mediation by a mediation committee (人民调解).
        Peoples = "peoples",
        /// Mediation by an administrative department (行政调解).
        Administrative = "administrative",
        /// Court pre-filing or court-referred mediation (司法调解).
        Judicial = "judicial",
        /// Mediation within arbitration (仲裁调解).
        Arbitration = "arbitration",
    }
);

wire_enum!(
    /// What a dispute is about.
    DisputeCategory, "category" {
        /// Neighbours: boundaries, noise, water, light.
        Neighbourhood = "neighbourhood",
        /// Marriage, family, inheritance, support.
        Family = "family",
        /// Land, contracted land, homesteads.
        Land = "land",
        /// Wages, labour relations.
        Labour = "labour",
        /// Contracts, debts, consumer matters.
        Contract = "contract",
        /// Property management and housing.
        Property = "property",
        /// Traffic and other personal injury.
        Injury = "injury",
        /// Demolition, relocation, compensation.
        Demolition = "demolition",
        /// Medical disputes.
        Medical = "medical",
        /// Anything else.
        Other = "other",
    }
);

wire_enum!(
    /// Risk grading at registration: red cases may escalate at once.
    Risk, "risk" {
        /// Low risk.
        Green = "green",
        /// Watch: may turn into a conflict.
        Yellow = "yellow",
        /// High risk of escalation or harm.
        Red = "red",
    }
);

wire_enum!(
    /// How a petition arrived (信访工作条例 Art 17).
    PetitionChannel, "channel" {
        /// Online platform.
        Online = "online",
        /// Letter.
        Letter = "letter",
        /// Telephone.
        Phone = "phone",
        /// Fax.
        Fax = "fax",
        /// In-person visit.
        Visit = "visit",
    }
);

wire_enum!(
    /// A channel outside mediation and petitions for matters that belong to
    /// law (诉访分离).
    LegalChannel, "legal_channel" {
        /// A civil or administrative lawsuit.
        Litigation = "litigation",
        /// Arbitration.
        Arbitration = "arbitration",
        /// Administrative reconsideration (行政复议).
        AdministrativeReview = "administrative_review",
        /// Procuratorate.
        Procuratorate = "procuratorate",
        /// Discipline inspection bodies, for accusations against officials.
        Discipline = "discipline",
    }
);

/// Declares a bounded, non-empty string newtype.
macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:expr) => {
        text_newtype!($(#[$meta])* $name, $field, $max, multiline = false);
    };
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:expr, multiline = $multiline:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Accepts a non-blank string of at most `MAX_CHARS` characters,
            /// with surrounding white space removed.
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                let s = s.trim();
                if s.is_empty() {
                    return Err(InvalidValue::new($field, "must not be empty"));
                }
                if s.chars().count() > Self::MAX_CHARS {
                    return Err(InvalidValue::new(
                        $field,
                        format!("longer than {} characters", Self::MAX_CHARS),
                    ));
                }
                // Free text may span lines; names and ids may not.
                if s
                    .chars()
                    .any(|c| c.is_control() && !($multiline && matches!(c, '\n' | '\r' | '\t')))
                {
                    return Err(InvalidValue::new($field, "contains control characters"));
                }
                Ok(Self(s.to_owned()))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> Self {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// Who acted: a user or system account id.
    ActorId, "actor_id", 128
);
text_newtype!(
    /// The agency an actor acted for (a mediation committee, a petition
    /// bureau, a partner agency).
    AgencyId, "agency_id", 128
);
text_newtype!(
    /// A short name: a person, a body, a court.
    Name, "name", 200
);
text_newtype!(
    /// Free text: facts, reasons, summaries, terms. May span lines.
    Text, "text", 10_000, multiline = true
);

/// What an erased person's name reads as, wherever it was (a party of a
/// dispute, a petitioner): the person asked to be forgotten and the key
/// their identity was sealed under is gone.
pub const ERASED_NAME: &str = "(erased)";

impl Name {
    /// The name of a person who was erased ([`ERASED_NAME`]).
    pub fn erased() -> Self {
        Self(ERASED_NAME.to_owned())
    }

    /// Whether this is an erased person's name.
    pub fn is_erased(&self) -> bool {
        self.0 == ERASED_NAME
    }
}

/// Who did something and for which agency. Every event carries one, because
/// accountability needs to know who held a case when.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The person or system account.
    pub id: ActorId,
    /// The agency they acted for.
    pub agency: AgencyId,
}

impl Actor {
    /// Builds an actor from raw strings, naming the bad field on failure.
    pub fn parse(id: &str, agency: &str) -> Result<Self, InvalidValue> {
        Ok(Self {
            id: ActorId::parse(id)?,
            agency: AgencyId::parse(agency)?,
        })
    }
}

/// A unit named by configuration, never by spelling: an agency of the
/// agencies file (by its id), or a division of the jurisdiction (by its
/// 12-digit code), standing for that division's people's government and
/// the agencies that declare themselves part of it. Two ways of writing
/// the same unit's name ("青山镇政府", "青山镇人民政府") are one reference.
///
/// Stored and sent as one string: twelve digits are a division code,
/// anything else an agency id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum UnitRef {
    /// An agency, by the id the agencies file gives it.
    Agency(AgencyId),
    /// A division's government, by the division's code.
    Division(DivisionCode),
}

impl UnitRef {
    /// Parses a division code (twelve digits) or an agency id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            DivisionCode::parse(s)
                .map(Self::Division)
                .map_err(|e| InvalidValue::new("unit_id", e.reason))
        } else {
            AgencyId::parse(s)
                .map(Self::Agency)
                .map_err(|e| InvalidValue::new("unit_id", e.reason))
        }
    }

    /// The reference as stored.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Agency(agency) => agency.as_str(),
            Self::Division(division) => division.as_str(),
        }
    }
}

impl TryFrom<String> for UnitRef {
    type Error = InvalidValue;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<UnitRef> for String {
    fn from(unit: UnitRef) -> Self {
        unit.as_str().to_owned()
    }
}

impl fmt::Display for UnitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A case identifier: 1 to 64 ASCII letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseId(String);

impl CaseId {
    /// Parses a case id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() || s.len() > 64 {
            return Err(InvalidValue::new("case_id", "must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(InvalidValue::new(
                "case_id",
                "may hold only ASCII letters, digits, '-' and '_'",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CaseId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CaseId> for String {
    fn from(v: CaseId) -> Self {
        v.0
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_in_both_languages_and_order_up_the_ladder() {
        assert_eq!(Level::parse("community").unwrap(), Level::Village);
        assert_eq!(Level::parse("街道").unwrap(), Level::Town);
        assert_eq!(Level::parse("County").unwrap(), Level::District);
        assert!(Level::parse("province").is_err());
        assert!(Level::Village < Level::Town && Level::Town < Level::District);
        assert_eq!(Level::Village.up(), Some(Level::Town));
        assert_eq!(Level::District.up(), None);
    }

    #[test]
    fn division_codes_know_their_level_and_parent() {
        let village = DivisionCode::parse("990101001201").unwrap();
        assert_eq!(village.level(), Level::Village);
        let town = village.parent().unwrap();
        assert_eq!(town.as_str(), "990101001000");
        assert_eq!(town.level(), Level::Town);
        let district = town.parent().unwrap();
        assert_eq!(district.as_str(), "990101000000");
        assert_eq!(district.parent(), None);
        assert!(village.is_within(&district));
        assert!(village.is_within(&town));
        assert!(!town.is_within(&village));
        let other_town = DivisionCode::parse("990101002000").unwrap();
        assert!(!village.is_within(&other_town));
        assert_eq!(
            town.subtree_bounds(),
            ("990101001000".to_owned(), "990101001999".to_owned())
        );
        assert_eq!(
            village.subtree_bounds(),
            ("990101001201".to_owned(), "990101001201".to_owned())
        );
    }

    #[test]
    fn towns_directly_under_a_prefecture_city_are_accepted() {
        // Dongguan has no counties: its towns sit under the city itself.
        let town = DivisionCode::parse("441900003000").unwrap();
        assert_eq!(town.level(), Level::Town);
        let city = town.parent().unwrap();
        assert_eq!(city.as_str(), "441900000000");
        assert_eq!(city.level(), Level::District);
    }

    #[test]
    fn division_codes_reject_malformed_input() {
        assert!(DivisionCode::parse("99010100120").is_err());
        assert!(DivisionCode::parse("99010100120x").is_err());
        assert!(DivisionCode::parse("990000000000").is_err());
        assert!(DivisionCode::parse("000101000000").is_err());
    }

    #[test]
    fn text_values_are_bounded_and_non_blank() {
        assert!(Name::parse("  ").is_err());
        assert!(Name::parse(&"x".repeat(201)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
        assert!(Name::parse("a\nb").is_err());
        assert!(Text::parse("first line\nsecond line").is_ok());
        assert!(Text::parse("a\u{7}b").is_err());
        assert_eq!(Name::parse(" 王五 ").unwrap().as_str(), "王五");
        assert!(CaseId::parse("D-2026_001").is_ok());
        assert!(CaseId::parse("D 1").is_err());
    }

    #[test]
    fn wire_enums_round_trip() {
        for kind in MediationKind::ALL {
            assert_eq!(MediationKind::parse(kind.as_str()).unwrap(), *kind);
        }
        assert!(Risk::parse("purple").is_err());
    }
}
