//! The `trace` lifecycle plugin: writes a Chrome trace-event profile of a
//! run, to open in Perfetto or `chrome://tracing`.
//!
//! Each cell whose setup reached this lifecycle gets one complete event
//! (`"ph": "X"`, category `cell`) spanning its setup, body and teardown,
//! with three nested events for those phases; the cell's status is the
//! `status` argument. The file is written once, when the run ends and the
//! lifecycle is dropped.
//!
//! Options (`--plugin-opt trace.KEY=VALUE`): `path`, the file to write
//! (required).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use executor_abi::sdk::{Host, LifecyclePlugin, Logger, Options, PluginError};
use executor_abi::{FfiCellContext, FfiErrorKind, FfiRunResult, FfiSetup};
use serde_json::{json, Value};

/// Records spans per cell and writes them as trace events on drop.
#[derive(Debug)]
pub struct Trace {
    path: PathBuf,
    logger: Logger,
    start: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Cells between setup and teardown: (setup start, setup end) in µs.
    open: HashMap<u32, (f64, f64)>,
    events: Vec<Value>,
}

impl Trace {
    fn now_us(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1e6
    }

    /// The trace document: every recorded event.
    fn document(&self) -> Value {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        json!({ "traceEvents": state.events, "displayTimeUnit": "ms" })
    }
}

fn span(name: &str, cat: &str, start: f64, end: f64, args: Value) -> Value {
    json!({
        "name": name, "cat": cat, "ph": "X", "pid": 1, "tid": 1,
        "ts": start, "dur": (end - start).max(0.0), "args": args,
    })
}

fn status(result: &FfiRunResult) -> &'static str {
    match result.error.as_ref().into_option() {
        None => "ok",
        Some(error) if error.kind == FfiErrorKind::INTERRUPTED => "interrupted",
        Some(error) if error.kind == FfiErrorKind::CANCELLED => "cancelled",
        Some(_) => "error",
    }
}

impl LifecyclePlugin for Trace {
    const NAME: &'static str = "trace";
    const DESCRIPTION: &'static str =
        "writes a Chrome trace-event profile of the run (trace.path=FILE)";

    fn new(options: &Options, logger: Logger) -> Result<Trace, PluginError> {
        options.reject_unknown(&["path"])?;
        let path = options
            .get("path")
            .ok_or("missing option `trace.path` (the file to write)")?;
        Ok(Trace {
            path: PathBuf::from(path),
            logger,
            start: Instant::now(),
            state: Mutex::default(),
        })
    }

    fn setup(&self, cell: &FfiCellContext, _host: &mut Host<'_>) -> Result<FfiSetup, PluginError> {
        let start = self.now_us();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        state.open.insert(cell.id, (start, self.now_us()));
        Ok(FfiSetup::Continue)
    }

    fn teardown(
        &self,
        cell: &FfiCellContext,
        result: &FfiRunResult,
        _host: &mut Host<'_>,
    ) -> Result<(), PluginError> {
        let teardown_start = self.now_us();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let Some((setup_start, setup_end)) = state.open.remove(&cell.id) else {
            return Ok(());
        };
        let end = self.now_us();
        let mut args =
            json!({ "status": status(result), "cached": result.cached, "line": cell.first_line });
        if let Some(error) = result.error.as_ref().into_option() {
            args["error"] = json!(error.message.as_str());
        }
        let name = cell.name.as_str();
        state
            .events
            .push(span(name, "cell", setup_start, end, args));
        for (phase, start, stop) in [
            ("setup", setup_start, setup_end),
            ("body", setup_end, teardown_start),
            ("teardown", teardown_start, end),
        ] {
            state
                .events
                .push(span(phase, "phase", start, stop, json!({"cell": name})));
        }
        Ok(())
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let text = self.document().to_string();
        match std::fs::write(&self.path, text) {
            Ok(()) => self
                .logger
                .info(&format!("wrote trace to {}", self.path.display())),
            Err(error) => self.logger.warn(&format!(
                "cannot write trace to {}: {error}",
                self.path.display()
            )),
        }
    }
}

executor_abi::export_lifecycle!(Trace);

#[cfg(test)]
mod tests {
    use super::*;
    use executor_abi::sdk::lifecycle_for_tests;

    #[test]
    fn the_path_option_is_required() {
        let error = lifecycle_for_tests::<Trace>(&[]).err().unwrap();
        assert!(error.message.contains("trace.path"), "{}", error.message);
    }
}
