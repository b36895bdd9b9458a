//! Deadline policy: for each stage of a case, how long it may take and how
//! the days are counted. The statutory defaults ship as `config/policy.toml`;
//! a jurisdiction overrides the stages it names.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Days, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::BusinessCalendar;
use crate::values::Level;

/// A timed stage of a dispute or a petition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// From a grid report to registration.
    GridReport,
    /// How long the village level holds a case.
    VillageHandling,
    /// How long the town level holds a case.
    TownHandling,
    /// How long the district level holds a case.
    DistrictHandling,
    /// From dispatch to the end of mediation.
    Mediation,
    /// From an agreement to the last day to apply for judicial confirmation.
    JudicialConfirmationWindow,
    /// From the application to the court's decision whether to accept it.
    JudicialConfirmationAcceptance,
    /// From the court's acceptance to its ruling (from the application, in
    /// histories recorded before acceptance was a step of its own).
    JudicialConfirmationRuling,
    /// From receipt of a petition to its triage.
    PetitionTriage,
    /// From forwarding or assignment to the receiving unit's written notice.
    PetitionAcceptanceNotice,
    /// From forwarding or assignment to the end of the objection window.
    PetitionObjection,
    /// From acceptance to the handling opinion.
    PetitionOpinion,
    /// The longest single extension of the opinion period.
    PetitionExtension,
    /// From the opinion to the end of the review request window.
    ReviewRequest,
    /// From a review request to the review opinion.
    Review,
    /// From the review opinion to the end of the re-review request window.
    ReReviewRequest,
    /// From a re-review request to the re-review opinion.
    ReReview,
    /// The deadline an assigning office sets for the unit's report (交办),
    /// given in the command, not by policy.
    AssignedReport,
}

impl Stage {
    /// The stages whose length a policy sets; a complete policy file must
    /// name each one.
    pub const POLICY: &'static [Self] = &[
        Self::GridReport,
        Self::VillageHandling,
        Self::TownHandling,
        Self::DistrictHandling,
        Self::Mediation,
        Self::JudicialConfirmationWindow,
        Self::JudicialConfirmationAcceptance,
        Self::JudicialConfirmationRuling,
        Self::PetitionTriage,
        Self::PetitionAcceptanceNotice,
        Self::PetitionObjection,
        Self::PetitionOpinion,
        Self::PetitionExtension,
        Self::ReviewRequest,
        Self::Review,
        Self::ReReviewRequest,
        Self::ReReview,
    ];

    /// A short human name, for messages: "objection window", "review".
    pub fn label(self) -> &'static str {
        match self {
            Self::GridReport => "grid report",
            Self::VillageHandling => "village handling",
            Self::TownHandling => "town handling",
            Self::DistrictHandling => "district handling",
            Self::Mediation => "mediation",
            Self::JudicialConfirmationWindow => "judicial confirmation window",
            Self::JudicialConfirmationAcceptance => "judicial confirmation acceptance",
            Self::JudicialConfirmationRuling => "judicial confirmation ruling",
            Self::PetitionTriage => "triage",
            Self::PetitionAcceptanceNotice => "acceptance notice",
            Self::PetitionObjection => "objection",
            Self::PetitionOpinion => "handling",
            Self::PetitionExtension => "extension",
            Self::ReviewRequest => "review request",
            Self::Review => "review",
            Self::ReReviewRequest => "re-review request",
            Self::ReReview => "re-review",
            Self::AssignedReport => "assigned report",
        }
    }

    /// The stages whose running period may be extended, each by the rule
    /// of its `[extensions.*]` table: a complete policy file names each one.
    pub const EXTENSIBLE: &'static [Self] = &[Self::Mediation, Self::JudicialConfirmationRuling];

    /// The stage that bounds how long `level` holds a case.
    pub fn handling_at(level: Level) -> Self {
        match level {
            Level::Grid => Self::GridReport,
            Level::Village => Self::VillageHandling,
            Level::Town => Self::TownHandling,
            Level::District => Self::DistrictHandling,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// How the days of a period are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counting {
    /// Every day counts (日).
    Calendar,
    /// Only working days count (工作日).
    Working,
}

/// The length of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRule {
    /// Number of days.
    pub days: u32,
    /// How they are counted.
    pub counting: Counting,
}

