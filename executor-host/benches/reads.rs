//! What a plugin pays to read a 1,000,000-element array: once, and 100
//! times in one call, through the SDK's zero-copy views, as a copy
//! (`Host::get`), and as a value the plugin owns.
//!
//! The plugin is a real 1.2 executor plugin called through its FFI objects
//! (the vtables a loaded library has), wrapped by [`PluginExecutor2`] as
//! the runner wraps it; only the library loading is left out. One read is
//! what a reading cell does: the array's length and one of its items.
//!
//! `cargo xtask bench` runs it (`cargo bench -p executor-host --bench reads`)
//! and reports the best of several calls for each.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use executor_abi::sdk::{
    executor_for_tests, ExecutorPlugin, Host, Logger, Options, Outcome, OwnedTable, OwnedValue,
    OwnedValues, PluginError,
};
use executor_abi::{FfiCellContext, FfiValue};
use executor_core::{
    CancelToken, CellSource, DefaultExecutor, Executor, Globals, Limits, Notebook,
};
use executor_host::PluginExecutor2;
use rhai::Dynamic;

/// How many elements the array has.
const LEN: usize = 1_000_000;

/// A million integers the plugin owns.
struct Numbers(Vec<i64>);

impl OwnedValue for Numbers {
    const TYPE_NAME: &'static str = "numbers";
    fn display(&self) -> String {
        format!("<{} numbers>", self.0.len())
    }
}

/// Reads as its cell's code says: `view N`, `copy N`, `owned N` (N reads
/// of `xs`, or of the owned `ys`), `view-small N` (of the 10-element
/// `small`), or `own` (defines `ys`).
struct Reader {
    owned: OwnedTable<Numbers>,
}

impl ExecutorPlugin for Reader {
    const NAME: &'static str = "reader";

    fn new(_options: &Options, _logger: Logger) -> Result<Reader, PluginError> {
        Ok(Reader {
            owned: OwnedTable::new(),
        })
    }

    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        let mut words = cell.code.split_whitespace();
        let how = words.next().unwrap_or_default();
        let reads: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut sum = 0_i64;
        match how {
            "own" => {
                let id = self.owned.insert(Numbers((0..LEN as i64).collect()));
                host.set_owned("ys", id, Numbers::TYPE_NAME)?;
            }
            "view" | "view-small" => {
                let name = if how == "view" { "xs" } else { "small" };
                for read in 0..reads {
                    let xs = host.view(name).ok_or("no array")?;
                    sum += xs.len() as i64 + xs.index(read % 10).as_int().unwrap_or(0);
                }
            }
            "copy" => {
                for read in 0..reads {
                    let Some(FfiValue::Array(xs)) = host.get("xs") else {
                        return Err("no xs".into());
                    };
                    sum += xs.len() as i64 + matches!(xs[read as usize], FfiValue::Int(_)) as i64;
                }
            }
            "owned" => {
                for read in 0..reads {
                    let id = host.get_owned("ys").ok_or("no ys")?;
                    let ys = self.owned.get(id).ok_or("ys dropped")?;
                    sum += ys.0.len() as i64 + ys.0[read as usize];
                }
            }
            other => return Err(format!("unknown reading `{other}`").into()),
        }
        Ok(Outcome::ok(FfiValue::Int(sum)))
    }

    fn owned(&self) -> Option<&dyn OwnedValues> {
        Some(&self.owned)
    }
}

/// The best time of `rounds` calls of the plugin on a cell with `code`.
fn best(executor: &PluginExecutor2, globals: &mut Globals, code: &str, rounds: usize) -> Duration {
    let notebook = Notebook::compile(vec![CellSource::new("read", code, 1)], &Limits::default());
    let cell = &notebook.cells()[0];
    let token = CancelToken::new();
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let start = Instant::now();
        let result = executor.execute(cell, globals, &token);
        best = best.min(start.elapsed());
        assert!(result.error.is_none(), "{code}: {:?}", result.error);
        black_box(result);
    }
    best
}

fn main() {
    let inner = executor_for_tests::<Reader>(&[]).expect("the plugin builds");
    let executor = PluginExecutor2::new(
        "reader".to_owned(),
        inner,
        Arc::new(DefaultExecutor::new(&Limits::default())),
        vec!["rhai".to_owned()],
    );
    let mut globals = Globals::new();
    globals.set(
        "xs",
        Dynamic::from_array((0..LEN as i64).map(Dynamic::from_int).collect()),
    );
    globals.set(
        "small",
        Dynamic::from_array((0..10).map(Dynamic::from_int).collect()),
    );
    best(&executor, &mut globals, "own", 1);
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    let copy = best(&executor, &mut globals, "copy 1", 3);
    println!("| read through | 1 read | 100 reads | 100 reads / 1 read | 100 reads / one copy |");
    println!("|---|---|---|---|---|");
    for (how, label, rounds) in [
        ("view", "`Host::view` of the 1,000,000-element array", 50),
        ("view-small", "`Host::view` of a 10-element array", 50),
        ("owned", "a 1,000,000-element value the plugin owns", 50),
        (
            "copy",
            "`Host::get` of the 1,000,000-element array (a copy)",
            1,
        ),
    ] {
        let one = if how == "copy" {
            copy
        } else {
            best(&executor, &mut globals, &format!("{how} 1"), rounds)
        };
        let hundred = best(&executor, &mut globals, &format!("{how} 100"), rounds);
        println!(
            "| {label} | {:.1} µs | {:.1} µs | {:.1}x | {:.5}x |",
            micros(one),
            micros(hundred),
            hundred.as_secs_f64() / one.as_secs_f64(),
            hundred.as_secs_f64() / copy.as_secs_f64()
        );
    }
}
