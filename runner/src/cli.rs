//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// What `--help` says after the options: exit codes and environment.
const AFTER_HELP: &str = "\
Exit codes:
  0    every cell ran ok (check: no error)
  1    a cell failed or was cancelled (check: a static error)
  2    usage error, unreadable notebook, or output that cannot be written
  130  the run was interrupted (Ctrl-C, SIGTERM, SIGHUP)

Environment:
  CELLRUN_JOBS                 how many cells may run at once (as --jobs)
  CELLRUN_LOG                  log filter for stderr, e.g. `debug` or `scheduler=debug`
  CELLRUN_PLUGIN_PATH          more plugin directories, separated like PATH
  CELLRUN_EXECUTOR             the executor to run with, as --executor
  CELLRUN_EXECUTOR_ALLOWLIST   executor plugins a run may select (comma-separated)
  CELLRUN_EXECUTOR_DENYLIST    executor plugins a run must not select
  CELLRUN_LIFECYCLE_ALLOWLIST  lifecycle plugins a run may use
  CELLRUN_LIFECYCLE_DENYLIST   lifecycle plugins a run must not use
  NO_COLOR                     no colour, even on a terminal";

/// Runs notebooks of Rhai cells as a dataflow graph.
#[derive(Debug, Parser)]
#[command(name = "cellrun", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a notebook's cells in dependency order.
    Run(RunArgs),
    /// Run a notebook, then re-run what each save of the file changes.
    Watch(WatchArgs),
    /// Analyse a notebook without running it: defs, refs, parents, errors.
    Check {
        /// The notebook file: percent-format `.rhai`, or a marimo `.py` file.
        notebook: PathBuf,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Inspect or empty a cell cache directory.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// List the plugin libraries found, whether each is usable, and which
    /// executor a run would select.
    Plugins {
        #[command(flatten)]
        plugins: PluginArgs,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run cells for another process: requests on stdin, answers on stdout,
    /// one JSON object a line (the host side of remote execution; see the README).
    Worker {
        /// Stop a cell when the worker holds more than MIB mebibytes of heap
        /// (default: a quarter of the machine's memory).
        #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
        max_memory: Option<u64>,
        /// The Python program whose environment runs Python cells (default:
        /// the active virtual environment's, else `python3` on PATH).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
    },
    /// Write an HTML report from the NDJSON events of an earlier
    /// `cellrun run --json` (`-` reads standard input).
    Report {
        /// The saved events.
        events: PathBuf,
        /// The HTML file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Print a notebook's dependency graph.
    Graph {
        /// The notebook file: percent-format `.rhai`, or a marimo `.py` file.
        notebook: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The notebook file: percent-format `.rhai`, or a marimo `.py` file.
    pub(crate) notebook: PathBuf,
    /// Run only this cell with its ancestors and descendants (repeatable).
    #[arg(long = "cell", value_name = "NAME")]
    pub(crate) cells: Vec<String>,
    /// Stop a cell that runs longer than SECS seconds (an error of kind `timeout`).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<f64>,
    /// Print NDJSON events on stdout instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write a self-contained HTML report of the run to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Run up to N independent cells at the same time (default: the number
    /// of cores; 1 runs one cell at a time, in queue order).
    #[arg(long, short = 'j', value_name = "N", env = "CELLRUN_JOBS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) jobs: Option<u32>,
    /// Stop a cell when the process holds more than MIB mebibytes of heap
    /// (default: a quarter of the machine's memory).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_memory: Option<u64>,
    /// Strict execution: a cell sees only deep copies of the names it reads.
    #[arg(long)]
    pub(crate) strict: bool,
    /// The Python program whose environment runs a Python notebook's cells
    /// (default: the active virtual environment's, else `python3` on PATH);
    /// the same as `--plugin-opt python.python=PATH`.
    #[arg(long, value_name = "PATH")]
    pub(crate) python: Option<PathBuf>,
    /// Reuse results of cells whose code and inputs did not change, stored in
    /// DIR (default: `.cellrun/cache` beside the notebook).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub(crate) cache: Option<Option<PathBuf>>,
    #[command(flatten)]
    pub(crate) plugins: PluginArgs,
    /// Pass KEY=VALUE to the constructor of plugin NAME (repeatable).
    #[arg(long = "plugin-opt", value_name = "NAME.KEY=VALUE", value_parser = crate::plugins::parse_option)]
    pub(crate) plugin_opts: Vec<(String, String, String)>,
    /// Run with this executor (`default` for the built-in one); when it
    /// cannot be loaded or constructed the run stops before any cell (exit 2).
    #[arg(long, value_name = "NAME", env = "CELLRUN_EXECUTOR")]
    pub(crate) executor: Option<String>,
}

/// `cellrun watch`: the options of `run`, plus the watch's own.
#[derive(Debug, clap::Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Run only the changed cells and mark their descendants stale; `r`
    /// runs the stale cells.
    #[arg(long)]
    pub(crate) lazy: bool,
    /// Wait until the file has been quiet for MS milliseconds before
    /// re-running, so that one save's several writes make one re-run.
    #[arg(long, value_name = "MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) debounce: u64,
}

/// Where plugins come from.
#[derive(Debug, clap::Args)]
pub(crate) struct PluginArgs {
    /// Load plugins from the shared libraries in DIR (repeatable); the
    /// directories in `CELLRUN_PLUGIN_PATH` are searched too.
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub(crate) plugin_dirs: Vec<PathBuf>,
    /// Load plugin files that group or others can write, or that another
    /// user owns (refused by default).
    #[arg(long)]
    pub(crate) allow_untrusted_plugins: bool,
}

/// What `cellrun cache` does.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheAction {
    /// Count the entries of a cache directory and their size.
    Info {
        /// The cache directory (default: `.cellrun/cache`).
        dir: Option<PathBuf>,
    },
    /// Remove every entry of a cache directory.
    Clear {
        /// The cache directory (default: `.cellrun/cache`).
        dir: Option<PathBuf>,
    },
}

/// The formats `cellrun graph` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
    /// JSON: nodes and edges.
    Json,
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(secs)
    } else {
        Err(format!(
            "the timeout must be a positive number of seconds, not `{text}`"
        ))
    }
}