/// How a running period may be extended: by at most `days` calendar days
/// at a time, counted on from the due time then in force, and at most
/// `times` times over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionRule {
    /// The most calendar days one extension may add.
    pub days: u32,
    /// How many extensions the period allows; 0 allows none.
    pub times: u32,
}

/// A deadline as the policy computed it. Events carry these so that readers
/// need not recompute them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// The stage this deadline bounds.
    pub stage: Stage,
    /// The instant the period lapses: midnight at the end of `last_day`, in
    /// the policy's time zone.
    pub due: DateTime<Utc>,
    /// The last day of the period, local date.
    pub last_day: NaiveDate,
    /// True when the count ran into a year whose holiday schedule was not
    /// loaded; whoever relies on such a deadline should recompute it once the
    /// schedule is loaded.
    pub provisional: bool,
}

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML of the expected shape.
    #[error("policy file: {0}")]
    Syntax(String),
    /// A value out of range, or a stage missing from the base policy.
    #[error("policy file: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    timezone: Option<String>,
    roll_off_days: Option<bool>,
    auto_escalate_on_breach: Option<BTreeSet<Stage>>,
    #[serde(default)]
    stages: BTreeMap<Stage, StageRule>,
    #[serde(default)]
    extensions: BTreeMap<Stage, ExtensionRule>,
}

/// Stage lengths, the time zone deadlines are counted in, whether
/// calendar-day periods that end on a day off roll forward, and which
/// handling periods escalate the case by themselves when they run out.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlinePolicy {
    timezone: FixedOffset,
    roll_off_days: bool,
    auto_escalate: BTreeSet<Stage>,
    rules: BTreeMap<Stage, StageRule>,
    extensions: BTreeMap<Stage, ExtensionRule>,
}

impl DeadlinePolicy {
    /// The statutory policy shipped in `config/policy.toml`.
    pub fn statutory() -> Self {
        // The shipped file is checked by a test below, so this cannot fail
        // in a build whose tests pass.
        Self::from_toml(crate::STATUTORY_POLICY).expect("the shipped statutory policy is valid")
    }

