//! The jurisdiction tree (district → towns → villages), read from a
//! configuration file so that a deployment describes its own divisions.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::values::{DivisionCode, Level};

/// A division of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Division {
    /// Its official code.
    pub code: DivisionCode,
    /// Its name, as written in the configuration.
    pub name: String,
    /// District, town or village.
    pub level: Level,
    /// The division directly above; `None` for a district.
    pub parent: Option<DivisionCode>,
}

/// Why a jurisdiction file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JurisdictionError {
    /// The file is not valid TOML of the expected shape.
    #[error("jurisdiction file: {0}")]
    Syntax(String),
    /// A code is malformed, sits at the wrong level, or outside its parent.
    #[error("jurisdiction file: {0}")]
    Invalid(String),
}

/// The divisions a deployment serves.
#[derive(Debug, Clone, Default)]
pub struct Jurisdiction {
    divisions: BTreeMap<DivisionCode, Division>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    districts: Vec<DistrictEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DistrictEntry {
    code: String,
    name: String,
    #[serde(default)]
    towns: Vec<TownEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TownEntry {
    code: String,
    name: String,
    #[serde(default)]
    villages: Vec<VillageEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VillageEntry {
    code: String,
    name: String,
}

impl Jurisdiction {
    /// Parses and checks a jurisdiction file (TOML: `[[districts]]` with
    /// `[[districts.towns]]` and `[[districts.towns.villages]]`, each with
    /// `code` and `name`). Every code must sit at the level of its place in
    /// the tree and inside its parent; no code may appear twice.
    pub fn from_toml(text: &str) -> Result<Self, JurisdictionError> {
        let file: File =
            toml::from_str(text).map_err(|e| JurisdictionError::Syntax(e.to_string()))?;
        let mut tree = Self::default();
        for district in file.districts {
            let d = tree.insert(&district.code, district.name, Level::District, None)?;
            for town in district.towns {
                let t = tree.insert(&town.code, town.name, Level::Town, Some(&d))?;
                for village in town.villages {
                    tree.insert(&village.code, village.name, Level::Village, Some(&t))?;
                }
            }
        }
        if tree.divisions.is_empty() {
            return Err(JurisdictionError::Invalid("no districts defined".into()));
        }
        Ok(tree)
    }

    fn insert(
        &mut self,
        code: &str,
        name: String,
        level: Level,
        parent: Option<&DivisionCode>,
    ) -> Result<DivisionCode, JurisdictionError> {
        let parsed =
            DivisionCode::parse(code).map_err(|e| JurisdictionError::Invalid(e.to_string()))?;
        if parsed.level() != level {
            return Err(JurisdictionError::Invalid(format!(
                "{code} ({name}) is listed as a {level} but its code denotes a {}",
                parsed.level()
            )));
        }
        if let Some(parent) = parent
            && parsed.parent().as_ref() != Some(parent)
        {
            return Err(JurisdictionError::Invalid(format!(
                "{code} ({name}) is listed under {parent} but its code does not lie inside it"
            )));
        }
        if name.trim().is_empty() {
            return Err(JurisdictionError::Invalid(format!(
                "{code} has an empty name"
            )));
        }
        let division = Division {
            code: parsed.clone(),
            name,
            level,
            parent: parent.cloned(),
        };
        if self.divisions.insert(parsed.clone(), division).is_some() {
            return Err(JurisdictionError::Invalid(format!("{code} appears twice")));
        }
        Ok(parsed)
    }

    /// The division with this code, if the tree has it.
    pub fn get(&self, code: &DivisionCode) -> Option<&Division> {
        self.divisions.get(code)
    }

    /// The division directly above `code`, if both are in the tree.
    pub fn parent(&self, code: &DivisionCode) -> Option<&Division> {
        self.get(code)?.parent.as_ref().and_then(|p| self.get(p))
    }

    /// The divisions directly below `code`, in code order.
    pub fn children<'a>(&'a self, code: &'a DivisionCode) -> impl Iterator<Item = &'a Division> {
        self.divisions
            .values()
            .filter(move |d| d.parent.as_ref() == Some(code))
    }

    /// Every division, in code order.
    pub fn divisions(&self) -> impl Iterator<Item = &Division> {
        self.divisions.values()
    }

    /// Whether `code` is in the tree and lies in the subtree rooted at `root`.
    pub fn contains(&self, root: &DivisionCode, code: &DivisionCode) -> bool {
        self.divisions.contains_key(code) && code.is_within(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[districts]]
code = "990101000000"
name = "示范区"

[[districts.towns]]
code = "990101001000"
name = "东湖街道"

[[districts.towns.villages]]
code = "990101001001"
name = "湖滨社区"
"#;

    fn code(s: &str) -> DivisionCode {
        DivisionCode::parse(s).unwrap()
    }

    #[test]
    fn loads_a_tree_and_answers_parent_and_children() {
        let tree = Jurisdiction::from_toml(SAMPLE).unwrap();
        let village = code("990101001001");
        assert_eq!(tree.get(&village).unwrap().name, "湖滨社区");
        assert_eq!(tree.parent(&village).unwrap().code, code("990101001000"));
        let district = code("990101000000");
        assert_eq!(tree.children(&district).count(), 1);
        assert!(tree.contains(&district, &village));
        assert!(!tree.contains(&district, &code("990101001002")));
    }

    #[test]
    fn refuses_a_code_outside_its_parent() {
        let bad = SAMPLE.replace("990101001001", "990101002001");
        let err = Jurisdiction::from_toml(&bad).unwrap_err();
        assert!(err.to_string().contains("does not lie inside"), "{err}");
    }

    #[test]
    fn refuses_a_code_at_the_wrong_level() {
        let bad = SAMPLE.replace("990101001001", "990101003000");
        assert!(Jurisdiction::from_toml(&bad).is_err());
    }

    #[test]
    fn ships_a_valid_example() {
        let tree = Jurisdiction::from_toml(crate::EXAMPLE_JURISDICTION).unwrap();
        assert!(
            tree.divisions()
                .filter(|d| d.level == Level::Village)
                .count()
                >= 6
        );
    }
}
