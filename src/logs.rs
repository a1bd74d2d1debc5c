//! The process's log output: `tracing` events (and the `log` records of
//! the WebRTC crates) on standard error.
//!
//! - Colours only when standard error is a terminal: a log file or a
//!   journal gets no ANSI escape codes.
//! - `ONAIR_LOG_FORMAT=json`: one JSON object a line, for log collectors.
//! - `ONAIR_LOG` filters (`tracing` syntax), default `info`.
//! - Known noise of dependencies is moved down to `debug` (see
//!   [`demoted`]): still there when debugging, not at the default level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

impl Format {
    /// From `ONAIR_LOG_FORMAT` (`text`, the default, or `json`).
    pub fn from_env() -> Result<Format, String> {
        match std::env::var("ONAIR_LOG_FORMAT").ok().as_deref().map(str::trim) {
            None | Some("") | Some("text") => Ok(Format::Text),
            Some("json") => Ok(Format::Json),
            Some(other) => Err(format!("ONAIR_LOG_FORMAT must be 'text' or 'json', not '{other}'")),
        }
    }
}

/// Installs the logger for the whole process (once, at start-up).
pub fn init() -> Result<(), String> {
    let format = Format::from_env()?;
    let filter = EnvFilter::try_from_env("ONAIR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        Format::Json => tracing::subscriber::set_global_default(builder.json().flatten_event(true).with_current_span(false).finish()),
        Format::Text => tracing::subscriber::set_global_default(builder.with_ansi(std::io::stderr().is_terminal()).finish()),
    };
    installed.map_err(|e| e.to_string())?;
    log::set_boxed_logger(Box::new(Bridge(tracing_log::LogTracer::new()))).map_err(|e| e.to_string())?;
    log::set_max_level(tracing_log::AsLog::as_log(&tracing::level_filters::LevelFilter::current()));
    Ok(())
}

/// The level a dependency's `log` record is shown at: its own, or `debug`
/// for messages known to be harmless noise.
///
/// - `rtc_dtls`' "Unsupported Extension Type": every browser's DTLS
///   ClientHello carries extensions the library does not implement (and
///   need not); it warned several times per connection.
pub fn demoted(target: &str, level: log::Level, message: &str) -> log::Level {
    if level <= log::Level::Warn && target.starts_with("rtc_dtls") && message.starts_with("Unsupported Extension Type") {
        log::Level::Debug
    } else {
        level
    }
}

/// Forwards `log` records to `tracing`, at the level [`demoted`] gives.
struct Bridge(tracing_log::LogTracer);

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Only warnings of the crates with known noise are looked at closer.
        if record.level() > log::Level::Warn || !record.target().starts_with("rtc_dtls") {
            self.0.log(record);
            return;
        }
        let message = record.args().to_string();
        let level = demoted(record.target(), record.level(), &message);
        let metadata = log::Metadata::builder().level(level).target(record.target()).build();
        if self.0.enabled(&metadata) {
            self.0.log(
                &log::Record::builder()
                    .metadata(metadata)
                    .args(format_args!("{message}"))
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_known_noise_is_demoted() {
        let t = "rtc_dtls::handshake::handshake_message_client_hello";
        assert_eq!(demoted(t, log::Level::Warn, "Unsupported Extension Type 0 23"), log::Level::Debug);
        assert_eq!(demoted(t, log::Level::Warn, "handshake failed"), log::Level::Warn, "other warnings stay");
        assert_eq!(demoted("onair", log::Level::Warn, "Unsupported Extension Type 0 23"), log::Level::Warn, "other crates stay");
        assert_eq!(demoted(t, log::Level::Error, "Unsupported Extension Type 0 23"), log::Level::Debug);
    }
}
