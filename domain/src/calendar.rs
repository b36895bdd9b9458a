//! The business calendar: which days are working days, from the official
//! holiday schedule with its make-up working days (调休).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

/// Why a holiday file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// Not JSON of the shape `{"days": [{"name", "date", "isOffDay"}]}`.
    #[error("holiday file: {0}")]
    Syntax(String),
    /// Dates of several years, or a year that disagrees with its dates.
    #[error("holiday file: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct YearFile {
    year: Option<i32>,
    days: Vec<DayEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DayEntry {
    #[allow(dead_code)]
    name: String,
    date: NaiveDate,
    is_off_day: bool,
}

#[derive(Debug, Clone, Default)]
struct YearSchedule {
    off: BTreeSet<NaiveDate>,
    working: BTreeSet<NaiveDate>,
}

/// Working days by year. A year whose schedule has not been loaded is
/// *unpublished*: its working days are guessed as Monday to Friday, and every
/// answer that relied on such a guess says so, so that a deadline computed
/// from it is flagged provisional and a reader knows to recompute it once
/// the year is loaded.
#[derive(Debug, Clone, Default)]
pub struct BusinessCalendar {
    years: BTreeMap<i32, YearSchedule>,
}

/// A date with a flag saying whether it relied on an unpublished year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarAnswer {
    /// The date computed.
    pub date: NaiveDate,
    /// True when some day counted lies in a year with no loaded schedule.
    pub provisional: bool,
}

impl BusinessCalendar {
    /// A calendar with no years loaded: every year is unpublished.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads one year's schedule (`{"year": 2026, "days": [...]}`; `year` may
    /// be omitted when the dates say it) and returns the year. A schedule may
    /// list days of the neighbouring years too, as the official notices do
    /// for a make-up working day that falls on the last weekend of December
    /// before a New Year or Spring Festival holiday. Loading a year twice
    /// replaces the earlier schedule.
    pub fn load_year_json(&mut self, text: &str) -> Result<i32, CalendarError> {
        let file: YearFile =
            serde_json::from_str(text).map_err(|e| CalendarError::Syntax(e.to_string()))?;
        let year = match (file.year, file.days.first()) {
            (Some(year), _) => year,
            (None, Some(day)) => day.date.year(),
            (None, None) => {
                return Err(CalendarError::Invalid(
                    "no \"year\" and no days: cannot tell which year this is".into(),
                ));
            }
        };
        let mut schedule = YearSchedule::default();
        for day in file.days {
            if (day.date.year() - year).abs() > 1 {
                return Err(CalendarError::Invalid(format!(
                    "{} lies too far from the file's year {year}",
                    day.date
                )));
            }
            if day.is_off_day {
                schedule.off.insert(day.date);
            } else {
                schedule.working.insert(day.date);
            }
        }
        if let Some(both) = schedule.off.intersection(&schedule.working).next() {
            return Err(CalendarError::Invalid(format!(
                "{both} is listed both as a day off and as a working day"
            )));
        }
        self.years.insert(year, schedule);
        Ok(year)
    }

    /// Whether the official schedule for `year` has been loaded.
    pub fn is_published(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// The years loaded, in order.
    pub fn published_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.keys().copied()
    }

    /// Whether `date` is a working day, and whether the answer is a guess.
    pub fn is_working_day(&self, date: NaiveDate) -> (bool, bool) {
        let year = date.year();
        // The date's own year decides first; a neighbouring year's schedule
        // may still list it (a make-up day across New Year).
        for schedule in [year, year - 1, year + 1]
            .iter()
            .filter_map(|y| self.years.get(y))
        {
            if schedule.off.contains(&date) {
                return (false, false);
            }
            if schedule.working.contains(&date) {
                return (true, false);
            }
        }
        let weekday = !matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        (weekday, !self.is_published(year))
    }