    /// Parses a complete policy: every stage in [`Stage::POLICY`] must be
    /// named.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let file = parse(text)?;
        let timezone = parse_offset(file.timezone.as_deref().unwrap_or("+08:00"))?;
        let policy = Self {
            timezone,
            roll_off_days: file.roll_off_days.unwrap_or(true),
            // Statute escalates nothing by itself; a jurisdiction opts in.
            auto_escalate: file.auto_escalate_on_breach.unwrap_or_default(),
            rules: file.stages,
            extensions: file.extensions,
        };
        if let Some(missing) = Stage::POLICY.iter().find(|s| !policy.rules.contains_key(s)) {
            return Err(PolicyError::Invalid(format!(
                "stage {} has no rule",
                serde_json::to_string(missing).unwrap_or_default()
            )));
        }
        if let Some(missing) = Stage::EXTENSIBLE
            .iter()
            .find(|s| !policy.extensions.contains_key(s))
        {
            return Err(PolicyError::Invalid(format!(
                "stage {} has no [extensions.*] rule",
                serde_json::to_string(missing).unwrap_or_default()
            )));
        }
        Ok(policy)
    }

    /// This policy with the stages (and time zone, roll rule, list of
    /// stages that escalate on breach) that `overrides` names replaced: a
    /// jurisdiction's own figures. A list given replaces the base list whole.
    pub fn with_overrides(&self, overrides: &str) -> Result<Self, PolicyError> {
        let file = parse(overrides)?;
        let mut policy = self.clone();
        if let Some(tz) = file.timezone {
            policy.timezone = parse_offset(&tz)?;
        }
        if let Some(roll) = file.roll_off_days {
            policy.roll_off_days = roll;
        }
        if let Some(stages) = file.auto_escalate_on_breach {
            policy.auto_escalate = stages;
        }
        policy.rules.extend(file.stages);
        policy.extensions.extend(file.extensions);
        Ok(policy)
    }

    /// The rule for `stage`: always `Some` for the [`Stage::POLICY`] stages,
    /// which `from_toml` requires, and `None` for
    /// [`Stage::AssignedReport`], which has no policy rule because the
    /// assigning office gives its length in the command.
    pub fn rule(&self, stage: Stage) -> Option<StageRule> {
        self.rules.get(&stage).copied()
    }

    /// How the running period of `stage` may be extended: always `Some`
    /// for the [`Stage::EXTENSIBLE`] stages, which `from_toml` requires,
    /// and `None` for every other stage, which cannot be extended this way.
    pub fn extension(&self, stage: Stage) -> Option<ExtensionRule> {
        self.extensions.get(&stage).copied()
    }

    /// Whether a breach of `stage` should move the case one level up at once
    /// (`auto_escalate_on_breach` in the policy file, e.g. village → town
    /// when the village's handling period runs out). Empty by default: the
    /// statute escalates nothing by itself, a jurisdiction opts in.
    pub fn escalates_on_breach(&self, stage: Stage) -> bool {
        self.auto_escalate.contains(&stage)
    }

    /// The time zone deadlines are counted in.
    pub fn timezone(&self) -> FixedOffset {
        self.timezone
    }

    /// The deadline of `stage` for a period opened at `opened`. A stage
    /// without a policy rule ([`Stage::AssignedReport`]) has its length given
    /// elsewhere and belongs with [`Self::deadline_for`]; asked here, it gets
    /// a period of no days, ending with the day it opened, rather than a panic.
    pub fn deadline(
        &self,
        stage: Stage,
        opened: DateTime<Utc>,
        calendar: &BusinessCalendar,
    ) -> Deadline {
        self.deadline_for(stage, self.rule_or_none(stage), opened, calendar)
    }

    /// The deadline of `stage` for a period opened on the local day `day`,
    /// like [`Self::deadline`] for an event known by its date.
    pub fn deadline_on(
        &self,
        stage: Stage,
        day: NaiveDate,
        calendar: &BusinessCalendar,
    ) -> Deadline {
        self.deadline_from_day(stage, self.rule_or_none(stage), day, calendar)
    }

    /// The rule of `stage`, or a period of no days for a stage without one.
    fn rule_or_none(&self, stage: Stage) -> StageRule {
        self.rule(stage).unwrap_or(StageRule {
            days: 0,
            counting: Counting::Calendar,
        })
    }

    /// The deadline of a period of `rule`'s length opened at `opened`,
    /// reported as bounding `stage` (used for extensions of a given length).
    pub fn deadline_for(
        &self,
        stage: Stage,
        rule: StageRule,
        opened: DateTime<Utc>,
        calendar: &BusinessCalendar,
    ) -> Deadline {
        let start = opened.with_timezone(&self.timezone).date_naive();
        self.deadline_from_day(stage, rule, start, calendar)
    }

    /// The deadline of a period of `rule`'s length opened on the local day
    /// `start`, reported as bounding `stage`.
    fn deadline_from_day(
        &self,
        stage: Stage,
        rule: StageRule,
        start: NaiveDate,
        calendar: &BusinessCalendar,
    ) -> Deadline {
        let answer = match rule.counting {
            Counting::Working => calendar.add_working_days(start, rule.days),
            Counting::Calendar => {
                let last = start
                    .checked_add_days(Days::new(u64::from(rule.days)))
                    .unwrap_or(NaiveDate::MAX);
                if self.roll_off_days {
                    calendar.roll_to_working_day(last)
                } else {
                    crate::calendar::CalendarAnswer {
                        date: last,
                        provisional: false,
                    }
                }
            }
        };
        Deadline {
            stage,
            due: self.end_of_day(answer.date),
            last_day: answer.date,
            provisional: answer.provisional,
        }
    }

    /// The instant a local day ends (midnight before the next day).
    fn end_of_day(&self, day: NaiveDate) -> DateTime<Utc> {
        let next = day.succ_opt().unwrap_or(NaiveDate::MAX);
        let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
        self.timezone
            .from_local_datetime(&midnight)
            .single()
            .map_or(DateTime::<Utc>::MAX_UTC, |t| t.with_timezone(&Utc))
    }
}