/// When `run` misses its notebook because `--cache` took the notebook's
/// path as its directory (`run --cache nb.rhai`), a note saying so.
pub(crate) fn cache_took_the_notebook(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Option<String> {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    if args.get(1).and_then(|arg| arg.to_str()) != Some("run") {
        return None;
    }
    let at = args.iter().position(|arg| arg == "--cache")?;
    let taken = args.get(at + 1)?.to_str()?;
    if taken.starts_with('-') {
        return None;
    }
    Some(format!(
        "`--cache` took `{taken}` as its DIR; put `--cache` after the notebook \
         (`cellrun run {taken} --cache`) or write `--cache=DIR`"
    ))
}

/// For an unknown subcommand clap has no suggestion for (`rn`), the
/// subcommand one edit away from it, if one is.
pub(crate) fn subcommand_tip(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    if error.kind() != clap::error::ErrorKind::InvalidSubcommand
        || error.get(ContextKind::SuggestedSubcommand).is_some()
    {
        return None;
    }
    let Some(ContextValue::String(typed)) = error.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let command = <Cli as clap::CommandFactory>::command();
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    let similar = similar_name(typed, names.iter().map(String::as_str))?;
    Some(format!("a similar subcommand exists: `{similar}`"))
}

/// The first of `names` at most one edit (insertion, deletion, substitution
/// or swap of neighbours) away from `typed`.
fn similar_name<'a>(typed: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let typed: Vec<char> = typed.chars().collect();
    names.into_iter().find(|name| {
        let name: Vec<char> = name.chars().collect();
        let prefix = typed.iter().zip(&name).take_while(|(a, b)| a == b).count();
        let suffix = typed[prefix..]
            .iter()
            .rev()
            .zip(name[prefix..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let (rest_typed, rest_name) = (
            &typed[prefix..typed.len() - suffix],
            &name[prefix..name.len() - suffix],
        );
        match (rest_typed.len(), rest_name.len()) {
            (0, 0) => false,
            (0, 1) | (1, 0) | (1, 1) => true,
            (2, 2) => rest_typed[0] == rest_name[1] && rest_typed[1] == rest_name[0],
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 12, point 16.
    #[test]
    fn issue_12_a_mistyped_subcommand_gets_the_near_one() {
        let names = ["run", "check", "graph", "cache", "plugins"];
        let similar = |typed: &str| similar_name(typed, names.iter().copied());
        assert_eq!(similar("rn"), Some("run"));
        assert_eq!(similar("rnu"), Some("run"));
        assert_eq!(similar("chekc"), Some("check"));
        assert_eq!(similar("plugin"), Some("plugins"));
        assert_eq!(similar("grph"), Some("graph"));
        assert_eq!(similar("run"), None);
        assert_eq!(similar("xyz"), None);
    }

    // See: issue 12, point 16.
    #[test]
    fn issue_12_a_cache_flag_that_took_the_notebook_is_named() {
        let note = |args: &[&str]| cache_took_the_notebook(args.iter().map(Into::into));
        assert_eq!(
            note(&["cellrun", "run", "--strict", "--cache", "book.rhai"]).as_deref(),
            Some(
                "`--cache` took `book.rhai` as its DIR; put `--cache` after the notebook \
                 (`cellrun run book.rhai --cache`) or write `--cache=DIR`"
            )
        );
        assert_eq!(note(&["cellrun", "run", "--cache", "--json"]), None);
        assert_eq!(note(&["cellrun", "check", "--cache", "x"]), None);
    }
}
