//! When a recurring stream happens next.
//!
//! A recurrence is a local time of day in an IANA time zone, every day or on
//! chosen weekdays. Occurrences are computed in local time, so a 20:00 show
//! stays at 20:00 on the wall clock across a daylight-saving change (its UTC
//! instant moves by the offset change). A local time that does not exist on a
//! spring-forward day is moved later by the gap; one that happens twice on a
//! fall-back day is the first of the two (RFC 5545's rule, jiff's
//! "compatible" disambiguation).

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// Every day.
    Daily,
    /// On the chosen weekdays.
    Weekly,
}

/// A recurrence as the API takes and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Recurrence {
    /// `daily` or `weekly`.
    pub freq: Frequency,
    /// Weekly: the days, as `mon`..`sun`.
    #[serde(default)]
    pub days: Vec<String>,
    /// Local start time, `HH:MM` (24 h).
    pub time: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// No occurrence after this instant (RFC 3339), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// A checked recurrence, ready to compute with.
#[derive(Debug, Clone)]
pub struct Rule {
    freq: Frequency,
    days: Vec<Weekday>,
    time: Time,
    tz: TimeZone,
    until: Option<i64>,
}

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn day_name(d: Weekday) -> &'static str {
    DAY_NAMES.iter().find(|(_, w)| *w == d).map(|(n, _)| *n).unwrap_or("mon")
}