/// The stages whose breach may escalate a case: the handling periods of the
/// levels that have one above them.
const ESCALATING_STAGES: &[Stage] = &[Stage::VillageHandling, Stage::TownHandling];

/// The most extensions a policy may allow one period: a bound that keeps a
/// mistyped figure from meaning "for ever".
const MAX_EXTENSIONS: u32 = 10;

fn parse(text: &str) -> Result<File, PolicyError> {
    let file: File = toml::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
    for (stage, rule) in &file.stages {
        // A stage outside the policy takes its length from each command;
        // a rule for it would never be used, so it is a mistake in the file.
        if !Stage::POLICY.contains(stage) {
            return Err(PolicyError::Invalid(format!(
                "stage {stage:?} is not set by policy: the {stage} deadline is given in each command"
            )));
        }
        if rule.days == 0 || rule.days > 3650 {
            return Err(PolicyError::Invalid(format!(
                "stage {stage:?}: days must be between 1 and 3650, not {}",
                rule.days
            )));
        }
    }
    for (stage, rule) in &file.extensions {
        let key = serde_json::to_string(stage).unwrap_or_default();
        if !Stage::EXTENSIBLE.contains(stage) {
            return Err(PolicyError::Invalid(format!(
                "extensions.{key}: the {stage} period cannot be extended; name \"mediation\" or \"judicial_confirmation_ruling\""
            )));
        }
        if rule.days == 0 || rule.days > 3650 {
            return Err(PolicyError::Invalid(format!(
                "extensions.{key}: days must be between 1 and 3650, not {}",
                rule.days
            )));
        }
        if rule.times > MAX_EXTENSIONS {
            return Err(PolicyError::Invalid(format!(
                "extensions.{key}: times must be between 0 and {MAX_EXTENSIONS}, not {}",
                rule.times
            )));
        }
    }
    // Only a level's handling period can end in an escalation, and the
    // district has no level above it.
    for stage in file.auto_escalate_on_breach.iter().flatten() {
        if !ESCALATING_STAGES.contains(stage) {
            return Err(PolicyError::Invalid(format!(
                "auto_escalate_on_breach: {} cannot escalate a case; name \"village_handling\" or \"town_handling\"",
                serde_json::to_string(stage).unwrap_or_default()
            )));
        }
    }
    Ok(file)
}

