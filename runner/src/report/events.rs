//! Reading a run back from its NDJSON events.
//!
//! The stream is the one `cellrun run --json` prints; `--report` records the
//! same events in memory, so both reports come from this one reader.
//! Fields added after the first release (`notebook_cells`, `at_ms`,
//! `started_at`, `duration_ms` of `run_finished`, `jobs`, `display`) are
//! optional: an older stream gives a report with less in it.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// A run as its events describe it, cells in file order.
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub(crate) notebook: String,
    pub(crate) started_at: Option<String>,
    pub(crate) executor: String,
    pub(crate) lifecycles: Vec<String>,
    pub(crate) jobs: Option<u64>,
    pub(crate) language: String,
    /// Every cell: from `notebook_cells` when the stream has it, else the
    /// cells of the run in queue order.
    pub(crate) cells: Vec<CellEntry>,
    /// Whether `cells` holds code and parents (from `notebook_cells`).
    pub(crate) has_sources: bool,
    pub(crate) warnings: Vec<String>,
    /// The `run_finished` event, absent when the run did not finish.
    pub(crate) finished: Option<Tally>,
}

/// One cell of the notebook and what became of it.
#[derive(Debug, Default)]
pub(crate) struct CellEntry {
    pub(crate) name: String,
    /// The notebook line of its first line of code.
    pub(crate) line: Option<u32>,
    pub(crate) code: Option<String>,
    /// Indexes into [`Run::cells`].
    pub(crate) parents: Vec<usize>,
    /// The `at_ms` of its `cell_started`, when its body started.
    pub(crate) started_ms: Option<f64>,
    /// Its `cell_finished`, absent when the cell was not part of the run or
    /// the run stopped first.
    pub(crate) result: Option<Finished>,
}

/// A `cell_finished` event.
#[derive(Debug, Deserialize)]
pub(crate) struct Finished {
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) output: Value,
    /// Whether `output` was cut short when the event was written.
    #[serde(default)]
    pub(crate) output_truncated: bool,
    #[serde(default)]
    pub(crate) stdout: String,
    #[serde(default)]
    pub(crate) error: Option<ErrorInfo>,
    #[serde(default)]
    pub(crate) duration_ms: f64,
    #[serde(default)]
    pub(crate) cached: bool,
    /// When the cell finished, counted from the start of the run.
    #[serde(default)]
    pub(crate) at_ms: Option<f64>,
    #[serde(default)]
    pub(crate) display: Option<Display>,
}

/// The `error` of a `cell_finished` event.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorInfo {
    pub(crate) kind: String,
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) line: Option<u32>,
    #[serde(default)]
    pub(crate) blamed: Option<String>,
}

/// A rich display a cell produced: a MIME type and its data.
#[derive(Debug, Deserialize)]
pub(crate) struct Display {
    pub(crate) mime: String,
    pub(crate) data: String,
}

/// The counts of `run_finished`.
#[derive(Debug, Deserialize)]
pub(crate) struct Tally {
    pub(crate) ok: usize,
    pub(crate) error: usize,
    pub(crate) cancelled: usize,
    pub(crate) interrupted: usize,
    #[serde(default)]
    pub(crate) duration_ms: Option<f64>,
    /// Why the run stopped early (a failed allocation), when it did.
    #[serde(default)]
    pub(crate) aborted: Option<Aborted>,
}

/// The `aborted` object of a `run_finished` after a failed allocation.
#[derive(Debug, Deserialize)]
pub(crate) struct Aborted {
    pub(crate) reason: String,
    #[serde(default)]
    pub(crate) cell: Option<String>,
}

#[derive(Deserialize)]
struct RunStarted {
    notebook: String,
    executor: String,
    #[serde(default)]
    lifecycles: Vec<String>,
    #[serde(default)]
    cells: Vec<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    jobs: Option<u64>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    notebook_cells: Option<Vec<SourceIn>>,
}

#[derive(Deserialize)]
struct SourceIn {
    name: String,
    line: u32,
    code: String,
    #[serde(default)]
    parents: Vec<String>,
}

#[derive(Deserialize)]
struct CellStartedIn {
    cell: String,
    #[serde(default)]
    at_ms: Option<f64>,
}

#[derive(Deserialize)]
struct CellFinishedIn {
    cell: String,
    #[serde(flatten)]
    finished: Finished,
}

#[derive(Deserialize)]
struct WarningIn {
    message: String,
}

