//! Times as patients read them: in the provider location's own time zone, with the zone named.
//! The time zone database is compiled in (jiff's bundled tzdb), so this does not depend on the
//! host's `/usr/share/zoneinfo`.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

use crate::clock::UnixTime;

/// A location's time zone: its IANA name, resolved. An unknown name is shown in UTC, saying so.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    pub fn parse(name: &str) -> Self {
        match TimeZone::get(name) {
            Ok(tz) => Self { name: name.to_owned(), tz },
            Err(_) => {
                tracing::warn!(zone = %name.chars().take(64).collect::<String>(), "unknown time zone from Zocdoc; showing UTC");
                Self { name: "UTC".to_owned(), tz: TimeZone::UTC }
            }
        }
    }

    /// The IANA name (`America/New_York`), or `UTC`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Eastern Time (America/New_York)`: a common name where we know one, and the IANA name.
    pub fn label(&self) -> String {
        let common = match self.name.as_str() {
            "America/New_York" | "America/Detroit" | "America/Indiana/Indianapolis" => Some("Eastern Time"),
            "America/Chicago" => Some("Central Time"),
            "America/Denver" => Some("Mountain Time"),
            "America/Phoenix" => Some("Mountain Time, no daylight saving"),
            "America/Los_Angeles" => Some("Pacific Time"),
            "America/Anchorage" => Some("Alaska Time"),
            "Pacific/Honolulu" => Some("Hawaii Time"),
            _ => None,
        };
        match common {
            Some(common) => format!("{common} ({})", self.name),
            None => self.name.clone(),
        }
    }

    fn at(&self, t: UnixTime) -> Option<ZonedDateTime> {
        Timestamp::from_second(t).ok().map(|ts| ts.to_zoned_datetime(self.tz.clone()))
    }

    /// `Monday, March 15`.
    pub fn day(&self, t: UnixTime) -> String {
        self.at(t).map(|z| z.strftime("%A, %B %-d").to_string()).unwrap_or_default()
    }

    /// `9:00 AM EDT`.
    pub fn time(&self, t: UnixTime) -> String {
        self.at(t).map(|z| z.strftime("%-I:%M %p %Z").to_string()).unwrap_or_default()
    }

    /// `Monday, March 15, 2027 at 9:00 AM EDT`.
    pub fn when(&self, t: UnixTime) -> String {
        self.at(t).map(|z| z.strftime("%A, %B %-d, %Y at %-I:%M %p %Z").to_string()).unwrap_or_default()
    }

    /// The local calendar day, to group times by.
    pub fn date_key(&self, t: UnixTime) -> String {
        self.at(t).map(|z| z.date().to_string()).unwrap_or_default()
    }
}

/// An RFC 3339 date-time (`2027-03-15T09:00:00-04:00`, `…Z`) as Unix seconds.
pub fn parse_instant(raw: &str) -> Option<UnixTime> {
    raw.trim().parse::<Timestamp>().ok().map(Timestamp::as_second)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn local_times_follow_daylight_saving_where_the_zone_has_it() {
        let ny = Zone::parse("America/New_York");
        let phoenix = Zone::parse("America/Phoenix");
        let friday = parse_instant("2027-03-12T09:00:00-05:00").unwrap();
        let monday = parse_instant("2027-03-15T09:00:00-04:00").unwrap();
        assert_eq!(ny.time(friday), "9:00 AM EST");
        assert_eq!(ny.time(monday), "9:00 AM EDT");
        assert_eq!(ny.day(monday), "Monday, March 15");
        assert_eq!(ny.when(monday), "Monday, March 15, 2027 at 9:00 AM EDT");
        assert_eq!(phoenix.time(parse_instant("2027-03-15T16:00:00Z").unwrap()), "9:00 AM MST");
        assert_eq!(phoenix.time(parse_instant("2027-03-12T16:00:00Z").unwrap()), "9:00 AM MST");
        assert_eq!(ny.label(), "Eastern Time (America/New_York)");
        assert_eq!(phoenix.label(), "Mountain Time, no daylight saving (America/Phoenix)");
        assert_eq!(Zone::parse("Europe/Warsaw").label(), "Europe/Warsaw");
        assert_eq!(ny.date_key(monday), "2027-03-15");
    }

    #[test]
    fn unknown_zones_and_bad_times_are_handled() {
        let unknown = Zone::parse("Mars/Olympus_Mons");
        assert_eq!(unknown.name(), "UTC");
        assert_eq!(unknown.time(0), "12:00 AM UTC");
        for bad in ["", "tomorrow", "2027-03-15", "2027-03-15T09:00:00", "2027-13-01T00:00:00Z"] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
        assert_eq!(parse_instant("1970-01-01T00:00:10Z"), Some(10));
    }
}
