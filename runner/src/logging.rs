//! Logs: `tracing` events to stderr, filtered by `CELLRUN_LOG`; under
//! `--json`, warnings also become `warning` events on stdout.
//!
//! Libraries and plugins report degraded-but-continuing situations (a cache
//! entry that cannot be read, a plugin's own warning) as `tracing` warnings;
//! a tool reading the NDJSON stream sees them as events too.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::output::{Sink, Warning};

/// Where warnings go as JSON events, once a `--json` run set it.
static JSON_WARNINGS: OnceLock<Sink> = OnceLock::new();

/// Installs the subscriber: stderr filtered by `CELLRUN_LOG` (default:
/// warnings), plus the forwarder of warnings to JSON events.
///
/// Without `CELLRUN_LOG`, warnings look like every other warning of the
/// runner: one `cellrun: warning: ...` line each. An invalid filter is
/// reported and ignored.
pub(crate) fn install() {
    let filter = match std::env::var("CELLRUN_LOG") {
        Ok(text) => match tracing_subscriber::EnvFilter::try_new(&text) {
            Ok(filter) => Some(filter),
            Err(error) => {
                eprintln!(
                    "cellrun: warning: CELLRUN_LOG=`{}` is not a valid filter ({error}); logging warnings only",
                    crate::output::terminal_safe(&text)
                );
                None
            }
        },
        Err(_) => None,
    };
    // Colour only on a terminal, and never under `NO_COLOR`.
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let (detailed, plain) = match filter {
        Some(filter) => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(color)
                    .with_target(true)
                    .without_time()
                    .with_filter(filter),
            ),
            None,
        ),
        None => (None, Some(PlainWarnings)),
    };
    let _ = tracing_subscriber::registry()
        .with(detailed)
        .with(plain)
        .with(ForwardWarnings)
        .try_init();
}

/// The default stderr layer: each warning or error as one
/// `cellrun: warning: ...` line.
struct PlainWarnings;

impl<S: Subscriber> Layer<S> for PlainWarnings {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let label = if level == Level::ERROR {
            "error"
        } else {
            "warning"
        };
        eprintln!(
            "cellrun: {label}: {}",
            crate::output::terminal_safe(&text.finish())
        );
    }
}

/// From now on, every warning or error logged also becomes a `warning`
/// event on `sink`.
pub(crate) fn forward_warnings_to(sink: &Sink) {
    let _ = JSON_WARNINGS.set(sink.clone());
}

/// The layer that turns warnings into JSON events.
struct ForwardWarnings;

impl<S: Subscriber> Layer<S> for ForwardWarnings {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        if *event.metadata().level() > Level::WARN {
            return;
        }
        let Some(sink) = JSON_WARNINGS.get() else {
            return;
        };
        let mut text = Text::default();
        event.record(&mut text);
        sink.event(&Warning {
            message: &text.finish(),
        });
    }
}

/// A one-line rendering of an event: its message, then `key=value` fields.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Text {
    fn finish(self) -> String {
        match (self.message.is_empty(), self.fields.is_empty()) {
            (_, true) => self.message,
            (true, false) => self.fields,
            (false, false) => format!("{} ({})", self.message, self.fields),
        }
    }
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push_field(field, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push_field(field, &format!("{value:?}"));
        }
    }
}

impl Text {
    fn push_field(&mut self, field: &Field, value: &str) {
        if !self.fields.is_empty() {
            self.fields.push_str(", ");
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}