    /// The `n`-th working day after `start` (`start` itself is not counted,
    /// as the law counts periods). `n = 0` gives `start`.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> CalendarAnswer {
        let mut date = start;
        let mut left = n;
        let mut provisional = false;
        while left > 0 {
            date = date.succ_opt().unwrap_or(NaiveDate::MAX);
            let (working, guessed) = self.is_working_day(date);
            provisional |= guessed;
            if working {
                left -= 1;
            }
        }
        CalendarAnswer { date, provisional }
    }

    /// `date` if it is a working day, else the first working day after it.
    pub fn roll_to_working_day(&self, date: NaiveDate) -> CalendarAnswer {
        let mut date = date;
        let mut provisional = false;
        loop {
            let (working, guessed) = self.is_working_day(date);
            provisional |= guessed;
            if working {
                return CalendarAnswer { date, provisional };
            }
            date = date.succ_opt().unwrap_or(NaiveDate::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn shipped() -> BusinessCalendar {
        let mut calendar = BusinessCalendar::new();
        for (_, text) in crate::STATUTORY_HOLIDAYS {
            calendar.load_year_json(text).unwrap();
        }
        calendar
    }

    #[test]
    fn the_spring_festival_week_is_not_counted() {
        let calendar = shipped();
        // 2026: off 15–23 February; Friday 13th is the last working day before.
        let answer = calendar.add_working_days(d("2026-02-13"), 1);
        // Saturday 14 February is a make-up working day.
        assert_eq!(
            answer,
            CalendarAnswer {
                date: d("2026-02-14"),
                provisional: false
            }
        );
        let answer = calendar.add_working_days(d("2026-02-14"), 1);
        assert_eq!(answer.date, d("2026-02-24"));
        assert!(!answer.provisional);
    }

    #[test]
    fn a_make_up_saturday_is_a_working_day_and_a_holiday_weekday_is_not() {
        let calendar = shipped();
        assert_eq!(calendar.is_working_day(d("2025-02-08")), (true, false));
        assert_eq!(calendar.is_working_day(d("2025-01-29")), (false, false));
        assert_eq!(calendar.is_working_day(d("2025-03-08")), (false, false));
        assert_eq!(calendar.is_working_day(d("2025-03-10")), (true, false));
    }

    #[test]
    fn five_working_days_across_the_national_day_week() {
        let calendar = shipped();
        // Tuesday 29 September 2026: 30th is a working day, 1–7 October off,
        // then Thursday 8, Friday 9, make-up Saturday 10 and Monday 12.
        let answer = calendar.add_working_days(d("2026-09-29"), 5);
        assert_eq!(answer.date, d("2026-10-12"));
        assert!(!answer.provisional);
    }

    #[test]
    fn a_deadline_into_an_unpublished_year_is_counted_on_weekdays_and_flagged() {
        let calendar = shipped();
        assert!(!calendar.is_published(2027));
        // Thursday 24 December 2026 + 10 working days: 25, 28–31 Dec (2026,
        // published), then 1, 4–7 Jan 2027 guessed as plain weekdays.
        let answer = calendar.add_working_days(d("2026-12-24"), 10);
        assert_eq!(answer.date, d("2027-01-07"));
        assert!(answer.provisional);
    }

    #[test]
    fn loading_the_year_later_makes_the_same_count_definitive() {
        let mut calendar = shipped();
        calendar
            .load_year_json(
                r#"{"year": 2027, "days": [{"name": "元旦", "date": "2027-01-01", "isOffDay": true}]}"#,
            )
            .unwrap();
        let answer = calendar.add_working_days(d("2026-12-24"), 10);
        assert_eq!(answer.date, d("2027-01-08"));
        assert!(!answer.provisional);
    }

    #[test]
    fn a_schedule_may_list_a_make_up_day_of_the_previous_year() {
        // The 2012 notice made Saturday 31 December 2011 a working day.
        let mut calendar = BusinessCalendar::new();
        let year = calendar
            .load_year_json(
                r#"{"year": 2012, "days": [
                    {"name": "元旦", "date": "2011-12-31", "isOffDay": false},
                    {"name": "元旦", "date": "2012-01-02", "isOffDay": true}]}"#,
            )
            .unwrap();
        assert_eq!(year, 2012);
        assert_eq!(calendar.is_working_day(d("2011-12-31")), (true, false));
        assert_eq!(calendar.is_working_day(d("2012-01-02")), (false, false));
        // Other days of 2011 are still guesses: 2011 itself is not loaded.
        assert_eq!(calendar.is_working_day(d("2011-12-30")), (true, true));
        assert!(!calendar.is_published(2011));
    }

    #[test]
    fn refuses_malformed_files() {
        let mut calendar = BusinessCalendar::new();
        assert!(calendar.load_year_json("{").is_err());
        assert!(
            calendar
                .load_year_json(
                    r#"{"year": 2025, "days": [{"name": "x", "date": "2027-01-01", "isOffDay": true}]}"#
                )
                .is_err()
        );
        assert!(calendar.load_year_json(r#"{"days": []}"#).is_err());
    }

    #[test]
    fn rolls_a_day_off_to_the_next_working_day() {
        let calendar = shipped();
        assert_eq!(
            calendar.roll_to_working_day(d("2025-10-03")).date,
            d("2025-10-09")
        );
        assert_eq!(
            calendar.roll_to_working_day(d("2025-10-09")).date,
            d("2025-10-09")
        );
    }
}
