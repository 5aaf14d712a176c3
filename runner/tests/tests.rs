//! End-to-end tests of the `cellrun` binary.
//!
//! Each test writes its notebook into a directory of its own and runs the
//! real binary, checking exit codes, JSON events and human output.

mod util;

// Headless Chromium over the DevTools protocol, for the report tests.
mod chromium;

// `cellrun run`: statuses, outputs, cancellation, JSON events, exit codes.
mod run;

// Static errors: syntax, multiple definitions, cycles, and what depends on them.
mod static_errors;

// `cellrun check` and `cellrun graph`.
mod check_graph;

// Interrupts, timeouts and safety limits.
mod control;

// Mistakes a user makes: bad flags, missing files, broken notebooks.
mod mistakes;

// `--strict` and `--cache`: isolation, reuse, and a cache that survives kills.
mod lifecycles;

// Plugins: loading, trust, version checks, panics, and the shipped plugins.
mod plugins;

// Hostile input: broken plugin files, signals, closed pipes, terminal escapes
// (issue 12).
mod hardening;

// The slurm executor against the real local cluster of `cargo xtask slurm up`.
mod slurm;

// marimo notebooks: check, graph, static errors and parity with marimo.
mod python;

// `cellrun worker`: the host side of remote execution, through its protocol.
mod worker;

// The subprocess executor: every cell in a `cellrun worker` process, compared
// with the built-in executor; stops, kills and the process table.
mod subprocess;

// `cellrun watch`: re-runs after scripted saves, the terminal screen.
mod watch;

// HTML reports: `run --report`, `cellrun report`, and the page in Chromium.
mod report;

// Running marimo notebooks with the python executor plugin.
mod python_run;

// `--jobs N`: parallel runs against the sequential run's semantics.
mod parallel;