impl Rule {
    /// Checks a recurrence; every problem names its field.
    pub fn parse(r: &Recurrence) -> Result<Rule, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let tz = TimeZone::get(r.timezone.trim()).map_err(|_| errors.push(("timezone", format!("'{}' is not an IANA time zone such as Europe/Berlin", r.timezone)))).ok();
        let time = parse_hhmm(&r.time);
        if time.is_none() {
            errors.push(("time", format!("'{}' is not a time of day as HH:MM", r.time)));
        }
        let mut days = Vec::new();
        for d in &r.days {
            let key = d.trim().to_ascii_lowercase();
            let key = key.get(..3).unwrap_or(&key);
            match DAY_NAMES.iter().find(|(n, _)| *n == key) {
                Some((_, day)) if !days.contains(day) => days.push(*day),
                Some(_) => {}
                None => errors.push(("days", format!("'{d}' is not a weekday (mon..sun)"))),
            }
        }
        days.sort_by_key(|d| d.to_monday_one_offset());
        if r.freq == Frequency::Weekly && r.days.is_empty() {
            errors.push(("days", "a weekly recurrence needs at least one weekday".into()));
        }
        let until = match &r.until {
            Some(u) => crate::clock::parse_rfc3339(u).map_err(|e| errors.push(("until", e))).ok(),
            None => None,
        };
        match (tz, time) {
            (Some(tz), Some(time)) if errors.is_empty() => Ok(Rule { freq: r.freq, days, time, tz, until }),
            _ => Err(errors),
        }
    }

    /// From the stored columns.
    pub fn from_columns(freq: &str, days: &str, time: &str, tz: &str, until: Option<i64>) -> Option<Rule> {
        let r = Recurrence {
            freq: if freq == "daily" { Frequency::Daily } else { Frequency::Weekly },
            days: days.split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect(),
            time: time.to_owned(),
            timezone: tz.to_owned(),
            until: None,
        };
        let mut rule = Rule::parse(&r).ok()?;
        rule.until = until;
        Some(rule)
    }

    /// The stored columns: (freq, days, time, timezone, until).
    pub fn columns(&self) -> (&'static str, String, String, String, Option<i64>) {
        let freq = match self.freq {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
        };
        let days = self.days.iter().map(|d| day_name(*d)).collect::<Vec<_>>().join(",");
        (freq, days, format!("{:02}:{:02}", self.time.hour(), self.time.minute()), self.tz_name(), self.until)
    }

    /// As the API shows it.
    pub fn to_api(&self) -> Recurrence {
        let (_, days, time, timezone, until) = self.columns();
        Recurrence {
            freq: self.freq,
            days: days.split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect(),
            time,
            timezone,
            until: until.map(crate::clock::rfc3339),
        }
    }

    fn tz_name(&self) -> String {
        self.tz.iana_name().unwrap_or("UTC").to_owned()
    }

    fn on(&self, date: Date) -> bool {
        match self.freq {
            Frequency::Daily => true,
            Frequency::Weekly => self.days.contains(&date.weekday()),
        }
    }

    /// The first occurrence strictly after `after_ms` (Unix ms), if any.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = Timestamp::from_millisecond(after_ms).ok()?;
        let mut date = after.to_zoned_datetime(self.tz.clone()).date();
        // The local date can lag the instant by a day at most; a week covers
        // every weekday.
        date = date.yesterday().ok()?;
        for _ in 0..9 {
            if self.on(date) {
                let at = date.to_datetime(self.time).to_zoned_datetime(self.tz.clone()).ok()?.timestamp().as_millisecond();
                if at > after_ms {
                    return match self.until {
                        Some(until) if at > until => None,
                        _ => Some(at),
                    };
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// Up to `count` occurrences after `after_ms`.
    pub fn occurrences(&self, after_ms: i64, count: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(count);
        let mut t = after_ms;
        while out.len() < count {
            match self.next_after(t) {
                Some(n) => {
                    out.push(n);
                    t = n;
                }
                None => break,
            }
        }
        out
    }
}

fn parse_hhmm(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() > 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{parse_rfc3339, rfc3339};

    fn weekly(days: &[&str], time: &str, tz: &str) -> Rule {
        Rule::parse(&Recurrence {
            freq: Frequency::Weekly,
            days: days.iter().map(|d| d.to_string()).collect(),
            time: time.into(),
            timezone: tz.into(),
            until: None,
        })
        .unwrap()
    }

    #[test]
    fn weekly_keeps_wall_clock_time_across_dst() {
        // New York springs forward on Sunday 2026-03-08.
        let r = weekly(&["sat", "sun"], "20:00", "America/New_York");
        let got: Vec<String> = r.occurrences(parse_rfc3339("2026-03-06T12:00:00Z").unwrap(), 4).into_iter().map(rfc3339).collect();
        assert_eq!(
            got,
            ["2026-03-08T01:00:00Z", "2026-03-09T00:00:00Z", "2026-03-15T00:00:00Z", "2026-03-16T00:00:00Z"],
            "Saturday 20:00 EST is 01:00Z; Sunday 20:00 EDT is 00:00Z"
        );
    }

    #[test]
    fn daily_through_the_gap_and_the_fold() {
        // Berlin: 2026-03-29 02:00 -> 03:00; 2026-10-25 03:00 -> 02:00.
        let r = Rule::parse(&Recurrence { freq: Frequency::Daily, days: vec![], time: "02:30".into(), timezone: "Europe/Berlin".into(), until: None }).unwrap();
        let spring: Vec<String> = r.occurrences(parse_rfc3339("2026-03-28T00:00:00Z").unwrap(), 3).into_iter().map(rfc3339).collect();
        // 02:30 on the 29th does not exist: it becomes 03:30 CEST (01:30Z).
        assert_eq!(spring, ["2026-03-28T01:30:00Z", "2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"]);
        let fall: Vec<String> = r.occurrences(parse_rfc3339("2026-10-24T12:00:00Z").unwrap(), 2).into_iter().map(rfc3339).collect();
        // 02:30 on the 25th happens twice: the first (CEST, 00:30Z).
        assert_eq!(fall, ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]);
    }

    #[test]
    fn until_stops_the_series_and_bad_input_names_the_field() {
        let mut r = weekly(&["mon"], "09:00", "UTC");
        r.until = Some(parse_rfc3339("2026-12-10T00:00:00Z").unwrap());
        let got = r.occurrences(parse_rfc3339("2026-12-01T00:00:00Z").unwrap(), 5);
        assert_eq!(got.into_iter().map(rfc3339).collect::<Vec<_>>(), ["2026-12-07T09:00:00Z"]);

        let bad = |tz: &str, time: &str, days: &[&str]| -> Vec<&str> {
            let r = Recurrence { freq: Frequency::Weekly, days: days.iter().map(|d| d.to_string()).collect(), time: time.into(), timezone: tz.into(), until: None };
            Rule::parse(&r).unwrap_err().into_iter().map(|e| e.0).collect()
        };
        assert_eq!(bad("Mars/Olympus", "10:00", &["mon"]), ["timezone"]);
        assert_eq!(bad("UTC", "25:00", &["mon"]), ["time"]);
        assert_eq!(bad("UTC", "10:00", &["someday"]), ["days"]);
        assert_eq!(bad("UTC", "10:00", &[]), ["days"]);
        assert_eq!(bad("Mars/Olympus", "7", &[]), ["timezone", "time", "days"], "every problem at once");
    }

    #[test]
    fn columns_round_trip() {
        let r = weekly(&["Friday", "mon", "fri"], "7:05", "Asia/Tokyo");
        let (f, d, t, z, u) = r.columns();
        assert_eq!((f, d.as_str(), t.as_str(), z.as_str(), u), ("weekly", "mon,fri", "07:05", "Asia/Tokyo", None));
        let back = Rule::from_columns(f, &d, &t, &z, u).unwrap();
        assert_eq!(back.next_after(0), r.next_after(0));
    }
}
