//! Time as the platform stores it (Unix milliseconds) and shows it (RFC 3339).

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The server's clock as a value: the system's, or one a test drives.
/// Modules whose logic depends on the time (the money writer's batch time,
/// PK battles' countdowns and ends) read this one rather than
/// [`now_ms`], so a test can move time exactly.
#[derive(Clone)]
pub struct Clock(std::sync::Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(std::sync::Arc::new(now_ms))
    }

    /// A clock that reads `f` (Unix ms).
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(std::sync::Arc::new(f))
    }

    /// Now (Unix ms).
    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", rfc3339(self.now()))
    }
}

/// `2026-12-01T20:00:00Z` (milliseconds shown only when there are some).
pub fn rfc3339(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.to_string(),
        Err(_) => String::new(),
    }
}

/// Parses an RFC 3339 instant (with `Z` or an offset) to milliseconds.
/// The error is for people (pages show it next to a date field): the
/// format is the API document's business.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    s.trim().parse::<jiff::Timestamp>().map(|t| t.as_millisecond()).map_err(|_| "is not a valid date and time".to_owned())
}

/// Serde for `i64` milliseconds as RFC 3339 strings in JSON.
pub mod json {
    use serde::Serializer;

    /// A time.
    pub fn ms<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*v))
    }

    /// An optional time (`null` when absent).
    pub fn opt_ms<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&super::rfc3339(*v)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ms = parse_rfc3339("2026-03-08T06:30:00-05:00").unwrap();
        assert_eq!(rfc3339(ms), "2026-03-08T11:30:00Z");
        assert_eq!(parse_rfc3339("tomorrow").unwrap_err(), "is not a valid date and time");
        // What a browser sends for 9999-12-31 23:00 west of UTC.
        assert!(parse_rfc3339("+010000-01-01T04:00:00.000Z").is_err());
    }
}
