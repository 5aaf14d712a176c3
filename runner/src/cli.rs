//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Runs notebooks of Rhai cells as a dataflow graph.
#[derive(Debug, Parser)]
#[command(name = "cellrun", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a notebook's cells in dependency order.
    Run(RunArgs),
    /// Analyse a notebook without running it: defs, refs, parents, errors.
    Check {
        /// The notebook file (`.rhai`, percent format).
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
    /// Print a notebook's dependency graph.
    Graph {
        /// The notebook file (`.rhai`, percent format).
        notebook: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The notebook file (`.rhai`, percent format).
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
    /// Stop a cell when the process holds more than MIB mebibytes of heap
    /// (default: a quarter of the machine's memory).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_memory: Option<u64>,
    /// Strict execution: a cell sees only deep copies of the names it reads.
    #[arg(long)]
    pub(crate) strict: bool,
    /// Reuse results of cells whose code and inputs did not change, stored in
    /// DIR (default: `.cellrun/cache` beside the notebook).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub(crate) cache: Option<Option<PathBuf>>,
    #[command(flatten)]
    pub(crate) plugins: PluginArgs,
    /// Pass KEY=VALUE to the constructor of plugin NAME (repeatable).
    #[arg(long = "plugin-opt", value_name = "NAME.KEY=VALUE", value_parser = crate::plugins::parse_option)]
    pub(crate) plugin_opts: Vec<(String, String, String)>,
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