/// Why a stream cannot be read: the 1-based line and what is wrong there.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub(crate) struct StreamError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl Run {
    /// Reads the NDJSON `text` of one run.
    ///
    /// Blank lines and events of unknown kinds are skipped; a line that is
    /// not a JSON object, a known event with missing fields, a second
    /// `run_started`, or a stream without `run_started` is an error.
    pub(crate) fn parse(text: &str) -> Result<Run, StreamError> {
        let mut run: Option<Run> = None;
        let mut index: HashMap<String, usize> = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let fail = |message: String| StreamError {
                line: number,
                message,
            };
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .map_err(|error| fail(format!("not a JSON event ({error})")))?;
            let kind = value
                .get("event")
                .and_then(Value::as_str)
                .ok_or_else(|| fail("no \"event\" field".to_owned()))?
                .to_owned();
            let decode_error = |error: serde_json::Error| fail(format!("{kind}: {error}"));
            if kind == "run_started" {
                if run.is_some() {
                    return Err(fail(
                        "a second run_started: give the events of one run".to_owned(),
                    ));
                }
                let started: RunStarted = serde_json::from_value(value).map_err(decode_error)?;
                let (started, cells, has_sources) = started.into_cells();
                index = cells
                    .iter()
                    .enumerate()
                    .map(|(position, cell)| (cell.name.clone(), position))
                    .collect();
                run = Some(Run {
                    cells,
                    has_sources,
                    ..started
                });
                continue;
            }
            let Some(run) = run.as_mut() else {
                return Err(fail(format!("{kind} before run_started")));
            };
            match kind.as_str() {
                "cell_started" => {
                    let event: CellStartedIn =
                        serde_json::from_value(value).map_err(decode_error)?;
                    let position = run.position(&mut index, &event.cell);
                    run.cells[position].started_ms = event.at_ms;
                }
                "cell_finished" => {
                    let event: CellFinishedIn =
                        serde_json::from_value(value).map_err(decode_error)?;
                    let position = run.position(&mut index, &event.cell);
                    run.cells[position].result = Some(event.finished);
                }
                "warning" => {
                    let event: WarningIn = serde_json::from_value(value).map_err(decode_error)?;
                    run.warnings.push(event.message);
                }
                "run_finished" => {
                    run.finished = Some(serde_json::from_value(value).map_err(decode_error)?);
                }
                _ => {}
            }
        }
        run.ok_or(StreamError {
            line: text.lines().count().max(1),
            message: "no run_started event: is this the output of `cellrun run --json`?".to_owned(),
        })
    }

    /// The index of the cell named `name`, adding a cell the header did not
    /// list (a stream written by hand, or by another tool).
    fn position(&mut self, index: &mut HashMap<String, usize>, name: &str) -> usize {
        if let Some(&position) = index.get(name) {
            return position;
        }
        self.cells.push(CellEntry {
            name: name.to_owned(),
            ..CellEntry::default()
        });
        index.insert(name.to_owned(), self.cells.len() - 1);
        self.cells.len() - 1
    }

    /// The index of the cell named `name`.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.cells.iter().position(|cell| cell.name == name)
    }
}

impl RunStarted {
    /// The run's header fields, its cells, and whether they carry sources.
    fn into_cells(self) -> (Run, Vec<CellEntry>, bool) {
        let header = Run {
            notebook: self.notebook,
            started_at: self.started_at,
            executor: self.executor,
            lifecycles: self.lifecycles,
            jobs: self.jobs,
            language: self.language.unwrap_or_else(|| "rhai".to_owned()),
            ..Run::default()
        };
        match self.notebook_cells {
            Some(sources) => {
                let index: HashMap<&str, usize> = sources
                    .iter()
                    .enumerate()
                    .map(|(position, cell)| (cell.name.as_str(), position))
                    .collect();
                let cells = sources
                    .iter()
                    .map(|source| CellEntry {
                        name: source.name.clone(),
                        line: Some(source.line),
                        code: Some(source.code.clone()),
                        parents: source
                            .parents
                            .iter()
                            .filter_map(|parent| index.get(parent.as_str()).copied())
                            .collect(),
                        ..CellEntry::default()
                    })
                    .collect();
                (header, cells, true)
            }
            None => {
                let cells = self
                    .cells
                    .into_iter()
                    .map(|name| CellEntry {
                        name,
                        ..CellEntry::default()
                    })
                    .collect();
                (header, cells, false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_without_the_newer_fields_still_reads() {
        let run = Run::parse(
            r#"{"event":"run_started","notebook":"nb.rhai","executor":"default","lifecycles":[],"cells":["b","a"]}
{"event":"cell_started","cell":"b"}
{"event":"cell_finished","cell":"b","status":"ok","output":1,"stdout":"","error":null,"duration_ms":0.5,"cached":false}
{"event":"some_future_event","x":1}
"#,
        )
        .unwrap();
        assert!(!run.has_sources);
        let names: Vec<&str> = run.cells.iter().map(|cell| cell.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(run.cells[0].result.as_ref().unwrap().output, 1);
        assert!(run.cells[1].result.is_none());
        assert!(run.finished.is_none());
        assert_eq!(run.language, "rhai");
    }

    #[test]
    fn bad_streams_name_the_line() {
        let error = Run::parse("\n{\"event\":\"run_started\"}\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(
            error.message.contains("missing field `notebook`"),
            "{error}"
        );
        let error = Run::parse("{\"event\":\"warning\",\"message\":\"m\"}\n").unwrap_err();
        assert_eq!(error.to_string(), "line 1: warning before run_started");
        let error = Run::parse("not json\n").unwrap_err();
        assert!(
            error.to_string().starts_with("line 1: not a JSON event"),
            "{error}"
        );
        let error = Run::parse("").unwrap_err();
        assert!(error.message.contains("no run_started"), "{error}");
    }

    #[test]
    fn cells_come_in_file_order_with_parents() {
        let run = Run::parse(
            r#"{"event":"run_started","notebook":"nb.rhai","executor":"default","cells":["a","b"],"notebook_cells":[{"name":"b","line":2,"code":"x","parents":["a"]},{"name":"a","line":4,"code":"let x = 1;","parents":[]}]}"#,
        )
        .unwrap();
        assert!(run.has_sources);
        assert_eq!(run.cells[0].name, "b");
        assert_eq!(run.cells[0].parents, [1]);
        assert_eq!(run.find("a"), Some(1));
    }
}