fn parse_offset(s: &str) -> Result<FixedOffset, PolicyError> {
    s.parse::<FixedOffset>()
        .map_err(|_| PolicyError::Invalid(format!("timezone {s:?} is not an offset like +08:00")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar() -> BusinessCalendar {
        let mut calendar = BusinessCalendar::new();
        for (_, text) in crate::STATUTORY_HOLIDAYS {
            calendar.load_year_json(text).unwrap();
        }
        calendar
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_shipped_policy_names_every_stage_with_the_statutory_figures() {
        let policy = DeadlinePolicy::statutory();
        assert_eq!(
            policy.rule(Stage::PetitionOpinion),
            Some(StageRule {
                days: 60,
                counting: Counting::Calendar
            })
        );
        assert_eq!(
            policy.rule(Stage::PetitionObjection),
            Some(StageRule {
                days: 5,
                counting: Counting::Working
            })
        );
        assert!(Stage::POLICY.iter().all(|s| policy.rule(*s).is_some()));
        assert_eq!(policy.timezone(), FixedOffset::east_opt(8 * 3600).unwrap());
    }

    #[test]
    fn a_period_starts_the_next_local_day_and_ends_at_local_midnight() {
        let policy = DeadlinePolicy::statutory();
        // 20:00 UTC on 1 March is already 2 March in Beijing.
        let deadline = policy.deadline(
            Stage::PetitionTriage,
            at("2026-03-01T20:00:00Z"),
            &calendar(),
        );
        assert_eq!(
            deadline.last_day,
            "2026-03-17".parse::<NaiveDate>().unwrap()
        );
        assert_eq!(deadline.due, at("2026-03-17T16:00:00Z"));
        assert!(!deadline.provisional);
    }

    #[test]
    fn a_calendar_period_ending_in_a_holiday_rolls_to_the_next_working_day() {
        let policy = DeadlinePolicy::statutory();
        // 15 days from 20 September 2026 is 5 October, in the National Day
        // holiday; the period ends on Thursday 8 October.
        let deadline = policy.deadline(
            Stage::PetitionTriage,
            at("2026-09-20T02:00:00Z"),
            &calendar(),
        );
        assert_eq!(
            deadline.last_day,
            "2026-10-08".parse::<NaiveDate>().unwrap()
        );
    }

    #[test]
    fn working_day_objection_window_skips_the_spring_festival() {
        let policy = DeadlinePolicy::statutory();
        // Forwarded Thursday 12 February 2026: 13, make-up 14, then 24, 25, 26.
        let deadline = policy.deadline(
            Stage::PetitionObjection,
            at("2026-02-12T02:00:00Z"),
            &calendar(),
        );
        assert_eq!(
            deadline.last_day,
            "2026-02-26".parse::<NaiveDate>().unwrap()
        );
    }

    #[test]
    fn a_jurisdiction_overrides_only_the_stages_it_names() {
        let zhejiang = DeadlinePolicy::statutory()
            .with_overrides("[stages.petition_triage]\ndays = 5\ncounting = \"working\"\n")
            .unwrap();
        assert_eq!(
            zhejiang.rule(Stage::PetitionTriage),
            Some(StageRule {
                days: 5,
                counting: Counting::Working
            })
        );
        assert_eq!(
            zhejiang.rule(Stage::PetitionOpinion).map(|r| r.days),
            Some(60)
        );
    }

    #[test]
    fn refuses_bad_policy_files() {
        assert!(DeadlinePolicy::from_toml("timezone = \"+08:00\"").is_err());
        let base = DeadlinePolicy::statutory();
        assert!(
            base.with_overrides("[stages.petition_triage]\ndays = 0\ncounting = \"working\"")
                .is_err()
        );
        assert!(
            base.with_overrides("[stages.no_such_stage]\ndays = 1\ncounting = \"working\"")
                .is_err()
        );
        assert!(base.with_overrides("timezone = \"Mars\"").is_err());
    }

    #[test]
    fn no_stage_escalates_on_breach_unless_a_jurisdiction_says_so() {
        let statutory = DeadlinePolicy::statutory();
        assert!(
            Stage::POLICY
                .iter()
                .all(|s| !statutory.escalates_on_breach(*s))
        );
        let four_levels = statutory
            .with_overrides(
                "auto_escalate_on_breach = [\"village_handling\", \"town_handling\"]\n\
                 [stages.village_handling]\ndays = 2\ncounting = \"working\"\n",
            )
            .unwrap();
        assert!(four_levels.escalates_on_breach(Stage::VillageHandling));
        assert!(four_levels.escalates_on_breach(Stage::TownHandling));
        assert!(!four_levels.escalates_on_breach(Stage::DistrictHandling));
        assert!(!four_levels.escalates_on_breach(Stage::Mediation));
        // A later file's list replaces the earlier one whole; one that does
        // not name the list keeps it.
        let village_only = four_levels
            .with_overrides("auto_escalate_on_breach = [\"village_handling\"]")
            .unwrap();
        assert!(!village_only.escalates_on_breach(Stage::TownHandling));
        let kept = four_levels.with_overrides("roll_off_days = false").unwrap();
        assert!(kept.escalates_on_breach(Stage::TownHandling));
    }

    #[test]
    fn only_a_lower_levels_handling_period_may_escalate_on_breach() {
        let base = DeadlinePolicy::statutory();
        for stage in ["district_handling", "mediation", "petition_opinion"] {
            let error = base
                .with_overrides(&format!("auto_escalate_on_breach = [\"{stage}\"]"))
                .unwrap_err();
            assert!(
                matches!(&error, PolicyError::Invalid(m) if m.contains(stage)),
                "{error}"
            );
        }
        assert!(matches!(
            base.with_overrides("auto_escalate_on_breach = [\"no_such_stage\"]"),
            Err(PolicyError::Syntax(_))
        ));
    }

    #[test]
    fn judicial_confirmation_is_timed_in_two_steps_with_one_extension() {
        // 法释〔2011〕5号 Art 4: accept within 3 days; Art 5: rule within 15
        // days of acceptance, extendable by 10.
        let policy = DeadlinePolicy::statutory();
        let calendar_days = |days| {
            Some(StageRule {
                days,
                counting: Counting::Calendar,
            })
        };
        assert_eq!(
            policy.rule(Stage::JudicialConfirmationAcceptance),
            calendar_days(3)
        );
        assert_eq!(
            policy.rule(Stage::JudicialConfirmationRuling),
            calendar_days(15)
        );
        assert_eq!(
            policy.extension(Stage::JudicialConfirmationRuling),
            Some(ExtensionRule { days: 10, times: 1 })
        );
        // No statute fixes the mediation's; the shipped setting is one
        // extension of up to 30 days.
        assert_eq!(
            policy.extension(Stage::Mediation),
            Some(ExtensionRule { days: 30, times: 1 })
        );
        assert_eq!(policy.extension(Stage::PetitionOpinion), None);
        assert_eq!(
            serde_json::to_string(&Stage::JudicialConfirmationAcceptance).unwrap(),
            "\"judicial_confirmation_acceptance\""
        );
    }

    #[test]
    fn a_jurisdiction_sets_how_long_and_how_often_mediation_is_extended() {
        let policy = DeadlinePolicy::statutory()
            .with_overrides("[extensions.mediation]\ndays = 15\ntimes = 2\n")
            .unwrap();
        assert_eq!(
            policy.extension(Stage::Mediation),
            Some(ExtensionRule { days: 15, times: 2 })
        );
        assert_eq!(
            policy.extension(Stage::JudicialConfirmationRuling),
            Some(ExtensionRule { days: 10, times: 1 })
        );
        let none = DeadlinePolicy::statutory()
            .with_overrides("[extensions.mediation]\ndays = 15\ntimes = 0\n")
            .unwrap();
        assert_eq!(none.extension(Stage::Mediation).map(|r| r.times), Some(0));
    }

    #[test]
    fn refuses_bad_extension_rules() {
        let base = DeadlinePolicy::statutory();
        for (file, mentions) in [
            (
                "[extensions.petition_opinion]\ndays = 30\ntimes = 1",
                "petition_opinion",
            ),
            ("[extensions.mediation]\ndays = 0\ntimes = 1", "days"),
            ("[extensions.mediation]\ndays = 30\ntimes = 11", "times"),
        ] {
            let error = base.with_overrides(file).unwrap_err();
            assert!(
                matches!(&error, PolicyError::Invalid(m) if m.contains(mentions)),
                "{error}"
            );
        }
        assert!(matches!(
            base.with_overrides("[extensions.mediation]\ndays = 30\ncount = 1"),
            Err(PolicyError::Syntax(_))
        ));
        // A complete policy must say how each extensible period extends.
        let mut in_mediation = false;
        let without: String = crate::STATUTORY_POLICY
            .lines()
            .filter(|line| {
                if line.starts_with('[') {
                    in_mediation = *line == "[extensions.mediation]";
                }
                !in_mediation
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let error = DeadlinePolicy::from_toml(&without).unwrap_err();
        assert!(
            matches!(&error, PolicyError::Invalid(m) if m.contains("mediation")),
            "{error}"
        );
    }

    #[test]
    fn the_assigned_report_stage_has_no_policy_rule() {
        // The shipped file does not name it, yet it is complete.
        let policy = DeadlinePolicy::statutory();
        assert!(!Stage::POLICY.contains(&Stage::AssignedReport));
        assert_eq!(policy.rule(Stage::AssignedReport), None);
        assert_eq!(Stage::AssignedReport.label(), "assigned report");
        assert_eq!(
            serde_json::to_string(&Stage::AssignedReport).unwrap(),
            "\"assigned_report\""
        );
        // A file that sets it is refused: the length comes from the command.
        assert!(matches!(
            policy.with_overrides("[stages.assigned_report]\ndays = 20\ncounting = \"calendar\""),
            Err(PolicyError::Invalid(_))
        ));
    }
}
